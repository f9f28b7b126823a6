//! The writing side, run on the signing host: [`Store`] creates the store, copies files
//! into the blob folder, and appends signed publish records to the journal under the
//! publish lock.
//!
//! Order of a publish, and why each crash instant is safe (docs/STORE.md has the full
//! argument; the durable writes are fts-fs's, whose crate docs give theirs):
//!
//! 1. copy the file into a temp in `tmp/` while hashing it, then move it durably into
//!    `blobs/`. Outside the lock: a slow copy never holds up other publishers. A crash leaves at most a temp (removed by the
//!    next publisher, fts-fs's lock rule) or an unreferenced blob (harmless).
//!    A blob already there is kept only if it is a regular file whose SHA-256 is its
//!    name (hashed again, not trusted by its size); anything else (rotted bytes, a
//!    link, a short copy) is replaced by the fresh temp, whose content is right.
//! 2. take the lock, check the blob is still there (`fts gc`, under the same lock,
//!    may have removed content that step 1 found already stored; it is copied again),
//!    read the whole journal, truncate a torn tail (refuse if a damaged
//!    record is followed by valid ones), compute each target's next seq and the
//!    `published` time, sign, append the record with one write and flush it
//!    ([`fts_fs::append_durably`]), release the lock. A crash before the record is
//!    complete leaves a torn tail that readers never serve and the next publisher
//!    truncates.
//! 3. the log ([`crate::log::LogAppend`]): opened and checked under the lock before
//!    the record is written (a store its log refuses gets nothing written); after the
//!    record, the new leaves are appended and flushed, then the checkpoint is signed
//!    and renamed into place. A crash in between leaves entries the checkpoint does
//!    not cover: servers do not send them to hosts that follow the log, and the next
//!    publish covers them.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use fts_fs::stream::{CHUNK, DISK_BUFFERS, DiskWriter, read_full};
use fts_fs::{Dir, FileMode, TempFile};
use fts_proto::checkpoint::{Checkpoint, Origin};
use fts_proto::{
    ErrorChain, FileHash, FileName, KeyId, MAX_WIRE_INT, Published, RawKey, RotateStatement,
    RotationSignature, Seq, Signature, SignedRotation, Signer, Statement, Target, WithdrawReason,
    WithdrawStatement,
};
use sha2::{Digest, Sha256};

use crate::entry::{Entry, WithdrawalEntry};
use crate::error::{NotAStore, Result, StoreError};
use crate::journal::{
    HeaderRecord, JournalDamage, JournalIndex, MAX_RECORD_LEN, PublishRecord, Record, RecordEntry,
    RotateRecord, WithdrawRecord, encode_line, read_line, valid_record_after,
};
use crate::layout::{self, BLOBS, JOURNAL, LOCK, OWN_NAMES, TMP};
use crate::log;
use crate::provenance::Provenance;
use fts_log::key_id_of;

/// The mode of the store's own files (the journal), less the umask: who reads the
/// store is the operator's choice.
const STORE_FILE_MODE: FileMode = FileMode::LessUmask(0o666);

/// Blobs are read-only from their first byte: nothing ever changes a stored blob.
const BLOB_MODE: FileMode = FileMode::Exact(0o444);

/// A store opened for publishing. Each handle takes the lock for itself, so handles in
/// several threads or processes publish safely side by side.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    /// The log's name for its first checkpoint (later ones keep the checkpoint's).
    log_origin: Option<Origin>,
}

impl Store {
    /// Opens the store in `dir`, creating it (folders, lock file, a journal holding
    /// only the header) when `dir` is missing or empty. Refuses a folder that holds
    /// other things but no journal, and a journal of another format or version.
    pub fn open_or_create(dir: impl AsRef<Path>) -> Result<Store> {
        let store = Store { dir: dir.as_ref().to_path_buf(), log_origin: None };
        let journal = store.dir.join(JOURNAL);
        if !journal.exists() {
            store.create()?;
        }
        let file = File::open(&journal).map_err(StoreError::io("open", &journal))?;
        check_header_only(file, &journal)?;
        // A store copied without them (replicas exclude tmp/) gets them back.
        store.create_subdirs()?;
        Ok(store)
    }

