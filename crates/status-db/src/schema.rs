//! The database's schema and its migrations.
//!
//! Migrations run only from `fts status-db migrate` ([`migrate`]), in one transaction
//! under a PostgreSQL advisory lock, so two operators (or two deploy jobs) migrating
//! at once run them once. The version is one row of `fts_schema`, with `readable_by`:
//! the oldest schema an fts must know to use the database (a migration that only adds
//! keeps it; one that changes what servers write raises it).
//!
//! [`check`] is what a server or `fts status` does at connect: a database of the
//! schema it knows or one older works (servers are upgraded one at a time, before the
//! migration); a newer one works only while its `readable_by` allows; anything else is
//! refused, saying what to run.
//!
//! Tables (schema 1):
//! - `fts_hosts`: one row per host, its status (the same JSON as a status file),
//!   and `last_contact` (Unix seconds), which unchanged polls advance in batches;
//! - `fts_receipts`: the receipt log, in `position` order: each receipt once (`hash`
//!   unique) and the forget markers (no hash), each line as the files keep it;
//! - `fts_certificates`: each client certificate once, by the SHA-256 of its DER;
//! - `fts_servers`: what each server says about itself (revocation, its CRL), and
//!   when it last said anything.
//!
//! Schema 2 adds the index that reads one host's receipts without the whole log.

use tokio_postgres::Client;

use crate::error::{DbError, Result};

/// The schema this fts writes and migrates to.
pub const SCHEMA: i32 = 2;

/// The advisory lock key of migrations ("fts-stat").
const MIGRATION_LOCK: i64 = 0x6674_732d_7374_6174;

/// One step of the schema.
struct Migration {
    version: i32,
    /// The oldest schema an fts must know to use a database at this version.
    readable_by: i32,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        readable_by: 1,
        sql: "
            CREATE TABLE fts_schema (
                version integer NOT NULL,
                readable_by integer NOT NULL,
                migrated_at timestamptz NOT NULL DEFAULT now()
            );
            INSERT INTO fts_schema (version, readable_by) VALUES (0, 0);
            CREATE TABLE fts_hosts (
                client_id text PRIMARY KEY,
                status jsonb NOT NULL,
                last_contact bigint NOT NULL
            );
            CREATE TABLE fts_receipts (
                position bigserial PRIMARY KEY,
                client_id text NOT NULL,
                hash text UNIQUE,
                line jsonb NOT NULL
            );
            CREATE TABLE fts_certificates (
                name text PRIMARY KEY,
                der bytea NOT NULL
            );
            CREATE TABLE fts_servers (
                name text PRIMARY KEY,
                status jsonb NOT NULL,
                seen timestamptz NOT NULL
            );
        ",
    },
    Migration {
        version: 2,
        readable_by: 1,
        sql: "CREATE INDEX fts_receipts_by_client ON fts_receipts (client_id, position);",
    },
];

/// What a migration did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// The version before (0: an empty database).
    pub from: i32,
    /// The version after.
    pub to: i32,
}

/// The schema version and its `readable_by`; (0, 0) for a database without fts tables.
pub async fn version(client: &Client) -> Result<(i32, i32)> {
    let what = "read the schema version";
    let exists = client
        .query_one("SELECT to_regclass('fts_schema') IS NOT NULL", &[])
        .await
        .map_err(DbError::postgres(what))?;
    if !exists.get::<_, bool>(0) {
        return Ok((0, 0));
    }
    let row = client
        .query_one("SELECT version, readable_by FROM fts_schema", &[])
        .await
        .map_err(DbError::postgres(what))?;
    Ok((row.get(0), row.get(1)))
}

/// Migrates the database up to `to` (at most [`SCHEMA`]), under the advisory lock, in
/// one transaction: all of it or nothing.
pub async fn migrate(client: &mut Client, to: i32) -> Result<Migrated> {
    let to = to.min(SCHEMA);
    let what = "migrate the status database";
    let transaction = client.transaction().await.map_err(DbError::postgres(what))?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(DbError::postgres(what))?;
    let (from, _) = version(transaction.client()).await?;
    if from > SCHEMA {
        return Err(DbError::Schema(format!(
            "the status database has schema {from}, newer than this fts knows ({SCHEMA}): migrate with a newer fts"
        )));
    }
    for step in MIGRATIONS.iter().filter(|m| m.version > from && m.version <= to) {
        transaction.batch_execute(step.sql).await.map_err(DbError::postgres(what))?;
        transaction
            .execute(
                "UPDATE fts_schema SET version = $1, readable_by = $2, migrated_at = now()",
                &[&step.version, &step.readable_by],
            )
            .await
            .map_err(DbError::postgres(what))?;
    }
    transaction.commit().await.map_err(DbError::postgres(what))?;
    Ok(Migrated { from, to: from.max(to) })
}

/// Whether an fts that knows schema `known` works with the database; returns its
/// version.
pub async fn check(client: &Client, known: i32) -> Result<i32> {
    let (version, readable_by) = version(client).await?;
    acceptable(version, readable_by, known).map(|()| version)
}

/// The rule of [`check`], apart from the database.
pub(crate) fn acceptable(version: i32, readable_by: i32, known: i32) -> Result<()> {
    if version == 0 {
        return Err(DbError::Schema(
            "the status database has no fts tables yet: run `fts status-db migrate` first".into(),
        ));
    }
    if version > known && readable_by > known {
        return Err(DbError::Schema(format!(
            "the status database has schema {version}, which needs an fts that knows schema {readable_by}; \
             this one knows {known}: upgrade fts on this machine"
        )));
    }
    if version < known - 1 {
        return Err(DbError::Schema(format!(
            "the status database has schema {version}, older than this fts works with ({}): run `fts \
             status-db migrate`",
            known - 1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_works_with_its_schema_one_older_and_newer_ones_that_allow_it() {
        assert!(acceptable(2, 1, 2).is_ok());
        assert!(acceptable(1, 1, 2).is_ok(), "one older: servers are upgraded before the migration");
        assert!(acceptable(2, 1, 1).is_ok(), "a newer schema that an older fts can still use");
        let newer = acceptable(3, 3, 2).unwrap_err().to_string();
        assert!(newer.contains("upgrade fts"), "{newer}");
        let empty = acceptable(0, 0, 2).unwrap_err().to_string();
        assert!(empty.contains("fts status-db migrate"), "{empty}");
        let old = acceptable(1, 1, 3).unwrap_err().to_string();
        assert!(old.contains("fts status-db migrate"), "{old}");
    }

    #[test]
    fn migrations_are_numbered_in_order_up_to_the_schema() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(versions, (1..=SCHEMA).collect::<Vec<_>>());
        assert!(MIGRATIONS.iter().all(|m| m.readable_by <= m.version));
    }
}
