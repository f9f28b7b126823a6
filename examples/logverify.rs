//! The host's log verification bench of `scripts/bench.sh` (row 6, issue 18): what a
//! host does with one answer from a log of 10^6 leaves, timed, and the bytes the log
//! adds to an answer.
//!
//!     logverify [--leaves N] [--iterations I]        defaults 1000000 and 1000
//!
//! The log: N statement leaves (`statement_leaf` over generated statements) for the
//! targets `web-01`, `all` and `group:web` in turn, the heads tree of their heads, and
//! a checkpoint signed by a fixed-seed release key and cosigned by a fixed-seed
//! timestamp key. Only the leaves a host verifies are signed (I of them, spread over
//! the log); the others carry fixed signature bytes: only their hashes make the tree.
//!
//! Each iteration `i` is one answer to a host that has verified the log at
//! `N - 1 - i % 1000` leaves (1 to 1,000 leaves back), carrying one entry. Timed:
//!
//! - `verify`: what `LogBook::check_frame` and `AnswerLog::check_entry`
//!   (crates/net/src/client/freshness.rs) compute, the same library calls in the same
//!   order: parse and verify the checkpoint note (release key, pinned origin), verify
//!   the cosignature, the consistency proof from the recorded size, the three head
//!   proofs, then the entry's inclusion proof (`AnswerLog::check_entry` itself, the
//!   leaf rebuilt from the header's fields);
//! - `decode + verify`: the same with the `log` frame and the `file` header decoded
//!   from their wire bytes first (`ServerFrame::decode`);
//! - `check_frame`: `LogBook::check_frame` and `check_entry` called directly, the log
//!   state (opened untimed from a `--log-checkpoint` at the recorded size) written by
//!   `check_frame` as it does after every answer, into a temporary folder under
//!   /dev/shm (tmpfs: its fsync costs nothing; on a disk add one durable write);
//! - (context) the entry's statement signature, checked before issue 18 already.
//!
//! Prints min, median and p90 in microseconds, then the sizes: the `log` frame for 1
//! and 3 targets and the `file` header with and without `log-index` + `inclusion`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flags::Flags;
use fts_log::heads::{HeadsTree, verify_head};
use fts_log::merkle::{Tree, leaf_hash, verify_consistency};
use fts_net::client::freshness::{AnswerLog, LogBook, LogSettings};
use fts_proto::checkpoint::{Checkpoint, Note, Origin, statement_leaf};
use fts_proto::{
    FileHash, FileHeader, FileName, KeyId, LogFrame, Published, Seq, ServerFrame, Signature, Statement,
    Target,
};
use fts_trust::note::{TimestampKey, verify_checkpoint, verify_cosignatures};
use fts_trust::{SigningKey, TrustedKeys};

#[path = "load/flags.rs"]
#[allow(dead_code, reason = "shared with loadgen, which uses every method")]
mod flags;

const TARGETS: [&str; 3] = ["web-01", "all", "group:web"];

