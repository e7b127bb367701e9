//! The memory daemon's wire protocol: frames of a big-endian `u32` length
//! followed by one CBOR message, at most [`MAX_FRAME`] bytes.
//!
//! The first message on a connection is [`Req::Hello`] with the protocol
//! version; a daemon of another version answers [`Resp::Refused`] and
//! closes, and a client that gets another version back refuses it too (it
//! then restarts the daemon). `Hello`, `Refused` and `Stop` keep their shape
//! across versions so that this exchange always decodes. Requests are
//! answered in order, one response each, except `Put`, `Abort`, `Release`,
//! `Record`, `PoolRecord` and `Remember` (none) and `List` (a stream of frames ended by [`Resp::End`]).
use std::io::{self, Read};
use std::os::fd::AsFd;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::entry::Stream;
use crate::key::Key;
use crate::watch::Tree;

/// Bumped on any incompatible change of [`Req`] or [`Resp`].
pub const PROTOCOL: u32 = 4;

/// The protocol this process speaks. `CACHIER_TEST_PROTOCOL_BUMP` (test
/// only, undocumented for users) adds to it, to test a version mismatch.
pub fn protocol() -> u32 {
    let bump = std::env::var("CACHIER_TEST_PROTOCOL_BUMP")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(0);
    PROTOCOL.saturating_add(bump)
}

/// Output goes to the daemon in chunks of at most this many bytes.
pub const CHUNK: usize = 256 * 1024;
/// A body this small comes inline with the metadata: one round trip a hit.
pub const INLINE: u64 = 64 * 1024;
/// The largest frame either side accepts; a longer one ends the connection.
pub const MAX_FRAME: usize = 16 << 20;

/// A counted event, as [`crate::entry::Event`] on the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Ev {
    Hit { saved_ms: u64 },
    Miss,
    Wait,
    StaleServe,
}

impl From<crate::entry::Event> for Ev {
    fn from(event: crate::entry::Event) -> Ev {
        use crate::entry::Event;
        match event {
            Event::Hit { saved } => Ev::Hit {
                saved_ms: millis(saved),
            },
            Event::Miss => Ev::Miss,
            Event::Wait => Ev::Wait,
            Event::StaleServe => Ev::StaleServe,
        }
    }
}