    /// Opens the existing store in `dir` and creates nothing: refuses a folder
    /// without a journal ([`NotAStore::NoJournal`]), and a journal of another format
    /// or version. For the commands that only change a store (`fts gc`), so that a
    /// wrong `--store` is an error, not a new empty store.
    pub fn open_existing(dir: impl AsRef<Path>) -> Result<Store> {
        let store = Store { dir: dir.as_ref().to_path_buf(), log_origin: None };
        let not_a_store = |problem| StoreError::NotAStore { path: store.dir.clone(), problem };
        let folder = match Dir::open(&store.dir) {
            Ok(folder) => folder,
            Err(fts_fs::FsError::WrongKind { .. }) => return Err(not_a_store(NotAStore::NotAFolder)),
            Err(e) => return Err(e.into()),
        };
        let file = match folder.open_file(JOURNAL) {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return Err(not_a_store(NotAStore::NoJournal)),
            Err(e) => return Err(e.into()),
        };
        check_header_only(file, &store.dir.join(JOURNAL))?;
        Ok(store)
    }

    /// The store folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names the log, for the first checkpoint of a store that has none (a store
    /// with a checkpoint keeps its origin, and refuses another).
    pub fn with_log_origin(mut self, origin: Option<Origin>) -> Store {
        self.log_origin = origin;
        self
    }

    /// Builds the log over the whole journal, or brings it up to date, and signs its
    /// checkpoint (`fts log init`; every publish does the same after its record).
    pub fn sign_log<S: Signer + ?Sized>(&self, signer: &S) -> Result<Checkpoint> {
        let _lock = self.lock()?;
        let (_journal, index) = self.open_journal()?;
        check_signer(&index, &signer.key_id())?;
        log::append_and_sign(&self.dir, index.leaves(), signer, self.log_origin.as_ref())
    }

    /// Where the blob of `hash` lives (whether or not it is there).
    pub fn blob_path(&self, hash: &FileHash) -> PathBuf {
        layout::blob_path(&self.dir, hash)
    }

    fn create(&self) -> Result<()> {
        let dir = &self.dir;
        if !check_creatable(dir)? {
            fs::create_dir_all(dir).map_err(StoreError::io("create", dir))?;
            Dir::open(fts_fs::parent_dir(dir))?.sync()?;
        }
        self.create_subdirs()?;
        let _lock = self.lock()?;
        let journal = dir.join(JOURNAL);
        if journal.exists() {
            return Ok(()); // another publisher created it while we waited for the lock
        }
        // Written whole in a temp and renamed, so a journal either does not exist or
        // starts with a complete header: a journal without one is never a crash leftover.
        let tmp = Dir::open(dir.join(TMP))?;
        let (temp, mut file) = TempFile::create(&tmp, "journal", STORE_FILE_MODE)?;
        file.write_all(&encode_line(&HeaderRecord::current())?)
            .map_err(StoreError::io("write", temp.path()))?;
        temp.sync()?;
        let store = Dir::open(dir)?;
        temp.persist(&store, JOURNAL)?;
        store.sync()?;
        tracing::info!(store = %dir.display(), "created a new store");
        Ok(())
    }

    fn create_subdirs(&self) -> Result<()> {
        for sub in [BLOBS, TMP] {
            let path = self.dir.join(sub);
            fs::create_dir_all(&path).map_err(StoreError::io("create", &path))?;
        }
        Ok(())
    }

    /// Takes the publish lock, waiting for another publisher to finish.
    pub(crate) fn lock(&self) -> Result<File> {
        let path = self.dir.join(LOCK);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(StoreError::io("open the lock file", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                tracing::info!(lock = %path.display(), "waiting for another publisher to finish");
                file.lock().map_err(StoreError::io("lock", &path))?;
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io("lock", &path)(e)),
        }
        Ok(file)
    }

    /// Copies `reader` into the blob folder, hashing it on the way, and returns its
    /// hash and size. Content already stored is not stored again. Durable on return.
    pub fn put_blob(&self, reader: impl Read) -> Result<(FileHash, u64)> {
        self.put_blob_from(reader, Path::new("the input"))
    }

