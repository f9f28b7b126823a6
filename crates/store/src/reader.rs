//! The serving side: [`StoreReader`] opens a store READ-ONLY (it never creates, locks
//! or writes anything in it, so it works as a user without write permission and on a
//! replica), keeps an in-memory index of the journal's valid prefix, refreshes it
//! cheaply, and answers "which entries does this host get" without touching the
//! directory tree beyond one `stat` per entry it hands out.
//!
//! Refresh: one `lstat` of the journal, compared with what was read last
//! ([`FileIdentity`]: device, inode, length, mtime). Unchanged: done. Same file grown: re-read the last
//! accepted record to check it is still the same bytes, then read on from there.
//! Anything else (a new inode, as rsync's rename makes; a shorter or rewritten file):
//! reload from the start. A reload that fails keeps the old index.
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
//! (reopened by path at each look, so a replica switched by renaming a link is
//! followed as before). Hard links are not refused (replicas kept with `rsync
//! --link-dest` use them); the kernel's `fs.protected_hardlinks` keeps a store writer
//! from linking a file it can neither read nor write (docs/STORE.md).

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use fts_fs::{Dir, FileIdentity, FileKind, FileStat, FsError};
use fts_proto::{FileHash, Target};

use crate::entry::Entry;
use crate::error::{Result, StoreError};
use crate::journal::{DamageKind, JournalDamage, JournalIndex, record_unchanged};
use crate::layout::{self, BLOBS, JOURNAL};

/// A store opened read-only for serving.
#[derive(Debug)]
pub struct StoreReader {
    dir: PathBuf,
    journal_path: PathBuf,
    index: JournalIndex,
    /// The journal as last read; `None` while it does not exist.
    identity: Option<FileIdentity>,
    /// Why reading stopped before the end of the journal, if it did.
    damage: Option<JournalDamage>,
}

/// What a [`StoreReader::refresh`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// The journal did not change (or is still missing).
    Unchanged,
    /// The journal grew; this many entries were added.
    Appended { new_entries: usize },
    /// The journal was replaced or rewritten and read again from the start.
    Reloaded { entries: usize },
}

/// The entries for one poll, in publish order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub entries: Vec<Entry>,
    /// The budget stopped the answer while a servable entry was still waiting.
    pub more: bool,
    /// The entry the answer stopped at because its content is not (completely)
    /// there. The server should log it: on a replica it means "still syncing",
    /// anywhere else a damaged store.
    pub blocked: Option<BlockedEntry>,
}

/// An entry that cannot be served yet, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedEntry {
    pub entry: Entry,
    pub problem: BlobProblem,
}

/// Why an entry's blob cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobProblem {
    Missing,
    NotAFile,
    /// The blob, its shard folder or `blobs/` is a symbolic link (named here): links
    /// in the store are never followed, so it is never served.
    Link {
        path: PathBuf,
    },
    WrongSize {
        found: u64,
    },
    Unreadable(String),
}

impl std::fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobProblem::Missing => f.write_str("the blob is missing"),
            BlobProblem::NotAFile => f.write_str("the blob is not a regular file"),
            BlobProblem::Link { path } => {
                write!(
                    f,
                    "{} is a symbolic link, which the server never follows (a store writer's doing?)",
                    path.display()
                )
            }
            BlobProblem::WrongSize { found } => write!(f, "the blob has {found} bytes, not the size signed"),
            BlobProblem::Unreadable(e) => write!(f, "the blob cannot be inspected: {e}"),
        }
    }
}

