//! Names that cross the wire (PROTOCOL.md section 4), as types that cannot hold an
//! invalid value.
//!
//! Every constructor checks the syntax once; after that a `ClientId`, `GroupName`,
//! `Target`, `FileName`, `FileHash` or `Published` is known good wherever it travels,
//! so no later layer has to remember to validate. Each type serializes as its plain
//! string and deserializes through the same check, so a header with a bad name fails
//! to decode instead of carrying the bad name inward.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::calendar::{civil_from_days, days_from_civil, days_in_month};
use crate::keys::{lower_hex, lower_hex_value};

/// A name that did not match its syntax. The message says what is allowed, so it can
/// be shown to an operator as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} {value:?}: {rule}")]
pub struct NameError {
    /// What kind of name it was meant to be ("client id", "file name", ...).
    pub kind: &'static str,
    /// The rejected input, truncated to keep log lines short.
    pub value: String,
    /// What the syntax allows, in words.
    pub rule: &'static str,
}

impl NameError {
    pub(crate) fn new(kind: &'static str, value: &str, rule: &'static str) -> Self {
        let mut value = value.to_owned();
        if value.len() > 80 {
            let mut cut = 80;
            while !value.is_char_boundary(cut) {
                cut -= 1;
            }
            value.truncate(cut);
            value.push_str("...");
        }
        NameError { kind, value, rule }
    }
}

/// Words that can never be client ids: they name targets or credential files.
pub const RESERVED_CLIENT_IDS: [&str; 4] = ["all", "ca", "server", "signing"];

const ID_RULE: &str = "1 to 63 characters from a-z 0-9 . _ -, starting with a-z or 0-9";
const CLIENT_ID_RULE: &str = "1 to 63 characters from a-z 0-9 . _ -, starting with a-z or 0-9, \
     and not one of the reserved words all, ca, server, signing";
const TARGET_RULE: &str = "a client id, the word `all`, or `group:` followed by a group name \
     (1 to 63 characters from a-z 0-9 . _ -, starting with a-z or 0-9)";
const FILE_NAME_RULE: &str = "1 to 200 characters from A-Z a-z 0-9 . _ + -, starting with a \
     letter or digit (one path component: no `/`, `\\`, leading dot, NUL or newline)";
const FILE_HASH_RULE: &str = "`sha256:` followed by 64 lower-case hex digits";
const PUBLISHED_RULE: &str = "a UTC time written exactly as YYYY-MM-DDTHH:MM:SSZ";

/// `^[a-z0-9][a-z0-9._-]{0,62}$`: the shared syntax of client ids and group names.
fn is_id_syntax(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
}

macro_rules! string_name {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// The name as the string that crosses the wire.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                Self::parse(&s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_name!(
    /// A client's id: `^[a-z0-9][a-z0-9._-]{0,62}$` and not a reserved word. Bound to
    /// the subject CN of the client's certificate.
    ClientId
);

impl ClientId {
    /// A client id from text: refused when it breaks the syntax or is one of
    /// [`RESERVED_CLIENT_IDS`]; the error states the rule.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if is_id_syntax(s) && !RESERVED_CLIENT_IDS.contains(&s) {
            Ok(ClientId(s.to_owned()))
        } else {
            Err(NameError::new("client id", s, CLIENT_ID_RULE))
        }
    }
}

string_name!(
    /// A group name: `^[a-z0-9][a-z0-9._-]{0,62}$`. Bound to a subject O value of the
    /// client's certificate.
    GroupName
);

impl GroupName {
    /// A group name from text: refused when it breaks the syntax; the error states
    /// the rule.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        if is_id_syntax(s) {
            Ok(GroupName(s.to_owned()))
        } else {
            Err(NameError::new("group name", s, ID_RULE))
        }
    }
}

/// Who an entry is published for: one client, every client, or a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// One client, by its id.
    Client(ClientId),
    /// Every client: the wire spelling `all`.
    All,
    /// Every client in the group: the wire spelling `group:NAME`.
    Group(GroupName),
}

