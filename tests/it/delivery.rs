//! Delivery that never silently drops a patch (the delivery issue), end to end with
//! the real `fts serve` and `fts poll --once` over mutual TLS on 127.0.0.1:
//! - targets progress independently: an untrusted-key entry, a body that is not what
//!   was signed and a blob missing on the server each hold only their own target,
//!   while another target installs in the same `--once` run; each installs once its
//!   cause is gone;
//! - a too-large entry is held, never skipped, and installs once the limit allows it;
//! - a held target costs no extra connection;
//! - failed hooks are retried with backoff, given up after `--hook-retries`, run again
//!   with `--rerun-hook`, and `--hold-on-hook-failure` holds their target;
//! - a cut transfer resumes at the offset it reached; a wrong kept prefix is thrown
//!   away and the file installs at the following try.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_success, run, stderr, stdout};

/// `fts serve` with its metrics on a port of its own (the tests read bytes sent and
/// polls answered there).
fn serve(sandbox: &Sandbox) -> ServeProcess {
    ServeProcess::start(sandbox, &["--metrics-listen", "127.0.0.1:0"])
}

fn state(sandbox: &Sandbox) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(sandbox.join("in/.fts-state.json")).unwrap()).unwrap()
}

fn poll_once(sandbox: &Sandbox, server: &ServeProcess, id: &str, extra: &[&str]) -> Output {
    let addr = server.addr.to_string();
    let mut args = vec!["poll", "--once", "--server", &addr, "--id", id, "--dest", "in"];
    if !extra.contains(&"--min-interval") {
        args.extend(["--min-interval", "1s"]);
    }
    args.extend(extra);
    run(&mut sandbox.fts(args))
}

fn expect_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(out.status.code(), Some(code), "{what}:\nstdout: {}\nstderr: {}", stdout(out), stderr(out));
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The blob of `contents` in the sandbox's store.
fn blob_path(sandbox: &Sandbox, contents: &[u8]) -> std::path::PathBuf {
    let hex = hex::encode(Sha256::digest(contents));
    sandbox.join("store/blobs").join(&hex[..2]).join(&hex)
}

fn installed(sandbox: &Sandbox, name: &str) -> Option<Vec<u8>> {
    std::fs::read(sandbox.join("in").join(name)).ok()
}

fn hold_of<'a>(state: &'a serde_json::Value, target: &str) -> &'a serde_json::Value {
    &state["held"][target]
}

