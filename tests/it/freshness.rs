//! Freshness and withholding (issue 18, PROTOCOL.md section 7), end to end with the
//! real `fts publish`, `fts timestamp`, `fts serve` and `fts poll --once` on 127.0.0.1:
//! - a cosigned answer is fresh and recorded in the log state (`<state>.log`);
//! - a frozen replica goes `stale` after `--max-age` while it still answers;
//! - a replica whose journal lost an entry its log proves raises `withheld` after
//!   `--withheld-after`, and a target held on a genuine entry never does;
//! - two stores of one log that diverge raise `fork` with evidence, and nothing of
//!   the second is installed; an honest lagging replica is `log-behind`, never a fork;
//! - the timestamp signer refuses a rolled-back checkpoint; a restored old master
//!   store cannot publish, and `fts log verify --against` says so;
//! - a cosignature dated ahead of the host's clock raises `clock`;
//! - an entry without (or with a broken) inclusion proof is `not-logged` once the
//!   host has verified a checkpoint (scripted hostile server);
//! - kill -9 of the timestamp signer never leaves a torn state or cosignature;
//! - the previous release's `fts poll` still installs from this server.
//!
//! Every wait is bounded: polls and commands run under [`LIMIT`], and time-based
//! alarms are awaited by reading the recorded times, never by sleeping and hoping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use fts_proto::checkpoint::{Checkpoint, Note};
use fts_proto::{FileHeader, LogHash, ServerFrame, Target};
use fts_trust::note::TimestampKey;
use serde_json::Value;

use crate::common::hostile_server::{Answer, HostileServer, done_frame};
use crate::common::server::ServeProcess;
use crate::common::{Run, Sandbox, run_bounded};

const ID: &str = "web-01";
/// A command that has not ended by then is a hang.
const LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------

fn fts(sandbox: &Sandbox, args: &[&str]) -> Run {
    run_bounded(&mut sandbox.fts(args), LIMIT)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// A sandbox with web-01 (group web) and a timestamp key in `ts/`.
fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[(ID, &["web"])]);
    fts(&sandbox, &["keygen", "timestamp", "--dir", "ts"]).expect(0, "keygen timestamp");
    assert!(sandbox.join("ts/timestamp.key").is_file() && sandbox.join("ts/timestamp.pub").is_file());
    sandbox
}

/// Publishes `contents` as `name` to web-01 in `store`.
fn publish_to(sandbox: &Sandbox, store: &str, name: &str, contents: &[u8]) {
    let run = try_publish(sandbox, store, name, contents);
    run.expect(0, &format!("publish {name} into {store}"));
}

fn try_publish(sandbox: &Sandbox, store: &str, name: &str, contents: &[u8]) -> Run {
    let source = sandbox.join("outbox").join(name);
    std::fs::create_dir_all(source.parent().unwrap()).unwrap();
    std::fs::write(&source, contents).unwrap();
    fts(sandbox, &["publish", source.to_str().unwrap(), "--to", ID, "--store", store])
}

/// `fts timestamp --once` over `store`, with the signer's state in `ts/`.
fn cosign(sandbox: &Sandbox, store: &str) -> Run {
    fts(
        sandbox,
        &[
            "timestamp",
            "--once",
            "--store",
            store,
            "--key",
            "ts/timestamp.key",
            "--trust",
            "certs/signing.pub",
        ],
    )
}

/// `fts poll --once` as web-01 into `in/`, trusting the timestamp key, with `extra`.
fn poll(sandbox: &Sandbox, addr: std::net::SocketAddr, extra: &[&str]) -> Run {
    poll_into(sandbox, addr, "in", extra)
}

fn poll_into(sandbox: &Sandbox, addr: std::net::SocketAddr, dest: &str, extra: &[&str]) -> Run {
    poll_with(sandbox, addr, dest, true, extra)
}

/// `fts poll --once` into `dest`, with the timestamp key when `fresh` (without it,
/// freshness is off and `stale` is never raised).
fn poll_with(sandbox: &Sandbox, addr: std::net::SocketAddr, dest: &str, fresh: bool, extra: &[&str]) -> Run {
    let addr = addr.to_string();
    let mut args =
        vec!["poll", "--once", "--server", &addr, "--id", ID, "--dest", dest, "--min-interval", "1s"];
    if fresh {
        args.extend(["--timestamp-key", "ts/timestamp.pub"]);
    }
    args.extend(extra);
    fts(sandbox, &args)
}

fn serve(sandbox: &Sandbox, store: &str) -> ServeProcess {
    let status = format!("status-{store}");
    ServeProcess::start(sandbox, &["--store", store, "--status-dir", &status, "--poll-after", "1s"])
}

