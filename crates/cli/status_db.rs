//! `fts status-db migrate`: creates the status database's tables or brings them to
//! this fts's schema ([`fts_status_db::schema`] says which versions work together).

use anyhow::Context;
use fts_status_db::schema::SCHEMA;

use crate::UsageError;
use crate::args::StatusDbMigrateArgs;

pub fn migrate(args: &StatusDbMigrateArgs) -> anyhow::Result<()> {
    let Some(settings) = args.db.settings() else {
        return Err(UsageError::new(
            "name the database: --status-db postgresql://USER@HOST:PORT/DATABASE (or FTS_STATUS_DB)"
                .to_owned(),
        )
        .into());
    };
    let migrated = fts_status_db::migrate(&settings, SCHEMA)
        .with_context(|| format!("cannot migrate the status database {}", settings.shown_url()))?;
    if migrated.from == migrated.to {
        println!("the status database is at schema {}: nothing to do", migrated.to);
    } else {
        println!("migrated the status database from schema {} to {}", migrated.from, migrated.to);
    }
    Ok(())
}
