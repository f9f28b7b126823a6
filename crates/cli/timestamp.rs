//! `fts timestamp`: the timestamp signer, which no human renews (docs/OPERATIONS.md).
//! On a machine of its own, beside a copy of the store, it cosigns the newest
//! checkpoint (C2SP tlog-cosignature) within seconds of its appearing and again every
//! `--every`, so that hosts can tell a fresh answer from a frozen one.
//!
//! It cosigns a checkpoint only if a trusted release key signed it and it extends the
//! last one it cosigned: the same size and root, or a larger one whose consistency
//! proof (computed from the store's `log/leaves`, checked against the root it kept)
//! holds. It never dates a cosignature before its last. Its own state file keeps
//! that size, root and time; it is written before the cosignature, so a crash (kill
//! -9) between the two only means the same checkpoint is cosigned again.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use fts_fs::{FileMode, WriteOptions};
use fts_log::merkle::{Tree, verify_consistency};
use fts_proto::LogHash;
use fts_proto::checkpoint::MAX_NOTE_LEN;
use fts_proto::checkpoint::{Checkpoint, Note, Origin};
use fts_store::log::{CHECKPOINT, COSIGNATURES, LEAVES, LOG, read_checkpoint, read_leaves};
use fts_trust::TrustedKeys;
use fts_trust::note::{TimestampKey, verify_checkpoint, verify_checkpoint_any_origin};
use serde::{Deserialize, Serialize};

/// How often the checkpoint file is looked at: a new checkpoint is cosigned within
/// this (and the copy to the servers).
const LOOK_EVERY: Duration = Duration::from_secs(2);

const STATE_WRITE: WriteOptions =
    WriteOptions { label: "timestamp", mode: FileMode::LessUmask(0o600), durable: true, overwrite: true };

/// What the signer last cosigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct SignerState {
    origin: Origin,
    size: u64,
    root: LogHash,
    /// The time of its last cosignature (Unix seconds).
    time: u64,
}

/// `fts timestamp`'s settings.
pub struct Timestamp {
    pub store: PathBuf,
    pub key: TimestampKey,
    pub trusted: TrustedKeys,
    pub state: PathBuf,
    pub every: Duration,
    pub once: bool,
}

/// Runs the signer: once, or until stopped.
pub fn run(settings: &Timestamp) -> anyhow::Result<()> {
    tracing::info!(store = %settings.store.display(), key = %settings.key.public().name(), every_secs = settings.every.as_secs(), "timestamp signer started");
    if settings.once {
        let outcome = cosign_newest(settings)?;
        tracing::info!("{outcome}");
        return Ok(());
    }
    let mut last_seen: Option<Vec<u8>> = None;
    let mut last_signed = Instant::now().checked_sub(settings.every).unwrap_or_else(Instant::now);
    loop {
        let seen = fts_fs::read_bounded(&settings.store.join(LOG).join(CHECKPOINT), MAX_NOTE_LEN as u64).ok();
        let new = seen.is_some() && seen != last_seen;
        if new || last_signed.elapsed() >= settings.every {
            match cosign_newest(settings) {
                Ok(outcome) => {
                    tracing::info!("{outcome}");
                    last_signed = Instant::now();
                    last_seen = seen;
                }
                Err(e) => {
                    // Logged, and tried again: a checkpoint that is refused stays
                    // refused, and the operator must see why every time.
                    tracing::error!(error = %format!("{e:#}"), "not cosigning");
                    last_signed = Instant::now();
                    last_seen = seen;
                }
            }
        }
        std::thread::sleep(LOOK_EVERY);
    }
}

/// The release keys `--trust` leads to through the rotations in the store's log
/// (docs/PROTOCOL.md section 8.3), as a host walks them: a rotation counts only when
/// it reveals the committed key, signed by it. The checkpoint is then verified with
/// them; the leaves (rotations included) are checked against it by `check_extends`.
fn keys_after_rotations(settings: &Timestamp, note: &str) -> anyhow::Result<fts_trust::TrustedKeys> {
    let Some(origin) = fts_proto::Note::parse(note)
        .ok()
        .and_then(|n| fts_proto::Checkpoint::parse_text(&n.text).ok())
        .map(|c| c.origin)
    else {
        return Ok(settings.trusted.clone());
    };
    let path = settings.store.join(LOG).join(fts_store::log::LEAVES);
    let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let leaves = fts_store::log::read_leaves(&mut std::io::BufReader::new(file), 0)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let rotations: Vec<fts_proto::RotationProof> = (leaves.leaves.iter().enumerate())
        .filter_map(|(index, leaf)| match fts_store::log::leaf_kind(leaf) {
            Some(fts_store::log::LeafKind::Rotation(rotation)) => Some(fts_proto::RotationProof {
                rotation: *rotation,
                log_index: index as u64,
                inclusion: Vec::new(),
            }),
            _ => None,
        })
        .collect();
    if rotations.is_empty() {
        return Ok(settings.trusted.clone());
    }
    let (ring, _) =
        fts_trust::KeyRing::from_trusted(&settings.trusted).advance(&origin, &rotations).map_err(|why| {
            anyhow::anyhow!("a rotation of the release key in {} is refused: {why}", path.display())
        })?;
    Ok(ring.trusted_now())
}

