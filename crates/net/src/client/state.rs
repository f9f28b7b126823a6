//! The host's durable state (`<dest>/.fts-state.json` by default): per target the
//! last applied seq, per installed file name what was installed, the hooks still to
//! run, and the problems not yet reported to the server.
//!
//! It is written durably and atomically ([`fts_fs::Dir::write_atomic`], whose crate
//! docs give the crash argument), so a crash leaves the old state or the new one. A
//! state file that exists but cannot be read stops the client (`StateError`) unless
//! the operator asks for a reset: guessing would re-install or skip entries silently.
//!
//! Every access goes through the folder's handle ([`fts_fs::Dir`], checked private by
//! the client when it opens): the state is read with `O_NOFOLLOW` and must be a
//! regular file (a link planted in its place is refused, never read through), and it
//! is replaced through that handle, its temp (`.fts-tmp-state-*`) beside it.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use fts_fs::{Dir, FileKind, FileMode, FsError, WriteOptions};
use fts_proto::{FileHash, FileName, KeyId, Published, Report, Seq, Signature, Statement, Target};

use crate::client::held::Hold;
use serde::{Deserialize, Serialize};

/// The only state format this code reads and writes.
pub const STATE_FORMAT: u32 = 1;

/// The start of the name of every temporary file the client makes (its state's,
/// `.fts-tmp-state-*`, and its bodies'): fts-fs's one scheme, re-exported for the
/// client's fuzz target, which checks that a poll leaves none behind.
pub use fts_fs::TEMP_PREFIX;

/// How the state is written: durably, replacing the old one, mode 0600 less the umask.
const STATE_WRITE: WriteOptions =
    WriteOptions { label: "state", mode: FileMode::LessUmask(0o600), durable: true, overwrite: true };

/// The most reports kept while the server cannot be reached; older ones are dropped
/// first (each also went to the log when it happened).
pub const MAX_PENDING_REPORTS: usize = 1000;

/// A state file larger than this is not read (a wrong `--state` path, or damage).
const MAX_STATE_FILE: u64 = 64 << 20;

/// Why the state file cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading it failed (permissions, I/O): not damage, so `--reset-state` does not
    /// replace it.
    #[error("cannot read the state file {}", path.display())]
    Read {
        /// The state file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The state file's content is damaged; the message names the way out.
    #[error(
        "the state file {} is unreadable; fix or remove it, or run with --reset-state \
         to start from empty state (everything published will be fetched and checked again)",
        path.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// What is wrong with its content.
        #[source]
        damage: StateDamage,
    },
    /// Writing it failed: the state on disk is the previous one.
    #[error("cannot write the state file {}", path.display())]
    Write {
        /// The state file (or its temporary file).
        path: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// `--log-origin` names another log than the one the log state pinned: a host
    /// never follows two logs (`--reset-log-state` starts again, keeping the old
    /// state as evidence).
    #[error(
        "--log-origin {given} is not the log this host follows ({pinned}, recorded in {}): \
         fix the flag, or start the log state again with --reset-log-state if the log was \
         replaced on purpose",
        path.display()
    )]
    OtherLog {
        /// The log state file.
        path: PathBuf,
        /// The origin it pinned.
        pinned: String,
        /// The origin given.
        given: String,
    },
    /// Something that is not a regular file sits where the state belongs: fts never
    /// reads its state through a link (someone else may have planted it).
    #[error(
        "the state file {} is {found}, not a regular file: fts does not read it; remove it \
         (and find out who made it)",
        path.display()
    )]
    NotAFile {
        /// The state file.
        path: PathBuf,
        /// What is there instead.
        found: FileKind,
    },
}

/// Why a state file's content cannot be used ([`StateError::Corrupt`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateDamage {
    /// The file is above the size a state can have.
    #[error("larger than 64 MiB")]
    TooLarge,
    /// The file is not a state in JSON (or names something invalid).
    #[error(transparent)]
    Json(serde_json::Error),
    /// The file is a state of another format.
    #[error("state format {0} is not the supported {STATE_FORMAT}")]
    Format(u32),
}

