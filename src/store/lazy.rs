//! A server backend's main connection: made on first use, and given up for
//! the rest of the process after a failure that says the server is gone.
use std::cell::RefCell;

use anyhow::{Result, anyhow};

use super::breaker::{is_outage, outage};

/// What a failed call means for the connection it ran on.
pub enum After {
    /// The connection is still good (the server refused one request).
    Keep,
    /// The connection broke but the server answers: the next call opens a
    /// new one.
    #[allow(dead_code)] // each user is a cargo feature
    Reopen,
    /// The server answers but turns us away as a whole (no bucket, no
    /// access): every later call fails the same way at once, and the
    /// breaker does not count it (it is the settings, not an outage).
    #[allow(dead_code)] // each user is a cargo feature
    Refused,
    /// The server is unreachable or stopped answering (an outage): every
    /// later call fails the same way at once, so a dead server costs a run one
    /// timeout, not one per call.
    GiveUp,
}

pub struct Lazy<C> {
    state: RefCell<State<C>>,
}

enum State<C> {
    Unopened,
    Open(C),
    /// Why, and whether that was an outage (which the breaker remembers
    /// across runs) rather than, say, a refused schema creation.
    Failed(String, bool),
}

impl<C> Default for Lazy<C> {
    fn default() -> Self {
        Lazy {
            state: RefCell::new(State::Unopened),
        }
    }
}

impl<C> Lazy<C> {
    /// Whether the server has been given up for this process.
    #[allow(dead_code)] // each user is a cargo feature
    pub fn gave_up(&self) -> bool {
        matches!(&*self.state.borrow(), State::Failed(..))
    }

    /// Give the server up for the rest of the process, with `why` (an
    /// outage: it could not be reached).
    #[allow(dead_code)] // each user is a cargo feature
    pub fn give_up(&self, why: String) {
        *self.state.borrow_mut() = State::Failed(why, true);
    }

    /// Run `f` on the connection, made by `open` first if there is none yet
    /// (a failed `open` gives the server up). A failed `f` says what its
    /// failure means for the connection: kept, dropped for a new one, or
    /// given up.
    pub fn with<T>(
        &self,
        open: impl FnOnce() -> Result<C>,
        f: impl FnOnce(&mut C) -> Result<T, (anyhow::Error, After)>,
    ) -> Result<T> {
        let mut state = self.state.borrow_mut();
        match &*state {
            State::Failed(why, gone) => {
                let e = anyhow!("{why}");
                return Err(if *gone { outage(e) } else { e });
            }
            State::Open(_) => {}
            State::Unopened => match open() {
                Ok(conn) => *state = State::Open(conn),
                Err(e) => {
                    *state = State::Failed(format!("{e:#}"), is_outage(&e));
                    return Err(e);
                }
            },
        }
        let State::Open(conn) = &mut *state else {
            return Err(anyhow!("the connection was not opened"));
        };
        f(conn).map_err(|(e, after)| match after {
            After::Keep => e,
            After::Reopen => {
                *state = State::Unopened;
                e
            }
            After::Refused => {
                *state = State::Failed(format!("{e:#}"), false);
                e
            }
            // Given up, the server is gone: an outage.
            After::GiveUp => {
                let e = if is_outage(&e) { e } else { outage(e) };
                *state = State::Failed(format!("{e:#}"), true);
                e
            }
        })
    }
}
