//! `fts gc` (issue 19, part 3), end to end with the real `fts publish`, `fts
//! withdraw`, `fts gc`, `fts log verify`, `fts serve` and `fts poll --once` on
//! 127.0.0.1:
//! - `--dry-run` lists exactly the blobs of superseded and withdrawn entries and
//!   removes nothing; `fts gc` then removes those, keeps the current ones, and leaves
//!   the journal and the log as they were (`fts log verify` passes);
//! - `--keep 2` keeps the previous version too;
//! - content that a superseded entry shares with a current one (another name, another
//!   target) is kept;
//! - a wrong `--store` or `--keep 0` is refused and changes nothing;
//! - after gc, a host that was up to date stays so and gets the next publish; a new
//!   host's poll stops at the first superseded entry whose blob is gone, and the
//!   server goes on serving (until servers send superseded entries without their
//!   body, a `superseded` frame, such a host waits there).

use std::path::PathBuf;

use crate::common::Sandbox;
use crate::common::one_host::*;
use crate::common::server::ServeProcess;

/// The hash (`sha256:...`) and blob file of `target`'s entry `seq`.
fn blob_of(sandbox: &Sandbox, target: &str, seq: u64) -> (String, PathBuf) {
    let reader = fts_store::StoreReader::open(sandbox.join("store")).unwrap();
    let target = fts_proto::Target::parse(target).unwrap();
    let entry = reader.current().entry(&target, fts_proto::Seq::new(seq).unwrap()).unwrap();
    let hash = entry.statement.file_hash;
    (hash.to_string(), fts_store::blob_path(&sandbox.join("store"), &hash))
}

/// app.conf three times and tool.conf once to web-01, app.conf seq 2 withdrawn:
/// seq 1 app.conf v1, 2 app.conf v2 (withdrawn), 3 tool.conf, 4 app.conf v3.
fn three_versions_one_withdrawn() -> Sandbox {
    let sandbox = sandbox();
    publish(&sandbox, "app.conf", b"app v1\n");
    publish(&sandbox, "app.conf", b"app v2, bad\n");
    publish(&sandbox, "tool.conf", b"tool\n");
    publish(&sandbox, "app.conf", b"app v3\n");
    fts(&sandbox, &["withdraw", "--target", ID, "--seq", "2"]).expect(0, "withdraw");
    sandbox
}

#[test]
fn gc_removes_exactly_the_blobs_of_superseded_and_withdrawn_entries_and_a_dry_run_nothing() {
    let sandbox = three_versions_one_withdrawn();
    let (v1, v1_blob) = blob_of(&sandbox, ID, 1);
    let (v2, v2_blob) = blob_of(&sandbox, ID, 2);
    let (_, tool_blob) = blob_of(&sandbox, ID, 3);
    let (_, v3_blob) = blob_of(&sandbox, ID, 4);
    let journal = std::fs::read(sandbox.join("store/journal")).unwrap();
    let expected = |verb: &str| {
        format!(
            "{verb} {v1} (7 bytes): web-01 seq 1 app.conf superseded by seq 4\n\
             {verb} {v2} (12 bytes): web-01 seq 2 app.conf withdrawn\n\
             {verb} 2 blobs, 19 bytes\n"
        )
    };

    let dry = fts(&sandbox, &["gc", "--dry-run", "--store", "store"]);
    dry.expect(0, "gc --dry-run");
    assert_eq!(dry.stdout, expected("would remove"), "{dry:?}");
    for blob in [&v1_blob, &v2_blob, &tool_blob, &v3_blob] {
        assert!(blob.exists(), "a dry run removes nothing: {}", blob.display());
    }

    let run = fts(&sandbox, &["gc"]);
    run.expect(0, "gc");
    assert_eq!(run.stdout, expected("removed"), "{run:?}");
    assert!(!v1_blob.exists() && !v2_blob.exists(), "the superseded and the withdrawn blob are gone");
    assert!(tool_blob.exists() && v3_blob.exists(), "the current app.conf and tool.conf are kept");
    assert_eq!(std::fs::read(sandbox.join("store/journal")).unwrap(), journal, "the journal is untouched");
    fts(&sandbox, &["log", "verify", "--store", "store"]).expect(0, "the log still verifies after gc");
    let again = fts(&sandbox, &["gc"]);
    again.expect(0, "a second gc");
    assert_eq!(again.stdout, "removed 0 blobs, 0 bytes\n");
}

