//! The log as a server serves it: [`LogWatch`] follows `log/leaves`, `log/checkpoint`
//! and `cosignatures/` of a store opened read-only (each file reached without
//! following a link, like the journal and blobs) and keeps a [`ServedLog`]: the newest
//! checkpoint whose leaves the store holds in full and whose root and heads the
//! leaves reproduce, with every cosignature line over that exact text, and the trees
//! its proofs are cut from. The server holds no key: it checks nothing a host does
//! not check again; it only refuses to serve a checkpoint its own leaves contradict.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Seek, SeekFrom};
use std::sync::{Arc, Mutex};

use fts_fs::{Dir, FileIdentity, FileStat};
use fts_log::heads::HeadsTree;
use fts_log::merkle::{Tree, leaf_hash};
use fts_proto::checkpoint::{Checkpoint, Note};
use fts_proto::{HeadProof, LogFrame, LogHash, ProtoError, RotationProof, ServerFrame, Target};

use crate::log::{self, CHECKPOINT, COSIGNATURES, LEAVES, LOG, StoredCheckpoint};

/// A checkpoint ready to serve, with the trees its proofs come from.
#[derive(Debug)]
pub struct ServedLog {
    /// The checkpoint's text, parsed.
    pub checkpoint: Checkpoint,
    /// The note sent to hosts: the text, the release key's signature and every
    /// cosignature line held for this exact text.
    pub note: String,
    /// The newest time among the cosignature lines (Unix seconds), unverified: for
    /// the operator's metric, never for a decision.
    pub newest_cosignature: Option<u64>,
    tree: Tree,
    heads: HeadsTree,
    /// Every rotation the checkpoint covers, with its proof (sent in every frame).
    rotations: Vec<RotationProof>,
    /// The parts of `log` frames that hosts share, by (shared targets, `log-size`,
    /// rotation): the note, the consistency proof, the rotations and the head proofs
    /// of `all` and the groups, computed once per checkpoint ([`Self::frame`]).
    frames: Mutex<HashMap<FrameKey, Arc<LogFrame>>>,
}

/// What the shared part of a `log` frame depends on besides the checkpoint: the
/// client's targets but its own (`all` and its groups), the size it has verified and
/// the newest rotation it knows. Without the client's own target, a few keys serve a
/// whole fleet: keyed by every target, the cache held one encoded frame per host (2
/// KiB each, 100 MiB at 50,000 hosts).
type FrameKey = (Vec<Target>, u64, Option<u64>);

/// The most shared parts kept per checkpoint (then the cache starts again): far more
/// than the groups times the log sizes hosts are at.
const MAX_CACHED_FRAMES: usize = 4_096;

impl ServedLog {
    /// The checkpoint's size: leaves below it can be served.
    pub fn size(&self) -> u64 {
        self.checkpoint.size
    }

    /// The leaf hash at `index`, to compare with an entry about to be sent.
    pub fn leaf(&self, index: u64) -> Option<LogHash> {
        (index < self.size()).then(|| self.tree.leaf(index)).flatten()
    }

    /// The inclusion proof of leaf `index` in the checkpoint.
    pub fn inclusion(&self, index: u64) -> Option<Vec<LogHash>> {
        self.tree.inclusion_proof(index, self.size()).ok()
    }

    /// The consistency proof from `from` leaves to the checkpoint (`None` when
    /// `from` is larger than the checkpoint).
    pub fn consistency(&self, from: u64) -> Option<Vec<LogHash>> {
        if from == 0 || from == self.size() {
            return (from <= self.size()).then(Vec::new);
        }
        self.tree.consistency_proof(from, self.size()).ok()
    }

    /// The proof of `target`'s head in the checkpoint.
    pub fn head_proof(&self, target: &Target) -> HeadProof {
        self.heads.prove(target)
    }

