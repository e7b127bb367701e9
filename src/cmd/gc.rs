//! `cachier gc`: sweep debris, then evict least-recently-used entries until
//! the store fits in max_size.
use std::io::Write;

use std::time::UNIX_EPOCH;

use anyhow::Result;

use super::sorter::Sorter;

use crate::cli::GcArgs;
use crate::human;
use crate::key::Key;
use crate::settings::Settings;
use crate::store;

pub fn run(settings: &Settings, args: &GcArgs) -> Result<u8> {
    let store = store::open(settings);
    store.sweep()?;
    let Some(max) = args.max_size.or(settings.max_size) else {
        writeln!(
            std::io::stdout(),
            "swept leftovers; no max_size is set, so nothing was evicted (pass --max-size SIZE or set CACHIER_MAX_SIZE)"
        )?;
        return Ok(0);
    };
    // Entries by last use, oldest first (ties in listing order), sorted
    // outside memory past a budget: a key, a size and a namespace each.
    let mut total: u64 = 0;
    let mut sorter = Sorter::new();
    let mut record = Vec::new();
    store.scan(None, &mut |listed| {
        total += listed.size;
        let used = listed
            .last_used
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut order = [0u8; 12];
        order[..8].copy_from_slice(&used.as_secs().to_be_bytes());
        order[8..].copy_from_slice(&used.subsec_nanos().to_be_bytes());
        record.clear();
        record.extend_from_slice(&listed.meta.key.0);
        record.extend_from_slice(&listed.size.to_le_bytes());
        record.extend_from_slice(listed.meta.namespace.as_bytes());
        sorter.push(&order, &record)
    })?;
    let sorted = sorter.sorted()?;
    // Oldest use first, until what is left fits: how many go.
    let mut over = 0u64;
    let mut left = total;
    sorted.each(&mut |record| {
        if left > max {
            over += 1;
            left = left.saturating_sub(evictee(record)?.1);
        }
        Ok(())
    })?;
    let bar = human::progress(over, "evicting");
    let (mut evicted, mut freed) = (0u64, 0u64);
    let mut seen = 0u64;
    sorted.each(&mut |record| {
        if seen == over {
            return Ok(());
        }
        seen += 1;
        let (key, _, namespace) = evictee(record)?;
        let bytes = store.remove(&key, namespace)?;
        evicted += u64::from(bytes > 0);
        freed += bytes;
        total = total.saturating_sub(bytes);
        bar.inc(1);
        Ok(())
    })?;
    bar.finish_and_clear();
    writeln!(
        std::io::stdout(),
        "evicted {evicted} entr{} ({}); the cache holds {} of max {}",
        if evicted == 1 { "y" } else { "ies" },
        human::bytes(freed),
        human::bytes(total),
        human::bytes(max)
    )?;
    Ok(0)
}

/// The key, size and namespace of an entry as sorted above.
fn evictee(record: &[u8]) -> Result<(Key, u64, &str)> {
    let cut = || anyhow::anyhow!("gc: a sorted entry came back cut short");
    let (key, rest) = record.split_first_chunk::<32>().ok_or_else(cut)?;
    let (size, namespace) = rest.split_first_chunk::<8>().ok_or_else(cut)?;
    Ok((
        Key(*key),
        u64::from_le_bytes(*size),
        std::str::from_utf8(namespace)?,
    ))
}