    fn put_blob_from(&self, mut reader: impl Read, source: &Path) -> Result<(FileHash, u64)> {
        let tmp = Dir::open(self.dir.join(TMP))?;
        let (temp, file) = TempFile::create(&tmp, "blob", BLOB_MODE)?;
        let (hasher, size) = copy_hashing(&mut reader, &file, source, &temp.path())?;
        drop(file);
        let hash = FileHash::from_digest(hasher.finalize().into());
        temp.sync()?;

        let dest = self.blob_path(&hash);
        let (shard_name, blob_name) = layout::blob_names(&hash);
        let blobs = self.dir.join(BLOBS);
        let shard_path = blobs.join(&shard_name);
        match fs::create_dir(&shard_path) {
            Ok(()) => Dir::open(&blobs)?.sync()?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io("create", &shard_path)(e)),
        }
        let shard = Dir::open(&shard_path)?;
        match existing_blob(&shard, &blob_name, &dest, &hash, size)? {
            Existing::Sound => {
                // Stored before. Its rename may not be durable yet if that publisher
                // died before flushing the folder, so flush it here too.
                drop(temp);
                shard.sync()?;
                tracing::debug!(blob = %dest.display(), "content already stored");
                return Ok((hash, size));
            }
            Existing::Missing => {}
            Existing::Damaged(what) => {
                // The temp was just hashed on its way in: it is the right content.
                tracing::warn!(blob = %dest.display(), found = %what, "replacing a damaged blob");
            }
        }
        temp.persist(&shard, &blob_name)?;
        shard.sync()?;
        Ok((hash, size))
    }

    /// Publishes the file at `path` as `file_name` to every target (at least one, no
    /// duplicates), signed by `signer`: all or nothing. Returns the new entries in
    /// the order of `targets`.
    pub fn publish<S: Signer + ?Sized>(
        &self,
        path: &Path,
        file_name: &FileName,
        targets: &[Target],
        signer: &S,
    ) -> Result<Vec<Entry>> {
        self.publish_at(path, file_name, targets, signer, SystemTime::now())
    }

    /// [`Store::publish`] with the clock given: `published` is `now` in whole UTC
    /// seconds, or one second after the last publish's time if that is not earlier,
    /// so it always moves forward, even when the clock does not.
    pub fn publish_at<S: Signer + ?Sized>(
        &self,
        path: &Path,
        file_name: &FileName,
        targets: &[Target],
        signer: &S,
        now: SystemTime,
    ) -> Result<Vec<Entry>> {
        self.publish_with(path, file_name, targets, signer, &Provenance::default(), now)
    }

    /// [`Store::publish_at`], with a note and the publisher kept in the record
    /// (unsigned, [`crate::provenance`]). An empty `provenance` writes the record
    /// exactly as [`Store::publish_at`] does.
    pub fn publish_with<S: Signer + ?Sized>(
        &self,
        path: &Path,
        file_name: &FileName,
        targets: &[Target],
        signer: &S,
        provenance: &Provenance,
        now: SystemTime,
    ) -> Result<Vec<Entry>> {
        check_targets(targets)?;
        let source = open_source(path)?;
        let (file_hash, file_size) = self.put_blob_from(source, path)?;
        check_file_size(file_size)?;

        let _lock = self.lock()?;
        self.remove_stale_temps();
        self.blob_still_there(path, file_hash, file_size)?;
        let (mut journal, index) = self.open_journal()?;
        check_signer(&index, &signer.key_id())?;
        // Before the record: a store its log refuses gets nothing written to it.
        let log = log::LogAppend::open(&self.dir, index.leaves(), self.log_origin.as_ref())?;

        let content = Content { file_name, file_size, file_hash };
        let published = next_published(&index, now);
        let (bytes, entries) =
            append_bytes(&index, targets, &content, published, signer.key_id(), provenance, |statement| {
                signer.sign(statement)
            })?;

        journal.append(&bytes, index.good_end)?;
        tracing::info!(
            file = %file_name,
            hash = %file_hash,
            size = file_size,
            targets = targets.len(),
            "published"
        );
        // The record is durable: a failure from here on leaves entries the log does
        // not cover yet, which servers do not serve and the next publish covers.
        log.sign(&entries.iter().map(Entry::leaf).collect::<Vec<_>>(), signer)?;
        Ok(entries)
    }

    /// Rotates the store's release key (`fts keygen rotate`, docs/PROTOCOL.md section
    /// 8.3): under the publish lock, builds the rotation statement (this log's origin,
    /// the next number, `retired` (the active key), the new `key`, the commitment
    /// `next` to the key after it, a time after every record's), has `sign` sign it
    /// (the new key first, then the retired one for a planned rotation), appends it as
    /// one record and one leaf, and signs the checkpoint with `new_signer` (the new
    /// key): from here on only it signs. Refuses a `retired` key that is not the
    /// active one (the last rotation's, or the one that signed the newest entry).
    pub fn rotate<S: Signer + ?Sized>(
        &self,
        retired: RawKey,
        key: RawKey,
        next: FileHash,
        new_signer: &S,
        sign: impl FnOnce(&RotateStatement) -> Vec<RotationSignature>,
        now: SystemTime,
    ) -> Result<SignedRotation> {
        let _lock = self.lock()?;
        let (mut journal, index) = self.open_journal()?;
        let active = match (index.active_key(), index.entries.last()) {
            (Some(active), _) => key_id_of(&active),
            (None, Some(newest)) => newest.key_id,
            (None, None) => key_id_of(&retired),
        };
        if key_id_of(&retired) != active {
            return Err(StoreError::Key {
                detail: format!(
                    "the key this rotation retires, {}, is not this store's release key, {active}",
                    key_id_of(&retired)
                ),
            });
        }
        if key_id_of(&key) != new_signer.key_id() {
            return Err(StoreError::Key {
                detail: "the new key and the key signing the checkpoint differ".into(),
            });
        }
        // A rotation hosts would refuse stays in the log for ever (the next must
        // follow it): refuse it here. The first one's commitment is in the hosts'
        // trust files, which the caller checked.
        if let Some((_, previous)) = index.rotations.last()
            && fts_log::next_key_commitment(&key) != previous.statement.next
        {
            return Err(StoreError::Key {
                detail: format!(
                    "the new key is not the one rotation {} committed to: hosts would refuse this rotation",
                    previous.statement.number
                ),
            });
        }
        if next == fts_log::next_key_commitment(&key) || key == retired {
            return Err(StoreError::Key {
                detail: "a rotation must commit to a key other than the one it makes active".into(),
            });
        }
        let log = log::LogAppend::open(&self.dir, index.leaves(), self.log_origin.as_ref())?;
        let statement = RotateStatement {
            origin: log.origin().clone(),
            number: index.rotations.len() as u64 + 1,
            retired,
            key,
            next,
            time: next_published(&index, now),
        };
        let signatures = sign(&statement);
        let rotation = SignedRotation { statement, signatures };
        let bytes = encode_line(&Record::Rotate(RotateRecord::of(&rotation)))?;
        journal.append(&bytes, index.good_end)?;
        tracing::info!(number = rotation.statement.number, key = %new_signer.key_id(), "rotated the release key");
        log.sign(&[rotation.leaf()], new_signer)?;
        Ok(rotation)
    }

    /// Under the lock, before a record names the blob copied outside it: the blob is
    /// still there, or is copied again now. `fts gc` (which holds the lock while it
    /// removes) may have removed it in between: content stored before and found sound
    /// by [`Store::put_blob`] counts as stored, yet was referenced only by superseded
    /// or withdrawn entries, or by none (a crashed publish's, over an hour old). A
    /// record must never name a missing blob (docs/STORE.md section 3), so the file
    /// is copied again, and refused if it is no longer the file hashed first.
    pub(crate) fn blob_still_there(&self, path: &Path, hash: FileHash, size: u64) -> Result<()> {
        if existing_blob_kind(&self.dir, &hash, size)? {
            return Ok(());
        }
        tracing::info!(blob = %self.blob_path(&hash).display(), "the blob was removed while waiting for the lock (fts gc): copying it again");
        let (again, _) = self.put_blob_from(open_source(path)?, path)?;
        if again != hash {
            return Err(StoreError::ChangedWhilePublishing { path: path.to_path_buf(), first: hash, again });
        }
        Ok(())
    }

    /// Withdraws entry `seq` of `target` (`fts withdraw`, docs/PROTOCOL.md section
    /// 8.1): signs a withdrawal of its statement in this store's log and appends it,
    /// as one record and one leaf, under the publish lock. With `restore_previous`,
    /// the newest earlier entry of the same file name on that target that is not
    /// withdrawn is published again in the same append (a new entry, a later
    /// `published`), so that no host is left with neither version. Refuses an entry
    /// the journal does not hold, one already withdrawn, and a restore with nothing
    /// to restore (or whose content is no longer in the store).
    pub fn withdraw<S: Signer + ?Sized>(
        &self,
        target: &Target,
        seq: Seq,
        reason: WithdrawReason,
        restore_previous: bool,
        signer: &S,
        now: SystemTime,
    ) -> Result<Withdrawn> {
        let refuse = |detail: String| Err(StoreError::Withdraw { detail });
        let _lock = self.lock()?;
        let (mut journal, index) = self.open_journal()?;
        check_signer(&index, &signer.key_id())?;
        let Some(entry) = index.entry(target, seq).cloned() else {
            return refuse(format!(
                "{target} has no entry {seq}: it has {} (see `fts log --target {target}`)",
                index.newest_seq(target)
            ));
        };
        if let Some(w) = index.withdrawal(target, seq) {
            return refuse(format!("{target} seq {seq} is already withdrawn (at {})", w.statement.withdrawn));
        }
        let withdrawn = index.withdrawals.iter().filter(|w| w.statement.target == *target).count();
        if withdrawn >= fts_log::heads::MAX_WITHDRAWN {
            return refuse(format!(
                "{target} has {withdrawn} withdrawn entries, the most a head lists: hosts would refuse its head proof. Publish to a new target instead"
            ));
        }
        let restore = if restore_previous {
            let earlier =
                (1..seq.get()).rev().filter_map(Seq::new).filter_map(|s| index.entry(target, s)).find(|e| {
                    e.statement.file_name == entry.statement.file_name
                        && index.withdrawal(target, e.statement.seq).is_none()
                });
            let Some(earlier) = earlier.cloned() else {
                return refuse(format!(
                    "--restore-previous: {target} has no earlier entry of {} that is not withdrawn",
                    entry.statement.file_name
                ));
            };
            match existing_blob_kind(&self.dir, &earlier.statement.file_hash, earlier.statement.file_size) {
                Ok(true) => {}
                _ => {
                    return refuse(format!(
                        "--restore-previous: the content of {target} seq {} ({}) is no longer in this store's blobs (collected by `fts gc`?)",
                        earlier.statement.seq, earlier.statement.file_name
                    ));
                }
            }
            Some(earlier)
        } else {
            None
        };

        let log = log::LogAppend::open(&self.dir, index.leaves(), self.log_origin.as_ref())?;
        let statement = WithdrawStatement {
            origin: log.origin().clone(),
            target: target.clone(),
            seq,
            statement_hash: fts_log::statement_hash(&entry.statement),
            withdrawn: next_published(&index, now),
            reason,
        };
        let withdrawal = WithdrawalEntry {
            position: index.leaf_count,
            signature: signer.sign_withdrawal(&statement),
            key_id: signer.key_id(),
            statement,
        };
        let mut bytes = encode_line(&Record::Withdraw(WithdrawRecord::of(&withdrawal)))?;
        let mut leaves = vec![withdrawal.leaf()];
        let mut after = index.clone();
        after.apply_withdraw_entry(&withdrawal);
        let restored = match restore {
            None => None,
            Some(earlier) => {
                let content = Content {
                    file_name: &earlier.statement.file_name,
                    file_size: earlier.statement.file_size,
                    file_hash: earlier.statement.file_hash,
                };
                let published = next_published(&after, now);
                let (line, entries) = append_bytes(
                    &after,
                    std::slice::from_ref(target),
                    &content,
                    published,
                    signer.key_id(),
                    &Provenance::default(),
                    |s| signer.sign(s),
                )?;
                bytes.extend(line);
                leaves.extend(entries.iter().map(Entry::leaf));
                entries.into_iter().next()
            }
        };
        journal.append(&bytes, index.good_end)?;
        tracing::info!(%target, seq = seq.get(), file = %entry.statement.file_name, "withdrawn");
        log.sign(&leaves, signer)?;
        Ok(Withdrawn { withdrawn: entry, withdrawal, restored })
    }

    /// Opens the journal for appending (under the publish lock the caller holds),
    /// reads it whole and truncates a torn tail.
    fn open_journal(&self) -> Result<(Journal, JournalIndex)> {
        let path = self.dir.join(JOURNAL);
        let file =
            OpenOptions::new().read(true).write(true).open(&path).map_err(StoreError::io("open", &path))?;
        let index = load_for_append(&file, &path)?;
        Ok((Journal { file, path }, index))
    }

    /// Removes the temps in `tmp/` left by killed publishers (fts-fs's lock rule: a
    /// live publisher's temp is locked and kept). Never fails a publish: a temp that
    /// cannot be removed only takes space, and is logged.
    fn remove_stale_temps(&self) {
        let tmp = self.dir.join(TMP);
        match Dir::open(&tmp).and_then(|dir| fts_fs::remove_stale_temps(&dir)) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(dir = %tmp.display(), removed, "removed temporary files left by interrupted publishes")
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "cannot remove the temporary files of interrupted publishes")
            }
        }
    }
}