fn log_state(sandbox: &Sandbox) -> Value {
    log_state_in(sandbox, "in")
}

fn log_state_in(sandbox: &Sandbox, dest: &str) -> Value {
    let path = sandbox.join(dest).join(".fts-state.json.log");
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .expect("the log state is JSON")
}

fn alarms(state: &Value) -> Vec<String> {
    state["alarms"].as_object().map(|a| a.keys().cloned().collect()).unwrap_or_default()
}

fn installed(sandbox: &Sandbox, name: &str) -> Option<Vec<u8>> {
    std::fs::read(sandbox.join("in").join(name)).ok()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &dest);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// Sleeps until the Unix second `t` has passed (bounded: `t` is at most a minute ahead).
fn sleep_until_after(t: u64) {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let target = Duration::from_secs(t + 1);
    assert!(target < now + Duration::from_secs(60), "waiting for {t} would take more than a minute");
    if target > now {
        std::thread::sleep(target - now + Duration::from_millis(50));
    }
}

/// The timestamp signer's recorded state.
fn signer_state(sandbox: &Sandbox) -> Value {
    serde_json::from_slice(&std::fs::read(sandbox.join("ts/timestamp-state.json")).unwrap()).unwrap()
}

fn timestamp_key(sandbox: &Sandbox) -> TimestampKey {
    TimestampKey::load(&sandbox.join("ts/timestamp.key")).expect("timestamp.key")
}

/// The cosignature file of the sandbox's timestamp key in `store`.
fn cosignature_path(sandbox: &Sandbox, store: &str) -> PathBuf {
    sandbox.join(store).join("cosignatures").join(timestamp_key(sandbox).key_id().to_string())
}

fn contains_all(text: &str, parts: &[&str]) -> bool {
    parts.iter().all(|p| text.contains(p))
}

// ---------------------------------------------------------------------------------
// 1. Happy path
// ---------------------------------------------------------------------------------

#[test]
fn a_cosigned_answer_installs_and_records_its_checkpoint_and_attested_time() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "app.conf", b"version 1\n");
    let before = unix_now();
    cosign(&sandbox, "store").expect(0, "cosign");
    assert!(cosignature_path(&sandbox, "store").is_file());
    let server = serve(&sandbox, "store");

    let run = poll(&sandbox, server.addr, &["--max-age", "1h"]);
    run.expect(0, "a fresh, cosigned answer");
    assert!(run.stdout.contains("1 file(s) installed"), "{run:?}");
    assert_eq!(installed(&sandbox, "app.conf").as_deref(), Some(&b"version 1\n"[..]));
    let state = log_state(&sandbox);
    assert_eq!(state["size"], 1, "{state:#}");
    let attested = state["attested"].as_u64().unwrap_or_else(|| panic!("no attested time: {state:#}"));
    assert!(attested >= before && attested <= unix_now(), "attested {attested}: {state:#}");
    assert_eq!(state["heads"][ID], 1, "{state:#}");
    assert!(alarms(&state).is_empty(), "{state:#}");
    let origin = std::fs::read_to_string(sandbox.join("certs/log-origin")).unwrap();
    assert_eq!(state["origin"].as_str(), Some(origin.trim()), "the origin is pinned: {state:#}");

    // Pinned for ever: another --log-origin is a refusal to start, not a second log.
    let run = poll(&sandbox, server.addr, &["--log-origin", "other.example/log"]);
    run.expect(1, "another log than the pinned one");
    assert!(
        run.stderr.contains("is not the log this host follows") && run.stderr.contains(origin.trim()),
        "{run:?}"
    );
    assert_eq!(log_state(&sandbox), state, "the log state is untouched");
}

// ---------------------------------------------------------------------------------
// 2. A frozen replica goes stale
// ---------------------------------------------------------------------------------

