//! The session's socket, made here rather than by the client so that every
//! byte it moves is seen: a step (TLS, startup, authentication, a
//! statement) is cut when no byte has moved for its deadline, however long
//! a server that keeps answering takes.
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::Config;
use tokio_postgres::config::Host;

/// When a byte last moved on a socket, in either direction.
pub struct Watch {
    base: Instant,
    last_ms: AtomicU64,
}

impl Watch {
    pub fn new() -> Arc<Watch> {
        Arc::new(Watch {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn moved(&self) {
        let ms = self.base.elapsed().as_millis().min(u64::MAX as u128) as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// How long no byte has moved, counting from `since` at the earliest.
    pub fn quiet(&self, since: Instant) -> Duration {
        let last = self.base + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        Instant::now().saturating_duration_since(last.max(since))
    }
}

enum Raw {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A TCP or Unix socket that tells its [`Watch`] whenever bytes move.
pub struct Watched {
    raw: Raw,
    watch: Arc<Watch>,
}

impl Watched {
    fn note<T>(&self, done: &Poll<io::Result<T>>, moved: bool) {
        if moved && matches!(done, Poll::Ready(Ok(_))) {
            self.watch.moved();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let done = match &mut me.raw {
            Raw::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Raw::Unix(s) => Pin::new(s).poll_read(cx, buf),
        };
        me.note(&done, buf.filled().len() > before);
        done
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let done = match &mut me.raw {
            Raw::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Raw::Unix(s) => Pin::new(s).poll_write(cx, buf),
        };
        me.note(&done, matches!(done, Poll::Ready(Ok(n)) if n > 0));
        done
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().raw {
            Raw::Tcp(s) => Pin::new(s).poll_flush(cx),
            Raw::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().raw {
            Raw::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Raw::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Where to connect: what `config` lists, in order, as (address, port,
/// host name for TLS).
pub fn targets(config: &Config) -> Vec<(Host, u16, Option<String>)> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let ports = config.get_ports();
    (0..hosts.len().max(addrs.len()))
        .map(|i| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let name = match hosts.get(i) {
                Some(Host::Tcp(h)) => Some(h.clone()),
                _ => None,
            };
            let addr = match (addrs.get(i), hosts.get(i)) {
                (Some(ip), _) => Host::Tcp(ip.to_string()),
                (None, Some(host)) => host.clone(),
                (None, None) => Host::Tcp("localhost".into()),
            };
            (addr, port, name)
        })
        .collect()
}

/// Connect to `host`:`port` (each address a name resolves to, in turn),
/// within `limit` in all, with `config`'s keepalive settings.
pub async fn open(
    host: &Host,
    port: u16,
    config: &Config,
    limit: Duration,
    watch: &Arc<Watch>,
) -> io::Result<Watched> {
    let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "connection timed out");
    let raw = match host {
        Host::Tcp(name) => {
            let stream = tokio::time::timeout(limit, TcpStream::connect((name.as_str(), port)))
                .await
                .map_err(|_| timed_out())??;
            tune(&stream, config)?;
            Raw::Tcp(stream)
        }
        Host::Unix(dir) => {
            let path = dir.join(format!(".s.PGSQL.{port}"));
            let stream = tokio::time::timeout(limit, UnixStream::connect(path))
                .await
                .map_err(|_| timed_out())??;
            Raw::Unix(stream)
        }
    };
    Ok(Watched {
        raw,
        watch: watch.clone(),
    })
}

/// No Nagle delay; keepalives and the TCP user timeout as `config` says.
fn tune(stream: &TcpStream, config: &Config) -> io::Result<()> {
    use rustix::net::sockopt;
    stream.set_nodelay(true)?;
    // (Linux only; elsewhere keepalives and the statements' deadlines
    // notice a dead host.)
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(t) = config.get_tcp_user_timeout() {
        sockopt::set_tcp_user_timeout(stream, t.as_millis().min(u32::MAX as u128) as u32)?;
    }
    if config.get_keepalives() {
        sockopt::set_socket_keepalive(stream, true)?;
        sockopt::set_tcp_keepidle(stream, config.get_keepalives_idle())?;
        if let Some(t) = config.get_keepalives_interval() {
            sockopt::set_tcp_keepintvl(stream, t)?;
        }
        if let Some(n) = config.get_keepalives_retries() {
            sockopt::set_tcp_keepcnt(stream, n)?;
        }
    }
    Ok(())
}
