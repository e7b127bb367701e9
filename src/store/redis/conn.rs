//! Where the Redis store is and how it is reached: the URL list parsed once
//! (never printed with its password), the main connection (one server, or a
//! cluster client), and plain connections to one node (for pub/sub) or to
//! every cluster master (for SCAN).
use std::time::Duration;

use crate::store::breaker::outage;
use anyhow::{Result, anyhow};
use redis::cluster::{ClusterClientBuilder, ClusterConnection};
use redis::{
    Client, Connection, ConnectionAddr, ConnectionInfo, ConnectionLike, IntoConnectionInfo,
    RedisResult,
};

/// How long one connection attempt may take; a closed port fails at once.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long connecting to a cluster may take in all: its client tries the
/// seeds one after another, each up to [`CONNECT_TIMEOUT`] per reply, so
/// hung seeds would otherwise cost about 2 s each.
const CLUSTER_CONNECT: Duration = Duration::from_millis(2500);
/// How long one command may wait for its reply before the store gives up.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL used when none is given.
pub use super::DEFAULT_URL;

/// One server, or the seed nodes of a cluster. Cheap to clone, sendable to
/// a lease's heartbeat thread.
#[derive(Clone)]
pub struct Target {
    nodes: Vec<ConnectionInfo>,
    cluster: bool,
    place: String,
}

/// The main connection: to the one server, or a cluster client that routes
/// each command to the master of its key's slot.
pub enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    pub fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

impl Target {
    /// Parse a URL, or a comma-separated list of node URLs (a cluster); no I/O.
    pub fn parse(urls: &str) -> Result<Target, String> {
        let list: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if list.is_empty() {
            return Err(format!("the Redis URL is empty; write e.g. {DEFAULT_URL}"));
        }
        let mut nodes = Vec::new();
        for url in &list {
            if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                return Err(format!(
                    "`{}` is not a Redis URL; write redis://[user:pass@]host:port/db, \
                     rediss://... for TLS, or a comma-separated list for a cluster",
                    redact(url)
                ));
            }
            let info = url
                .into_connection_info()
                .map_err(|e| format!("bad Redis URL {}: {}", redact(url), scrub(&e, url)))?;
            nodes.push(info);
        }
        let cluster = nodes.len() > 1;
        let place = nodes
            .iter()
            .map(|n| place(n, !cluster))
            .collect::<Vec<_>>()
            .join(",");
        Ok(Target {
            nodes,
            cluster,
            place,
        })
    }

    /// `redis://host:port/db` (or the list of nodes), never with a password.
    pub fn place(&self) -> &str {
        &self.place
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The main connection.
    pub fn connect(&self) -> Result<Conn> {
        let made = if self.cluster {
            cluster_within(self.nodes.clone(), CLUSTER_CONNECT).map(|c| Conn::Cluster(Box::new(c)))
        } else {
            plain(&self.nodes[0]).map(Conn::Single)
        };
        made.map_err(|e| self.unreachable(&e))
    }

    /// A connection to one node: the first seed that answers.
    pub fn node(&self) -> Result<Connection> {
        let mut last = None;
        for info in &self.nodes {
            match plain(info) {
                Ok(c) => return Ok(c),
                Err(e) => last = Some(e),
            }
        }
        Err(match last {
            Some(e) => self.unreachable(&e),
            None => anyhow!("no Redis node to reach"),
        })
    }

    /// A connection to every master: the one server, or each master the
    /// cluster lists (`CLUSTER NODES`).
    pub fn masters(&self) -> Result<Vec<Connection>> {
        let mut seed = self.node()?;
        if !self.cluster {
            return Ok(vec![seed]);
        }
        let text: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut seed)
            .map_err(|e| self.failed(&e))?;
        let mut out = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
                continue;
            };
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                continue;
            }
            let addr = addr.split('@').next().unwrap_or("");
            let Some((host, port)) = addr.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            let info = with_addr(&self.nodes[0], host, port);
            out.push(plain(&info).map_err(|e| self.unreachable(&e))?);
        }
        if out.is_empty() {
            return Err(anyhow!(
                "the Redis Cluster at {} lists no masters; check `redis-cli cluster nodes`",
                self.place
            ));
        }
        Ok(out)
    }

    /// Refused, silent, TLS or authentication: an outage.
    fn unreachable(&self, e: &redis::RedisError) -> anyhow::Error {
        outage(self.unreachable_text(e))
    }

    fn unreachable_text(&self, e: &redis::RedisError) -> anyhow::Error {
        if e.is_timeout() {
            let within = if self.cluster {
                CLUSTER_CONNECT
            } else {
                CONNECT_TIMEOUT
            };
            return anyhow!(
                "cannot reach Redis at {}: no answer within {} s",
                self.place,
                within.as_secs_f64()
            );
        }
        let why = self.scrubbed(e);
        let hint = if why.contains("certificate") {
            " (trust its CA with SSL_CERT_FILE=/path/ca.pem, or end the URL with #insecure)"
        } else {
            ""
        };
        anyhow!("cannot reach Redis at {}: {why}{hint}", self.place)
    }

    /// An operation that failed, named with the server, never its password.
    /// A lost or silent server is an outage (the breaker counts it); a
    /// refused command (NOPERM, a wrong type) is not.
    pub fn failed(&self, e: &redis::RedisError) -> anyhow::Error {
        if e.is_timeout() {
            return outage(anyhow!(
                "Redis at {} did not answer within {} s",
                self.place,
                OP_TIMEOUT.as_secs()
            ));
        }
        let err = anyhow!("Redis at {}: {}", self.place, self.scrubbed(e));
        if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
            outage(err)
        } else {
            err
        }
    }

    /// `e`'s text on one line, without any password of ours.
    fn scrubbed(&self, e: &redis::RedisError) -> String {
        let mut text = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        for n in &self.nodes {
            if let Some(pw) = n.redis_settings().password().filter(|p| !p.is_empty()) {
                text = text.replace(pw, "***");
            }
        }
        text
    }
}

