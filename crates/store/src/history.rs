//! The store's history as people read it (`fts log`): every entry of the journal's
//! valid prefix in publish order, with the note and publisher of its record
//! ([`crate::provenance`]), which the server's index does not keep.
//!
//! Read-only, as [`StoreReader`](crate::StoreReader) is: the store folder is opened
//! once and the journal beneath it with `O_NOFOLLOW` (fts-fs), nothing is created,
//! locked or truncated, so it works on a replica, on a read-only mount, and while a
//! publisher appends (a record still being written is simply not read yet).

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fts_fs::{Dir, FsError};

use crate::entry::Entry;
use crate::error::{NotAStore, Result, StoreError};
use crate::journal::{JournalDamage, JournalIndex};
use crate::layout::JOURNAL;
use crate::provenance::Provenance;

/// Every entry of a store's journal, with where its record came from.
#[derive(Debug, Clone)]
pub struct History {
    index: JournalIndex,
    damage: Option<JournalDamage>,
}

impl History {
    /// Reads the journal of the store in `dir`. A folder that does not exist, is not a
    /// folder, or has no journal is an error ([`NotAStore::NoJournal`]: a store always
    /// has one from its creation on).
    pub fn read(dir: &Path) -> Result<History> {
        let not_a_store = |problem| StoreError::NotAStore { path: dir.to_path_buf(), problem };
        let store = match Dir::open(dir) {
            Ok(store) => store,
            Err(FsError::WrongKind { .. }) => return Err(not_a_store(NotAStore::NotAFolder)),
            Err(e) => return Err(e.into()),
        };
        let file = match store.open_file(JOURNAL) {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return Err(not_a_store(NotAStore::NoJournal)),
            Err(e) => return Err(e.into()),
        };
        let path: PathBuf = dir.join(JOURNAL);
        let mut index = JournalIndex { keep_provenance: true, ..JournalIndex::default() };
        let damage = index.read_from(&mut BufReader::with_capacity(1 << 16, file), &path)?;
        Ok(History { index, damage })
    }

    /// The entries in publish order, each with the provenance of its record (shared by
    /// the entries of one publish; `None` for a record without note or publisher).
    pub fn entries(&self) -> impl Iterator<Item = (&Entry, Option<&Provenance>)> {
        self.index.entries.iter().zip(self.index.provenance.iter().map(|p| p.as_ref().map(Arc::as_ref)))
    }

    /// The withdrawal of entry `seq` of `target`, if it is withdrawn.
    pub fn withdrawal(
        &self,
        target: &fts_proto::Target,
        seq: fts_proto::Seq,
    ) -> Option<&crate::WithdrawalEntry> {
        self.index.withdrawal(target, seq)
    }

    /// How many entries the journal's valid prefix holds.
    pub fn len(&self) -> usize {
        self.index.entries.len()
    }

    /// Whether the store holds no entry yet.
    pub fn is_empty(&self) -> bool {
        self.index.entries.is_empty()
    }

    /// Why the read stopped before the end of the journal, if it did: a record still
    /// being appended, or damage (the entries after it are not shown, as they are not
    /// served).
    pub fn damage(&self) -> Option<&JournalDamage> {
        self.damage.as_ref()
    }
}