impl StoreReader {
    /// Opens the store in `dir` read-only and indexes its journal. The folder must
    /// exist; a journal that does not exist yet (a replica before its first sync)
    /// counts as empty and is picked up by [`refresh`](StoreReader::refresh).
    pub fn open(dir: impl AsRef<Path>) -> Result<StoreReader> {
        let dir = dir.as_ref().to_path_buf();
        let store = match Dir::open(&dir) {
            Ok(store) => store,
            Err(FsError::WrongKind { .. }) => {
                return Err(StoreError::NotAStore { path: dir, detail: "it is not a folder".into() });
            }
            Err(e) => return Err(e.into()),
        };
        let journal_path = dir.join(JOURNAL);
        let mut reader =
            StoreReader { dir, journal_path, index: JournalIndex::default(), identity: None, damage: None };
        match store.open_file(JOURNAL) {
            Ok(file) => reader.reload(file)?,
            Err(e) if e.is_not_found() => {
                tracing::warn!(journal = %reader.journal_path.display(), "the store has no journal yet: serving nothing until it appears");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(reader)
    }

    /// The store folder, opened afresh (its path may go through a link the operator
    /// switches); everything beneath it is reached from this handle.
    fn store_dir(&self) -> Result<Dir, FsError> {
        Dir::open(&self.dir)
    }

    /// Brings the index up to date with the journal. Cheap when nothing changed: one
    /// `metadata()` call. On error the index stays as it was, still served.
    pub fn refresh(&mut self) -> Result<Refresh> {
        let store = self.store_dir()?;
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
            return Ok(Refresh::Reloaded { entries: self.index.entries.len() });
        };
        if now == before {
            return Ok(Refresh::Unchanged);
        }
        // A link or a FIFO put in the journal's place is refused here, by the open.
        let file = store.open_file(JOURNAL)?;
        if now.same_file(&before) && now.len > before.len {
            let count = self.index.entries.len();
            if self.read_appended(&file)? {
                return Ok(Refresh::Appended { new_entries: self.index.entries.len() - count });
            }
        }
        self.reload(file)?;
        Ok(Refresh::Reloaded { entries: self.index.entries.len() })
    }

    /// Reads what was appended after the last accepted record. False when the bytes
    /// already indexed changed, so the caller reloads instead.
    fn read_appended(&mut self, file: &File) -> Result<bool> {
        let path = &self.journal_path;
        let identity = FileStat::of_file(file, path)?.identity();
        let (Some(before), Some(mark)) = (self.identity, self.index.last_record) else {
            return Ok(false);
        };
        if !identity.same_file(&before) {
            return Ok(false);
        }
        let mut handle = file;
        handle.seek(SeekFrom::Start(mark.start)).map_err(StoreError::io("seek in", path))?;
        let mut reader = BufReader::with_capacity(1 << 16, handle);
        match record_unchanged(&mut reader, &mark).map_err(StoreError::io("read", path))? {
            Some(end) if end == self.index.good_end => {}
            _ => return Ok(false),
        }
        // Each record is applied whole, so even an I/O error half way leaves an index
        // of complete, valid records.
        let damage = self.index.read_from(&mut reader, path)?;
        self.identity = Some(identity);
        self.set_damage(damage);
        Ok(true)
    }

    /// Reads the journal from the start into a new index, which replaces the old one
    /// only if the read succeeded.
    fn reload(&mut self, mut file: File) -> Result<()> {
        let path = &self.journal_path;
        // The handle may have been read from already (a failed incremental read).
        file.seek(SeekFrom::Start(0)).map_err(StoreError::io("seek in", path))?;
        let identity = FileStat::of_file(&file, path)?.identity();
        let mut index = JournalIndex::default();
        let damage = index.read_from(&mut BufReader::with_capacity(1 << 16, file), path)?;
        if index.entries.len() < self.index.entries.len() {
            tracing::warn!(
                journal = %path.display(),
                before = self.index.entries.len(),
                now = index.entries.len(),
                "the journal was replaced by one with fewer entries"
            );
        }
        self.index = index;
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

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the blob of `hash` lives (whether or not it is there).
    pub fn blob_path(&self, hash: &FileHash) -> PathBuf {
        layout::blob_path(&self.dir, hash)
    }

    /// Opens the blob of `entry` for streaming: a regular file of the signed size
    /// beneath the store folder, reached without following a link (the module docs).
    pub fn open_blob(&self, entry: &Entry) -> Result<File> {
        let hash = &entry.statement.file_hash;
        let bad = |problem| StoreError::BadBlob { path: self.blob_path(hash), problem };
        let blobs =
            self.store_dir().and_then(|store| store.open_dir(BLOBS)).map_err(|e| bad(blob_problem(e)))?;
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

    /// The newest seq published for `target`, 0 when none.
    pub fn newest_seq(&self, target: &Target) -> u64 {
        self.index.newest_seq(target)
    }

    /// Every target with entries, in order, and its newest seq.
    pub fn targets(&self) -> impl Iterator<Item = (&Target, u64)> {
        self.index.by_target.iter().map(|(target, positions)| (target, positions.len() as u64))
    }

    /// The entry `seq` of `target`.
    pub fn entry(&self, target: &Target, seq: u64) -> Option<&Entry> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        let position = *self.index.by_target.get(target)?.get(index)?;
        self.index.entries.get(position)
    }

    /// All entries, in publish order.
    pub fn entries(&self) -> &[Entry] {
        &self.index.entries
    }

    /// Why the last read stopped before the end of the journal, if it did. A record
    /// still being appended shows here for a moment; anything else is damage.
    pub fn damage(&self) -> Option<&JournalDamage> {
        self.damage.as_ref()
    }

    /// The entries a host gets: for each `(target, since)`, the target's entries from
    /// `since + 1` on, contiguous, all targets merged in publish order. A target given
    /// twice counts once (its first `since`).
    ///
    /// The answer is always a prefix of that merged order: it stops at the first entry
    /// whose blob is missing or has the wrong size (checked with one `stat`, not a
    /// hash), for every target, not only that entry's. Letting other targets run
    /// ahead could deliver an earlier publication of a file name after a later one
    /// once the blob arrives. At most `max_files` entries and `max_bytes` bytes, but
    /// always at least one entry; `more` says the budget cut it short.
    pub fn entries_for(&self, wants: &[(Target, u64)], max_files: usize, max_bytes: u64) -> Answer {
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
        let mut bytes = 0u64;
        // Opened at the first entry, once for the whole answer.
        let mut blobs: Option<Result<Dir, FsError>> = None;
        loop {
            let next = cursors
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.first().map(|&p| (i, p)))
                .min_by_key(|&(_, p)| p);
            let Some((cursor, position)) = next else { break };
            let Some(entry) = self.index.entries.get(position) else { break };
            let blobs = blobs.get_or_insert_with(|| self.store_dir().and_then(|store| store.open_dir(BLOBS)));
            if let Err(problem) = check_blob(blobs, entry) {
                answer.blocked = Some(BlockedEntry { entry: entry.clone(), problem });
                break;
            }
            let size = entry.statement.file_size;
            let fits = answer.entries.is_empty()
                || (answer.entries.len() < max_files && bytes.saturating_add(size) <= max_bytes);
            if !fits {
                answer.more = true;
                break;
            }
            bytes = bytes.saturating_add(size);
            answer.entries.push(entry.clone());
            cursors[cursor] = &cursors[cursor][1..];
        }
        answer
    }
}

/// The blob of `entry` is a regular file of the signed size in its shard folder of
/// `blobs` (the store's `blobs/`, already opened without following a link): one open
/// of the shard and one `lstat` of the blob, neither following a link.
fn check_blob(blobs: &Result<Dir, FsError>, entry: &Entry) -> Result<(), BlobProblem> {
    let blobs = blobs.as_ref().map_err(problem_of)?;
    let (shard, name) = layout::blob_names(&entry.statement.file_hash);
    let stat = blobs.open_dir(&shard).and_then(|shard| shard.stat(&name)).map_err(blob_problem)?;
    match stat.kind {
        FileKind::File if stat.len == entry.statement.file_size => Ok(()),
        FileKind::File => Err(BlobProblem::WrongSize { found: stat.len }),
        FileKind::SymbolicLink => Err(BlobProblem::Link { path: blobs.path().join(shard).join(name) }),
        _ => Err(BlobProblem::NotAFile),
    }
}

/// What a failed open or `lstat` on the way to a blob means for serving it.
fn blob_problem(e: FsError) -> BlobProblem {
    problem_of(&e)
}

/// [`blob_problem`] of an error kept for the whole answer.
fn problem_of(e: &FsError) -> BlobProblem {
    match e {
        e if e.is_not_found() => BlobProblem::Missing,
        FsError::SymbolicLink { path } => BlobProblem::Link { path: path.clone() },
        FsError::WrongKind { .. } => BlobProblem::NotAFile,
        e => BlobProblem::Unreadable(match e.io_error() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        }),
    }
}
