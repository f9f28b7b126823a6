//! The hostile-server suite: the real `fts poll --once` binary against a test server
//! that speaks the protocol over real TLS with the sandbox's real server certificate
//! and sends, one case per test, a forged, misdirected, out-of-sequence, mis-named,
//! corrupted, truncated, oversized or unparsable answer (PROTOCOL.md section 6).
//!
//! Every case starts from a host that already installed `app.bin` v1 (web-01 seq 1)
//! and asserts, after the attack:
//! - the destination holds exactly what it held (app.bin v1 byte for byte, the client's
//!   own dot-files, an empty `.fts-partial/`), and nothing new appeared anywhere in the sandbox
//!   or beside it;
//! - the client exited by itself, with a status and not a signal, within 30 s: 3 when
//!   an entry was refused (the one-line reason names it), 1 when the poll itself failed;
//! - a refused entry is reported in the next request as {target, seq, reason};
//! - the next honest entry, at the very sequence number the attack used (or the next
//!   one, when a rule on signed fields applied the entry), installs afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::hostile_server::{Answer, End, HostileServer, done_frame};
use crate::common::{Run, Sandbox, run_bounded};
use fts_proto::Signature;
use fts_trust::SigningKey;
use rustls::SignatureScheme;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ID: &str = "web-01";
const DEST: &str = "incoming";
const V1: &[u8] = b"app v1: the genuine first release\n";
const V2: &[u8] = b"app v2: the genuine second release, a little longer\n";
const EVIL: &[u8] = b"#!/bin/sh\necho owned > /etc/motd\n";
const T1: &str = "2026-01-02T00:00:00Z";
const T2: &str = "2026-01-03T00:00:00Z";
const T3: &str = "2026-01-04T00:00:00Z";
const EARLIER: &str = "2026-01-01T00:00:00Z";
const TIB: u64 = 1 << 40;
/// A poll that has not ended by then is a hang.
const POLL_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------
// Signing raw statement bytes
// ---------------------------------------------------------------------------------

/// Signs arbitrary statement bytes with an Ed25519 key (through rustls' ring signer,
/// pure Ed25519 over the message), so that statements a `FileName` cannot hold can be
/// validly signed.
struct RawSigner {
    signer: Box<dyn rustls::sign::Signer>,
    key_id: String,
}

impl RawSigner {
    fn new(key: &SigningKey) -> RawSigner {
        let der = PrivatePkcs8KeyDer::from(key.to_pkcs8_v1_der().to_vec());
        let signing = rustls::crypto::ring::sign::any_eddsa_type(&der).expect("an Ed25519 key");
        let signer = signing.choose_scheme(&[SignatureScheme::ED25519]).expect("Ed25519 signer");
        RawSigner { signer, key_id: key.key_id().to_string() }
    }

    /// The base64 signature over `bytes`.
    fn sign(&self, bytes: &[u8]) -> String {
        let raw: [u8; 64] = self.signer.sign(bytes).expect("sign").try_into().expect("64 bytes");
        Signature::from_bytes(raw).to_string()
    }
}