/// Refuses a signer other than the key the store's last rotation made active.
fn check_signer(index: &JournalIndex, signer: &KeyId) -> Result<()> {
    match index.active_key() {
        Some(active) if key_id_of(&active) != *signer => Err(StoreError::Key {
            detail: format!(
                "this store's release key is {} since rotation {}: key {signer} was retired and hosts refuse what it signs (`fts log --keys` lists them)",
                key_id_of(&active),
                index.rotations.len()
            ),
        }),
        _ => Ok(()),
    }
}

/// The journal opened for appending, under the publish lock.
struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Appends `bytes` at `at` (the end of the valid prefix) with one durable write;
    /// on failure, best effort, leaves no torn tail behind (the next publisher would
    /// truncate it anyway).
    fn append(&mut self, bytes: &[u8], at: u64) -> Result<()> {
        self.file.seek(SeekFrom::Start(at)).map_err(StoreError::io("seek in", &self.path))?;
        if let Err(e) = fts_fs::append_durably(&self.file, bytes, &self.path) {
            let _ = fts_fs::truncate_durably(&self.file, at, &self.path);
            return Err(e.into());
        }
        Ok(())
    }
}

/// What [`Store::withdraw`] did.
#[derive(Debug, Clone)]
pub struct Withdrawn {
    /// The entry withdrawn.
    pub withdrawn: Entry,
    /// Its signed withdrawal, as appended.
    pub withdrawal: WithdrawalEntry,
    /// With `--restore-previous`, the earlier version published again.
    pub restored: Option<Entry>,
}

