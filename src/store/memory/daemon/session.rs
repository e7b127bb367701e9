//! One client connection, served on a thread of its own: a hello first,
//! then requests in order until the client hangs up or sends something
//! unreadable (then only this connection ends).
use std::collections::HashMap;
use std::io::{self, BufReader, IoSlice};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use serde_bytes::ByteBuf;

use super::body::Growing;
use super::proto::{self, Req, Resp};
use super::state::{Data, Shared};
use crate::entry::Stream;
use crate::key::Key;
use crate::store::pool::Held;

/// An upload not yet committed.
struct Upload {
    key: Key,
    streams: [Growing; 2],
    /// Past the cap: its bytes are dropped as they come.
    too_big: bool,
    /// Out of memory or descriptors: it cannot be stored.
    failed: Option<String>,
    /// Its bytes counted in `Shared::uploading`.
    held: u64,
}

struct Session<'a> {
    shared: &'a Shared,
    conn: u64,
    stream: &'a UnixStream,
    out: Vec<u8>,
    /// The body the last `Get` found, for a following `Body`.
    last: Option<Arc<Data>>,
    /// What the last `PoolGet` found, for a following `PoolBody`.
    pool: Held,
    uploads: HashMap<u32, Upload>,
    /// Our hello, held back to go out right before the answer to the
    /// lookup the client sent along with its own (see [`Session::run`]).
    hello: Option<Resp>,
}

/// Serve `stream` until it closes; then its claims go.
pub fn serve(shared: &Shared, conn: u64, stream: UnixStream) {
    let mut session = Session {
        shared,
        conn,
        stream: &stream,
        out: Vec::new(),
        last: None,
        pool: Held::default(),
        uploads: HashMap::new(),
        hello: None,
    };
    shared.hello(conn, stream.as_raw_fd());
    let _ = session.run(&mut BufReader::with_capacity(64 * 1024, &stream));
    // Uploads its client never finished hold nothing any more.
    for up in session.uploads.values_mut() {
        release(shared, up);
    }
    drop(session);
    shared.hang_up(conn);
}

/// Give back what `up` counted against the uploads in progress.
fn release(shared: &Shared, up: &mut Upload) {
    shared.uploading.fetch_sub(up.held, Ordering::Relaxed);
    up.held = 0;
}

