//! `--stale-if-error`: a stale entry kept ready while the command runs with
//! its output held back; served instead when the run fails (an exit code
//! that would not be stored, not a signal), or when the run this caller
//! waited for stored nothing.
use std::time::SystemTime;

use anyhow::Result;

use super::{Hit, Run};
use crate::human;
use crate::outputs;
use crate::store::Found;
use crate::warn;

impl Run<'_> {
    /// Keep `found`, a stale entry, as the fallback if the call asks for one
    /// and it is young enough for `--stale-if-error=DUR`.
    pub(super) fn keep_fallback(&mut self, found: Found) {
        let age = found.meta.age(SystemTime::now());
        if let Some(bound) = self.args.stale_if_error
            && bound.0.is_none_or(|b| age <= b)
        {
            self.fallback = Some(found);
        }
    }

    /// Serve the fallback, if there is one and it verifies: `failed` is the
    /// exit code of our own failed run, `None` when we waited for another's.
    pub(super) fn serve_fallback(&mut self, failed: Option<u8>) -> Result<Option<u8>> {
        let Some(found) = self.fallback.take() else {
            return Ok(None);
        };
        let meta = found.meta;
        let body = match found.body.fetch() {
            Ok(body) => body,
            Err(e) => {
                warn::once(&format!("{e:#}; cannot serve the stale entry"));
                return Ok(None);
            }
        };
        if let Err(e) = body.verify(&meta) {
            warn::once(&format!("{e}; cannot serve the stale entry"));
            return Ok(None);
        }
        // The stale result whole: its files too, over what the failed run
        // left (the files first, then the replay, as for any hit).
        if let Err(outputs::Failure::Corrupt(why) | outputs::Failure::Blocked(why)) =
            outputs::restore(&self.declared, &meta, &body)
        {
            warn::once(&format!(
                "outputs of the stale entry {} not restored ({why}); the command's failure stands",
                meta.key.short()
            ));
            return Ok(None);
        }
        let age = human::duration(meta.age(SystemTime::now()));
        let key = meta.key.short();
        warn::once(&match failed {
            Some(code) => format!(
                "the command failed (exit {code}); served the stale entry {key} from {age} ago instead (--stale-if-error)"
            ),
            None => format!(
                "the run this call waited for stored nothing; served the stale entry {key} from {age} ago (--stale-if-error)"
            ),
        });
        // (A waiter's fallback counts as a wait too.)
        self.serve(&meta, &body, failed.is_none(), Hit::Fallback)
            .map(Some)
    }
}
