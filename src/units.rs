//! Parsing of the human units users type: durations (`90s`, `1h`) and sizes (`50M`).
use std::time::Duration;

/// A duration such as `90s`, `15m`, `1h 30m` or `2d`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 90s, 15m, 1h or 2d"))
}

/// A byte size such as `50M`, `1.5GiB` or `4096`; K, M and G are powers of 1024.
pub fn parse_size(text: &str) -> Result<u64, String> {
    if significant_digits(text) > 20 {
        return Err(format!(
            "`{text}` is not a size (more than 20 significant digits); write e.g. 512K, 50M or 2G"
        ));
    }
    parse_size::Config::new()
        .with_binary()
        .parse_size(text.trim())
        .map_err(|e| format!("`{text}` is not a size ({e}); write e.g. 512K, 50M or 2G"))
}

/// The digits of the number in a size, leading zeros, the point and the
/// separators (`_`, space) left out. `parse-size` 1.1 overflows on a number
/// of more than 20 of them that starts with u64::MAX (a panic in a debug
/// build, 0 in a release build); none of them is a size.
fn significant_digits(text: &str) -> usize {
    text.bytes()
        .take_while(|b| b.is_ascii_digit() || matches!(b, b'.' | b'_' | b' '))
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
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50M"), Ok(50 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_size("0000000000000000000000001K"), Ok(1024));
        // Found by the `units` fuzz target: u64::MAX and one more digit.
        for text in [
            "184467440737095516159",
            "18_446_744_073_709_551_615_9K",
            "18446744073709551615.9",
        ] {
            let err = parse_size(text).unwrap_err();
            assert!(err.contains("more than 20 significant digits"), "{err}");
        }
    }
}
