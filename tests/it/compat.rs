//! The previous release, both ways (issue 17's compatibility rule): fields this release
//! adds to requests, answers, the host state and the store are ignored by the previous
//! release instead of refused. The previous release's real `fts poll` (commit
//! `PREVIOUS_RELEASE` of scripts/previous-release.sh) polls this release's `fts serve`
//! and a store this release published; then this release polls on the state the old
//! one wrote; then the old one polls again on the state this release wrote, and
//! installs what was published since.
//!
//! Where the old binary comes from: `FTS_PREVIOUS_BIN` (.ci/run builds it with
//! scripts/previous-release.sh and sets it), else `previous-release/fts` in this
//! build's target folder (where that script puts it). The test cannot build it
//! itself: `cargo test` holds the target folder's lock while the tests run, so a
//! nested build would wait for ever. Without it the test fails under CI (`CI` set)
//! and, locally, is skipped with a message saying how to get it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_success, stdout};

/// The previous release's `fts`, or `None` (said loudly) when it is not built.
pub(crate) fn previous_release() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FTS_PREVIOUS_BIN") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "FTS_PREVIOUS_BIN={} is not a file", path.display());
        return Some(path);
    }
    let built = Path::new(env!("CARGO_BIN_EXE_fts")).parent()?.parent()?.join("previous-release/fts");
    if built.is_file() {
        return Some(built);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI runs the compatibility test: .ci/run must build the previous release \
         (scripts/previous-release.sh) and set FTS_PREVIOUS_BIN"
    );
    eprintln!(
        "\n*** SKIPPED compat: the previous release's fts is not built. Run \
         scripts/previous-release.sh (with the same CARGO_TARGET_DIR) once, or set \
         FTS_PREVIOUS_BIN, then run this test again. ***\n"
    );
    None
}

/// `binary` with `args` in the sandbox, with no `FTS_*` variable of the caller's.
fn run_in(sandbox: &Sandbox, binary: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.args(args).current_dir(sandbox.path());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FTS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

#[test]
fn the_previous_release_polls_this_server_and_this_state_and_this_release_polls_its_state() {
    let Some(previous) = previous_release() else { return };
    let version = expect_success(Command::new(&previous).arg("--version"));
    eprintln!("previous release: {} at {}", stdout(&version).trim(), previous.display());

    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &["web"])]);
    sandbox.publish("first.conf", b"published by this release, polled by the previous one", &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr.to_string();
    let poll = ["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"];
    let installed = |name: &str| std::fs::read(sandbox.join("in").join(name)).ok();
    let state = || std::fs::read_to_string(sandbox.join("in/.fts-state.json")).expect("the state file");

    // 1. The previous release's poll against this release's server and store.
    expect_success(&mut run_in(&sandbox, &previous, &poll));
    assert_eq!(
        installed("first.conf").as_deref(),
        Some(&b"published by this release, polled by the previous one"[..])
    );
    let log_state = sandbox.join("in/.fts-state.json.log");
    assert!(log_state.exists(), "the previous release (issue 18) follows the log too");

    // 2. This release on the state the previous one wrote.
    sandbox.publish("second.conf", b"for this release", &["group:web"]);
    expect_success(&mut sandbox.fts(poll));
    assert_eq!(installed("second.conf").as_deref(), Some(&b"for this release"[..]));
    let written = state();
    for field in ["\"file-size\"", "\"key-id\"", "\"signature\""] {
        assert!(written.contains(field), "this release records {field}: {written}");
    }
    let log: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&log_state).expect("this release's log state")).unwrap();
    assert!(log["size"].as_u64().is_some_and(|size| size >= 2), "it verified the log: {log:#}");

    // 2b. This release holds a target (too large for it) and keeps a failed hook's
    //     retry: the state gains `held` and the hook's `failures`.
    sandbox.publish("big.img", &[5u8; 4096], &["group:web"]);
    sandbox.publish("hooked.conf", b"its hook fails", &["web-01"]);
    let hook = sandbox.join("failing-hook.sh");
    std::fs::write(&hook, "#!/bin/sh\nexit 1\n").unwrap();
    let mut permissions = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&hook, permissions).unwrap();
    let mut held_poll = poll.to_vec();
    held_poll.extend(["--max-file-size", "1KiB", "--exec", hook.to_str().unwrap()]);
    let out = crate::common::run(&mut sandbox.fts(&held_poll));
    assert_eq!(out.status.code(), Some(3), "held and a failed hook: {}", crate::common::stderr(&out));
    let written = state();
    for field in ["\"held\"", "\"failures\"", "\"retry-at\""] {
        assert!(written.contains(field), "this release records {field}: {written}");
    }

    // 3. The previous release on the state this release wrote, with its added fields.
    sandbox.publish("third.conf", b"published after this release wrote the state", &["web-01"]);
    sandbox.publish("first.conf", b"a new version of the first", &["all"]);
    let old = expect_success(&mut run_in(&sandbox, &previous, &poll));
    assert_eq!(
        installed("third.conf").as_deref(),
        Some(&b"published after this release wrote the state"[..])
    );
    assert_eq!(installed("first.conf").as_deref(), Some(&b"a new version of the first"[..]), "{old:?}");
    assert_eq!(
        installed("big.img").as_deref(),
        Some(&[5u8; 4096][..]),
        "what this release held is fetched: {old:?}"
    );
    // And nothing was fetched twice: the previous release kept this one's progress.
    let again = expect_success(&mut run_in(&sandbox, &previous, &poll));
    assert!(stdout(&again).contains("0 file(s) installed"), "{}", stdout(&again));
    expect_success(&mut sandbox.fts(poll));

    // 4. A withdrawal on one of its targets: the previous release cannot read the
    //    head that lists it, and is never sent the withdrawn entry; `fts status` says
    //    the host needs an upgrade.
    sandbox.publish("bad.conf", b"withdrawn before anyone got it", &["web-01"]);
    let seq = sandbox_seq(&sandbox, "web-01");
    expect_success(&mut sandbox.fts(["withdraw", "--target", "web-01", "--seq", &seq.to_string()]));
    let old = crate::common::run(&mut run_in(&sandbox, &previous, &poll));
    assert_ne!(old.status.code(), Some(0), "the previous release does not pass a withdrawal silently");
    assert!(installed("bad.conf").is_none(), "a withdrawn entry never reaches it");
    // It needs attention (exit 3): it waits and cannot go on by itself.
    let status = stdout(&crate::common::expect_code(&mut sandbox.fts(["status"]), 3));
    assert!(status.contains(&format!("waits before withdrawn seq {seq}: upgrade its fts")), "{status}");
    // Its status comes from its polls only (the previous release sends no receipts).
    let web: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("status/web-01.json")).unwrap()).unwrap();
    assert!(web["since"]["web-01"].as_u64().is_some(), "{web:#}");
}

