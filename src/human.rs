//! Numbers for people: byte sizes, durations and ages, and the progress bar.
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// `512 B`, `1.2 KiB`, `48.1 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `1 entry`, `2 entries`: a count with its noun.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A duration rounded for people: `1.2s`, `3m 5s`, `2days 1h`.
pub fn duration(d: Duration) -> String {
    if d.as_secs() < 60 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let rounded = if d.as_secs() >= 3600 {
        d.as_secs() / 60 * 60
    } else {
        d.as_secs()
    };
    humantime::format_duration(Duration::from_secs(rounded)).to_string()
}

/// Whether stderr may carry a spinner or a progress bar.
pub fn decorate_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A progress bar over `len` items on a terminal; invisible elsewhere.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    if !decorate_stderr() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("cachier: {msg} [{bar:30}] {pos}/{len} {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// A bar counting bytes towards `total`, or a spinner when the total is
/// unknown (a pipe), on a terminal; invisible elsewhere. Drawn at once, so
/// short work shows it too, and cleared when dropped, so an error line never
/// lands after a half-drawn bar.
pub fn progress_bytes(total: Option<u64>, what: &str) -> ProgressBar {
    if !decorate_stderr() {
        return ProgressBar::hidden();
    }
    let template = if total.is_some() {
        "cachier: {msg} [{bar:30}] {bytes}/{total_bytes} {eta}"
    } else {
        "{spinner} cachier: {msg} {bytes} ({bytes_per_sec})"
    };
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
        .with_message(what.to_string())
        .with_finish(ProgressFinish::AndClear);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.tick();
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(48 * 1024 * 1024 + 100 * 1024), "48.1 MiB");
        assert_eq!(count(1, "entry", "entries"), "1 entry");
        assert_eq!(count(0, "entry", "entries"), "0 entries");
        assert_eq!(duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(duration(Duration::from_secs(185)), "3m 5s");
        assert_eq!(duration(Duration::from_secs(7322)), "2h 2m");
    }

    /// What cachier prints of a size or a duration reads back, through the
    /// parsers of `--max-size` and `--stale-after`, as what it printed.
    mod round_trips {
        use proptest::prelude::*;

        use super::*;
        use crate::units::{parse_duration, parse_size};

        /// The largest size and duration the properties try: 1 PiB, 100 years.
        const SIZES: u64 = 1 << 50;
        const SECS: u64 = 100 * 31_557_600;

        proptest! {
            #[test]
            fn a_printed_size_reads_back_within_its_rounding(n in 0..=SIZES) {
                let shown = bytes(n);
                let read = parse_size(&shown).unwrap();
                // One decimal of the unit shown, and half a byte.
                let unit = 1024u64.pow((64 - n.leading_zeros()).saturating_sub(1) / 10);
                let slack = if n < 1024 { 0 } else { unit / 20 + 1 };
                prop_assert!(read.abs_diff(n) <= slack, "{} -> {} -> {}", n, shown, read);
            }

            #[test]
            fn a_byte_count_reads_back_exactly(n in 0..=SIZES) {
                prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
            }

            #[test]
            fn a_printed_duration_reads_back_as_printed(secs in 60..=SECS, nanos in 0..1_000_000_000u32) {
                let d = Duration::new(secs, nanos);
                let shown = duration(d);
                // Minutes from an hour on, whole seconds below.
                let want = if secs >= 3600 { secs / 60 * 60 } else { secs };
                prop_assert_eq!(parse_duration(&shown), Ok(Duration::from_secs(want)), "{}", shown);
            }

            #[test]
            fn under_a_minute_reads_back_within_a_twentieth(nanos in 0..60_000_000_000u64) {
                let d = Duration::from_nanos(nanos);
                let shown = duration(d);
                let read = parse_duration(&shown).unwrap();
                let off = read.abs_diff(d);
                prop_assert!(off <= Duration::from_millis(50), "{:?} -> {} -> {:?}", d, shown, read);
            }

            #[test]
            fn a_duration_in_full_reads_back_exactly(secs in 0..=SECS, nanos in 0..1_000_000_000u32) {
                let d = Duration::new(secs, nanos);
                let shown = humantime::format_duration(d).to_string();
                prop_assert_eq!(parse_duration(&shown), Ok(d), "{}", shown);
                prop_assert_eq!(parse_duration(&secs.to_string()), Ok(Duration::from_secs(secs)));
            }
        }
    }
}
