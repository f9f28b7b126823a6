//! Supersession (issue 19, PROTOCOL.md section 8.2), end to end with the real `fts
//! publish`, `fts serve` and `fts poll --once` on 127.0.0.1:
//! - a host enrolled after a year of weekly releases of three files receives the
//!   three newest in one `--once` run, and only their bodies travel, even with a
//!   per-poll budget of one file;
//! - a version signed by a key the host does not trust supersedes nothing: the older
//!   one comes whole and installs;
//! - a scripted hostile server that supersedes N by an M it then withholds gets
//!   nothing applied (and `withheld` once the bound passes); one that claims a
//!   supersession for an N whose leaf fails inclusion gets `not-logged`; one whose M
//!   the host does not trust, of another file name or above its `--max-file-size` gets
//!   `bad-supersession`: N must come whole.

use std::time::{Duration, SystemTime};

use fts_proto::{FileHeader, ServerFrame, SupersededFrame};

use crate::common::hostile_server::{Answer, HostileServer, done_frame};
use crate::common::log_frames::{honest_log, logged_header};
use crate::common::one_host::*;
use crate::common::server::ServeProcess;

#[test]
fn a_host_enrolled_after_a_year_of_weekly_releases_gets_only_the_newest_of_each_file_in_one_run() {
    let sandbox = sandbox();
    for week in 1..=52 {
        for name in ["openssl.deb", "app.conf", "motd"] {
            publish(&sandbox, name, format!("{name} of week {week}\n").as_bytes());
        }
    }
    // A budget of one file per answer: the superseded history never counts, and the
    // three newest still come in one run.
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s", "--poll-max-files", "1"]);
    let run = poll(&sandbox, server.addr, "in", &[]);
    run.expect(0, "one --once run");
    for name in ["openssl.deb", "app.conf", "motd"] {
        assert_eq!(
            std::fs::read_to_string(sandbox.join("in").join(name)).unwrap(),
            format!("{name} of week 52\n"),
            "{run:?}"
        );
    }
    assert_eq!(since(&sandbox, "in"), 156, "every entry applied");
    let polls: Vec<_> = server.logs().into_iter().filter(|l| l["fields"]["message"] == "poll").collect();
    assert_eq!(polls.len(), 1, "one answer: {polls:#?}");
    assert_eq!(polls[0]["fields"]["files"], 3, "only the newest three travelled whole: {polls:#?}");
}

#[test]
fn a_newer_version_signed_by_a_key_the_host_does_not_trust_supersedes_nothing() {
    let sandbox = sandbox();
    fts(&sandbox, &["keygen", "signing", "--dir", "other"]).expect(0, "another signing key");
    publish(&sandbox, "app.conf", b"trusted version\n");
    try_publish(&sandbox, "app.conf", b"signed by a key this host does not trust\n", ID, "other/signing.key")
        .expect(0, "publish");
    // The checkpoint is signed by whoever published last: the trusted key again.
    publish(&sandbox, "tail.conf", b"signed by the trusted key\n");
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    let run = poll(&sandbox, server.addr, "in", &[]);
    run.expect(3, "the untrusted one is held");
    assert!(run.stderr.contains("untrusted-key"), "{run:?}");
    assert_eq!(std::fs::read(sandbox.join("in/app.conf")).unwrap(), b"trusted version\n", "came whole");
    assert_eq!(since(&sandbox, "in"), 1, "held at the untrusted version");
}

fn superseded(log: &[u8], entry: FileHeader, by: FileHeader) -> Answer {
    let mut bytes = log.to_vec();
    bytes.extend(ServerFrame::Superseded(SupersededFrame { entry, by }).encode().unwrap());
    bytes.extend(done_frame());
    Answer::bytes(bytes)
}