#[test]
fn keep_two_keeps_the_previous_version_that_is_not_withdrawn() {
    let sandbox = three_versions_one_withdrawn();
    let (v1, v1_blob) = blob_of(&sandbox, ID, 1);
    let (v2, v2_blob) = blob_of(&sandbox, ID, 2);
    let run = fts(&sandbox, &["gc", "--keep", "2"]);
    run.expect(0, "gc --keep 2");
    // The two newest versions not withdrawn are v3 and v1.
    assert_eq!(
        run.stdout,
        format!("removed {v2} (12 bytes): web-01 seq 2 app.conf withdrawn\nremoved 1 blob, 12 bytes\n")
    );
    assert!(v1_blob.exists() && !v2_blob.exists());

    let sandbox = Sandbox::new();
    sandbox.provision(&[(ID, &["web"])]);
    for version in ["1", "2", "3"] {
        publish(&sandbox, "app.conf", format!("app v{version}\n").as_bytes());
    }
    let (fresh_v1, fresh_v1_blob) = blob_of(&sandbox, ID, 1);
    assert_eq!(fresh_v1, v1, "the same bytes as in the other store");
    let (_, fresh_v2_blob) = blob_of(&sandbox, ID, 2);
    let run = fts(&sandbox, &["gc", "--keep", "2"]);
    run.expect(0, "gc --keep 2 on a fresh store");
    assert_eq!(
        run.stdout,
        format!(
            "removed {fresh_v1} (7 bytes): web-01 seq 1 app.conf superseded by seq 3\nremoved 1 blob, 7 bytes\n"
        )
    );
    assert!(!fresh_v1_blob.exists() && fresh_v2_blob.exists(), "two versions kept");
}

#[test]
fn content_a_superseded_entry_shares_with_a_current_one_is_kept() {
    let sandbox = sandbox();
    publish(&sandbox, "app.conf", b"shared bytes\n"); // seq 1, superseded by 2
    publish(&sandbox, "app.conf", b"newer\n");
    publish(&sandbox, "copy.conf", b"shared bytes\n"); // the same content, another name
    publish(&sandbox, "base.conf", b"also shared\n"); // seq 4, superseded by 5
    publish(&sandbox, "base.conf", b"newer base\n");
    try_publish(&sandbox, "base.conf", b"also shared\n", "all", "certs/signing.key").expect(0, "publish"); // the same, another target
    let (_, shared) = blob_of(&sandbox, ID, 1);
    let (_, also_shared) = blob_of(&sandbox, ID, 4);
    let run = fts(&sandbox, &["gc"]);
    run.expect(0, "gc");
    assert_eq!(run.stdout, "removed 0 blobs, 0 bytes\n", "{run:?}");
    assert!(shared.exists() && also_shared.exists());
}

#[test]
fn a_wrong_store_or_keep_is_refused_and_changes_nothing() {
    let sandbox = three_versions_one_withdrawn();
    let run = fts(&sandbox, &["gc", "--store", "nowhere"]);
    run.expect(1, "no such store");
    assert!(run.stderr.contains("cannot open the store nowhere"), "{run:?}");
    assert!(!sandbox.join("nowhere").exists(), "gc never creates a store");
    std::fs::create_dir(sandbox.join("empty")).unwrap();
    let run = fts(&sandbox, &["gc", "--store", "empty"]);
    run.expect(1, "a folder without a journal");
    assert!(run.stderr.contains("has no journal"), "{run:?}");
    assert_eq!(std::fs::read_dir(sandbox.join("empty")).unwrap().count(), 0);
    let run = fts(&sandbox, &["gc", "--keep", "0"]);
    run.expect(2, "--keep 0");
    assert!(run.stderr.contains("at least 1"), "{run:?}");
    assert!(blob_of(&sandbox, ID, 1).1.exists(), "nothing removed");
}

#[test]
fn after_gc_an_up_to_date_host_goes_on_and_a_new_host_gets_the_newest_versions() {
    let sandbox = three_versions_one_withdrawn();
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    let early = poll(&sandbox, server.addr, "early", &[]);
    early.expect(3, "the withdrawn entry is reported");
    assert_eq!(std::fs::read(sandbox.join("early/app.conf")).unwrap(), b"app v3\n");

    fts(&sandbox, &["gc"]).expect(0, "gc");
    publish(&sandbox, "tool.conf", b"tool v2\n");
    poll(&sandbox, server.addr, "early", &[]).expect(0, "the host that was up to date gets the next publish");
    assert_eq!(std::fs::read(sandbox.join("early/tool.conf")).unwrap(), b"tool v2\n");

    // A new host starts at seq 1, whose blob gc removed: the collected entries travel
    // without their body (superseded, withdrawn), so it gets the newest versions, and
    // the server never fails a poll for a collected blob.
    let new = poll(&sandbox, server.addr, "new", &[]);
    new.expect(3, "the withdrawn entry is reported");
    assert_eq!(std::fs::read(sandbox.join("new/app.conf")).unwrap(), b"app v3\n", "{new:?}");
    assert_eq!(std::fs::read(sandbox.join("new/tool.conf")).unwrap(), b"tool v2\n", "{new:?}");
    let blocked = server.logs().into_iter().any(|line| {
        line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("an entry cannot be served yet"))
    });
    assert!(!blocked, "no entry waited for a blob gc removed: {:#?}", server.logs());
    poll(&sandbox, server.addr, "early", &[]).expect(0, "still served");
}
