//! A stack's counters: what each tier counts of a run's events, and the
//! stack's figures summed from its tiers'.
use std::collections::BTreeMap;

use anyhow::Result;

use super::Tiered;
use crate::entry::Event;
use crate::key::Key;
use crate::store::Counters;

impl Tiered {
    /// A hit counts where it was served and as a miss in the tiers above;
    /// a miss counts in every tier; what else a replay counts (it waited,
    /// it was stale), only where it was served. Each tier gets one call
    /// with its share of `events`.
    pub(super) fn count(&self, namespace: &str, key: &Key, events: &[Event]) -> Result<()> {
        let served = self.served.get().unwrap_or(0);
        for (i, level) in self.levels().iter().enumerate() {
            if !self.shared.up(i) {
                continue;
            }
            let share: Vec<Event> = events
                .iter()
                .filter_map(|&event| match event {
                    Event::Miss => Some(Event::Miss),
                    Event::Hit { .. } if i < served => Some(Event::Miss),
                    _ if i == served => Some(event),
                    _ => None,
                })
                .collect();
            if share.is_empty() {
                continue;
            }
            if let Err(e) = level.store.record_all(namespace, key, &share) {
                self.shared.trouble(i, e)?;
            }
        }
        Ok(())
    }

    /// The stack as one cache: a lookup is a hit in the tier that served
    /// it, so hits add up; a miss reaches the deepest tier, so misses are
    /// its; entries are the largest tier's, bytes what all tiers hold.
    pub(super) fn sum_counters(&self) -> Result<BTreeMap<String, Counters>> {
        let mut sum: BTreeMap<String, Counters> = BTreeMap::new();
        let per_tier = self.each(|s| s.counters())?;
        let last = per_tier.len().saturating_sub(1);
        for (t, per_ns) in per_tier.into_iter().enumerate() {
            for (ns, c) in per_ns {
                let s = sum.entry(ns).or_default();
                s.entries = s.entries.max(c.entries);
                s.bytes += c.bytes;
                s.hits += c.hits;
                s.waits += c.waits;
                s.stale_serves += c.stale_serves;
                s.saved_ms += c.saved_ms;
                if t == last {
                    s.misses = c.misses;
                }
            }
        }
        Ok(sum)
    }
}