#[test]
fn a_frozen_replica_is_fresh_until_max_age_then_stale_while_it_still_answers() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "app.conf", b"version 1\n");
    cosign(&sandbox, "store").expect(0, "cosign");
    let cosigned_at = signer_state(&sandbox)["time"].as_u64().expect("the signer's time");
    copy_dir(&sandbox.join("store"), &sandbox.join("replica"));
    let server = serve(&sandbox, "replica");

    let run = poll(&sandbox, server.addr, &["--max-age", "3s"]);
    assert!(
        unix_now() <= cosigned_at + 3,
        "the machine is too slow for a 3 s --max-age; the first poll ended {} s after the cosignature",
        unix_now() - cosigned_at
    );
    run.expect(0, "fresh within --max-age");
    assert_eq!(installed(&sandbox, "app.conf").as_deref(), Some(&b"version 1\n"[..]));

    // The master goes on (published and cosigned again), the replica stays frozen.
    publish_to(&sandbox, "store", "later.conf", b"never copied\n");
    cosign(&sandbox, "store").expect(0, "cosign the master again");

    sleep_until_after(cosigned_at + 3);
    let run = poll(&sandbox, server.addr, &["--max-age", "3s", "--metrics-file", "poll.prom"]);
    run.expect(4, "stale after --max-age");
    let metrics = std::fs::read_to_string(sandbox.join("poll.prom")).expect("the metrics file");
    assert!(
        metrics.contains("fts_poll_alarm{alarm=\"stale\"} 1"),
        "the alarm gauge (PROTOCOL.md 7.5): {metrics}"
    );
    assert!(metrics.contains("fts_poll_alarm{alarm=\"withheld\"} 0"), "{metrics}");
    assert!(run.stdout.contains("fts poll: done"), "the poll itself succeeded: {run:?}");
    assert!(run.stderr.contains("stale"), "{run:?}");
    let state = log_state(&sandbox);
    assert_eq!(alarms(&state), ["stale"], "{state:#}");
    assert_eq!(state["attested"].as_u64(), Some(cosigned_at), "{state:#}");
    assert_eq!(installed(&sandbox, "later.conf"), None);

    // The next request carries the alarm: the operator sees it in `fts status`, and
    // the replica's own cosignature age is a warning there already.
    poll(&sandbox, server.addr, &["--max-age", "3s"]).expect(4, "still stale");
    let mut status =
        sandbox.fts(["status", "--store", "replica", "--status-dir", "status-replica", "--max-age", "3s"]);
    // A raised alarm needs attention: exit 3.
    let out = crate::common::expect_code(&mut status, 3);
    let table = crate::common::stdout(&out);
    assert!(table.contains("alarm: stale (raised "), "{table}");
    assert!(crate::common::stderr(&out).contains("more than half of --max-age"), "{out:?}");
    let mut json = sandbox.fts([
        "status",
        "--store",
        "replica",
        "--status-dir",
        "status-replica",
        "--json",
        "--max-age",
        "3s",
    ]);
    let json: Value = serde_json::from_slice(&crate::common::expect_code(&mut json, 3).stdout).expect("JSON");
    assert!(json["clients"][0]["alarms"]["stale"].is_string(), "{json:#}");
    let kinds: Vec<&str> =
        json["warnings"].as_array().expect("warnings").iter().filter_map(|w| w["kind"].as_str()).collect();
    assert!(kinds.contains(&"cosignature-old"), "{json:#}");
}

/// The other side of a frozen replica: a server whose store the signer keeps
/// cosigning (no restart) keeps its hosts fresh.
#[test]
fn a_store_the_signer_keeps_cosigning_keeps_its_hosts_fresh_without_a_server_restart() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "app.conf", b"version 1\n");
    cosign(&sandbox, "store").expect(0, "cosign");
    let server = serve(&sandbox, "store");
    let mut signer = sandbox
        .fts(["timestamp", "--store", "store", "--key", "ts/timestamp.key", "--trust", "certs/signing.pub"])
        .args(["--every", "1s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fts timestamp");
    let started = unix_now();
    let mut attested = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // --max-age 5s: the signer looks every 2 s; more than 5 s without a new
        // cosignature reaching the host is stale.
        while unix_now() < started + 9 {
            let run = poll(&sandbox, server.addr, &["--max-age", "5s"]);
            run.expect(0, "fresh while the signer runs");
            attested.push(log_state(&sandbox)["attested"].as_u64().expect("attested"));
            std::thread::sleep(Duration::from_millis(1500));
        }
    }));
    let _ = signer.kill();
    let _ = signer.wait();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(attested.last() > attested.first(), "newer cosignatures reached the host: {attested:?}");
}

// ---------------------------------------------------------------------------------
// 3. withheld
// ---------------------------------------------------------------------------------

