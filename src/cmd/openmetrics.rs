//! `stats --format openmetrics`: the counters as Prometheus text, one
//! sample per namespace (and per tier, for a stack), for a scrape or
//! node_exporter's textfile collector.
use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::store::Counters;

/// One metric: its name, type, help line, and its value in a row.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&Counters) -> String,
}

const METRICS: &[Metric] = &[
    Metric {
        name: "cachier_hits_total",
        kind: "counter",
        help: "Lookups served from the cache.",
        value: |c| c.hits.to_string(),
    },
    Metric {
        name: "cachier_misses_total",
        kind: "counter",
        help: "Lookups that ran the command.",
        value: |c| c.misses.to_string(),
    },
    Metric {
        name: "cachier_waits_total",
        kind: "counter",
        help: "Runs that waited for another process computing the same key.",
        value: |c| c.waits.to_string(),
    },
    Metric {
        name: "cachier_stale_serves_total",
        kind: "counter",
        help: "Stale entries served while a refresh ran in the background.",
        value: |c| c.stale_serves.to_string(),
    },
    Metric {
        name: "cachier_saved_seconds_total",
        kind: "counter",
        help: "Run time the hits saved, in seconds.",
        value: |c| format!("{}.{:03}", c.saved_ms / 1000, c.saved_ms % 1000),
    },
    Metric {
        name: "cachier_entries",
        kind: "gauge",
        help: "Entries stored.",
        value: |c| c.entries.to_string(),
    },
    Metric {
        name: "cachier_bytes",
        kind: "gauge",
        help: "Bytes the entries take in the store.",
        value: |c| c.bytes.to_string(),
    },
];

/// Every metric, each namespace's sample; for a stack (`tiers` not empty)
/// a sample per tier and namespace instead, so that sums do not count an
/// entry twice.
pub fn write(
    out: &mut impl Write,
    per_ns: &BTreeMap<String, Counters>,
    tiers: &[(&'static str, BTreeMap<String, Counters>, Counters)],
) -> io::Result<()> {
    let mut rows: Vec<(String, &Counters)> = Vec::new();
    if tiers.is_empty() {
        for (ns, c) in per_ns {
            rows.push((format!("namespace=\"{}\"", escape(ns)), c));
        }
    }
    for (tier, per_ns, _) in tiers {
        for (ns, c) in per_ns {
            let labels = format!("tier=\"{}\",namespace=\"{}\"", escape(tier), escape(ns));
            rows.push((labels, c));
        }
    }
    for m in METRICS {
        writeln!(out, "# HELP {} {}", m.name, m.help)?;
        writeln!(out, "# TYPE {} {}", m.name, m.kind)?;
        for (labels, c) in &rows {
            writeln!(out, "{}{{{labels}}} {}", m.name, (m.value)(c))?;
        }
    }
    writeln!(out, "# EOF")
}

/// A label value as the text format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
