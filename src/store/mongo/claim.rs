//! Single-flight on MongoDB: a claim document per key with a lease.
//!
//! Claiming is one atomic upsert of `{_id: key, token, host, pid,
//! lease_until}` filtered on `lease_until < now`: with no claim it inserts,
//! with a lapsed one it takes it over, and with a live one the unique `_id`
//! refuses it (E11000), which means busy. The owner's heartbeat renews the
//! lease every [`HEARTBEAT`] to [`LEASE`] ahead, and release deletes the
//! claim, both only while the token is still ours. Waiters poll with a
//! backoff from [`POLL_FIRST`] doubling to [`POLL_MAX`]: a finished owner is
//! noticed within `POLL_MAX`, a dead one within `LEASE + POLL_MAX` of its
//! last heartbeat. Lease times are the clients' clocks, so machines that
//! share a store need clocks within a second or so of each other (NTP).
use std::time::Duration;

use anyhow::Result;
use mongodb::bson::{DateTime, Document, doc};
use tokio::task::JoinHandle;

use super::conn::{Shared, runtime};
use super::{bin, random_u64};
use crate::key::Key;
use crate::store::kit::Deadline;
use crate::store::{Claim, Holder, Lease};

/// How long a claim lasts without a heartbeat: a SIGKILLed owner's waiters
/// take over at most this long after its last heartbeat.
pub const LEASE: Duration = Duration::from_secs(6);
/// How often the owner renews its lease.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A waiter's first pause between looks at the claim.
pub const POLL_FIRST: Duration = Duration::from_millis(20);
/// A waiter's longest pause: how late it may notice that the owner finished.
pub const POLL_MAX: Duration = Duration::from_millis(100);

fn later(by: Duration) -> DateTime {
    let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
    DateTime::from_millis(DateTime::now().timestamp_millis().saturating_add(by))
}

struct MongoLease {
    store: Shared,
    key: Key,
    token: String,
    heartbeat: Option<JoinHandle<()>>,
}

impl Lease for MongoLease {}

impl Drop for MongoLease {
    fn drop(&mut self) {
        if let Some(beat) = self.heartbeat.take() {
            beat.abort();
        }
        let filter = doc! { "_id": bin(&self.key.0), "token": &self.token };
        let _ = self
            .store
            .with(|c| async move { c.claims.delete_one(filter).await });
    }
}

/// Try to become the owner of `key`.
pub fn claim(store: &Shared, key: &Key, me: &Holder) -> Result<Claim> {
    let token = format!("{}:{}:{:016x}", me.host, me.pid, random_u64());
    let filter = doc! { "_id": bin(&key.0), "lease_until": { "$lt": DateTime::now() } };
    let update = doc! { "$set": {
        "token": &token,
        "host": &me.host,
        "pid": i64::from(me.pid),
        "lease_until": later(LEASE),
    } };
    let got = store
        .try_insert(|c| async move { c.claims.update_one(filter, update).upsert(true).await })?;
    if got.is_none() {
        return Ok(Claim::Busy(holder(store, key)?));
    }
    let heartbeat = store.colls().ok().and_then(|c| {
        let rt = runtime().ok()?;
        let filter = doc! { "_id": bin(&key.0), "token": &token };
        Some(rt.spawn(async move {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                let renew = doc! { "$set": { "lease_until": later(LEASE) } };
                let beat = c.claims.update_one(filter.clone(), renew);
                // A claim taken over (this process stalled past its lease)
                // is not ours to renew.
                if let Ok(Ok(r)) = tokio::time::timeout(HEARTBEAT, beat).await
                    && r.matched_count == 0
                {
                    return;
                }
            }
        }))
    });
    Ok(Claim::Owner(Box::new(MongoLease {
        store: store.clone(),
        key: *key,
        token,
        heartbeat,
    })))
}

/// Who holds the claim on `key`, if anyone still does.
fn holder(store: &Shared, key: &Key) -> Result<Option<Holder>> {
    let filter = doc! { "_id": bin(&key.0) };
    let claim = store.with(|c| async move { c.claims.find_one(filter).await })?;
    Ok(claim.and_then(|d| {
        Some(Holder {
            host: d.get_str("host").ok()?.to_string(),
            pid: u32::try_from(d.get_i64("pid").ok()?).ok()?,
        })
    }))
}

/// Whether `claim` still binds: present, with its lease running.
fn live(claim: &Document) -> bool {
    claim
        .get_datetime("lease_until")
        .is_ok_and(|until| *until >= DateTime::now())
}

/// Block until nobody holds a live claim on `key`; `false` when `timeout`
/// passes first.
pub fn wait(store: &Shared, key: &Key, timeout: Option<Duration>) -> Result<bool> {
    let deadline = Deadline::after(timeout);
    let mut pause = POLL_FIRST;
    loop {
        let filter = doc! { "_id": bin(&key.0) };
        let claim = store.with(|c| async move {
            c.claims
                .find_one(filter)
                .projection(doc! { "lease_until": 1 })
                .await
        })?;
        if !claim.as_ref().is_some_and(live) {
            return Ok(true);
        }
        if deadline.passed() {
            return Ok(false);
        }
        std::thread::sleep(deadline.left(pause));
        pause = (pause * 2).min(POLL_MAX);
    }
}

/// Delete the claims whose lease lapsed (their owners died); how many went.
pub fn clear(store: &Shared) -> Result<u64> {
    let filter = doc! { "lease_until": { "$lt": DateTime::now() } };
    let gone = store.with(|c| async move { c.claims.delete_many(filter).await })?;
    Ok(gone.deleted_count)
}
