//! The serving side: [`StoreReader`] opens a store READ-ONLY (it never creates, locks
//! or writes anything in it, so it works as a user without write permission and on a
//! replica), keeps an in-memory index of the journal's valid prefix, and publishes it
//! as an immutable [`StoreSnapshot`]: what a poll reads, without a lock, to answer
//! "which entries does this host get".
//!
//! Refresh: one `stat` of the store folder's path (to follow an operator who switches
//! a link to another replica), one `lstat` each of `blobs/` and of the journal, all
//! compared with what was seen last. The folder handles are kept open and reopened
//! only when their identity changes. Journal unchanged (device, inode, length, mtime):
//! done. Same file grown: re-read the last accepted record to check it is still the
//! same bytes, then read on from there. Anything else (a new inode, as rsync's rename
//! makes; a shorter or rewritten file): reload from the start. A reload that fails
//! keeps the old index. Each change makes a new snapshot; a snapshot already handed
//! out never changes.
//!
//! Answering a poll ([`StoreSnapshot::entries_for`]) touches the directory tree only
//! for the entries it hands out: per entry, one open of its shard folder and one
//! `lstat` of its blob, from the kept `blobs/` handle. Opening a blob to send it
//! ([`StoreSnapshot::open_blob`]) is one open of the shard, one of the blob and an
//! `fstat`. All of it is blocking file I/O: an async server calls it from a blocking
//! thread.
//!
//! Whoever can write the store (a replica's sync job, a shared folder) must not make
//! the server read anything but the store's own files: a blob that is a link to the
//! server's TLS key would otherwise be streamed to any client whose entry names it
//! (the server never checks signatures, so the size it trusts is unsigned). So every
//! file the reader opens is reached from the store folder's handle one component at a
//! time, through [`fts_fs::Dir`]: `journal`, `blobs/`, the shard folder and the blob
//! are each opened with `O_NOFOLLOW` and must be a regular file (or folder), checked
//! on the opened descriptor. A blob that is a link or not a regular file is a
//! [`BlobProblem`]: never served, its target waits, and the server logs it. The store
//! folder itself is the operator's configuration and may be reached through a link
//! (its path is looked at each refresh, so a replica switched by renaming a link is
//! followed as before). Hard links are not refused (replicas kept with `rsync
//! --link-dest` use them); the kernel's `fs.protected_hardlinks` keeps a store writer
//! from linking a file it can neither read nor write (docs/STORE.md).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fts_fs::{Dir, FileIdentity, FileKind, FileStat, FsError};
use fts_proto::{FileHash, KeyId, Seq, Target};

use crate::entry::{Entry, WithdrawalEntry};
use crate::error::{NotAStore, Result, StoreError};
use crate::journal::{DamageKind, JournalDamage, JournalIndex, record_unchanged};
use crate::layout::{self, BLOBS, JOURNAL};
use crate::served_log::{LogWatch, ServedLog};

/// A store opened read-only for serving.
#[derive(Debug)]
pub struct StoreReader {
    dir: PathBuf,
    journal_path: PathBuf,
    /// The store folder as last opened, and the identity its path had then.
    store: Arc<Dir>,
    store_identity: (u64, u64),
    /// `blobs/` as last seen from the store folder (`None` until it can be opened).
    blobs_identity: Option<(u64, u64)>,
    /// What polls read; replaced (copy on write) when the journal or `blobs/` changes.
    snapshot: Arc<StoreSnapshot>,
    /// The journal as last read; `None` while it does not exist.
    identity: Option<FileIdentity>,
    /// Why reading stopped before the end of the journal, if it did.
    damage: Option<JournalDamage>,
    /// The log files, followed like the journal.
    log: LogWatch,
}

/// One version of the store as the server serves it: the journal's valid prefix (its
/// entries in publish order and, per target, their positions) and the `blobs/` folder
/// their content is read from. Immutable once published: a poll that holds one reads
/// it without a lock while a refresh makes the next.
#[derive(Debug, Clone)]
pub struct StoreSnapshot {
    dir: PathBuf,
    index: JournalIndex,
    /// Counts the snapshots a reader has made: a new one for each change.
    generation: u64,
    /// `blobs/`, opened without following a link, or why it cannot be.
    blobs: Result<Arc<Dir>, BlobProblem>,
    /// The checkpoint served, with its trees; `None` before the store has a log.
    log: Option<Arc<ServedLog>>,
}