/// Whether the blob of `hash` is in the store as a regular file of `size` bytes
/// (one `lstat`, no link followed, not hashed).
fn existing_blob_kind(store_dir: &Path, hash: &FileHash, size: u64) -> Result<bool> {
    let (shard, name) = layout::blob_names(hash);
    let stat = match Dir::open(store_dir.join(BLOBS))
        .and_then(|blobs| blobs.open_dir(&shard))
        .and_then(|d| d.stat(&name))
    {
        Ok(stat) => stat,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    Ok(stat.kind == fts_fs::FileKind::File && stat.len == size)
}

/// What sits where a blob is about to be renamed.
enum Existing {
    Missing,
    /// A regular file of the right size whose SHA-256 is its name.
    Sound,
    /// Anything else, in words: the wrong size, other bytes of the same size, a link.
    Damaged(String),
}

/// Judges the file `name` in `shard` (the blob of `hash` at `dest`, `size` bytes)
/// without following a link, hashing it when its size is right: a blob whose bytes
/// rotted or were changed on the signing host would otherwise be kept by every later
/// publish of its content, and hosts would refuse it as `hash-mismatch` forever.
fn existing_blob(shard: &Dir, name: &str, dest: &Path, hash: &FileHash, size: u64) -> Result<Existing> {
    let stat = match shard.stat(name) {
        Ok(stat) => stat,
        Err(e) if e.is_not_found() => return Ok(Existing::Missing),
        Err(e) => return Err(e.into()),
    };
    if stat.kind != fts_fs::FileKind::File {
        return Ok(Existing::Damaged(format!("{} in its place", stat.kind)));
    }
    if stat.len != size {
        return Ok(Existing::Damaged(format!("{} bytes, not {size}", stat.len)));
    }
    let file = match shard.open_file(name) {
        Ok(file) => file,
        // Swapped since the lstat: replace whatever it is now.
        Err(fts_fs::FsError::SymbolicLink { .. } | fts_fs::FsError::WrongKind { .. }) => {
            return Ok(Existing::Damaged("not a regular file".into()));
        }
        Err(e) => return Err(e.into()),
    };
    let (found, _) = hash_file(file, dest)?;
    if found == *hash {
        Ok(Existing::Sound)
    } else {
        Ok(Existing::Damaged(format!("other bytes of the same size (SHA-256 {found})")))
    }
}

/// The SHA-256 of a whole file, and how many bytes it had.
pub(crate) fn hash_file(mut file: File, path: &Path) -> Result<(FileHash, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        match read_full(&mut file, &mut buffer) {
            Ok(0) => return Ok((FileHash::from_digest(hasher.finalize().into()), size)),
            Ok(n) => {
                hasher.update(&buffer[..n]);
                size += n as u64;
            }
            Err(e) => return Err(StoreError::io("read", path)(e)),
        }
    }
}

