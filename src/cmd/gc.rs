//! `cachier gc`: sweep debris, then evict least-recently-used entries until
//! the store fits in max_size.
use std::io::Write;

use anyhow::Result;

use crate::cli::GcArgs;
use crate::human;
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
    let mut entries = store.list(None)?;
    let mut total: u64 = entries.iter().map(|l| l.size).sum();
    entries.sort_by_key(|l| l.last_used);
    // Oldest use first, until what is left fits.
    let mut left = total;
    let over: Vec<_> = entries
        .into_iter()
        .take_while(|l| {
            let take = left > max;
            left = left.saturating_sub(l.size);
            take
        })
        .collect();
    let bar = human::progress(over.len() as u64, "evicting");
    let (mut evicted, mut freed) = (0u64, 0u64);
    for listed in &over {
        let bytes = store.remove(&listed.meta.key, &listed.meta.namespace)?;
        evicted += u64::from(bytes > 0);
        freed += bytes;
        total = total.saturating_sub(bytes);
        bar.inc(1);
    }
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