#[test]
fn a_replica_whose_journal_lost_its_newest_entry_raises_withheld_after_the_bound() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "first.conf", b"first\n");
    let journal_before = std::fs::read(sandbox.join("store/journal")).unwrap();
    publish_to(&sandbox, "store", "second.conf", b"second, the patch kept back\n");
    cosign(&sandbox, "store").expect(0, "cosign");
    copy_dir(&sandbox.join("store"), &sandbox.join("replica"));
    std::fs::write(sandbox.join("replica/journal"), &journal_before).unwrap();
    let server = serve(&sandbox, "replica");

    let run = poll(&sandbox, server.addr, &["--withheld-after", "2s"]);
    run.expect(0, "behind its head, but not yet for --withheld-after");
    assert_eq!(installed(&sandbox, "first.conf").as_deref(), Some(&b"first\n"[..]));
    assert_eq!(installed(&sandbox, "second.conf"), None);
    let state = log_state(&sandbox);
    assert_eq!(state["size"], 2, "the replica's log proves both: {state:#}");
    assert_eq!(state["heads"][ID], 2, "{state:#}");
    let behind_since = state["behind-since"][ID].as_u64().unwrap_or_else(|| panic!("{state:#}"));
    assert!(alarms(&state).is_empty(), "{state:#}");

    sleep_until_after(behind_since + 2);
    let run = poll(&sandbox, server.addr, &["--withheld-after", "2s"]);
    run.expect(4, "withheld");
    assert!(run.stderr.contains("withheld"), "{run:?}");
    assert!(run.stderr.contains("web-01 at seq 1 of 2"), "{run:?}");
    let state = log_state(&sandbox);
    assert_eq!(alarms(&state), ["withheld"], "{state:#}");
    assert_eq!(installed(&sandbox, "second.conf"), None);
}

#[test]
fn a_target_held_on_a_genuine_too_large_entry_is_never_withheld() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "small.conf", b"small\n");
    publish_to(&sandbox, "store", "big.img", &[7u8; 4096]);
    cosign(&sandbox, "store").expect(0, "cosign");
    let server = serve(&sandbox, "store");
    let flags = ["--withheld-after", "2s", "--max-file-size", "1KiB"];

    let run = poll(&sandbox, server.addr, &flags);
    run.expect(3, "held on the too-large entry");
    assert!(run.stderr.contains("too-large"), "{run:?}");
    assert_eq!(installed(&sandbox, "small.conf").as_deref(), Some(&b"small\n"[..]));
    let first = unix_now();
    // Two more polls past the bound: the hold's backoff (1 s, then 2 s) ends in
    // between, so the entry is sent, verified and refused again.
    for _ in 0..2 {
        sleep_until_after(first + 3);
        let run = poll(&sandbox, server.addr, &flags);
        run.expect(3, "still held, never withheld");
        assert!(!run.stderr.contains("withheld"), "{run:?}");
    }
    let state = log_state(&sandbox);
    assert!(alarms(&state).is_empty(), "{state:#}");
    assert!(state["behind-since"].get(ID).is_none(), "{state:#}");
    assert_eq!(installed(&sandbox, "big.img"), None);
}

// ---------------------------------------------------------------------------------
// 4. fork
// ---------------------------------------------------------------------------------

/// Two stores of one log (same key, same origin) that share `one.conf` and then
/// diverge: `store` gains `two-a.conf`, `storeb` gains `extra` files of its own.
fn forked_stores(sandbox: &Sandbox, extra: &[&str]) {
    publish_to(sandbox, "store", "one.conf", b"the common prefix\n");
    copy_dir(&sandbox.join("store"), &sandbox.join("storeb"));
    publish_to(sandbox, "store", "two-a.conf", b"A's second entry\n");
    for name in extra {
        publish_to(sandbox, "storeb", name, format!("B's {name}\n").as_bytes());
    }
    cosign(sandbox, "store").expect(0, "cosign A");
}

fn assert_fork(sandbox: &Sandbox, run: &Run, b_names: &[&str]) {
    run.expect(4, "the fork alarm");
    assert!(run.stderr.contains("fork"), "{run:?}");
    for name in b_names {
        assert_eq!(installed(sandbox, name), None, "nothing of B's answer is installed: {name}");
    }
    let state = log_state(sandbox);
    assert!(alarms(&state).contains(&"fork".to_owned()), "{state:#}");
    let a = std::fs::read_to_string(sandbox.join("store/log/checkpoint")).unwrap();
    let b = std::fs::read_to_string(sandbox.join("storeb/log/checkpoint")).unwrap();
    assert_eq!(state["size"], 2, "the recorded checkpoint is still A's: {state:#}");
    let a_root = a.lines().nth(2).unwrap();
    assert_eq!(state["root"].as_str(), Some(a_root), "{state:#}");
    let evidence = sandbox.join("in/.fts-state.json.evidence");
    let files: Vec<String> = std::fs::read_dir(&evidence)
        .unwrap_or_else(|e| panic!("{}: {e}", evidence.display()))
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|text| text.contains("fork"))
        .collect();
    assert_eq!(files.len(), 1, "one fork evidence file: {files:#?}");
    let b_text: Vec<&str> = b.split("\n\n").next().unwrap().lines().collect();
    let a_text: Vec<&str> = a.split("\n\n").next().unwrap().lines().collect();
    assert!(contains_all(&files[0], &a_text), "A's checkpoint is in the evidence: {}", files[0]);
    assert!(contains_all(&files[0], &b_text), "B's checkpoint is in the evidence: {}", files[0]);
}