/// Cosigns the store's newest checkpoint if it may; says what it did.
fn cosign_newest(settings: &Timestamp) -> anyhow::Result<String> {
    let path = settings.store.join(LOG).join(CHECKPOINT);
    let note = read_checkpoint(&settings.store)?
        .with_context(|| format!("{} does not exist: the store has no log yet", path.display()))?
        .note;
    let previous = load_state(&settings.state)?;
    let trusted = keys_after_rotations(settings, &note)?;
    let verified = match &previous {
        Some(state) => verify_checkpoint(&note, &state.origin, &trusted),
        None => verify_checkpoint_any_origin(&note, &trusted),
    }
    .with_context(|| format!("{} is not a checkpoint signed by a trusted release key", path.display()))?;
    let checkpoint = verified.checkpoint;
    if let Some(state) = &previous {
        check_extends(&settings.store, state, &checkpoint)?;
    }
    let now = unix_now();
    let time = previous.as_ref().map_or(now, |state| now.max(state.time));
    let state =
        SignerState { origin: checkpoint.origin.clone(), size: checkpoint.size, root: checkpoint.root, time };
    save_state(&settings.state, &state)?;

    let mut cosigned = verified.note;
    cosigned.signatures.retain(|line| line.name == checkpoint.origin.as_str());
    cosigned.signatures.push(settings.key.cosign(&checkpoint, time));
    write_cosignature(&settings.store, &settings.key, &cosigned)?;
    Ok(format!("cosigned the checkpoint of {} leaves at {time}", checkpoint.size))
}

/// Refuses a checkpoint that does not extend the last one cosigned.
fn check_extends(store: &Path, state: &SignerState, checkpoint: &Checkpoint) -> anyhow::Result<()> {
    if checkpoint.size < state.size {
        bail!(
            "the checkpoint covers {} leaves, fewer than the {} already cosigned: a rolled-back store (restored from an old backup?) is never cosigned",
            checkpoint.size,
            state.size
        );
    }
    if checkpoint.size == state.size {
        if checkpoint.root != state.root {
            bail!(
                "the checkpoint of {} leaves has another root than the one already cosigned at that size: a forked log is never cosigned",
                checkpoint.size
            );
        }
        return Ok(());
    }
    let tree = leaves_tree(store, checkpoint.size)?;
    let proof = tree
        .consistency_proof(state.size, checkpoint.size)
        .map_err(|e| anyhow::anyhow!("cannot compute the consistency proof: {e}"))?;
    verify_consistency(state.size, checkpoint.size, &state.root, &checkpoint.root, &proof).map_err(|e| {
        anyhow::anyhow!(
            "the checkpoint of {} leaves is not consistent with the one of {} already cosigned ({e}): a forked or rewritten log is never cosigned",
            checkpoint.size,
            state.size
        )
    })
}

/// The tree of the store's first `size` leaves.
fn leaves_tree(store: &Path, size: u64) -> anyhow::Result<Tree> {
    let path = store.join(LOG).join(LEAVES);
    let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let read = read_leaves(&mut BufReader::with_capacity(1 << 16, file), 0)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if (read.leaves.len() as u64) < size {
        bail!(
            "{} holds {} leaves, the checkpoint covers {size} (a copy in progress?)",
            path.display(),
            read.leaves.len()
        );
    }
    Ok(read.tree(size))
}

fn write_cosignature(store: &Path, key: &TimestampKey, note: &Note) -> anyhow::Result<()> {
    let dir = store.join(COSIGNATURES);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(key.public().key_id().to_string());
    let options =
        WriteOptions { label: "cosignature", mode: FileMode::Exact(0o644), durable: true, overwrite: true };
    fts_fs::write_atomic(&path, note.render().as_bytes(), &options)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn load_state(path: &Path) -> anyhow::Result<Option<SignerState>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("the timestamp signer's state {} is damaged; it is never reset by itself (a reset lets a rolled-back log be cosigned): find out why, then remove it to start again", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn save_state(path: &Path, state: &SignerState) -> anyhow::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).context("cannot encode the timestamp signer's state")?;
    fts_fs::write_atomic(path, &bytes, &STATE_WRITE)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
