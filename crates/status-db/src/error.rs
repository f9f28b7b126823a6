//! [`DbError`]: every way the status database fails. Each becomes
//! [`fts_status::StatusError::Database`] at the [`fts_status::StatusBackend`]
//! interface, with this error as its source, so the server's log says which.

use std::path::PathBuf;
use std::time::Duration;

/// Why a status database operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// `--status-db` and its companions do not make a usable connection setting (the
    /// message says what to change).
    #[error("{0}")]
    Setting(String),

    /// A file the settings name cannot be read.
    #[error("cannot read {}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: fts_fs::FsError,
    },

    /// PostgreSQL (or the connection to it) refused or failed `what`.
    #[error("cannot {what}")]
    Postgres {
        /// What was being done, as a verb phrase ("store receipts").
        what: &'static str,
        /// The driver's error (it carries the server's message and SQLSTATE).
        #[source]
        source: tokio_postgres::Error,
    },

    /// PostgreSQL did not answer `what` in time.
    #[error("the status database did not {what} within {} s", after.as_secs())]
    Timeout {
        /// What was being done.
        what: &'static str,
        /// How long it was given.
        after: Duration,
    },

    /// The database's schema is not one this fts works with.
    #[error("{0}")]
    Schema(String),

    /// A record could not be encoded (a bug, never the input's fault).
    #[error("cannot encode {what}")]
    Encode {
        /// What.
        what: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },

    /// The backend's own runtime stopped (a bug: its task panicked).
    #[error("the status database task stopped")]
    Stopped,
}

impl DbError {
    /// A [`DbError::Postgres`] for `what`.
    pub(crate) fn postgres(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> DbError {
        move |source| DbError::Postgres { what, source }
    }
}

impl From<DbError> for fts_status::StatusError {
    fn from(e: DbError) -> Self {
        fts_status::StatusError::Database(Box::new(e))
    }
}

/// The crate's result type.
pub type Result<T, E = DbError> = std::result::Result<T, E>;