/// What was installed under one file name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Installed {
    /// The target of the entry installed.
    pub target: Target,
    /// Its seq.
    pub seq: Seq,
    /// When it was published.
    pub published: Published,
    /// The hash of the file installed.
    pub file_hash: FileHash,
    /// Its size, as signed. Absent in states written before the delivery release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_size: Option<u64>,
    /// The key that signed its statement, and the signature (`fts verify-installed`
    /// checks the file on disk against them). Absent in older states.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    /// See [`Installed::key_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Signature>,
}

impl Installed {
    /// The signed statement this record was installed from, when the record holds
    /// everything it needs (states written before the delivery release do not).
    pub fn statement(&self, file_name: &FileName) -> Option<(Statement, KeyId, Signature)> {
        let statement = Statement {
            target: self.target.clone(),
            seq: self.seq,
            file_name: file_name.clone(),
            file_size: self.file_size?,
            file_hash: self.file_hash,
            published: self.published.clone(),
        };
        Some((statement, self.key_id?, self.signature?))
    }
}

/// A hook that must run (again) for an installed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PendingHook {
    /// The name the file is installed under.
    pub file_name: FileName,
    /// The target of its entry.
    pub target: Target,
    /// Its seq.
    pub seq: Seq,
    /// When it was published.
    pub published: Published,
    /// The hash of the file installed.
    pub file_hash: FileHash,
    /// How many runs of the hook failed for this install (0 before the first run).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// When the next retry is due after a failure; absent: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Published>,
    /// Every retry failed: the hook is not run again by itself (`fts poll
    /// --rerun-hook` runs it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub given_up: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl PendingHook {
    /// The hook due for the file `installed` under `file_name`, never run yet.
    pub fn new(file_name: FileName, installed: &Installed) -> PendingHook {
        PendingHook {
            file_name,
            target: installed.target.clone(),
            seq: installed.seq,
            published: installed.published.clone(),
            file_hash: installed.file_hash,
            failures: 0,
            retry_at: None,
            given_up: false,
        }
    }

    /// Whether it is to run now, at `now` (unix seconds).
    pub fn is_due(&self, now: u64) -> bool {
        !self.given_up && self.retry_at.as_ref().is_none_or(|at| at.unix_seconds() <= now)
    }
}

/// The received prefix of a cut transfer, kept to resume it (PROTOCOL.md section
/// 3.2.1). The bytes are in the partial folder, named by hash and size
/// ([`PartialDir::kept_name`](crate::client::partial::PartialDir::kept_name)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct KeptTransfer {
    /// The entry being received.
    pub seq: Seq,
    /// The signed hash of the whole file.
    pub file_hash: FileHash,
    /// Its signed size.
    pub file_size: u64,
}

/// The host's state. From this release on, fields a later release adds are ignored
/// (and dropped when this one rewrites the file), so that a host can go back one
/// release; only a change of meaning bumps [`STATE_FORMAT`]. Releases before this one
/// refused unknown fields: going back to one of those works only while the state holds
/// none of the fields added since (`certificate-refused` is written only after a
/// refusal). Every name in it is still re-validated when it is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct State {
    /// The state format, [`STATE_FORMAT`].
    pub format: u32,
    /// Per target, the seq of the last applied entry (how many are applied).
    pub since: BTreeMap<Target, u64>,
    /// Per file name, what is installed.
    pub installed: BTreeMap<FileName, Installed>,
    /// Hooks marked pending with their install, cleared when they end.
    pub hooks_pending: Vec<PendingHook>,
    /// Problems not yet carried by an answered request, oldest first.
    pub reports: Vec<Report>,
    /// The last time the server refused this host's certificate, and which one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_refused: Option<CertificateRefused>,
    /// The targets held at an entry that cannot be applied yet ([`Hold`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<Target, Hold>,
    /// Per target, the transfer whose received prefix is kept for a resume (at most
    /// one per target).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub transfers: BTreeMap<Target, KeptTransfer>,
    /// Withdrawn entries this host had installed when it learnt of their withdrawal
    /// (PROTOCOL.md section 8.1), so that each is reported once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdrawn_installed: Vec<WithdrawnInstalled>,
    /// This host's receipt chain and the receipts not yet acknowledged
    /// ([`crate::client::receipts`]).
    #[serde(default, skip_serializing_if = "is_default")]
    pub receipts: crate::client::receipts::ReceiptQueue,
    /// A reboot this host needs for what it installed ([`crate::client::reboot`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot_required: Option<crate::client::reboot::RebootRequired>,
    /// With several `--server`s, the one that last answered and when the host last
    /// moved on for staleness ([`crate::client::failover`]); never written with one.
    #[serde(default, skip_serializing_if = "is_default")]
    pub failover: crate::client::failover::ServerMemory,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// An installed entry that was withdrawn afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct WithdrawnInstalled {
    /// Its target.
    pub target: Target,
    /// Its seq.
    pub seq: Seq,
    /// The file it installed (still in place: removal is `--exec-withdrawn`'s).
    pub file_name: FileName,
    /// `--exec-withdrawn` has still to run for it.
    #[serde(default)]
    pub exec_pending: bool,
}

