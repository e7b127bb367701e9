//! The client side of a connection to the memory daemon: the hello, and
//! requests and replies (one carrying a descriptor). Replies are awaited at
//! most [`REPLY_TIMEOUT`] (a `Wait` as long as the caller asked).
pub use super::start::{
    START_TIMEOUT, Start, await_exit, connect, connect_fast, running, terminate,
};
use std::io::{self, BufReader, IoSliceMut, Read};
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use super::paths;
use super::proto::{self, Req, Resp};

/// How long a reply may take (not a `Wait`): a stuck daemon is an error.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    /// The socket, read through a buffer, written directly.
    input: BufReader<UnixStream>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    /// The daemon's pid.
    pub pid: u32,
    /// A send or receive failed: the connection is unusable.
    pub broken: bool,
    /// Our hello is sent (or in `out`, waiting for the first request), its
    /// answer not read yet.
    pending_hello: bool,
    hello_sent: bool,
    /// The daemon refused us or hung up before serving anything: connect
    /// again (through [`connect`]) and repeat.
    pub retry: bool,
    /// How long the answer to our hello may take, if not as long as any
    /// reply (a client that would rather go elsewhere than wait).
    pub hello_limit: Option<Duration>,
}

pub(super) enum Attempt {
    Ready(Conn),
    Absent,
    /// A daemon of another version: why, and its pid.
    Mismatch(String),
}

impl Conn {
    /// A connection whose hello is yet to be sent and answered.
    fn new(stream: UnixStream) -> Conn {
        Conn {
            input: BufReader::with_capacity(64 * 1024, stream),
            out: Vec::new(),
            inbuf: Vec::new(),
            pid: 0,
            broken: false,
            pending_hello: true,
            hello_sent: false,
            retry: false,
            hello_limit: None,
        }
    }

    /// Send `req` (with our hello, the first time: one write, one wake-up).
    pub fn send(&mut self, req: &Req) -> Result<()> {
        if !self.hello_sent {
            self.hello_sent = true;
        } else {
            self.out.clear();
        }
        let sent = proto::encode(&mut self.out, req)
            .and_then(|()| proto::send_all(self.input.get_ref(), &self.out));
        if sent.is_err() {
            self.broken = true;
            self.retry |= self.pending_hello;
        }
        sent.map_err(lost)
    }

    /// The next reply (after the daemon's answer to our hello, if pending).
    pub fn recv(&mut self) -> Result<Resp> {
        self.settle()?;
        self.recv_raw()
    }

    /// Read the daemon's answer to our hello, if not done yet; a daemon that
    /// refuses us (or hangs up) sets `retry`: nothing we sent was served.
    pub fn settle(&mut self) -> Result<()> {
        if !self.pending_hello {
            return Ok(());
        }
        if !self.hello_sent {
            self.hello_sent = true;
            if let Err(e) = proto::send_all(self.input.get_ref(), &self.out) {
                self.broken = true;
                self.retry = true;
                return Err(lost(e));
            }
        }
        self.pending_hello = false;
        let read = match self.hello_limit {
            Some(limit) => {
                let read = self
                    .reply_timeout(Some(limit))
                    .and_then(|()| self.read_hello());
                self.reply_timeout(Some(REPLY_TIMEOUT))?;
                read
            }
            None => self.read_hello(),
        };
        match read {
            Ok(None) => Ok(()),
            Ok(Some(why)) => {
                self.broken = true;
                self.retry = true;
                Err(anyhow!(why))
            }
            Err(e) => {
                self.retry = true;
                Err(e)
            }
        }
    }

    /// `None` when the daemon speaks our protocol, else why not.
    fn read_hello(&mut self) -> Result<Option<String>> {
        let mine = proto::protocol();
        match self.recv_exact()? {
            Resp::Hello { protocol, pid, .. } if protocol == mine => {
                self.pid = pid;
                Ok(None)
            }
            Resp::Hello {
                protocol, version, ..
            } => Ok(Some(format!(
                "the memory daemon runs cachier {version} (protocol {protocol}); this is cachier {} (protocol {mine})",
                env!("CARGO_PKG_VERSION")
            ))),
            Resp::Refused { why } => Ok(Some(why)),
            _ => Err(unexpected()),
        }
    }

    fn recv_raw(&mut self) -> Result<Resp> {
        let got = proto::recv(&mut self.input, &mut self.inbuf);
        self.reply(got)
    }

    fn reply(&mut self, got: io::Result<Option<Resp>>) -> Result<Resp> {
        match got {
            Ok(Some(Resp::Error { why })) => Err(anyhow!("the memory daemon says: {why}")),
            Ok(Some(resp)) => Ok(resp),
            Ok(None) => {
                self.broken = true;
                Err(lost(io::ErrorKind::UnexpectedEof.into()))
            }
            Err(e) => {
                self.broken = true;
                Err(lost(e))
            }
        }
    }

    /// The next reply, read to its last byte and no further: a reply that
    /// follows at once may carry a descriptor, which only `recv_fd`'s
    /// `recvmsg` receives (a buffered read would take its bytes and drop
    /// the descriptor).
    fn recv_exact(&mut self) -> Result<Resp> {
        if !self.input.buffer().is_empty() {
            return self.recv_raw();
        }
        let got = proto::recv(self.input.get_mut(), &mut self.inbuf);
        self.reply(got)
    }

