//! [`StoreError`]: every way the store, its reader and the status folder can fail.
//!
//! Messages are lower-case, name the path involved, and say what the operator can do
//! when there is something to do. Damage that a reader can live with (a torn journal
//! tail, a corrupt status file) is not an error: it is reported through
//! [`JournalDamage`](crate::JournalDamage) or a log line instead.

use std::io;
use std::path::{Path, PathBuf};

use fts_proto::Target;

/// Why a store, reader or status operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A file system operation failed. `action` says which ("open", "rename", ...).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The folder or journal is not an fts store (or not one this code can create in).
    #[error("{} is not an fts store: {detail}", path.display())]
    NotAStore { path: PathBuf, detail: String },

    /// The store was written by a different format version.
    #[error(
        "{} has store format version {found}, this fts understands version {supported} only \
         (use the fts release that wrote it, or a newer one)",
        path.display()
    )]
    UnsupportedVersion { path: PathBuf, found: u64, supported: u64 },

    /// The journal holds a damaged record followed by valid ones, or a record that is
    /// intact but breaks the journal's rules. Not a torn tail: nothing is truncated.
    #[error(
        "journal {} is corrupt at byte {offset}: {detail} (restore it from a backup or a \
         replica; publishing is refused until then)",
        path.display()
    )]
    Corrupt { path: PathBuf, offset: u64, detail: String },

    /// A publish named no target.
    #[error("a publish needs at least one target")]
    NoTargets,

    /// A publish named the same target twice.
    #[error("target {target} is given more than once")]
    DuplicateTarget { target: Target },

    /// The file to publish is not a regular file.
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },

    /// A number would leave the protocol's integer range (0 to 2^53 - 1).
    #[error("{what} {value} is above the protocol limit of 2^53 - 1")]
    OutOfRange { what: &'static str, value: u64 },

    /// One publish record would exceed the journal's record size limit.
    #[error(
        "a publish to {targets} targets makes a journal record of {len} bytes, above the limit of {limit} bytes"
    )]
    RecordTooLarge { targets: usize, len: usize, limit: usize },

    /// A record or status could not be serialized (a bug, never the input's fault).
    #[error("cannot encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },

    /// A blob cannot be served (missing, a link, not a regular file, the wrong size).
    #[error("blob {} cannot be served", path.display())]
    BadBlob {
        path: PathBuf,
        #[source]
        problem: crate::reader::BlobProblem,
    },

    /// A store file is a link or not the kind of file it should be (the message
    /// names it), or a folder is not private.
    #[error(transparent)]
    Unsafe(fts_fs::FsError),

    /// A status file could not be read back.
    #[error("status file {} is unreadable: {detail}", path.display())]
    BadStatusFile { path: PathBuf, detail: String },
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
