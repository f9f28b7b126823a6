//! Release key rotation (issue 19, PROTOCOL.md section 8.3), end to end with the real
//! `fts keygen signing`, `fts keygen rotate`, `fts publish`, `fts serve` and `fts poll
//! --once` on 127.0.0.1:
//! - a planned rotation, then a recovery rotation: a host that keeps its first
//!   `signing.pub` follows both without being touched, and installs what each key
//!   signed;
//! - a host enrolled after both rotations with only the current trust file, given a
//!   year of weekly releases of three files, receives the three newest in one run;
//!   and one published once before the rotations (signed by a retired key, below
//!   the rotation) installs too;
//! - the store refuses to publish with a retired key; `fts keygen rotate` refuses a
//!   next key that does not match the commitment.

use crate::common::Sandbox;
use crate::common::one_host::*;
use crate::common::server::ServeProcess;

fn read(sandbox: &Sandbox, dest: &str, name: &str) -> String {
    std::fs::read_to_string(sandbox.join(dest).join(name)).unwrap_or_default()
}

#[test]
fn a_host_follows_a_planned_and_a_recovery_rotation_with_its_first_trust_file() {
    let sandbox = sandbox();
    assert!(sandbox.join("certs/next.key").is_file(), "keygen signing makes the next key");
    let first_trust = std::fs::read_to_string(sandbox.join("certs/signing.pub")).unwrap();
    assert!(
        first_trust.contains("fts-next-key sha256:") && first_trust.contains("fts-rotation 0"),
        "{first_trust}"
    );
    std::fs::write(sandbox.join("first.pub"), &first_trust).unwrap();
    publish(&sandbox, "one.conf", b"signed by the first key\n");
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    poll(&sandbox, server.addr, "in", &["--trust", "first.pub"]).expect(0, "first key");

    let run = fts(&sandbox, &["keygen", "rotate", "--dir", "certs", "--store", "store"]);
    run.expect(0, "planned rotation");
    assert!(run.stdout.contains("rotation 1, planned"), "{run:?}");
    let run =
        try_publish(&sandbox, "late.conf", b"signed by the retired key\n", ID, "certs/signing.key.retired-1");
    run.expect(1, "the store refuses a retired key");
    assert!(run.stderr.contains("was retired"), "{run:?}");
    publish(&sandbox, "two.conf", b"signed by the second key\n");
    let run = poll(&sandbox, server.addr, "in", &["--trust", "first.pub"]);
    run.expect(0, "the host follows the planned rotation");
    assert_eq!(read(&sandbox, "in", "two.conf"), "signed by the second key\n", "{run:?}");

    // The second key is stolen: recover with the next key alone.
    std::fs::remove_file(sandbox.join("certs/signing.key")).unwrap();
    let run = fts(&sandbox, &["keygen", "rotate", "--dir", "certs", "--store", "store", "--recovery"]);
    run.expect(0, "recovery rotation");
    assert!(run.stdout.contains("rotation 2, recovery"), "{run:?}");
    publish(&sandbox, "three.conf", b"signed by the third key\n");
    let run = poll(&sandbox, server.addr, "in", &["--trust", "first.pub"]);
    run.expect(0, "the host follows the recovery");
    assert_eq!(read(&sandbox, "in", "three.conf"), "signed by the third key\n", "{run:?}");

    // A host enrolled now, with the current trust file only: the first entry was
    // signed by a key retired two rotations ago, below the rotation: it installs.
    let run = poll(&sandbox, server.addr, "new", &["--trust", "certs/signing.pub"]);
    run.expect(0, "a new host");
    assert_eq!(read(&sandbox, "new", "one.conf"), "signed by the first key\n", "{run:?}");
    assert_eq!(read(&sandbox, "new", "three.conf"), "signed by the third key\n");
    fts(&sandbox, &["log", "verify", "--store", "store", "--trust", "certs/signing.pub"])
        .expect(0, "log verify");
    let run = fts(&sandbox, &["log", "--keys"]);
    run.expect(0, "log --keys");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    assert!(lines[0].contains("signs leaves 0 to 0 (retired at leaf 1 by rotation 1, planned)"), "{run:?}");
    assert!(lines[1].contains("(retired at leaf 3 by rotation 2, recovery)"), "{run:?}");
    assert!(lines[2].ends_with("signs from leaf 3 on (active)"), "{run:?}");
}

