//! One client connection, served on a thread of its own: a hello first,
//! then requests in order until the client hangs up or sends something
//! unreadable (then only this connection ends).
use std::collections::HashMap;
use std::io::{self, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use super::proto::{self, CHUNK, INLINE, Req, Resp};
use super::state::{Data, Shared};
use crate::entry::Stream;
use crate::key::Key;

/// An upload not yet committed.
struct Upload {
    key: Key,
    streams: [Vec<Vec<u8>>; 2],
    size: u64,
    /// Past the cap: its bytes are dropped as they come.
    too_big: bool,
}

/// Encodes as [`Resp::Chunk`] without copying the stored bytes first.
#[derive(serde::Serialize)]
enum ChunkRef<'a> {
    Chunk(&'a serde_bytes::Bytes),
}

struct Session<'a> {
    shared: &'a Shared,
    conn: u64,
    stream: &'a UnixStream,
    out: Vec<u8>,
    /// The body the last `Get` found, for a following `Body`.
    last: Option<Arc<Data>>,
    uploads: HashMap<u32, Upload>,
}

/// Serve `stream` until it closes; then its claims go.
pub fn serve(shared: &Shared, conn: u64, stream: UnixStream) {
    let mut session = Session {
        shared,
        conn,
        stream: &stream,
        out: Vec::new(),
        last: None,
        uploads: HashMap::new(),
    };
    shared.hello(conn, stream.as_raw_fd());
    let _ = session.run(&mut BufReader::with_capacity(64 * 1024, &stream));
    drop(session);
    shared.hang_up(conn);
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
        self.send(&Resp::Hello {
            protocol: proto::protocol(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
        })?;
        while let Some(req) = proto::recv(input, &mut buf)? {
            self.shared.lock().last = Some(Instant::now());
            self.handle(req)?;
        }
        Ok(())
    }

    fn send(&mut self, resp: &Resp) -> io::Result<()> {
        proto::send(self.stream, &mut self.out, resp)
    }

    fn handle(&mut self, req: Req) -> io::Result<()> {
        let shared = self.shared;
        let resp = match req {
            Req::Hello { .. } => Resp::Error {
                why: "hello twice".into(),
            },
            Req::Stop => {
                self.send(&Resp::Done)?;
                super::server::exit();
            }
            Req::Status => {
                shared.settle(self.conn);
                Resp::Status(shared.status())
            }
            Req::Get { key } => self.get(&key),
            Req::Body => return self.body(),
            Req::Begin { id, key } => {
                let upload = Upload {
                    key,
                    streams: [Vec::new(), Vec::new()],
                    size: 0,
                    too_big: false,
                };
                self.uploads.insert(id, upload);
                return Ok(());
            }
            Req::Put { id, stream, data } => {
                if let Some(up) = self.uploads.get_mut(&id) {
                    up.size += data.len() as u64;
                    up.too_big |= up.size > shared.cap;
                    if up.too_big {
                        up.streams = [Vec::new(), Vec::new()];
                    } else {
                        let i = matches!(stream, Stream::Stderr) as usize;
                        up.streams[i].push(data.into_vec());
                    }
                }
                return Ok(());
            }
            Req::Abort { id } => {
                self.uploads.remove(&id);
                return Ok(());
            }
            Req::Commit {
                id,
                namespace,
                created_ms,
                meta,
            } => match self.uploads.remove(&id) {
                None => Resp::Error {
                    why: format!("no upload {id}"),
                },
                Some(up) if up.too_big => Resp::Stored { kept: false },
                Some(up) => {
                    let [out, err] = up.streams;
                    let data = Data {
                        meta: meta.into_vec(),
                        chunks: out.into_iter().chain(err).collect(),
                    };
                    let kept = shared.insert(up.key, namespace, created_ms, data);
                    Resp::Stored { kept }
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
                Resp::Flag(shared.wait(&key, timeout_ms.map(Duration::from_millis)))
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
            Req::DebugDamage { truncate } => {
                shared.lock().damage(truncate);
                Resp::Done
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
        let len = data.len();
        let inline = (len <= INLINE).then(|| ByteBuf::from(data.chunks.concat()));
        let meta = ByteBuf::from(data.meta.clone());
        self.last = (inline.is_none()).then_some(data);
        Resp::Found {
            meta,
            created_ms,
            len,
            inline,
        }
    }

    fn body(&mut self) -> io::Result<()> {
        if let Some(data) = self.last.take() {
            for chunk in &data.chunks {
                for piece in chunk.chunks(CHUNK) {
                    let frame = ChunkRef::Chunk(serde_bytes::Bytes::new(piece));
                    proto::send(self.stream, &mut self.out, &frame)?;
                }
            }
        }
        self.send(&Resp::End)
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
