//! Single-flight on PostgreSQL: a session advisory lock per key.
//!
//! The owner takes `pg_try_advisory_lock` on a session of its own and keeps
//! it in the lease; dropping the lease closes the session, which frees the
//! lock, and so does the owner's death (the server sees the socket close).
//! Waiters block in `pg_advisory_lock_shared`, so they wake together, with
//! no polling. A `cachier_claims` row names the owner for the spinner.
use std::time::Duration;

use ::postgres::Client;
use ::postgres::error::SqlState;
use anyhow::Result;

use crate::key::Key;
use crate::store::{Claim, Holder, Lease};

/// The advisory lock of `key`: its first 8 bytes.
fn lock_id(key: &Key) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&key.0[..8]);
    i64::from_be_bytes(b)
}

struct PgLease {
    session: Client,
    key: Key,
}

impl Lease for PgLease {}

impl Drop for PgLease {
    fn drop(&mut self) {
        let _ = self.session.execute(
            "DELETE FROM cachier_claims WHERE key = $1",
            &[&&self.key.0[..]],
        );
        // Dropping `session` (after this) closes it and frees the lock.
    }
}

/// Try to become the owner of `key` on `session`; `Busy(None)` when someone
/// else is (the caller then looks up who).
pub fn claim(mut session: Client, key: &Key, me: &Holder) -> Result<Claim> {
    let got: bool = session
        .query_one("SELECT pg_try_advisory_lock($1)", &[&lock_id(key)])?
        .get(0);
    if !got {
        return Ok(Claim::Busy(None));
    }
    session.execute(
        "INSERT INTO cachier_claims (key, host, pid) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET host = excluded.host, pid = excluded.pid",
        &[&&key.0[..], &me.host, &i64::from(me.pid)],
    )?;
    Ok(Claim::Owner(Box::new(PgLease { session, key: *key })))
}

/// Who holds the claim on `key`, if its row says.
pub fn holder(client: &mut Client, key: &Key) -> Result<Option<Holder>> {
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
pub fn wait(client: &mut Client, key: &Key, timeout: Option<Duration>) -> Result<bool> {
    let id = lock_id(key);
    let mut tx = client.transaction()?;
    // lock_timeout takes at most i32::MAX ms (24.8 days): a longer bound
    // is no bound at all in practice, so wait without one.
    if let Some(ms) = timeout.and_then(|t| i32::try_from(t.as_millis().max(1)).ok()) {
        // SET LOCAL: the rollback or commit below restores the default.
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {ms}"))?;
    }
    match tx.query_one("SELECT pg_advisory_lock_shared($1)", &[&id]) {
        Ok(_) => {}
        Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    tx.query_one("SELECT pg_advisory_unlock_shared($1)", &[&id])?;
    tx.commit()?;
    Ok(true)
}

/// Delete the claim rows whose lock nobody holds; how many went.
pub fn clear(client: &mut Client) -> Result<u64> {
    let mut wiped = 0;
    for row in client.query("SELECT key FROM cachier_claims", &[])? {
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
