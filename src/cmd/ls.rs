//! `cachier ls`: one line per entry, newest first (or JSON).
use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde::Serialize;

use crate::cli::LsArgs;
use crate::entry::millis_since_epoch;
use crate::human;
use crate::settings::Settings;
use crate::store::{self, Listed};

/// `ls --json`, one object per entry; field names stable.
#[derive(Serialize)]
struct Item {
    key: String,
    namespace: String,
    argv: Vec<String>,
    created_ms: u64,
    age_ms: u64,
    last_used_ms: u64,
    size: u64,
    exit_code: i32,
    hits: u64,
    /// `--output` records (files, symlinks, directories) and their bytes.
    outputs: u64,
    outputs_size: u64,
    /// The fingerprint of the key whose valid signature it bears; null if
    /// unsigned or badly signed.
    signed_by: Option<String>,
    /// The tiers of a stack holding it (absent for a plain store).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tiers: Vec<&'static str>,
}

const HEADER: [&str; 8] = [
    "KEY",
    "NAMESPACE",
    "AGE",
    "SIZE",
    "EXIT",
    "HITS",
    "OUTPUTS",
    "COMMAND",
];

pub fn run(settings: &Settings, args: &LsArgs) -> Result<u8> {
    let store = store::open(settings);
    let tiered = !store.tiers().is_empty();
    let mut entries = super::held(&store, args.name.as_deref())?;
    entries.sort_by(|a, b| {
        let (a, b) = (&a.listed, &b.listed);
        b.meta
            .created_ms
            .cmp(&a.meta.created_ms)
            .then(a.meta.key.0.cmp(&b.meta.key.0))
    });
    let now = SystemTime::now();
    // Block-buffered: 100,000 rows must not be 100,000 writes.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        let items: Vec<Item> = entries.iter().map(|h| item(h, now)).collect();
        serde_json::to_writer_pretty(&mut out, &items)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(0);
    }
    // A stack adds its TIERS column before COMMAND.
    let [key, ns, age, size, exit, hits, outputs, command] = HEADER;
    if tiered {
        let header = [key, ns, age, size, exit, hits, outputs, "TIERS", command];
        let rows: Vec<[String; 9]> = entries
            .iter()
            .map(|h| {
                let [a, b, c, d, e, f, g, command] = columns(&h.listed, now);
                [a, b, c, d, e, f, g, h.tiers.join(","), command]
            })
            .collect();
        super::table(&mut out, &header, &rows)?;
    } else {
        let rows: Vec<[String; 8]> = entries.iter().map(|h| columns(&h.listed, now)).collect();
        super::table(&mut out, &HEADER, &rows)?;
    }
    out.flush()?;
    Ok(0)
}

fn columns(l: &Listed, now: SystemTime) -> [String; 8] {
    [
        l.meta.key.short(),
        l.meta.namespace.clone(),
        human::duration(Duration::from_secs(l.meta.age(now).as_secs())),
        human::bytes(l.size),
        l.meta.exit_code.to_string(),
        l.hits.to_string(),
        match l.meta.outputs.count {
            0 => "-".to_string(),
            n => format!("{n} ({})", human::bytes(l.meta.outputs.size)),
        },
        argv(l).join(" "),
    ]
}

fn argv(l: &Listed) -> Vec<String> {
    l.meta
        .argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

fn item(h: &super::Held, now: SystemTime) -> Item {
    let l = &h.listed;
    Item {
        tiers: h.tiers.clone(),
        key: l.meta.key.hex(),
        namespace: l.meta.namespace.clone(),
        argv: argv(l),
        created_ms: l.meta.created_ms,
        age_ms: l.meta.age(now).as_millis() as u64,
        last_used_ms: millis_since_epoch(l.last_used),
        size: l.size,
        exit_code: l.meta.exit_code,
        hits: l.hits,
        outputs: l.meta.outputs.count,
        outputs_size: l.meta.outputs.size,
        signed_by: crate::sign::signed_by(&l.meta),
    }
}