    /// The encoded `log` frame for a client of `targets` that has verified `log_size`
    /// leaves (not above the checkpoint's size): the note, the consistency proof and a
    /// head proof per target. What hosts share is computed once per checkpoint; the
    /// head proof of the client's own target (cheap: a few hashes of the stored tree)
    /// and the encoding are made per poll.
    pub fn frame(
        &self,
        targets: &[Target],
        log_size: u64,
        rotation: Option<u64>,
    ) -> Result<Vec<u8>, ProtoError> {
        let (own, shared): (Vec<&Target>, Vec<&Target>) =
            targets.iter().partition(|t| matches!(t, Target::Client(_)));
        let key = (shared.iter().map(|t| (*t).clone()).collect::<Vec<_>>(), log_size, rotation);
        let common = {
            let mut frames = self.frames.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match frames.get(&key) {
                Some(frame) => Arc::clone(frame),
                None => {
                    let frame = Arc::new(LogFrame {
                        checkpoint: self.note.clone(),
                        consistency: self.consistency(log_size).unwrap_or_default(),
                        heads: key.0.iter().map(|t| (t.clone(), self.head_proof(t))).collect(),
                        rotations: (self.rotations.iter())
                            .filter(|r| rotation.is_none_or(|known| r.rotation.statement.number > known))
                            .cloned()
                            .collect(),
                    });
                    if frames.len() >= MAX_CACHED_FRAMES {
                        frames.clear();
                    }
                    frames.insert(key, Arc::clone(&frame));
                    frame
                }
            }
        };
        let mut frame = LogFrame::clone(&common);
        frame.heads.extend(own.into_iter().map(|t| (t.clone(), self.head_proof(t))));
        ServerFrame::Log(frame).encode()
    }
}

/// Follows a store's log files and keeps the servable checkpoint.
#[derive(Debug, Default)]
pub struct LogWatch {
    /// `log/`, kept open while the store's `log` names the same folder (one `stat`
    /// a look instead of an open).
    log_dir: Option<(Arc<Dir>, (u64, u64))>,
    leaves_identity: Option<FileIdentity>,
    leaves_end: u64,
    tree: Tree,
    kinds: Vec<log::LeafKind>,
    checkpoint_identity: Option<FileIdentity>,
    cosignatures_identity: Option<FileIdentity>,
    /// What was last refused, so each problem is logged once.
    refused: Option<String>,
    served: Option<Arc<ServedLog>>,
}

impl LogWatch {
    /// The checkpoint served now, if any.
    pub fn served(&self) -> Option<Arc<ServedLog>> {
        self.served.clone()
    }

    /// `log/` of `store`: the handle kept, or a new one when the name now holds
    /// another folder.
    fn log_dir(&mut self, store: &Dir) -> Option<Arc<Dir>> {
        let seen = store.stat(LOG).ok().map(|stat| (stat.dev, stat.ino));
        match (&self.log_dir, seen) {
            (Some((dir, identity)), Some(now)) if *identity == now => Some(Arc::clone(dir)),
            (_, Some(_)) => {
                let dir = Arc::new(store.open_dir(LOG).ok()?);
                let identity = dir.metadata().ok().map(|stat| (stat.dev, stat.ino))?;
                self.log_dir = Some((Arc::clone(&dir), identity));
                Some(dir)
            }
            (_, None) => {
                self.log_dir = None;
                None
            }
        }
    }

