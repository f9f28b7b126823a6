//! The store's log (docs/STORE.md, docs/PROTOCOL.md section 7): every published
//! statement is a leaf, in publish order, so leaf `i` is the journal's entry at
//! position `i`. Files:
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
use fts_log::heads::HeadsTree;
use fts_log::merkle::{Tree, leaf_hash};
use fts_proto::checkpoint::{Checkpoint, Note, Origin};
use fts_proto::{STATEMENT_TAG, Signer, Target, statement_leaf};

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
    statement_leaf(&entry.statement, &entry.key_id, &entry.signature)
}

/// The target and seq a leaf is about (its second and third lines), or `None` for
/// bytes that are not a statement leaf.
pub fn leaf_target_seq(leaf: &[u8]) -> Option<(Target, u64)> {
    let text = std::str::from_utf8(leaf).ok()?;
    let mut lines = text.split('\n');
    if lines.next()? != STATEMENT_TAG {
        return None;
    }
    let target = Target::parse(lines.next()?).ok()?;
    let seq = lines.next()?.parse().ok()?;
    Some((target, seq))
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

/// The heads of the first `size` leaves: per target, its greatest seq.
pub fn heads_of(targets: &[(Target, u64)]) -> BTreeMap<Target, u64> {
    let mut heads = BTreeMap::new();
    for (target, seq) in targets {
        let head = heads.entry(target.clone()).or_insert(0);
        *head = (*head).max(*seq);
    }
    heads
}

/// The checkpoint of a log: its tree at `size` leaves and the heads of those leaves.
pub fn checkpoint_of(origin: &Origin, tree: &Tree, targets: &[(Target, u64)]) -> Result<Checkpoint> {
    let size = targets.len() as u64;
    let root = tree.root(size).map_err(|e| log_error(format!("cannot compute the log's root: {e}")))?;
    let heads = HeadsTree::new(&heads_of(targets));
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
    targets: Vec<(Target, u64)>,
    origin: Origin,
    /// Leaves the file lacks (a publish that died before its leaves, then this one's),
    /// each with its length prefix, appended by [`LogAppend::sign`].
    pending: Vec<u8>,
}

impl LogAppend {
    /// Opens the log of `store_dir` whose journal holds `entries`: reads the leaves
    /// (truncating a torn tail), checks they are the journal's, and checks the tree of
    /// the journal extends the store's own checkpoint and every checkpoint of its log
    /// cosigned in `cosignatures/`. `origin` names a log that has no checkpoint yet.
    pub fn open(store_dir: &Path, entries: &[Entry], origin: Option<&Origin>) -> Result<LogAppend> {
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
        let (leaves, end, held) = open_leaves(&leaves_path, entries)?;
        let mut append = LogAppend {
            log_dir,
            leaves_path,
            leaves,
            end,
            tree: Tree::new(),
            targets: Vec::with_capacity(entries.len()),
            origin,
            pending: Vec::new(),
        };
        for (i, entry) in entries.iter().enumerate() {
            let leaf = entry_leaf(entry);
            append.tree.push(leaf_hash(&leaf));
            append.targets.push((entry.statement.target.clone(), entry.statement.seq.get()));
            if i >= held {
                append.queue(&leaf)?;
            }
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

    fn queue(&mut self, leaf: &[u8]) -> Result<()> {
        let len = u16::try_from(leaf.len())
            .map_err(|_| log_error(format!("a leaf of {} bytes does not fit the leaves file", leaf.len())))?;
        self.pending.extend_from_slice(&len.to_be_bytes());
        self.pending.extend_from_slice(leaf);
        Ok(())
    }

    /// Adds `new` (the entries of the record just made durable), appends every leaf
    /// the file lacks and flushes them, then signs the checkpoint of the whole log and
    /// renames it into place.
    pub fn sign<S: Signer + ?Sized>(mut self, new: &[Entry], signer: &S) -> Result<Checkpoint> {
        for entry in new {
            let leaf = entry_leaf(entry);
            self.tree.push(leaf_hash(&leaf));
            self.targets.push((entry.statement.target.clone(), entry.statement.seq.get()));
            self.queue(&leaf)?;
        }
        if !self.pending.is_empty() {
            let mut handle = &self.leaves;
            handle.seek(SeekFrom::Start(self.end)).map_err(StoreError::io("seek in", &self.leaves_path))?;
            fts_fs::append_durably(&self.leaves, &self.pending, &self.leaves_path)?;
        }
        let checkpoint = checkpoint_of(&self.origin, &self.tree, &self.targets)?;
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

/// Under the publish lock, with all of the journal's entries: brings the log up to
/// the journal and signs its checkpoint (`fts log init`).
pub fn append_and_sign<S: Signer + ?Sized>(
    store_dir: &Path,
    entries: &[Entry],
    signer: &S,
    origin: Option<&Origin>,
) -> Result<Checkpoint> {
    LogAppend::open(store_dir, entries, origin)?.sign(&[], signer)
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

/// Opens the leaves file, truncates a torn tail, and checks that the leaves it holds
/// are the journal's `entries`, in order. Returns the file, where its leaves end, and
/// how many it holds.
fn open_leaves(path: &PathBuf, entries: &[Entry]) -> Result<(File, u64, usize)> {
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
    if read.leaves.len() > entries.len() {
        return Err(log_error(format!(
            "{} holds {} leaves but the journal only {} entries: the journal lost records the log holds (a store restored from an old backup?). Nothing was published. Restore the store from the freshest replica (docs/OPERATIONS.md)",
            path.display(),
            read.leaves.len(),
            entries.len()
        )));
    }
    for (i, (stored, entry)) in read.leaves.iter().zip(entries).enumerate() {
        if *stored != entry_leaf(entry) {
            return Err(log_error(format!(
                "leaf {i} of {} is not the journal's entry {i} ({} seq {}): the log and the journal disagree. Nothing was published",
                path.display(),
                entry.statement.target,
                entry.statement.seq
            )));
        }
    }
    Ok((file, read.end, read.leaves.len()))
}
