//! Delivery status: written per client, read back, problems recorded once, damaged
//! files skipped.

use std::collections::BTreeMap;
use std::fs;

use fts_proto::{ClientId, RejectReason, Report, Target};
use fts_status::{MAX_PROBLEMS, PollClaims, StatusDir};

fn target(s: &str) -> Target {
    Target::parse(s).unwrap()
}

fn at(secs: u64) -> std::time::SystemTime {
    std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_795_626_000 + secs)
}

fn client(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

fn report(t: &str, seq: u64, reason: &str) -> Report {
    Report::new(target(t), seq, RejectReason::parse(reason).unwrap())
}

#[test]
fn a_poll_is_recorded_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let status = StatusDir::open_or_create(dir.path().join("status")).unwrap();
    let since = BTreeMap::from([(target("all"), 4), (target("web-01"), 2)]);
    status
        .record_poll(
            &client("web-01"),
            true,
            &PollClaims::of(&since),
            &[report("all", 5, "signature")],
            at(0),
        )
        .unwrap();
    status.record_poll(&client("db-01"), false, &PollClaims::default(), &[], at(5)).unwrap();

    let all = StatusDir::open(dir.path().join("status")).read_all().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].client_id.as_str(), "db-01", "sorted by client id");
    assert!(!all[0].authenticated);
    let web = &all[1];
    assert_eq!(web.last_poll.as_str(), "2026-11-25T17:00:00Z");
    assert!(web.authenticated);
    assert_eq!(web.since, since);
    assert_eq!(web.problems.len(), 1);
    assert_eq!(web.problems[0].reason, RejectReason::Signature);
    assert_eq!(status.read(&client("web-01")).unwrap().as_ref(), Some(web));
    assert_eq!(status.read(&client("nobody")).unwrap(), None);
    let names: Vec<_> =
        fs::read_dir(dir.path().join("status")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 2, "no temp left behind: {names:?}");
}

#[test]
fn a_problem_reported_again_is_recorded_once_with_first_and_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let status = StatusDir::open_or_create(dir.path()).unwrap();
    let id = client("web-01");
    let none = BTreeMap::new();
    status
        .record_poll(&id, false, &PollClaims::of(&none), &[report("all", 5, "hook-failed")], at(0))
        .unwrap();
    status
        .record_poll(
            &id,
            true,
            &PollClaims::of(&none),
            &[report("all", 5, "hook-failed"), report("all", 6, "gap")],
            at(60),
        )
        .unwrap();
    let s = status.record_poll(&id, true, &PollClaims::of(&none), &[], at(120)).unwrap();
    assert_eq!(s.problems.len(), 2);
    let hook = s.problems.iter().find(|p| p.seq == 5).unwrap();
    assert_eq!(
        (hook.first_seen.as_str(), hook.last_seen.as_str()),
        ("2026-11-25T17:00:00Z", "2026-11-25T17:01:00Z")
    );
    assert_eq!(hook.count, 2);
    assert!(hook.authenticated, "reported once over an authenticated poll");
    assert_eq!(s.last_poll.as_str(), "2026-11-25T17:02:00Z");
}

#[test]
fn only_the_newest_problems_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let status = StatusDir::open_or_create(dir.path()).unwrap();
    let id = client("web-01");
    for seq in 1..=(MAX_PROBLEMS as u64 + 20) {
        status
            .record_poll(&id, true, &PollClaims::default(), &[report("all", seq, "replay")], at(seq))
            .unwrap();
    }
    let s = status.read(&id).unwrap().unwrap();
    assert_eq!(s.problems.len(), MAX_PROBLEMS);
    assert_eq!(s.problems[0].seq, 21, "the oldest were dropped");
    assert_eq!(s.problems.last().unwrap().seq, MAX_PROBLEMS as u64 + 20);
}

#[test]
fn a_damaged_or_foreign_status_file_is_skipped_and_a_fresh_one_written_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let status = StatusDir::open_or_create(dir.path()).unwrap();
    status.record_poll(&client("good"), true, &PollClaims::default(), &[], at(0)).unwrap();
    fs::write(dir.path().join("broken.json"), b"{\"format\":1,\"client-id\":").unwrap();
    fs::write(dir.path().join("zeros.json"), [0u8; 64]).unwrap();
    fs::copy(dir.path().join("good.json"), dir.path().join("other.json")).unwrap();
    fs::write(dir.path().join("Not-An-Id.json"), b"{}").unwrap();
    fs::write(dir.path().join("README"), b"not a status").unwrap();

    let all = status.read_all().unwrap();
    let ids: Vec<_> = all.iter().map(|s| s.client_id.as_str()).collect();
    assert_eq!(ids, ["good"]);
    assert!(status.read(&client("broken")).is_err());

    let fresh = status.record_poll(&client("broken"), true, &PollClaims::default(), &[], at(9)).unwrap();
    assert_eq!(status.read(&client("broken")).unwrap(), Some(fresh));
}

#[test]
fn status_of_a_folder_that_does_not_exist_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    assert!(StatusDir::open(dir.path().join("never")).read_all().unwrap().is_empty());
}

