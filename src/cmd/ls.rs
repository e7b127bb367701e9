//! `cachier ls`: one line per entry, newest first (or JSON).
use std::borrow::Cow;
use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use serde::Serialize;

use super::sorter::Sorter;
use crate::cli::LsArgs;
use crate::entry::millis_since_epoch;
use crate::human;
use crate::settings::Settings;
use crate::store::{self, Listed};

/// `ls --json`, one object per entry; field names stable. Borrowed from
/// the entry, so that an item costs no copies of its strings.
#[derive(Serialize)]
struct Item<'a> {
    key: &'a str,
    namespace: &'a str,
    argv: Vec<Cow<'a, str>>,
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
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tiers: &'a [&'static str],
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
    let now = SystemTime::now();
    // A stack adds its TIERS column before COMMAND.
    let [key, ns, age, size, exit, hits, outputs, command] = HEADER;
    let header = if tiered {
        vec![key, ns, age, size, exit, hits, outputs, "TIERS", command]
    } else {
        HEADER.to_vec()
    };
    // One pass renders each entry's row (and widens the columns); the rows
    // are sorted newest first, spilling to a temp file past a budget.
    let mut table = super::Columns::new(&header);
    let mut sorter = Sorter::new();
    let mut rendered = Vec::new();
    let mut scratch = String::new();
    let mut json = Vec::new();
    store.scan_held(args.name.as_deref(), &mut |listed, tiers| {
        let held = super::Held { listed, tiers };
        rendered.clear();
        if args.json {
            let hex = held.listed.meta.key.0;
            let hex = blake3::Hash::from_bytes(hex).to_hex();
            json_item(&mut rendered, &item(&held, &hex, now), &mut json)?;
        } else {
            pack_row(&mut table, &held, tiered, now, &mut scratch, &mut rendered);
        }
        let meta = &held.listed.meta;
        let mut order = [0u8; 40];
        order[..8].copy_from_slice(&(!meta.created_ms).to_be_bytes());
        order[8..].copy_from_slice(&meta.key.0);
        sorter.push(&order, &rendered)
    })?;
    let sorted = sorter.sorted()?;
    // Block-buffered: 100,000 rows must not be 100,000 writes.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        // What `to_writer_pretty` makes of the array of items, one at a time.
        let mut first = true;
        out.write_all(b"[")?;
        sorted.each(&mut |item| {
            out.write_all(if first { b"\n" } else { b",\n" })?;
            first = false;
            Ok(out.write_all(item)?)
        })?;
        out.write_all(if first { b"]\n" } else { b"\n]\n" })?;
        out.flush()?;
        return Ok(0);
    }
    table.line(&mut out, &header)?;
    let mut text = String::new();
    let mut cut = false;
    sorted.each(&mut |row| {
        table.line_into(&mut text, Cells { row, cut: &mut cut });
        Ok(out.write_all(text.as_bytes())?)
    })?;
    if cut {
        anyhow::bail!("ls: a sorted row came back damaged");
    }
    out.flush()?;
    Ok(0)
}

/// An item as `to_writer_pretty` prints it inside the array: indented
/// once (`text` is the buffer it is printed into first).
fn json_item(out: &mut Vec<u8>, item: &Item, text: &mut Vec<u8>) -> Result<()> {
    text.clear();
    serde_json::to_writer_pretty(&mut *text, item)?;
    // JSON strings escape their newlines: every line break is the printer's.
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(b"  ");
        out.extend_from_slice(line);
    }
    Ok(())
}

/// The cells of a packed row, each stored as its length and its text;
/// `cut` is set if the row is not that (then it ends there).
struct Cells<'a, 'b> {
    row: &'a [u8],
    cut: &'b mut bool,
}

impl<'a> Iterator for Cells<'a, '_> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let (len, rest) = self.row.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let cell = rest
            .split_at_checked(len)
            .and_then(|(cell, rest)| Some((std::str::from_utf8(cell).ok()?, rest)));
        match cell {
            Some((cell, rest)) => {
                self.row = rest;
                Some(cell)
            }
            None => {
                *self.cut = true;
                None
            }
        }
    }
}

/// Pack an entry's row into `row` (cleared first), widening the columns:
/// the cells written in place, `scratch` reused for the formatted ones
/// (a `String` per cell was a visible share of `ls` over 100,000 entries).
fn pack_row(
    table: &mut super::Columns,
    held: &super::Held,
    tiered: bool,
    now: SystemTime,
    scratch: &mut String,
    row: &mut Vec<u8>,
) {
    let l = &held.listed;
    let meta = &l.meta;
    row.clear();
    let hex = blake3::Hash::from_bytes(meta.key.0).to_hex();
    table.pack(0, &hex[..12], row);
    table.pack(1, &meta.namespace, row);
    let age = human::duration(Duration::from_secs(meta.age(now).as_secs()));
    table.pack(2, &age, row);
    table.pack(3, &human::bytes(l.size), row);
    table.pack(4, text(scratch, format_args!("{}", meta.exit_code)), row);
    table.pack(5, text(scratch, format_args!("{}", l.hits)), row);
    let outputs = match meta.outputs.count {
        0 => "-",
        n => text(
            scratch,
            format_args!("{n} ({})", human::bytes(meta.outputs.size)),
        ),
    };
    table.pack(6, outputs, row);
    if tiered {
        table.pack(7, &held.tiers.join(","), row);
    }
    scratch.clear();
    for (i, arg) in meta.argv.iter().enumerate() {
        if i > 0 {
            scratch.push(' ');
        }
        scratch.push_str(&String::from_utf8_lossy(arg));
    }
    table.pack(if tiered { 8 } else { 7 }, scratch, row);
}

/// `args` written into `scratch` (cleared first), as a cell.
fn text<'a>(scratch: &'a mut String, args: std::fmt::Arguments) -> &'a str {
    use std::fmt::Write as _;
    scratch.clear();
    let _ = scratch.write_fmt(args);
    scratch
}

fn argv(l: &Listed) -> Vec<Cow<'_, str>> {
    l.meta
        .argv
        .iter()
        .map(|a| String::from_utf8_lossy(a))
        .collect()
}

/// The item of `h`, whose key is spelled `hex`.
fn item<'a>(h: &'a super::Held, hex: &'a str, now: SystemTime) -> Item<'a> {
    let l = &h.listed;
    Item {
        tiers: &h.tiers,
        key: hex,
        namespace: &l.meta.namespace,
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
