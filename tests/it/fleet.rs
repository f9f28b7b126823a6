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

/// web-01 with `a.conf` published and installed (its first receipt stored).
fn one_install() -> (Sandbox, ServeProcess) {
    let sandbox = sandbox();
    publish(&sandbox, "a.conf", b"a\n");
    let server = serve(&sandbox);
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install");
    (sandbox, server)
}

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
    let (sandbox, server) = one_install();
    publish(&sandbox, "b.conf", b"b\n");
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install");
    fts(&sandbox, &["status", "--verify"]).expect(0, "an honest log verifies");

    let day = receipt_log(&sandbox);
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

#[test]
fn a_dead_host_turns_silent_and_a_revoked_one_revoked() {
    let sandbox = sandbox();
    expect_ok(fts(&sandbox, &["keygen", "client", "--id", "db-01", "--group", "db"]));
    expect_ok(fts(&sandbox, &["keygen", "crl"]));
    publish(&sandbox, "a.conf", b"a\n");
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s", "--crl", "certs/ca.crl"]);
    // web-01 promises its next poll within 2 s (--once: its --max-interval, 1 s, plus
    // the 10 % jitter, rounded up): silent after 6 s.
    let quick = ["--max-interval", "1s"];
    poll(&sandbox, server.addr, "in", &quick).expect(0, "install");
    let addr = server.addr.to_string();
    let db = ["poll", "--once", "--server", &addr, "--id", "db-01", "--dest", "db", "--min-interval", "1s"];
    fts(&sandbox, &db).expect(0, "db-01 polls");
    let (code, status) = status_json(&sandbox, &[]);
    assert_eq!((code, &host(&status, ID)["state"]), (0, &Value::from("current")), "{status}");

    std::thread::sleep(std::time::Duration::from_secs(7));
    let (code, status) = status_json(&sandbox, &[]);
    assert_eq!(host(&status, ID)["state"], "silent", "{status}");
    assert_eq!(host(&status, "db-01")["state"], "current", "its own promise is an hour: {status}");
    assert_eq!(code, 3, "a silent host needs attention: {status}");
    let (_, silent) = status_json(&sandbox, &["--silent"]);
    let ids: Vec<&Value> = silent["clients"].as_array().unwrap().iter().map(|c| &c["client-id"]).collect();
    assert_eq!(ids, [ID], "{silent}");
    let table = fts(&sandbox, &["status"]);
    assert!(table.stdout.contains("silent: no contact for"), "{table:?}");

    // Revoked, web-01 is no longer silent but revoked, and needs no attention.
    expect_ok(fts(&sandbox, &["keygen", "revoke", ID]));
    // The server reloads the changed CRL within seconds and records its serials.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (code, status) = status_json(&sandbox, &[]);
        if host(&status, ID)["state"] == "revoked" {
            assert_eq!(code, 0, "a revoked host does not count: {status}");
            assert_eq!(status["summary"]["revoked"], 1, "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never shown revoked: {status}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_held_entry_and_a_withdrawn_one_show_in_every_view() {
    let sandbox = sandbox();
    publish(&sandbox, "big.iso", &[7u8; 4096]);
    publish(&sandbox, "bad.conf", b"breaks TLS\n");
    let server = serve(&sandbox);
    fts(&sandbox, &["withdraw", "--target", ID, "--seq", "2"]).expect(0, "withdraw");
    poll(&sandbox, server.addr, "in", &["--max-file-size", "1KiB"]).expect(3, "held as too large");

    let (code, status) = status_json(&sandbox, &[]);
    assert_eq!((code, &host(&status, ID)["state"]), (3, &Value::from("held")), "{status}");
    let table = fts(&sandbox, &["status"]);
    assert!(table.stdout.contains("held at seq 1"), "{table:?}");
    let (code, behind) = status_json(&sandbox, &["--behind"]);
    assert_eq!(code, 3);
    assert_eq!(host(&behind, ID)["state"], "held", "{behind}");
    let (code, release) = status_json(&sandbox, &["--file", "big.iso"]);
    assert_eq!(code, 3, "{release}");
    assert_eq!(release["lists"]["held"][0], ID, "{release}");
    let (_, one) = status_json(&sandbox, &["--host", ID]);
    let outcomes = one["receipt-log"].to_string();
    assert!(outcomes.contains("held web-01 1") && outcomes.contains("too-large"), "{one}");

    // With the limit raised it installs; the withdrawn entry never does, and its
    // release view says withdrawn, which needs nothing more.
    poll(&sandbox, server.addr, "in", &[]).expect(3, "the withdrawal is reported");
    assert!(!sandbox.join("in/bad.conf").exists());
    let (code, status) = status_json(&sandbox, &[]);
    assert_eq!((code, &host(&status, ID)["state"]), (0, &Value::from("current")), "{status}");
    let (code, release) = status_json(&sandbox, &["--file", "bad.conf"]);
    assert_eq!((code, &release["counts"]["withdrawn"]), (0, &Value::from(1)), "{release}");
    assert_eq!(release["entries"][0]["withdrawn"], true, "{release}");
    let (_, one) = status_json(&sandbox, &["--host", ID]);
    assert!(one["entries"].to_string().contains("\"withdrawn\""), "{one}");
    let table = fts(&sandbox, &["status", "--file", "bad.conf"]);
    assert!(table.stdout.contains("WITHDRAWN") && table.stdout.contains("1 withdrawn"), "{table:?}");
}

#[test]
fn a_hook_that_asks_for_a_reboot_shows_in_status_and_needs_attention() {
    let sandbox = sandbox();
    publish(&sandbox, "kernel.deb", b"kernel\n");
    let server = serve(&sandbox);
    let hook = sandbox.join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\nexit 10\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let flag = sandbox.join("reboot-required").to_str().unwrap().to_owned();
    let extra = ["--exec", hook.to_str().unwrap(), "--reboot-required-file", &flag];
    poll(&sandbox, server.addr, "in", &extra).expect(0, "exit 10 is a success");
    let (code, status) = status_json(&sandbox, &[]);
    assert_eq!(host(&status, ID)["reboot-required"], true, "{status}");
    assert_eq!(code, 3, "a reboot to do needs attention: {status}");
    let table = fts(&sandbox, &["status"]);
    assert!(table.stdout.contains("reboot-required: a reboot is required"), "{table:?}");
}

#[test]
fn verify_finds_a_receipt_filed_as_another_hosts_and_one_removed_from_the_middle() {
    let sandbox = sandbox();
    publish(&sandbox, "f0.conf", b"x\n");
    let server = serve(&sandbox);
    for n in 1..=3 {
        publish(&sandbox, &format!("f{n}.conf"), b"x\n");
        poll(&sandbox, server.addr, "in", &[]).expect(0, "install");
    }
    let day = receipt_log(&sandbox);
    let lines: Vec<Value> =
        std::fs::read_to_string(&day).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);

    // The middle one removed: a gap.
    write_lines(&day, &[lines[0].clone(), lines[2].clone()]);
    let run = fts(&sandbox, &["status", "--verify"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.contains("FINDING web-01 gap") && run.stdout.contains("1 receipt(s) missing"),
        "{run:?}"
    );

    // web-01's receipt filed as db-01's (a replay as another host's).
    let mut replayed = lines[2].clone();
    replayed["receipt"]["client-id"] = Value::from("db-01");
    write_lines(&day, &[lines[0].clone(), lines[1].clone(), lines[2].clone(), replayed]);
    let run = fts(&sandbox, &["status", "--verify"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.contains("FINDING db-01 bad-receipt") && run.stdout.contains("filed as db-01's"),
        "{run:?}"
    );
}

#[test]
fn a_renewed_certificate_restarts_the_chain_and_verify_says_restart_not_alteration() {
    let (sandbox, server) = one_install();
    expect_ok(fts(&sandbox, &["keygen", "client", "--id", ID, "--group", "web", "--force"]));
    publish(&sandbox, "b.conf", b"b\n");
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install with the new certificate");
    let run = fts(&sandbox, &["status", "--verify"]);
    run.expect(0, "a restart is no finding");
    assert!(run.stdout.contains("restart web-01: new-certificate"), "{run:?}");
    assert!(run.stdout.contains("0 finding(s), 1 restart(s)"), "{run:?}");
    assert_eq!(
        std::fs::read_dir(sandbox.join("status/certificates")).unwrap().count(),
        2,
        "each certificate once"
    );
}

#[test]
fn a_forgotten_host_leaves_the_view_and_comes_back_as_a_new_one() {
    let (sandbox, server) = one_install();
    let run = fts(&sandbox, &["status", "--forget", ID]);
    run.expect(0, "forget");
    assert!(run.stdout.contains("forgot web-01"), "{run:?}");
    let (_, status) = status_json(&sandbox, &[]);
    assert!(host(&status, ID).is_null(), "{status}");
    // Re-enrolled from scratch: a new state and certificate, a new chain.
    expect_ok(fts(&sandbox, &["keygen", "client", "--id", ID, "--group", "web", "--force"]));
    publish(&sandbox, "b.conf", b"b\n");
    poll(&sandbox, server.addr, "fresh", &[]).expect(0, "install");
    fts(&sandbox, &["status", "--verify"]).expect(0, "the new chain is not the old one's continuation");
    let (_, status) = status_json(&sandbox, &[]);
    assert_eq!(host(&status, ID)["receipts"]["stored"], 1, "{status}");
}

fn expect_ok(run: crate::common::Run) {
    run.expect(0, "setup");
}

/// The one receipt log file of today.
fn receipt_log(sandbox: &Sandbox) -> std::path::PathBuf {
    let mut days: Vec<_> =
        std::fs::read_dir(sandbox.join("status/receipts")).unwrap().map(|e| e.unwrap().path()).collect();
    days.sort();
    days.pop().expect("a receipt log")
}

#[test]
fn a_receipt_forged_by_whoever_owns_the_status_folder_is_found_by_verify() {
    let (sandbox, _server) = one_install();
    let day = receipt_log(&sandbox);
    let honest: Value =
        serde_json::from_str(std::fs::read_to_string(&day).unwrap().lines().next().unwrap()).unwrap();
    let head: fts_proto::FileHash = serde_json::from_value(honest["receipt"]["hash"].clone()).unwrap();

    // A key and a self-signed certificate for web-01, made by the server's owner, and
    // a receipt "signed by web-01" that it installed a file it never got.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name.push(rcgen::DnType::CommonName, ID);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let certificate = params.self_signed(&key).unwrap().der().to_vec();
    let signer = fts_trust::ReceiptSigner::from_der(rustls::pki_types::PrivateKeyDer::Pkcs8(
        key.serialize_der().into(),
    ))
    .unwrap();
    let forged = fts_proto::Receipt {
        client_id: fts_proto::ClientId::parse(ID).unwrap(),
        number: 2,
        previous: Some(head),
        made: fts_proto::Published::from_unix_seconds(1_795_626_000),
        outcomes: vec![fts_proto::Outcome::Entry(fts_proto::EntryOutcome {
            target: fts_proto::Target::parse(ID).unwrap(),
            seq: fts_proto::Seq::new(2).unwrap(),
            file: Some((fts_proto::FileName::parse("openssl.deb").unwrap(), head)),
            kind: fts_proto::EntryOutcomeKind::Installed,
        })],
    };
    let signed = signer.sign(&forged).unwrap();
    use sha2::Digest;
    let name = hex::encode(sha2::Sha256::digest(&certificate));
    std::fs::write(sandbox.join(format!("status/certificates/{name}.der")), &certificate).unwrap();
    let line = serde_json::json!({"receipt": {
        "client-id": ID, "certificate": name, "received": "2026-12-02T21:00:00Z",
        "hash": fts_trust::receipt_hash(&signed.bytes), "signed": signed,
    }});
    write_lines(&day, &[honest, line]);
    let run = fts(&sandbox, &["status", "--verify"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout.contains("FINDING web-01 bad-certificate")
            && run.stdout.contains("not issued by the client CA"),
        "{run:?}"
    );
}

#[test]
fn a_reimaged_host_starts_afresh_and_its_old_receipts_do_not_speak_for_it() {
    let (sandbox, server) = one_install();
    publish(&sandbox, "b.conf", b"b\n");
    poll(&sandbox, server.addr, "in", &[]).expect(0, "install");
    // Re-imaged, with its certificate put back: an empty destination and state.
    std::fs::remove_dir_all(sandbox.join("in")).unwrap();
    publish(&sandbox, "big.iso", &[7u8; 4096]);
    poll(&sandbox, server.addr, "in", &["--max-file-size", "1KiB"]).expect(3, "held as too large");
    let (code, status) = status_json(&sandbox, &[]);
    let web = host(&status, ID);
    assert_eq!((code, &web["state"]), (3, &Value::from("held")), "not current: {status}");
    assert_eq!(web["receipts"]["restarts"], 1, "{status}");
    let run = fts(&sandbox, &["status", "--verify"]);
    run.expect(0, "a new chain is a restart, not an alteration");
    assert!(run.stdout.contains("restart web-01: new-chain"), "{run:?}");
}
