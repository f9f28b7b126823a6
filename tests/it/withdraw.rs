//! Withdrawal (issue 19, PROTOCOL.md section 8.1), end to end with the real `fts
//! publish`, `fts withdraw`, `fts serve` and `fts poll --once` on 127.0.0.1:
//! - an entry withdrawn before a host installs it is never installed, is reported
//!   `withdrawn`, and the target goes on past it;
//! - a host that had installed it keeps the file, reports `withdrawn-installed` once
//!   and runs `--exec-withdrawn`; `--restore-previous` publishes the earlier version
//!   again and the host installs it;
//! - a server that sends the withdrawn entry whole instead of its withdrawal gets it
//!   applied as `withdrawn`, never installed (scripted hostile server);
//! - a withdrawal signed for another log, or a withdrawn frame carrying another
//!   statement at the same (target, seq), is refused like a forged entry;
//! - `fts withdraw` refuses an entry that does not exist and one already withdrawn.

use fts_proto::{FileHeader, ServerFrame, Withdrawal, WithdrawnFrame};

use crate::common::hostile_server::{Answer, HostileServer, done_frame};
use crate::common::log_frames::{honest_log, logged_header};
use crate::common::one_host::*;
use crate::common::server::ServeProcess;
use crate::common::{Run, Sandbox};

fn withdraw(sandbox: &Sandbox, seq: &str, extra: &[&str]) -> Run {
    let mut args = vec!["withdraw", "--target", ID, "--seq", seq];
    args.extend(extra);
    fts(sandbox, &args)
}

fn serve(sandbox: &Sandbox) -> ServeProcess {
    ServeProcess::start(sandbox, &["--poll-after", "1s"])
}

#[test]
fn an_entry_withdrawn_before_install_is_never_installed_and_its_target_goes_on() {
    let sandbox = sandbox();
    publish(&sandbox, "base.conf", b"base\n");
    publish(&sandbox, "bad.conf", b"this patch breaks TLS\n");
    publish(&sandbox, "good.conf", b"published after the bad one\n");
    let run = withdraw(&sandbox, "2", &["--reason", "breaks TLS on RHEL 8"]);
    run.expect(0, "withdraw");
    assert!(run.stdout.contains("withdrew web-01 seq 2 (bad.conf"), "{run:?}");
    assert!(run.stdout.contains("reason: breaks TLS on RHEL 8"), "{run:?}");

    let log = fts(&sandbox, &["log"]);
    log.expect(0, "fts log");
    assert!(log.stdout.contains("WITHDRAWN at") && log.stdout.contains(": breaks TLS on RHEL 8"), "{log:?}");
    assert_eq!(log.stdout.matches("WITHDRAWN").count(), 1, "{log:?}");

    let server = serve(&sandbox);
    let run = poll(&sandbox, server.addr, "in", &[]);
    run.expect(3, "the withdrawal is reported");
    assert!(run.stderr.contains("withdrawn"), "{run:?}");
    assert!(!sandbox.join("in/bad.conf").exists(), "a withdrawn entry is never installed");
    assert_eq!(std::fs::read(sandbox.join("in/good.conf")).unwrap(), b"published after the bad one\n");
    assert_eq!(since(&sandbox, "in"), 3, "the target went on past the withdrawn entry");
    poll(&sandbox, server.addr, "in", &[]).expect(0, "then nothing more to say");

    // fts withdraw refuses what it cannot withdraw, and changes nothing.
    let journal = std::fs::read(sandbox.join("store/journal")).unwrap();
    let run = withdraw(&sandbox, "2", &[]);
    run.expect(1, "already withdrawn");
    assert!(run.stderr.contains("already withdrawn"), "{run:?}");
    let run = withdraw(&sandbox, "9", &[]);
    run.expect(1, "no such entry");
    assert!(run.stderr.contains("has no entry 9"), "{run:?}");
    let run = withdraw(&sandbox, "1", &["--restore-previous"]);
    run.expect(1, "nothing earlier to restore");
    assert!(run.stderr.contains("no earlier entry"), "{run:?}");
    assert_eq!(std::fs::read(sandbox.join("store/journal")).unwrap(), journal, "a refusal writes nothing");
    fts(&sandbox, &["log", "verify", "--store", "store"]).expect(0, "the log still verifies");
}

