//! A store opened read-only (`--read-only`, or one tier's `read_only`):
//! lookups pass through, nothing is written. Entries, counters, claims,
//! marks and removals are skipped here, so it works with credentials that
//! can only read (the backend itself skips creating its schema).
use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use anyhow::{Result, anyhow};

use super::{Claim, Counters, Found, Lease, Listed, Spool, Store};
use crate::entry::{Event, Meta, Stream};
use crate::key::Key;

/// How long a read-only caller looks for another process's claim before
/// deciding nobody computes the key: it claims nothing itself.
const PROBE: Duration = Duration::from_millis(100);

pub struct ReadOnly(pub Box<dyn Store>);

/// Stands for a claim a read-only caller never takes.
struct NoLease;

impl Lease for NoLease {}

/// What a read-only store hands out to write into: nothing is kept.
struct Discard;

impl Spool for Discard {
    fn write(&mut self, _: Stream, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn commit(self: Box<Self>, _: &Meta) -> Result<()> {
        Ok(())
    }
}

fn refused(what: &str) -> anyhow::Error {
    anyhow!("the cache is read-only (--read-only, CACHIER_READ_ONLY or read_only); cannot {what}")
}

impl Store for ReadOnly {
    fn get(&self, key: &Key) -> Result<Option<Found>> {
        self.0.get(key)
    }

    fn begin(&self, _: &Key) -> Result<Box<dyn Spool>> {
        Ok(Box::new(Discard))
    }

    /// Busy while another process holds the claim (so this caller waits
    /// for its result); else "ours" without taking anything.
    fn claim(&self, key: &Key) -> Result<Claim> {
        if self.0.wait(key, Some(PROBE))? {
            Ok(Claim::Owner(Box::new(NoLease)))
        } else {
            Ok(Claim::Busy(None))
        }
    }

    fn wait(&self, key: &Key, timeout: Option<Duration>) -> Result<bool> {
        self.0.wait(key, timeout)
    }

    fn remove(&self, _: &Key, _: &str) -> Result<u64> {
        Err(refused("remove entries"))
    }

    fn list(&self, namespace: Option<&str>) -> Result<Vec<Listed>> {
        self.0.list(namespace)
    }

    fn scan(&self, namespace: Option<&str>, visit: &mut super::Visit) -> Result<()> {
        self.0.scan(namespace, visit)
    }

    fn record(&self, _: &str, _: &Key, _: Event) -> Result<()> {
        Ok(())
    }

    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        self.0.counters()
    }

    fn reset_counters(&self) -> Result<()> {
        Err(refused("reset counters"))
    }

    fn clear_claims(&self) -> Result<u64> {
        Err(refused("clear claims"))
    }

    fn remembers_absence(&self) -> bool {
        self.0.remembers_absence()
    }

    fn location(&self) -> String {
        self.0.location()
    }

    fn once_per(&self, _: &str, _: Duration) -> Result<bool> {
        Ok(false)
    }

    fn writable(&self) -> bool {
        false
    }
}
