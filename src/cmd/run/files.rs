//! `run --output`: capturing the declared files into the entry on a miss.
use anyhow::Result;

use super::Run;
use crate::entry;
use crate::exec::Outcome;
use crate::outputs::{self, Captured};
use crate::store;
use crate::warn;

impl Run<'_> {
    /// Archive the `--output`s into the spool after the command's output;
    /// `Err` says why the run is not stored.
    pub(super) fn capture(
        &self,
        spool: &mut dyn store::Spool,
        outcome: &Outcome,
    ) -> Result<Result<entry::Outputs, String>> {
        if self.declared.is_empty() {
            return Ok(Ok(entry::Outputs::default()));
        }
        if self.blocked.get() {
            return Ok(Err(
                "not stored: the entry's outputs could not be restored here".into(),
            ));
        }
        let printed = outcome.lens[0].saturating_add(outcome.lens[1]);
        let room = self
            .args
            .entry_size_limit
            .map(|l| l.saturating_sub(printed));
        match outputs::capture_into(&self.declared, spool, room) {
            Ok(files) => Ok(Ok(files)),
            Err(Captured::TooLarge) => Ok(Err(
                "not stored: output and files exceed --entry-size-limit".into(),
            )),
            Err(Captured::Missing(why) | Captured::Refused(why)) => {
                warn::once(&format!(
                    "{why}; nothing stored (the command's result stands)"
                ));
                Ok(Err(format!("not stored: {why}")))
            }
            Err(Captured::Failed(e)) => {
                self.trouble(anyhow::anyhow!("cannot store the outputs: {e}"))?;
                Ok(Err("not stored".into()))
            }
        }
    }
}
