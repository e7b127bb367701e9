//! The store's main connection, made on first use and given up after one
//! failure that says the server is gone.
use anyhow::{Result, anyhow};
use redis::{ConnectionLike, RedisResult};

use super::conn::{Conn, Target};
use crate::store::lazy::{After, Lazy as Once};

/// The main connection, made on first use (see `store::lazy`).
pub struct Lazy {
    pub target: Result<Target, String>,
    conn: Once<Conn>,
}

impl Lazy {
    pub fn new(target: Result<Target, String>) -> Lazy {
        Lazy {
            target,
            conn: Once::default(),
        }
    }

    pub fn target(&self) -> Result<&Target> {
        self.target.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// Run `f` on the main connection.
    pub fn with<T>(&self, f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>) -> Result<T> {
        let target = self.target()?;
        self.conn.with(
            || target.connect(),
            |conn| {
                f(conn.like()).map_err(|e| {
                    let gone = e.is_io_error() || e.is_timeout() || e.is_connection_dropped();
                    (
                        target.failed(&e),
                        if gone { After::GiveUp } else { After::Keep },
                    )
                })
            },
        )
    }
}
