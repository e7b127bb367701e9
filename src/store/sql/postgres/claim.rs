//! Single-flight on PostgreSQL: a session advisory lock per key.
//!
//! The owner takes `pg_try_advisory_lock` on the store's one connection
//! and the lease gives it back (`pg_advisory_unlock`) when dropped; the
//! owner's death frees it too (the server sees the socket close). One
//! connection a process: a woken waiter that takes the claim starts its
//! command without connecting again (a connection of its own for the claim
//! cost PostgreSQL a backend start, ~5 ms, on every takeover and miss).
//! Waiters block in `pg_advisory_lock_shared`, so they wake together, with
//! no polling; each lock request lasts at most [`WAIT_SLICE`] on the server
//! (`lock_timeout`), so a server that stops answering a waiter is noticed
//! within that and one statement's deadline. A `cachier_claims` row names
//! the owner for the spinner.
use std::time::Duration;

use anyhow::Result;
use tokio_postgres::error::SqlState;

use super::conn::Shared;
use super::session::{OP_TIMEOUT, SCAN_TIMEOUT, Session};
use crate::key::Key;
use crate::store::kit::Deadline;
use crate::store::{Holder, Lease};

/// The longest one lock request of a waiter waits on the server.
const WAIT_SLICE: Duration = Duration::from_secs(2);

/// The advisory lock of `key`: its first 8 bytes.
fn lock_id(key: &Key) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key.0[..8]);
    i64::from_be_bytes(b)
}

/// The claim on `key`, held by the store's connection.
pub struct PgLease {
    pub store: Shared,
    pub key: Key,
}

impl Lease for PgLease {}

impl Drop for PgLease {
    fn drop(&mut self) {
        // A server the store gave up on is not asked again: one timeout a
        // run (and the connection it held the lock on is closed).
        if !self.store.gave_up() {
            let _ = self.store.with(|c| {
                c.execute(
                    "DELETE FROM cachier_claims WHERE key = $1",
                    &[&&self.key.0[..]],
                )?;
                c.query_one("SELECT pg_advisory_unlock($1)", &[&lock_id(&self.key)])?;
                Ok(())
            });
        }
    }
}

/// Try to take the claim on `key` on `session`; whether it was had.
pub fn claim(session: &mut Session, key: &Key, me: &Holder) -> Result<bool> {
    let id = lock_id(key);
    let got: bool = session
        .query_one("SELECT pg_try_advisory_lock($1)", &[&id])?
        .get(0);
    if !got {
        return Ok(false);
    }
    let named = session.execute(
        "INSERT INTO cachier_claims (key, host, pid) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET host = excluded.host, pid = excluded.pid",
        &[&&key.0[..], &me.host, &i64::from(me.pid)],
    );
    if let Err(e) = named {
        let _ = session.query_one("SELECT pg_advisory_unlock($1)", &[&id]);
        return Err(e.into());
    }
    Ok(true)
}

/// Who holds the claim on `key`, if its row says.
pub fn holder(client: &mut Session, key: &Key) -> Result<Option<Holder>> {
    let row = client.query_opt(
        "SELECT host, pid FROM cachier_claims WHERE key = $1",
        &[&&key.0[..]],
    )?;
    Ok(row.map(|r| Holder {
        host: r.get(0),
        pid: r.get::<_, i64>(1) as u32,
    }))
}

/// Block until the owner of `key` lets go; `false` when `timeout` passes first.
pub fn wait(c: &mut Session, key: &Key, timeout: Option<Duration>) -> Result<bool> {
    let id = lock_id(key);
    // No deadline (or one past the end of time) waits for as long as it takes.
    let deadline = Deadline::after(timeout);
    loop {
        let slice = deadline.left(WAIT_SLICE);
        if slice.is_zero() {
            return Ok(false);
        }
        let tx = c.d.run(c.client.transaction())?;
        // SET LOCAL: the rollback or commit below restores the default.
        let limit = format!("SET LOCAL lock_timeout = {}", slice.as_millis().max(1));
        c.d.run(tx.batch_execute(&limit))?;
        let lock = "SELECT pg_advisory_lock_shared($1)";
        match c.d.within(slice + OP_TIMEOUT, tx.query_one(lock, &[&id])) {
            Ok(_) => {}
            // Dropped, the transaction rolls back; the next slice asks again.
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => continue,
            Err(e) => return Err(e.into()),
        }
        c.d.run(tx.query_one("SELECT pg_advisory_unlock_shared($1)", &[&id]))?;
        c.d.run(tx.commit())?;
        return Ok(true);
    }
}

/// Delete the claim rows whose lock nobody holds; how many went.
pub fn clear(client: &mut Session) -> Result<u64> {
    let mut wiped = 0;
    let rows = client.d.within(
        SCAN_TIMEOUT,
        client.client.query("SELECT key FROM cachier_claims", &[]),
    )?;
    for row in rows {
        let key: &[u8] = row.get(0);
        let Ok(key) = <[u8; 32]>::try_from(key) else {
            continue;
        };
        let id = lock_id(&Key(key));
        let free: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&id])?
            .get(0);
        if free {
            wiped += client.execute("DELETE FROM cachier_claims WHERE key = $1", &[&&key[..]])?;
            client.execute("SELECT pg_advisory_unlock($1)", &[&id])?;
        }
    }
    Ok(wiped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_id_is_the_key_prefix() {
        let mut key = Key([0; 32]);
        key.0[7] = 1;
        assert_eq!(lock_id(&key), 1);
        key.0[0] = 0x80;
        assert!(lock_id(&key) < 0);
    }
}