impl Target {
    const GROUP_PREFIX: &'static str = "group:";

    /// Reads `all`, `group:NAME` or a client id.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::new("target", s, TARGET_RULE);
        if s == "all" {
            Ok(Target::All)
        } else if let Some(group) = s.strip_prefix(Self::GROUP_PREFIX) {
            GroupName::parse(group).map(Target::Group).map_err(|_| bad())
        } else {
            ClientId::parse(s).map(Target::Client).map_err(|_| bad())
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Client(id) => f.write_str(id.as_str()),
            Target::All => f.write_str("all"),
            Target::Group(g) => write!(f, "{}{}", Self::GROUP_PREFIX, g),
        }
    }
}

impl FromStr for Target {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s)
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

string_name!(
    /// The name a file is installed under on a host: one safe path component,
    /// `^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$`.
    FileName
);

impl FileName {
    /// The longest file name accepted, in bytes.
    pub const MAX_LEN: usize = 200;

    /// A file name from text: refused unless it is one path component that starts
    /// with a letter or digit (so never hidden, `.` or `..`).
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= Self::MAX_LEN
            && b[0].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-'));
        if ok { Ok(FileName(s.to_owned())) } else { Err(NameError::new("file name", s, FILE_NAME_RULE)) }
    }
}

/// A SHA-256 digest, written `sha256:` + 64 lower-case hex digits on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileHash([u8; 32]);

impl FileHash {
    const PREFIX: &'static str = "sha256:";

    /// Reads `sha256:` and 64 lower-case hex digits; upper case is refused.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::new("file hash", s, FILE_HASH_RULE);
        let hex = s.strip_prefix(Self::PREFIX).ok_or_else(bad)?;
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in hex.as_bytes().chunks_exact(2).enumerate() {
            let hi = lower_hex_value(pair[0]).ok_or_else(bad)?;
            let lo = lower_hex_value(pair[1]).ok_or_else(bad)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(FileHash(out))
    }

    /// Wraps a digest computed locally (always valid).
    pub fn from_digest(digest: [u8; 32]) -> Self {
        FileHash(digest)
    }

    /// The 32 bytes of the digest, to compare with one computed over a body.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits, without the `sha256:` prefix (blob file names).
    pub fn hex(&self) -> String {
        lower_hex(&self.0)
    }
}

impl fmt::Display for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.hex())
    }
}

impl fmt::Debug for FileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileHash({self})")
    }
}

impl FromStr for FileHash {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s)
    }
}

impl Serialize for FileHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A publication time, exactly `YYYY-MM-DDTHH:MM:SSZ` (UTC, no fraction), with a real
/// calendar date and time of day. Ordering is chronological, because the fixed-width
/// form sorts as text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Published(String);

impl Published {
    /// Checks the exact form and that the date and time exist (no leap seconds).
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::new("published time", s, PUBLISHED_RULE);
        let b = s.as_bytes();
        if b.len() != 20 {
            return Err(bad());
        }
        let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
        if !shape_ok {
            return Err(bad());
        }
        let num = |r: std::ops::Range<usize>| -> u32 {
            b[r].iter().fold(0, |acc, &c| acc * 10 + u32::from(c - b'0'))
        };
        let (year, month, day) = (num(0..4), num(5..7), num(8..10));
        let (hour, minute, second) = (num(11..13), num(14..16), num(17..19));
        let date_ok = (1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month);
        // No leap seconds: hosts compare these as text, and 60 would sort oddly.
        if !date_ok || hour > 23 || minute > 59 || second > 59 {
            return Err(bad());
        }
        Ok(Published(s.to_owned()))
    }

    /// Builds the time from seconds since the Unix epoch (UTC). Times before 1970 or
    /// after year 9999 cannot be written in this form and are clamped into range.
    pub fn from_unix_seconds(secs: u64) -> Self {
        const MAX: u64 = 253_402_300_799; // 9999-12-31T23:59:59Z
        let secs = secs.min(MAX);
        let days = secs / 86_400;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        Published(format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, (rem / 60) % 60, rem % 60))
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> u64 {
        let b = self.0.as_bytes();
        let num = |r: std::ops::Range<usize>| -> u64 {
            b[r].iter().fold(0, |acc, &c| acc * 10 + u64::from(c - b'0'))
        };
        let days = days_from_civil(num(0..4), num(5..7), num(8..10));
        days * 86_400 + num(11..13) * 3600 + num(14..16) * 60 + num(17..19)
    }

    /// The time in its wire form, `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Published {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Published {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::parse(s)
    }
}

