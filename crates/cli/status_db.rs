//! `fts status-db migrate`: creates the status database's tables or brings them to
//! this fts's schema ([`fts_status_db::schema`] says which versions work together).
//! `fts status-db import`: copies a status folder into a new database.

use anyhow::Context;
use fts_status_db::schema::SCHEMA;

use fts_status::{StatusBackend, StatusDir};
use fts_status_db::{DbSettings, PgOptions, PgStatus};

use crate::UsageError;
use crate::args::{StatusDbArgs, StatusDbImportArgs, StatusDbMigrateArgs};

/// The database the flags name; a usage error when they name none.
fn settings_of(db: &StatusDbArgs) -> anyhow::Result<DbSettings> {
    db.settings().ok_or_else(|| {
        UsageError::new(
            "name the database: --status-db postgresql://USER@HOST:PORT/DATABASE (or FTS_STATUS_DB)",
        )
        .into()
    })
}

pub fn migrate(args: &StatusDbMigrateArgs) -> anyhow::Result<()> {
    let settings = settings_of(&args.db)?;
    let migrated = fts_status_db::migrate(&settings, SCHEMA)
        .with_context(|| format!("cannot migrate the status database {}", settings.shown_url()))?;
    if migrated.from == migrated.to {
        println!("the status database is at schema {}: nothing to do", migrated.to);
    } else {
        println!("migrated the status database from schema {} to {}", migrated.from, migrated.to);
    }
    Ok(())
}

pub fn import(args: &StatusDbImportArgs) -> anyhow::Result<()> {
    let settings = settings_of(&args.db)?;
    let folder = StatusDir::open(&args.status_dir);
    crate::status::check_status_dir(&args.status_dir, &folder)?;
    let clients = folder.clients().with_context(|| format!("cannot read {}", args.status_dir.display()))?;
    let log = folder
        .receipts()
        .with_context(|| format!("cannot read the receipt log of {}", args.status_dir.display()))?;
    if !log.damaged.is_empty() {
        anyhow::bail!(
            "the receipt log of {} has {} damaged line(s) (first: {}): `fts status --verify` says more; \
             nothing was imported",
            args.status_dir.display(),
            log.damaged.len(),
            log.damaged[0]
        );
    }
    let database = PgStatus::open_for_reading(&settings, PgOptions::default())
        .with_context(|| format!("cannot use the status database {}", settings.shown_url()))?;
    let imported =
        database.import(clients, log.lines, &|name| folder.certificate(name)).with_context(|| {
            format!("cannot import {} into {}", args.status_dir.display(), settings.shown_url())
        })?;
    println!(
        "imported {} hosts, {} receipt log lines and {} certificates from {} into {}",
        imported.hosts,
        imported.lines,
        imported.certificates,
        args.status_dir.display(),
        database.shown()
    );
    Ok(())
}