#[test]
fn a_host_enrolled_after_two_rotations_gets_a_year_of_weekly_releases_in_one_run() {
    let sandbox = sandbox();
    for week in 1..=52 {
        if week == 20 {
            fts(&sandbox, &["keygen", "rotate", "--dir", "certs", "--store", "store"]).expect(0, "rotate");
        }
        if week == 40 {
            fts(&sandbox, &["keygen", "rotate", "--dir", "certs", "--store", "store", "--recovery"])
                .expect(0, "rotate");
        }
        for name in ["openssl.deb", "app.conf", "motd"] {
            publish(&sandbox, name, format!("{name} of week {week}\n").as_bytes());
        }
    }
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    let run = poll(&sandbox, server.addr, "in", &["--trust", "certs/signing.pub"]);
    run.expect(0, "one --once run");
    for name in ["openssl.deb", "app.conf", "motd"] {
        assert_eq!(read(&sandbox, "in", name), format!("{name} of week 52\n"), "{run:?}");
    }
    let polls = server.logs().into_iter().filter(|l| l["fields"]["message"] == "poll").count();
    assert_eq!(polls, 1, "one answer");
}

#[test]
fn rotate_refuses_a_next_key_that_is_not_the_committed_one() {
    let sandbox = sandbox();
    publish(&sandbox, "one.conf", b"one\n");
    fts(&sandbox, &["keygen", "signing", "--dir", "stranger"]).expect(0, "another key pair");
    let run = fts(
        &sandbox,
        &["keygen", "rotate", "--dir", "certs", "--store", "store", "--next-key", "stranger/signing.key"],
    );
    run.expect(1, "refused");
    assert!(run.stderr.contains("is not the key"), "{run:?}");
    let journal = std::fs::read_to_string(sandbox.join("store/journal")).unwrap();
    assert!(!journal.contains("\"rotate\""), "nothing written");
}

#[test]
fn a_withdrawal_signed_before_a_rotation_still_applies_and_the_timestamp_signer_follows() {
    let sandbox = sandbox();
    fts(&sandbox, &["keygen", "timestamp", "--dir", "ts"]).expect(0, "keygen timestamp");
    let cosign = [
        "timestamp",
        "--once",
        "--store",
        "store",
        "--key",
        "ts/timestamp.key",
        "--trust",
        "certs/signing.pub",
    ];
    publish(&sandbox, "good.conf", b"good\n");
    publish(&sandbox, "bad.conf", b"withdrawn by the first key\n");
    fts(&sandbox, &["withdraw", "--target", ID, "--seq", "2"]).expect(0, "withdraw with the first key");
    fts(&sandbox, &cosign).expect(0, "cosign");
    let first_trust = sandbox.join("certs/signing.pub");
    std::fs::copy(&first_trust, sandbox.join("ts-trust.pub")).unwrap();
    fts(&sandbox, &["keygen", "rotate", "--dir", "certs", "--store", "store"]).expect(0, "rotate");
    publish(&sandbox, "after.conf", b"signed by the second key\n");
    // The signer keeps its first trust file and follows the rotation in the log.
    let cosign_old_trust =
        ["timestamp", "--once", "--store", "store", "--key", "ts/timestamp.key", "--trust", "ts-trust.pub"];
    fts(&sandbox, &cosign_old_trust).expect(0, "the timestamp signer follows the rotation");

    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    let addr = server.addr.to_string();
    let args = [
        "poll",
        "--once",
        "--server",
        &addr,
        "--id",
        ID,
        "--dest",
        "new",
        "--trust",
        "certs/signing.pub",
        "--timestamp-key",
        "ts/timestamp.pub",
    ];
    let run = fts(&sandbox, &args);
    run.expect(3, "the withdrawal is reported");
    assert!(run.stderr.contains("withdrawn") && !run.stderr.contains("not-logged"), "{run:?}");
    assert!(!run.stderr.contains("stale"), "{run:?}");
    assert_eq!(read(&sandbox, "new", "good.conf"), "good\n");
    assert_eq!(read(&sandbox, "new", "after.conf"), "signed by the second key\n");
    assert!(!sandbox.join("new/bad.conf").exists(), "a withdrawn entry is never installed");
}