impl Serialize for Published {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Published {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_follow_the_syntax_and_refuse_reserved_words() {
        for ok in ["web-01", "a", "0", "a.b_c-d", &"a".repeat(63)] {
            assert!(ClientId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "-a",
            ".a",
            "_a",
            "a/b",
            "a b",
            &"a".repeat(64),
            "all",
            "ca",
            "server",
            "signing",
            "é",
        ] {
            assert!(ClientId::parse(bad).is_err(), "{bad}");
        }
        assert!(GroupName::parse("all").is_ok(), "reserved words are only reserved for ids");
    }

    #[test]
    fn targets_round_trip_through_text() {
        for s in ["web-01", "all", "group:web", "group:a.b"] {
            assert_eq!(Target::parse(s).unwrap().to_string(), s);
        }
        for bad in ["group:", "group:Web", "ca", "Group:web", "group:web/x", ""] {
            let err = Target::parse(bad).unwrap_err();
            assert!(err.to_string().contains("group:"), "message says what is allowed: {err}");
        }
    }

    #[test]
    fn file_names_are_one_safe_path_component() {
        for ok in ["openssl-3.0.19.deb", "a+b.bin", "A", &"x".repeat(200)] {
            assert!(FileName::parse(ok).is_ok(), "{ok}");
        }
        for bad in
            ["", ".hidden", "../x", "a/b", "a\\b", "a\0b", "a\nb", "-a", "+a", "a b", &"x".repeat(201), "é"]
        {
            assert!(FileName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_hashes_are_lower_case_sha256_hex() {
        let good = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(FileHash::parse(good).unwrap().to_string(), good);
        assert!(FileHash::parse(&good.to_uppercase()).is_err());
        assert!(FileHash::parse(&good.replace("sha256:", "sha512:")).is_err());
        assert!(FileHash::parse(&good[..good.len() - 1]).is_err());
        assert!(FileHash::parse(&format!("{good}0")).is_err());
        assert!(FileHash::parse(&good.replace('e', "E")).is_err());
    }

    #[test]
    fn published_times_are_exact_utc_seconds() {
        for ok in ["2026-11-25T17:00:00Z", "2024-02-29T23:59:59Z", "1970-01-01T00:00:00Z"] {
            assert!(Published::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "2026-11-25T17:00:00",
            "2026-11-25T17:00:00.5Z",
            "2026-11-25 17:00:00Z",
            "2026-11-25T17:00:00+00:00",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-31T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T23:60:00Z",
            "2026-11-25T23:59:60Z",
            "2026-11-25t17:00:00z",
        ] {
            assert!(Published::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn published_converts_to_and_from_unix_seconds() {
        let p = Published::from_unix_seconds(1_795_626_000);
        assert_eq!(p.as_str(), "2026-11-25T17:00:00Z");
        assert_eq!(p.unix_seconds(), 1_795_626_000);
        assert_eq!(Published::from_unix_seconds(0).as_str(), "1970-01-01T00:00:00Z");
        assert_eq!(Published::from_unix_seconds(951_782_400).as_str(), "2000-02-29T00:00:00Z");
        for secs in [0u64, 59, 86_399, 951_782_399, 4_102_444_800, 253_402_300_799] {
            let p = Published::from_unix_seconds(secs);
            assert!(Published::parse(p.as_str()).is_ok());
            assert_eq!(p.unix_seconds(), secs);
        }
    }
}
