//! A store that cannot be used (its cargo feature is off, its settings are
//! unusable, or the outage breaker skips it): every call fails with one clear message, so a run warns once
//! and runs uncached, and `--strict` exits 125.
use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::entry::Event;
use crate::key::Key;
use crate::store::{Claim, Counters, Found, Listed, Spool, Store};

pub struct Unavailable {
    what: String,
    why: String,
}

/// The store for `what`, left out of this build by cargo feature `feature`.
#[allow(dead_code)] // used only in builds that leave a backend out
pub fn unbuilt(what: &str, feature: &str) -> Box<dyn Store> {
    Box::new(Unavailable {
        what: what.to_string(),
        why: format!(
            "this build of cachier leaves out {what} (cargo feature `{feature}` off); \
             use --backend file"
        ),
    })
}

/// The store for `what`, whose settings are unusable (`why` says how).
pub fn misconfigured(what: &str, why: String) -> Box<dyn Store> {
    Box::new(Unavailable {
        what: what.to_string(),
        why,
    })
}

/// The store for `what`, skipped for a while after it failed (`why` says
/// until when; see the breaker).
pub fn down(what: &str, why: String) -> Box<dyn Store> {
    misconfigured(what, why)
}

impl Unavailable {
    fn fail<T>(&self) -> Result<T> {
        Err(anyhow!("{}", self.why))
    }
}

impl Store for Unavailable {
    fn get(&self, _: &Key) -> Result<Option<Found>> {
        self.fail()
    }
    fn begin(&self, _: &Key) -> Result<Box<dyn Spool>> {
        self.fail()
    }
    fn claim(&self, _: &Key) -> Result<Claim> {
        self.fail()
    }
    fn wait(&self, _: &Key, _: Option<Duration>) -> Result<bool> {
        self.fail()
    }
    fn remove(&self, _: &Key, _: &str) -> Result<u64> {
        self.fail()
    }
    fn list(&self, _: Option<&str>) -> Result<Vec<Listed>> {
        self.fail()
    }
    fn record(&self, _: &str, _: &Key, _: Event) -> Result<()> {
        self.fail()
    }
    fn counters(&self) -> Result<BTreeMap<String, Counters>> {
        self.fail()
    }
    fn reset_counters(&self) -> Result<()> {
        self.fail()
    }
    fn clear_claims(&self) -> Result<u64> {
        self.fail()
    }
    fn location(&self) -> String {
        self.what.clone()
    }
    fn once_per(&self, _: &str, _: Duration) -> Result<bool> {
        self.fail()
    }
}
