//! `fts publish --dry-run`: what a publish would do, worked out without doing any of
//! it. [`Preview::of`] makes the checks of [`Store::publish_with`](crate::Store) in
//! the same order and with the same errors (the store folder, the targets, the file,
//! the journal's integrity, the sequence numbers, the record's size), and returns the
//! entries the publish would make. It signs nothing and writes nothing: no store
//! folder, lock file, blob or temp is created, no torn tail is truncated, and the
//! journal is only read. The file is read once, to hash it.
//!
//! Without the publish lock, the answer is what a publish started now would get if no
//! other publish came first.

use std::fs::File;
use std::path::Path;
use std::time::SystemTime;

use fts_proto::{FileHash, FileName, KeyId, Published, Seq, Signature, Target};

use crate::error::{Result, StoreError};
use crate::journal::{JournalDamage, JournalIndex};
use crate::layout::JOURNAL;
use crate::provenance::Provenance;
use crate::publish::{
    Content, append_bytes, check_creatable, check_file_size, check_targets, hash_file, next_published,
    open_source, read_for_append,
};

/// What a publish would make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    /// The name on the hosts.
    pub file_name: FileName,
    /// The file's size in bytes.
    pub file_size: u64,
    /// The file's SHA-256.
    pub file_hash: FileHash,
    /// The `published` time it would get now.
    pub published: Published,
    /// For each target, in the order given, the seq it would get.
    pub entries: Vec<(Target, Seq)>,
    /// The store does not exist yet: a publish would create it.
    pub creates_store: bool,
    /// The journal ends in a torn tail (an interrupted publish) that a publish would
    /// truncate before appending.
    pub torn_tail: Option<JournalDamage>,
}

impl Preview {
    /// What publishing the file at `path` as `file_name` to `targets` in the store
    /// `dir`, signed by the key `key_id`, would make now, or the error the publish
    /// would fail with.
    pub fn of(
        dir: &Path,
        path: &Path,
        file_name: &FileName,
        targets: &[Target],
        key_id: KeyId,
        provenance: &Provenance,
        now: SystemTime,
    ) -> Result<Preview> {
        // Opening the store for publishing: the journal's header, or whether a store
        // can be created there.
        let journal_path = dir.join(JOURNAL);
        let journal = if journal_path.exists() {
            let file = File::open(&journal_path).map_err(StoreError::io("open", &journal_path))?;
            // Reads the whole journal; a header of another format or version fails
            // here, as it fails the publisher's open.
            Some(read_for_append(&file, &journal_path))
        } else {
            check_creatable(dir)?;
            None
        };
        let creates_store = journal.is_none();

        check_targets(targets)?;
        // Hashed as the publish copies it: what is read is what is counted.
        let (file_hash, file_size) = hash_file(open_source(path)?, path)?;
        check_file_size(file_size)?;

        // What the publisher finds under the lock: corruption fails it now.
        let (index, torn_tail) = journal.transpose()?.unwrap_or_else(|| (JournalIndex::default(), None));
        let content = Content { file_name, file_size, file_hash };
        let published = next_published(&index, now);
        // An unsigned stand-in of the same length, so that the record size is checked
        // exactly as the publish would check it.
        let unsigned = |_: &fts_proto::Statement| Signature::from_bytes([0; 64]);
        let (_, entries) =
            append_bytes(&index, targets, &content, published.clone(), key_id, provenance, unsigned)?;
        Ok(Preview {
            file_name: file_name.clone(),
            file_size,
            file_hash,
            published,
            entries: entries.into_iter().map(|e| (e.statement.target, e.statement.seq)).collect(),
            creates_store,
            torn_tail,
        })
    }
}
