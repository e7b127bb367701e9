//! What `cachier daemon` does to the memory backend's daemon: start, stop,
//! status, serve, and the test-only aging and damage; plain data out, the
//! command prints it.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};

use super::MemoryConfig;
use super::daemon::client::{self, Start, unexpected};
use super::daemon::proto::{Req, Resp};
use super::daemon::{self, paths};

pub use super::daemon::proto::Status;

/// Where this user's daemon listens.
pub fn socket() -> PathBuf {
    paths::socket(&paths::dir())
}

/// Start the daemon unless it runs: `(pid, started by us)`.
pub fn start(config: MemoryConfig, idle_timeout: Option<Duration>) -> Result<(u32, bool)> {
    let dir = paths::dir();
    if let Some(conn) = client::running(&dir)? {
        return Ok((conn.pid, false));
    }
    let start = Start {
        dir,
        max_memory: config.max_memory,
        idle_timeout: idle_timeout.unwrap_or(config.idle_timeout),
    };
    let notice = |what: &str| crate::warn::line(what);
    let conn = client::connect(&start, &notice)?;
    Ok((conn.pid, true))
}

/// Stop the daemon; its pid, or `None` when none ran.
pub fn stop() -> Result<Option<u32>> {
    let dir = paths::dir();
    match client::running(&dir) {
        Ok(Some(mut conn)) => {
            let pid = conn.pid;
            // The daemon exits right after answering.
            let _ = conn.call(&Req::Stop);
            client::await_exit(pid, client::START_TIMEOUT)?;
            Ok(Some(pid))
        }
        Ok(None) => Ok(None),
        // Another version: stop it by its pid file.
        Err(_) => client::terminate(&dir),
    }
}

/// The running daemon's status, or `None` when none runs.
pub fn status() -> Result<Option<Status>> {
    let Some(mut conn) = client::running(&paths::dir())? else {
        return Ok(None);
    };
    match conn.call(&Req::Status)? {
        Resp::Status(status) => Ok(Some(*status)),
        _ => Err(unexpected()),
    }
}

/// Be the daemon, in this process, until it exits.
pub fn serve(config: MemoryConfig, idle_timeout: Option<Duration>) -> Result<()> {
    daemon::serve(
        &paths::dir(),
        config.max_memory,
        idle_timeout.unwrap_or(config.idle_timeout),
    )
}

/// Test only: make every entry `ms` milliseconds older.
pub fn debug_age(ms: u64) -> Result<()> {
    debug(&Req::DebugAge { ms })
}

/// Test only: damage every entry (flip its first byte, or truncate it).
pub fn debug_damage(truncate: bool) -> Result<()> {
    debug(&Req::DebugDamage { truncate })
}

fn debug(req: &Req) -> Result<()> {
    let Some(mut conn) = client::running(&paths::dir())? else {
        bail!("the memory daemon is not running");
    };
    match conn.call(req)? {
        Resp::Done => Ok(()),
        _ => Err(unexpected()),
    }
}
