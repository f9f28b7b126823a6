//! fts-status-db against a real PostgreSQL: the shared status suite (the same tests
//! the files pass), the migrations, the schema rule between servers of two versions,
//! and a database that stops and comes back mid-run.
//!
//! Each test takes a fresh database of the cluster `scripts/with-postgres.sh` started;
//! without one they skip, saying so (and fail under CI, `FTS_REQUIRE_POSTGRES`).

#[path = "../../status/tests/suite/mod.rs"]
#[macro_use]
mod suite;

use std::collections::BTreeMap;
use std::time::Duration;

use fts_proto::{ClientId, Target};
use fts_status::receipts::LogLine;
use fts_status::{PollClaims, StatusBackend};
use fts_status_db::schema::{self, SCHEMA};
use fts_status_db::{DbSettings, PgOptions, PgStatus};
use fts_testkit::postgres::{self, Cluster, TestDb};

fn settings(db: &TestDb) -> DbSettings {
    DbSettings { url: db.url.clone(), password_file: Some(db.password_file.clone()), ca_file: None }
}

/// Fast batches, short timeouts: the tests wait for them.
fn options() -> PgOptions {
    PgOptions {
        batch_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        server_name: "test-server".into(),
        ..PgOptions::default()
    }
}

/// Migrates `db` with a reader's connection (as `fts status-db migrate` does).
fn migrate(db: &TestDb, to: i32) -> schema::Migrated {
    fts_status_db::migrate(&settings(db), to).unwrap()
}

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

/// A fresh, migrated database of the test cluster; `None` (said) without one.
fn postgres(test: &str) -> Option<(TestDb, PgStatus)> {
    let db = postgres::database(test)?;
    migrate(&db, SCHEMA);
    let backend = PgStatus::open_for_serving(&settings(&db), options()).unwrap();
    Some((db, backend))
}

suite_tests!(postgres);

#[test]
fn an_empty_database_is_refused_until_migrated_and_migrates_once() {
    let Some(db) = postgres::database("an_empty_database_is_refused_until_migrated_and_migrates_once") else {
        return;
    };
    let refused = PgStatus::open_for_serving(&settings(&db), options()).unwrap_err().to_string();
    assert!(refused.contains("fts status-db migrate"), "{refused}");
    assert_eq!(migrate(&db, SCHEMA), schema::Migrated { from: 0, to: SCHEMA });
    assert_eq!(migrate(&db, SCHEMA), schema::Migrated { from: SCHEMA, to: SCHEMA }, "again: nothing to do");
    assert_eq!(db.psql("SELECT version, readable_by FROM fts_schema"), format!("{SCHEMA}|1"));
    assert!(PgStatus::open_for_serving(&settings(&db), options()).is_ok());
}

#[test]
fn migrations_at_once_run_once() {
    let Some(db) = postgres::database("migrations_at_once_run_once") else { return };
    let both: Vec<schema::Migrated> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..2).map(|_| scope.spawn(|| migrate(&db, SCHEMA))).collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    let from: Vec<i32> = both.iter().map(|m| m.from).collect();
    assert!(from.contains(&0) && from.contains(&SCHEMA), "one migrated, the other found it done: {from:?}");
    assert_eq!(db.psql("SELECT count(*) FROM fts_schema"), "1");
}