/// At least one target, none twice.
pub(crate) fn check_targets(targets: &[Target]) -> Result<()> {
    if targets.is_empty() {
        return Err(StoreError::NoTargets);
    }
    let mut seen = HashSet::new();
    for target in targets {
        if !seen.insert(target) {
            return Err(StoreError::DuplicateTarget { target: target.clone() });
        }
    }
    Ok(())
}

/// Whether a store may be created in `dir` (what [`Store::open_or_create`] checks
/// before it creates one, and a dry run checks in its place): true when the folder
/// exists and holds only the store's own names (an interrupted creation), false when
/// it does not exist; an error for a folder that holds anything else, so that `--store
/// ~` does not turn a home folder into a store.
pub(crate) fn check_creatable(dir: &Path) -> Result<bool> {
    match fs::read_dir(dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry.map_err(StoreError::io("list", dir))?;
                let name = entry.file_name();
                if !OWN_NAMES.iter().any(|own| name == *own) {
                    return Err(StoreError::NotAStore {
                        path: dir.to_path_buf(),
                        problem: NotAStore::ForeignFile { name },
                    });
                }
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::io("list", dir)(e)),
    }
}

/// Opens the file to publish, which must be a regular file.
pub(crate) fn open_source(path: &Path) -> Result<File> {
    let source = File::open(path).map_err(StoreError::io("open", path))?;
    let meta = source.metadata().map_err(StoreError::io("inspect", path))?;
    if !meta.is_file() {
        return Err(StoreError::NotAFile { path: path.to_path_buf() });
    }
    Ok(source)
}

