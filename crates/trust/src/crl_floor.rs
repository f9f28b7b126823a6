//! The server's rule that CRL numbers never go back. For each CA, the highest CRL
//! number it has had in force is the lowest it accepts from then on, so a stale copy
//! of `ca.crl` (an old sync source, a restored backup, a configuration push) cannot
//! quietly un-revoke the certificates revoked since. [`crate::ClientAuth`] applies
//! it to every CRL set it puts in force, at start and at each reload; this module
//! owns the numbers and their file.
//!
//! - A CA is named by its issuer name and authority key id ([`CrlIssuer`]).
//! - Only CRLs whose signature verifies against one of the server's client CA
//!   certificates count (the caller checks, [`crate::Crl::is_signed_by`]): a forged CRL
//!   could otherwise raise the floor out of reach and lock out every genuine CRL.
//! - A CRL without a CRL number cannot be ordered: it is accepted only while no
//!   numbered CRL of its CA was ever in force.
//! - Equal numbers are accepted (the same CRL read again).
//! - Rolling back on purpose (a CA restored from an older backup) takes
//!   `fts serve --accept-older-crl`: one older CRL set is accepted once, and its
//!   numbers become the new floor.
//!
//! The floor survives restarts in a small JSON file that the server rewrites durably
//! (`files.rs`, on fts-fs's durable writes) after each CRL set it puts in
//! force. `fts serve` keeps it in its status folder beside
//! `server.json`, as [`CRL_STATE_FILE`], whose name can never be a client's status
//! file (those are `<client-id>.json`, and `server` is a reserved id besides).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::crl::Crl;
use crate::error::Error;
use crate::files::{Mode, read_optional, write_atomic};

/// The file name `fts serve` gives the floor, in its status folder.
pub const CRL_STATE_FILE: &str = "server.state";

/// The `format` written in the file.
const FORMAT: u32 = 1;

/// The file is a few lines per CA; anything larger is not ours.
const MAX_STATE_FILE: u64 = 1 << 20;

/// The CA a CRL speaks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CrlIssuer {
    /// The issuer's distinguished name, as text.
    pub name: String,
    /// The authority key identifier, in hex, when the CRL carries one.
    pub key_id: Option<String>,
}

impl fmt::Display for CrlIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key_id {
            Some(id) => write!(f, "{} (key id {id})", self.name),
            None => write!(f, "{} (no key id)", self.name),
        }
    }
}

/// A CRL that would take a CA's CRL number back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OlderCrl {
    /// The CA whose CRL it is (its name and authority key id).
    pub issuer: CrlIssuer,
    /// The refused CRL's number (`None`: it has none).
    pub number: Option<u64>,
    /// The highest number of that CA already in force.
    pub in_force: u64,
}