    /// The next reply, with the descriptor that comes with it (if any).
    pub fn recv_fd(&mut self) -> Result<(Resp, Option<OwnedFd>)> {
        self.settle()?;
        if !self.input.buffer().is_empty() {
            self.broken = true;
            return Err(unexpected());
        }
        // The descriptor rides on the frame's first bytes: read them with
        // recvmsg, the rest as usual.
        let mut head = [0u8; 4];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let got = loop {
            let mut iov = [IoSliceMut::new(&mut head)];
            match rustix::net::recvmsg(
                self.input.get_ref(),
                &mut iov,
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Ok(msg) => break msg.bytes,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(lost(e.into()));
                }
            }
        };
        let mut fd = None;
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = msg {
                for one in fds {
                    fd.get_or_insert(one);
                }
            }
        }
        if got == 0 {
            self.broken = true;
            return Err(lost(io::ErrorKind::UnexpectedEof.into()));
        }
        let mut frame = head[..got].to_vec();
        let resp = (|| {
            let mut rest = [0u8; 4];
            self.input.read_exact(&mut rest[..4 - got])?;
            frame.extend_from_slice(&rest[..4 - got]);
            proto::recv(&mut (&frame[..]).chain(&mut self.input), &mut self.inbuf)
        })();
        match resp {
            Ok(Some(Resp::Error { why })) => Err(anyhow!("the memory daemon says: {why}")),
            Ok(Some(resp)) => Ok((resp, fd)),
            Ok(None) => Err(unexpected()),
            Err(e) => {
                self.broken = true;
                Err(lost(e))
            }
        }
    }

    pub fn call(&mut self, req: &Req) -> Result<Resp> {
        self.send(req)?;
        self.recv()
    }

    /// How long a reply may take; `None` waits for ever.
    pub fn reply_timeout(&self, t: Option<Duration>) -> Result<()> {
        self.input
            .get_ref()
            .set_read_timeout(t.filter(|t| !t.is_zero()))?;
        Ok(())
    }
}

fn lost(e: io::Error) -> anyhow::Error {
    anyhow!("lost the connection to the memory daemon ({e}); the next run starts a new one")
}

pub fn unexpected() -> anyhow::Error {
    anyhow!("the memory daemon sent an unexpected reply")
}

/// Connect to the running daemon and send our hello, without awaiting the
/// answer (it comes before the reply to our first request); `None` when no
/// daemon listens.
pub(super) fn open(dir: &Path) -> Result<Option<Conn>> {
    let socket = paths::socket(dir);
    let stream = match UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot connect to the memory daemon at {}",
                    socket.display()
                )
            });
        }
    };
    // Whatever listens there must run as us: never tell another user's
    // process what we run.
    let me = rustix::process::getuid();
    let peer = rustix::net::sockopt::socket_peercred(&stream)?;
    if peer.uid != me {
        bail!(
            "{} is served by uid {}, not by you (uid {}); refusing it",
            socket.display(),
            peer.uid.as_raw(),
            me.as_raw()
        );
    }
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    let mut conn = Conn::new(stream);
    // Goes out with the first request.
    proto::encode(
        &mut conn.out,
        &Req::Hello {
            protocol: proto::protocol(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
    )?;
    Ok(Some(conn))
}

/// Connect to the running daemon and await its answer to our hello.
pub(super) fn attempt(dir: &Path) -> Result<Attempt> {
    let Some(mut conn) = open(dir)? else {
        return Ok(Attempt::Absent);
    };
    conn.hello_sent = true;
    let sent = proto::send_all(conn.input.get_ref(), &conn.out);
    if sent.is_err() {
        return Ok(Attempt::Absent);
    }
    conn.pending_hello = false;
    match conn.read_hello() {
        Ok(None) => Ok(Attempt::Ready(conn)),
        Ok(Some(why)) => Ok(Attempt::Mismatch(why)),
        // Hung up at once: a daemon on its way out.
        Err(_) if conn.broken => Ok(Attempt::Absent),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{IoSlice, Write};

    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

    use super::*;

    /// A daemon quick enough that its answer to our hello and its reply
    /// with a descriptor are both queued before we read: the descriptor
    /// still arrives (a buffered read of the hello took the reply's bytes
    /// and dropped the descriptor).
    #[test]
    fn a_descriptor_right_behind_the_hello_arrives() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let mut frame = Vec::new();
        let hello = Resp::Hello {
            protocol: proto::protocol(),
            version: String::new(),
            pid: 7,
        };
        proto::encode(&mut frame, &hello).unwrap();
        (&theirs).write_all(&frame).unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"body").unwrap();
        frame.clear();
        proto::encode(&mut frame, &Resp::Done).unwrap();
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let fds = [std::os::fd::AsFd::as_fd(&file)];
        assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
        let sent = rustix::net::sendmsg(
            &theirs,
            &[IoSlice::new(&frame)],
            &mut control,
            SendFlags::empty(),
        )
        .unwrap();
        assert_eq!(sent, frame.len());
        ours.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut conn = Conn::new(ours);
        conn.hello_sent = true;
        let (resp, fd) = conn.recv_fd().unwrap();
        assert!(matches!(resp, Resp::Done));
        assert_eq!(conn.pid, 7);
        let mut got = String::new();
        let mut body = std::fs::File::from(fd.unwrap());
        std::io::Seek::rewind(&mut body).unwrap();
        body.read_to_string(&mut got).unwrap();
        assert_eq!(got, "body");
    }
}
