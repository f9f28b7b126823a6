//! The fleet view (issue 20), end to end with the real `fts serve`, `fts poll --once`
//! and `fts status` on 127.0.0.1:
//! - a `--once` host's install shows in status before its next poll: its signed
//!   receipt went at once, not in its next request;
//! - a failing hook, a held entry and a withdrawn entry each show in every view, and
//!   the exit code says whether anything needs attention;
//! - `--file` gives the per-release view with its lists and times;
//! - `--verify` checks the stored receipts and finds one altered in the status store.

use serde_json::Value;

use crate::common::Sandbox;
use crate::common::one_host::*;
use crate::common::server::ServeProcess;

fn serve(sandbox: &Sandbox) -> ServeProcess {
    ServeProcess::start(sandbox, &["--poll-after", "1s"])
}

/// `fts status ARGS --json`, with its exit code.
fn status_json(sandbox: &Sandbox, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["status"];
    all.extend(args);
    all.push("--json");
    let run = fts(sandbox, &all);
    let json = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("status --json: {e}: {run:?}"));
    (run.code, json)
}

fn host<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["clients"].as_array().and_then(|a| a.iter().find(|c| c["client-id"] == id)).unwrap_or(&Value::Null)
}

#[test]
fn a_once_host_install_shows_in_status_before_its_next_poll() {
    let sandbox = sandbox();
    publish(&sandbox, "openssl.tar", b"openssl 3.0.19\n");
    let server = serve(&sandbox);
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install");

    // No second poll: the receipt it sent right after the answer says it.
    let (code, status) = status_json(&sandbox, &[]);
    let web = host(&status, ID);
    assert_eq!(web["state"], "current", "{status}");
    let own = web["targets"].as_array().unwrap().iter().find(|t| t["target"] == ID).unwrap();
    assert_eq!((own["applied"].as_u64(), own["newest"].as_u64()), (Some(1), Some(1)), "{status}");
    assert_eq!(web["entries"][0]["outcome"], "installed", "{status}");
    assert_eq!(web["receipts"]["stored"], 1, "{status}");
    assert_eq!(code, 0, "nothing needs attention: {status}");

    let (code, release) = status_json(&sandbox, &["--file", "openssl.tar"]);
    assert_eq!(code, 0, "{release}");
    assert_eq!(release["counts"]["installed"], 1, "{release}");
    assert!(release["seconds-to"]["95%"].is_u64(), "{release}");

    // The chain verifies; the host declared the count it made.
    poll(&sandbox, server.addr, "in", &[]).expect(0, "nothing new");
    let run = fts(&sandbox, &["status", "--verify"]);
    run.expect(0, "verify");
    assert!(run.stdout.contains("verified 1 receipts of 1 hosts: 0 finding(s)"), "{run:?}");
}

#[test]
fn a_failing_hook_shows_as_failing_in_every_view_and_exits_3() {
    let sandbox = sandbox();
    publish(&sandbox, "app.conf", b"v1\n");
    let server = serve(&sandbox);
    let hook = sandbox.join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\nexit 100\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    poll(&sandbox, server.addr, "in", &["--exec", hook.to_str().unwrap()]).expect(3, "the hook failed");

    let (code, status) = status_json(&sandbox, &[]);
    assert_eq!(code, 3, "{status}");
    assert_eq!(host(&status, ID)["state"], "failing", "{status}");
    let run = fts(&sandbox, &["status"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("hook-failed: app.conf"), "{run:?}");
    let (code, release) = status_json(&sandbox, &["--file", "app.conf"]);
    assert_eq!(code, 3, "{release}");
    assert_eq!(release["lists"]["failed"][0], ID, "{release}");
    let (code, one) = status_json(&sandbox, &["--host", ID]);
    assert_eq!(code, 3, "{one}");
    assert!(one["receipt-log"][0]["outcomes"].to_string().contains("hook-failed"), "{one}");
    // An allowance of one host needing attention: exit 0.
    let (code, _) = status_json(&sandbox, &["--max-attention", "1"]);
    assert_eq!(code, 0);
}

#[test]
fn a_receipt_altered_in_the_status_store_is_found_by_verify() {
    let sandbox = sandbox();
    publish(&sandbox, "a.conf", b"a\n");
    let server = serve(&sandbox);
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install");
    publish(&sandbox, "b.conf", b"b\n");
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install");
    fts(&sandbox, &["status", "--verify"]).expect(0, "an honest log verifies");

    let day = std::fs::read_dir(sandbox.join("status/receipts")).unwrap().next().unwrap().unwrap().path();
    let log = std::fs::read_to_string(&day).unwrap();
    assert_eq!(log.lines().count(), 2, "{log}");

    // Whoever owns the server rewrites web-01's second receipt to say b.conf was
    // never installed: the signature no longer verifies.
    let mut lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let signed = &mut lines[1]["receipt"]["signed"]["receipt"];
    let bytes = base64_decode(signed.as_str().unwrap());
    let altered = String::from_utf8(bytes).unwrap().replace("installed", "refused");
    *signed = Value::String(base64_encode(altered.as_bytes()));
    write_lines(&day, &lines);
    let run = fts(&sandbox, &["status", "--verify"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("FINDING web-01 bad-receipt"), "{run:?}");

    // Removing it instead: the host declared 2 receipts at its next poll, 1 is left.
    write_lines(&day, &lines[..1]);
    poll(&sandbox, server.addr, "in", &[]).expect(0, "declares its count");
    let run = fts(&sandbox, &["status", "--verify"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("dropped-tail"), "{run:?}");
}

fn write_lines(path: &std::path::Path, lines: &[Value]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
