//! `cachier stats`: per namespace and in total, from the counters the store
//! keeps (never a rescan of the entries).
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::cli::{StatsArgs, StatsFormat};
use crate::human;
use crate::settings::Settings;
use crate::store::{self, Counters};

/// `stats --json`, field names stable (documented in the README).
#[derive(Serialize)]
struct Report {
    namespaces: BTreeMap<String, Row>,
    total: Row,
    /// A stack's figures tier by tier (absent for a plain store).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tiers: Vec<TierReport>,
}

#[derive(Serialize)]
struct TierReport {
    tier: &'static str,
    namespaces: BTreeMap<String, Row>,
    total: Row,
}

#[derive(Serialize)]
struct Row {
    #[serde(flatten)]
    counters: Counters,
    hit_ratio: f64,
}

impl Row {
    fn new(counters: Counters) -> Row {
        Row {
            counters,
            hit_ratio: counters.hit_ratio(),
        }
    }
}

pub fn run(settings: &Settings, args: &StatsArgs) -> Result<u8> {
    let store = store::open(settings);
    if args.reset {
        store.reset_counters()?;
    }
    let (per_ns, total) = figures(store.counters()?, args);
    let mut tiers = Vec::new();
    for (tier, tier_store) in store.tiers() {
        match tier_store.counters() {
            Ok(counters) => {
                let (per_ns, total) = figures(counters, args);
                tiers.push((tier, per_ns, total));
            }
            // The stack's figures above already left it out, with a warning.
            Err(_) => continue,
        }
    }
    // Block-buffered: 100,000 rows must not be 100,000 writes.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let format = match args.format {
        Some(format) => format,
        None if args.json => StatsFormat::Json,
        None => StatsFormat::Table,
    };
    if format == StatsFormat::Openmetrics {
        super::openmetrics::write(&mut out, &per_ns, &tiers)?;
        out.flush()?;
        return Ok(0);
    }
    if format == StatsFormat::Json {
        let report = Report {
            namespaces: per_ns
                .into_iter()
                .map(|(ns, c)| (ns, Row::new(c)))
                .collect(),
            total: Row::new(total),
            tiers: tiers
                .into_iter()
                .map(|(tier, per_ns, total)| TierReport {
                    tier,
                    namespaces: per_ns
                        .into_iter()
                        .map(|(ns, c)| (ns, Row::new(c)))
                        .collect(),
                    total: Row::new(total),
                })
                .collect(),
        };
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(0);
    }
    let header = [
        "NAMESPACE",
        "ENTRIES",
        "BYTES",
        "HITS",
        "MISSES",
        "STALE",
        "WAITS",
        "HIT RATIO",
        "SAVED",
    ];
    let mut rows: Vec<[String; 9]> = per_ns.iter().map(|(ns, c)| row(ns, c)).collect();
    rows.push(row("total", &total));
    super::table(&mut out, &header, &rows)?;
    if !tiers.is_empty() {
        // Then tier by tier, each tier's totals.
        let mut header = header;
        header[0] = "TIER";
        let rows: Vec<[String; 9]> = tiers.iter().map(|(t, _, c)| row(t, c)).collect();
        writeln!(out)?;
        super::table(&mut out, &header, &rows)?;
    }
    out.flush()?;
    Ok(0)
}

/// Counters of the namespaces asked for, and their total.
fn figures(
    mut per_ns: BTreeMap<String, Counters>,
    args: &StatsArgs,
) -> (BTreeMap<String, Counters>, Counters) {
    if let Some(name) = &args.name {
        per_ns.retain(|ns, _| ns == name);
    }
    let mut total = Counters::default();
    for counters in per_ns.values() {
        total.add(counters);
    }
    (per_ns, total)
}

fn row(name: &str, c: &Counters) -> [String; 9] {
    [
        name.to_string(),
        c.entries.to_string(),
        human::bytes(c.bytes),
        c.hits.to_string(),
        c.misses.to_string(),
        c.stale_serves.to_string(),
        c.waits.to_string(),
        format!("{:.1}%", c.hit_ratio() * 100.0),
        human::duration(Duration::from_millis(c.saved_ms)),
    ]
}
