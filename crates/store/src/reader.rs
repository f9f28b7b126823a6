//! The serving side: [`StoreReader`] opens a store READ-ONLY (it never creates, locks
//! or writes anything in it, so it works as a user without write permission and on a
//! replica), keeps an in-memory index of the journal's valid prefix, refreshes it
//! cheaply, and answers "which entries does this host get" without touching the
//! directory tree beyond one `stat` per entry it hands out.
//!
//! Refresh: one `metadata()` of the journal, compared with what was read last
//! (device, inode, length, mtime). Unchanged: done. Same file grown: re-read the last
//! accepted record to check it is still the same bytes, then read on from there.
//! Anything else (a new inode, as rsync's rename makes; a shorter or rewritten file):
//! reload from the start. A reload that fails keeps the old index.

use std::fs::{self, File};
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fts_proto::{FileHash, Target};

use crate::entry::Entry;
use crate::error::{Result, StoreError};
use crate::journal::{DamageKind, JournalDamage, JournalIndex, record_unchanged};
use crate::layout::{self, JOURNAL};

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

/// Enough of a file's metadata to tell "unchanged" from "appended to" from "replaced".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

impl FileIdentity {
    fn of(meta: &fs::Metadata) -> Self {
        #[cfg(unix)]
        let (dev, ino) = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let (dev, ino) = (0, 0);
        FileIdentity { dev, ino, len: meta.len(), mtime: meta.modified().ok() }
    }

    fn same_file(&self, other: &FileIdentity) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
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
    WrongSize { found: u64 },
    Unreadable(String),
}

impl std::fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobProblem::Missing => f.write_str("the blob is missing"),
            BlobProblem::NotAFile => f.write_str("the blob is not a regular file"),
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
        let meta = fs::metadata(&dir).map_err(StoreError::io("open the store folder", &dir))?;
        if !meta.is_dir() {
            return Err(StoreError::NotAStore { path: dir, detail: "it is not a folder".into() });
        }
        let journal_path = dir.join(JOURNAL);
        let mut reader =
            StoreReader { dir, journal_path, index: JournalIndex::default(), identity: None, damage: None };
        match File::open(&reader.journal_path) {
            Ok(file) => reader.reload(file)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(journal = %reader.journal_path.display(), "the store has no journal yet: serving nothing until it appears");
            }
            Err(e) => return Err(StoreError::io("open", &reader.journal_path)(e)),
        }
        Ok(reader)
    }

    /// Brings the index up to date with the journal. Cheap when nothing changed: one
    /// `metadata()` call. On error the index stays as it was, still served.
    pub fn refresh(&mut self) -> Result<Refresh> {
        let meta = match fs::metadata(&self.journal_path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if self.identity.is_some() {
                    tracing::warn!(journal = %self.journal_path.display(), "the journal disappeared; still serving the entries already read");
                }
                return Ok(Refresh::Unchanged);
            }
            Err(e) => return Err(StoreError::io("inspect", &self.journal_path)(e)),
        };
        let now = FileIdentity::of(&meta);
        let Some(before) = self.identity else {
            let file = File::open(&self.journal_path).map_err(StoreError::io("open", &self.journal_path))?;
            self.reload(file)?;
            return Ok(Refresh::Reloaded { entries: self.index.entries.len() });
        };
        if now == before {
            return Ok(Refresh::Unchanged);
        }
        let file = File::open(&self.journal_path).map_err(StoreError::io("open", &self.journal_path))?;
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
        let meta = file.metadata().map_err(StoreError::io("inspect", path))?;
        let identity = FileIdentity::of(&meta);
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
        let meta = file.metadata().map_err(StoreError::io("inspect", path))?;
        let identity = FileIdentity::of(&meta);
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

    /// Opens the blob of `entry` for streaming, checking it has the signed size.
    pub fn open_blob(&self, entry: &Entry) -> Result<File> {
        let path = self.blob_path(&entry.statement.file_hash);
        let file = File::open(&path).map_err(StoreError::io("open", &path))?;
        let meta = file.metadata().map_err(StoreError::io("inspect", &path))?;
        if !meta.is_file() || meta.len() != entry.statement.file_size {
            return Err(StoreError::Io {
                action: "serve",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} bytes on disk, {} signed", meta.len(), entry.statement.file_size),
                ),
            });
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
        loop {
            let next = cursors
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.first().map(|&p| (i, p)))
                .min_by_key(|&(_, p)| p);
            let Some((cursor, position)) = next else { break };
            let Some(entry) = self.index.entries.get(position) else { break };
            if let Err(problem) = self.check_blob(entry) {
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

    /// The blob of `entry` is a regular file of the signed size.
    fn check_blob(&self, entry: &Entry) -> Result<(), BlobProblem> {
        match fs::metadata(self.blob_path(&entry.statement.file_hash)) {
            Ok(meta) if !meta.is_file() => Err(BlobProblem::NotAFile),
            Ok(meta) if meta.len() != entry.statement.file_size => {
                Err(BlobProblem::WrongSize { found: meta.len() })
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobProblem::Missing),
            Err(e) => Err(BlobProblem::Unreadable(e.to_string())),
        }
    }
}