/// A file size must fit the protocol's integers.
pub(crate) fn check_file_size(file_size: u64) -> Result<()> {
    if file_size > MAX_WIRE_INT {
        return Err(StoreError::OutOfRange { what: "file size", value: file_size });
    }
    Ok(())
}

/// What one publish stores, signed in each of its entries.
pub(crate) struct Content<'a> {
    pub file_name: &'a FileName,
    pub file_size: u64,
    pub file_hash: FileHash,
}

/// The `published` time of the next publish: `now` in whole UTC seconds, or one
/// second after the last publish's time if that is not earlier.
pub(crate) fn next_published(index: &JournalIndex, now: SystemTime) -> Published {
    let now_secs = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs();
    // Strictly later than the last publish, even within one second or when the
    // clock goes back: two publications of one file name are then always ordered
    // by their signed `published` time, so a host keeps the later one whatever
    // order a hostile server delivers them in (PROTOCOL.md section 6, check 5).
    // Under a burst of publishes the time runs ahead of the clock by a second per
    // publish in excess.
    match index.last_published.clone() {
        Some(last) if last.unix_seconds() >= now_secs => {
            Published::from_unix_seconds(last.unix_seconds() + 1)
        }
        _ => Published::from_unix_seconds(now_secs),
    }
}

/// The bytes a publish appends after the journal's valid prefix (its record, and the
/// header first if the journal is empty) and the entries they hold, each statement
/// signed by `sign`. Refuses a target whose sequence is exhausted and a record over
/// [`MAX_RECORD_LEN`].
pub(crate) fn append_bytes(
    index: &JournalIndex,
    targets: &[Target],
    content: &Content<'_>,
    published: Published,
    key_id: KeyId,
    provenance: &Provenance,
    mut sign: impl FnMut(&Statement) -> Signature,
) -> Result<(Vec<u8>, Vec<Entry>)> {
    let mut entries = Vec::with_capacity(targets.len());
    let mut record_entries = Vec::with_capacity(targets.len());
    for (i, target) in targets.iter().enumerate() {
        let Some(seq) = index.next_seq(target) else {
            let value = index.newest_seq(target).saturating_add(1);
            return Err(StoreError::OutOfRange { what: "sequence number", value });
        };
        let statement = Statement {
            target: target.clone(),
            seq,
            file_name: content.file_name.clone(),
            file_size: content.file_size,
            file_hash: content.file_hash,
            published: published.clone(),
        };
        let signature = sign(&statement);
        record_entries.push(RecordEntry { target: target.clone(), seq, signature });
        entries.push(Entry { position: index.leaf_count + i as u64, statement, key_id, signature });
    }
    let record = Record::Publish(PublishRecord {
        published,
        file_name: content.file_name.clone(),
        file_size: content.file_size,
        file_hash: content.file_hash,
        key_id,
        entries: record_entries,
        note: provenance.note.clone(),
        publisher: provenance.publisher.clone(),
    });
    let mut bytes = if index.has_header { Vec::new() } else { encode_line(&HeaderRecord::current())? };
    let line = encode_line(&record)?;
    if line.len() > MAX_RECORD_LEN {
        return Err(StoreError::RecordTooLarge {
            targets: targets.len(),
            len: line.len(),
            limit: MAX_RECORD_LEN,
        });
    }
    bytes.extend_from_slice(&line);
    Ok((bytes, entries))
}