/// A cluster client, connected within `limit` in all (past it, the attempt
/// is left to end on its own, bounded by its own timeouts).
fn cluster_within(nodes: Vec<ConnectionInfo>, limit: Duration) -> RedisResult<ClusterConnection> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let made = ClusterClientBuilder::new(nodes)
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(OP_TIMEOUT)
            .retries(1)
            .build()
            .and_then(|c| c.get_connection());
        let _ = tx.send(made);
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| {
        let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer");
        Err(late.into())
    })
}

/// A plain connection to one node with the store's timeouts.
fn plain(info: &ConnectionInfo) -> RedisResult<Connection> {
    let conn = Client::open(info.clone())?.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    conn.set_read_timeout(Some(OP_TIMEOUT))?;
    conn.set_write_timeout(Some(OP_TIMEOUT))?;
    Ok(conn)
}

/// `info` (its credentials, TLS settings) pointed at `host:port`.
fn with_addr(info: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let host = if host.is_empty() {
        match info.addr() {
            ConnectionAddr::Tcp(h, _) | ConnectionAddr::TcpTls { host: h, .. } => h.as_str(),
            _ => "127.0.0.1",
        }
    } else {
        host
    };
    let addr = match info.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_string(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_string(), port),
    };
    info.clone().set_addr(addr)
}

fn place(info: &ConnectionInfo, with_db: bool) -> String {
    let (scheme, addr) = match info.addr() {
        ConnectionAddr::Tcp(h, p) => ("redis", format!("{h}:{p}")),
        ConnectionAddr::TcpTls { host, port, .. } => ("rediss", format!("{host}:{port}")),
        ConnectionAddr::Unix(path) => ("redis+unix", path.display().to_string()),
        other => ("redis", other.to_string()),
    };
    if with_db {
        format!("{scheme}://{addr}/{}", info.redis_settings().db())
    } else {
        format!("{scheme}://{addr}")
    }
}

/// `url` without its user and password, for a message about a bad URL.
pub fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return "(unparsable URL)".to_string();
    };
    let rest = &url[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// `e`'s text without anything of `url`'s user-info part.
fn scrub(e: &redis::RedisError, url: &str) -> String {
    let text = e.to_string();
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return text;
    };
    let rest = &url[start..];
    let end = rest.find('/').unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) if at > 0 => text.replace(&rest[..at], "***"),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_never_show_a_password() {
        let t = Target::parse("redis://me:hunter2@127.0.0.1:7000/3").unwrap();
        assert_eq!(t.place(), "redis://127.0.0.1:7000/3");
        let t = Target::parse("redis://:pw@a:1, rediss://:pw@b:2").unwrap();
        assert_eq!(t.place(), "redis://a:1,rediss://b:2");
        assert!(t.cluster);
        let e = Target::parse("http://me:hunter2@x:1/0").err().unwrap();
        assert!(!e.contains("hunter2"), "{e}");
        assert_eq!(redact("redis://u:p@h:1/0"), "redis://h:1/0");
    }
}