/// The fields of a `file` header, as raw strings (any name, any target).
#[derive(Debug, Clone)]
struct Entry {
    target: String,
    seq: u64,
    name: String,
    size: u64,
    hash: String,
    published: String,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Entry {
    /// An entry for web-01 whose size and hash are those of `body`.
    fn of(seq: u64, name: &str, body: &[u8], published: &str) -> Entry {
        Entry {
            target: ID.to_owned(),
            seq,
            name: name.to_owned(),
            size: body.len() as u64,
            hash: sha256(body),
            published: published.to_owned(),
        }
    }

    /// The statement bytes of PROTOCOL.md section 5.
    fn statement(&self) -> Vec<u8> {
        format!(
            "fts-file-v1\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.target, self.seq, self.name, self.size, self.hash, self.published
        )
        .into_bytes()
    }

    /// The header carrying `key_id` and `signature` (whatever they sign).
    fn header(&self, key_id: &str, signature: &str) -> Value {
        json!({
            "type": "file",
            "target": self.target,
            "seq": self.seq,
            "file-name": self.name,
            "file-size": self.size,
            "file-hash": self.hash,
            "published": self.published,
            "key-id": key_id,
            "signature": signature,
        })
    }

    /// The header, validly signed by `key` over this very statement.
    fn signed(&self, key: &RawSigner) -> Value {
        self.header(&key.key_id, &key.sign(&self.statement()))
    }
}

/// A frame: the big-endian length and the header bytes.
fn frame(header: &[u8]) -> Vec<u8> {
    let mut bytes = u16::try_from(header.len()).expect("a header under 64 KiB").to_be_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes
}

/// A `file` frame: the header, then `body`.
fn file_frame(header: &Value, body: &[u8]) -> Vec<u8> {
    let mut bytes = frame(header.to_string().as_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// Frames followed by a `done` frame.
fn then_done(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.extend_from_slice(&done_frame());
    bytes
}

// ---------------------------------------------------------------------------------
// A host that already installed app.bin v1
// ---------------------------------------------------------------------------------

/// Everything outside the destination: each file's path and content, each folder.
type Snapshot = BTreeMap<PathBuf, Option<Vec<u8>>>;

fn walk(root: &Path, dir: &Path, skip: &Path, into: &mut Snapshot) {
    for entry in std::fs::read_dir(dir).expect("read a sandbox folder") {
        let entry = entry.expect("a folder entry");
        let path = entry.path();
        if path == skip {
            continue;
        }
        let rel = path.strip_prefix(root).expect("under the root").to_owned();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            into.insert(rel, None);
            walk(root, &path, skip, into);
        } else {
            into.insert(rel, Some(std::fs::read(&path).unwrap_or_default()));
        }
    }
}

/// Names a hostile answer might get written under, beside the sandbox.
fn hostile_names() -> Vec<String> {
    vec!["evil".into(), ".bashrc".into(), "app.bin".into(), "a".repeat(201)]
}

struct Host {
    sandbox: Sandbox,
    server: HostileServer,
    /// The sandbox's real release signing key.
    key: RawSigner,
}

impl Host {
    /// A sandbox provisioned with the real `fts keygen`, a hostile server with the real
    /// server certificate, and a first honest poll that installs app.bin v1 at seq 1.
    fn new() -> Host {
        let sandbox = Sandbox::new();
        sandbox.provision(&[(ID, &[])]);
        let server = HostileServer::start_in(&sandbox.join("certs"));
        let key = RawSigner::new(&SigningKey::load(&sandbox.join("certs/signing.key")).expect("signing.key"));
        let host = Host { sandbox, server, key };
        host.server.push(Answer::bytes(host.honest(1, V1, T1)));
        let run = host.poll(&[]);
        assert_eq!(run.code, 0, "the first honest poll installs v1: {run:#?}");
        assert!(run.stdout.contains("1 file(s) installed"), "{run:#?}");
        host.assert_destination(&[("app.bin", V1)]);
        host
    }

    /// `app.bin` with `body` at web-01 `seq`, validly signed, then `done`.
    fn honest(&self, seq: u64, body: &[u8], published: &str) -> Vec<u8> {
        then_done(file_frame(&Entry::of(seq, "app.bin", body, published).signed(&self.key), body))
    }

    fn dest(&self) -> PathBuf {
        self.sandbox.join(DEST)
    }

    /// `fts poll --once` against the hostile server.
    fn poll(&self, extra: &[&str]) -> Run {
        self.poll_at(self.server.addr, extra)
    }

    /// `fts poll --once` against `addr`, dialling 127.0.0.1.
    fn poll_at(&self, addr: SocketAddr, extra: &[&str]) -> Run {
        let server = format!("127.0.0.1:{}", addr.port());
        let mut args = vec!["poll", "--once", "--server", &server, "--id", ID, "--dest", DEST];
        args.extend_from_slice(extra);
        run_bounded(&mut self.sandbox.fts(&args), POLL_LIMIT)
    }

    fn requests(&self) -> Vec<Value> {
        self.server.requests()
    }

    /// The sandbox outside the destination, and the names beside the sandbox.
    fn snapshot(&self) -> (Snapshot, BTreeSet<String>) {
        let mut outside = Snapshot::new();
        walk(self.sandbox.path(), self.sandbox.path(), &self.dest(), &mut outside);
        (outside, self.beside())
    }

    fn beside(&self) -> BTreeSet<String> {
        let parent = self.sandbox.path().parent().expect("the sandbox has a parent");
        std::fs::read_dir(parent)
            .expect("list the sandbox's parent")
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    }

    /// The destination holds exactly `files` (and the client's own state and lock).
    fn assert_destination(&self, files: &[(&str, &[u8])]) {
        let mut listing: BTreeSet<String> = std::fs::read_dir(self.dest())
            .expect("list the destination")
            .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
            .collect();
        for own in [".fts-state.json", ".fts-state.json.log", ".fts-lock", ".fts-partial"] {
            assert!(listing.remove(own), "the client's {own} is in the destination: {listing:?}");
        }
        let partial = std::fs::read_dir(self.dest().join(".fts-partial")).expect("list the partial folder");
        assert_eq!(partial.count(), 0, "no body is left in the partial folder");
        let expected: BTreeSet<String> = files.iter().map(|(name, _)| (*name).to_owned()).collect();
        assert_eq!(listing, expected, "the destination holds exactly the expected files");
        for (name, contents) in files {
            let actual = std::fs::read(self.dest().join(name)).expect("read an installed file");
            assert!(actual == *contents, "{name} is not byte for byte what was installed: {actual:?}");
        }
    }

    /// Nothing unverified was installed and nothing was written outside the destination.
    fn assert_unchanged(&self, before: &(Snapshot, BTreeSet<String>)) {
        self.assert_destination(&[("app.bin", V1)]);
        let (outside, beside) = self.snapshot();
        let added: Vec<_> = outside.keys().filter(|k| !before.0.contains_key(*k)).collect();
        assert!(added.is_empty(), "new paths outside the destination: {added:?}");
        assert!(outside == before.0, "a file outside the destination changed");
        for name in hostile_names() {
            assert!(
                before.1.contains(&name) || !beside.contains(&name),
                "{name} appeared beside the sandbox"
            );
        }
    }
}

/// The `rejected` array of a request (absent: empty).
fn rejected(request: &Value) -> Vec<Value> {
    request.get("rejected").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The request's `since` for `target` (absent: 0).
fn since(request: &Value, target: &str) -> u64 {
    request["since"].get(target).and_then(Value::as_u64).unwrap_or(0)
}

fn report(target: &str, seq: u64, reason: &str) -> Value {
    json!({"target": target, "seq": seq, "reason": reason})
}

// ---------------------------------------------------------------------------------
// The three outcomes
// ---------------------------------------------------------------------------------

/// An entry refused by checks 1 to 4 or 6: exit 3 with the report in its one-line
/// reason, nothing changes, the entry is not applied but its target held (PROTOCOL.md
/// section 3.1.1): the client polls again at once, naming the target in `held` at the
/// entry it waits for and carrying the report. Once the hold's backoff (from
/// `--min-interval`, 1 s here, ending at the next whole second after it) has ended, the target is asked for again and the
/// honest entry at seq 2 installs. Returns the attack's run.
fn assert_refused(host: &Host, attack: Vec<u8>, extra: &[&str], expected: (&str, u64, &str)) -> Run {
    let (target, seq, reason) = expected;
    let mut extra = extra.to_vec();
    extra.extend(["--min-interval", "1s"]);
    let before = host.snapshot();
    let n = host.requests().len();
    host.server.push(Answer::bytes(attack));
    let run = host.poll(&extra);
    assert_eq!(run.code, 3, "a refused entry exits 3: {run:#?}");
    let lines = run.reason_lines();
    assert!(
        lines.iter().any(|l| l.contains(&format!("{target} seq {seq}: {reason}"))),
        "the one-line reason names the refused entry: {run:#?}"
    );
    host.assert_unchanged(&before);
    let requests = host.requests();
    assert_eq!(since(&requests[n], ID), 1);
    // An entry for a target that is not this host's holds nothing (there is nothing
    // of that target to wait for): the answer just ends, and the report goes with the
    // next request.
    let holds = reason != "wrong-target";
    let honest_request = if holds {
        assert_eq!(
            requests.len(),
            n + 2,
            "a refusal holds the target and polls again at once: {requests:#?}"
        );
        let repeat = &requests[n + 1];
        assert_eq!(
            repeat["held"][target],
            json!(2),
            "the target is held at the entry it waits for: {repeat}"
        );
        assert_eq!(rejected(repeat), vec![report(target, seq, reason)], "the repeat reports it: {repeat}");
        assert_eq!(since(repeat, ID), 1, "the refused entry was not applied: {repeat}");
        std::thread::sleep(Duration::from_millis(2100));
        n + 2
    } else {
        assert_eq!(requests.len(), n + 1, "no repeat poll: {requests:#?}");
        n + 1
    };

    host.server.push(Answer::bytes(host.honest(2, V2, T2)));
    let honest = host.poll(&extra);
    assert_eq!(honest.code, 0, "the honest entry at seq 2 installs: {honest:#?}");
    let next = &host.requests()[honest_request];
    assert!(next.get("held").is_none(), "the backoff ended: the target is asked for again: {next}");
    if holds {
        assert!(rejected(next).is_empty(), "the report was dropped once delivered: {next}");
    } else {
        assert_eq!(rejected(next), vec![report(target, seq, reason)], "the next request reports it: {next}");
    }
    host.assert_destination(&[("app.bin", V2)]);

    let after = host.poll(&extra);
    assert_eq!(after.code, 0, "{after:#?}");
    let last = host.requests().last().cloned().expect("a request");
    assert!(rejected(&last).is_empty(), "{last}");
    assert_eq!(since(&last, ID), 2);
    run
}

/// A failure of the poll itself: exit 1 with a one-line reason, nothing changes,
/// nothing is reported, and the honest entry at seq 2 then installs.
fn assert_poll_failed(host: &Host, attack: Answer, extra: &[&str]) -> Run {
    let before = host.snapshot();
    let n = host.requests().len();
    host.server.push(attack);
    let run = host.poll(extra);
    assert_eq!(run.code, 1, "a failed poll exits 1: {run:#?}");
    let lines = run.reason_lines();
    assert!(lines.len() == 1 && lines[0].starts_with("fts: error: "), "one line says why: {run:#?}");
    host.assert_unchanged(&before);
    assert_eq!(host.requests().len(), n + 1, "a failed poll is not repeated by --once");

    host.server.push(Answer::bytes(host.honest(2, V2, T2)));
    let honest = host.poll(extra);
    assert_eq!(honest.code, 0, "the honest entry at seq 2 installs: {honest:#?}");
    let next = &host.requests()[n + 1];
    assert!(rejected(next).is_empty(), "a failed poll reports no entry: {next}");
    assert_eq!(since(next, ID), 1, "nothing was applied: {next}");
    host.assert_destination(&[("app.bin", V2)]);
    run
}

/// A validly signed entry applied without installing by a rule on signed fields
/// (check 5): exit 3, nothing installed, the client polls again at once and that
/// request carries the report and the applied seq; the honest entry at the next seq
/// then installs.
fn assert_applied_without_install(host: &Host, attack: Vec<u8>, extra: &[&str], expected: (u64, &str)) {
    let (seq, reason) = expected;
    let before = host.snapshot();
    let n = host.requests().len();
    host.server.push(Answer::bytes(attack));
    let run = host.poll(extra);
    assert_eq!(run.code, 3, "an entry applied by a rule is reported: exit 3: {run:#?}");
    assert!(
        run.reason_lines().iter().any(|l| l.contains(&format!("{ID} seq {seq}: {reason}"))),
        "the one-line reason names the entry: {run:#?}"
    );
    host.assert_unchanged(&before);
    let requests = host.requests();
    assert_eq!(requests.len(), n + 2, "the client polled again at once: {requests:#?}");
    let repeat = &requests[n + 1];
    assert_eq!(rejected(repeat), vec![report(ID, seq, reason)], "{repeat}");
    assert_eq!(since(repeat, ID), seq, "the entry was applied: {repeat}");

    host.server.push(Answer::bytes(host.honest(seq + 1, V2, T3)));
    let honest = host.poll(extra);
    assert_eq!(honest.code, 0, "the honest entry at seq {} installs: {honest:#?}", seq + 1);
    let next = &host.requests()[n + 2];
    assert!(rejected(next).is_empty(), "the report was delivered already: {next}");
    host.assert_destination(&[("app.bin", V2)]);
}

// ---------------------------------------------------------------------------------
// The helper itself
// ---------------------------------------------------------------------------------

#[test]
fn the_raw_signer_signs_exactly_what_fts_signs() {
    let key = SigningKey::generate().expect("a key");
    let entry = Entry::of(7, "app.bin", V1, T1);
    let statement = fts_proto::Statement {
        target: fts_proto::Target::parse(ID).expect("target"),
        seq: fts_proto::Seq::new(7).expect("seq"),
        file_name: fts_proto::FileName::parse("app.bin").expect("name"),
        file_size: V1.len() as u64,
        file_hash: fts_proto::FileHash::parse(&sha256(V1)).expect("hash"),
        published: fts_proto::Published::parse(T1).expect("published"),
    };
    assert_eq!(entry.statement(), statement.to_bytes());
    assert_eq!(RawSigner::new(&key).sign(&entry.statement()), key.sign(&statement).to_string());
}

// ---------------------------------------------------------------------------------
// Forged signatures and keys
// ---------------------------------------------------------------------------------

#[test]
fn a_genuine_signature_moved_onto_other_content_is_refused_as_signature() {
    let host = Host::new();
    // The genuine signature of v2 at seq 2, carried by a header for other content.
    let genuine = Entry::of(2, "app.bin", V2, T2);
    let forged = Entry::of(2, "app.bin", EVIL, T2);
    let header = forged.header(&host.key.key_id, &host.key.sign(&genuine.statement()));
    assert_refused(&host, then_done(file_frame(&header, EVIL)), &[], (ID, 2, "signature"));
}

#[test]
fn a_signature_made_for_another_seq_is_refused_as_signature() {
    let host = Host::new();
    let entry = Entry::of(2, "app.bin", EVIL, T2);
    let other_seq = Entry { seq: 3, ..entry.clone() };
    let header = entry.header(&host.key.key_id, &host.key.sign(&other_seq.statement()));
    assert_refused(&host, then_done(file_frame(&header, EVIL)), &[], (ID, 2, "signature"));
}

#[test]
fn an_entry_signed_by_a_key_not_trusted_is_refused_as_untrusted_key() {
    let host = Host::new();
    let stranger = RawSigner::new(&SigningKey::generate().expect("a key"));
    let header = Entry::of(2, "app.bin", EVIL, T2).signed(&stranger);
    assert_refused(&host, then_done(file_frame(&header, EVIL)), &[], (ID, 2, "untrusted-key"));
}

#[test]
fn an_entry_signed_by_another_key_under_the_trusted_key_id_is_refused_as_signature() {
    let host = Host::new();
    let stranger = RawSigner::new(&SigningKey::generate().expect("a key"));
    let entry = Entry::of(2, "app.bin", EVIL, T2);
    let header = entry.header(&host.key.key_id, &stranger.sign(&entry.statement()));
    assert_refused(&host, then_done(file_frame(&header, EVIL)), &[], (ID, 2, "signature"));
}

// ---------------------------------------------------------------------------------
// Targets and sequence numbers
// ---------------------------------------------------------------------------------

#[test]
fn another_clients_entry_is_refused_as_wrong_target() {
    let host = Host::new();
    let entry = Entry { target: "web-02".into(), ..Entry::of(1, "app.bin", EVIL, T2) };
    let attack = then_done(file_frame(&entry.signed(&host.key), EVIL));
    assert_refused(&host, attack, &[], ("web-02", 1, "wrong-target"));
}

#[test]
fn a_replayed_sequence_number_is_refused_as_replay() {
    let host = Host::new();
    // seq 1 is applied already; a validly signed entry at seq 1 with other content.
    let header = Entry::of(1, "app.bin", EVIL, T2).signed(&host.key);
    assert_refused(&host, then_done(file_frame(&header, EVIL)), &[], (ID, 1, "replay"));
}

#[test]
fn a_skipped_sequence_number_is_refused_as_a_gap_and_the_skipped_entry_still_installs() {
    let host = Host::new();
    let header = Entry::of(3, "other.bin", EVIL, T2).signed(&host.key);
    assert_refused(&host, then_done(file_frame(&header, EVIL)), &[], (ID, 3, "gap"));
    // seq 2 is installed; the genuine seq 3 comes next and installs too.
    let genuine3 = then_done(file_frame(&Entry::of(3, "other.bin", V1, T3).signed(&host.key), V1));
    host.server.push(Answer::bytes(genuine3));
    let run = host.poll(&[]);
    assert_eq!(run.code, 0, "{run:#?}");
    host.assert_destination(&[("app.bin", V2), ("other.bin", V1)]);
}

// ---------------------------------------------------------------------------------
// File names (validly signed: the statement bytes are signed as they are)
// ---------------------------------------------------------------------------------

fn assert_bad_name_refused(name: &str) {
    let host = Host::new();
    let header = Entry::of(2, name, EVIL, T2).signed(&host.key);
    assert_refused(&host, then_done(file_frame(&header, EVIL)), &[], (ID, 2, "bad-name"));
}

#[test]
fn a_validly_signed_name_with_dot_dot_slash_is_refused_as_bad_name() {
    assert_bad_name_refused("../evil");
}

#[test]
fn a_validly_signed_name_with_a_leading_dot_is_refused_as_bad_name() {
    assert_bad_name_refused(".bashrc");
}

#[test]
fn a_validly_signed_name_of_201_bytes_is_refused_as_bad_name() {
    assert_bad_name_refused(&"a".repeat(201));
}

#[test]
fn a_validly_signed_absolute_path_is_refused_as_bad_name() {
    assert_bad_name_refused("/tmp/evil");
}

#[test]
fn a_validly_signed_name_with_a_newline_is_refused_as_bad_name() {
    // A newline could shift the statement's lines: the name must be refused as such.
    assert_bad_name_refused("evil\n2\napp.bin");
}

// ---------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------

#[test]
fn a_body_whose_hash_differs_over_an_installed_name_is_refused_and_the_old_file_stays() {
    let host = Host::new();
    let header = Entry::of(2, "app.bin", V2, T2).signed(&host.key);
    let mut body = V2.to_vec();
    body[0] ^= 0x20;
    let last = body.len() - 1;
    body[last] = b'!';
    assert_eq!(body.len(), V2.len());
    assert_refused(&host, then_done(file_frame(&header, &body)), &[], (ID, 2, "hash-mismatch"));
}

#[test]
fn a_body_cut_short_by_a_clean_close_fails_the_poll() {
    let host = Host::new();
    let header = Entry::of(2, "app.bin", V2, T2).signed(&host.key);
    let attack = file_frame(&header, &V2[..V2.len() / 2]);
    let run = assert_poll_failed(&host, Answer { bytes: attack, end: End::CloseNotify }, &[]);
    assert!(run.stderr.contains("cut short"), "{run:#?}");
}

#[test]
fn a_body_cut_short_by_a_dropped_connection_fails_the_poll() {
    let host = Host::new();
    let header = Entry::of(2, "app.bin", V2, T2).signed(&host.key);
    let attack = file_frame(&header, &V2[..V2.len() / 2]);
    assert_poll_failed(&host, Answer { bytes: attack, end: End::Abrupt }, &[]);
}

/// A validly signed claim of 1 TiB for web-01 seq 2, and a few bytes of it.
fn one_tib_claim(host: &Host) -> Vec<u8> {
    let entry = Entry { size: TIB, ..Entry::of(2, "app.bin", EVIL, T2) };
    file_frame(&entry.signed(&host.key), EVIL)
}

#[test]
fn a_claimed_size_of_one_tib_with_a_few_bytes_sent_fails_cleanly_without_allocating_it() {
    let host = Host::new();
    let before = host.snapshot();
    let n = host.requests().len();
    // A maximum above 1 TiB, so that check 5 does not stop it first.
    let extra = ["--max-file-size", "2TiB", "--min-interval", "1s"];
    host.server.push(Answer::bytes(one_tib_claim(&host)));
    let run = host.poll(&extra);
    host.assert_unchanged(&before);
    // Either the free-space check refuses it before a byte is stored (a local failure,
    // reported as install-failed), or the body is cut short (a failed poll).
    let expected_report = match run.code {
        3 => {
            assert!(
                run.reason_lines().iter().any(|l| l.contains("web-01 seq 2: install-failed")),
                "{run:#?}"
            );
            assert!(run.stderr.contains("free space"), "the log says why: {run:#?}");
            // Held (not enough space), with the report in the repeat at once.
            let repeat = &host.requests()[n + 1];
            assert_eq!(repeat["held"][ID], json!(2), "{repeat}");
            assert_eq!(rejected(repeat), vec![report(ID, 2, "install-failed")], "{repeat}");
            std::thread::sleep(Duration::from_millis(2100));
            n + 2
        }
        1 => {
            assert!(run.stderr.contains("cut short"), "{run:#?}");
            assert_eq!(host.requests().len(), n + 1, "a failed poll is not repeated");
            n + 1
        }
        other => panic!("exit {other}: neither a free-space refusal nor a truncation: {run:#?}"),
    };

    host.server.push(Answer::bytes(host.honest(2, V2, T2)));
    let honest = host.poll(&extra);
    assert_eq!(honest.code, 0, "{honest:#?}");
    let next = &host.requests()[expected_report];
    assert!(rejected(next).is_empty(), "{next}");
    assert_eq!(since(next, ID), 1, "{next}");
    host.assert_destination(&[("app.bin", V2)]);
}

#[test]
fn a_claimed_size_of_one_tib_is_held_as_too_large_by_default() {
    let host = Host::new();
    let attack = then_done(one_tib_claim(&host));
    assert_refused(&host, attack, &[], (ID, 2, "too-large"));
}

// ---------------------------------------------------------------------------------
// Headers that do not parse
// ---------------------------------------------------------------------------------

#[test]
fn a_garbage_header_fails_the_poll() {
    let host = Host::new();
    // Deterministic noise; the first byte makes it invalid UTF-8 whatever follows.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut garbage = vec![0xff];
    garbage.extend((0..200).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state.to_le_bytes()[0]
    }));
    let mut attack = frame(&garbage);
    attack.extend_from_slice(V2);
    let run = assert_poll_failed(&host, Answer::bytes(attack), &[]);
    assert!(run.stderr.contains("breaks the protocol"), "{run:#?}");
}

#[test]
fn a_header_that_is_not_a_json_object_fails_the_poll() {
    let host = Host::new();
    let run = assert_poll_failed(&host, Answer::bytes(then_done(frame(b"[1,2]"))), &[]);
    assert!(run.stderr.contains("breaks the protocol"), "{run:#?}");
}

// ---------------------------------------------------------------------------------
// Rules on signed fields
// ---------------------------------------------------------------------------------

#[test]
fn an_older_publication_of_an_installed_name_is_applied_without_install_as_superseded() {
    let host = Host::new();
    let header = Entry::of(2, "app.bin", EVIL, EARLIER).signed(&host.key);
    assert_applied_without_install(&host, then_done(file_frame(&header, EVIL)), &[], (2, "superseded"));
}

// ---------------------------------------------------------------------------------
// Server certificates
// ---------------------------------------------------------------------------------

/// The client refuses the server's certificate: exit 1 with a one-line reason about
/// the certificate, no request sent, nothing changes; the honest server's entry at
/// seq 2 then installs.
fn assert_server_certificate_refused(host: &Host, impostor: &HostileServer) {
    let before = host.snapshot();
    let n = host.requests().len();
    // The impostor holds a validly signed entry: only the certificate check stops it.
    impostor.push(Answer::bytes(host.honest(2, EVIL, T2)));
    let run = host.poll_at(impostor.addr, &[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let lines = run.reason_lines();
    assert!(
        lines.len() == 1 && lines[0].starts_with("fts: error: ") && lines[0].contains("certificate"),
        "one line says the certificate was refused: {run:#?}"
    );
    assert!(impostor.requests().is_empty(), "no request reached the impostor");
    let started = Instant::now();
    while impostor.handshakes_failed() == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "the impostor saw no failed handshake");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(impostor.pending_answers(), 1, "the impostor could not answer");
    host.assert_unchanged(&before);

    host.server.push(Answer::bytes(host.honest(2, V2, T2)));
    let honest = host.poll(&[]);
    assert_eq!(honest.code, 0, "{honest:#?}");
    let next = &host.requests()[n];
    assert!(rejected(next).is_empty(), "{next}");
    assert_eq!(since(next, ID), 1, "{next}");
    host.assert_destination(&[("app.bin", V2)]);
}

#[test]
fn a_server_certificate_from_another_ca_is_refused() {
    let host = Host::new();
    let other = host.sandbox.join("other-ca");
    let dir = other.display().to_string();
    crate::common::expect_success(&mut host.sandbox.fts(["keygen", "ca", "--dir", &dir]));
    crate::common::expect_success(&mut host.sandbox.fts([
        "keygen",
        "server",
        "--dir",
        &dir,
        "--name",
        "localhost",
        "--name",
        "127.0.0.1",
    ]));
    // The impostor still accepts this host's client certificate.
    let impostor = HostileServer::start(
        &other.join("server.crt"),
        &other.join("server.key"),
        &host.sandbox.join("certs/ca.crt"),
    );
    assert_server_certificate_refused(&host, &impostor);
}

#[test]
fn a_server_certificate_for_another_name_is_refused() {
    let host = Host::new();
    let copy = host.sandbox.join("certs-other-name");
    std::fs::create_dir(&copy).expect("create the copy");
    for entry in std::fs::read_dir(host.sandbox.join("certs")).expect("list certs") {
        let entry = entry.expect("an entry");
        if entry.file_type().expect("file type").is_file() {
            std::fs::copy(entry.path(), copy.join(entry.file_name())).expect("copy a credential");
        }
    }
    let dir = copy.display().to_string();
    crate::common::expect_success(&mut host.sandbox.fts([
        "keygen",
        "server",
        "--dir",
        &dir,
        "--name",
        "other.example",
        "--force",
    ]));
    // Issued by the real CA, but for other.example, while the client dials 127.0.0.1.
    let impostor = HostileServer::start_in(&copy);
    assert_server_certificate_refused(&host, &impostor);
}

// ---------------------------------------------------------------------------------
// Resumed transfers (PROTOCOL.md section 3.2.1)
// ---------------------------------------------------------------------------------

/// A 2 MiB release (large enough to be received into a kept file), and its header.
fn large_release(host: &Host) -> (Vec<u8>, Value) {
    let body: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
    let header = Entry::of(2, "app.bin", &body, T2).signed(&host.key);
    (body, header)
}

/// Cuts the transfer of `body` after `kept` bytes (the connection dropped), and
/// returns the next request's resume item.
fn cut_after(host: &Host, header: &Value, body: &[u8], kept: usize) -> Value {
    host.server.push(Answer { bytes: file_frame(header, &body[..kept]), end: End::Abrupt });
    let cut = host.poll(&[]);
    assert_eq!(cut.code, 1, "a cut body fails the poll: {cut:#?}");
    host.server.push(Answer::bytes(done_frame()));
    let _ = host.poll(&[]);
    let asked = host.requests().last().cloned().expect("a request");
    let resume = asked["resume"].as_array().cloned().unwrap_or_default();
    assert_eq!(resume, vec![json!({"file-hash": sha256(body), "offset": kept})], "{asked}");
    resume[0].clone()
}

#[test]
fn a_server_that_ignores_the_resume_offset_sends_the_whole_file_which_installs() {
    let host = Host::new();
    let (body, header) = large_release(&host);
    cut_after(&host, &header, &body, 1536 << 10);
    // The whole file again, without `offset`: the kept prefix is not used.
    host.server.push(Answer::bytes(then_done(file_frame(&header, &body))));
    let run = host.poll(&[]);
    assert_eq!(run.code, 0, "{run:#?}");
    host.assert_destination(&[("app.bin", &body)]);
}

#[test]
fn a_resumed_body_installs_only_as_the_whole_signed_file() {
    let host = Host::new();
    let (body, header) = large_release(&host);
    let kept = 1536 << 10;
    cut_after(&host, &header, &body, kept);
    let mut resumed = header.clone();
    resumed["offset"] = json!(kept);
    host.server.push(Answer::bytes(then_done(file_frame(&resumed, &body[kept..]))));
    let run = host.poll(&[]);
    assert_eq!(run.code, 0, "{run:#?}");
    host.assert_destination(&[("app.bin", &body)]);
}

#[test]
fn a_resume_at_an_offset_the_host_did_not_ask_for_is_refused_and_the_target_held() {
    let host = Host::new();
    let (body, header) = large_release(&host);
    let kept = 1536 << 10;
    cut_after(&host, &header, &body, kept);
    let before = host.snapshot();
    let mut wrong = header.clone();
    wrong["offset"] = json!(kept - 4096);
    host.server.push(Answer::bytes(then_done(file_frame(&wrong, &body[kept - 4096..]))));
    let run = host.poll(&[]);
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(run.reason_lines().iter().any(|l| l.contains("web-01 seq 2: bad-header")), "{run:#?}");
    host.assert_unchanged(&before);
    let repeat = host.requests().last().cloned().expect("a request");
    assert_eq!(repeat["held"][ID], json!(2), "{repeat}");
    assert!(repeat.get("resume").is_none(), "the kept prefix was thrown away: {repeat}");
}
