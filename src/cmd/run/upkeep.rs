//! Background upkeep after a run: `--cleanup-stale` and gc past max_size.
use super::Run;
use crate::background;

/// How often a store over max_size may start a background gc.
const GC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

impl Run<'_> {
    /// Background upkeep after the command's result is out: `--cleanup-stale`
    /// of this namespace, and gc once the store outgrows max_size. Best
    /// effort: it never changes the run's outcome.
    pub(super) fn maintain(&self) {
        let ns = &self.material.namespace;
        if let (true, Some(stale)) = (self.args.cleanup_stale, self.args.stale_after) {
            let what = format!("cleanup-{}", &blake3::hash(ns.as_bytes()).to_hex()[..16]);
            if self
                .store
                .once_per(&what, self.settings.cleanup_interval)
                .unwrap_or(false)
            {
                let bound = format!("{}s", stale.as_secs());
                let _ = background::spawn_cachier(
                    self.settings,
                    &["clear", "--stale", "--stale-after", &bound, "--name", ns],
                );
            }
        }
        let Some(max) = self.settings.max_size.filter(|_| self.stored) else {
            return;
        };
        let total: u64 = self
            .store
            .counters()
            .map_or(0, |all| all.values().map(|c| c.bytes).sum());
        if total > max && self.store.once_per("gc", GC_INTERVAL).unwrap_or(false) {
            let _ = background::spawn_cachier(self.settings, &["gc"]);
        }
    }
}