/// A refusal of this host's certificate by the server (a TLS alert in a full
/// handshake). A `--once` run started by a timer does not dial again with the same
/// certificate before `--max-interval` has passed: a revoked host would otherwise
/// knock at the timer's rate for ever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CertificateRefused {
    /// When the server refused it.
    pub at: Published,
    /// Hex SHA-256 of the refused certificate (DER): a new certificate is tried at once.
    pub certificate_sha256: String,
}

impl State {
    /// The state of a host that has installed nothing yet.
    pub fn empty() -> Self {
        State { format: STATE_FORMAT, ..State::default() }
    }

    /// The last applied seq of `target` (0 when none).
    pub fn since(&self, target: &Target) -> u64 {
        self.since.get(target).copied().unwrap_or(0)
    }

    /// Records `seq` of `target` as applied: the next entry expected is the one after.
    pub fn applied(&mut self, target: &Target, seq: Seq) {
        self.since.insert(target.clone(), seq.get());
    }

    /// Queues a report for the next request, once per (target, seq, reason).
    pub fn add_report(&mut self, report: Report) {
        if !self.reports.contains(&report) {
            self.reports.push(report);
            if self.reports.len() > MAX_PENDING_REPORTS {
                self.reports.remove(0);
            }
        }
    }

    /// Reads the state at `path`: empty when it does not exist, an error when it
    /// exists but cannot be read or parsed, or is not a regular file.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let dir = Dir::open(fts_fs::parent_dir(path)).map_err(|e| read_error(path, e))?;
        Self::load_in(&dir, path.file_name().unwrap_or_default())
    }

    /// [`State::load`] of the file `name` in the folder `dir`.
    pub fn load_in(dir: &Dir, name: &OsStr) -> Result<State, StateError> {
        let path = &dir.join(name);
        let bytes = match dir.read_bounded(name, MAX_STATE_FILE) {
            Ok(bytes) => bytes,
            Err(e) if e.is_not_found() => return Ok(State::empty()),
            Err(FsError::TooLarge { .. }) => {
                return Err(StateError::Corrupt { path: path.to_owned(), damage: StateDamage::TooLarge });
            }
            Err(e) => return Err(read_error(path, e)),
        };
        Self::parse(&bytes).map_err(|damage| StateError::Corrupt { path: path.to_owned(), damage })
    }

    /// Parses state bytes: the format must be known and every name valid.
    pub fn parse(bytes: &[u8]) -> Result<State, StateDamage> {
        let state: State = serde_json::from_slice(bytes).map_err(StateDamage::Json)?;
        if state.format != STATE_FORMAT {
            return Err(StateDamage::Format(state.format));
        }
        Ok(state)
    }

    /// Writes the state atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let write_err = |e: FsError| StateError::Write { path: path.to_owned(), source: e.into_io() };
        let dir = Dir::open(fts_fs::parent_dir(path)).map_err(write_err)?;
        self.save_in(&dir, path.file_name().unwrap_or_default())
    }

    /// Writes the state durably and atomically as `name` in `dir`, through the
    /// folder's handle.
    pub fn save_in(&self, dir: &Dir, name: &OsStr) -> Result<(), StateError> {
        let err = |source| StateError::Write { path: dir.join(name), source };
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| err(std::io::Error::other(e)))?;
        dir.write_atomic(name, &bytes, &STATE_WRITE).map_err(|e| err(e.into_io()))
    }
}