    /// Looks at the log files again; true when what is served changed. Cheap when
    /// nothing changed: four `stat` calls (`log/`, its two files, `cosignatures/`).
    pub fn refresh(&mut self, store: &Dir) -> bool {
        let Some(log) = self.log_dir(store) else { return false };
        let leaves_changed = self.refresh_leaves(&log);
        let checkpoint = log.stat(CHECKPOINT).ok().map(|s| s.identity());
        let cosignatures = store.stat(COSIGNATURES).ok().map(|s| s.identity());
        let files_changed =
            checkpoint != self.checkpoint_identity || cosignatures != self.cosignatures_identity;
        if !leaves_changed && !files_changed {
            return false;
        }
        self.checkpoint_identity = checkpoint;
        self.cosignatures_identity = cosignatures;
        let Some(stored) = self.read_checkpoint(&log) else {
            return false;
        };
        match self.servable(&stored.checkpoint) {
            Ok(heads) => {
                self.refused = None;
                self.serve(store, stored, heads);
            }
            Err(why) => {
                if self.refused.as_deref() != Some(&why) {
                    tracing::warn!(size = stored.checkpoint.size, %why, "not serving the store's newest checkpoint yet; still serving the previous one");
                    self.refused = Some(why);
                }
                // The previous checkpoint may have gained cosignatures meanwhile; it is
                // served again only while the leaves held still reproduce it.
                if let Some(previous) = self.served.clone()
                    && let Ok(heads) = self.servable(&previous.checkpoint)
                {
                    let note = strip_cosignatures(&previous.note);
                    self.serve(
                        store,
                        StoredCheckpoint { note, checkpoint: previous.checkpoint.clone() },
                        heads,
                    );
                }
            }
        }
        true
    }

    /// Serves `stored` (checked by [`Self::servable`], which made its `heads`).
    fn serve(&mut self, store: &Dir, stored: StoredCheckpoint, heads: HeadsTree) {
        let (note, newest) = with_cosignatures(store, &stored);
        let mut tree = self.tree.clone();
        tree.truncate(stored.checkpoint.size);
        let size = stored.checkpoint.size;
        let rotations = (self.kinds.iter().enumerate())
            .take(usize::try_from(size).unwrap_or(usize::MAX))
            .filter_map(|(index, kind)| match kind {
                log::LeafKind::Rotation(rotation) => Some(RotationProof {
                    rotation: (**rotation).clone(),
                    log_index: index as u64,
                    inclusion: tree.inclusion_proof(index as u64, size).ok()?,
                }),
                _ => None,
            })
            .collect();
        self.served = Some(Arc::new(ServedLog {
            checkpoint: stored.checkpoint,
            note,
            newest_cosignature: newest,
            tree,
            heads,
            rotations,
            frames: Mutex::default(),
        }));
    }

    /// The heads tree of `checkpoint` made from the leaves held, or why it cannot be
    /// served from them.
    fn servable(&self, checkpoint: &Checkpoint) -> Result<HeadsTree, String> {
        let held = self.tree.len();
        if checkpoint.size > held {
            return Err(format!(
                "it covers {} leaves, this store holds {held} (a copy in progress?)",
                checkpoint.size
            ));
        }
        if self.tree.root(checkpoint.size).ok() != Some(checkpoint.root) {
            return Err("its root is not the root of this store's leaves".into());
        }
        let heads = HeadsTree::new(&log::heads_of(&self.kinds[..checkpoint.size as usize]));
        if heads.root() != checkpoint.heads_root || heads.count() != checkpoint.heads_count {
            return Err("its heads are not the heads of this store's leaves".into());
        }
        Ok(heads)
    }

    fn read_checkpoint(&mut self, log: &Dir) -> Option<StoredCheckpoint> {
        let text = read_note(log, CHECKPOINT)?;
        match StoredCheckpoint::parse(text) {
            Ok(stored) => Some(stored),
            Err(why) => {
                tracing::warn!(%why, "the store's log/checkpoint is not a checkpoint note");
                None
            }
        }
    }