#[test]
fn a_hostile_server_gets_nothing_applied_by_a_supersession_it_does_not_complete_or_prove() {
    let sandbox = sandbox();
    fts(&sandbox, &["keygen", "timestamp", "--dir", "ts"]).expect(0, "keygen timestamp");
    fts(&sandbox, &["keygen", "signing", "--dir", "other"]).expect(0, "another signing key");
    publish(&sandbox, "app.conf", b"version 1\n");
    publish(&sandbox, "app.conf", b"version 2, kept back by the server\n");
    try_publish(&sandbox, "app.conf", b"version 3, by an untrusted key\n", ID, "other/signing.key")
        .expect(0, "publish");
    publish(&sandbox, "tail.conf", b"so that the trusted key signs the checkpoint\n");
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
    fts(&sandbox, &cosign).expect(0, "cosign");
    let cosigned =
        std::fs::read_dir(sandbox.join("store/cosignatures")).unwrap().next().unwrap().unwrap().path();
    let (log, tree) = honest_log(&sandbox, Some(std::fs::read_to_string(cosigned).unwrap()));
    let entries = fts_store::StoreReader::open(sandbox.join("store")).unwrap().entries().to_vec();
    let server = HostileServer::start_in(&sandbox.join("certs"));
    let fresh = ["--timestamp-key", "ts/timestamp.pub", "--withheld-after", "2s"];

    // 1. N = 1 superseded by M = 2, then M never sent: nothing applied.
    server.push(superseded(&log, logged_header(&entries[0], &tree), logged_header(&entries[1], &tree)));
    let run = poll(&sandbox, server.addr, "in", &fresh);
    run.expect(0, "nothing refused, nothing applied, not yet withheld");
    assert_eq!(since(&sandbox, "in"), 0, "N is not applied without its successor: {run:?}");
    assert!(!sandbox.join("in/app.conf").exists());
    let log_state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("in/.fts-state.json.log")).unwrap()).unwrap();
    let behind_since = log_state["behind-since"][ID].as_u64().unwrap_or_else(|| panic!("{log_state:#}"));
    while SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() <= behind_since + 2 {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.push(superseded(&log, logged_header(&entries[0], &tree), logged_header(&entries[1], &tree)));
    let run = poll(&sandbox, server.addr, "in", &fresh);
    run.expect(4, "withheld");
    assert!(run.stderr.contains("withheld"), "{run:?}");
    assert_eq!(since(&sandbox, "in"), 0);

    // 2. A supersession of an N whose leaf fails inclusion: not-logged.
    let mut broken = logged_header(&entries[0], &tree);
    if let Some(proof) = broken.inclusion.as_mut() {
        proof[0].0[0] ^= 1;
    }
    server.push(superseded(&log, broken, logged_header(&entries[1], &tree)));
    let run = poll(&sandbox, server.addr, "second", &[]);
    run.expect(3, "refused");
    assert!(run.stderr.contains("not-logged"), "{run:?}");
    assert_eq!(since(&sandbox, "second"), 0);

    // 3. By an M signed with a key the host does not trust: bad-supersession, N must
    //    come whole.
    server.push(superseded(&log, logged_header(&entries[0], &tree), logged_header(&entries[2], &tree)));
    let run = poll(&sandbox, server.addr, "third", &[]);
    run.expect(3, "refused");
    assert!(run.stderr.contains("bad-supersession"), "{run:?}");
    assert_eq!(since(&sandbox, "third"), 0);

    // 4. By an M of another file name, and 5. by an M above the host's
    //    --max-file-size: bad-supersession, nothing applied.
    for (dest, by, extra) in
        [("fourth", &entries[3], &[][..]), ("fifth", &entries[1], &["--max-file-size", "20"][..])]
    {
        server.push(superseded(&log, logged_header(&entries[0], &tree), logged_header(by, &tree)));
        let run = poll(&sandbox, server.addr, dest, extra);
        run.expect(3, "refused");
        assert!(run.stderr.contains("bad-supersession"), "{run:?}");
        assert_eq!(since(&sandbox, dest), 0);
    }

    // The control: superseded by the genuine M, then M whole, applies both.
    let mut bytes = log.clone();
    bytes.extend(
        ServerFrame::Superseded(SupersededFrame {
            entry: logged_header(&entries[0], &tree),
            by: logged_header(&entries[1], &tree),
        })
        .encode()
        .unwrap(),
    );
    bytes.extend(ServerFrame::File(logged_header(&entries[1], &tree)).encode().unwrap());
    bytes.extend_from_slice(b"version 2, kept back by the server\n");
    bytes.extend(done_frame());
    server.push(Answer::bytes(bytes));
    poll(&sandbox, server.addr, "control", &[]).expect(0, "both applied");
    assert_eq!(since(&sandbox, "control"), 2);
    assert_eq!(
        std::fs::read(sandbox.join("control/app.conf")).unwrap(),
        b"version 2, kept back by the server\n"
    );
}