#[test]
fn two_checkpoints_of_one_size_with_different_roots_raise_fork_and_install_nothing() {
    let sandbox = sandbox();
    forked_stores(&sandbox, &["two-b.conf"]);
    let a = serve(&sandbox, "store");
    let b = serve(&sandbox, "storeb");
    poll(&sandbox, a.addr, &[]).expect(0, "A installs");
    assert_eq!(installed(&sandbox, "two-a.conf").as_deref(), Some(&b"A's second entry\n"[..]));

    let run = poll(&sandbox, b.addr, &[]);
    assert_fork(&sandbox, &run, &["two-b.conf"]);
    // A server that keeps sending its fork adds no evidence: the first stays.
    let again = poll(&sandbox, b.addr, &[]);
    assert_fork(&sandbox, &again, &["two-b.conf"]);
}

#[test]
fn a_larger_checkpoint_whose_consistency_proof_fails_raises_fork_and_installs_nothing() {
    let sandbox = sandbox();
    forked_stores(&sandbox, &["two-b.conf", "three-b.conf"]);
    let a = serve(&sandbox, "store");
    let b = serve(&sandbox, "storeb");
    poll(&sandbox, a.addr, &[]).expect(0, "A installs");

    let run = poll(&sandbox, b.addr, &[]);
    assert_fork(&sandbox, &run, &["two-b.conf", "three-b.conf"]);
}

// ---------------------------------------------------------------------------------
// 5. behind, never fork
// ---------------------------------------------------------------------------------

#[test]
fn an_honest_lagging_replica_answers_log_behind_and_is_never_a_fork() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "one.conf", b"1\n");
    publish_to(&sandbox, "store", "two.conf", b"2\n");
    copy_dir(&sandbox.join("store"), &sandbox.join("lagging"));
    publish_to(&sandbox, "store", "three.conf", b"3\n");
    cosign(&sandbox, "store").expect(0, "cosign");
    let master = serve(&sandbox, "store");
    poll(&sandbox, master.addr, &[]).expect(0, "the master");
    assert_eq!(log_state(&sandbox)["size"], 3);

    let lagging = serve(&sandbox, "lagging");
    let run = poll(&sandbox, lagging.addr, &[]);
    run.expect(1, "the poll fails: the server is behind");
    assert!(run.stderr.contains("log-behind"), "the error code is named: {run:?}");
    assert!(!run.stderr.contains("fork"), "{run:?}");
    let state = log_state(&sandbox);
    assert_eq!(state["size"], 3, "the recorded checkpoint never goes back: {state:#}");
    assert!(!alarms(&state).contains(&"fork".to_owned()), "{state:#}");
    assert!(!sandbox.join("in/.fts-state.json.evidence").exists(), "no evidence of a fork");
}

// ---------------------------------------------------------------------------------
// 6. The timestamp signer refuses a rolled-back checkpoint
// ---------------------------------------------------------------------------------

#[test]
fn the_timestamp_signer_refuses_a_rolled_back_checkpoint_and_keeps_its_cosignature() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "one.conf", b"1\n");
    publish_to(&sandbox, "store", "two.conf", b"2\n");
    copy_dir(&sandbox.join("store"), &sandbox.join("old"));
    publish_to(&sandbox, "store", "three.conf", b"3\n");
    cosign(&sandbox, "store").expect(0, "cosign at size 3");
    assert_eq!(signer_state(&sandbox)["size"], 3);

    // The store is replaced by its old copy, with the cosignature folder copied back.
    std::fs::rename(sandbox.join("store"), sandbox.join("newer")).unwrap();
    copy_dir(&sandbox.join("old"), &sandbox.join("store"));
    copy_dir(&sandbox.join("newer/cosignatures"), &sandbox.join("store/cosignatures"));
    let cosignature = std::fs::read(cosignature_path(&sandbox, "store")).unwrap();
    let state = std::fs::read(sandbox.join("ts/timestamp-state.json")).unwrap();

    let run = cosign(&sandbox, "store");
    run.expect(1, "a rolled-back checkpoint is refused");
    assert!(
        contains_all(&run.stderr, &["2 leaves", "fewer than the 3 already cosigned"]),
        "says why: {run:?}"
    );
    assert_eq!(std::fs::read(cosignature_path(&sandbox, "store")).unwrap(), cosignature, "not cosigned");
    assert_eq!(std::fs::read(sandbox.join("ts/timestamp-state.json")).unwrap(), state);
}

// ---------------------------------------------------------------------------------
// 7. A restored old master cannot publish
// ---------------------------------------------------------------------------------