impl From<Ev> for crate::entry::Event {
    fn from(ev: Ev) -> crate::entry::Event {
        use crate::entry::Event;
        match ev {
            Ev::Hit { saved_ms } => Event::Hit {
                saved: std::time::Duration::from_millis(saved_ms),
            },
            Ev::Miss => Event::Miss,
            Ev::Wait => Event::Wait,
            Ev::StaleServe => Event::StaleServe,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub enum Req {
    Hello {
        protocol: u32,
        version: String,
    },
    /// Ask the daemon to exit (its entries go with it).
    Stop,
    Status,
    /// The entry of `key`: [`Resp::Found`] or [`Resp::Missing`].
    Get {
        key: Key,
    },
    /// The body of the entry the last `Get` found, as it was then:
    /// [`Resp::BodyFd`].
    Body,
    /// Start upload `id` of the entry of `key`; `Put`s follow.
    Begin {
        id: u32,
        key: Key,
    },
    Put {
        id: u32,
        stream: Stream,
        data: ByteBuf,
    },
    /// Publish upload `id`: [`Resp::Stored`].
    Commit {
        id: u32,
        namespace: String,
        created_ms: u64,
        meta: ByteBuf,
    },
    Abort {
        id: u32,
    },
    /// [`Resp::Owner`] or [`Resp::Busy`]; the claim lasts until `Release`
    /// or until this connection closes.
    Claim {
        key: Key,
        host: String,
        pid: u32,
    },
    Release {
        key: Key,
    },
    /// Block until the claim on `key` is gone or its entry is stored:
    /// [`Resp::Flag`], `false` on timeout.
    Wait {
        key: Key,
        timeout_ms: Option<u64>,
    },
    Remove {
        key: Key,
    },
    /// [`Resp::Listed`] per entry, then [`Resp::End`].
    List {
        namespace: Option<String>,
    },
    /// Count an event. No reply: `Counters`, `ResetCounters`, `List` and
    /// `Status` first wait
    /// until connections whose client hung up are read to their end.
    Record {
        namespace: String,
        key: Key,
        event: Ev,
    },
    Counters,
    ResetCounters,
    OncePer {
        what: String,
        interval_ms: u64,
    },
    /// Test only (`cachier daemon debug-age`): make every entry older.
    DebugAge {
        ms: u64,
    },
    /// Test only (`cachier daemon debug-damage`): cut every body short, or
    /// flip its first byte.
    DebugDamage {
        truncate: bool,
    },
    /// A server store's entry of `key`, looked up on a connection the
    /// daemon keeps (`store/pool`); `target` says which store, credentials
    /// and all: [`Resp::Pooled`], [`Resp::Missing`] or [`Resp::PoolFailed`].
    PoolGet {
        target: ByteBuf,
        key: Key,
    },
    /// The body of the entry the last `PoolGet` found, if that was of
    /// `key`: [`Resp::PoolBody`] with its descriptor, or [`Resp::PoolFailed`].
    PoolBody {
        key: Key,
    },
    /// Count one replay's events in `target`'s store. No reply, so a hit
    /// does not wait for the server's count: what reads counts from the
    /// server first sends `PoolSettle`.
    PoolRecord {
        target: ByteBuf,
        namespace: String,
        key: Key,
        events: Vec<Ev>,
    },
    /// Wait (as `Counters` does) until every connection whose client hung
    /// up is read to its end, its `PoolRecord`s counted: [`Resp::Done`].
    PoolSettle,
    /// Watch `tree` (`crate::watch`), if not yet: [`Resp::Unchanged`] with
    /// what was remembered for `name` if nothing in the tree changed since
    /// and `outside` (what the client found outside it) is as it was then,
    /// else [`Resp::Watching`], or [`Resp::Unwatchable`].
    Watch {
        tree: Tree,
        name: String,
        outside: ByteBuf,
    },
    /// Remember `record` for `name` and `outside` if nothing in `tree`
    /// changed since `generation`. No reply.
    Remember {
        tree: Tree,
        name: String,
        outside: ByteBuf,
        generation: u64,
        record: ByteBuf,
    },
}

#[derive(Serialize, Deserialize)]
pub enum Resp {
    Hello {
        protocol: u32,
        version: String,
        pid: u32,
    },
    Refused {
        why: String,
    },
    Done,
    Error {
        why: String,
    },
    Status(Box<Status>),
    Found {
        meta: ByteBuf,
        created_ms: u64,
        /// Bytes of the body (stdout then stderr).
        len: u64,
        /// The body itself, when it is at most [`INLINE`] bytes.
        inline: Option<ByteBuf>,
    },
    Missing,
    /// The body, as the descriptor of a sealed memfd that comes with this
    /// frame (`SCM_RIGHTS`).
    BodyFd {
        len: u64,
    },
    End,
    /// `kept` is false when the entry was larger than the memory cap.
    Stored {
        kept: bool,
    },
    Owner,
    Busy {
        host: String,
        pid: u32,
    },
    Flag(bool),
    Removed(u64),
    Listed {
        meta: ByteBuf,
        created_ms: u64,
        last_used_ms: u64,
        hits: u64,
        size: u64,
    },
    /// Per namespace: entries, bytes, hits, misses, waits, stale serves, saved ms.
    Counters(Vec<(String, [u64; 7])>),
    /// A pooled store's entry: its metadata as the store decoded it; a
    /// small body (at most [`INLINE`] bytes) as a descriptor that comes
    /// with this frame, its output starting at `start`.
    Pooled {
        meta: ByteBuf,
        stale_after_ms: Option<u64>,
        start: Option<u64>,
    },
    /// A pooled store's body, as a descriptor that comes with this frame,
    /// the output starting at `start`.
    PoolBody {
        start: u64,
    },
    /// A pooled store's call failed: `outage` when a fresh connection could
    /// not reach the server either; `corrupt` (the key, why) when the entry
    /// is damaged.
    PoolFailed {
        why: String,
        outage: bool,
        corrupt: Option<(String, String)>,
    },
    /// What was remembered for a watched tree that did not change since.
    Unchanged {
        record: ByteBuf,
    },
    /// What was remembered for a watched tree whose changes since all lie
    /// in files directly in `dirs` (no directory made, moved or removed);
    /// the tree is at `generation` now.
    Changed {
        record: ByteBuf,
        dirs: Vec<ByteBuf>,
        generation: u64,
    },
    /// The tree is watched; any change from now on moves it past `generation`.
    Watching {
        generation: u64,
    },
    /// The tree cannot be watched (why, for `--verbose`).
    Unwatchable {
        why: String,
    },
}

pub use super::status::Status;

/// Encode `msg` as one frame into `buf` and send it whole. No SIGPIPE: a
/// closed peer is an `EPIPE` error.
pub fn send<T: Serialize>(fd: impl AsFd, buf: &mut Vec<u8>, msg: &T) -> io::Result<()> {
    buf.clear();
    encode(buf, msg)?;
    send_all(fd, buf)
}

/// Append `msg` as one frame to `buf`.
pub fn encode<T: Serialize>(buf: &mut Vec<u8>, msg: &T) -> io::Result<()> {
    let at = buf.len();
    buf.extend_from_slice(&[0; 4]);
    ciborium::into_writer(msg, &mut *buf).map_err(io::Error::other)?;
    let len = buf.len() - at - 4;
    if len > MAX_FRAME {
        buf.truncate(at);
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message too large for the memory daemon",
        ));
    }
    buf[at..at + 4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(())
}

/// Send all of `bytes`, without SIGPIPE.
pub fn send_all(fd: impl AsFd, bytes: &[u8]) -> io::Result<()> {
    let mut sent = 0;
    while sent < bytes.len() {
        match rustix::net::send(&fd, &bytes[sent..], rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) => sent += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Read one frame; `None` at a clean end of stream before it.
pub fn recv<T: DeserializeOwned>(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<T>> {
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut head[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(head) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit"),
        ));
    }
    buf.clear();
    buf.resize(len, 0);
    r.read_exact(buf)?;
    ciborium::from_reader(&buf[..])
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// A duration in whole milliseconds, as the protocol carries them
/// (saturating: none this long is ever meant).
pub fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_round_trips_and_a_huge_length_is_refused() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut buf = Vec::new();
        send(&a, &mut buf, &Req::Get { key: Key([7; 32]) }).unwrap();
        let got: Req = recv(&mut &b, &mut buf).unwrap().unwrap();
        assert!(matches!(got, Req::Get { key } if key == Key([7; 32])));
        rustix::net::send(&a, &[0xff; 8], rustix::net::SendFlags::empty()).unwrap();
        let got = recv::<Req>(&mut &b, &mut buf);
        assert!(got.is_err_and(|e| e.kind() == io::ErrorKind::InvalidData));
    }
}
