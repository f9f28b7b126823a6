//! The shared suite every status backend passes ([`fts_status::StatusBackend`]): the
//! files (`files_backend.rs`) and PostgreSQL (`crates/status-db/tests/postgres_backend.rs`). Each test takes
//! a fresh, empty backend. The backend stores what the server checked: the
//! signatures here are not checked by it (fts-trust and the server do that), so they
//! are placeholders.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use fts_proto::{
    ClientId, EntryOutcome, EntryOutcomeKind, FileHash, FileName, Outcome, Published, Receipt, ReceiptScheme,
    RejectReason, Report, Seq, SignedReceipt, Target,
};
use fts_status::receipts::{LogLine, ReceiptArrival};
use fts_status::{PollClaims, ServerStatus, StatusBackend};

/// A moment in 2026, plus `secs`.
pub fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_626_000 + secs)
}

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

fn target(s: &str) -> Target {
    Target::parse(s).unwrap()
}

fn hash(byte: u8) -> FileHash {
    FileHash::parse(&format!("sha256:{}", hex(byte))).unwrap()
}

fn hex(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

/// Receipt `number` of `client`, installing `seq` of `all`, chained to `previous`.
pub fn arrival(client: &str, number: u64, previous: Option<FileHash>, seq: u64) -> ReceiptArrival {
    let receipt = Receipt {
        client_id: id(client),
        number,
        previous,
        made: Published::from_unix_seconds(1_795_626_000 + number),
        outcomes: vec![Outcome::Entry(EntryOutcome {
            target: Target::All,
            seq: Seq::new(seq).unwrap(),
            file: Some((FileName::parse("openssl.tar").unwrap(), hash(7))),
            kind: EntryOutcomeKind::Installed,
        })],
    };
    let bytes = receipt.to_bytes();
    // A placeholder, unique per receipt (the server computes the real one).
    let unique = {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (client, number).hash(&mut hasher);
        hasher.finish()
    };
    let receipt_hash = FileHash::parse(&format!("sha256:{}", format!("{unique:016x}").repeat(4))).unwrap();
    ReceiptArrival {
        client_id: id(client),
        certificate: b"a certificate".to_vec(),
        serial: "0a1b2c".into(),
        signed: SignedReceipt { bytes, scheme: ReceiptScheme::EcdsaP256Sha256, signature: vec![1; 64] },
        receipt,
        hash: receipt_hash,
        received: Published::from_unix_seconds(1_795_626_100 + number),
    }
}

/// Stores `arrivals` and takes them into the hosts' status, as the server does.
fn store(backend: &dyn StatusBackend, arrivals: &[ReceiptArrival]) {
    backend.record_receipts(arrivals).unwrap();
    backend.apply_receipts(arrivals);
}

fn poll(backend: &dyn StatusBackend, client: &str, since: u64, now: SystemTime) {
    let claims = PollClaims::of(&BTreeMap::from([(Target::All, since), (target(client), 0)]));
    backend.record_poll(&id(client), true, &claims, &[], now).unwrap();
}

pub fn a_poll_is_recorded_and_read_back(backend: &dyn StatusBackend) {
    assert!(backend.clients().unwrap().is_empty(), "a new backend knows no host");
    let claims = PollClaims {
        next_poll_within: Some(300),
        receipt_count: Some(4),
        ..PollClaims::of(&BTreeMap::from([(Target::All, 3)]))
    };
    let report = Report::new(Target::All, 4, RejectReason::TooLarge);
    backend.record_poll(&id("web-01"), true, &claims, &[report], at(0)).unwrap();
    poll(backend, "db-01", 1, at(1));
    let all = backend.clients().unwrap();
    assert_eq!(
        all.iter().map(|c| c.client_id.as_str()).collect::<Vec<_>>(),
        ["db-01", "web-01"],
        "sorted by id"
    );
    let web = backend.client(&id("web-01")).unwrap().unwrap();
    assert_eq!(web.since[&Target::All], 3);
    assert_eq!(web.next_poll_within, Some(300));
    assert_eq!(web.receipts.as_ref().and_then(|b| b.declared), Some(4));
    assert_eq!(web.problems[0].reason, RejectReason::TooLarge);
    assert!(backend.client(&id("nobody")).unwrap().is_none());
}

pub fn an_unchanged_poll_is_noted_and_its_time_shown_after_a_flush(backend: &dyn StatusBackend) {
    poll(backend, "web-01", 1, at(0));
    let claims = PollClaims::of(&BTreeMap::from([(Target::All, 1), (target("web-01"), 0)]));
    assert!(backend.note_unchanged_poll(&id("web-01"), true, &claims, &[], at(60)), "nothing but the time");
    let changed = PollClaims::of(&BTreeMap::from([(Target::All, 2), (target("web-01"), 0)]));
    assert!(
        !backend.note_unchanged_poll(&id("web-01"), true, &changed, &[], at(61)),
        "a new since is a change"
    );
    backend.flush().unwrap();
    let web = backend.client(&id("web-01")).unwrap().unwrap();
    assert_eq!(web.last_poll, Published::from_unix_seconds(1_795_626_060), "the noted time is shown");
}

pub fn every_host_is_read_in_batches_as_a_whole_read_shows_it(backend: &dyn StatusBackend) {
    let mut none = 0;
    backend.clients_in_batches(3, &mut |batch| none += batch.len()).unwrap();
    assert_eq!(none, 0, "a new backend hands no host");
    for n in 0..7 {
        poll(backend, &format!("web-{n:02}"), n, at(n));
    }
    // An unchanged poll noted since shows its time in the batches too.
    let claims = PollClaims::of(&BTreeMap::from([(Target::All, 3), (target("web-03"), 0)]));
    assert!(backend.note_unchanged_poll(&id("web-03"), true, &claims, &[], at(90)));
    backend.flush().unwrap();
    let mut sizes = Vec::new();
    let mut batched = Vec::new();
    backend
        .clients_in_batches(3, &mut |batch| {
            sizes.push(batch.len());
            batched.extend(batch);
        })
        .unwrap();
    assert!(sizes.iter().all(|&n| n <= 3) && sizes.iter().sum::<usize>() == 7, "batches {sizes:?}");
    batched.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(batched, backend.clients().unwrap(), "the same hosts, the same status");
    assert_eq!(batched[3].last_poll, Published::from_unix_seconds(1_795_626_090));
}

pub fn what_was_offered_is_recorded_for_a_known_host(backend: &dyn StatusBackend) {
    poll(backend, "web-01", 0, at(0));
    backend.record_offered(&id("web-01"), &BTreeMap::from([(Target::All, 5)]), at(1)).unwrap();
    let web = backend.client(&id("web-01")).unwrap().unwrap();
    assert_eq!(web.offered[&Target::All].seq, 5);
    // A poll after it keeps it.
    poll(backend, "web-01", 2, at(2));
    assert_eq!(backend.client(&id("web-01")).unwrap().unwrap().offered[&Target::All].seq, 5);
}

pub fn receipts_are_stored_in_order_and_update_their_host(backend: &dyn StatusBackend) {
    poll(backend, "web-01", 0, at(0));
    let first = arrival("web-01", 1, None, 1);
    let second = arrival("web-01", 2, Some(first.hash), 2);
    store(backend, std::slice::from_ref(&first));
    store(backend, std::slice::from_ref(&second));
    // A host that lost an acknowledgement sends both again: stored once.
    store(backend, &[first.clone(), second.clone()]);
    let log = backend.receipts().unwrap();
    let stored: Vec<FileHash> = log
        .lines
        .iter()
        .filter_map(|l| match l {
            LogLine::Receipt(r) => Some(r.hash),
            LogLine::Forget(_) => None,
        })
        .collect();
    assert_eq!(stored, [first.hash, second.hash], "in the order stored");
    let LogLine::Receipt(one) = &log.lines[0] else { panic!("a receipt") };
    assert_eq!(one.signed, first.signed, "the bytes and signature as the host sent them");
    assert_eq!(backend.certificate(&one.certificate).unwrap().as_deref(), Some(&b"a certificate"[..]));
    assert!(backend.certificate(&"f".repeat(64)).unwrap().is_none());
    assert!(backend.certificate("../../etc/passwd").unwrap().is_none(), "a name, never a path");

    let web = backend.client(&id("web-01")).unwrap().unwrap();
    let book = web.receipts.unwrap();
    assert_eq!((book.stored, book.stored_head, book.restarts), (2, Some(second.hash), 0));
    assert_eq!(web.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(web.entries.iter().all(|e| e.outcome == "installed"));
}

pub fn the_receipts_of_a_thousand_hosts_at_once_are_all_stored(backend: &dyn StatusBackend) {
    let names: Vec<String> = (0..1000).map(|n| format!("host-{n:04}")).collect();
    for name in &names {
        poll(backend, name, 0, at(0));
    }
    let arrivals: Vec<ReceiptArrival> = names.iter().map(|n| arrival(n, 1, None, 1)).collect();
    store(backend, &arrivals);
    let log = backend.receipts().unwrap();
    assert_eq!(log.lines.len(), 1000, "none lost");
    assert!(log.damaged.is_empty());
    for client in backend.clients().unwrap() {
        assert_eq!(client.receipts.map(|b| b.stored), Some(1), "{}", client.client_id);
    }
}

pub fn a_forgotten_host_is_gone_and_its_receipts_stay_as_evidence(backend: &dyn StatusBackend) {
    poll(backend, "web-01", 0, at(0));
    store(backend, &[arrival("web-01", 1, None, 1)]);
    assert!(backend.forget(&id("web-01"), Published::from_unix_seconds(1_795_626_200)).unwrap());
    assert!(backend.client(&id("web-01")).unwrap().is_none());
    assert!(!backend.forget(&id("web-01"), Published::from_unix_seconds(1_795_626_201)).unwrap(), "once");
    let log = backend.receipts().unwrap();
    assert!(matches!(log.lines[0], LogLine::Receipt(_)));
    assert!(matches!(&log.lines[1], LogLine::Forget(f) if f.client_id == id("web-01")));
    // Enrolled again: a new host, which inherits nothing.
    poll(backend, "web-01", 0, at(300));
    assert!(backend.client(&id("web-01")).unwrap().unwrap().receipts.is_none());
}

pub fn the_server_status_round_trips(backend: &dyn StatusBackend) {
    assert!(backend.read_server().is_none());
    let server = ServerStatus {
        format: fts_status::STATUS_FORMAT,
        updated: Published::from_unix_seconds(1_795_626_000),
        revocation: true,
        crl_next_update: None,
        crl_number: Some(3),
        crl_reload_failing: None,
        revoked_serials: vec!["0a1b2c".into()],
    };
    backend.write_server(&server).unwrap();
    assert_eq!(backend.read_server(), Some(server));
}

pub fn a_host_whose_state_was_lost_starts_afresh(backend: &dyn StatusBackend) {
    poll(backend, "web-01", 0, at(0));
    let first = arrival("web-01", 1, None, 1);
    store(backend, &[first.clone(), arrival("web-01", 2, Some(first.hash), 2)]);
    // Re-imaged with its certificate: a new chain from 1, naming no previous receipt.
    let mut again = arrival("web-01", 1, None, 1);
    again.hash = FileHash::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    store(backend, std::slice::from_ref(&again));
    let log = backend.receipts().unwrap();
    assert_eq!(log.lines.len(), 3, "the new chain's first receipt is stored");
    let web = backend.client(&id("web-01")).unwrap().unwrap();
    let book = web.receipts.unwrap();
    assert_eq!((book.stored, book.stored_head, book.restarts), (1, Some(again.hash), 1));
    assert_eq!(web.entries.len(), 1, "what the old chain said is not what the host has");
}

/// One `#[test]` per test of the suite, for a backend's own test file:
/// `suite_tests!(backend)`, where `fn backend(test: &str) -> Option<(K, B)>` makes a
/// fresh, empty backend `B` (and `K`, what must live as long as it: a temp folder, a
/// database), or `None` when the test must skip (it says why). Every test of the
/// suite is listed here once, so no backend can leave one out.
#[macro_export]
macro_rules! suite_tests {
    ($make:path) => {
        $crate::suite_tests!(
            @each $make;
            a_poll_is_recorded_and_read_back,
            an_unchanged_poll_is_noted_and_its_time_shown_after_a_flush,
            every_host_is_read_in_batches_as_a_whole_read_shows_it,
            what_was_offered_is_recorded_for_a_known_host,
            receipts_are_stored_in_order_and_update_their_host,
            the_receipts_of_a_thousand_hosts_at_once_are_all_stored,
            a_forgotten_host_is_gone_and_its_receipts_stay_as_evidence,
            the_server_status_round_trips,
            a_host_whose_state_was_lost_starts_afresh,
        );
    };
    (@each $make:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let Some((_keep, backend)) = $make(stringify!($name)) else { return };
                suite::$name(&backend);
            }
        )*
    };
}
