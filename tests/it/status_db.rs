//! Several servers, one fleet (issue 21), end to end with the real `fts serve`,
//! `fts poll --once`, `fts status` and `fts status-db migrate` against a real
//! PostgreSQL on 127.0.0.1:
//! - two servers, each with its own copy of the store, share one database: a host
//!   that polls one and then the other is one host in `fts status`, and a server
//!   killed with SIGKILL loses no receipt it acknowledged;
//! - a database stopped mid-run stops no poll: the install goes on, the receipt is
//!   not acknowledged (the host keeps it), and it is stored once the database is back.
//!
//! Skipped without PostgreSQL (failing under CI: `FTS_REQUIRE_POSTGRES`).

use std::path::Path;

use fts_testkit::postgres::{self, Cluster};
use serde_json::Value;

use crate::common::Sandbox;
use crate::common::one_host::*;
use crate::common::server::ServeProcess;

/// The flags that name the database.
fn db_flags(url: &str, password_file: &Path) -> Vec<String> {
    vec![
        "--status-db".into(),
        url.into(),
        "--status-db-password-file".into(),
        password_file.to_str().expect("a UTF-8 temp path").into(),
    ]
}

fn with<'a>(args: &[&'a str], more: &'a [String]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(more.iter().map(String::as_str));
    all
}

/// `fts serve` on the database, with its own status folder and `store`.
fn serve_on(sandbox: &Sandbox, db: &[String], store: &str, status_dir: &str) -> ServeProcess {
    let args = with(
        &["--poll-after", "1s", "--status-interval", "1s", "--store", store, "--status-dir", status_dir],
        db,
    );
    ServeProcess::start(sandbox, &args)
}

fn status_json(sandbox: &Sandbox, db: &[String], args: &[&str]) -> (i32, Value) {
    let mut all = with(&["status", "--json"], db);
    all.extend(args);
    let run = fts(sandbox, &all);
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("status --json: {e}: {run:?}"));
    (run.code, json)
}

fn host<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["clients"].as_array().and_then(|a| a.iter().find(|c| c["client-id"] == id)).unwrap_or(&Value::Null)
}

fn copy_store(sandbox: &Sandbox, to: &str) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(sandbox.join("store"))
        .arg(sandbox.join(to))
        .status()
        .expect("cp");
    assert!(status.success(), "copy the store");
}

#[test]
fn two_servers_share_one_fleet_and_a_killed_one_loses_no_acknowledged_receipt() {
    let Some(db) =
        postgres::database("two_servers_share_one_fleet_and_a_killed_one_loses_no_acknowledged_receipt")
    else {
        return;
    };
    let flags = db_flags(&db.url, &db.password_file);
    let sandbox = sandbox();
    publish(&sandbox, "openssl.tar", b"openssl 3.0.19\n");
    // Before the migration, a server refuses the database, saying what to run.
    let mut refused = sandbox.fts(with(&["serve", "--listen", "127.0.0.1:0"], &flags));
    let run = crate::common::run_bounded(&mut refused, LIMIT);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("fts status-db migrate"), "{run:?}");
    let run = fts(&sandbox, &with(&["status-db", "migrate"], &flags));
    run.expect(0, "migrate");
    assert!(run.stdout.contains("to 2"), "{run:?}");
    assert!(fts(&sandbox, &with(&["status-db", "migrate"], &flags)).stdout.contains("nothing to do"));

    copy_store(&sandbox, "store-b");
    let mut a = serve_on(&sandbox, &flags, "store", "status-a");
    let b = serve_on(&sandbox, &flags, "store-b", "status-b");

    // Installed through a; a is killed (no clean stop) right after the receipt's ack.
    poll(&sandbox, a.addr, "in", &[]).expect(0, "install through a");
    a.child.kill().expect("kill a");
    let _ = a.child.wait();
    // The next polls go to b: the same host, its receipt chain continues there.
    publish(&sandbox, "openssl-2.tar", b"openssl 3.0.20\n");
    let _ = std::fs::remove_dir_all(sandbox.join("store-b"));
    copy_store(&sandbox, "store-b");
    poll(&sandbox, b.addr, "in", &[]).expect(0, "install through b");

    let (code, status) = status_json(&sandbox, &flags, &["--all"]);
    let web = host(&status, ID);
    assert_eq!(web["state"], "current", "{status}");
    assert_eq!(web["receipts"]["stored"], 2, "a's receipt and b's, one chain: {status}");
    assert_eq!(status["clients"].as_array().map(Vec::len), Some(1), "one host: {status}");
    assert_eq!(code, 0, "{status}");
    let run = fts(&sandbox, &with(&["status", "--verify"], &flags));
    run.expect(0, "verify");
    assert!(run.stdout.contains("verified 2 receipts of 1 hosts: 0 finding(s)"), "{run:?}");
    // The files of the servers' own folders hold no host: the database does.
    assert!(!sandbox.join("status-b").join(format!("{ID}.json")).exists());
    drop(b);
}