#[test]
fn this_release_against_the_previous_server_reports_in_its_polls_as_before() {
    let Some(previous) = previous_release() else { return };
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &["web"])]);
    sandbox.publish("app.conf", b"its hook fails", &["web-01"]);
    let mut serve =
        run_in(&sandbox, &previous, &["--log-format", "json", "serve", "--listen", "127.0.0.1:0"]);
    let server = ServeProcess::start_command(serve.env("RUST_LOG", "info"));
    let addr = server.addr.to_string();
    let hook = sandbox.join("failing-hook.sh");
    std::fs::write(&hook, "#!/bin/sh\nexit 1\n").unwrap();
    let mut permissions = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&hook, permissions).unwrap();
    let poll = ["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in", "--hook-retries", "0"];
    let mut failing = poll.to_vec();
    failing.extend(["--exec", hook.to_str().unwrap()]);
    let out = crate::common::run(&mut sandbox.fts(&failing));
    assert_eq!(out.status.code(), Some(3), "the hook failed: {}", crate::common::stderr(&out));

    // The old server answered the receipt `unknown-request`: the host noted it, and its
    // next poll carries the report in `rejected`, which the old server records.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("in/.fts-state.json")).unwrap()).unwrap();
    assert!(state["receipts"]["refused-at"].is_u64(), "{state:#}");
    assert_eq!(
        state["receipts"]["unsent"].as_array().map(Vec::len),
        Some(1),
        "kept, for a newer server: {state:#}"
    );
    expect_success(&mut sandbox.fts(poll));
    let web: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("status/web-01.json")).unwrap()).unwrap();
    let problems = web["problems"].as_array().expect("problems");
    assert!(problems.iter().any(|p| p["reason"] == "hook-failed"), "{web:#}");
    assert!(!sandbox.join("status/receipts").exists(), "the old server stored no receipt");
}

/// The newest seq of `target` in the sandbox's store.
fn sandbox_seq(sandbox: &Sandbox, target: &str) -> u64 {
    let reader = fts_store::StoreReader::open(sandbox.join("store")).expect("the store");
    reader.newest_seq(&fts_proto::Target::parse(target).expect("a target"))
}