/// What a [`StoreReader::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The journal did not change (or is still missing).
    Unchanged,
    /// The journal grew; this many entries were added.
    Appended {
        /// How many entries the new records hold.
        new_entries: usize,
    },
    /// The journal was replaced or rewritten and read again from the start.
    Reloaded {
        /// How many entries the index holds now.
        entries: usize,
    },
}

/// The entries for one poll, in publish order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// The entries to send, in publish order, each with how it travels (a whole one
    /// with its blob checked servable).
    pub items: Vec<Outgoing>,
    /// Per target a client without withdrawal support stopped at, the withdrawn
    /// entry it stopped before: that host needs an upgrade to go past it.
    pub stopped_at_withdrawal: Vec<(Target, Seq)>,
    /// The budget stopped the answer while a servable entry was still waiting.
    pub more: bool,
    /// Per target that stopped early, the entry it stopped at because its content is
    /// not (completely) there: that target waits, the others go on. The server should
    /// log them: on a replica it means "still syncing", anywhere else a damaged store.
    pub blocked: Vec<BlockedEntry>,
}

impl Answer {
    /// The entries, whichever way each travels.
    pub fn entries(&self) -> Vec<Entry> {
        self.items.iter().map(|item| item.entry.clone()).collect()
    }

    /// How many entries travel with their body.
    pub fn whole_count(&self) -> usize {
        self.items.iter().filter(|item| matches!(item.how, Sending::Whole)).count()
    }
}

/// One entry of an answer and how it travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The entry.
    pub entry: Entry,
    /// Whole, or without its body, and why.
    pub how: Sending,
}

/// How an entry travels (docs/PROTOCOL.md sections 3.2 and 8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sending {
    /// A `file` frame with its body.
    Whole,
    /// A `withdrawn` frame with its withdrawal, no body.
    Withdrawn(WithdrawalEntry),
    /// A `superseded` frame naming this later entry, which follows in the same
    /// answer; no body.
    Superseded(Entry),
}

/// What the client of an answer can take, beyond whole entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServeRules {
    /// The served checkpoint's size, when the client follows the log: only entries
    /// (and withdrawals) below it are sent.
    pub log_size: Option<u64>,
    /// The client announced `withdrawn` frames.
    pub withdrawn: bool,
    /// The client announced `superseded` frames.
    pub superseded: bool,
    /// The client's `max-file-size` (`u64::MAX` when it sent none).
    pub max_file_size: u64,
    /// The release keys the client trusts (its request's `keys`).
    pub keys: Vec<KeyId>,
}

/// The most entries one answer sends without their body (`withdrawn` frames): each
/// is a small header, and a client reads up to 10,000 frames an answer.
pub const MAX_BODILESS: usize = 4096;

/// An entry that cannot be served yet, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedEntry {
    /// The entry whose blob is not servable.
    pub entry: Entry,
    /// What is wrong with its blob.
    pub problem: BlobProblem,
}

/// Why an entry's blob cannot be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobProblem {
    /// There is no blob of that hash (yet: a replica may still be syncing it).
    #[error("the blob is missing")]
    Missing,
    /// The blob's name holds something else than a regular file.
    #[error("the blob is not a regular file")]
    NotAFile,
    /// The blob, its shard folder or `blobs/` is a symbolic link (named here): links
    /// in the store are never followed, so it is never served.
    #[error("{} is a symbolic link, which the server never follows (a store writer's doing?)", path.display())]
    Link {
        /// The link.
        path: PathBuf,
    },
    /// The blob is not of the size its entry signs (still syncing, or damaged).
    #[error("the blob has {found} bytes, not the size signed")]
    WrongSize {
        /// Its size on disk.
        found: u64,
    },
    /// Anything else on the way to the blob (permissions, I/O): the cause says what.
    #[error("the blob cannot be inspected")]
    Unreadable(#[source] Arc<FsError>),
}

