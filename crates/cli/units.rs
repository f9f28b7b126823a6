//! Human-friendly values for flags and config files: durations (`10s`, `6h`), byte
//! sizes (`64GiB`, `16KiB`), rates (`8MiB/s`), percentages (`10%`) and limits of at
//! least one. Each
//! parser is a clap value parser, so a bad value is reported with the flag that
//! carried it, whether it came from the command line, the environment or the config
//! file; and a value that must not be zero is refused here, never checked later.

use std::ffi::OsStr;
use std::num::NonZeroU64;
use std::time::Duration;

use clap::builder::TypedValueParser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

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

/// A duration longer than zero, for intervals and timeouts where 0 would mean "at
/// once, forever": refused as `--FLAG must be longer than 0s`.
#[derive(Debug, Clone, Copy)]
pub struct PositiveDuration;

impl TypedValueParser for PositiveDuration {
    type Value = Duration;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Duration, clap::Error> {
        let duration = parse_duration.parse_ref(cmd, arg, value)?;
        if !duration.is_zero() {
            return Ok(duration);
        }
        let flag =
            arg.and_then(clap::Arg::get_long).map_or_else(|| "a duration".to_owned(), |l| format!("--{l}"));
        let mut err = clap::Error::raw(ErrorKind::ValueValidation, format!("{flag} must be longer than 0s"))
            .format(&mut cmd.clone());
        // Which flag it was, for the config layering to tell a value from the file.
        if let Some(arg) = arg {
            err.insert(ContextKind::InvalidArg, ContextValue::String(arg.to_string()));
        }
        Err(err)
    }
}

/// A number of bytes, as `--max-file-size` and the like take it ([`parse_size`]). A
/// type of its own so that the config file can tell a size from a count (a bare TOML
/// integer is refused for a size: it needs a unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(u64);

impl Size {
    pub fn bytes(self) -> u64 {
        self.0
    }
}

/// `4096`, `16KiB`, `64GiB`, `1MB`; binary (KiB, MiB, GiB, TiB) and decimal (kB, MB,
/// GB, TB) units; a bare number means bytes.
pub fn parse_size(s: &str) -> Result<Size, String> {
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
    n.checked_mul(unit_bytes).map(Size).ok_or_else(|| format!("size {s:?} is too large"))
}

/// A number of bytes per second, as `--max-rate` and `--max-send-rate` take it
/// ([`parse_rate`]). A type of its own, like [`Size`], so that the config file asks for
/// a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rate(u64);

impl Rate {
    pub fn from_bytes_per_second(bytes: u64) -> Rate {
        Rate(bytes)
    }

    pub fn bytes_per_second(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for Rate {
    /// In the largest binary unit that divides it: `8MiB/s`, `64KiB/s`, `1000000B/s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = [(1u64 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        match units.iter().find(|(size, _)| self.0 != 0 && self.0.is_multiple_of(*size)) {
            Some((size, unit)) => write!(f, "{}{unit}/s", self.0 / size),
            None => write!(f, "{}B/s", self.0),
        }
    }
}

/// `8MiB/s`, `500KiB/s`, `1MB/s`: a size ([`parse_size`]'s units) per second; the
/// `/s` may be left out, and a bare number means bytes per second. Zero is refused: a
/// rate of nothing would stop every transfer.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let trimmed = s.trim();
    let size = trimmed.strip_suffix("/s").unwrap_or(trimmed);
    let bytes = parse_size(size)
        .map_err(|_| {
            format!("{s:?} is not a rate: write a whole number with a unit, like 8MiB/s, 500KiB/s, 1MB/s")
        })?
        .bytes();
    if bytes == 0 {
        return Err("a rate must be more than 0B/s".to_owned());
    }
    Ok(Rate(bytes))
}

/// `--max-rate`: a rate ([`parse_rate`]) of at least
/// [`MIN_MAX_RATE`](fts_net::client::rate::MIN_MAX_RATE), 64 KiB/s.
pub fn parse_max_rate(s: &str) -> Result<Rate, String> {
    let rate = parse_rate(s)?;
    let floor = Rate(fts_net::client::rate::MIN_MAX_RATE);
    if rate < floor {
        return Err(format!(
            "{rate} is below the lowest --max-rate, {floor}: four times the minimum send rate of an fts \
             server (16KiB/s by default, its --min-send-rate), which cuts off a host that reads slower \
             as a slow reader"
        ));
    }
    Ok(rate)
}

