//! The outage breaker: a server backend that failed (refused, silent, TLS,
//! authentication) is skipped by this user's later runs for `retry_after`,
//! so a CI job of 200 calls against a dead server pays one timeout, not
//! 200. The mark is a file in the runtime dir named by a hash of the
//! backend and its settings (never the URL itself: it may hold a password),
//! holding the instant until which the backend is skipped and the failure
//! as it was shown (messages never carry a password). Only an [`Outage`]
//! trips it: a store marks the failures that mean its server is gone; a
//! refused command (a permission, a bad statement) or a bad entry do not.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::param::Section;
use super::registry::Backend;
use super::{Claim, Counters, Found, Listed, Spool, Store, unavailable};
use crate::entry::{Event, millis_since_epoch};
use crate::key::Key;
use crate::store::memory::daemon::paths;

/// A failure that means the server is gone (refused, unreachable,
/// silent, TLS, authentication), as the store that met it shows it.
#[derive(Debug)]
pub struct Outage(pub String);

impl std::fmt::Display for Outage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Outage {}

/// `e` marked as an outage (shown as before).
pub fn outage(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(Outage(format!("{e:#}")))
}

/// Whether `e` (or what it wraps) is an outage.
pub fn is_outage(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| cause.is::<Outage>())
}

/// `failure; skipping it until <instant> (...)`: what a run says of a
/// backend it skips, or has just marked.
fn skipping(failure: &str, until: SystemTime) -> String {
    format!(
        "{failure}; skipping it until {} (retry_after; --strict tries it now)",
        humantime::format_rfc3339_seconds(until)
    )
}

/// How a run treats the breaker: `--strict` tries the backend anyway.
pub struct Policy {
    pub strict: bool,
    pub retry_after: Duration,
}

/// `store` guarded by the breaker: the skipping stand-in while its mark
/// stands (unless `--strict`), else the store, marked when it fails.
pub fn guard(
    backend: Backend,
    section: &Section,
    policy: &Policy,
    store: Box<dyn Store>,
) -> Box<dyn Store> {
    let remote = backend.reach() >= 2
        && backend
            .def()
            .params
            .iter()
            .filter(|p| p.tier_key == Some("url"))
            .find_map(|p| section.text(p.key))
            .is_some_and(|(url, _)| !url.starts_with("sqlite:"));
    if !remote || policy.retry_after.is_zero() {
        return store;
    }
    let mark = mark_path(backend, section);
    if !policy.strict
        && let Some((until, failure)) = marked_until(&mark)
    {
        return unavailable::down(&store.location(), skipping(&failure, until));
    }
    Box::new(Breaker {
        inner: store,
        mark,
        retry_after: policy.retry_after,
        strict: policy.strict,
    })
}

/// `<runtime dir>/breaker-<hash of the backend and its settings>`; the
/// certificates trusted are part of them (a TLS failure fixed by trusting
/// a CA is retried at once).
fn mark_path(backend: Backend, section: &Section) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let mut h = blake3::Hasher::new();
    h.update(backend.name().as_bytes());
    for var in ["SSL_CERT_FILE", "SSL_CERT_DIR"] {
        h.update(b"\0");
        h.update(std::env::var_os(var).unwrap_or_default().as_bytes());
    }
    for given in &section.given {
        h.update(b"\0");
        h.update(given.key.as_bytes());
        h.update(b"=");
        h.update(given.value.to_env().as_bytes());
    }
    paths::dir().join(format!("breaker-{}", &h.finalize().to_hex()[..32]))
}

/// The instant the mark at `path` skips its backend until, if still
/// ahead, and the failure that set it.
fn marked_until(path: &PathBuf) -> Option<(SystemTime, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (ms, failure) = text.split_once('\n')?;
    let until = SystemTime::UNIX_EPOCH + Duration::from_millis(ms.parse().ok()?);
    (until > SystemTime::now()).then(|| (until, failure.trim().to_string()))
}

struct Breaker {
    inner: Box<dyn Store>,
    mark: PathBuf,
    retry_after: Duration,
    strict: bool,
}

impl Breaker {
    /// An outage marks the backend, and says until when it is skipped.
    fn watch<T>(&self, out: Result<T>) -> Result<T> {
        match out {
            Err(e) if is_outage(&e) => {
                let failure = format!("{e:#}").replace('\n', " ");
                let until = SystemTime::now() + self.retry_after;
                // Best effort: without a runtime dir, each run pays its timeout.
                match self.trip(&failure, until) {
                    Ok(()) if !self.strict => {
                        Err(anyhow::Error::new(Outage(skipping(&failure, until))))
                    }
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    fn trip(&self, failure: &str, until: SystemTime) -> Result<()> {
        let dir = paths::dir();
        paths::ensure(&dir)?;
        let until = millis_since_epoch(until);
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        std::io::Write::write_all(&mut tmp, format!("{until}\n{failure}\n").as_bytes())?;
        tmp.persist(&self.mark)?;
        Ok(())
    }
}

impl Store for Breaker {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        self.watch(self.inner.get(key))
    }
    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>> {
        self.watch(self.inner.begin(key))
    }
    fn claim(&self, key: &Key) -> Result<Claim> {
        self.watch(self.inner.claim(key))
    }
    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        self.watch(self.inner.wait(key, timeout))
    }
    fn remove(&self, key: &Key, namespace: &str) -> Result<u64> {
        self.inner.remove(key, namespace)
    }
    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        self.watch(self.inner.list(namespace))
    }
    fn scan(&self, namespace: Option<&str>, visit: &mut super::Visit) -> Result<()> {
        // Only the backend's own failures count towards tripping: the
        // caller's (a closed stdout) are kept aside and returned as they are.
        let mut theirs = None;
        let scanned = self.inner.scan(namespace, &mut |listed| {
            visit(listed).map_err(|e| {
                theirs = Some(e);
                anyhow::anyhow!("scan stopped by its caller")
            })
        });
        match theirs {
            Some(e) => Err(e),
            None => self.watch(scanned),
        }
    }
    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()> {
        self.inner.record(namespace, key, event)
    }
    fn record_all(&self, namespace: &str, key: &Key, events: &[Event]) -> Result<()> {
        self.inner.record_all(namespace, key, events)
    }
    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        self.watch(self.inner.counters())
    }
    fn reset_counters(&self) -> Result<()> {
        self.inner.reset_counters()
    }
    fn clear_claims(&self) -> Result<u64> {
        self.inner.clear_claims()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
    fn sweep(&self) -> Result<()> {
        self.inner.sweep()
    }
    fn once_per(&self, what: &str, interval: Duration) -> Result<bool> {
        self.inner.once_per(what, interval)
    }
    fn writable(&self) -> bool {
        self.inner.writable()
    }
}
