//! Replays every file of the client fuzz corpus (`fuzz/corpus/poll_answer/`) through the
//! same calls as the fuzz target, on the stable toolchain, so CI catches a regression
//! without nightly or cargo-fuzz. Also writes the seed corpus (an ignored test) and
//! checks that each seed reaches the path of the client it was written for.

include!("../fuzz/poll_answer.rs");

use std::path::{Path, PathBuf};

use fts_net::client::PollError;
use fts_proto::Statement;
use fts_proto::{
    Done, ErrorCode, ErrorFrame, FileHash, FileHeader, FileName, Published, RejectReason, ServerFrame, Target,
};
use fts_trust::SigningKey;
use sha2::{Digest, Sha256};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/poll_answer")
}

#[test]
fn every_fuzz_corpus_input_is_handled_without_panicking() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| poll_answer(&data));
        assert!(outcome.is_ok(), "{} panicked", path.display());
        count += 1;
    }
    assert!(count >= 10, "the seed corpus is in {}", corpus_dir().display());
}

/// A genuine `file` frame and its body, signed by `key`.
fn file(key: &SigningKey, target: &str, seq: u64, name: &str, body: &[u8], published: u64) -> Vec<u8> {
    let statement = Statement {
        target: Target::parse(target).unwrap(),
        seq: fts_proto::Seq::new(seq).unwrap(),
        file_name: FileName::parse(name).unwrap(),
        file_size: body.len() as u64,
        file_hash: FileHash::from_digest(Sha256::digest(body).into()),
        published: Published::from_unix_seconds(1_795_000_000 + published),
    };
    let signature = key.sign(&statement);
    let mut bytes = ServerFrame::File(FileHeader::new(statement, key.key_id(), signature)).encode().unwrap();
    bytes.extend_from_slice(body);
    bytes
}

fn done(more: bool) -> Vec<u8> {
    ServerFrame::Done(Done { more, poll_after: 60, ..Done::default() }).encode().unwrap()
}

fn error(code: ErrorCode) -> Vec<u8> {
    let frame = ErrorFrame { code, message: "fuzz".into(), retry_after: Some(30) };
    ServerFrame::Error(frame).encode().unwrap()
}

/// What a seed must make the client do.
#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// The poll completes, installing this many files and reporting nothing.
    Installed(usize),
    /// The poll completes and reports this reason.
    Reported(RejectReason),
    /// The server's error frame ends the poll.
    Refused,
    /// The poll fails as a whole (a frame that does not parse, a body cut short...).
    Failed,
}

/// The seeds: named answers, each aimed at one path of the client.
fn seeds() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let key = SigningKey::from_seed(&FUZZ_KEY_SEED);
    let other = SigningKey::from_seed(&[0x11; 32]);
    let cat = |parts: &[Vec<u8>]| parts.concat();
    let a = file(&key, "all", 1, "a.txt", b"hello", 0);
    let mut bad_signature = a.clone();
    let at = bad_signature.windows(13).position(|w| w == b"\"signature\":\"").unwrap() + 13;
    bad_signature[at] = if bad_signature[at] == b'A' { b'B' } else { b'A' };
    let mut wrong_body = a.clone();
    *wrong_body.last_mut().unwrap() = b'!';
    let large = FUZZ_MAX_FILE_SIZE as usize + 1;
    let mut too_large = file(&key, "web-01", 1, "big.bin", &vec![0u8; large], 0);
    too_large.truncate(too_large.len() - large);
    vec![
        ("done", done(false), Installed(0)),
        ("done-more", done(true), Installed(0)),
        ("error-busy", error(ErrorCode::Busy), Refused),
        ("file-done", cat(&[a.clone(), done(false)]), Installed(1)),
        (
            "three-targets",
            cat(&[
                a.clone(),
                file(&key, "web-01", 1, "b.bin", b"web-01's own", 1),
                file(&key, "group:web", 1, "c.conf", b"for the group", 2),
                done(false),
            ]),
            Installed(3),
        ),
        (
            "new-version",
            cat(&[a.clone(), file(&key, "all", 2, "a.txt", b"hello again", 1), done(false)]),
            Installed(2),
        ),
        (
            "identical-again",
            cat(&[a.clone(), file(&key, "web-01", 1, "a.txt", b"hello", 0), done(false)]),
            Installed(1),
        ),
        (
            "superseded",
            cat(&[file(&key, "all", 1, "a.txt", b"new", 5), file(&key, "web-01", 1, "a.txt", b"old", 1)]),
            Reported(RejectReason::Superseded),
        ),
        ("replay", cat(&[a.clone(), a.clone(), done(false)]), Reported(RejectReason::Replay)),
        ("gap", cat(&[file(&key, "all", 2, "a.txt", b"hello", 0), done(false)]), Reported(RejectReason::Gap)),
        (
            "wrong-target",
            cat(&[file(&key, "db-01", 1, "a.txt", b"hello", 0), done(false)]),
            Reported(RejectReason::WrongTarget),
        ),
        (
            "untrusted-key",
            cat(&[file(&other, "all", 1, "a.txt", b"hello", 0), done(false)]),
            Reported(RejectReason::UntrustedKey),
        ),
        ("bad-signature", cat(&[bad_signature, done(false)]), Reported(RejectReason::Signature)),
        ("hash-mismatch", cat(&[wrong_body, done(false)]), Reported(RejectReason::HashMismatch)),
        ("body-cut-short", a[..a.len() - 2].to_vec(), Failed),
        ("too-large", too_large, Reported(RejectReason::TooLarge)),
        ("file-then-error", cat(&[a.clone(), error(ErrorCode::Internal)]), Refused),
        ("no-done", a, Failed),
        ("garbage", b"\x00\x05hello\xff\xfe".to_vec(), Failed),
        ("empty", Vec::new(), Failed),
    ]
}

/// Writes the seed corpus:
/// `cargo test -p fts-net --test fuzz_corpus -- --ignored write_the_seed_corpus`.
#[test]
#[ignore = "writes files into the source tree"]
fn write_the_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes, _) in seeds() {
        std::fs::write(corpus_dir().join(format!("seed-{name}")), bytes).unwrap();
    }
}

#[test]
fn each_seed_reaches_the_path_it_was_written_for() {
    for (name, bytes, expect) in seeds() {
        let got = match poll_answer(&bytes) {
            Ok(outcome) if outcome.reported.is_empty() => Expect::Installed(outcome.installed.len()),
            Ok(outcome) => Expect::Reported(outcome.reported[0].reason.clone()),
            Err(PollError::Refused(_)) => Expect::Refused,
            Err(_) => Expect::Failed,
        };
        assert_eq!(got, expect, "seed {name}");
    }
}
