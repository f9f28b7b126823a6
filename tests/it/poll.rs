//! `fts poll` against the real `fts serve`: what a host installs, what it refuses,
//! what survives a restart, and how its hooks run. Real binaries, real certificates,
//! real TLS on 127.0.0.1.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_code, expect_success, run, stderr, stdout};

const WEB_01: (&str, &[&str]) = ("web-01", &["web"]);
const WEB_02: (&str, &[&str]) = ("web-02", &[]);

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[WEB_01, WEB_02]);
    std::fs::create_dir_all(sandbox.join("store")).unwrap();
    sandbox
}

/// `fts poll --once` for `id` into `dest`, with extra flags.
fn poll(sandbox: &Sandbox, server: &ServeProcess, id: &str, dest: &str, extra: &[&str]) -> Output {
    let addr = server.addr.to_string();
    let mut args = vec!["poll", "--once", "--server", &addr, "--id", id, "--dest", dest];
    args.extend_from_slice(extra);
    run(sandbox.fts(&args).env("RUST_LOG", "info"))
}

fn poll_ok(sandbox: &Sandbox, server: &ServeProcess, id: &str, dest: &str, extra: &[&str]) -> Output {
    let out = poll(sandbox, server, id, dest, extra);
    assert_eq!(out.status.code(), Some(0), "poll failed:\n{}\n{}", stdout(&out), stderr(&out));
    out
}

/// The names in a folder, without the client's own dot-files.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    names
}

fn write_hook(sandbox: &Sandbox) -> std::path::PathBuf {
    let hook = sandbox.join("hook.sh");
    std::fs::write(
        &hook,
        "#!/bin/sh\n\
         echo \"$1 $FTS_HOOK_FILE $FTS_HOOK_TARGET $FTS_HOOK_SEQ $FTS_HOOK_FILE_HASH $FTS_HOOK_PUBLISHED\" >> hook.log\n\
         if [ -f slow ]; then touch started; exec sleep 5; fi\n\
         if [ -f fail ]; then exit 7; fi\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    hook
}

fn hook_lines(sandbox: &Sandbox) -> Vec<String> {
    std::fs::read_to_string(sandbox.join("hook.log")).unwrap_or_default().lines().map(str::to_owned).collect()
}

#[test]
fn a_host_receives_its_own_all_and_group_entries_and_nothing_else() {
    let sandbox = sandbox();
    sandbox.publish("own.bin", b"web-01's own", &["web-01"]);
    sandbox.publish("every.bin", b"for all", &["all"]);
    sandbox.publish("group.bin", b"for the web group", &["group:web"]);
    sandbox.publish("other.bin", b"web-02's own", &["web-02"]);
    let server = ServeProcess::start(&sandbox, &[]);

    poll_ok(&sandbox, &server, "web-01", "web01", &[]);
    assert_eq!(files_in(&sandbox.join("web01")), ["every.bin", "group.bin", "own.bin"]);
    assert_eq!(std::fs::read(sandbox.join("web01/group.bin")).unwrap(), b"for the web group");
    let mode = std::fs::metadata(sandbox.join("web01/own.bin")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644, "installed files are 0644, never executable");

    poll_ok(&sandbox, &server, "web-02", "web02", &[]);
    assert_eq!(files_in(&sandbox.join("web02")), ["every.bin", "other.bin"]);
}

#[test]
fn a_second_poll_reinstalls_nothing_and_state_survives_a_restart() {
    let sandbox = sandbox();
    sandbox.publish("a.bin", b"a", &["all"]);
    let mut server = ServeProcess::start(&sandbox, &[]);
    poll_ok(&sandbox, &server, "web-01", "in", &[]);
    let installed = sandbox.join("in/a.bin");
    let before = std::fs::metadata(&installed).unwrap().modified().unwrap();

    // The server restarts; the host's state (and the file) are what count.
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(20));
    let server = ServeProcess::start(&sandbox, &[]);
    std::thread::sleep(Duration::from_millis(20));
    let out = poll_ok(&sandbox, &server, "web-01", "in", &[]);
    assert!(stdout(&out).contains("0 file(s) installed"), "{}", stdout(&out));
    assert_eq!(std::fs::metadata(&installed).unwrap().modified().unwrap(), before, "not rewritten");

    sandbox.publish("b.bin", b"b", &["web-01"]);
    poll_ok(&sandbox, &server, "web-01", "in", &[]);
    assert_eq!(files_in(&sandbox.join("in")), ["a.bin", "b.bin"]);
}