#[test]
fn a_database_stopped_mid_run_stops_no_poll_and_loses_no_receipt() {
    let Some(cluster) = Cluster::start("a_database_stopped_mid_run_stops_no_poll_and_loses_no_receipt")
    else {
        return;
    };
    let flags = db_flags(&cluster.url(), &cluster.password_file());
    let sandbox = sandbox();
    fts(&sandbox, &with(&["status-db", "migrate"], &flags)).expect(0, "migrate");
    publish(&sandbox, "a.conf", b"a\n");
    let server = serve_on(&sandbox, &flags, "store", "status");
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install");

    cluster.stop();
    publish(&sandbox, "b.conf", b"b\n");
    // The poll is answered and the file installed; the receipt cannot be stored, so it
    // is not acknowledged and stays with the host.
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install while the database is down");
    assert_eq!(std::fs::read(sandbox.join("in/b.conf")).expect("installed"), b"b\n");
    server.wait_for_log(std::time::Duration::from_secs(10), |line| {
        line["fields"]["message"].as_str().is_some_and(|m| m.contains("cannot store receipts"))
    });

    cluster.start_again();
    // The next poll sends the receipt again; now it is stored.
    poll(&sandbox, server.addr, "in", &[]).expect(0, "after the database came back");
    let (_, status) = status_json(&sandbox, &flags, &["--all"]);
    let web = host(&status, ID);
    assert_eq!(web["receipts"]["stored"], 2, "the receipt made while it was down: {status}");
    assert_eq!(web["state"], "current", "{status}");
    fts(&sandbox, &with(&["status", "--verify"], &flags)).expect(0, "verify");
}

#[test]
fn a_status_folder_imported_into_the_database_shows_the_same_fleet() {
    let Some(db) = postgres::database("a_status_folder_imported_into_the_database_shows_the_same_fleet")
    else {
        return;
    };
    let flags = db_flags(&db.url, &db.password_file);
    let sandbox = sandbox();
    publish(&sandbox, "a.conf", b"a\n");
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install");
    drop(server);
    let (_, from_files) = status_json(&sandbox, &[], &["--all"]);

    let refused = fts(&sandbox, &with(&["status-db", "import"], &flags));
    assert_eq!(refused.code, 1, "not migrated: {refused:?}");
    fts(&sandbox, &with(&["status-db", "migrate"], &flags)).expect(0, "migrate");
    let run = fts(&sandbox, &with(&["status-db", "import", "--status-dir", "status"], &flags));
    run.expect(0, "import");
    assert!(run.stdout.contains("imported 1 hosts, 1 receipt log lines and 1 certificates"), "{run:?}");
    let (code, from_db) = status_json(&sandbox, &flags, &["--all"]);
    assert_eq!(code, 0, "{from_db}");
    assert_eq!(host(&from_db, ID)["state"], "current", "{from_db}");
    // The same hosts with the same facts; ages (counted from each run's own clock) may
    // differ by the second between the two reads.
    let without_ages = |status: &Value| {
        let mut clients = status["clients"].clone();
        for client in clients.as_array_mut().into_iter().flatten() {
            if let Some(client) = client.as_object_mut() {
                client.remove("last-contact-age");
                client.remove("certificate-days-left");
            }
        }
        clients
    };
    assert_eq!(without_ages(&from_db), without_ages(&from_files), "the same hosts, the same facts");
    fts(&sandbox, &with(&["status", "--verify"], &flags)).expect(0, "verify");
    // Twice is refused: the database knows hosts now.
    let again = fts(&sandbox, &with(&["status-db", "import", "--status-dir", "status"], &flags));
    assert!(again.code == 1 && again.stderr.contains("import into a new database only"), "{again:?}");
}