#[test]
fn one_entry_that_cannot_be_applied_holds_only_its_own_target() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &["web", "db"])]);
    expect_success(&mut sandbox.fts(["keygen", "signing", "--dir", "other"]));
    // all: signed by a key the host does not trust (yet).
    let untrusted = b"signed by the new key".to_vec();
    let source = sandbox.join("outbox/new-key.conf");
    std::fs::create_dir_all(source.parent().unwrap()).unwrap();
    std::fs::write(&source, &untrusted).unwrap();
    expect_success(&mut sandbox.fts([
        "publish",
        source.to_str().unwrap(),
        "--to",
        "all",
        "--signing-key",
        "other/signing.key",
    ]));
    // web-01: a blob the server will serve with other bytes than were signed.
    let genuine = b"the genuine host file".to_vec();
    sandbox.publish("host.conf", &genuine, &["web-01"]);
    // group:web: a blob missing on the server (a replica still syncing).
    let missing = b"the blob of this is not there yet".to_vec();
    sandbox.publish("web.conf", &missing, &["group:web"]);
    // group:db: the urgent fix that must not wait for any of them.
    let urgent = b"urgent fix".to_vec();
    sandbox.publish("urgent.sh", &urgent, &["group:db"]);

    let corrupt_blob = blob_path(&sandbox, &genuine);
    // Of the same size as signed: only the hash tells.
    let forged: Vec<u8> = genuine.iter().rev().copied().collect();
    std::fs::write(&corrupt_blob, &forged).unwrap();
    let missing_blob = blob_path(&sandbox, &missing);
    let aside = sandbox.join("aside");
    std::fs::rename(&missing_blob, &aside).unwrap();

    let server = serve(&sandbox);
    let out = poll_once(&sandbox, &server, "web-01", &[]);
    expect_exit(&out, 3, "held targets and reported problems exit 3");
    assert_eq!(installed(&sandbox, "urgent.sh"), Some(urgent.clone()), "the other target installed");
    assert_eq!(installed(&sandbox, "new-key.conf"), None);
    assert_eq!(installed(&sandbox, "host.conf"), None, "the forged body was not installed");
    assert_eq!(installed(&sandbox, "web.conf"), None);
    let s = state(&sandbox);
    assert_eq!(hold_of(&s, "all")["reason"], "untrusted-key", "{s:#}");
    assert_eq!(hold_of(&s, "all")["seq"], 1);
    assert_eq!(hold_of(&s, "web-01")["reason"], "hash-mismatch", "{s:#}");
    assert!(hold_of(&s, "group:web").is_null(), "a missing blob is the server's wait, not a hold: {s:#}");
    assert_eq!(s["since"]["group:db"], 1);
    assert_eq!(s["since"]["all"].as_u64().unwrap_or(0), 0, "nothing held was applied");
    let text = stdout(&out);
    assert!(text.contains("1 file(s) installed") && text.contains("held: "), "{text}");
    assert!(text.contains("all at seq 1 (untrusted-key"), "{text}");
    let logs = server.logs();
    assert!(
        logs.iter().any(|l| l["fields"]["target"] == "group:web"
            && l["fields"]["message"].as_str().is_some_and(|m| m.contains("cannot be served yet"))),
        "the server logs the waiting target"
    );

    // The server's view says so: the repeats of the run named the held targets.
    // Held hosts need attention: exit 3.
    let status = crate::common::expect_code(&mut sandbox.fts(["status"]), 3);
    let text = stdout(&status);
    // (What a host applied shows at its next request: the fleet view lags a poll.)
    let row = |target: &str| {
        text.lines().find(|l| l.split_whitespace().any(|w| w == target)).unwrap_or_default().to_owned()
    };
    assert!(row("all").ends_with("held at seq 1, 1 behind"), "{text}");
    assert_eq!(text.lines().filter(|l| l.contains("held at seq 1")).count(), 2, "all and web-01: {text}");
    assert!(!row("group:web").contains("held"), "a missing blob is the server's wait: {text}");

    // The causes go, one by one, and each target installs.
    std::fs::rename(&aside, &missing_blob).unwrap();
    let trust_both = ["--trust", "certs/signing.pub", "--trust", "other/signing.pub"];
    let out = poll_once(&sandbox, &server, "web-01", &trust_both);
    assert_eq!(installed(&sandbox, "web.conf"), Some(missing.clone()), "{}", stderr(&out));
    assert_eq!(
        installed(&sandbox, "new-key.conf"),
        Some(untrusted.clone()),
        "a newly trusted key ends its hold at once: {}",
        stderr(&out)
    );
    assert_eq!(installed(&sandbox, "host.conf"), None, "the forged body is still held, in its backoff");
    expect_exit(&out, 3, "web-01 is still held");

    std::fs::write(&corrupt_blob, &genuine).unwrap();
    // The backoff after the first mismatch is --min-interval (1 s).
    std::thread::sleep(Duration::from_millis(2100));
    let out = poll_once(&sandbox, &server, "web-01", &trust_both);
    expect_exit(&out, 0, "every target installed, nothing held");
    assert_eq!(installed(&sandbox, "host.conf"), Some(genuine));
    assert!(state(&sandbox)["held"].is_null(), "{:#}", state(&sandbox));
}

