//! The Store trait every backend implements, and the factory that picks one.
//!
//! A subcommand reaches a backend only through [`Store`]. Contract shared by
//! all backends: `get` never returns a half-written entry; an entry becomes
//! visible whole when its spool is committed; a claim is released when its
//! [`Lease`] is dropped *or its owner dies*, and each backend documents how
//! fast it notices a dead owner.
mod file;

use std::io;
use std::time::Duration;

use anyhow::Result;

use crate::entry::{Body, Event, Meta, Stream};
use crate::key::Key;
use crate::settings::{Backend, Settings};

pub use file::FileStore;

/// Who computes a key, shown to the callers that wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

impl Holder {
    pub fn me() -> Holder {
        let uname = rustix::system::uname();
        Holder {
            host: uname.nodename().to_string_lossy().into_owned(),
            pid: std::process::id(),
        }
    }
}

/// The result of trying to become the one caller that computes a key.
pub enum Claim {
    /// We compute; the claim lasts as long as the lease.
    Owner(Box<dyn Lease>),
    /// Someone else computes (who, when the backend can tell).
    Busy(Option<Holder>),
}

/// A held claim on a key. Dropping it releases the claim.
pub trait Lease {}

/// An entry found by [`Store::get`]: its metadata now, its body on demand,
/// so a stale entry costs no transfer.
pub struct Found {
    pub meta: Meta,
    pub body: Box<dyn Fetch>,
}

/// Brings an entry's body to a local file for verification and replay.
pub trait Fetch {
    fn fetch(self: Box<Self>) -> Result<Body>;
}

/// An entry being written. Nothing is visible until `commit`; dropping
/// the spool without committing discards it.
pub trait Spool {
    fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()>;
    fn commit(self: Box<Self>, meta: &Meta) -> Result<()>;
}

pub trait Store {
    /// The entry stored under `key`, or `None`. A malformed entry is an
    /// error that downcasts to [`crate::entry::Corrupt`].
    fn get(&self, key: &Key) -> Result<Option<Found>>;

    /// Start writing the entry for `key`.
    fn begin(&self, key: &Key) -> Result<Box<dyn Spool>>;

    /// Try, without blocking, to become the caller that computes `key`.
    fn claim(&self, key: &Key, me: &Holder) -> Result<Claim>;

    /// Block until nobody holds the claim on `key` (its owner finished or
    /// died), or until `timeout`. Returns `false` on timeout.
    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool>;

    /// Remove the entry under `key`, if any.
    fn remove(&self, key: &Key) -> Result<()>;

    /// Metadata of every entry, optionally of one namespace.
    fn list(&self, namespace: Option<&str>) -> Result<Vec<Meta>>;

    /// Count an event for `namespace`; a hit also marks `key` as just used.
    fn record(&self, namespace: &str, key: &Key, event: Event) -> Result<()>;
}

/// Open the configured store. Cheap: no I/O happens until it is used.
pub fn open(settings: &Settings) -> Box<dyn Store> {
    match settings.backend {
        Backend::File => Box::new(FileStore::new(settings.cache_dir.clone())),
    }
}