/// The lowest CRL number accepted from each CA.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrlFloor {
    numbers: BTreeMap<CrlIssuer, u64>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct StateFile {
    format: u32,
    crl_numbers: Vec<StateEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct StateEntry {
    issuer: String,
    authority_key_id: Option<String>,
    crl_number: u64,
}

impl CrlFloor {
    /// Reads the floor from `path`; a missing file is an empty floor (a first start).
    /// A file that is there but not a floor is an error: guessing would either drop
    /// the protection or lock every CRL out.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let Some(bytes) = read_optional(path, MAX_STATE_FILE)? else { return Ok(Self::default()) };
        let file: StateFile = serde_json::from_slice(&bytes).map_err(|e| {
            Error::bad_file_because(
                path,
                "not a CRL state file (restore it, or delete it to start afresh)",
                e,
            )
        })?;
        if file.format != FORMAT {
            return Err(Error::bad_file(
                path,
                format!("CRL state format {} (this fts reads {FORMAT})", file.format),
            ));
        }
        let mut floor = Self::default();
        for entry in file.crl_numbers {
            let issuer = CrlIssuer { name: entry.issuer, key_id: entry.authority_key_id };
            let number = floor.numbers.entry(issuer).or_insert(entry.crl_number);
            *number = (*number).max(entry.crl_number);
        }
        Ok(floor)
    }

    /// Writes the floor to `path` durably: after a crash the file holds this floor or
    /// the previous one, whole.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let file = StateFile {
            format: FORMAT,
            crl_numbers: self
                .numbers
                .iter()
                .map(|(issuer, &crl_number)| StateEntry {
                    issuer: issuer.name.clone(),
                    authority_key_id: issuer.key_id.clone(),
                    crl_number,
                })
                .collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| Error::bad_file_because(path, "cannot encode the CRL state", e))?;
        bytes.push(b'\n');
        write_atomic(path, &bytes, Mode::Public, true)
    }

    /// The lowest number accepted from `issuer`, if any CRL of it was in force.
    pub fn get(&self, issuer: &CrlIssuer) -> Option<u64> {
        self.numbers.get(issuer).copied()
    }

    /// Every CA with its floor.
    pub fn iter(&self) -> impl Iterator<Item = (&CrlIssuer, u64)> {
        self.numbers.iter().map(|(issuer, &number)| (issuer, number))
    }

    /// True when no CRL number has been recorded yet (a first start).
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    /// The first of `verified` (CRLs whose signature was checked) that is older than
    /// the floor of its CA.
    pub(crate) fn first_older<'a>(&self, verified: impl IntoIterator<Item = &'a Crl>) -> Option<OlderCrl> {
        verified.into_iter().find_map(|crl| {
            let issuer = crl.issuer_key();
            let in_force = self.get(&issuer)?;
            match crl.number() {
                Some(number) if number >= in_force => None,
                number => Some(OlderCrl { issuer, number, in_force }),
            }
        })
    }

    /// Records `verified` as in force: each CA's floor rises to its highest number
    /// there, or, with `rolled_back` (an older set accepted on purpose), becomes it.
    pub(crate) fn put_in_force<'a>(
        &mut self,
        verified: impl IntoIterator<Item = &'a Crl>,
        rolled_back: bool,
    ) {
        let mut highest: BTreeMap<CrlIssuer, u64> = BTreeMap::new();
        for crl in verified {
            if let Some(number) = crl.number() {
                let entry = highest.entry(crl.issuer_key()).or_insert(number);
                *entry = (*entry).max(number);
            }
        }
        for (issuer, number) in highest {
            let floor = self.numbers.entry(issuer).or_insert(number);
            *floor = if rolled_back { number } else { (*floor).max(number) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crl::write_crl;
    use crate::keygen::{self, CaOptions};

    fn ca() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        keygen::ca(&CaOptions { dir: dir.path().to_owned(), days: 10, force: false }).unwrap();
        dir
    }

    #[test]
    fn a_lower_number_from_the_same_ca_is_older_and_an_equal_or_higher_one_is_not() {
        let dir = ca();
        let five = write_crl(dir.path(), &[], 5, 30).unwrap().crl;
        let mut floor = CrlFloor::default();
        assert_eq!(floor.first_older([&five]), None, "an empty floor accepts anything");
        floor.put_in_force([&five], false);
        assert_eq!(floor.get(&five.issuer_key()), Some(5));

        let one = write_crl(dir.path(), &[], 1, 30).unwrap().crl;
        let older = floor.first_older([&one]).expect("number 1 after number 5 is older");
        assert_eq!((older.number, older.in_force), (Some(1), 5));
        assert_eq!(floor.first_older([&five]), None, "the same number again is fine");
        let six = write_crl(dir.path(), &[], 6, 30).unwrap().crl;
        assert_eq!(floor.first_older([&six]), None);

        // Another CA's numbers are its own.
        let other = ca();
        let other_one = write_crl(other.path(), &[], 1, 30).unwrap().crl;
        assert_eq!(floor.first_older([&other_one]), None);
    }

    #[test]
    fn the_floor_only_rises_unless_a_rollback_was_asked_for() {
        let dir = ca();
        let (five, two) =
            (write_crl(dir.path(), &[], 5, 30).unwrap().crl, write_crl(dir.path(), &[], 2, 30).unwrap().crl);
        let mut floor = CrlFloor::default();
        floor.put_in_force([&five], false);
        floor.put_in_force([&two], false);
        assert_eq!(floor.get(&five.issuer_key()), Some(5));
        floor.put_in_force([&two], true);
        assert_eq!(floor.get(&five.issuer_key()), Some(2), "the accepted older number is the new floor");
    }

    #[test]
    fn the_floor_survives_a_save_and_a_load_and_a_missing_file_is_empty() {
        let dir = ca();
        let crl = write_crl(dir.path(), &[], 9, 30).unwrap().crl;
        let mut floor = CrlFloor::default();
        floor.put_in_force([&crl], false);
        let path = dir.path().join(CRL_STATE_FILE);
        assert_eq!(CrlFloor::load(&path).unwrap(), CrlFloor::default());
        floor.save(&path).unwrap();
        assert_eq!(CrlFloor::load(&path).unwrap(), floor);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"crl-number\": 9") && text.contains("authority-key-id"), "{text}");
    }

    #[test]
    fn a_damaged_state_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CRL_STATE_FILE);
        std::fs::write(&path, "{\"format\": 1, \"crl-numbers\": [{\"issuer\": 5}]}").unwrap();
        let err = CrlFloor::load(&path).unwrap_err().to_string();
        assert!(err.contains(CRL_STATE_FILE) && err.contains("delete it"), "{err}");
    }
}