#[test]
fn an_unchanged_poll_is_kept_in_memory_until_the_flush_and_a_change_is_written_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("status");
    let status = StatusDir::open_or_create(&path).unwrap();
    let reader = StatusDir::open(&path);
    let id = client("web-01");
    let since = BTreeMap::from([(target("all"), 4), (target("web-01"), 2)]);
    let last_poll = || reader.read(&id).unwrap().unwrap().last_poll.as_str().to_owned();

    assert!(
        !status.note_unchanged_poll(&id, true, &PollClaims::of(&since), &[], at(0)),
        "a first poll needs the file"
    );
    status.record_poll(&id, true, &PollClaims::of(&since), &[], at(0)).unwrap();
    let file = fs::read(path.join("web-01.json")).unwrap();
    assert!(status.note_unchanged_poll(&id, true, &PollClaims::of(&since), &[], at(60)));
    assert_eq!(fs::read(path.join("web-01.json")).unwrap(), file, "the client file is not rewritten");
    assert_eq!(last_poll(), "2026-11-25T17:00:00Z", "not flushed yet");
    assert!(status.flush_last_polls().unwrap());
    assert!(!status.flush_last_polls().unwrap(), "nothing new to write");
    assert_eq!(last_poll(), "2026-11-25T17:01:00Z");
    let all = reader.read_all().unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].last_poll.as_str(), "2026-11-25T17:01:00Z");

    let moved = BTreeMap::from([(target("all"), 5), (target("web-01"), 2)]);
    assert!(
        !status.note_unchanged_poll(&id, false, &PollClaims::of(&since), &[], at(120)),
        "authentication changed"
    );
    assert!(!status.note_unchanged_poll(&id, true, &PollClaims::of(&moved), &[], at(120)), "since changed");
    assert!(
        !status.note_unchanged_poll(&id, true, &PollClaims::of(&since), &[report("all", 5, "gap")], at(120)),
        "a report"
    );
    status.record_poll(&id, true, &PollClaims::of(&moved), &[], at(120)).unwrap();
    assert_eq!(reader.read(&id).unwrap().unwrap().since, moved, "written at once");
    assert!(status.note_unchanged_poll(&id, true, &PollClaims::of(&moved), &[], at(180)));

    // A restarted server keeps the times it flushed (and flushes at stop), but cannot
    // know what the files hold: the first poll of each client rewrites its file.
    status.flush_last_polls().unwrap();
    drop(status);
    let restarted = StatusDir::open_or_create(&path).unwrap();
    assert_eq!(last_poll(), "2026-11-25T17:03:00Z");
    assert!(!restarted.note_unchanged_poll(&id, true, &PollClaims::of(&moved), &[], at(240)));
    restarted.record_poll(&id, true, &PollClaims::of(&moved), &[], at(240)).unwrap();
    assert!(restarted.note_unchanged_poll(&id, true, &PollClaims::of(&moved), &[], at(300)));
}

#[test]
fn a_damaged_last_polls_file_is_ignored_by_readers_and_replaced_by_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let status = StatusDir::open_or_create(dir.path()).unwrap();
    let id = client("web-01");
    let none = BTreeMap::new();
    status.record_poll(&id, true, &PollClaims::of(&none), &[], at(60)).unwrap();
    let snapshot = dir.path().join("last-polls.tsv");
    fs::write(&snapshot, b"web-01\tnot a time\n\xff\xfe\0garbage").unwrap();
    let all = status.read_all().unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].last_poll.as_str(), "2026-11-25T17:01:00Z", "the client file's own time");
    fs::write(&snapshot, b"junk\nweb-01\t2026-11-25T16:00:00Z\n").unwrap();
    assert_eq!(
        status.read(&id).unwrap().unwrap().last_poll.as_str(),
        "2026-11-25T17:01:00Z",
        "the later time"
    );
    fs::write(&snapshot, b"junk\nweb-01\t2026-11-25T17:05:00Z\n\0").unwrap();
    assert_eq!(
        status.read(&id).unwrap().unwrap().last_poll.as_str(),
        "2026-11-25T17:05:00Z",
        "the later time"
    );
    drop(status);

    fs::write(&snapshot, vec![b'x'; 70 << 20]).unwrap();
    let restarted = StatusDir::open_or_create(dir.path()).unwrap();
    assert_eq!(restarted.read_all().unwrap().len(), 1);
    restarted.record_poll(&id, true, &PollClaims::of(&none), &[], at(120)).unwrap();
    assert!(restarted.note_unchanged_poll(&id, true, &PollClaims::of(&none), &[], at(180)));
    assert!(restarted.flush_last_polls().unwrap());
    let text = fs::read_to_string(&snapshot).unwrap();
    assert!(text.ends_with("\nweb-01\t2026-11-25T17:03:00Z\n"), "a fresh snapshot: {text:?}");
}

#[test]
fn a_last_poll_time_from_the_future_is_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let status = StatusDir::open_or_create(dir.path()).unwrap();
    let id = client("web-01");
    status.record_poll(&id, true, &PollClaims::default(), &[], at(60)).unwrap();
    // Written while the server's clock ran a year ahead.
    fs::write(dir.path().join("last-polls.tsv"), b"web-01\t2099-01-01T00:00:00Z\n").unwrap();
    assert_eq!(status.read(&id).unwrap().unwrap().last_poll.as_str(), "2026-11-25T17:01:00Z");
    assert_eq!(status.read_all().unwrap()[0].last_poll.as_str(), "2026-11-25T17:01:00Z");
}