/// A whole number of at least 1 (for limits where 0 would refuse everything), as
/// whichever `NonZero` type the flag holds.
pub fn parse_at_least_one<T: TryFrom<NonZeroU64>>(s: &str) -> Result<T, String> {
    let n: u64 = s.trim().parse().map_err(|_| format!("{s:?} is not a whole number of at least 1"))?;
    let n = NonZeroU64::new(n).ok_or_else(|| "must be at least 1".to_owned())?;
    T::try_from(n).map_err(|_| format!("{s:?} is too large"))
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
        assert_eq!(parse_size("64GiB"), Ok(Size(64 << 30)));
        assert_eq!(parse_size("16KiB"), Ok(Size(16 << 10)));
        assert_eq!(parse_size("1MB"), Ok(Size(1_000_000)));
        assert_eq!(parse_size("123"), Ok(Size(123)));
        for bad in ["", "GiB", "1.5GiB", "1 zettabyte", "99999999999TiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rates_are_sizes_per_second() {
        assert_eq!(parse_rate("8MiB/s"), Ok(Rate(8 << 20)));
        assert_eq!(parse_rate("500KiB/s"), Ok(Rate(500 << 10)));
        assert_eq!(parse_rate("1MB/s"), Ok(Rate(1_000_000)));
        assert_eq!(parse_rate(" 2GiB "), Ok(Rate(2 << 30)), "the /s may be left out");
        assert_eq!(parse_rate("65536"), Ok(Rate(65536)), "a bare number is bytes per second");
        for bad in ["", "/s", "8MiB/h", "8 MiB per second", "1.5MiB/s", "99999999999TiB/s"] {
            assert!(parse_rate(bad).unwrap_err().contains("is not a rate"), "{bad}");
        }
        assert!(parse_rate("0B/s").unwrap_err().contains("more than 0B/s"));
        assert_eq!(Rate(8 << 20).to_string(), "8MiB/s");
        assert_eq!(Rate(1_000_000).to_string(), "1000000B/s");
        assert_eq!(Rate(1536).to_string(), "1536B/s");
    }

    #[test]
    fn max_rate_refuses_a_host_the_server_would_cut_off() {
        assert_eq!(parse_max_rate("64KiB/s"), Ok(Rate(64 << 10)));
        let err = parse_max_rate("10KiB/s").unwrap_err();
        assert!(err.contains("10KiB/s is below the lowest --max-rate, 64KiB/s"), "{err}");
        assert!(err.contains("slow reader") && err.contains("--min-send-rate"), "{err}");
    }

    #[test]
    fn percentages_stay_within_0_and_100() {
        assert_eq!(parse_percent("10%"), Ok(10));
        assert_eq!(parse_percent("0"), Ok(0));
        assert!(parse_percent("101%").is_err());
        assert!(parse_percent("-1%").is_err());
    }

    #[test]
    fn limits_of_at_least_one_refuse_zero_and_fit_their_type() {
        assert_eq!(parse_at_least_one::<std::num::NonZeroU32>("64").map(|n| n.get()), Ok(64));
        assert_eq!(parse_at_least_one::<std::num::NonZeroUsize>(" 7 ").map(|n| n.get()), Ok(7));
        assert_eq!(parse_at_least_one::<std::num::NonZeroU32>("0"), Err("must be at least 1".to_owned()));
        assert!(parse_at_least_one::<std::num::NonZeroU32>("many").unwrap_err().contains("whole number"));
        assert!(parse_at_least_one::<std::num::NonZeroU32>("4294967296").unwrap_err().contains("too large"));
    }

    #[test]
    fn a_positive_duration_refuses_zero_naming_the_flag() {
        let cmd = clap::Command::new("fts").arg(
            clap::Arg::new("first-byte-timeout").long("first-byte-timeout").value_parser(PositiveDuration),
        );
        let ok = cmd.clone().try_get_matches_from(["fts", "--first-byte-timeout", "3s"]).unwrap();
        assert_eq!(ok.get_one::<Duration>("first-byte-timeout"), Some(&Duration::from_secs(3)));
        let err = cmd.try_get_matches_from(["fts", "--first-byte-timeout", "0s"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("--first-byte-timeout must be longer than 0s"), "{err}");
    }
}
