//! Parsing of the human units users type: durations (`90s`, `1h`) and sizes
//! (`50M`), each into a checked range so no later arithmetic can overflow.
use std::time::Duration;

/// The longest duration accepted anywhere: 100 years (as `humantime` counts
/// them, 365.25 days). Every deadline and timestamp computed from a parsed
/// duration stays in range.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600);

/// The largest size accepted anywhere: 1 PiB (2^50 bytes).
pub const MAX_SIZE: u64 = 1 << 50;

/// A duration such as `90s`, `15m`, `1h 30m` or `2d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let parsed = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).map_err(|e| {
            if matches!(e, humantime::DurationError::NumberOverflow) {
                out_of_range_duration(text)
            } else {
                format!("`{text}` is not a duration ({e}); write e.g. 90s, 15m, 1h or 2d")
            }
        })?,
    };
    duration_in_range(parsed).map_err(|()| out_of_range_duration(text))
}

/// A duration given as a count of seconds (a config file integer).
pub fn duration_from_secs(secs: u64) -> Result<Duration, String> {
    duration_in_range(Duration::from_secs(secs))
        .map_err(|()| out_of_range_duration(&secs.to_string()))
}

fn duration_in_range(d: Duration) -> Result<Duration, ()> {
    if d <= MAX_DURATION { Ok(d) } else { Err(()) }
}

fn out_of_range_duration(text: &str) -> String {
    format!("`{text}` is out of range: a duration must be between 0s and 100 years")
}

/// A byte size such as `50M`, `1.5GiB` or `4096`; K, M and G are powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    // parse-size overflows silently past 20 digits (found by fuzzing):
    // such a size is out of any range.
    if significant_digits(text) > 20 {
        return Err(out_of_range_size(text));
    }
    let size = parse_size::Config::new()
        .with_binary()
        .parse_size(text.trim())
        .map_err(|e| match e {
            parse_size::Error::PosOverflow => out_of_range_size(text),
            e => format!("`{text}` is not a size ({e}); write e.g. 512K, 50M or 2G"),
        })?;
    size_in_range(size).map_err(|()| out_of_range_size(text))
}

/// A size given as a count of bytes (a config file integer).
pub fn size_from_bytes(bytes: u64) -> Result<u64, String> {
    size_in_range(bytes).map_err(|()| out_of_range_size(&bytes.to_string()))
}

fn size_in_range(size: u64) -> Result<u64, ()> {
    if size <= MAX_SIZE { Ok(size) } else { Err(()) }
}

fn out_of_range_size(text: &str) -> String {
    format!(
        "`{}` is out of range: a size must be between 0 and 1P",
        text.trim()
    )
}

/// The digits of the number in a size, leading zeros, the point and the
/// separators (`_`, space) left out. `parse-size` 1.1 overflows on a number
/// of more than 20 of them that starts with u64::MAX (a panic in a debug
/// build, 0 in a release build); none of them is a size.
fn significant_digits(text: &str) -> usize {
    text.trim()
        .bytes()
        .take_while(|b| b.is_ascii_digit() || b.is_ascii_whitespace() || matches!(b, b'.' | b'_'))
        .filter(u8::is_ascii_digit)
        .skip_while(|&b| b == b'0')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        assert_eq!(parse_duration("100y"), Ok(MAX_DURATION));
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn durations_out_of_range_are_errors_naming_the_range() {
        for text in [
            "18446744073709551615",
            "3155760001",
            "101y",
            "99999999999999999999d",
        ] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains("between 0s and 100 years"), "{text}: {err}");
        }
        assert_eq!(parse_duration("3155760000"), Ok(MAX_DURATION));
        assert!(duration_from_secs(u64::MAX).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50M"), Ok(50 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1P"), Ok(MAX_SIZE));
        assert!(parse_size("lots").is_err());
        for text in ["18446744073709551615", "2P", "99999999999999999999999"] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("between 0 and 1P"), "{text}: {err}");
        }
        assert!(size_from_bytes(u64::MAX).is_err());
        assert_eq!(parse_size("0000000000000000000000001K"), Ok(1024));
        // Found by the `units` fuzz target: u64::MAX and one more digit.
        for text in [
            "184467440737095516159",
            "18_446_744_073_709_551_615_9K",
            "18446744073709551615.9",
            // ... after leading whitespace (a tab), which parse-size trims.
            "\t18446744073709551615963832685455545w0hr6m",
            " \n184467440737095516159",
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("between 0 and 1P"), "{err}");
        }
    }
}