#[test]
fn a_too_large_entry_is_held_and_installs_once_the_limit_allows_it() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    let big = vec![7u8; 2 << 20];
    sandbox.publish("big.img", &big, &["all"]);
    let later = b"later on all".to_vec();
    sandbox.publish("later.conf", &later, &["all"]);
    let other = b"on its own target".to_vec();
    sandbox.publish("own.conf", &other, &["web-01"]);
    let server = serve(&sandbox);

    let out = poll_once(&sandbox, &server, "web-01", &["--max-file-size", "1MiB"]);
    expect_exit(&out, 3, "too-large is reported and held");
    assert!(stderr(&out).contains("too-large"), "{}", stderr(&out));
    assert!(stdout(&out).contains("all at seq 1 (too-large, 1 waiting behind)"), "{}", stdout(&out));
    assert_eq!(installed(&sandbox, "own.conf"), Some(other));
    assert_eq!(installed(&sandbox, "big.img"), None);
    assert_eq!(installed(&sandbox, "later.conf"), None, "the later entry waits behind it");
    assert_eq!(state(&sandbox)["since"]["all"].as_u64().unwrap_or(0), 0, "held, never skipped");

    // The same limit: still held, exit 3, and the server sends nothing of it.
    let sent_before = server.metric("fts_bytes_sent_total");
    let out = poll_once(&sandbox, &server, "web-01", &["--max-file-size", "1MiB"]);
    expect_exit(&out, 3, "still held");
    assert_eq!(server.metric("fts_bytes_sent_total"), sent_before, "a held target is not sent");

    let out = poll_once(&sandbox, &server, "web-01", &["--max-file-size", "4MiB"]);
    expect_exit(&out, 0, "a larger limit ends the hold at once");
    assert_eq!(installed(&sandbox, "big.img"), Some(big));
    assert_eq!(installed(&sandbox, "later.conf"), Some(later));
}

#[test]
fn a_held_target_costs_no_extra_connection() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    sandbox.publish("big.img", &vec![1u8; 2 << 20], &["all"]);
    let server = serve(&sandbox);
    let polls = || server.metric("fts_polls_total{result=\"ok\"}");
    // The poll that finds the entry too large holds it and repeats once at once.
    expect_exit(&poll_once(&sandbox, &server, "web-01", &["--max-file-size", "1MiB"]), 3, "held");
    for run in 0..3 {
        let before = polls();
        let out = poll_once(&sandbox, &server, "web-01", &["--max-file-size", "1MiB"]);
        expect_exit(&out, 3, "still held");
        assert_eq!(polls() - before, 1.0, "run {run}: one connection per run while held");
    }
}

/// A hook that fails while `fail-count` says so (decrementing it), logging each run
/// with the hash it was given.
fn flaky_hook(sandbox: &Sandbox, failures: u32) -> std::path::PathBuf {
    let hook = sandbox.join("hook.sh");
    let log = sandbox.join("hook.log");
    let count = sandbox.join("fail-count");
    std::fs::write(&count, failures.to_string()).unwrap();
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\necho \"$FTS_HOOK_SEQ $FTS_HOOK_FILE_HASH\" >> {log}\nn=$(cat {count})\n\
             if [ \"$n\" -gt 0 ]; then echo $((n - 1)) > {count}; exit 100; fi\nexit 0\n",
            log = log.display(),
            count = count.display()
        ),
    )
    .unwrap();
    let mut permissions = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&hook, permissions).unwrap();
    hook
}

