//! An entry's body on its way to and from the daemon, so this process's
//! memory stays constant: a spool keeps at most one [`CHUNK`] per stream
//! before sending it in a frame; a small fetched body comes inline and goes
//! into a memfd of ours, a larger one comes as the daemon's own sealed
//! memfd (passed over the socket); `crate::replay` verifies and sends it.
use std::fs::File;
use std::io::{self, Write};
use std::rc::Rc;

use anyhow::{Context, Result};
use serde_bytes::ByteBuf;

use super::store::Lazy;
use crate::entry::{Body, Corrupt, Meta, Stream};
use crate::key::Key;
use crate::store::memory::daemon::client::unexpected;
use crate::store::memory::daemon::proto::{CHUNK, Req, Resp};
use crate::store::{Fetch, Spool};

pub struct MemSpool {
    store: Rc<Lazy>,
    id: u32,
    pending: [Vec<u8>; 2],
    committed: bool,
}

impl MemSpool {
    pub fn new(store: Rc<Lazy>, id: u32) -> MemSpool {
        MemSpool {
            store,
            id,
            pending: [Vec::new(), Vec::new()],
            committed: false,
        }
    }

    fn flush(&mut self, i: usize) -> Result<()> {
        if self.pending[i].is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.pending[i], Vec::with_capacity(CHUNK));
        let stream = if i == 0 {
            Stream::Stdout
        } else {
            Stream::Stderr
        };
        let req = Req::Put {
            id: self.id,
            stream,
            data: ByteBuf::from(data),
        };
        self.store.with(|c| c.send(&req))
    }
}

impl Spool for MemSpool {
    fn write(&mut self, stream: Stream, mut data: &[u8]) -> io::Result<()> {
        let i = stream as usize;
        while !data.is_empty() {
            let room = CHUNK - self.pending[i].len();
            let take = room.min(data.len());
            self.pending[i].extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending[i].len() >= CHUNK {
                self.flush(i).map_err(io::Error::other)?;
            }
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>, meta: &Meta) -> Result<()> {
        let fail = || format!("cannot store cache entry {}", meta.key.short());
        self.flush(0).with_context(fail)?;
        self.flush(1).with_context(fail)?;
        let mut bytes = Vec::new();
        ciborium::into_writer(meta, &mut bytes).with_context(fail)?;
        let req = Req::Commit {
            id: self.id,
            namespace: meta.namespace.clone(),
            created_ms: meta.created_ms,
            meta: ByteBuf::from(bytes),
        };
        self.committed = true;
        // `kept: false`: larger than the daemon's cap, passed through.
        match self.store.with(|c| c.call(&req)).with_context(fail)? {
            Resp::Stored { .. } => Ok(()),
            _ => Err(unexpected()).with_context(fail),
        }
    }
}

impl Drop for MemSpool {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.store.with(|c| c.send(&Req::Abort { id: self.id }));
        }
    }
}

/// An entry's body, fetched only when the entry will be served.
pub struct MemBody {
    pub store: Rc<Lazy>,
    pub key: Key,
    /// Bytes the metadata promises (stdout plus stderr).
    pub want: u64,
    /// Bytes the daemon holds.
    pub len: u64,
    pub inline: Option<Vec<u8>>,
}

impl Fetch for MemBody {
    fn fetch(self: Box<Self>) -> Result<Body> {
        if self.len != self.want {
            return Err(Corrupt {
                key: self.key.short(),
                why: "length mismatch".into(),
            }
            .into());
        }
        let file = match &self.inline {
            Some(bytes) => {
                let flags = rustix::fs::MemfdFlags::CLOEXEC;
                let fd = rustix::fs::memfd_create("cachier-body", flags)
                    .context("cannot create a memfd for the output")?;
                let mut file = File::from(fd);
                file.write_all(bytes)?;
                file
            }
            // The daemon's own sealed memfd: read in place, never copied.
            None => match self.store.with(|c| {
                c.send(&Req::Body)?;
                c.recv_fd()
            })? {
                (Resp::BodyFd { .. }, Some(fd)) => File::from(fd),
                _ => return Err(unexpected()),
            },
        };
        let got = file.metadata()?.len();
        if got != self.want {
            return Err(Corrupt {
                key: self.key.short(),
                why: "length mismatch".into(),
            }
            .into());
        }
        Ok(Body { file, start: 0 })
    }
}
