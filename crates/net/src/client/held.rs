//! Held targets (PROTOCOL.md section 3.1.1): a target whose next entry cannot be
//! applied yet waits, on its own, while the host's other targets go on.
//!
//! Owns: what a hold records ([`Hold`]: the entry, why, since when, how often it was
//! tried, when to try again, and what would end it early), the backoff between tries
//! ([`backoff`]), and the test of whether a hold's cause has gone ([`HoldCause`]).
//! The client decides when to hold (`Client::take_file`); the state keeps the holds
//! across runs ([`State::held`](crate::client::state::State::held)).
//!
//! Why holding is safe: a hold never applies an entry, so `since` stays where it
//! was and the entry is fetched again when the hold ends: a forged or broken frame
//! can delay a target, never make the host skip a genuine entry. The backoff is per
//! entry and capped, so a hostile server can make a host download a refused file at
//! most once per [`MAX_BACKOFF`] once the cap is reached.

use std::time::Duration;

use fts_proto::{FileName, KeyId, Published, RejectReason, Seq};
use serde::{Deserialize, Serialize};

/// The longest wait between two tries of a held entry.
pub const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);

/// One held target: the entry it stopped at and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Hold {
    /// The entry the target is held at (`since + 1`).
    pub seq: Seq,
    /// Why it cannot be applied (reported once per reason).
    pub reason: RejectReason,
    /// When the target was first held at this entry.
    pub held_since: Published,
    /// How many times the entry was tried and failed.
    pub tries: u32,
    /// When the backoff ends: the target is then asked for again.
    pub retry_at: Published,
    /// What ends the hold before `retry_at`.
    pub cause: HoldCause,
    /// The newest seq of the target the server last said it has (`done`'s `heads`),
    /// to show how many entries wait behind this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<u64>,
}

impl Hold {
    /// How many later entries of the target wait behind the held one, when known.
    pub fn waiting_behind(&self) -> Option<u64> {
        self.newest.map(|newest| newest.saturating_sub(self.seq.get()))
    }
}

/// What a hold waits for, besides its backoff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HoldCause {
    /// The file is larger than `--max-file-size`: ends when the limit allows it.
    TooLarge {
        /// The signed size.
        file_size: u64,
    },
    /// Not enough free space: ends when the partial folder has this much free.
    NoSpace {
        /// The bytes the file needs.
        needed: u64,
    },
    /// Signed by a key this host does not trust: ends when it trusts it.
    UntrustedKey {
        /// The key that signed the entry.
        key_id: KeyId,
    },
    /// `--hold-on-hook-failure`: the hook of this installed file fails; ends when it
    /// succeeds (a retry, or `fts poll --rerun-hook`).
    HookFailing {
        /// The installed file whose hook fails.
        file_name: FileName,
    },
    /// Anything else (a bad signature, a body that is not what was signed, an entry
    /// out of sequence, an I/O failure): only the backoff ends it.
    Backoff,
}

/// What the host knows now that may end a hold early.
pub struct Conditions<'a> {
    /// `--max-file-size`.
    pub max_file_size: u64,
    /// Free bytes in the partial folder, when they could be read.
    pub available_space: Option<u64>,
    /// Whether a key is trusted now.
    pub trusts: &'a dyn Fn(&KeyId) -> bool,
    /// Whether the hook of an installed file still fails.
    pub hook_failing: &'a dyn Fn(&FileName) -> bool,
}

impl HoldCause {
    /// Whether the cause has gone, so that the entry is worth trying now.
    pub fn has_cleared(&self, now: &Conditions<'_>) -> bool {
        match self {
            HoldCause::TooLarge { file_size } => *file_size <= now.max_file_size,
            HoldCause::NoSpace { needed } => now.available_space.is_some_and(|free| free >= *needed),
            HoldCause::UntrustedKey { key_id } => (now.trusts)(key_id),
            HoldCause::HookFailing { file_name } => !(now.hook_failing)(file_name),
            HoldCause::Backoff => false,
        }
    }
}

/// The wait after the `tries`-th failure (from 1): `base` doubled each time, capped
/// at [`MAX_BACKOFF`] (and never below `base`).
pub fn backoff(base: Duration, tries: u32) -> Duration {
    let doublings = tries.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << doublings).min(MAX_BACKOFF).max(base.min(MAX_BACKOFF))
}

/// When a backoff of `wait` from now ends, in the whole seconds the state keeps:
/// rounded up, so that a retry is never due before `wait` has passed (a retry is due
/// once the clock's whole seconds reach it).
pub fn retry_at_after(wait: Duration) -> Published {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let end = now.saturating_add(wait);
    Published::from_unix_seconds(end.as_secs().saturating_add(u64::from(end.subsec_nanos() > 0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_its_base_and_stops_at_six_hours() {
        let base = Duration::from_secs(10);
        let waits: Vec<u64> = (1..=15).map(|n| backoff(base, n).as_secs()).collect();
        assert_eq!(waits[..5], [10, 20, 40, 80, 160]);
        assert_eq!(*waits.last().unwrap(), 6 * 3600);
        assert_eq!(backoff(base, 0).as_secs(), 10);
        assert_eq!(backoff(Duration::from_secs(100_000), 1), MAX_BACKOFF);
    }

    #[test]
    fn a_retry_is_never_due_before_its_backoff_has_passed() {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let at = retry_at_after(Duration::from_secs(1)).unix_seconds();
        assert!(Duration::from_secs(at) >= before + Duration::from_secs(1), "{at} {before:?}");
        assert!(Duration::from_secs(at) <= before + Duration::from_secs(3));
    }

    #[test]
    fn each_cause_clears_only_when_what_it_waits_for_has_changed() {
        let key = KeyId::from_prefix([1; 8]);
        let name = FileName::parse("app.conf").unwrap();
        let trusts_none = |_: &KeyId| false;
        let trusts_all = |_: &KeyId| true;
        let failing = |_: &FileName| true;
        let fine = |_: &FileName| false;
        let before = Conditions {
            max_file_size: 100,
            available_space: Some(10),
            trusts: &trusts_none,
            hook_failing: &failing,
        };
        let after = Conditions {
            max_file_size: 1000,
            available_space: Some(500),
            trusts: &trusts_all,
            hook_failing: &fine,
        };
        for cause in [
            HoldCause::TooLarge { file_size: 500 },
            HoldCause::NoSpace { needed: 500 },
            HoldCause::UntrustedKey { key_id: key },
            HoldCause::HookFailing { file_name: name },
        ] {
            assert!(!cause.has_cleared(&before), "{cause:?}");
            assert!(cause.has_cleared(&after), "{cause:?}");
        }
        assert!(!HoldCause::Backoff.has_cleared(&after));
        let unknown_space = Conditions { available_space: None, ..after };
        assert!(!HoldCause::NoSpace { needed: 1 }.has_cleared(&unknown_space));
    }
}
