//! The store's main connection, made on first use and given up after one
//! failure.
use std::cell::RefCell;

use anyhow::{Result, anyhow};
use redis::{ConnectionLike, RedisResult};

use super::conn::{Conn, Target};
use crate::store::breaker::outage;

/// The main connection, made on first use. After a failure (unreachable,
/// timed out) later calls fail the same way at once: a dead server costs a
/// run one timeout, not one per call.
pub struct Lazy {
    pub target: Result<Target, String>,
    state: RefCell<State>,
}

enum State {
    Unopened,
    Open(Conn),
    Failed(String),
}

impl Lazy {
    pub fn new(target: Result<Target, String>) -> Lazy {
        Lazy {
            target,
            state: RefCell::new(State::Unopened),
        }
    }

    pub fn target(&self) -> Result<&Target> {
        self.target.as_ref().map_err(|e| anyhow!("{e}"))
    }

    /// Run `f` on the main connection.
    pub fn with<T>(&self, f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>) -> Result<T> {
        let target = self.target()?;
        let mut state = self.state.borrow_mut();
        if let State::Failed(why) = &*state {
            // Only an outage gives the connection up.
            return Err(outage(anyhow!("{why}")));
        }
        if let State::Unopened = &*state {
            match target.connect() {
                Ok(conn) => *state = State::Open(conn),
                Err(e) => {
                    *state = State::Failed(format!("{e:#}"));
                    return Err(e);
                }
            }
        }
        let State::Open(conn) = &mut *state else {
            unreachable!("opened above")
        };
        f(conn.like()).map_err(|e| {
            let err = target.failed(&e);
            if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() {
                *state = State::Failed(format!("{err:#}"));
            }
            err
        })
    }
}