#[test]
fn a_restored_old_master_store_cannot_publish_and_log_verify_against_says_so() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "one.conf", b"1\n");
    publish_to(&sandbox, "store", "two.conf", b"2\n");
    copy_dir(&sandbox.join("store"), &sandbox.join("backup"));
    publish_to(&sandbox, "store", "three.conf", b"3\n");
    cosign(&sandbox, "store").expect(0, "cosign at size 3");

    // The master is lost; the old backup is restored, with the newer cosignatures.
    std::fs::rename(sandbox.join("store"), sandbox.join("newer")).unwrap();
    copy_dir(&sandbox.join("backup"), &sandbox.join("store"));
    copy_dir(&sandbox.join("newer/cosignatures"), &sandbox.join("store/cosignatures"));
    let journal = std::fs::read(sandbox.join("store/journal")).unwrap();
    let leaves = std::fs::read(sandbox.join("store/log/leaves")).unwrap();
    let checkpoint = std::fs::read(sandbox.join("store/log/checkpoint")).unwrap();

    let verify = fts(&sandbox, &["log", "verify", "--store", "store", "--against", "newer"]);
    assert_ne!(verify.code, 0, "the restored store does not extend the newer one: {verify:?}");
    assert!(verify.stderr.contains("older") || verify.stderr.contains("covers 3 leaves"), "{verify:?}");
    fts(&sandbox, &["log", "verify", "--store", "newer"]).expect(0, "the newer store verifies");
    fts(&sandbox, &["log", "verify", "--store", "newer", "--against", "store"])
        .expect(0, "the newer store extends the restored one and its cosignatures");

    let run = try_publish(&sandbox, "store", "four.conf", b"4\n");
    assert_ne!(run.code, 0, "a restored old store must not publish: {run:?}");
    let said = run.stderr.to_lowercase();
    assert!(
        said.contains("cosigned") && said.contains("restore"),
        "the message names the cosigned checkpoint and the way out: {run:?}"
    );
    assert_eq!(std::fs::read(sandbox.join("store/log/checkpoint")).unwrap(), checkpoint, "nothing signed");
    assert_eq!(std::fs::read(sandbox.join("store/log/leaves")).unwrap(), leaves, "no leaf appended");
    assert_eq!(
        std::fs::read(sandbox.join("store/journal")).unwrap(),
        journal,
        "nothing written to the journal"
    );
}

// ---------------------------------------------------------------------------------
// 8. clock
// ---------------------------------------------------------------------------------

#[test]
fn a_cosignature_dated_two_hours_ahead_raises_clock_and_the_entry_still_installs() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "app.conf", b"version 1\n");
    let text = std::fs::read_to_string(sandbox.join("store/log/checkpoint")).unwrap();
    let mut note = Note::parse(&text).expect("a checkpoint note");
    let checkpoint = Checkpoint::parse_text(&note.text).expect("a checkpoint");
    let key = timestamp_key(&sandbox);
    note.signatures.push(key.cosign(&checkpoint, unix_now() + 7200));
    let path = cosignature_path(&sandbox, "store");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, note.render()).unwrap();
    let server = serve(&sandbox, "store");

    let run = poll(&sandbox, server.addr, &[]);
    run.expect(4, "the clock alarm");
    assert!(run.stderr.contains("clock"), "{run:?}");
    assert_eq!(installed(&sandbox, "app.conf").as_deref(), Some(&b"version 1\n"[..]), "it still installs");
    let state = log_state(&sandbox);
    assert!(alarms(&state).contains(&"clock".to_owned()), "{state:#}");
    assert!(state["attested"].is_null(), "the cosignature ahead is not used: {state:#}");
    assert_eq!(state["size"], 1, "{state:#}");
}

// ---------------------------------------------------------------------------------
// 9. not-logged (scripted hostile server)
// ---------------------------------------------------------------------------------

/// The journal's entries of `store`.
fn entries(sandbox: &Sandbox, store: &str) -> Vec<fts_store::Entry> {
    fts_store::StoreReader::open(sandbox.join(store)).expect("open the store").entries().to_vec()
}