/// Problems are equal when they are of the same kind about the same thing; two
/// unreadable blobs compare by what their causes say.
impl PartialEq for BlobProblem {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (BlobProblem::Missing, BlobProblem::Missing) | (BlobProblem::NotAFile, BlobProblem::NotAFile) => {
                true
            }
            (BlobProblem::Link { path: a }, BlobProblem::Link { path: b }) => a == b,
            (BlobProblem::WrongSize { found: a }, BlobProblem::WrongSize { found: b }) => a == b,
            (BlobProblem::Unreadable(a), BlobProblem::Unreadable(b)) => {
                fts_proto::ErrorChain(a.as_ref()).to_string() == fts_proto::ErrorChain(b.as_ref()).to_string()
            }
            _ => false,
        }
    }
}

impl Eq for BlobProblem {}

impl StoreReader {
    /// Opens the store in `dir` read-only and indexes its journal. The folder must
    /// exist; a journal that does not exist yet (a replica before its first sync)
    /// counts as empty and is picked up by [`refresh`](StoreReader::refresh).
    pub fn open(dir: impl AsRef<Path>) -> Result<StoreReader> {
        let dir = dir.as_ref().to_path_buf();
        let (store, store_identity) = match open_store_dir(&dir) {
            Ok(opened) => opened,
            Err(FsError::WrongKind { .. }) => {
                return Err(StoreError::NotAStore { path: dir, problem: NotAStore::NotAFolder });
            }
            Err(e) => return Err(e.into()),
        };
        let journal_path = dir.join(JOURNAL);
        let snapshot = StoreSnapshot {
            dir: dir.clone(),
            index: JournalIndex::default(),
            generation: 0,
            blobs: Err(BlobProblem::Missing),
            log: None,
        };
        let mut reader = StoreReader {
            dir,
            journal_path,
            store: Arc::new(store),
            store_identity,
            blobs_identity: None,
            snapshot: Arc::new(snapshot),
            identity: None,
            damage: None,
            log: LogWatch::default(),
        };
        reader.look_at_blobs();
        reader.look_at_log();
        match reader.store.open_file(JOURNAL) {
            Ok(file) => reader.reload(file)?,
            Err(e) if e.is_not_found() => {
                tracing::warn!(journal = %reader.journal_path.display(), "the store has no journal yet: serving nothing until it appears");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(reader)
    }

    /// The store folder: the handle kept, or a new one when the folder's path now
    /// leads elsewhere (an operator switched a link to another replica).
    fn store_dir(&mut self) -> Result<Arc<Dir>, FsError> {
        let now = std::fs::metadata(&self.dir).map_err(|source| FsError::Io {
            action: "inspect",
            path: self.dir.clone(),
            source,
        })?;
        if (now.dev(), now.ino()) != self.store_identity {
            let (store, identity) = open_store_dir(&self.dir)?;
            self.store = Arc::new(store);
            self.store_identity = identity;
            self.blobs_identity = None;
        }
        Ok(Arc::clone(&self.store))
    }

    /// Keeps the snapshot's `blobs/` handle current: reopened when the name now
    /// holds another folder (or something else), retried while it cannot be opened.
    fn look_at_blobs(&mut self) {
        let seen = self.store.stat(BLOBS).ok().map(|stat| (stat.dev, stat.ino));
        if seen.is_some() && seen == self.blobs_identity && self.snapshot.blobs.is_ok() {
            return;
        }
        let blobs = match self.store.open_dir(BLOBS) {
            Ok(blobs) => {
                // The identity of what was opened, so a change in between shows next time.
                self.blobs_identity = blobs.metadata().ok().map(|stat| (stat.dev, stat.ino));
                Ok(Arc::new(blobs))
            }
            Err(e) => {
                self.blobs_identity = None;
                Err(blob_problem(e))
            }
        };
        if blobs.is_err() && self.snapshot.blobs.as_ref().err() == blobs.as_ref().err() {
            return; // still the same problem: nothing new to publish
        }
        self.next_snapshot(None, Some(blobs));
    }

    /// Makes the next snapshot with a new index or `blobs/` handle: in place when
    /// nobody holds the current one, else as a new one, so that a snapshot handed out
    /// never changes.
    fn next_snapshot(&mut self, index: Option<JournalIndex>, blobs: Option<Result<Arc<Dir>, BlobProblem>>) {
        if let Some(snapshot) = Arc::get_mut(&mut self.snapshot) {
            snapshot.generation += 1;
            if let Some(index) = index {
                snapshot.index = index;
            }
            if let Some(blobs) = blobs {
                snapshot.blobs = blobs;
            }
            return;
        }
        let current = &self.snapshot;
        self.snapshot = Arc::new(StoreSnapshot {
            dir: current.dir.clone(),
            index: index.unwrap_or_else(|| current.index.clone()),
            generation: current.generation + 1,
            blobs: blobs.unwrap_or_else(|| current.blobs.clone()),
            log: current.log.clone(),
        });
    }

    /// Follows the log files; a new snapshot when what is served changed.
    fn look_at_log(&mut self) {
        let store = Arc::clone(&self.store);
        if !self.log.refresh(&store) {
            return;
        }
        let served = self.log.served();
        let current = &self.snapshot;
        self.snapshot = Arc::new(StoreSnapshot {
            dir: current.dir.clone(),
            index: current.index.clone(),
            generation: current.generation + 1,
            blobs: current.blobs.clone(),
            log: served,
        });
    }

    /// Brings the index up to date with the journal. Cheap when nothing changed: three
    /// `stat` calls (the store folder, `blobs/`, the journal). On error the index
    /// stays as it was, still served.
    pub fn refresh(&mut self) -> Result<Refresh> {
        let store = self.store_dir()?;
        self.look_at_blobs();
        let refreshed = self.refresh_journal(&store);
        // After the journal: a checkpoint copied after it finds its entries there.
        self.look_at_log();
        refreshed
    }

    fn refresh_journal(&mut self, store: &Dir) -> Result<Refresh> {
        let stat = match store.stat(JOURNAL) {
            Ok(stat) => stat,
            Err(e) if e.is_not_found() => {
                if self.identity.is_some() {
                    tracing::warn!(journal = %self.journal_path.display(), "the journal disappeared; still serving the entries already read");
                }
                return Ok(Refresh::Unchanged);
            }
            Err(e) => return Err(e.into()),
        };
        let now = stat.identity();
        let Some(before) = self.identity else {
            self.reload(store.open_file(JOURNAL)?)?;
            return Ok(Refresh::Reloaded { entries: self.snapshot.index.entries.len() });
        };
        if now == before {
            return Ok(Refresh::Unchanged);
        }
        // A link or a FIFO put in the journal's place is refused here, by the open.
        let file = store.open_file(JOURNAL)?;
        if now.same_file(&before) && now.len > before.len {
            let count = self.snapshot.index.entries.len();
            if self.read_appended(&file)? {
                return Ok(Refresh::Appended { new_entries: self.snapshot.index.entries.len() - count });
            }
        }
        self.reload(file)?;
        Ok(Refresh::Reloaded { entries: self.snapshot.index.entries.len() })
    }

    /// Reads what was appended after the last accepted record. False when the bytes
    /// already indexed changed, so the caller reloads instead.
    fn read_appended(&mut self, file: &File) -> Result<bool> {
        let path = self.journal_path.clone();
        let identity = FileStat::of_file(file, &path)?.identity();
        let (Some(before), Some(mark)) = (self.identity, self.snapshot.index.last_record) else {
            return Ok(false);
        };
        if !identity.same_file(&before) {
            return Ok(false);
        }
        let mut handle = file;
        handle.seek(SeekFrom::Start(mark.start)).map_err(StoreError::io("seek in", &path))?;
        let mut reader = BufReader::with_capacity(1 << 16, handle);
        match record_unchanged(&mut reader, &mark).map_err(StoreError::io("read", &path))? {
            Some(end) if end == self.snapshot.index.good_end => {}
            _ => return Ok(false),
        }
        // Each record is applied whole, so even an I/O error half way leaves an index
        // of complete, valid records. Read into a copy: the snapshot in use stays as
        // it is until the read is over.
        let mut index = self.snapshot.index.clone();
        let read = index.read_from(&mut reader, &path);
        let grew = index.entries.len() != self.snapshot.index.entries.len()
            || index.good_end != self.snapshot.index.good_end;
        if grew {
            self.next_snapshot(Some(index), None);
        }
        let damage = read?;
        self.identity = Some(identity);
        self.set_damage(damage);
        Ok(true)
    }

    /// Reads the journal from the start into a new index, which replaces the old one
    /// only if the read succeeded.
    fn reload(&mut self, mut file: File) -> Result<()> {
        let path = self.journal_path.clone();
        // The handle may have been read from already (a failed incremental read).
        file.seek(SeekFrom::Start(0)).map_err(StoreError::io("seek in", &path))?;
        let identity = FileStat::of_file(&file, &path)?.identity();
        let mut index = JournalIndex::default();
        let damage = index.read_from(&mut BufReader::with_capacity(1 << 16, file), &path)?;
        let before = self.snapshot.index.entries.len();
        if index.entries.len() < before {
            tracing::warn!(
                journal = %path.display(),
                before,
                now = index.entries.len(),
                "the journal was replaced by one with fewer entries"
            );
        }
        self.next_snapshot(Some(index), None);
        self.identity = Some(identity);
        self.set_damage(damage);
        Ok(())
    }

    fn set_damage(&mut self, damage: Option<JournalDamage>) {
        if damage != self.damage
            && let Some(d) = &damage
        {
            if d.kind == DamageKind::Incomplete {
                tracing::debug!(journal = %self.journal_path.display(), damage = %d, "journal read up to a record still being written");
            } else {
                tracing::warn!(journal = %self.journal_path.display(), damage = %d, "journal damaged: serving only the records before it");
            }
        }
        self.damage = damage;
    }

    /// The store as indexed now, to read without holding the reader.
    pub fn snapshot(&self) -> Arc<StoreSnapshot> {
        Arc::clone(&self.snapshot)
    }

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob of `hash` lives (whether or not it is there).
    pub fn blob_path(&self, hash: &FileHash) -> PathBuf {
        layout::blob_path(&self.dir, hash)
    }

    /// See [`StoreSnapshot::open_blob`].
    pub fn open_blob(&self, entry: &Entry) -> Result<File> {
        self.snapshot.open_blob(entry)
    }

    /// The newest seq published for `target`, 0 when none.
    pub fn newest_seq(&self, target: &Target) -> u64 {
        self.snapshot.newest_seq(target)
    }

    /// Every target with entries, in order, and its newest seq.
    pub fn targets(&self) -> impl Iterator<Item = (&Target, u64)> {
        self.snapshot.targets()
    }

    /// The entry `seq` of `target`.
    pub fn entry(&self, target: &Target, seq: Seq) -> Option<&Entry> {
        self.snapshot.entry(target, seq)
    }

    /// All entries, in publish order.
    pub fn entries(&self) -> &[Entry] {
        self.snapshot.entries()
    }

    /// The snapshot being served.
    pub fn current(&self) -> &StoreSnapshot {
        &self.snapshot
    }

    /// Why the last read stopped before the end of the journal, if it did. A record
    /// still being appended shows here for a moment; anything else is damage.
    pub fn damage(&self) -> Option<&JournalDamage> {
        self.damage.as_ref()
    }

    /// See [`StoreSnapshot::entries_for`].
    pub fn entries_for(&self, wants: &[(Target, u64)], max_files: usize, max_bytes: u64) -> Answer {
        self.snapshot.entries_for(wants, max_files, max_bytes)
    }

    /// See [`StoreSnapshot::answer_for`].
    pub fn answer_for(
        &self,
        wants: &[(Target, u64)],
        max_files: usize,
        max_bytes: u64,
        rules: &ServeRules,
    ) -> Answer {
        self.snapshot.answer_for(wants, max_files, max_bytes, rules)
    }
}

impl StoreSnapshot {
    /// Which snapshot of its reader this is: each change makes the next.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The checkpoint served with its proofs, once the store has a log.
    pub fn log(&self) -> Option<&Arc<ServedLog>> {
        self.log.as_ref()
    }

    /// Entries indexed (the journal's valid prefix).
    pub fn len(&self) -> usize {
        self.index.entries.len()
    }

    /// Whether the snapshot holds no entry.
    pub fn is_empty(&self) -> bool {
        self.index.entries.is_empty()
    }

    /// The withdrawal of entry `seq` of `target`, if it is withdrawn.
    pub fn withdrawal(&self, target: &Target, seq: Seq) -> Option<&WithdrawalEntry> {
        self.index.withdrawal(target, seq)
    }

    /// All withdrawals, in publish order.
    pub fn withdrawals(&self) -> &[WithdrawalEntry] {
        &self.index.withdrawals
    }

    /// The versions of `entry`'s file that supersede it, newest first: later entries
    /// of its target and file name, published strictly later, not withdrawn
    /// (docs/PROTOCOL.md section 8.2).
    pub fn superseding<'a>(&'a self, entry: &Entry) -> impl Iterator<Item = &'a Entry> + 'a {
        self.index.superseding(entry)
    }

    /// Every log leaf the journal holds (entries and withdrawals), in log order.
    pub fn leaves(&self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.index.leaves()
    }

    /// The rotations of the release key, in order, each with its leaf index.
    pub fn rotations(&self) -> &[(u64, fts_proto::SignedRotation)] {
        &self.index.rotations
    }

    /// How many log leaves the journal holds.
    pub fn leaf_count(&self) -> u64 {
        self.index.leaf_count
    }

    /// All entries, in publish order (`entries()[i].position` is entry `i`'s leaf
    /// index in the log).
    pub fn entries(&self) -> &[Entry] {
        &self.index.entries
    }

    /// The positions in [`entries`](Self::entries) of `target`'s entries: seq `n` at
    /// index `n - 1`.
    pub fn positions(&self, target: &Target) -> &[usize] {
        self.index.by_target.get(target).map_or(&[], Vec::as_slice)
    }

    /// The newest seq published for `target`, 0 when none.
    pub fn newest_seq(&self, target: &Target) -> u64 {
        self.index.newest_seq(target)
    }

    /// Every target with entries, in order, and its newest seq.
    pub fn targets(&self) -> impl Iterator<Item = (&Target, u64)> {
        self.index.by_target.iter().map(|(target, positions)| (target, positions.len() as u64))
    }

    /// The entry `seq` of `target`.
    pub fn entry(&self, target: &Target, seq: Seq) -> Option<&Entry> {
        let position = *self.index.by_target.get(target)?.get(seq.index())?;
        self.index.entries.get(position)
    }

    /// Whether no target of `wants` has an entry after its `since`: then the answer
    /// is `done` alone, and [`entries_for`](Self::entries_for) would touch no file.
    pub fn is_caught_up(&self, wants: &[(Target, u64)]) -> bool {
        wants.iter().all(|(target, since)| self.newest_seq(target) <= *since)
    }

    /// Where the blob of `hash` lives (whether or not it is there).
    pub fn blob_path(&self, hash: &FileHash) -> PathBuf {
        layout::blob_path(&self.dir, hash)
    }

    /// The entries a host gets: for each `(target, since)`, the target's entries from
    /// `since + 1` on, contiguous, all targets merged in publish order. A target given
    /// twice counts once (its first `since`).
    ///
    /// Each target progresses on its own (PROTOCOL.md section 3.2): a target stops at
    /// its first entry whose blob is missing or has the wrong size (checked with one
    /// `lstat`, not a hash), and the other targets go on. So per target the answer is
    /// a contiguous run from `since + 1`; across targets it is in publish order. (An
    /// earlier publication of a file name on a waiting target may then reach a host
    /// after a later one on another target: the host's `superseded` rule applies it
    /// without installing it.) At most `max_files` entries and `max_bytes` bytes, but
    /// always at least one entry; `more` says the budget cut it short.
    ///
    /// Blocking file I/O, one shard open and one `lstat` per entry handed out.
    pub fn entries_for(&self, wants: &[(Target, u64)], max_files: usize, max_bytes: u64) -> Answer {
        self.answer_for(wants, max_files, max_bytes, &ServeRules::default())
    }

    /// [`Self::entries_for`] under `rules`: with `rules.log_size`, a target stops at
    /// its first entry the checkpoint does not cover. A withdrawn entry travels
    /// without its body, as a `withdrawn` frame, to a client that follows the log and
    /// announced them, once the checkpoint covers the withdrawal; otherwise its
    /// target stops before it (a withdrawn entry is never sent whole). An entry a
    /// later version supersedes ([`Self::superseding`], within the client's limits)
    /// travels as a `superseded` frame, no blob needed, and its target is then not
    /// cut by the budget before that version. Bodiless frames do not count toward
    /// `max_files`, at most [`MAX_BODILESS`] per answer.
    pub fn answer_for(
        &self,
        wants: &[(Target, u64)],
        max_files: usize,
        max_bytes: u64,
        rules: &ServeRules,
    ) -> Answer {
        let mut cursors: Vec<&[usize]> = Vec::with_capacity(wants.len());
        let mut seen: Vec<&Target> = Vec::with_capacity(wants.len());
        for (target, since) in wants {
            if seen.contains(&target) {
                continue;
            }
            seen.push(target);
            let Some(positions) = self.index.by_target.get(target) else { continue };
            let start = usize::try_from(*since).unwrap_or(usize::MAX);
            if let Some(rest) = positions.get(start..).filter(|rest| !rest.is_empty()) {
                cursors.push(rest);
            }
        }
        let mut answer = Answer::default();
        let (mut bytes, mut whole, mut bodiless) = (0u64, 0usize, 0usize);
        let covered = |position: u64| rules.log_size.is_none_or(|size| position < size);
        // Per target, the seq of the newest entry a `superseded` frame of this answer
        // named: the client applies a superseded entry only once that one is
        // installed in the same answer, so the budget never cuts a target before it.
        // With it, where the target's first `superseded` frame still open is in
        // `answer.items`: a target cut inside its window is rolled back to there.
        let mut open: HashMap<&Target, (Seq, usize)> = HashMap::new();
        // Cuts `target` inside its open window: drops its items from the window's
        // first frame on (none of them could be applied without the successor).
        let roll_back = |answer: &mut Answer, open: &mut HashMap<&Target, (Seq, usize)>, target: &Target| {
            if let Some((_, first)) = open.remove(target) {
                let mut index = 0;
                answer.items.retain(|item| {
                    let keep = index < first || item.entry.statement.target != *target;
                    index += 1;
                    keep
                });
            }
        };
        // The budget is spent: targets stop at their next entry, except open ones.
        let mut spent = false;
        loop {
            let next = cursors
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.first().map(|&p| (i, p)))
                .min_by_key(|&(_, p)| p);
            let Some((cursor, position)) = next else { break };
            let Some(entry) = self.index.entries.get(position) else { break };
            let (target, seq) = (&entry.statement.target, entry.statement.seq);
            let forced = open.get(target).is_some_and(|&(until, _)| seq <= until);
            if !covered(entry.position) || (spent && !forced) {
                roll_back(&mut answer, &mut open, target);
                cursors[cursor] = &[];
                continue;
            }
            let how = match self.index.withdrawal(target, seq) {
                Some(withdrawal) => {
                    if !(rules.withdrawn && rules.log_size.is_some() && covered(withdrawal.position)) {
                        if !rules.withdrawn {
                            answer.stopped_at_withdrawal.push((target.clone(), seq));
                        }
                        cursors[cursor] = &[];
                        continue;
                    }
                    Sending::Withdrawn(withdrawal.clone())
                }
                None => match self.superseding_for(entry, rules, &covered) {
                    Some(by) => {
                        // A window only grows: an earlier frame may name a later
                        // successor than this one does.
                        let until = by.statement.seq;
                        let first = answer.items.len();
                        open.entry(target)
                            .and_modify(|(open_until, _)| *open_until = (*open_until).max(until))
                            .or_insert((until, first));
                        Sending::Superseded(by.clone())
                    }
                    None => Sending::Whole,
                },
            };
            if !matches!(how, Sending::Whole) {
                if bodiless >= MAX_BODILESS {
                    answer.more = true;
                    spent = true;
                    roll_back(&mut answer, &mut open, target);
                    cursors[cursor] = &[];
                    continue;
                }
                bodiless += 1;
                answer.items.push(Outgoing { entry: entry.clone(), how });
                cursors[cursor] = &cursors[cursor][1..];
                continue;
            }
            if let Err(problem) = self.check_blob(entry) {
                answer.blocked.push(BlockedEntry { entry: entry.clone(), problem });
                roll_back(&mut answer, &mut open, target);
                cursors[cursor] = &[];
                continue;
            }
            let size = entry.statement.file_size;
            let fits = whole == 0 || (whole < max_files && bytes.saturating_add(size) <= max_bytes);
            if !fits && !forced {
                answer.more = true;
                spent = true;
                cursors[cursor] = &[];
                continue;
            }
            bytes = bytes.saturating_add(size);
            whole += 1;
            answer.items.push(Outgoing { entry: entry.clone(), how: Sending::Whole });
            if open.get(target).is_some_and(|&(until, _)| seq >= until) {
                open.remove(target); // every successor named so far is in
            }
            cursors[cursor] = &cursors[cursor][1..];
        }
        answer
    }

