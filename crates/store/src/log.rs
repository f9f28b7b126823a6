//! The store's log (docs/STORE.md, docs/PROTOCOL.md sections 7 and 8): every
//! published statement and every withdrawal is a leaf, in publish order, so leaf `i`
//! is the journal's entry or withdrawal at position `i`. Files:
//!
//! ```text
//! <store>/log/leaves          append-only: per leaf a u16 big-endian length, then its bytes
//! <store>/log/checkpoint      the newest checkpoint, a note signed by the release key
//! <store>/cosignatures/<id>   per timestamp key, the newest checkpoint it cosigned
//! ```
//!
//! The leaves are a copy of what the journal signs, kept apart so that a server (and
//! the timestamp signer) computes proofs from the log alone: a replica whose journal
//! lost its newest record still proves the head it cannot send, and its host notices.
//!
//! Publish order and crash safety ([`LogAppend`], under the publish lock): the log is
//! opened and checked before the journal record is written, so a publish it refuses
//! writes nothing; once the record is durable the missing leaves are appended and
//! flushed, then the checkpoint is signed and renamed into place. A crash before the
//! rename leaves leaves (or journal entries) beyond the checkpoint: servers serve only
//! what the checkpoint covers, and the next publish covers the rest.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use fts_fs::{Dir, FileMode, WriteOptions};
use fts_log::heads::{Head, HeadsTree};
use fts_log::merkle::{Tree, leaf_hash};
use fts_proto::checkpoint::{Checkpoint, Note, Origin};
use fts_proto::{
    ROTATE_TAG, RawKey, RotateStatement, RotationSignature, STATEMENT_TAG, Seq, SignedRotation, Signer,
    Target, WITHDRAW_TAG,
};

use crate::entry::Entry;
use crate::error::{Result, StoreError};

/// The log folder in a store.
pub const LOG: &str = "log";
/// The leaves file, inside [`LOG`].
pub const LEAVES: &str = "leaves";
/// The checkpoint file, inside [`LOG`].
pub const CHECKPOINT: &str = "checkpoint";
/// The cosignature folder in a store, one file per timestamp key.
pub const COSIGNATURES: &str = "cosignatures";

/// The longest cosignature file read (a note is at most 8 KiB).
const MAX_COSIGNATURE_FILE: u64 = 16 * 1024;

/// The log leaf of an entry: its statement, key id and signature.
pub fn entry_leaf(entry: &Entry) -> Vec<u8> {
    entry.leaf()
}

/// What a leaf is about, read from its bytes: the head it moves or the entry it
/// withdraws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeafKind {
    /// An entry (`fts-file-v1`): `target`'s head becomes `seq`.
    Entry {
        /// Its target.
        target: Target,
        /// Its seq.
        seq: u64,
    },
    /// A withdrawal (`fts-withdraw-v1`) of entry `seq` of `target`.
    Withdrawal {
        /// The withdrawn entry's target.
        target: Target,
        /// The withdrawn entry's seq.
        seq: Seq,
    },
    /// A rotation of the release key (`fts-rotate-v1`), as signed.
    Rotation(Box<SignedRotation>),
}

/// The kind of a leaf (its tag line, then its target and seq lines; a withdrawal's
/// origin comes first), or `None` for bytes that are no leaf fts writes.
pub fn leaf_kind(leaf: &[u8]) -> Option<LeafKind> {
    let text = std::str::from_utf8(leaf).ok()?;
    let mut lines = text.split('\n');
    match lines.next()? {
        STATEMENT_TAG => {
            let target = Target::parse(lines.next()?).ok()?;
            let seq = lines.next()?.parse().ok()?;
            Some(LeafKind::Entry { target, seq })
        }
        WITHDRAW_TAG => {
            let _origin = lines.next()?;
            let target = Target::parse(lines.next()?).ok()?;
            let seq = Seq::new(lines.next()?.parse().ok()?)?;
            Some(LeafKind::Withdrawal { target, seq })
        }
        ROTATE_TAG => parse_rotation(leaf).map(|r| LeafKind::Rotation(Box::new(r))),
        _ => None,
    }
}