/// A failed read of the state (or of its folder): a link or a wrong kind of file is
/// refused as such, anything else is an I/O error.
fn read_error(path: &Path, e: FsError) -> StateError {
    match e {
        FsError::SymbolicLink { .. } => {
            StateError::NotAFile { path: path.to_owned(), found: FileKind::SymbolicLink }
        }
        FsError::WrongKind { found, .. } => StateError::NotAFile { path: path.to_owned(), found },
        e => StateError::Read { path: path.to_owned(), source: e.into_io() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fts_proto::RejectReason;

    fn sample() -> State {
        let mut state = State::empty();
        state.since.insert(Target::All, 4);
        state.installed.insert(
            FileName::parse("a.deb").unwrap(),
            Installed {
                target: Target::All,
                seq: Seq::new(4).unwrap(),
                published: Published::parse("2026-11-25T17:00:00Z").unwrap(),
                file_hash: FileHash::from_digest([7; 32]),
                file_size: Some(3),
                key_id: None,
                signature: None,
            },
        );
        state.add_report(Report::new(Target::All, 5, RejectReason::Signature));
        state
    }

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".fts-state.json");
        assert_eq!(State::load(&path).unwrap(), State::empty(), "a missing file is empty state");
        sample().save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap(), sample());
        assert_eq!(
            fts_fs::remove_stale_temps(&Dir::open(dir.path()).unwrap()).unwrap(),
            0,
            "no temp file is left behind"
        );
    }

    #[test]
    fn a_damaged_state_file_is_an_error_that_names_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        for bad in [
            &b"{not json"[..],
            b"",
            br#"{"format":2,"since":{},"installed":{},"hooks-pending":[],"reports":[]}"#,
            br#"{"format":1,"since":{"../x":1},"installed":{},"hooks-pending":[],"reports":[]}"#,
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = State::load(&path).unwrap_err().to_string();
            assert!(err.contains("--reset-state") && err.contains("state.json"), "{err}");
        }
    }

    #[test]
    fn a_damaged_state_says_its_damage_once_in_its_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, br#"{"format":2,"since":{},"installed":{},"hooks-pending":[],"reports":[]}"#)
            .unwrap();
        let err = State::load(&path).unwrap_err();
        assert!(matches!(err, StateError::Corrupt { damage: StateDamage::Format(2), .. }), "{err:?}");
        let text = fts_proto::ErrorChain(&err).to_string();
        assert!(text.ends_with("(everything published will be fetched and checked again): state format 2 is not the supported 1"), "{text}");
        assert_eq!(text.matches("state format 2").count(), 1, "{text}");
    }

    #[test]
    fn reports_are_queued_once_and_bounded() {
        let mut state = State::empty();
        for seq in 0..(MAX_PENDING_REPORTS as u64 + 10) {
            let report = Report::new(Target::All, seq, RejectReason::Gap);
            state.add_report(report.clone());
            state.add_report(report);
        }
        assert_eq!(state.reports.len(), MAX_PENDING_REPORTS);
        assert_eq!(state.reports[0].seq, 10, "the oldest are dropped first");
    }

    #[test]
    fn a_state_file_that_is_a_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("planted.json");
        sample().save(&elsewhere).unwrap();
        let path = dir.path().join(".fts-state.json");
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = State::load(&path).unwrap_err();
        assert!(matches!(err, StateError::NotAFile { found: FileKind::SymbolicLink, .. }), "{err:?}");
        assert!(err.to_string().contains(".fts-state.json is a symbolic link"), "{err}");
        // Saving replaces the link itself, never writes through it.
        let before = std::fs::read(&elsewhere).unwrap();
        State::empty().save(&path).unwrap();
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert_eq!(std::fs::read(&elsewhere).unwrap(), before);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_state_reader(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = State::parse(&bytes);
        }
    }
}