    /// The entry that supersedes `entry` for this client, if any (docs/PROTOCOL.md
    /// section 8.2): the newest later version of its file (same target and name,
    /// published strictly later, not withdrawn) that the checkpoint covers, that the
    /// client takes (not above its `max-file-size`), that is signed by a key it
    /// trusts, and whose blob is here. Only to a client that follows the log and
    /// announced `superseded`.
    fn superseding_for(
        &self,
        entry: &Entry,
        rules: &ServeRules,
        covered: &impl Fn(u64) -> bool,
    ) -> Option<&Entry> {
        if !rules.superseded || rules.log_size.is_none() {
            return None;
        }
        // The newest version that qualifies, with its content here (a replica still
        // copying it would otherwise waste the whole window).
        self.index.superseding(entry).find(|by| {
            covered(by.position)
                && by.statement.file_size <= rules.max_file_size
                && rules.keys.contains(&by.key_id)
                && self.check_blob(by).is_ok()
        })
    }

    /// The blob of `entry` is a regular file of the signed size in its shard folder:
    /// one open of the shard and one `lstat` of the blob, neither following a link.
    fn check_blob(&self, entry: &Entry) -> Result<(), BlobProblem> {
        let blobs = self.blobs.as_ref().map_err(Clone::clone)?;
        let (shard, name) = layout::blob_names(&entry.statement.file_hash);
        let stat = blobs.open_dir(&shard).and_then(|shard| shard.stat(&name)).map_err(blob_problem)?;
        match stat.kind {
            FileKind::File if stat.len == entry.statement.file_size => Ok(()),
            FileKind::File => Err(BlobProblem::WrongSize { found: stat.len }),
            FileKind::SymbolicLink => Err(BlobProblem::Link { path: blobs.path().join(shard).join(name) }),
            _ => Err(BlobProblem::NotAFile),
        }
    }