    /// Reads leaves appended since the last look (or all of them again when the
    /// file was replaced or shrank). True when the leaves changed.
    fn refresh_leaves(&mut self, log: &Dir) -> bool {
        let Ok(stat) = log.stat(LEAVES) else { return false };
        let now = stat.identity();
        if Some(now) == self.leaves_identity {
            return false;
        }
        let Ok(file) = log.open_file(LEAVES) else { return false };
        let appended =
            self.leaves_identity.is_some_and(|before| now.same_file(&before) && now.len >= self.leaves_end);
        if !appended {
            self.tree = Tree::new();
            self.kinds.clear();
            self.leaves_end = 0;
        }
        let mut handle = &file;
        if handle.seek(SeekFrom::Start(self.leaves_end)).is_err() {
            return false;
        }
        let read = match log::read_leaves(&mut BufReader::with_capacity(1 << 16, handle), self.leaves_end) {
            Ok(read) => read,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's log/leaves");
                return false;
            }
        };
        for leaf in &read.leaves {
            let Some(kind) = log::leaf_kind(leaf) else {
                // Not a leaf fts writes: nothing after it can be proved; stop here.
                tracing::warn!(
                    index = self.tree.len(),
                    "log/leaves holds a leaf that is neither a statement nor a withdrawal; serving the leaves before it"
                );
                break;
            };
            self.tree.push(leaf_hash(leaf));
            self.kinds.push(kind);
        }
        self.leaves_end = read.end;
        self.leaves_identity =
            FileStat::of_file(&file, std::path::Path::new(LEAVES)).ok().map(|s| s.identity());
        true
    }
}

/// The note in the file `name` of `dir` (never through a link), if it is one a host
/// could accept: at most a note's length, UTF-8.
fn read_note(dir: &Dir, name: impl AsRef<std::ffi::OsStr>) -> Option<String> {
    let bytes = dir.read_bounded(name, fts_proto::checkpoint::MAX_NOTE_LEN as u64).ok()?;
    String::from_utf8(bytes).ok()
}

/// The note with only its text and the release key's lines (those named by the origin).
fn strip_cosignatures(note: &str) -> String {
    match Note::parse(note) {
        Ok(mut parsed) => {
            let origin = parsed.text.lines().next().unwrap_or_default().to_owned();
            parsed.signatures.retain(|line| line.name == origin);
            parsed.render()
        }
        Err(_) => note.to_owned(),
    }
}

/// The release-signed note with the cosignature lines of every cosignature file over
/// exactly its text added (one per name, the newest), and the newest line's time.
fn with_cosignatures(store: &Dir, stored: &StoredCheckpoint) -> (String, Option<u64>) {
    let Ok(mut note) = Note::parse(&stored.note) else {
        return (stored.note.clone(), None);
    };
    let origin = stored.checkpoint.origin.as_str().to_owned();
    let mut lines: BTreeMap<String, (u64, fts_proto::checkpoint::NoteSignature)> = BTreeMap::new();
    for cosigned in cosignature_notes(store) {
        let Ok(parsed) = Note::parse(&cosigned) else { continue };
        if parsed.text != note.text {
            continue;
        }
        for line in parsed.signatures {
            if line.name == origin || line.signature.len() != 8 + 64 {
                continue;
            }
            let mut time = [0u8; 8];
            time.copy_from_slice(&line.signature[..8]);
            let time = u64::from_be_bytes(time);
            let key = format!("{} {}", line.name, fts_proto::base64::encode(&line.key_hint));
            if lines.get(&key).is_none_or(|(t, _)| *t < time) {
                lines.insert(key, (time, line));
            }
        }
    }
    let newest = lines.values().map(|(t, _)| *t).max();
    note.signatures.retain(|line| line.name == origin);
    note.signatures.extend(lines.into_values().map(|(_, line)| line));
    note.signatures.truncate(fts_proto::checkpoint::MAX_SIGNATURE_LINES);
    (note.render(), newest)
}

fn cosignature_notes(store: &Dir) -> Vec<String> {
    let Ok(dir) = store.open_dir(COSIGNATURES) else { return Vec::new() };
    let Ok(names) = dir.entries() else { return Vec::new() };
    names
        .into_iter()
        .filter(|(name, kind)| *kind == fts_fs::FileKind::File && !name.to_string_lossy().starts_with('.'))
        .map(|(name, _)| name)
        .filter_map(|name| read_note(&dir, &name))
        .collect()
}
