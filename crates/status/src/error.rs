//! [`StatusError`]: every way the status folder can fail.
//!
//! Messages are lower-case and name the path involved. Damage a reader can live with
//! (a damaged client file) is not an error: it is skipped with a log line. The
//! convention of every fts error ([`fts_proto::ErrorChain`]): a message says what
//! failed and about what, never quotes its cause; the cause is `source()`.

use std::io;
use std::path::{Path, PathBuf};

/// Why a status operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatusError {
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

    /// A status file is a link or not the kind of file it should be (the message
    /// names it).
    #[error(transparent)]
    Unsafe(fts_fs::FsError),

    /// A status record could not be serialized (a bug, never the input's fault).
    #[error("cannot encode {what}")]
    Encode {
        /// What was being encoded ("a status file").
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// A certificate serial that is not lower-case hex of at most 20 bytes.
    #[error("certificate serial {serial:?} is not lower-case hex of at most 20 bytes")]
    BadSerial {
        /// The serial (at most 64 characters of it).
        serial: String,
    },

    /// The status database failed (fts-status-db); the source says how.
    #[error("the status database failed")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// A status file could not be read back.
    #[error("status file {} is unreadable", path.display())]
    BadStatusFile {
        /// The status file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: BadStatusFile,
    },
}

/// Why a status file cannot be read back ([`StatusError::BadStatusFile`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BadStatusFile {
    /// The file is above the size a status file can have.
    #[error("larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The file is not a status in JSON.
    #[error(transparent)]
    Json(serde_json::Error),
    /// The file is a status of another format.
    #[error("status format {found} (this fts writes {supported})")]
    Format {
        /// The format it names.
        found: u32,
        /// The format this fts writes.
        supported: u32,
    },
    /// The file holds the status of another client than its name says.
    #[error("it holds the status of {holder}")]
    OtherClient {
        /// The client the file is about.
        holder: fts_proto::ClientId,
    },
}

impl StatusError {
    /// A [`StatusError::Io`] naming the action and the path.
    pub(crate) fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> Self {
        let path = path.as_ref().to_path_buf();
        move |source| StatusError::Io { action, path, source }
    }
}

/// A failed system call becomes [`StatusError::Io`]; a link or a wrong kind of file,
/// [`StatusError::Unsafe`].
impl From<fts_fs::FsError> for StatusError {
    fn from(e: fts_fs::FsError) -> Self {
        match e {
            fts_fs::FsError::Io { action, path, source } => StatusError::Io { action, path, source },
            other => StatusError::Unsafe(other),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = StatusError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use fts_proto::ErrorChain;

    use super::*;

    #[test]
    fn a_damaged_status_file_says_its_path_and_its_damage_once() {
        let json = serde_json::from_slice::<serde_json::Value>(b"{").unwrap_err();
        let e = StatusError::BadStatusFile {
            path: "status/web-01.json".into(),
            problem: BadStatusFile::Json(json),
        };
        assert_eq!(
            ErrorChain(&e).to_string(),
            "status file status/web-01.json is unreadable: EOF while parsing an object at line 1 column 1"
        );
    }
}