/// Reads the whole journal under the lock. A torn or garbage tail (damage with no
/// valid record after it) is truncated; damage followed by a valid record, or an
/// intact record that breaks the rules, is corruption and refused.
pub(crate) fn load_for_append(journal: &File, path: &Path) -> Result<JournalIndex> {
    let (index, torn_tail) = read_for_append(journal, path)?;
    if let Some(damage) = torn_tail {
        tracing::warn!(journal = %path.display(), %damage, "truncating the torn tail left by an interrupted publish");
        fts_fs::truncate_durably(journal, index.good_end, path)?;
    }
    Ok(index)
}

/// Reads the whole journal as a publish does, and judges what stopped the read: a
/// torn or garbage tail (damage with no valid record after it) is returned, for the
/// publisher to truncate; damage followed by a valid record, or an intact record that
/// breaks the rules, is corruption, an error. Writes nothing.
pub(crate) fn read_for_append(journal: &File, path: &Path) -> Result<(JournalIndex, Option<JournalDamage>)> {
    let mut reader = BufReader::with_capacity(1 << 16, journal);
    let mut index = JournalIndex::default();
    let Some(damage) = index.read_from(&mut reader, path)? else {
        return Ok((index, None));
    };
    if !damage.kind.is_torn_tail_candidate() {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            offset: damage.offset,
            detail: damage.to_string(),
        });
    }
    let after =
        valid_record_after(&mut reader, damage.offset + damage.len).map_err(StoreError::io("read", path))?;
    if let Some(at) = after {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            offset: damage.offset,
            detail: format!("{damage}, followed by a valid record at byte {at}"),
        });
    }
    Ok((index, Some(damage)))
}

/// Checks the journal's first record only (format and version), without reading on.
fn check_header_only(file: File, path: &Path) -> Result<()> {
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    read_line(&mut reader, &mut line).map_err(StoreError::io("read", path))?;
    if line.is_empty() {
        return Ok(()); // an empty journal: the next publish writes the header
    }
    JournalIndex::default().read_from(&mut &line[..], path).map(drop)
}

/// Copies `reader` into `file` in one pass, in fts-fs's stream shape
/// ([`fts_fs::stream`]): this thread reads and hashes, a second one writes and starts
/// the disk's writeback as it goes ([`DiskWriter`]), through [`DISK_BUFFERS`] reused
/// buffers. Returns the hasher and the number of bytes copied.
fn copy_hashing(reader: &mut impl Read, file: &File, source: &Path, dest: &Path) -> Result<(Sha256, u64)> {
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(DISK_BUFFERS);
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(DISK_BUFFERS);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> std::io::Result<()> {
            let mut disk = DiskWriter::new(file);
            for buffer in full_rx {
                disk.write(&buffer)?;
                // Never full: at most DISK_BUFFERS buffers exist.
                let _ = free_tx.try_send(buffer);
            }
            Ok(())
        });
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut fresh = DISK_BUFFERS;
        let read = loop {
            let mut buffer = if fresh > 0 {
                fresh -= 1;
                vec![0u8; CHUNK]
            } else {
                match free_rx.recv() {
                    Ok(buffer) => buffer,
                    Err(_) => break Ok(()), // the writer failed: its error is reported below
                }
            };
            buffer.resize(CHUNK, 0);
            let n = match read_full(reader, &mut buffer) {
                Ok(0) => break Ok(()),
                Ok(n) => n,
                Err(e) => break Err(StoreError::io("read", source)(e)),
            };
            hasher.update(&buffer[..n]);
            buffer.truncate(n);
            size += n as u64;
            if full_tx.send(buffer).is_err() {
                break Ok(());
            }
        };
        drop(full_tx);
        let written =
            writer.join().unwrap_or_else(|_| Err(std::io::Error::other("the writer thread panicked")));
        written.map_err(StoreError::io("write", dest))?;
        read?;
        Ok((hasher, size))
    })
}