fn hook_runs(sandbox: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sandbox.join("hook.log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn a_failed_hook_is_retried_with_backoff_then_given_up_and_rerun_on_demand() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    let hook = flaky_hook(&sandbox, 3);
    let hook = hook.to_str().unwrap();
    let v1 = b"version 1".to_vec();
    sandbox.publish("app.conf", &v1, &["all"]);
    let server = serve(&sandbox);
    // A backoff of 3 s (the first retry due 3 to 4 s after the failure): room for the
    // run in between to see that it is not due yet, even on a slow machine.
    let with_hook = ["--exec", hook, "--hook-retries", "1", "--min-interval", "3s"];

    let out = poll_once(&sandbox, &server, "web-01", &with_hook);
    expect_exit(&out, 3, "a failed hook is reported");
    assert!(stderr(&out).contains("hook-failed (attempt 1)"), "{}", stderr(&out));
    assert_eq!(installed(&sandbox, "app.conf"), Some(v1.clone()), "the install stands");
    // Within its backoff the retry does not run.
    let out = poll_once(&sandbox, &server, "web-01", &with_hook);
    expect_exit(&out, 0, "nothing new");
    assert_eq!(hook_runs(&sandbox).len(), 1, "no retry before the backoff ends");
    std::thread::sleep(Duration::from_millis(4100));
    let out = poll_once(&sandbox, &server, "web-01", &with_hook);
    expect_exit(&out, 3, "the last retry failed");
    let err = stderr(&out);
    assert!(err.contains("hook-failed (attempt 2)") && err.contains("hook-given-up"), "{err}");
    // A given-up hook keeps no retry time: were it not given up, it would be due now.
    expect_exit(&poll_once(&sandbox, &server, "web-01", &with_hook), 0, "given up: not run again");
    assert_eq!(hook_runs(&sandbox).len(), 2);

    // The server recorded the highest attempt, of how many: given up (its receipt).
    let status: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("status/web-01.json")).unwrap()).unwrap();
    let entries = status["entries"].as_array().unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e["outcome"] == "hook-failed" && e["detail"] == "2/2" && e["file-name"] == "app.conf"),
        "{status:#}"
    );

    // On demand: fails once more (the counter says 1), then succeeds.
    let rerun = |name: &str| {
        let args = ["poll", "--server", "127.0.0.1:1", "--id", "web-01", "--dest", "in", "--exec", hook];
        run(sandbox.fts(args).args(["--rerun-hook", name]))
    };
    expect_exit(&rerun("app.conf"), 3, "the rerun failed");
    let out = rerun("app.conf");
    expect_exit(&out, 0, "the rerun succeeded");
    assert!(stdout(&out).contains("the hook of app.conf succeeded"), "{}", stdout(&out));
    assert!(state(&sandbox)["hooks-pending"].as_array().unwrap().is_empty(), "{:#}", state(&sandbox));
    let no_such = rerun("nope.conf");
    expect_exit(&no_such, 1, "a name not installed");
    assert!(stderr(&no_such).contains("nope.conf is not installed"), "{}", stderr(&no_such));
}

#[test]
fn a_newer_install_drops_the_retries_of_the_older_and_a_failing_hook_can_hold_its_target() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    let hook = flaky_hook(&sandbox, 1);
    let hook = hook.to_str().unwrap();
    let v1 = b"version 1".to_vec();
    sandbox.publish("app.conf", &v1, &["all"]);
    let server = serve(&sandbox);
    let flags = ["--exec", hook, "--hold-on-hook-failure"];

    expect_exit(&poll_once(&sandbox, &server, "web-01", &flags), 3, "the hook failed");
    let v2 = b"version 2".to_vec();
    sandbox.publish("app.conf", &v2, &["all"]);
    let out = poll_once(&sandbox, &server, "web-01", &flags);
    expect_exit(&out, 3, "the target is held while the hook fails");
    assert!(stdout(&out).contains("all at seq 2 (hook-failed"), "{}", stdout(&out));
    assert_eq!(installed(&sandbox, "app.conf"), Some(v1.clone()), "v2 waits for the hook");

    std::thread::sleep(Duration::from_millis(2100));
    // The retry (due now) succeeds, which ends the hold: v2 installs in the same run,
    // and its own hook runs; v1's retry is not run again.
    let out = poll_once(&sandbox, &server, "web-01", &flags);
    expect_exit(&out, 0, "the retry succeeded and v2 installed");
    assert_eq!(installed(&sandbox, "app.conf"), Some(v2.clone()));
    let runs = hook_runs(&sandbox);
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(runs[2], format!("2 {}", sha256(&v2)), "{runs:?}");
    assert!(runs[..2].iter().all(|r| *r == format!("1 {}", sha256(&v1))), "{runs:?}");
}