#[test]
fn a_host_that_installed_a_withdrawn_entry_reports_it_runs_exec_withdrawn_and_gets_the_restored_version() {
    let sandbox = sandbox();
    publish(&sandbox, "app.conf", b"version 1\n");
    publish(&sandbox, "app.conf", b"version 2, bad\n");
    publish(&sandbox, "tool.conf", b"bad too, and nothing earlier\n");
    let server = serve(&sandbox);
    poll(&sandbox, server.addr, "in", &[]).expect(0, "installs version 2 and the tool");
    assert_eq!(std::fs::read(sandbox.join("in/app.conf")).unwrap(), b"version 2, bad\n");

    let run = withdraw(&sandbox, "2", &["--restore-previous", "--reason", "bad config"]);
    run.expect(0, "withdraw and restore");
    assert!(run.stdout.contains("restored the previous version: web-01 seq 4 is app.conf"), "{run:?}");
    let run = withdraw(&sandbox, "3", &[]);
    run.expect(0, "withdraw without a restore");
    assert!(run.stdout.contains("no earlier version was published again"), "{run:?}");

    let script = sandbox.join("on-withdrawn.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"$1 $FTS_HOOK_SEQ\" >> \"$0.ran\"\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let exec = ["--exec-withdrawn", script.to_str().unwrap()];
    let run = poll(&sandbox, server.addr, "in", &exec);
    run.expect(3, "withdrawn-installed is reported");
    assert_eq!(run.stderr.matches("withdrawn-installed").count(), 2, "{run:?}");
    assert_eq!(std::fs::read(sandbox.join("in/app.conf")).unwrap(), b"version 1\n", "the restored version");
    assert_eq!(
        std::fs::read(sandbox.join("in/tool.conf")).unwrap(),
        b"bad too, and nothing earlier\n",
        "a withdrawal never touches an installed file"
    );
    // Run for the withdrawn file still installed; not for app.conf, which the restored
    // version replaced in the same poll (removing it would remove version 1).
    let ran = std::fs::read_to_string(sandbox.join("on-withdrawn.sh.ran")).expect("--exec-withdrawn ran");
    assert_eq!(
        ran.lines().collect::<Vec<_>>(),
        [format!("{} 3", sandbox.join("in/tool.conf").display())],
        "{ran}"
    );

    // Noticed once: the next poll says nothing and runs nothing.
    poll(&sandbox, server.addr, "in", &exec).expect(0, "quiet");
    assert_eq!(std::fs::read_to_string(sandbox.join("on-withdrawn.sh.ran")).unwrap().lines().count(), 1);
}

#[test]
fn a_server_that_sends_a_withdrawn_entry_whole_or_a_forged_withdrawal_gets_nothing_installed() {
    let sandbox = sandbox();
    let bad = b"withdrawn, but a hostile server sends it anyway\n";
    publish(&sandbox, "bad.conf", bad);
    withdraw(&sandbox, "1", &[]).expect(0, "withdraw");
    let reader = fts_store::StoreReader::open(sandbox.join("store")).unwrap();
    let entry = reader.entries()[0].clone();
    let withdrawal = reader.current().withdrawals()[0].clone();
    let (log, tree) = honest_log(&sandbox, None);
    let server = HostileServer::start_in(&sandbox.join("certs"));
    let checkpoint = ["--log-checkpoint", "store/log/checkpoint"];

    // 1. The whole entry, with a genuine inclusion proof, instead of its withdrawal.
    let mut whole = log.clone();
    whole.extend(ServerFrame::File(logged_header(&entry, &tree)).encode().unwrap());
    whole.extend_from_slice(bad);
    whole.extend(done_frame());
    server.push(Answer::bytes(whole));
    let run = poll(&sandbox, server.addr, "in", &checkpoint);
    run.expect(3, "applied as withdrawn");
    assert!(run.stderr.contains("withdrawn"), "{run:?}");
    assert!(!sandbox.join("in/bad.conf").exists(), "never installed");
    assert_eq!(since(&sandbox, "in"), 1);

    // The control: the genuine withdrawn frame is applied (on a host of its own), so
    // the frames built here are the protocol's.
    let genuine = Withdrawal {
        withdrawn: withdrawal.statement.withdrawn.clone(),
        reason: withdrawal.statement.reason.clone(),
        key_id: withdrawal.key_id,
        signature: withdrawal.signature,
        log_index: withdrawal.position,
        inclusion: tree.inclusion_proof(withdrawal.position, tree.len()).unwrap(),
    };
    let frame = |entry: FileHeader, withdrawal: Withdrawal| {
        let mut bytes = log.clone();
        bytes.extend(ServerFrame::Withdrawn(WithdrawnFrame { entry, withdrawal }).encode().unwrap());
        bytes.extend(done_frame());
        Answer::bytes(bytes)
    };
    server.push(frame(logged_header(&entry, &tree), genuine.clone()));
    poll(&sandbox, server.addr, "control", &checkpoint).expect(3, "withdrawn, reported");
    assert_eq!(since(&sandbox, "control"), 1, "the genuine withdrawal is applied");

    // 2. A withdrawal signed by the release key, but for another log: its leaf is not
    //    the log's, so it is refused and the target held.
    let key = fts_trust::SigningKey::load(&sandbox.join("certs/signing.key")).unwrap();
    let mut other = withdrawal.statement.clone();
    other.origin = fts_proto::checkpoint::Origin::parse("other.example/log").unwrap();
    let forged = Withdrawal { signature: key.sign_withdrawal(&other), ..genuine.clone() };
    server.push(frame(logged_header(&entry, &tree), forged));
    let run = poll(&sandbox, server.addr, "second", &checkpoint);
    run.expect(3, "refused");
    assert!(run.stderr.contains("not-logged"), "{run:?}");
    assert_eq!(since(&sandbox, "second"), 0, "nothing applied");

    // 3. Another statement at the same (target, seq), signed, with the withdrawal of
    //    the genuine one: the entry's leaf is not the log's.
    let mut impostor = entry.clone();
    impostor.statement.file_size += 1;
    impostor.signature = key.sign(&impostor.statement);
    server.push(frame(logged_header(&impostor, &tree), genuine));
    let run = poll(&sandbox, server.addr, "third", &checkpoint);
    run.expect(3, "refused");
    assert!(run.stderr.contains("not-logged"), "{run:?}");
    assert_eq!(since(&sandbox, "third"), 0, "nothing applied");
}