#[test]
fn the_previous_schema_migrates_and_keeps_its_data() {
    let Some(db) = postgres::database("the_previous_schema_migrates_and_keeps_its_data") else { return };
    migrate(&db, SCHEMA - 1);
    {
        // This server works with a database one schema older (servers go first).
        let backend = PgStatus::open_for_serving(&settings(&db), options()).unwrap();
        suite::receipts_are_stored_in_order_and_update_their_host(&backend);
        backend.flush().unwrap();
    }
    assert_eq!(migrate(&db, SCHEMA), schema::Migrated { from: SCHEMA - 1, to: SCHEMA });
    let backend = PgStatus::open_for_reading(&settings(&db), options()).unwrap();
    let web = backend.client(&id("web-01")).unwrap().unwrap();
    assert_eq!(web.receipts.unwrap().stored, 2, "what the old schema held is still there");
    assert_eq!(backend.receipts().unwrap().lines.len(), 2);
    assert_eq!(db.psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'fts_receipts_by_client'"), "1");
}

#[test]
fn a_server_of_the_previous_schema_works_beside_a_migrated_database() {
    let Some(db) = postgres::database("a_server_of_the_previous_schema_works_beside_a_migrated_database")
    else {
        return;
    };
    migrate(&db, SCHEMA);
    // A server that knows only the previous schema (not upgraded yet) beside one
    // that knows this one: both serve the same fleet.
    let old = PgStatus::open_for_serving(&settings(&db), PgOptions { known_schema: SCHEMA - 1, ..options() })
        .unwrap();
    let new = PgStatus::open_for_serving(&settings(&db), options()).unwrap();
    let claims = PollClaims::of(&BTreeMap::from([(Target::All, 1)]));
    old.record_poll(&id("web-01"), true, &claims, &[], suite::at(0)).unwrap();
    old.flush().unwrap();
    new.record_poll(&id("db-01"), true, &claims, &[], suite::at(1)).unwrap();
    new.flush().unwrap();
    let seen: Vec<String> = new.clients().unwrap().into_iter().map(|c| c.client_id.to_string()).collect();
    assert_eq!(seen, ["db-01", "web-01"]);
    // A schema newer than a server can use is refused, saying what to do.
    db.psql("UPDATE fts_schema SET version = 99, readable_by = 99");
    let refused = PgStatus::open_for_serving(&settings(&db), options()).unwrap_err().to_string();
    assert!(refused.contains("schema 99") && refused.contains("upgrade fts"), "{refused}");
    let refused = fts_status_db::migrate(&settings(&db), SCHEMA).unwrap_err().to_string();
    assert!(refused.contains("newer than this fts knows"), "{refused}");
}

#[test]
fn two_servers_share_one_fleet() {
    let Some(db) = postgres::database("two_servers_share_one_fleet") else { return };
    migrate(&db, SCHEMA);
    let a = PgStatus::open_for_serving(&settings(&db), PgOptions { server_name: "a".into(), ..options() })
        .unwrap();
    let b = PgStatus::open_for_serving(&settings(&db), PgOptions { server_name: "b".into(), ..options() })
        .unwrap();
    // web-01 polls a, then b with the same claims, then a again: one host, one row.
    let claims = PollClaims::of(&BTreeMap::from([(Target::All, 0)]));
    a.record_poll(&id("web-01"), true, &claims, &[], suite::at(0)).unwrap();
    a.flush().unwrap();
    b.record_offered(&id("web-01"), &BTreeMap::from([(Target::All, 3)]), suite::at(1)).unwrap();
    let first = suite::arrival("web-01", 1, None, 3);
    b.record_receipts(std::slice::from_ref(&first)).unwrap();
    b.apply_receipts(std::slice::from_ref(&first));
    b.flush().unwrap();
    assert!(a.note_unchanged_poll(&id("web-01"), true, &claims, &[], suite::at(120)));
    a.flush().unwrap();
    let reader = PgStatus::open_for_reading(&settings(&db), options()).unwrap();
    let web = reader.client(&id("web-01")).unwrap().unwrap();
    assert_eq!(web.offered[&Target::All].seq, 3, "what b sent");
    assert_eq!(web.receipts.unwrap().stored, 1, "what b stored");
    assert_eq!(web.last_poll.unix_seconds(), 1_795_626_120, "a's later poll");
    // The same receipt sent to a as well (a lost acknowledgement) is stored once.
    a.record_receipts(std::slice::from_ref(&first)).unwrap();
    assert_eq!(reader.receipts().unwrap().lines.len(), 1);
}

#[test]
fn a_database_that_stops_loses_no_acknowledged_receipt_and_no_poll() {
    let Some(cluster) = Cluster::start("a_database_that_stops_loses_no_acknowledged_receipt_and_no_poll")
    else {
        return;
    };
    let settings =
        DbSettings { url: cluster.url(), password_file: Some(cluster.password_file()), ca_file: None };
    fts_status_db::migrate(&settings, SCHEMA).unwrap();
    let backend = PgStatus::open_for_serving(&settings, options()).unwrap();
    let first = suite::arrival("web-01", 1, None, 1);
    let claims = PollClaims::of(&BTreeMap::from([(Target::All, 0)]));
    backend.record_poll(&id("web-01"), true, &claims, &[], suite::at(0)).unwrap();
    backend.record_receipts(std::slice::from_ref(&first)).unwrap();
    backend.apply_receipts(std::slice::from_ref(&first));
    backend.flush().unwrap();

    cluster.stop();
    // Polls go on: queued, not refused.
    for n in 0..50 {
        let host = format!("host-{n:02}");
        backend.record_poll(&id(&host), true, &claims, &[], suite::at(10)).unwrap();
    }
    let second = suite::arrival("web-01", 2, Some(first.hash), 2);
    assert!(
        backend.record_receipts(std::slice::from_ref(&second)).is_err(),
        "not stored, so it must not be acknowledged: the host keeps it"
    );
    assert!(backend.flush().is_err());
    let health = backend.health();
    assert!(health.failing && health.queued >= 50 && health.write_errors > 0, "{health:?}");

    cluster.start_again();
    // The host sends it again; the queue is written.
    backend.record_receipts(std::slice::from_ref(&second)).unwrap();
    backend.apply_receipts(std::slice::from_ref(&second));
    backend.flush().unwrap();
    let health = backend.health();
    assert!(!health.failing && health.queued == 0 && health.dropped == 0, "{health:?}");
    assert_eq!(backend.clients().unwrap().len(), 51, "every poll made while it was down");
    let stored: Vec<_> = backend
        .receipts()
        .unwrap()
        .lines
        .into_iter()
        .filter_map(|l| match l {
            LogLine::Receipt(r) => Some(r.hash),
            LogLine::Forget(_) => None,
        })
        .collect();
    assert_eq!(stored, [first.hash, second.hash]);
    assert_eq!(backend.client(&id("web-01")).unwrap().unwrap().receipts.unwrap().stored, 2);
}

#[test]
fn tls_to_the_database_checks_its_certificate_against_the_ca_given() {
    let Some(cluster) =
        Cluster::start_with_tls("tls_to_the_database_checks_its_certificate_against_the_ca_given")
    else {
        return;
    };
    let url = format!("{}?sslmode=require", cluster.url());
    let tls = DbSettings {
        url: url.clone(),
        password_file: Some(cluster.password_file()),
        ca_file: Some(cluster.tls_ca()),
    };
    fts_status_db::migrate(&tls, SCHEMA).unwrap();
    let backend = PgStatus::open_for_reading(&tls, options()).unwrap();
    assert!(backend.clients().unwrap().is_empty(), "it answers over TLS");

    // Another CA: the database's certificate does not chain to it, so nothing connects.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.crt");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args(["-subj", "/CN=someone else"])
        .arg("-keyout")
        .arg(dir.path().join("other.key"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let wrong_ca = DbSettings { ca_file: Some(other), ..tls.clone() };
    let refused = PgStatus::open_for_reading(&wrong_ca, options()).unwrap_err();
    assert!(
        fts_proto::ErrorChain(&refused).to_string().contains("certificate"),
        "{}",
        fts_proto::ErrorChain(&refused)
    );
}

#[test]
fn a_host_forgotten_while_it_polls_comes_back_at_its_next_poll() {
    let Some((db, backend)) = postgres("a_host_forgotten_while_it_polls_comes_back_at_its_next_poll") else {
        return;
    };
    let claims = PollClaims::of(&BTreeMap::from([(Target::All, 1)]));
    backend.record_poll(&id("web-01"), true, &claims, &[], suite::at(0)).unwrap();
    backend.flush().unwrap();
    // Forgotten by `fts status --forget` (another process: this one's book is unaware).
    let reader = PgStatus::open_for_reading(&settings(&db), options()).unwrap();
    assert!(reader.forget(&id("web-01"), fts_proto::Published::from_unix_seconds(1_795_626_010)).unwrap());
    // Its next unchanged poll finds no row to update: the one after is written whole.
    assert!(backend.note_unchanged_poll(&id("web-01"), true, &claims, &[], suite::at(60)));
    backend.flush().unwrap();
    assert!(!backend.note_unchanged_poll(&id("web-01"), true, &claims, &[], suite::at(120)));
    backend.record_poll(&id("web-01"), true, &claims, &[], suite::at(120)).unwrap();
    assert!(
        reader.client(&id("web-01")).unwrap().is_none() || backend.client(&id("web-01")).unwrap().is_some()
    );
    assert!(backend.client(&id("web-01")).unwrap().is_some(), "back in the fleet view");
}
