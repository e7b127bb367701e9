//! The store's HTTP side: requests signed with SigV4 by `rusty-s3` (query
//! string signatures, the condition and range headers signed too), sent
//! by `ureq` with a deadline on every step, throttling (503 SlowDown, 500)
//! retried with a bounded backoff, and errors in one line that never hold
//! a signature, a session token or a secret.
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{Result, anyhow};
use rusty_s3::{Bucket, Credentials, S3Action};
use ureq::Agent;

use super::S3Config;
use super::creds;
pub use super::text::{redact, tag};
use crate::store::breaker::{is_outage, outage};
use crate::store::lazy::{After, Lazy as Once};

/// How long a TCP (and TLS) connect may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the server may take to answer one request once it was sent:
/// a server that hangs costs a run this once (then it is not asked again).
pub const OP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a part's upload or an upload's completion may take to be
/// answered once sent (S3 may take minutes to complete a big upload).
pub const SLOW_ANSWER: Duration = Duration::from_secs(300);
/// How long sending or receiving one body (a part, a range) may take.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a throttled request (503 SlowDown, 500) is tried again, with
/// a backoff doubling from [`BACKOFF`]: at most 0.1+0.2+0.4+0.8 s in all.
pub const RETRIES: u32 = 4;
pub const BACKOFF: Duration = Duration::from_millis(100);
/// How long a signed URL stays valid: just past one request's deadlines.
const EXPIRY: Duration = Duration::from_secs(300);

/// The client of one bucket: cheap to clone (a heartbeat thread has one).
#[derive(Clone)]
pub struct Conn {
    agent: Agent,
    /// For the requests a server may think about long after the body is
    /// in (a part's checksum, completing an upload of many parts).
    patient: Agent,
    pub bucket: Bucket,
    pub creds: Credentials,
    /// `s3://bucket/prefix (endpoint)`, for messages.
    pub place: String,
}

/// A reply, headers read; the body is left to the caller.
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub date: Option<String>,
    /// The object's whole size, from `Content-Range` (ranged GETs).
    pub total: Option<u64>,
    /// `Content-Length` (a HEAD's is the object's size).
    pub length: Option<u64>,
    pub body: ureq::Body,
}

impl Reply {
    /// The body, at most `limit` bytes (replies we parse are small).
    pub fn text(&mut self, limit: u64) -> Result<String> {
        let mut out = String::new();
        self.body
            .as_reader()
            .take(limit)
            .read_to_string(&mut out)
            .map_err(|e| anyhow!("the reply could not be read: {}", redact(&e.to_string())))?;
        Ok(out)
    }

    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// How old the object is by the server's clock alone: its
    /// `Last-Modified` against the reply's `Date` (never this machine's
    /// clock); `None` if either is missing.
    pub fn age(&self) -> Option<Duration> {
        server_age(self.date.as_deref()?, self.last_modified.as_deref()?)
    }
}

/// `date` minus `modified`, both HTTP dates; zero if `modified` is later.
fn server_age(date: &str, modified: &str) -> Option<Duration> {
    let at = |d: &str| jiff::fmt::rfc2822::parse(d).ok().map(|z| z.timestamp());
    let (now, then) = (at(date)?, at(modified)?);
    Some(if now > then {
        now.duration_since(then).unsigned_abs()
    } else {
        Duration::ZERO
    })
}

