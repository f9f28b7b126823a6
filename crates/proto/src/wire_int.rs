//! The integer rule of PROTOCOL.md section 2: a JSON number without fraction or
//! exponent, 0 <= n <= 2^53 - 1 (so that every JSON implementation, including those
//! that only have doubles, reads it exactly).
//!
//! `1.0`, `1e3`, `-1`, `-0` and `9007199254740992` are all mistyped. serde_json
//! hands a number written with a fraction or an exponent to the visitor as a float
//! even when its value is whole, so refusing `visit_f64` is what refuses them.
//!
//! Use it on a `u64` field with `#[serde(with = "fts_proto::wire_int")]`, on an
//! `Option<u64>` with `#[serde(default, with = "fts_proto::wire_int::option")]`, or
//! through the [`WireInt`] newtype (map values, hand-written decoders). Serializing a
//! value above the range fails, so this side never emits a header the peer must
//! refuse.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest integer a header may carry: 2^53 - 1.
pub const MAX_WIRE_INT: u64 = (1 << 53) - 1;

const EXPECTED: &str = "an integer from 0 to 2^53 - 1 written without fraction or exponent";

/// A `u64` that deserializes only from a conforming wire integer and refuses to
/// serialize above [`MAX_WIRE_INT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct WireInt(pub u64);

impl Serialize for WireInt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize(&self.0, serializer)
    }
}

impl<'de> Deserialize<'de> for WireInt {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize(deserializer).map(WireInt)
    }
}

/// Serializes a `u64` field, failing above [`MAX_WIRE_INT`].
pub fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    if *value > MAX_WIRE_INT {
        return Err(serde::ser::Error::custom(format_args!(
            "integer {value} is above 2^53 - 1 and cannot be sent"
        )));
    }
    serializer.serialize_u64(*value)
}

/// Deserializes a `u64` field from a conforming wire integer.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    deserializer.deserialize_u64(WireIntVisitor)
}

struct WireIntVisitor;

impl Visitor<'_> for WireIntVisitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v <= MAX_WIRE_INT { Ok(v) } else { Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)) }
    }

    // serde_json never calls this for a non-negative number, but other formats may.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_value(de::Unexpected::Signed(v), &self)),
        }
    }

    // Deliberately no visit_f64: the default refuses floats, and a float here
    // means the number was written with a fraction or an exponent.
}

/// The same rule for an optional field (absent means `None`; `null` is refused).
pub mod option {
    use serde::{Deserializer, Serializer};

    /// Serializes `Some(n)` as a wire integer. Pair the field with
    /// `skip_serializing_if = "Option::is_none"`; `None` is written as `null`
    /// otherwise.
    pub fn serialize<S: Serializer>(value: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Deserializes a present field; combine with `#[serde(default)]` so that an
    /// absent one is `None`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        super::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<u64, serde_json::Error> {
        serde_json::from_str::<WireInt>(json).map(|n| n.0)
    }

    #[test]
    fn plain_integers_in_range_are_accepted() {
        assert_eq!(parse("0").unwrap(), 0);
        assert_eq!(parse("60").unwrap(), 60);
        assert_eq!(parse("9007199254740991").unwrap(), MAX_WIRE_INT);
    }

    #[test]
    fn fractions_exponents_negatives_and_big_numbers_are_mistyped() {
        for bad in [
            "1.0",
            "1e3",
            "1E3",
            "0.5",
            "-1",
            "-0",
            "9007199254740992",
            "18446744073709551615",
            "18446744073709551616",
            "\"1\"",
            "true",
            "null",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_above_the_range_are_never_serialized() {
        assert!(serde_json::to_string(&WireInt(MAX_WIRE_INT + 1)).is_err());
        assert_eq!(serde_json::to_string(&WireInt(MAX_WIRE_INT)).unwrap(), "9007199254740991");
    }
}
