//! The two signature fields of a `file` header, as types that cannot hold an invalid
//! value: `key-id` (16 lower-case hex digits) and `signature` (standard padded base64
//! of exactly 64 bytes). Parsing them is syntax only; what they mean is checked by
//! fts-trust.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::names::NameError;

const KEY_ID_RULE: &str = "16 lower-case hex digits";
const SIGNATURE_RULE: &str = "the standard base64 (with padding) of 64 bytes";

/// The id of a release signing key: the first 8 bytes of SHA-256 over the raw 32-byte
/// Ed25519 public key, written as 16 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// Reads the 16 lower-case hex digits of the wire form; anything else is refused.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::new("key id", s, KEY_ID_RULE);
        let b = s.as_bytes();
        if b.len() != 16 {
            return Err(bad());
        }
        let mut out = [0u8; 8];
        for (i, pair) in b.chunks_exact(2).enumerate() {
            let hi = lower_hex_value(pair[0]).ok_or_else(bad)?;
            let lo = lower_hex_value(pair[1]).ok_or_else(bad)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(KeyId(out))
    }

    /// Builds the id from the first 8 bytes of the key's SHA-256 digest.
    pub fn from_prefix(prefix: [u8; 8]) -> Self {
        KeyId(prefix)
    }

    /// The 8 bytes of the id, as they prefix the key's SHA-256.
    pub fn bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&lower_hex(&self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A 64-byte Ed25519 signature as carried in a `file` header.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Strict, canonical base64: the standard alphabet, padding required, and unused
    /// bits zero, so each signature has exactly one accepted spelling.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        crate::base64::decode_fixed(s)
            .map(Signature)
            .ok_or_else(|| NameError::new("signature", s, SIGNATURE_RULE))
    }

    /// Wraps 64 signature bytes made or received locally (any bytes are well-formed).
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// The 64 bytes an Ed25519 verifier takes.
    pub fn bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::base64::encode(&self.0))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

pub(crate) fn lower_hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

macro_rules! serde_via_text {
    ($name:ident) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::parse(s)
            }
        }
    };
}

serde_via_text!(KeyId);
serde_via_text!(Signature);

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR_SIG: &str =
        "yqeg7FM1Rr9YHfvW3tD2uFV9ChY1NhZMZ2Q1JAY/D5hbQp+7NBhUydtr4qEMtXDX/g4oLvkTaGviyh7zFrXKBA==";

    #[test]
    fn signatures_round_trip_through_base64() {
        let sig = Signature::parse(VECTOR_SIG).unwrap();
        assert_eq!(sig.to_string(), VECTOR_SIG);
        for bytes in [[0u8; 64], [255u8; 64]] {
            let s = Signature::from_bytes(bytes);
            assert_eq!(Signature::parse(&s.to_string()).unwrap(), s);
        }
    }

    #[test]
    fn signatures_have_one_spelling() {
        assert!(Signature::parse(&VECTOR_SIG.replace("==", "")).is_err(), "padding required");
        assert!(Signature::parse(&VECTOR_SIG.replace("BA==", "BB==")).is_err(), "unused bits must be zero");
        assert!(Signature::parse(&VECTOR_SIG.replace('/', "_")).is_err(), "standard alphabet only");
        assert!(Signature::parse(&VECTOR_SIG[4..]).is_err(), "64 bytes exactly");
        assert!(Signature::parse(&format!("AAAA{VECTOR_SIG}")).is_err());
    }

    #[test]
    fn key_ids_are_16_lower_hex_digits() {
        let id = KeyId::parse("4d06ee28107bfc40").unwrap();
        assert_eq!(id.to_string(), "4d06ee28107bfc40");
        for bad in ["4D06EE28107BFC40", "4d06ee28107bfc4", "4d06ee28107bfc400", "4d06ee28107bfc4g", ""] {
            assert!(KeyId::parse(bad).is_err(), "{bad}");
        }
    }
}