/// A `log` frame as an honest server of `store` would send it to web-01 (group web)
/// at log size 0 (the checkpoint with its cosignature), and the tree of its leaves.
fn log_frame(sandbox: &Sandbox, store: &str) -> (Vec<u8>, fts_log::merkle::Tree) {
    let note = std::fs::read_to_string(cosignature_path(sandbox, store)).unwrap();
    let file = std::fs::File::open(sandbox.join(store).join("log/leaves")).unwrap();
    let read = fts_store::log::read_leaves(&mut std::io::BufReader::new(file), 0).unwrap();
    let mut tree = fts_log::merkle::Tree::new();
    let mut targets = Vec::new();
    for leaf in &read.leaves {
        tree.push(fts_log::merkle::leaf_hash(leaf));
        targets.push(fts_store::log::leaf_kind(leaf).expect("a leaf fts writes"));
    }
    let heads = fts_log::heads::HeadsTree::new(&fts_store::log::heads_of(&targets));
    let mine: BTreeMap<Target, _> = [ID, "all", "group:web"]
        .into_iter()
        .map(|t| Target::parse(t).unwrap())
        .map(|t| {
            let proof = heads.prove(&t);
            (t, proof)
        })
        .collect();
    let frame = ServerFrame::Log(fts_proto::LogFrame {
        checkpoint: note,
        consistency: Vec::new(),
        heads: mine,
        rotations: Vec::new(),
    });
    (frame.encode().expect("encode the log frame"), tree)
}