/// Waits until the kept file of a transfer in `in/.fts-partial` has at least `len`
/// bytes, then stops and kills the client: a host killed mid-transfer.
fn kill_when_kept(sandbox: &Sandbox, child: &mut std::process::Child, len: u64) -> u64 {
    let partial = sandbox.join("in/.fts-partial");
    let started = Instant::now();
    loop {
        let kept = kept_len(&partial);
        if kept >= len {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the client ended before the cut (kept {kept})");
        assert!(started.elapsed() < Duration::from_secs(60), "the transfer never got to {len}");
        std::thread::sleep(Duration::from_micros(200));
    }
    let _ = std::process::Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
    let _ = child.wait();
    kept_len(&partial)
}

fn kept_len(partial: &Path) -> u64 {
    std::fs::read_dir(partial)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("sha256-"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
fn a_cut_transfer_resumes_where_it_stopped_and_a_wrong_prefix_is_thrown_away() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    let size: usize = 256 << 20;
    let image: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
    sandbox.publish("image.bin", &image, &["all"]);
    let server = serve(&sandbox);
    let addr = server.addr.to_string();
    let poll = || {
        let mut cmd = sandbox.fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    };

    // 1. Killed at half way: the next run sends only the rest.
    let mut child = poll().spawn().unwrap();
    let kept = kill_when_kept(&sandbox, &mut child, size as u64 / 2);
    assert!(kept < size as u64, "cut before the end ({kept})");
    let s = state(&sandbox);
    assert_eq!(s["transfers"]["all"]["file-size"], size, "the transfer is recorded: {s:#}");
    let sent_before = server.metric("fts_bytes_sent_total");
    let out = poll_once(&sandbox, &server, "web-01", &[]);
    expect_exit(&out, 0, "the resumed transfer installs");
    let resent = server.metric("fts_bytes_sent_total") - sent_before;
    assert!(resent <= 0.55 * size as f64, "resent {resent} of {size} after keeping {kept}");
    assert!(installed(&sandbox, "image.bin") == Some(image.clone()), "the whole file, verified");
    assert_eq!(kept_len(&sandbox.join("in/.fts-partial")), 0, "nothing kept once installed");
    assert!(state(&sandbox)["transfers"].is_null());

    // 2. A kept prefix that is wrong: the resumed body fails the hash, the prefix is
    //    thrown away, and the following try installs from zero.
    let image2: Vec<u8> = (0..size).map(|i| (i % 241) as u8).collect();
    sandbox.publish("image.bin", &image2, &["all"]);
    let mut child = poll().spawn().unwrap();
    kill_when_kept(&sandbox, &mut child, size as u64 / 2);
    let partial = sandbox.join("in/.fts-partial");
    let kept_file = std::fs::read_dir(&partial)
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("sha256-"))
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&kept_file).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&kept_file, &bytes).unwrap();
    let out = poll_once(&sandbox, &server, "web-01", &[]);
    expect_exit(&out, 3, "the resumed file fails its hash");
    assert!(stderr(&out).contains("hash-mismatch"), "{}", stderr(&out));
    assert_eq!(installed(&sandbox, "image.bin"), Some(image.clone()), "the old version stays");
    assert_eq!(kept_len(&partial), 0, "the wrong prefix is gone");
    assert!(hold_of(&state(&sandbox), "all").is_null(), "a failed resume does not hold the target");
    let out = poll_once(&sandbox, &server, "web-01", &[]);
    expect_exit(&out, 0, "the following try installs from zero");
    assert!(installed(&sandbox, "image.bin") == Some(image2), "the new version, whole");
}

#[test]
fn a_transfer_cut_by_the_server_stopping_resumes_from_the_next_server() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    let size: usize = 64 << 20;
    let image: Vec<u8> = (0..size).map(|i| (i % 239) as u8).collect();
    sandbox.publish("image.bin", &image, &["all"]);
    let mut first = serve(&sandbox);
    let addr = first.addr.to_string();
    // Slowed down (32 MiB/s) so that the server can be stopped half way.
    let child = sandbox
        .fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in", "--max-rate", "32MiB/s"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partial = sandbox.join("in/.fts-partial");
    let started = Instant::now();
    while kept_len(&partial) < size as u64 / 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "the transfer never got half way");
        std::thread::sleep(Duration::from_millis(5));
    }
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    let out = child.wait_with_output().unwrap();
    expect_exit(&out, 1, "a transfer cut by the server fails the poll");
    let kept = kept_len(&partial);
    assert!(kept >= size as u64 / 2 && kept < size as u64, "the received part is kept: {kept}");

    let second = serve(&sandbox);
    let out = poll_once(&sandbox, &second, "web-01", &[]);
    expect_exit(&out, 0, "the next server resumes it");
    let sent = second.metric("fts_bytes_sent_total");
    assert!(sent <= (size as u64 - kept) as f64 + 1.0, "sent {sent} after {kept} of {size} were kept");
    assert!(installed(&sandbox, "image.bin") == Some(image), "the whole file, verified");
}