/// One header of the request, signed with it.
pub type Header = (&'static str, String);

/// What a request carries: bytes, or a whole file, sent from its start
/// each time it is tried (a part is staged in a file, not in memory).
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    Bytes(&'a [u8]),
    File(&'a File),
}

/// Build a signed URL for `action` with `headers` signed in.
pub fn sign<'a, A: S3Action<'a>>(mut action: A, headers: &[Header]) -> url::Url {
    for (k, v) in headers {
        action.headers_mut().insert(*k, v.clone());
    }
    action.sign(EXPIRY)
}

impl Conn {
    pub fn new(config: &S3Config, creds: Credentials) -> Result<Conn> {
        let bucket = bucket(config)?;
        let agent = |answer: Duration| -> Agent {
            Agent::config_builder()
                .http_status_as_error(false)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_resolve(Some(CONNECT_TIMEOUT))
                .timeout_send_request(Some(OP_TIMEOUT))
                .timeout_send_body(Some(BODY_TIMEOUT))
                .timeout_recv_response(Some(answer))
                .timeout_recv_body(Some(BODY_TIMEOUT))
                .max_idle_connections_per_host(4)
                .build()
                .into()
        };
        Ok(Conn {
            agent: agent(OP_TIMEOUT),
            patient: agent(SLOW_ANSWER),
            bucket,
            creds,
            place: config.place(),
        })
    }

    /// Send `method url` with `headers` and `body`; throttling is retried.
    pub fn send(
        &self,
        method: &str,
        url: &url::Url,
        headers: &[Header],
        body: &[u8],
    ) -> Result<Reply> {
        self.retried(&self.agent, method, url, headers, Payload::Bytes(body))
    }

    /// [`Conn::send`], waiting up to [`SLOW_ANSWER`] for the answer.
    pub fn send_slow(&self, method: &str, url: &url::Url, body: &[u8]) -> Result<Reply> {
        self.retried(&self.patient, method, url, &[], Payload::Bytes(body))
    }

    /// PUT the whole of `file`, waiting up to [`SLOW_ANSWER`] for the
    /// answer when `slow`.
    pub fn put_file(&self, url: &url::Url, file: &File, slow: bool) -> Result<Reply> {
        let agent = if slow { &self.patient } else { &self.agent };
        self.retried(agent, "PUT", url, &[], Payload::File(file))
    }

    fn retried(
        &self,
        agent: &Agent,
        method: &str,
        url: &url::Url,
        headers: &[Header],
        body: Payload,
    ) -> Result<Reply> {
        let mut pause = BACKOFF;
        let mut tries = 0;
        loop {
            let reply = self.once(agent, method, url, headers, body)?;
            let throttled = matches!(reply.status, 500 | 503);
            if !throttled || tries >= RETRIES {
                return Ok(reply);
            }
            tries += 1;
            std::thread::sleep(pause);
            pause *= 2;
        }
    }

    fn once(
        &self,
        agent: &Agent,
        method: &str,
        url: &url::Url,
        headers: &[Header],
        body: Payload,
    ) -> Result<Reply> {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(url.as_str());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let built = |e: ureq::http::Error| {
            anyhow!("cannot build an S3 request: {}", redact(&e.to_string()))
        };
        let resp = match body {
            Payload::Bytes(bytes) => agent.run(req.body(bytes).map_err(built)?),
            Payload::File(mut file) => {
                file.seek(SeekFrom::Start(0))
                    .map_err(|e| anyhow!("cannot read the staged output again: {e}"))?;
                agent.run(req.body(file).map_err(built)?)
            }
        }
        .map_err(|e| self.unreachable(&e))?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let total = header("content-range")
            .and_then(|r| r.rsplit_once('/').and_then(|(_, n)| n.parse().ok()));
        Ok(Reply {
            status: resp.status().as_u16(),
            etag: header("etag"),
            last_modified: header("last-modified"),
            date: header("date"),
            total,
            length: header("content-length").and_then(|n| n.parse().ok()),
            body: resp.into_body(),
        })
    }

    /// Why the server could not be reached, in one line.
    fn unreachable(&self, e: &ureq::Error) -> anyhow::Error {
        let why = match e {
            ureq::Error::Timeout(ureq::Timeout::RecvBody | ureq::Timeout::SendBody) => {
                format!("no progress within {} s", BODY_TIMEOUT.as_secs())
            }
            ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
                format!("no connection within {} s", CONNECT_TIMEOUT.as_secs())
            }
            ureq::Error::Timeout(_) => format!("no answer within {} s", OP_TIMEOUT.as_secs()),
            ureq::Error::Io(io) => io.to_string(),
            other => other.to_string(),
        };
        outage(anyhow!(
            "cannot reach S3 at {}: {}",
            self.place,
            redact(&why)
        ))
    }

    /// An error for a reply the store did not expect, naming S3's code.
    pub fn refused(&self, what: &str, reply: &mut Reply) -> anyhow::Error {
        let text = reply.text(4096).unwrap_or_default();
        let code = tag(&text, "Code").unwrap_or_default();
        let hint = match (reply.status, code.as_str()) {
            (404, "NoSuchBucket") => " (the bucket does not exist: create it, or fix --s3-url)",
            (403, _) => " (access denied: check the credentials and the bucket's policy)",
            (301 | 307 | 400, _) if code.contains("Region") || code == "PermanentRedirect" => {
                " (wrong region: set AWS_REGION)"
            }
            _ => "",
        };
        let code = if code.is_empty() {
            String::new()
        } else {
            format!(" {code}")
        };
        let err = anyhow!(
            "S3 at {} refused to {what}: HTTP {}{code}{hint}",
            self.place,
            reply.status
        );
        if reply.status == 403 || (reply.status == 404 && !hint.is_empty()) {
            anyhow!(TurnedAway(format!("{err:#}")))
        } else {
            err
        }
    }
}

/// The bucket of `config`, addressed as configured, in the region.
fn bucket(config: &S3Config) -> Result<Bucket> {
    let region = creds::region();
    let endpoint = config
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let style = match config.path_style.unwrap_or(config.endpoint.is_some()) {
        true => rusty_s3::UrlStyle::Path,
        false => rusty_s3::UrlStyle::VirtualHost,
    };
    let url = endpoint
        .parse::<url::Url>()
        .map_err(|e| anyhow!("the S3 endpoint {endpoint} is not a URL: {e}"))?;
    Bucket::new(url, style, config.bucket.clone(), region)
        .map_err(|e| anyhow!("cannot address bucket {} at {endpoint}: {e}", config.bucket))
}

/// The server turns us away as a whole (no bucket, no access): the run
/// stops asking it, but it is no outage (see `store::lazy::After`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TurnedAway(pub String);

/// The client, made on first use (credentials resolved then), given up for
/// the process once the server could not be reached or turned us away.
pub struct Lazy {
    config: S3Config,
    conn: Once<Conn>,
}

impl Lazy {
    pub fn new(config: S3Config) -> Lazy {
        Lazy {
            config,
            conn: Once::default(),
        }
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    /// The client, resolving credentials on first use.
    pub fn conn(&self) -> Result<Conn> {
        self.with(|c| Ok(c.clone()))
    }

    /// Run `f` on the client; an unreachable server (an outage) or one that
    /// turns us away fails later calls at once.
    pub fn with<T>(&self, f: impl FnOnce(&Conn) -> Result<T>) -> Result<T> {
        let open = || creds::resolve(&self.config).and_then(|c| Conn::new(&self.config, c));
        self.conn.with(open, |conn| {
            f(conn).map_err(|e| {
                let after = if is_outage(&e) {
                    After::GiveUp
                } else if e.downcast_ref::<TurnedAway>().is_some() {
                    After::Refused
                } else {
                    After::Keep
                };
                (e, after)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_the_servers_dates_apart() {
        let age = |d, m| server_age(d, m).map(|a| a.as_secs());
        let date = "Wed, 02 Dec 2026 17:20:13 GMT";
        assert_eq!(age(date, "Wed, 02 Dec 2026 17:20:06 GMT"), Some(7));
        assert_eq!(age(date, "Wed, 02 Dec 2026 17:20:13 GMT"), Some(0));
        // A modification "later" than the reply (another server's clock): young.
        assert_eq!(age(date, "Wed, 02 Dec 2026 18:00:00 GMT"), Some(0));
        assert_eq!(age(date, "garbage"), None);
    }
}