/// A rotation leaf read back: its statement, then its `key-id`/`signature` pairs.
/// `None` unless the bytes are exactly what [`SignedRotation::leaf`] writes.
fn parse_rotation(leaf: &[u8]) -> Option<SignedRotation> {
    let text = std::str::from_utf8(leaf).ok()?;
    let lines: Vec<&str> = text.strip_suffix('\n')?.split('\n').collect();
    let raw = |s: &str| fts_proto::base64::decode_fixed(s).map(RawKey);
    let (head, pairs) = lines.split_at_checked(7)?;
    let statement = RotateStatement {
        origin: Origin::parse(head[1]).ok()?,
        number: head[2].parse().ok()?,
        retired: raw(head[3])?,
        key: raw(head[4])?,
        next: fts_proto::FileHash::parse(head[5]).ok()?,
        time: fts_proto::Published::parse(head[6]).ok()?,
    };
    let mut signatures = Vec::new();
    for pair in pairs.chunks(2) {
        let [id, sig] = pair else { return None };
        signatures.push(RotationSignature {
            key_id: serde_json::from_value(serde_json::Value::String(id.strip_prefix("key-id ")?.to_owned()))
                .ok()?,
            signature: serde_json::from_value(serde_json::Value::String(
                sig.strip_prefix("signature ")?.to_owned(),
            ))
            .ok()?,
        });
    }
    let rotation = SignedRotation { statement, signatures };
    (rotation.leaf() == leaf).then_some(rotation)
}

/// The target and seq a statement leaf is about, or `None` for any other leaf.
pub fn leaf_target_seq(leaf: &[u8]) -> Option<(Target, u64)> {
    match leaf_kind(leaf)? {
        LeafKind::Entry { target, seq } => Some((target, seq)),
        LeafKind::Withdrawal { .. } | LeafKind::Rotation(_) => None,
    }
}

/// The leaves read from a leaves file: their bytes and where the last whole one ends.
#[derive(Debug, Default, Clone)]
pub struct Leaves {
    /// Each leaf's bytes, in log order.
    pub leaves: Vec<Vec<u8>>,
    /// The offset just past the last whole leaf (a torn tail starts there).
    pub end: u64,
}

impl Leaves {
    /// The tree of the first `size` leaves (all of them when there are fewer).
    pub fn tree(&self, size: u64) -> Tree {
        let mut tree = Tree::new();
        for leaf in self.leaves.iter().take(usize::try_from(size).unwrap_or(usize::MAX)) {
            tree.push(leaf_hash(leaf));
        }
        tree
    }
}

/// Reads whole leaves from `reader`, positioned at a leaf boundary, until the end or
/// a torn tail (a length or leaf cut short), which is left unread.
pub fn read_leaves(reader: &mut impl Read, start: u64) -> io::Result<Leaves> {
    let mut out = Leaves { leaves: Vec::new(), end: start };
    loop {
        let mut len = [0u8; 2];
        if !read_whole(reader, &mut len)? {
            return Ok(out);
        }
        let mut leaf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if !read_whole(reader, &mut leaf)? {
            return Ok(out);
        }
        out.end += 2 + leaf.len() as u64;
        out.leaves.push(leaf);
    }
}

