//! [`StoreError`]: every way the store and its reader can fail.
//!
//! Messages are lower-case, name the path involved, and say what the operator can do
//! when there is something to do. Damage that a reader can live with (a torn journal
//! tail) is not an error: it is reported through
//! [`JournalDamage`](crate::JournalDamage) or a log line instead.
//!
//! The convention of every fts error ([`fts_proto::ErrorChain`]): a message says what
//! failed and about what, never quotes its cause; the cause is `source()`. Whoever
//! prints one prints the chain.

use std::io;
use std::path::{Path, PathBuf};

use fts_proto::Target;

/// Why a store or reader operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file system operation failed. `action` says which ("open", "rename", ...).
    #[error("cannot {action} {}", path.display())]
    Io {
        /// The operation that failed, as a verb.
        action: &'static str,
        /// The file or folder it was about.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },

    /// The folder or journal is not an fts store (or not one this code can create in).
    #[error("{} is not an fts store", path.display())]
    NotAStore {
        /// The store folder or its journal.
        path: PathBuf,
        /// What makes it no store.
        #[source]
        problem: NotAStore,
    },

    /// The store was written by a different format version.
    #[error(
        "{} has store format version {found}, this fts understands version {supported} only \
         (use the fts release that wrote it, or a newer one)",
        path.display()
    )]
    UnsupportedVersion {
        /// The journal.
        path: PathBuf,
        /// The version its header names.
        found: u64,
        /// [`FORMAT_VERSION`](crate::FORMAT_VERSION).
        supported: u64,
    },

    /// The journal holds a damaged record followed by valid ones, or a record that is
    /// intact but breaks the journal's rules. Not a torn tail: nothing is truncated.
    /// A leaf: `detail` describes the damage ([`JournalDamage`](crate::JournalDamage)),
    /// it wraps no error.
    #[error(
        "journal {} is corrupt at byte {offset}: {detail} (restore it from a backup or a \
         replica; publishing is refused until then)",
        path.display()
    )]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// Where the damaged or invalid record starts.
        offset: u64,
        /// What is wrong there.
        detail: String,
    },

    /// The log cannot be extended or signed as asked; the detail says why and what to do.
    #[error("{detail}")]
    Log {
        /// What is wrong, in words for the operator.
        detail: String,
    },

    /// A publish named no target.
    #[error("a publish needs at least one target")]
    NoTargets,

    /// A signing key this store no longer accepts (a rotation retired it), or a
    /// rotation that does not follow the store's last one. `detail` says which.
    #[error("{detail}")]
    Key {
        /// What is wrong, in words.
        detail: String,
    },

    /// A withdrawal that cannot be made: no such entry, one already withdrawn, or
    /// nothing earlier to restore. `detail` says which, in words.
    #[error("{detail}")]
    Withdraw {
        /// What is wrong, with the target and seq.
        detail: String,
    },

    /// The file being published was no longer the file first copied when its blob had
    /// to be copied again (`fts gc` removed it while the publish waited for the lock).
    #[error("{} changed while it was being published (its SHA-256 was {first}, now {again}): nothing was published", path.display())]
    ChangedWhilePublishing {
        /// The file given to publish.
        path: PathBuf,
        /// Its hash at the first copy.
        first: fts_proto::FileHash,
        /// Its hash at the second.
        again: fts_proto::FileHash,
    },

    /// `fts gc` failed to remove a blob after it had removed others; the journal and
    /// the log are untouched, and running it again finishes the work.
    #[error("gc stopped after removing {removed} of {planned} blobs (run it again to finish)")]
    GcStopped {
        /// Blobs removed before the failure.
        removed: usize,
        /// Blobs it meant to remove.
        planned: usize,
        /// The removal (or flush) that failed.
        #[source]
        source: fts_fs::FsError,
    },

    /// A publish named the same target twice.
    #[error("target {target} is given more than once")]
    DuplicateTarget {
        /// The target named twice.
        target: Target,
    },

    /// The file to publish is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The file given to publish.
        path: PathBuf,
    },

    /// A number would leave the protocol's integer range (0 to 2^53 - 1).
    #[error("{what} {value} is above the protocol limit of 2^53 - 1")]
    OutOfRange {
        /// Which number ("file size", ...).
        what: &'static str,
        /// Its value.
        value: u64,
    },

    /// One publish record would exceed the journal's record size limit.
    #[error(
        "a publish to {targets} targets makes a journal record of {len} bytes, above the limit of {limit} bytes"
    )]
    RecordTooLarge {
        /// How many targets the publish names.
        targets: usize,
        /// The length of its record line.
        len: usize,
        /// [`MAX_RECORD_LEN`](crate::MAX_RECORD_LEN).
        limit: usize,
    },

    /// A record or status could not be serialized (a bug, never the input's fault).
    #[error("cannot encode {what}")]
    Encode {
        /// What was being encoded ("a journal record").
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// A blob cannot be served (missing, a link, not a regular file, the wrong size).
    #[error("blob {} cannot be served", path.display())]
    BadBlob {
        /// The blob's file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: crate::reader::BlobProblem,
    },

    /// A store file is a link or not the kind of file it should be (the message
    /// names it), or a folder is not private.
    #[error(transparent)]
    Unsafe(fts_fs::FsError),
}

/// Why a folder or journal is not an fts store ([`StoreError::NotAStore`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotAStore {
    /// The store's path exists but is no folder.
    #[error("it is not a folder")]
    NotAFolder,
    /// A store is to be created in a folder that holds something else.
    #[error("the folder holds {name:?} but no journal; give an empty or new folder to create a store")]
    ForeignFile {
        /// The first file found that is not the store's.
        name: std::ffi::OsString,
    },
    /// The journal's first record is damaged.
    #[error("its first record is not a store header: {0}")]
    DamagedHeader(crate::JournalDamage),
    /// The journal's first record is not JSON.
    #[error("unreadable header")]
    UnreadableHeader(#[source] serde_json::Error),
    /// The journal's first record is JSON but not the header of this format.
    #[error("its first record is not a {} header", crate::journal::FORMAT_NAME)]
    ForeignHeader,
    /// The journal's header has no version number.
    #[error("its header has no version number")]
    NoVersion,
    /// The folder has no journal: a store has one from its creation on (a replica
    /// may not have been synced yet).
    #[error("it has no journal (a replica not synced yet, or the wrong folder)")]
    NoJournal,
}

impl StoreError {
    /// An [`StoreError::Io`] naming the action and the path.
    pub(crate) fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        move |source| StoreError::Io { action, path, source }
    }
}

/// A failed system call becomes the [`StoreError::Io`] every caller already knows;
/// a link or a wrong kind of file, [`StoreError::Unsafe`].
impl From<fts_fs::FsError> for StoreError {
    fn from(e: fts_fs::FsError) -> Self {
        match e {
            fts_fs::FsError::Io { action, path, source } => StoreError::Io { action, path, source },
            other => StoreError::Unsafe(other),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use fts_proto::ErrorChain;

    use super::*;

    #[test]
    fn each_cause_is_printed_once() {
        let e = StoreError::io("open", "/srv/store/journal")(io::Error::from_raw_os_error(13));
        assert_eq!(e.to_string(), "cannot open /srv/store/journal");
        assert_eq!(
            ErrorChain(&e).to_string(),
            "cannot open /srv/store/journal: Permission denied (os error 13)"
        );

        let e = StoreError::NotAStore { path: "/srv/store".into(), problem: NotAStore::NotAFolder };
        assert_eq!(ErrorChain(&e).to_string(), "/srv/store is not an fts store: it is not a folder");
    }
}
