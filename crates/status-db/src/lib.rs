//! fts-status-db: delivery status in PostgreSQL, for several `fts serve` replicas
//! sharing one fleet view (`--status-db`), beside the files of fts-status (one
//! server, the embedded default).
//!
//! - [`settings`]: the URL, the password file and the TLS rule ([`DbSettings`],
//!   [`settings::Connector`]);
//! - [`schema`]: the tables, the migrations (`fts status-db migrate`) and which
//!   schema versions a server works with;
//! - [`backend`]: [`PgStatus`], the [`fts_status::StatusBackend`] on PostgreSQL,
//!   which batches writes and never puts the database on the poll path;
//! - `queue`: what waits in memory while the database is slow or down;
//! - [`error`]: every way it fails ([`DbError`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod error;
mod queue;
pub mod schema;
pub mod settings;

pub use backend::{PgOptions, PgStatus, merge_servers};
pub use error::{DbError, Result};
pub use queue::MAX_QUEUED;
pub use settings::DbSettings;

/// Migrates the database `settings` name up to schema `to` (at most
/// [`schema::SCHEMA`]): `fts status-db migrate`. Waits for a migration another
/// process is running (the advisory lock), then finds it done.
pub fn migrate(settings: &DbSettings, to: i32) -> Result<schema::Migrated> {
    let connector = settings::Connector::new(settings)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| DbError::Setting(format!("cannot start a runtime for the migration: {e}")))?;
    runtime.block_on(async {
        let mut client = connector.connect().await?;
        schema::migrate(&mut client, to).await
    })
}