/// Fills `buf`, or says false when the input ends first.
fn read_whole(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The heads of `leaves`: per target, its greatest seq and its withdrawn seqs.
pub fn heads_of(leaves: &[LeafKind]) -> BTreeMap<Target, Head> {
    let mut heads: BTreeMap<Target, Head> = BTreeMap::new();
    for leaf in leaves {
        match leaf {
            LeafKind::Entry { target, seq } => {
                let head = heads.entry(target.clone()).or_default();
                head.seq = head.seq.max(*seq);
            }
            LeafKind::Withdrawal { target, seq } => {
                let head = heads.entry(target.clone()).or_default();
                if let Err(at) = head.withdrawn.binary_search(seq) {
                    head.withdrawn.insert(at, *seq);
                }
            }
            LeafKind::Rotation(_) => {}
        }
    }
    heads
}

/// The checkpoint of a log: its tree at `leaves.len()` leaves and their heads.
pub fn checkpoint_of(origin: &Origin, tree: &Tree, leaves: &[LeafKind]) -> Result<Checkpoint> {
    let size = leaves.len() as u64;
    let root = tree.root(size).map_err(|e| log_error(format!("cannot compute the log's root: {e}")))?;
    let heads = HeadsTree::new(&heads_of(leaves));
    Ok(Checkpoint {
        origin: origin.clone(),
        size,
        root,
        heads_count: heads.count(),
        heads_root: heads.root(),
    })
}

/// `fts.local/<16 random hex>`: a name no other log has.
fn default_origin() -> Result<Origin> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| log_error(format!("cannot draw a random log origin: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Origin::parse(&format!("fts.local/{hex}"))
        .map_err(|e| log_error(format!("the default log origin is not valid: {e}")))
}

fn log_error(detail: String) -> StoreError {
    StoreError::Log { detail }
}

/// A checkpoint note read from a file: its text parsed, and the note as it is.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    /// The note, verbatim.
    pub note: String,
    /// Its text, parsed.
    pub checkpoint: Checkpoint,
}

impl StoredCheckpoint {
    /// Parses a checkpoint note (signatures are not checked here: a host and the
    /// timestamp signer check them).
    pub fn parse(note: String) -> std::result::Result<StoredCheckpoint, String> {
        let parsed = Note::parse(&note).map_err(|e| e.to_string())?;
        let checkpoint = Checkpoint::parse_text(&parsed.text).map_err(|e| e.to_string())?;
        Ok(StoredCheckpoint { note, checkpoint })
    }
}

/// Reads `<store>/log/checkpoint`: `None` when there is none yet.
pub fn read_checkpoint(store_dir: &Path) -> Result<Option<StoredCheckpoint>> {
    let path = store_dir.join(LOG).join(CHECKPOINT);
    let bytes = match fts_fs::read_bounded(&path, MAX_COSIGNATURE_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let note = String::from_utf8(bytes)
        .map_err(|_| log_error(format!("{} is not a checkpoint: it is not UTF-8", path.display())))?;
    StoredCheckpoint::parse(note)
        .map(Some)
        .map_err(|why| log_error(format!("{} is not a checkpoint: {why}", path.display())))
}

/// The cosigned checkpoints in `<store>/cosignatures/`, each with its file name.
/// Files that are not checkpoint notes are skipped with a warning (one bad file must
/// not stop a server from serving the others').
pub fn read_cosigned(store_dir: &Path) -> Result<Vec<(String, StoredCheckpoint)>> {
    let dir = store_dir.join(COSIGNATURES);
    let listing = match fs::read_dir(&dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", &dir)(e)),
    };
    let mut out = Vec::new();
    for item in listing {
        let item = item.map_err(StoreError::io("list", &dir))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // temps of a copy in progress
        }
        let path = item.path();
        let read = fts_fs::read_bounded(&path, MAX_COSIGNATURE_FILE)
            .map_err(|e| fts_proto::ErrorChain(&e).to_string())
            .and_then(|bytes| String::from_utf8(bytes).map_err(|_| "it is not UTF-8".to_owned()));
        match read {
            Ok(note) => match StoredCheckpoint::parse(note) {
                Ok(stored) => out.push((name, stored)),
                Err(why) => {
                    tracing::warn!(file = %path.display(), %why, "skipping a cosignature file that is not a checkpoint note")
                }
            },
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable cosignature file")
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The log of a store, opened under the publish lock **before** a publish writes its
/// journal record: every check that can refuse the publish is made here, so a store
/// the log refuses (restored from an old backup, a log that disagrees with its
/// journal, another origin) gets nothing written; [`LogAppend::sign`] then adds the
/// publish's leaves and signs the checkpoint once the record is durable.
pub struct LogAppend {
    log_dir: PathBuf,
    leaves_path: PathBuf,
    leaves: File,
    /// Where the leaves file's whole leaves end: appends go there.
    end: u64,
    tree: Tree,
    kinds: Vec<LeafKind>,
    origin: Origin,
    /// Leaves the file lacks (a publish that died before its leaves, then this one's),
    /// each with its length prefix, appended by [`LogAppend::sign`].
    pending: Vec<u8>,
}

impl LogAppend {
    /// Opens the log of `store_dir` whose journal holds `leaves` (all its records'
    /// leaves, in order): reads the leaves file (truncating a torn tail), checks it
    /// holds the journal's, and checks the tree of the journal extends the store's own
    /// checkpoint and every checkpoint of its log cosigned in `cosignatures/`.
    /// `origin` names a log that has no checkpoint yet.
    pub fn open(
        store_dir: &Path,
        leaves: impl IntoIterator<Item = Vec<u8>>,
        origin: Option<&Origin>,
    ) -> Result<LogAppend> {
        let log_dir = store_dir.join(LOG);
        fs::create_dir_all(&log_dir).map_err(StoreError::io("create", &log_dir))?;
        let previous = read_checkpoint(store_dir)?;
        let origin = match (&previous, origin) {
            (Some(prev), Some(given)) if prev.checkpoint.origin != *given => {
                return Err(log_error(format!(
                    "the store's log is named {}, not {given}: a log keeps its origin for ever (hosts pin it)",
                    prev.checkpoint.origin
                )));
            }
            (Some(prev), _) => prev.checkpoint.origin.clone(),
            (None, Some(given)) => given.clone(),
            (None, None) => {
                let origin = default_origin()?;
                tracing::info!(origin = %origin, "naming the store's new log (no origin was given)");
                origin
            }
        };
        let leaves_path = log_dir.join(LEAVES);
        let (file, end, stored) = open_leaves(&leaves_path)?;
        let mut append = LogAppend {
            log_dir,
            leaves_path,
            leaves: file,
            end,
            tree: Tree::new(),
            kinds: Vec::new(),
            origin,
            pending: Vec::new(),
        };
        for (i, leaf) in leaves.into_iter().enumerate() {
            match stored.get(i) {
                Some(held) if *held != leaf => {
                    return Err(log_error(format!(
                        "leaf {i} of {} is not the journal's record {i}: the log and the journal disagree. Nothing was published",
                        append.leaves_path.display()
                    )));
                }
                Some(_) => {}
                None => append.queue(&leaf)?,
            }
            append.push(&leaf)?;
        }
        if stored.len() > append.kinds.len() {
            return Err(log_error(format!(
                "{} holds {} leaves but the journal only {}: the journal lost records the log holds (a store restored from an old backup?). Nothing was published. Restore the store from the freshest replica (docs/OPERATIONS.md)",
                append.leaves_path.display(),
                stored.len(),
                append.kinds.len()
            )));
        }
        if let Some(prev) = &previous {
            check_extends(&append.tree, &prev.checkpoint, "the store's own previous checkpoint")?;
        }
        for (name, cosigned) in read_cosigned(store_dir)? {
            if cosigned.checkpoint.origin == append.origin {
                check_extends(
                    &append.tree,
                    &cosigned.checkpoint,
                    &format!("the checkpoint cosigned in {COSIGNATURES}/{name}"),
                )?;
            }
        }
        Ok(append)
    }

    /// The log's origin (what a withdrawal names).
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Adds a leaf to the tree and the heads.
    fn push(&mut self, leaf: &[u8]) -> Result<()> {
        let kind = leaf_kind(leaf)
            .ok_or_else(|| log_error("a journal record made a leaf fts cannot read".into()))?;
        self.tree.push(leaf_hash(leaf));
        self.kinds.push(kind);
        Ok(())
    }

    fn queue(&mut self, leaf: &[u8]) -> Result<()> {
        let len = u16::try_from(leaf.len())
            .map_err(|_| log_error(format!("a leaf of {} bytes does not fit the leaves file", leaf.len())))?;
        self.pending.extend_from_slice(&len.to_be_bytes());
        self.pending.extend_from_slice(leaf);
        Ok(())
    }

    /// Adds `new` (the leaves of the record just made durable), appends every leaf
    /// the file lacks and flushes them, then signs the checkpoint of the whole log and
    /// renames it into place.
    pub fn sign<S: Signer + ?Sized>(mut self, new: &[Vec<u8>], signer: &S) -> Result<Checkpoint> {
        for leaf in new {
            self.push(leaf)?;
            self.queue(leaf)?;
        }
        if !self.pending.is_empty() {
            let mut handle = &self.leaves;
            handle.seek(SeekFrom::Start(self.end)).map_err(StoreError::io("seek in", &self.leaves_path))?;
            fts_fs::append_durably(&self.leaves, &self.pending, &self.leaves_path)?;
        }
        let checkpoint = checkpoint_of(&self.origin, &self.tree, &self.kinds)?;
        let note = signer.sign_checkpoint(&checkpoint);
        let log = Dir::open(&self.log_dir)?;
        log.write_atomic(
            CHECKPOINT,
            note.as_bytes(),
            &WriteOptions {
                label: "checkpoint",
                mode: FileMode::LessUmask(0o666),
                durable: true,
                overwrite: true,
            },
        )?;
        tracing::info!(origin = %self.origin, size = checkpoint.size, "signed the log's checkpoint");
        Ok(checkpoint)
    }
}

/// Under the publish lock, with all of the journal's leaves: brings the log up to
/// the journal and signs its checkpoint (`fts log init`).
pub fn append_and_sign<S: Signer + ?Sized>(
    store_dir: &Path,
    leaves: impl IntoIterator<Item = Vec<u8>>,
    signer: &S,
    origin: Option<&Origin>,
) -> Result<Checkpoint> {
    LogAppend::open(store_dir, leaves, origin)?.sign(&[], signer)
}

/// Refuses a log that does not extend `older` (`what` names it in the error):
/// smaller, or another root at its size.
pub fn check_extends(tree: &Tree, older: &Checkpoint, what: &str) -> Result<()> {
    let size = tree.len();
    if older.size > size {
        return Err(log_error(format!(
            "{what} covers {} leaves, but this store's log has only {size}: it is older than what hosts may have seen (a store restored from an old backup?). Restore it from the freshest replica (docs/OPERATIONS.md), check it with `fts log verify --against DIR`",
            older.size
        )));
    }
    match tree.root(older.size) {
        Ok(root) if root == older.root => Ok(()),
        _ => Err(log_error(format!(
            "this store's log at size {} is not the one {what} signs: signing on would fork the log. Restore the store from the freshest replica (docs/OPERATIONS.md)",
            older.size
        ))),
    }
}

/// Opens the leaves file and truncates a torn tail. Returns the file, where its
/// leaves end, and the leaves it holds.
fn open_leaves(path: &PathBuf) -> Result<(File, u64, Vec<Vec<u8>>)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(StoreError::io("open", path))?;
    let read = read_leaves(&mut BufReader::with_capacity(1 << 16, &file), 0)
        .map_err(StoreError::io("read", path))?;
    let len = file.metadata().map_err(StoreError::io("inspect", path))?.len();
    if read.end != len {
        tracing::warn!(leaves = %path.display(), "truncating the torn tail left by an interrupted publish");
        fts_fs::truncate_durably(&file, read.end, path)?;
    }
    Ok((file, read.end, read.leaves))
}