fn statement(i: u64) -> Statement {
    let k = (i % 3) as usize;
    Statement {
        target: Target::parse(TARGETS[k]).expect("target"),
        seq: Seq::new(i / 3 + 1).expect("seq"),
        file_name: FileName::parse(&format!("pkg-{i}.deb")).expect("file name"),
        file_size: 1000 + i,
        file_hash: FileHash::parse(&format!("sha256:{:064x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15))
            .expect("hash"),
        published: Published::parse("2026-12-01T00:00:00Z").expect("published"),
    }
}

/// The heads of the first `size` leaves (leaf `i` is target `i % 3`, seq `i / 3 + 1`).
fn heads_at(size: u64) -> BTreeMap<Target, u64> {
    (0..3u64)
        .filter(|&k| size > k)
        .map(|k| (Target::parse(TARGETS[k as usize]).expect("target"), (size - 1 - k) / 3 + 1))
        .collect()
}

fn checkpoint_at(origin: &Origin, tree: &Tree, size: u64) -> Checkpoint {
    let heads = HeadsTree::from_seqs(&heads_at(size));
    Checkpoint {
        origin: origin.clone(),
        size,
        root: tree.root(size).expect("root"),
        heads_count: heads.count(),
        heads_root: heads.root(),
    }
}

struct Answer {
    recorded: u64,
    recorded_root: fts_proto::LogHash,
    recorded_note: String,
    frame: LogFrame,
    header: FileHeader,
    frame_bytes: Vec<u8>,
    header_bytes: Vec<u8>,
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(name: &str, samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    let median = at(0.5);
    println!(
        "{name:<44} min {:>8.1}  median {:>8.1}  p90 {:>8.1}  (us, {} runs)",
        samples[0],
        median,
        at(0.9),
        samples.len()
    );
    median
}

fn main() -> Result<(), String> {
    let flags = Flags::from_env();
    let n: u64 = flags.parsed_or("--leaves", 1_000_000)?;
    let iterations: u64 = flags.parsed_or("--iterations", 1000)?;
    if n < 2000 || iterations == 0 || iterations > n / 2 {
        return Err("--leaves must be at least 2000 and --iterations from 1 to half of it".into());
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_err(|e| e.to_string())?.as_secs();

    let release = SigningKey::from_seed(&[7; 32]);
    let stamp = TimestampKey::from_seed(&[9; 32]);
    let key_id: KeyId = release.key_id();
    let mut trusted = TrustedKeys::default();
    trusted.insert(release.public_key(), Path::new("bench")).map_err(|e| e.to_string())?;
    let stamps = vec![stamp.public()];
    let origin = Origin::parse("fts.bench/log").map_err(|e| e.to_string())?;
    let targets: Vec<Target> = TARGETS.iter().map(|t| Target::parse(t).expect("target")).collect();

    // The entries a host verifies: one per iteration, spread over the whole log.
    let stride = (n - 1) / iterations;
    let entry_index = |i: u64| n - 1 - i * stride;
    let signed: BTreeMap<u64, u64> = (0..iterations).map(|i| (entry_index(i), i)).collect();

    let t0 = Instant::now();
    let filler = Signature::from_bytes([0x5a; 64]);
    let mut tree = Tree::new();
    let mut headers: BTreeMap<u64, FileHeader> = BTreeMap::new();
    for i in 0..n {
        let st = statement(i);
        let signature = if signed.contains_key(&i) { release.sign(&st) } else { filler };
        tree.push(leaf_hash(&statement_leaf(&st, &key_id, &signature)));
        if signed.contains_key(&i) {
            headers.insert(i, FileHeader::new(st, key_id, signature));
        }
    }
    let checkpoint = checkpoint_at(&origin, &tree, n);
    let heads = HeadsTree::from_seqs(&heads_at(n));
    let mut note = Note::parse(&release.sign_checkpoint(&checkpoint)).map_err(|e| e.to_string())?;
    note.signatures.push(stamp.cosign(&checkpoint, now - 60));
    let note = note.render();
    let head_proofs: BTreeMap<Target, fts_proto::HeadProof> =
        targets.iter().map(|t| (t.clone(), heads.prove(t))).collect();

    let mut answers = Vec::new();
    for i in 0..iterations {
        let recorded = n - 1 - i % 1000;
        let index = entry_index(i);
        let mut header = headers[&index].clone();
        header.log_index = Some(index);
        header.inclusion = Some(tree.inclusion_proof(index, n).map_err(|e| e.to_string())?);
        let frame = LogFrame {
            checkpoint: note.clone(),
            consistency: tree.consistency_proof(recorded, n).map_err(|e| e.to_string())?,
            heads: head_proofs.clone(),
            rotations: Vec::new(),
        };
        let frame_bytes = ServerFrame::Log(frame.clone()).encode().map_err(|e| e.to_string())?;
        let header_bytes = ServerFrame::File(header.clone()).encode().map_err(|e| e.to_string())?;
        answers.push(Answer {
            recorded,
            recorded_root: tree.root(recorded).map_err(|e| e.to_string())?,
            recorded_note: release.sign_checkpoint(&checkpoint_at(&origin, &tree, recorded)),
            frame,
            header,
            frame_bytes,
            header_bytes,
        });
    }
    println!(
        "log of {n} leaves ({} signed), {} heads, checkpoint with 1 cosignature: built in {:.1} s",
        signed.len(),
        heads.count(),
        t0.elapsed().as_secs_f64()
    );

    // What check_frame + check_entry compute, step by step; panics on any failure.
    let verify = |frame: &LogFrame, header: &FileHeader, recorded: u64, root0: &fts_proto::LogHash| {
        let verified = verify_checkpoint(&frame.checkpoint, &origin, &trusted).expect("checkpoint");
        let cp = verified.checkpoint;
        let cosigned = verify_cosignatures(&verified.note, &cp, &stamps).expect("cosignature");
        assert_eq!(cosigned.len(), 1);
        verify_consistency(recorded, cp.size, root0, &cp.root, &frame.consistency).expect("consistency");
        for t in &targets {
            let proof = frame.heads.get(t).expect("head proof");
            verify_head(cp.heads_count, &cp.heads_root, t, proof).expect("head").expect("present");
        }
        AnswerLog::Verified {
            size: cp.size,
            root: cp.root,
            origin: cp.origin.clone(),
            withdrawn: Default::default(),
            keys: Default::default(),
        }
        .check_entry(header)
        .expect("inclusion");
    };

    let mut core = Vec::new();
    let mut decoded = Vec::new();
    let mut direct = Vec::new();
    let mut statement_sig = Vec::new();
    // One untimed pass first (caches, lazy tables).
    for a in answers.iter().take(50) {
        verify(&a.frame, &a.header, a.recorded, &a.recorded_root);
    }
    for a in &answers {
        let t = Instant::now();
        verify(&a.frame, &a.header, a.recorded, &a.recorded_root);
        core.push(micros(t.elapsed()));
    }
    for a in &answers {
        let t = Instant::now();
        let Ok(ServerFrame::Log(frame)) = ServerFrame::decode(&a.frame_bytes[2..]) else {
            panic!("log frame")
        };
        let Ok(ServerFrame::File(header)) = ServerFrame::decode(&a.header_bytes[2..]) else { panic!("file") };
        verify(&frame, &header, a.recorded, &a.recorded_root);
        decoded.push(micros(t.elapsed()));
    }
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() }
        .map_err(|e| e.to_string())?;
    for a in &answers {
        let settings = LogSettings {
            origin: Some(origin.clone()),
            initial_checkpoint: Some(a.recorded_note.clone()),
            timestamp_keys: stamps.clone(),
            ..LogSettings::default()
        };
        let _ = std::fs::remove_file(tmp.path().join("state.log"));
        let dir = fts_fs::Dir::open(tmp.path()).map_err(|e| e.to_string())?;
        let mut book = LogBook::open(settings, dir, "state".as_ref(), false).map_err(|e| e.to_string())?;
        assert_eq!(book.state().size, a.recorded);
        let t = Instant::now();
        let answer = book.check_frame(&a.frame, &trusted, &targets, now);
        answer.check_entry(&a.header).expect("inclusion");
        direct.push(micros(t.elapsed()));
        assert!(matches!(answer, AnswerLog::Verified { .. }), "{answer:?}");
        assert!(book.state().alarms.is_empty(), "{:?}", book.state().alarms);
    }
    for a in &answers {
        let t = Instant::now();
        trusted.verify(a.header.statement(), &a.header.key_id, &a.header.signature).expect("statement");
        statement_sig.push(micros(t.elapsed()));
    }

    println!("host verification of one answer (1 entry, 3 targets, 1 to 1000 leaves behind):");
    let median = report("verify (check_frame + check_entry steps)", &mut core);
    report("decode log + file frames, then verify", &mut decoded);
    report("LogBook::check_frame + check_entry, tmpfs", &mut direct);
    report("(context) statement signature, pre-issue-18", &mut statement_sig);
    println!("target: median under 500 us: {}", if median < 500.0 { "met" } else { "NOT met" });

    // Sizes.
    let json = |frame: &ServerFrame| frame.encode().map(|b| b.len() - 2).unwrap_or(0);
    let log_frame = |targets: &[Target], consistency: Vec<fts_proto::LogHash>| {
        json(&ServerFrame::Log(LogFrame {
            checkpoint: note.clone(),
            consistency,
            heads: targets.iter().map(|t| (t.clone(), heads.prove(t))).collect(),
            rotations: Vec::new(),
        }))
    };
    let behind = tree.consistency_proof(n - 1000, n).map_err(|e| e.to_string())?;
    let mut extra: Vec<f64> = answers
        .iter()
        .map(|a| {
            let mut bare = a.header.clone();
            bare.log_index = None;
            bare.inclusion = None;
            (json(&ServerFrame::File(a.header.clone())) - json(&ServerFrame::File(bare))) as f64
        })
        .collect();
    extra.sort_by(f64::total_cmp);
    let extra_median = extra[extra.len() / 2];
    println!(
        "answer size at {n} leaves (JSON bytes, without the 2-byte length; checkpoint note {} bytes):",
        note.len()
    );
    for (what, consistency) in [
        ("caught up (log-size = size)", Vec::new()),
        (&*format!("1000 leaves behind ({} hashes)", behind.len()), behind.clone()),
    ] {
        let (one, three) = (log_frame(&targets[..1], consistency.clone()), log_frame(&targets, consistency));
        println!("  log frame, {what}: 1 target {one}, 3 targets {three}");
    }
    println!(
        "  file header: + log-index + inclusion: median {extra_median:.0}, max {:.0} bytes more",
        extra[extra.len() - 1]
    );
    let three = log_frame(&targets, behind) as f64;
    let per_target = (three + 3.0 * extra_median) / 3.0;
    println!(
        "  per target (3 targets, 1000 behind, one entry each): {per_target:.0} bytes; target at most 2048: {}",
        if per_target <= 2048.0 { "met" } else { "NOT met" }
    );
    Ok(())
}