impl Session<'_> {
    fn run(&mut self, input: &mut BufReader<&UnixStream>) -> io::Result<()> {
        let mut buf = Vec::new();
        let Some(Req::Hello { protocol, version }) = proto::recv(input, &mut buf)? else {
            return Ok(());
        };
        if protocol != proto::protocol() {
            let why = format!(
                "the memory daemon (cachier {}, protocol {}) refuses a client of cachier {version} (protocol {protocol})",
                env!("CARGO_PKG_VERSION"),
                proto::protocol()
            );
            return self.send(&Resp::Refused { why });
        }
        self.hello = Some(Resp::Hello {
            protocol: proto::protocol(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
        });
        // A client sends its first request with its hello. If that is a
        // lookup answered at once (in our memory, or on a connection this
        // worker holds open), our hello goes out right before its answer:
        // the client, which reads both, wakes once instead of twice (the
        // round trip is most of a pooled hit). Anything else (a lookup
        // that must connect first, a wait), or nothing sent yet, gets the
        // hello first, as before: the client gives our hello 2 s.
        if input.buffer().is_empty() {
            self.send_hello()?;
        }
        while let Some(req) = proto::recv(input, &mut buf)? {
            let at_once = match &req {
                Req::Get { .. } => true,
                Req::PoolGet { target, .. } => crate::store::pool::warm(target),
                _ => false,
            };
            if !at_once {
                self.send_hello()?;
            }
            self.shared.lock().last = Some(Instant::now());
            self.handle(req)?;
        }
        Ok(())
    }

    /// Our hello, if it is still held back.
    fn send_hello(&mut self) -> io::Result<()> {
        match self.hello.take() {
            Some(hello) => proto::send(self.stream, &mut self.out, &hello),
            None => Ok(()),
        }
    }

    fn send(&mut self, resp: &Resp) -> io::Result<()> {
        self.send_hello()?;
        proto::send(self.stream, &mut self.out, resp)
    }

    fn handle(&mut self, req: Req) -> io::Result<()> {
        let shared = self.shared;
        let resp = match req {
            Req::Hello { .. } => Resp::Error {
                why: "hello twice".into(),
            },
            Req::Stop => {
                // Counts first: whoever stopped us may read them next.
                crate::store::pool::flush();
                self.send(&Resp::Done)?;
                super::server::exit();
            }
            Req::Status => {
                shared.settle(self.conn);
                Resp::Status(Box::new(shared.status()))
            }
            Req::Get { key } => self.get(&key),
            Req::Body => return self.body(),
            Req::Begin { id, key } => {
                let upload = Upload {
                    key,
                    streams: Default::default(),
                    too_big: false,
                    failed: None,
                    held: 0,
                };
                self.uploads.insert(id, upload);
                return Ok(());
            }
            Req::Put { id, stream, data } => {
                if let Some(up) = self.uploads.get_mut(&id) {
                    let i = matches!(stream, Stream::Stderr) as usize;
                    let size = up.streams[0].len + up.streams[1].len + data.len() as u64;
                    let add = if up.too_big { 0 } else { data.len() as u64 };
                    let in_flight = shared.uploading.fetch_add(add, Ordering::Relaxed) + add;
                    up.held += add;
                    up.too_big |= size > shared.cap || in_flight > shared.cap;
                    if up.too_big {
                        release(shared, up);
                        up.streams = Default::default();
                    } else if up.failed.is_none()
                        && let Err(e) = up.streams[i].push(&data)
                    {
                        up.failed = Some(e.to_string());
                        up.streams = Default::default();
                    }
                }
                return Ok(());
            }
            Req::Abort { id } => {
                if let Some(mut up) = self.uploads.remove(&id) {
                    release(shared, &mut up);
                }
                return Ok(());
            }
            Req::Commit {
                id,
                namespace,
                created_ms,
                meta,
            } => match self.uploads.remove(&id).map(|mut up| {
                release(shared, &mut up);
                up
            }) {
                None => Resp::Error {
                    why: format!("no upload {id}"),
                },
                Some(up) if up.too_big => Resp::Stored { kept: false },
                Some(Upload {
                    failed: Some(why), ..
                }) => Resp::Error {
                    why: format!("cannot hold the entry: {why}"),
                },
                Some(up) => {
                    let [out, err] = up.streams;
                    match out.finish(err) {
                        Ok(body) => {
                            let data = Data {
                                meta: meta.into_vec(),
                                len: body.len(),
                                body,
                            };
                            let kept = shared.insert(up.key, namespace, created_ms, data);
                            Resp::Stored { kept }
                        }
                        Err(e) => Resp::Error {
                            why: format!("cannot hold the entry: {e}"),
                        },
                    }
                }
            },
            Req::Claim { key, host, pid } => match shared.claim(self.conn, key, host, pid) {
                None => Resp::Owner,
                Some((host, pid)) => Resp::Busy { host, pid },
            },
            Req::Release { key } => {
                shared.release(self.conn, &key);
                return Ok(());
            }
            Req::Wait { key, timeout_ms } => {
                Resp::Flag(shared.wait(self.conn, &key, timeout_ms.map(Duration::from_millis)))
            }
            Req::Remove { key } => Resp::Removed(shared.lock().remove(&key)),
            Req::List { namespace } => return self.list(namespace.as_deref()),
            Req::Record {
                namespace,
                key,
                event,
            } => {
                shared.lock().record(&namespace, &key, event);
                return Ok(());
            }
            Req::Counters => {
                shared.settle(self.conn);
                Resp::Counters(shared.lock().counters())
            }
            Req::ResetCounters => {
                shared.settle(self.conn);
                shared.lock().reset_counters();
                Resp::Done
            }
            Req::OncePer { what, interval_ms } => Resp::Flag(
                shared
                    .lock()
                    .once_per(&what, Duration::from_millis(interval_ms)),
            ),
            Req::DebugAge { ms } => {
                shared.lock().age(ms);
                Resp::Done
            }
            Req::DebugDamage { truncate } => match shared.lock().damage(truncate) {
                Ok(()) => Resp::Done,
                Err(e) => Resp::Error { why: e.to_string() },
            },
            Req::PoolGet { target, key } => {
                return match self.pool.get(&target, &key) {
                    (resp, Some(file)) => self.send_fd(&resp, &file),
                    (resp, None) => self.send(&resp),
                };
            }
            Req::PoolBody { key } => {
                return match self.pool.body(&key) {
                    Ok((file, start)) => self.send_fd(&Resp::PoolBody { start }, &file),
                    Err(resp) => self.send(&resp),
                };
            }
            Req::PoolRecord {
                target,
                namespace,
                key,
                events,
            } => {
                // No reply: the client is gone by now, most often. Counts
                // read elsewhere first wait for this (`PoolSettle`).
                self.pool.record(&target, &namespace, &key, &events);
                return Ok(());
            }
            Req::PoolSettle => {
                shared.settle(self.conn);
                crate::store::pool::flush();
                Resp::Done
            }
            Req::Watch {
                tree,
                name,
                outside,
            } => shared.watches.watch(tree, &name, &outside),
            Req::Remember {
                tree,
                name,
                outside,
                generation,
                record,
            } => {
                shared
                    .watches
                    .remember(&tree, name, outside, generation, record);
                return Ok(());
            }
        };
        self.send(&resp)
    }

    fn get(&mut self, key: &Key) -> Resp {
        let mut st = self.shared.lock();
        let Some(slot) = st.get(key) else {
            self.last = None;
            return Resp::Missing;
        };
        let data = slot.data.clone();
        let created_ms = slot.created_ms;
        drop(st);
        let inline = data.body.small().map(ByteBuf::from);
        let meta = ByteBuf::from(data.meta.clone());
        let len = data.len;
        self.last = inline.is_none().then_some(data);
        Resp::Found {
            meta,
            created_ms,
            len,
            inline,
        }
    }

    /// Pass the body the last `Get` found to the client as a descriptor.
    fn body(&mut self) -> io::Result<()> {
        let Some(data) = self.last.take() else {
            return self.send(&Resp::Error {
                why: "no entry to send".into(),
            });
        };
        let file = match data.body.file() {
            Ok(file) => file,
            Err(e) => {
                return self.send(&Resp::Error {
                    why: format!("cannot pass the body: {e}"),
                });
            }
        };
        self.send_fd(&Resp::BodyFd { len: data.len }, &file)
    }

    /// Send `resp` with a descriptor of `file` riding on its first bytes.
    fn send_fd(&mut self, resp: &Resp, file: &impl AsFd) -> io::Result<()> {
        self.send_hello()?;
        self.out.clear();
        proto::encode(&mut self.out, resp)?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [file.as_fd()];
        control.push(SendAncillaryMessage::ScmRights(&fds));
        let iov = [IoSlice::new(&self.out)];
        let sent = loop {
            match rustix::net::sendmsg(self.stream, &iov, &mut control, SendFlags::NOSIGNAL) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        };
        proto::send_all(self.stream, &self.out[sent..])
    }

    fn list(&mut self, namespace: Option<&str>) -> io::Result<()> {
        self.shared.settle(self.conn);
        let rows: Vec<Resp> = self
            .shared
            .lock()
            .list(namespace)
            .map(|s| Resp::Listed {
                meta: ByteBuf::from(s.data.meta.clone()),
                created_ms: s.created_ms,
                last_used_ms: if s.hits > 0 {
                    s.last_used_ms.max(s.created_ms)
                } else {
                    s.created_ms
                },
                hits: s.hits,
                size: s.size,
            })
            .collect();
        for row in &rows {
            self.send(row)?;
        }
        self.send(&Resp::End)
    }
}