    /// Opens the blob of `entry` for streaming: a regular file of the signed size
    /// beneath the store folder, reached without following a link (the module docs).
    /// Blocking file I/O.
    pub fn open_blob(&self, entry: &Entry) -> Result<File> {
        let hash = &entry.statement.file_hash;
        let bad = |problem| StoreError::BadBlob { path: self.blob_path(hash), problem };
        let blobs = self.blobs.as_ref().map_err(|problem| bad(problem.clone()))?;
        let (shard, name) = layout::blob_names(hash);
        let file = blobs
            .open_dir(&shard)
            .and_then(|shard| shard.open_file(&name))
            .map_err(|e| bad(blob_problem(e)))?;
        let stat = FileStat::of_file(&file, &self.blob_path(hash))?;
        if stat.len != entry.statement.file_size {
            return Err(bad(BlobProblem::WrongSize { found: stat.len }));
        }
        Ok(file)
    }
}

/// Opens the store folder (through a link if its path is one) and says which folder
/// it is, from the opened handle.
fn open_store_dir(dir: &Path) -> Result<(Dir, (u64, u64)), FsError> {
    let store = Dir::open(dir)?;
    let stat = store.metadata()?;
    Ok((store, (stat.dev, stat.ino)))
}

/// What a failed open or `lstat` on the way to a blob means for serving it.
fn blob_problem(e: FsError) -> BlobProblem {
    match e {
        e if e.is_not_found() => BlobProblem::Missing,
        FsError::SymbolicLink { path } => BlobProblem::Link { path },
        FsError::WrongKind { .. } => BlobProblem::NotAFile,
        e => BlobProblem::Unreadable(Arc::new(e)),
    }
}