/// The `file` frame of `entry` with its body, with `inclusion` as given.
fn file_frame(entry: &fts_store::Entry, body: &[u8], inclusion: Option<(u64, Vec<LogHash>)>) -> Vec<u8> {
    let mut header = FileHeader::new(entry.statement.clone(), entry.key_id, entry.signature);
    if let Some((index, proof)) = inclusion {
        header.log_index = Some(index);
        header.inclusion = Some(proof);
    }
    let mut bytes = ServerFrame::File(header).encode().expect("encode the file frame");
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn after_a_verified_checkpoint_an_entry_without_a_valid_inclusion_proof_is_not_logged() {
    let sandbox = sandbox();
    let first = b"first entry, genuinely signed\n";
    publish_to(&sandbox, "store", "first.conf", first);
    publish_to(&sandbox, "store", "second.conf", b"second\n");
    cosign(&sandbox, "store").expect(0, "cosign");
    let server = HostileServer::start_in(&sandbox.join("certs"));
    let entry = entries(&sandbox, "store").remove(0);
    let (log, tree) = log_frame(&sandbox, "store");
    let genuine = tree.inclusion_proof(0, tree.len()).unwrap();
    assert_eq!(genuine.len(), 1, "two leaves: one sibling");
    let mut flipped = genuine.clone();
    flipped[0].0[0] ^= 1;
    let checkpoint = ["--log-checkpoint", "store/log/checkpoint"];

    // The control: the same answer with the genuine proof installs (on a host of its
    // own), so the frames built here are the protocol's.
    let mut honest = log.clone();
    honest.extend(file_frame(&entry, first, Some((0, genuine))));
    honest.extend(done_frame());
    server.push(Answer::bytes(honest));
    let run = poll_into(&sandbox, server.addr, "control", &checkpoint);
    run.expect(0, "the genuine proof installs");
    assert_eq!(std::fs::read(sandbox.join("control/first.conf")).unwrap(), first);

    // 1. No `log` frame at all, from a host that has verified a checkpoint (without
    //    a timestamp key: no cosignature reaches it, and `stale` is not the point).
    server.push(Answer::bytes([file_frame(&entry, first, None), done_frame()].concat()));
    let run = poll_with(&sandbox, server.addr, "in", false, &checkpoint);
    run.expect(3, "not-logged");
    assert!(run.stderr.contains("not-logged"), "{run:?}");
    assert_eq!(installed(&sandbox, "first.conf"), None);

    // 2. A `log` frame, and the entry with a flipped proof (on a third host).
    let mut forged = log.clone();
    forged.extend(file_frame(&entry, first, Some((0, flipped))));
    forged.extend(done_frame());
    server.push(Answer::bytes(forged));
    let run = poll_into(&sandbox, server.addr, "third", &checkpoint);
    run.expect(3, "not-logged");
    assert!(run.stderr.contains("not-logged"), "{run:?}");
    assert!(!sandbox.join("third/first.conf").exists());
    // And one that carries no proof in an answer with a `log` frame.
    let mut bare = log;
    bare.extend(file_frame(&entry, first, None));
    bare.extend(done_frame());
    server.push(Answer::bytes(bare));
    let run = poll_into(&sandbox, server.addr, "fourth", &checkpoint);
    run.expect(3, "not-logged");
    assert!(run.stderr.contains("not-logged"), "{run:?}");
    assert!(!sandbox.join("fourth/first.conf").exists());

    // The refusals are reported to the server with the next requests.
    poll_with(&sandbox, server.addr, "in", false, &checkpoint);
    let reported = server
        .requests()
        .iter()
        .filter(|r| r["rejected"].as_array().is_some_and(|a| a.iter().any(|x| x["reason"] == "not-logged")))
        .count();
    assert!(reported >= 1, "{:#?}", server.requests());
}

// ---------------------------------------------------------------------------------
// 10. kill -9 of the timestamp signer
// ---------------------------------------------------------------------------------

#[test]
fn kill_9_of_the_timestamp_signer_never_leaves_a_torn_state_or_cosignature() {
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "one.conf", b"1\n");
    let key = timestamp_key(&sandbox);
    let public = key.public();
    let cosigned = cosignature_path(&sandbox, "store");
    let mut seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    for round in 0..5 {
        let mut child = sandbox
            .fts([
                "timestamp",
                "--store",
                "store",
                "--key",
                "ts/timestamp.key",
                "--trust",
                "certs/signing.pub",
                "--every",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start fts timestamp");
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let wait = Duration::from_millis(200 + (seed >> 33) % 2800);
        std::thread::sleep(wait);
        if round % 2 == 1 {
            publish_to(&sandbox, "store", &format!("more-{round}.conf"), b"more\n");
            std::thread::sleep(Duration::from_millis((seed >> 20) % 700));
        }
        child.kill().expect("kill -9");
        let status = child.wait().unwrap();
        assert!(status.code().is_none(), "killed by the signal, not exited: {status:?}");

        // Whatever the moment, both files are whole (or not there yet).
        if let Ok(bytes) = std::fs::read(sandbox.join("ts/timestamp-state.json")) {
            let state: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("round {round}, after {wait:?}: a torn state ({e}): {bytes:?}"));
            assert!(state["size"].as_u64().is_some_and(|s| s >= 1), "{state:#}");
        }
        if let Ok(text) = std::fs::read_to_string(&cosigned) {
            let note = Note::parse(&text)
                .unwrap_or_else(|e| panic!("round {round}: a torn cosignature ({e}): {text}"));
            let checkpoint = Checkpoint::parse_text(&note.text).expect("a checkpoint");
            let lines =
                fts_trust::note::verify_cosignatures(&note, &checkpoint, std::slice::from_ref(&public))
                    .unwrap_or_else(|e| panic!("round {round}: the cosignature does not verify: {e}"));
            assert_eq!(lines.len(), 1, "round {round}: one cosignature line");
        }
        let names: Vec<String> = std::fs::read_dir(sandbox.join("store/cosignatures"))
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        assert!(names.iter().all(|n| n.starts_with('.') || *n == key.key_id().to_string()), "{names:?}");
    }

    // Restarted, it cosigns the newest checkpoint, and a host verifies it.
    cosign(&sandbox, "store").expect(0, "the signer starts again on its state");
    let size = Note::parse(&std::fs::read_to_string(sandbox.join("store/log/checkpoint")).unwrap())
        .map(|n| Checkpoint::parse_text(&n.text).unwrap().size)
        .unwrap();
    assert_eq!(signer_state(&sandbox)["size"], size);
    let server = serve(&sandbox, "store");
    let run = poll(&sandbox, server.addr, &["--max-age", "1h"]);
    run.expect(0, "the host verifies the cosignature");
    let state = log_state(&sandbox);
    assert!(state["attested"].as_u64().is_some(), "{state:#}");
    assert_eq!(state["size"], size, "{state:#}");
}

// ---------------------------------------------------------------------------------
// 11. The previous release
// ---------------------------------------------------------------------------------

#[test]
fn the_previous_release_polls_a_server_that_serves_the_log() {
    let Some(previous) = crate::compat::previous_release() else { return };
    let sandbox = sandbox();
    publish_to(&sandbox, "store", "app.conf", b"from a logged, cosigned store\n");
    cosign(&sandbox, "store").expect(0, "cosign");
    let server = serve(&sandbox, "store");
    let addr = server.addr.to_string();
    let mut old = Command::new(&previous);
    old.args(["poll", "--once", "--server", &addr, "--id", ID, "--dest", "in"]).current_dir(sandbox.path());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FTS_") {
            old.env_remove(key);
        }
    }
    let run = run_bounded(&mut old, LIMIT);
    run.expect(0, "the previous release installs");
    assert_eq!(installed(&sandbox, "app.conf").as_deref(), Some(&b"from a logged, cosigned store\n"[..]));

    // This release then takes over the state the old one wrote, with freshness on.
    publish_to(&sandbox, "store", "next.conf", b"next\n");
    cosign(&sandbox, "store").expect(0, "cosign again");
    let run = poll(&sandbox, server.addr, &[]);
    run.expect(0, "this release on the previous one's state");
    assert_eq!(installed(&sandbox, "next.conf").as_deref(), Some(&b"next\n"[..]));
    assert_eq!(log_state(&sandbox)["size"], 2);
}