#[test]
fn the_same_file_for_two_targets_is_installed_once_and_its_hook_runs_once() {
    let sandbox = sandbox();
    sandbox.publish("fix.deb", b"the fix", &["web-01", "all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let hook = write_hook(&sandbox);
    poll_ok(&sandbox, &server, "web-01", "in", &["--exec", hook.to_str().unwrap()]);
    let lines = hook_lines(&sandbox);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let fields: Vec<&str> = lines[0].split(' ').collect();
    let path = sandbox.join("in/fix.deb");
    assert_eq!(fields[0], path.to_str().unwrap(), "the path is the last argument (and FTS_HOOK_FILE)");
    assert_eq!(fields[1], path.to_str().unwrap());
    assert_eq!((fields[2], fields[3]), ("web-01", "1"));
    assert!(fields[4].starts_with("sha256:") && fields[5].ends_with('Z'), "{lines:?}");

    // Both entries were applied: nothing comes again.
    poll_ok(&sandbox, &server, "web-01", "in", &["--exec", hook.to_str().unwrap()]);
    assert_eq!(hook_lines(&sandbox).len(), 1);
}

#[test]
fn an_older_publication_of_a_name_never_replaces_a_newer_one() {
    let sandbox = sandbox();
    // v1 for the web group, then v2 for web-02 directly (within the same second: the
    // store still gives v2 the strictly later `published` time).
    sandbox.publish("app.conf", b"version 1", &["group:web"]);
    sandbox.publish("app.conf", b"version 2", &["web-02"]);
    let server = ServeProcess::start(&sandbox, &[]);
    poll_ok(&sandbox, &server, "web-02", "in", &[]);
    assert_eq!(std::fs::read(sandbox.join("in/app.conf")).unwrap(), b"version 2");

    // web-02 joins the web group: the older group publication arrives afterwards.
    expect_success(&mut sandbox.fts(["keygen", "client", "--id", "web-02", "--group", "web", "--force"]));
    let out = poll(&sandbox, &server, "web-02", "in", &[]);
    assert_eq!(out.status.code(), Some(3), "superseded is reported: {}", stderr(&out));
    assert!(stderr(&out).contains("superseded"), "{}", stderr(&out));
    assert_eq!(std::fs::read(sandbox.join("in/app.conf")).unwrap(), b"version 2", "the newer stays");

    // It was applied: the next poll has nothing left to refuse, and the server got the report.
    poll_ok(&sandbox, &server, "web-02", "in", &[]);
    let status = stdout(&expect_success(&mut sandbox.fts(["status", "--json"])));
    assert!(status.contains("superseded"), "{status}");
}

#[test]
fn a_file_above_the_size_limit_is_held_as_too_large_with_what_follows_it_until_the_limit_allows_it() {
    let sandbox = sandbox();
    sandbox.publish("big.iso", &[7u8; 4096], &["all"]);
    sandbox.publish("small.txt", b"fits", &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let out = poll(&sandbox, &server, "web-01", "in", &["--max-file-size", "1KiB"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("all seq 1: too-large"), "{}", stderr(&out));
    assert!(files_in(&sandbox.join("in")).is_empty(), "held, not skipped: the rest of its target waits");
    poll_ok(&sandbox, &server, "web-01", "in", &["--max-file-size", "8KiB"]);
    assert_eq!(
        files_in(&sandbox.join("in")),
        ["big.iso", "small.txt"],
        "both arrive once the limit allows it"
    );
}

#[test]
fn a_pending_hook_reruns_after_the_client_is_killed() {
    let sandbox = sandbox();
    sandbox.publish("svc.conf", b"restart me", &["web-01"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let hook = write_hook(&sandbox);
    std::fs::write(sandbox.join("slow"), "").unwrap();

    let addr = server.addr.to_string();
    let hook_arg = hook.to_str().unwrap().to_owned();
    let mut child = sandbox
        .fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in", "--exec", &hook_arg])
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !sandbox.join("started").exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "the hook never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL while the hook runs
    child.wait().unwrap();
    assert!(sandbox.join("in/svc.conf").exists(), "installed before the hook ran");

    std::fs::remove_file(sandbox.join("slow")).unwrap();
    poll_ok(&sandbox, &server, "web-01", "in", &["--exec", &hook_arg]);
    let lines = hook_lines(&sandbox);
    assert_eq!(lines.len(), 2, "the interrupted hook ran again: {lines:?}");
    assert!(lines.iter().all(|l| l.contains("svc.conf")));

    poll_ok(&sandbox, &server, "web-01", "in", &["--exec", &hook_arg]);
    assert_eq!(hook_lines(&sandbox).len(), 2, "and only once more");
}

#[test]
fn a_failing_hook_is_reported_and_does_not_undo_the_install() {
    let sandbox = sandbox();
    sandbox.publish("svc.conf", b"config", &["web-01"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let hook = write_hook(&sandbox);
    std::fs::write(sandbox.join("fail"), "").unwrap();
    let out = poll(&sandbox, &server, "web-01", "in", &["--exec", hook.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("hook-failed"), "{}", stderr(&out));
    assert!(sandbox.join("in/svc.conf").exists());

    std::fs::remove_file(sandbox.join("fail")).unwrap();
    poll_ok(&sandbox, &server, "web-01", "in", &[]);
    // The hook's retry is not due yet: the host still needs attention (exit 3).
    let status = stdout(&crate::common::expect_code(&mut sandbox.fts(["status", "--json"]), 3));
    assert!(status.contains("hook-failed"), "the report reached the server: {status}");
}

#[test]
fn an_unreadable_state_file_stops_the_client_unless_reset() {
    let sandbox = sandbox();
    sandbox.publish("a.bin", b"a", &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    std::fs::create_dir_all(sandbox.join("in")).unwrap();
    std::fs::write(sandbox.join("in/.fts-state.json"), "{ this is not state").unwrap();

    let out = poll(&sandbox, &server, "web-01", "in", &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--reset-state") && stderr(&out).contains(".fts-state.json"),
        "{}",
        stderr(&out)
    );
    assert!(files_in(&sandbox.join("in")).is_empty(), "nothing installed");

    poll_ok(&sandbox, &server, "web-01", "in", &["--reset-state"]);
    assert_eq!(files_in(&sandbox.join("in")), ["a.bin"]);
}

#[test]
fn temporary_files_of_an_interrupted_run_are_removed_at_start() {
    let sandbox = sandbox();
    let server = ServeProcess::start(&sandbox, &[]);
    std::fs::create_dir_all(sandbox.join("in/.fts-partial")).unwrap();
    std::fs::write(sandbox.join("in/.fts-partial/.fts-tmp-body-0123456789abcdef"), "half a file").unwrap();
    std::fs::write(sandbox.join("in/.fts-tmp-state-0123456789abcdef"), "half a state").unwrap();
    // A body left in the destination itself by an older release.
    std::fs::write(sandbox.join("in/.fts-tmp-0123456789abcdef"), "half a file").unwrap();
    poll_ok(&sandbox, &server, "web-01", "in", &[]);
    assert!(!sandbox.join("in/.fts-partial/.fts-tmp-body-0123456789abcdef").exists());
    assert!(!sandbox.join("in/.fts-tmp-state-0123456789abcdef").exists());
    assert!(!sandbox.join("in/.fts-tmp-0123456789abcdef").exists());
}

#[test]
fn a_revoked_host_is_told_its_certificate_was_refused() {
    let sandbox = sandbox();
    expect_success(&mut sandbox.fts(["keygen", "crl"]));
    let server = ServeProcess::start(&sandbox, &[]);
    poll_ok(&sandbox, &server, "web-01", "in", &[]);

    expect_success(&mut sandbox.fts(["keygen", "revoke", "web-01"]));
    server.wait_for_log(Duration::from_secs(10), |l| l["fields"]["message"] == "reloaded");

    let out = poll(&sandbox, &server, "web-01", "in", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "fts: error: the server refused this host's certificate (revoked, expired or from another CA)"
        ),
        "one line the operator can act on: {err}"
    );
}

#[test]
fn a_server_that_cannot_be_reached_is_a_failure_with_a_reason() {
    let sandbox = sandbox();
    let out = expect_code(
        &mut sandbox.fts(["poll", "--once", "--server", "127.0.0.1:1", "--id", "web-01", "--dest", "in"]),
        1,
    );
    assert!(stderr(&out).contains("cannot connect to 127.0.0.1:1"), "{}", stderr(&out));
}

#[test]
fn poll_refuses_a_certificate_of_another_client() {
    let sandbox = sandbox();
    let out = expect_code(
        &mut sandbox.fts([
            "poll",
            "--once",
            "--server",
            "127.0.0.1:1",
            "--id",
            "web-01",
            "--cert",
            "certs/web-02.crt",
            "--key",
            "certs/web-02.key",
        ]),
        2,
    );
    assert!(stderr(&out).contains("web-02"), "{}", stderr(&out));
}

#[test]
fn the_loop_polls_again_and_stops_on_sigterm() {
    let sandbox = sandbox();
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    let mut child = sandbox.poll_loop(server.addr, "web-01", &[]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    sandbox.publish("later.bin", b"published while the host loops", &["all"]);
    let started = std::time::Instant::now();
    while !sandbox.join("in/later.bin").exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "the loop never fetched the new file");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status =
        std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "fts poll did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn plaintext_serves_only_the_claimed_id_and_all_and_marks_the_host_unauthenticated() {
    let sandbox = sandbox();
    sandbox.publish("own.bin", b"web-01's own", &["web-01"]);
    sandbox.publish("every.bin", b"for all", &["all"]);
    sandbox.publish("group.bin", b"for the web group", &["group:web"]);
    let server = ServeProcess::start(&sandbox, &["--plaintext"]);

    poll_ok(&sandbox, &server, "web-01", "in", &["--plaintext"]);
    assert_eq!(files_in(&sandbox.join("in")), ["every.bin", "own.bin"], "no groups without a certificate");
    // A plaintext host sends no receipts: status knows its installs at its next poll,
    // and shows it behind (exit 3) until then.
    let status = stdout(&crate::common::expect_code(&mut sandbox.fts(["status", "--json"]), 3));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["clients"][0]["authenticated"], false);

    // Signatures still protect what is installed, and TLS never falls back to plaintext.
    let out = poll(&sandbox, &server, "web-01", "tls", &[]);
    assert_eq!(out.status.code(), Some(1), "a TLS client refuses a plaintext server: {}", stderr(&out));
    assert!(!sandbox.join("tls").join("every.bin").exists());
}
