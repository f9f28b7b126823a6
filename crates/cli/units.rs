//! Human-friendly values for flags and config files: durations (`10s`, `6h`), byte
//! sizes (`64GiB`, `16KiB`) and percentages (`10%`). Each parser is a clap value
//! parser, so a bad value is reported with the flag that carried it.

use std::time::Duration;

/// `500ms`, `10s`, `5m`, `6h`, `2d`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits.parse().map_err(|_| {
        format!("{s:?} is not a duration: write a whole number with a unit, like 30s, 5m, 6h")
    })?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown duration unit {other:?} in {s:?}: use ms, s, m, h or d")),
    };
    n.checked_mul(unit_ms).map(Duration::from_millis).ok_or_else(|| format!("duration {s:?} is too large"))
}

/// `4096`, `16KiB`, `64GiB`, `1MB`; binary (KiB, MiB, GiB, TiB) and decimal (kB, MB,
/// GB, TB) units; a bare number means bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size: write a whole number with a unit, like 16KiB, 64GiB"))?;
    let unit_bytes: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        other => return Err(format!("unknown size unit {other:?} in {s:?}: use B, KiB, MiB, GiB, TiB")),
    };
    n.checked_mul(unit_bytes).ok_or_else(|| format!("size {s:?} is too large"))
}

/// A whole number of at least 1 (for limits where 0 would refuse everything).
pub fn parse_at_least_one(s: &str) -> Result<std::num::NonZeroU32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) => std::num::NonZeroU32::new(n).ok_or_else(|| "must be at least 1".to_owned()),
        Err(_) => Err(format!("{s:?} is not a whole number from 1 to {}", u32::MAX)),
    }
}

/// `10%` or `10`: a whole percentage from 0 to 100.
pub fn parse_percent(s: &str) -> Result<u8, String> {
    let digits = s.trim().trim_end_matches('%');
    match digits.parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(format!("{s:?} is not a percentage from 0% to 100%")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_usual_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(2 * 86_400)));
        for bad in ["", "s", "1.5s", "-1s", "10 parsecs", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_size("64GiB"), Ok(64 << 30));
        assert_eq!(parse_size("16KiB"), Ok(16 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("123"), Ok(123));
        for bad in ["", "GiB", "1.5GiB", "1 zettabyte", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn percentages_stay_within_0_and_100() {
        assert_eq!(parse_percent("10%"), Ok(10));
        assert_eq!(parse_percent("0"), Ok(0));
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("-1%").is_err());
    }
}
