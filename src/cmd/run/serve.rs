//! `cachier run` on a hit: replay the entry, copy it up a stack, count it,
//! and start the background refresh of a stale one.
use std::time::SystemTime;

use anyhow::Result;

use super::Run;
use crate::background;
use crate::entry::{Body, Event, Meta};
use crate::error::{BROKEN_PIPE, Exit};
use crate::human;
use crate::replay::{self, Replayed};

/// What kind of hit a replay is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Hit {
    Fresh,
    /// Stale under `--next-time`: a refresh starts behind it.
    Refreshing,
    /// Stale, served because the command failed (`--stale-if-error`).
    Fallback,
}

impl Run<'_> {
    pub(super) fn serve(&mut self, meta: &Meta, body: &Body, waited: bool, hit: Hit) -> Result<u8> {
        if hit == Hit::Refreshing
            && self.store.writable()
            && let Err(e) = background::spawn_refresh(self.material.stdin.take())
        {
            self.trouble(e)?;
        }
        let replayed = replay::replay(meta, body)
            .map_err(|e| Exit::failed(format!("cannot write the cached output: {e}")))?;
        let ns = &self.material.namespace;
        let key = &self.material.key;
        // A stack copies the hit into the tiers above the one that served
        // it, now that the bytes are out; a tier that fails warns itself,
        // and the hit's exit code stands.
        let _ = self.store.copy_up(key);
        // Counters are best effort: a read-only cache still serves. One
        // call, so a store that pays a write per call pays one.
        let mut events = vec![Event::Hit {
            saved: meta.duration(),
        }];
        if waited {
            events.push(Event::Wait);
        }
        if hit != Hit::Fresh {
            events.push(Event::StaleServe);
        }
        let _ = self.store.record_all(ns, key, &events);
        self.verbose(|| {
            format!(
                "{} {} (age {}, made by {} pid {} in {})",
                match hit {
                    Hit::Fresh => "hit",
                    Hit::Refreshing => "stale hit, refreshing in the background:",
                    Hit::Fallback => "stale hit, the command failed (--stale-if-error):",
                },
                key.short(),
                human::duration(meta.age(SystemTime::now())),
                meta.host,
                meta.pid,
                human::duration(meta.duration()),
            )
        });
        Ok(match replayed {
            Replayed::Done => meta.exit_code as u8,
            Replayed::StdoutClosed => BROKEN_PIPE,
        })
    }
}
