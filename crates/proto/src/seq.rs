//! Sequence numbers: where an entry stands in its target's sequence.
//!
//! Per target, entries are numbered 1, 2, 3 ... in publish order, without gaps
//! (PROTOCOL.md section 4), and a client keeps `since`, the number of entries of the
//! target it has applied (0 before the first). The two are different things: a
//! [`Seq`] is never 0, a `since` is a count. The one step between them,
//! [`Seq::after`], is written once here, so "the next entry" cannot be off by one in
//! the store that numbers entries, the server that answers from `since`, or the client
//! that checks each entry against it.

use std::fmt;
use std::num::NonZeroU64;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::wire_int::{self, MAX_WIRE_INT};

/// The place of an entry in its target's sequence: 1 for the first entry published
/// for a target, then each next one. Always in `1..=MAX_WIRE_INT`, so it can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seq(NonZeroU64);

impl Seq {
    /// The first entry of a target.
    pub const FIRST: Seq = Seq(NonZeroU64::MIN);

    /// `n` as a sequence number, if it is one (not 0, not above [`MAX_WIRE_INT`]).
    pub fn new(n: u64) -> Option<Seq> {
        NonZeroU64::new(n).filter(|n| n.get() <= MAX_WIRE_INT).map(Seq)
    }

    /// The entry that follows `since` applied entries: `since + 1`. `None` once the
    /// sequence is exhausted (2^53 - 1 entries), which no store reaches.
    pub fn after(since: u64) -> Option<Seq> {
        since.checked_add(1).and_then(Seq::new)
    }

    /// The number, as sent and signed.
    pub fn get(self) -> u64 {
        self.0.get()
    }

    /// Where this entry sits in a list of the target's entries kept from index 0.
    pub fn index(self) -> usize {
        usize::try_from(self.get() - 1).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A seq in decimal, from 1 (for command lines).
impl std::str::FromStr for Seq {
    type Err = String;
    fn from_str(s: &str) -> Result<Seq, String> {
        let n: u64 =
            s.parse().map_err(|_| format!("{s:?} is not a sequence number (a whole number from 1)"))?;
        Seq::new(n).ok_or_else(|| "sequence numbers start at 1".to_owned())
    }
}

impl From<Seq> for u64 {
    fn from(seq: Seq) -> u64 {
        seq.get()
    }
}

impl Serialize for Seq {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        wire_int::serialize(&self.get(), serializer)
    }
}

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let n = wire_int::deserialize(deserializer)?;
        Seq::new(n).ok_or_else(|| serde::de::Error::custom("sequence numbers start at 1, not 0"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_is_never_zero_nor_beyond_the_wire_range() {
        assert_eq!(Seq::new(0), None);
        assert_eq!(Seq::new(1), Some(Seq::FIRST));
        assert_eq!(Seq::new(MAX_WIRE_INT).map(Seq::get), Some(MAX_WIRE_INT));
        assert_eq!(Seq::new(MAX_WIRE_INT + 1), None);
    }

    #[test]
    fn the_entry_after_since_is_since_plus_one_and_its_index_is_since() {
        assert_eq!(Seq::after(0), Some(Seq::FIRST));
        let seq = Seq::after(41).unwrap();
        assert_eq!((seq.get(), seq.index()), (42, 41));
        assert_eq!(Seq::after(MAX_WIRE_INT), None);
        assert_eq!(Seq::after(u64::MAX), None);
    }

    #[test]
    fn it_is_a_plain_integer_on_the_wire_and_zero_is_refused() {
        let seq = Seq::new(13).unwrap();
        assert_eq!(serde_json::to_string(&seq).unwrap(), "13");
        assert_eq!(serde_json::from_str::<Seq>("13").unwrap(), seq);
        let zero = serde_json::from_str::<Seq>("0").unwrap_err().to_string();
        assert!(zero.contains("start at 1"), "{zero}");
        assert!(serde_json::from_str::<Seq>("1.0").is_err());
        assert!(serde_json::from_str::<Seq>("9007199254740992").is_err());
    }
}
