//! `fts gc`, on the signing host: removes the blob files that no entry needs any
//! more. It owns the one rule of what a blob is still needed for, and the only code
//! that ever deletes a blob. The journal and the log keep every statement: only files
//! under `blobs/` go.
//!
//! **What is needed.** An entry no longer needs its content when it is *withdrawn*
//! (its withdrawal is in the journal: hosts skip it) or *superseded* (a later entry of
//! its target and file name, published strictly later and not withdrawn, replaces it:
//! servers send it to new hosts without its body). Both rules are the journal
//! index's own ([`StoreSnapshot::withdrawal`](crate::StoreSnapshot::withdrawal),
//! [`StoreSnapshot::superseding`](crate::StoreSnapshot::superseding)), so gc and the
//! server never disagree on them. A blob is needed while one entry naming it still
//! needs it, or is among the `keep` newest versions of its (target, file name) that
//! are not withdrawn (`keep` 1: only what is current). Content is stored once, so a
//! blob that a superseded entry and a current one share is kept.
//!
//! **Unreferenced blobs** (named by no entry) are what a crashed publish leaves; they
//! are removed only when older than [`UNREFERENCED_MIN_AGE`] by their modification
//! time, because a live publish copies its blob before it writes the record naming it.
//!
//! **Why it is safe against a concurrent publish.** Everything (reading the journal,
//! deciding, removing) happens under the publish lock, from the journal as a publisher
//! reads it, so no record can be added while gc works. A publisher copies its blob
//! *outside* the lock, though, and may find the content already stored and count on
//! it; so every publish checks, once it holds the lock and before it writes a record,
//! that its blob is still there, and copies it again if gc removed it
//! (`Store::blob_still_there`). A record therefore never names a blob removed before
//! it, and gc never removes a blob named by a record it did not read.
//!
//! **How files go.** Each blob is reached from the `blobs/` handle one name at a time
//! (fts-fs's [`Dir`]): a shard folder that is a link is not entered, and only a
//! regular file is removed (`unlinkat`, which never follows a link); anything else at
//! a blob's name is left and reported. Each shard folder is flushed after its
//! removals, so a removal reported is durable. Empty shard folders are kept: a
//! publisher outside the lock may be about to rename a blob into one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::OpenOptions;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use fts_fs::{Dir, FileKind, FsError};
use fts_proto::{FileHash, FileName, Seq, Target};

use crate::error::{Result, StoreError};
use crate::journal::JournalIndex;
use crate::layout::{self, BLOBS, JOURNAL};
use crate::publish::{Store, load_for_append, read_for_append};

/// How old (by modification time) a blob that no entry names must be before gc
/// removes it: a publish in progress has copied its blob but not yet written the
/// record (it may be waiting for the lock).
pub const UNREFERENCED_MIN_AGE: Duration = Duration::from_secs(60 * 60);

/// Why one entry no longer needs its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unneeded {
    /// The entry is withdrawn.
    Withdrawn,
    /// The entry is superseded; this is the newest seq that supersedes it.
    SupersededBy(Seq),
}

/// An entry that names a collected blob, and why it does not need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// The entry's target.
    pub target: Target,
    /// Its seq.
    pub seq: Seq,
    /// Its file name.
    pub file_name: FileName,
    /// Why it does not need the blob.
    pub why: Unneeded,
}

/// Why a blob is collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collected {
    /// Every entry naming it (listed, in publish order) no longer needs it.
    Unneeded(Vec<Reference>),
    /// No entry names it, and it is older than [`UNREFERENCED_MIN_AGE`]: left by an
    /// interrupted publish.
    Unreferenced {
        /// Its age by modification time.
        age: Duration,
    },
}

/// One blob removed (or, in a dry run, that would be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectedBlob {
    /// Its hash (its name).
    pub hash: FileHash,
    /// Its size on disk.
    pub size: u64,
    /// Why it goes.
    pub why: Collected,
}

/// Something at a collectable blob's name that gc leaves alone because it is not a
/// regular file (a link, a folder, a FIFO): damage to look at, not content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where it is.
    pub path: PathBuf,
    /// What it is.
    pub found: FileKind,
}

/// What [`Store::gc`] removed, or would remove in a dry run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Nothing was removed: the report says what would be.
    pub dry_run: bool,
    /// The blobs, those named by entries first (in the order of their first entry),
    /// then the unreferenced ones (by hash).
    pub blobs: Vec<CollectedBlob>,
    /// Names left alone, not being regular files.
    pub skipped: Vec<Skipped>,
}

impl GcReport {
    /// The bytes removed (or that would be).
    pub fn bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    /// How many of the blobs no entry named, and their bytes.
    pub fn unreferenced(&self) -> (usize, u64) {
        let unreferenced = self.blobs.iter().filter(|b| matches!(b.why, Collected::Unreferenced { .. }));
        unreferenced.fold((0, 0), |(n, bytes), b| (n + 1, bytes + b.size))
    }
}

impl Store {
    /// Removes the blobs no entry needs (the module docs say which), keeping the
    /// `keep` newest versions of each file on each target that are not withdrawn;
    /// with `dry_run`, only says which it would remove (and writes nothing: not even
    /// a torn journal tail is truncated). Blobs named by no entry go when older than
    /// [`UNREFERENCED_MIN_AGE`] at `now`. Holds the publish lock throughout.
    pub fn gc(&self, keep: NonZeroUsize, dry_run: bool, now: SystemTime) -> Result<GcReport> {
        let _lock = self.lock()?;
        let index = self.read_journal(dry_run)?;
        let decision = decide(&index, keep);
        let blobs_path = self.dir().join(BLOBS);
        let blobs = Dir::open(&blobs_path)?;
        let mut report = GcReport { dry_run, blobs: Vec::new(), skipped: Vec::new() };
        for (hash, references) in decision.unneeded {
            if let Some(size) = inspect(&blobs, &hash, &mut report.skipped)? {
                report.blobs.push(CollectedBlob { hash, size, why: Collected::Unneeded(references) });
            }
        }
        report.blobs.extend(unreferenced(&blobs, &decision.referenced, now)?);
        if !dry_run {
            remove(&blobs, &report.blobs)?;
        }
        Ok(report)
    }

    /// The journal as a publisher reads it, under the lock. A real run truncates a
    /// torn tail as every writer does; a dry run only reads.
    fn read_journal(&self, dry_run: bool) -> Result<JournalIndex> {
        let path = self.dir().join(JOURNAL);
        let journal = OpenOptions::new()
            .read(true)
            .write(!dry_run)
            .open(&path)
            .map_err(StoreError::io("open", &path))?;
        if dry_run { Ok(read_for_append(&journal, &path)?.0) } else { load_for_append(&journal, &path) }
    }
}

/// Which blobs the journal's entries need, from the index alone (no file is looked at).
#[derive(Debug, Default)]
struct Decision {
    /// Every hash an entry names.
    referenced: HashSet<FileHash>,
    /// The hashes no entry needs, each with every entry naming it, in the order of the
    /// first such entry (publish order).
    unneeded: Vec<(FileHash, Vec<Reference>)>,
}

/// The heart of gc: which hashes are needed by some entry of `index`, and which are
/// named only by entries that need them no more.
fn decide(index: &JournalIndex, keep: NonZeroUsize) -> Decision {
    let kept = kept_versions(index, keep);
    let mut needed = HashSet::new();
    let mut decision = Decision::default();
    let mut unneeded: HashMap<FileHash, Vec<Reference>> = HashMap::new();
    let mut order = Vec::new();
    for (i, entry) in index.entries.iter().enumerate() {
        let s = &entry.statement;
        decision.referenced.insert(s.file_hash);
        match why_unneeded(index, entry) {
            Some(why) if !kept.contains(&i) => {
                let references = unneeded.entry(s.file_hash).or_insert_with(|| {
                    order.push(s.file_hash);
                    Vec::new()
                });
                references.push(Reference {
                    target: s.target.clone(),
                    seq: s.seq,
                    file_name: s.file_name.clone(),
                    why,
                });
            }
            _ => {
                needed.insert(s.file_hash);
            }
        }
    }
    decision.unneeded = order
        .into_iter()
        .filter(|hash| !needed.contains(hash))
        .filter_map(|hash| unneeded.remove(&hash).map(|references| (hash, references)))
        .collect();
    decision
}

/// Why `entry` does not need its content, if it does not: withdrawn (which wins: a
/// withdrawn entry is never sent whole), else superseded by its newest superseding
/// version.
fn why_unneeded(index: &JournalIndex, entry: &crate::Entry) -> Option<Unneeded> {
    let s = &entry.statement;
    if index.withdrawal(&s.target, s.seq).is_some() {
        return Some(Unneeded::Withdrawn);
    }
    index.superseding(entry).next().map(|newer| Unneeded::SupersededBy(newer.statement.seq))
}

/// The positions (in `index.entries`) of the `keep` newest versions of each (target,
/// file name) that are not withdrawn: kept whatever supersedes them, so that an
/// operator can go back `keep - 1` versions with their content still at hand.
fn kept_versions(index: &JournalIndex, keep: NonZeroUsize) -> HashSet<usize> {
    index
        .by_name
        .values()
        .flat_map(|versions| {
            versions
                .iter()
                .rev()
                .copied()
                .filter(|&p| {
                    index
                        .entries
                        .get(p)
                        .is_some_and(|e| index.withdrawal(&e.statement.target, e.statement.seq).is_none())
                })
                .take(keep.get())
        })
        .collect()
}

/// The size of the blob of `hash` if it is there as a regular file, reached without
/// following a link; `None` when it is not there (collected before, or never copied),
/// or when something else is (noted in `skipped`).
fn inspect(blobs: &Dir, hash: &FileHash, skipped: &mut Vec<Skipped>) -> Result<Option<u64>> {
    let (shard_name, name) = layout::blob_names(hash);
    let shard = match blobs.open_dir(&shard_name) {
        Ok(shard) => shard,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(FsError::SymbolicLink { path }) => {
            skipped.push(Skipped { path, found: FileKind::SymbolicLink });
            return Ok(None);
        }
        Err(FsError::WrongKind { path, found, .. }) => {
            skipped.push(Skipped { path, found });
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    match shard.stat(&name) {
        Ok(stat) if stat.kind == FileKind::File => Ok(Some(stat.len)),
        Ok(stat) => {
            skipped.push(Skipped { path: shard.join(&name), found: stat.kind });
            Ok(None)
        }
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The blobs in `blobs/` that no entry names (not in `referenced`) and that are
/// regular files older than [`UNREFERENCED_MIN_AGE`] at `now`, by hash. Names that are
/// not a blob's (a sync tool's temp, a stray file) are not blobs and are left alone,
/// as is anything whose age is unknown or in the future.
fn unreferenced(blobs: &Dir, referenced: &HashSet<FileHash>, now: SystemTime) -> Result<Vec<CollectedBlob>> {
    let mut found = BTreeMap::new();
    for (shard_name, kind) in blobs.entries()? {
        let Some(shard_name) = shard_name.to_str().filter(|n| n.len() == 2 && kind == FileKind::Dir) else {
            continue;
        };
        let shard = blobs.open_dir(shard_name)?;
        for (name, kind) in shard.entries()? {
            let Some(hash) = name.to_str().and_then(|n| layout::hash_of_blob_name(shard_name, n)) else {
                continue;
            };
            if kind != FileKind::File || referenced.contains(&hash) {
                continue;
            }
            let stat = shard.stat(&name)?;
            let age = stat.mtime.and_then(|mtime| now.duration_since(mtime).ok());
            if let Some(age) = age.filter(|age| *age >= UNREFERENCED_MIN_AGE && stat.kind == FileKind::File) {
                found.insert(
                    hash,
                    CollectedBlob { hash, size: stat.len, why: Collected::Unreferenced { age } },
                );
            }
        }
    }
    Ok(found.into_values().collect())
}

/// Removes the `planned` blobs, shard by shard, flushing each shard folder after its
/// removals. On a failure, the shard is still flushed, and the error says how many
/// blobs went before it.
fn remove(blobs: &Dir, planned: &[CollectedBlob]) -> Result<()> {
    let mut by_shard: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for blob in planned {
        let (shard, name) = layout::blob_names(&blob.hash);
        by_shard.entry(shard).or_default().push(name);
    }
    let mut removed = 0;
    let stopped = |removed, source| StoreError::GcStopped { removed, planned: planned.len(), source };
    for (shard_name, names) in by_shard {
        let shard = blobs.open_dir(&shard_name).map_err(|e| stopped(removed, e))?;
        let mut failure = None;
        for name in names {
            match shard.remove_file(&name) {
                Ok(()) => removed += 1,
                // Gone already (another gc, by hand): what was wanted.
                Err(e) if e.is_not_found() => removed += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let synced = shard.sync();
        if let Some(e) = failure.or(synced.err()) {
            return Err(stopped(removed, e));
        }
    }
    tracing::info!(removed, "collected blobs that no entry needs");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use fts_proto::WithdrawReason;
    use fts_trust::SigningKey;

    use super::*;

    /// A real store in a temp folder, published to and withdrawn from as `fts publish`
    /// and `fts withdraw` do; the decision is then made on its journal's index.
    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        key: SigningKey,
        clock: u64,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open_or_create(dir.path().join("store")).unwrap();
            Fixture { dir, store, key: SigningKey::from_seed(&[7; 32]), clock: 1_795_626_000 }
        }

        /// Publishes `content` as `name` to `targets`; returns its hash.
        fn publish(&mut self, name: &str, content: &[u8], targets: &[&str]) -> FileHash {
            let source = self.dir.path().join("source");
            std::fs::write(&source, content).unwrap();
            let targets: Vec<Target> = targets.iter().map(|t| Target::parse(t).unwrap()).collect();
            self.clock += 10;
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(self.clock);
            let name = FileName::parse(name).unwrap();
            let entries = self.store.publish_at(&source, &name, &targets, &self.key, now).unwrap();
            entries[0].statement.file_hash
        }

        fn withdraw(&mut self, target: &str, seq: u64) {
            self.clock += 10;
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(self.clock);
            let (target, seq) = (Target::parse(target).unwrap(), Seq::new(seq).unwrap());
            let reason = WithdrawReason::parse("test").unwrap();
            self.store.withdraw(&target, seq, reason, false, &self.key, now).unwrap();
        }

        fn decide(&self, keep: usize) -> Decision {
            let path = self.store.dir().join(JOURNAL);
            let journal = std::fs::File::open(&path).unwrap();
            let (index, _) = read_for_append(&journal, Path::new("journal")).unwrap();
            decide(&index, NonZeroUsize::new(keep).unwrap())
        }
    }

    /// The unneeded hashes, each with its references as "target seq name why".
    fn unneeded(decision: &Decision) -> Vec<(FileHash, Vec<String>)> {
        let show = |r: &Reference| {
            let why = match r.why {
                Unneeded::Withdrawn => "withdrawn".to_owned(),
                Unneeded::SupersededBy(seq) => format!("superseded by {seq}"),
            };
            format!("{} {} {} {why}", r.target, r.seq, r.file_name)
        };
        decision.unneeded.iter().map(|(hash, refs)| (*hash, refs.iter().map(show).collect())).collect()
    }

    #[test]
    fn superseded_and_withdrawn_versions_are_unneeded_and_the_current_ones_needed() {
        let mut f = Fixture::new();
        let v1 = f.publish("app.conf", b"v1", &["web-01"]);
        let v2 = f.publish("app.conf", b"v2", &["web-01"]);
        let tool = f.publish("tool.conf", b"tool", &["web-01"]);
        let v3 = f.publish("app.conf", b"v3", &["web-01"]);
        f.withdraw("web-01", 2);
        let decision = f.decide(1);
        assert_eq!(
            unneeded(&decision),
            [
                (v1, vec!["web-01 1 app.conf superseded by 4".to_owned()]),
                (v2, vec!["web-01 2 app.conf withdrawn".to_owned()]),
            ]
        );
        assert_eq!(decision.referenced, HashSet::from([v1, v2, v3, tool]));
    }

    #[test]
    fn keep_two_keeps_the_previous_version_that_is_not_withdrawn() {
        let mut f = Fixture::new();
        let v1 = f.publish("app.conf", b"v1", &["web-01"]);
        let v2 = f.publish("app.conf", b"v2", &["web-01"]);
        let v3 = f.publish("app.conf", b"v3", &["web-01"]);
        f.publish("app.conf", b"v4", &["web-01"]);
        assert_eq!(unneeded(&f.decide(2)).iter().map(|u| u.0).collect::<Vec<_>>(), [v1, v2]);
        assert_eq!(unneeded(&f.decide(3)).iter().map(|u| u.0).collect::<Vec<_>>(), [v1]);
        assert!(f.decide(4).unneeded.is_empty());
        // A withdrawn version never counts among those kept: v3 withdrawn, keep 2 keeps
        // v4 and v2.
        f.withdraw("web-01", 3);
        assert_eq!(
            unneeded(&f.decide(2)),
            [
                (v1, vec!["web-01 1 app.conf superseded by 4".to_owned()]),
                (v3, vec!["web-01 3 app.conf withdrawn".to_owned()]),
            ]
        );
    }

    #[test]
    fn content_a_current_entry_names_is_needed_whoever_else_names_it() {
        let mut f = Fixture::new();
        // The same bytes as an old version of one name and the current one of another.
        let shared = f.publish("app.conf", b"same bytes", &["web-01"]);
        f.publish("app.conf", b"newer", &["web-01"]);
        f.publish("copy.conf", b"same bytes", &["web-01"]);
        // Superseded on one target of a publish, current on the other.
        let both = f.publish("db.conf", b"db v1", &["web-01", "db-01"]);
        f.publish("db.conf", b"db v2", &["web-01"]);
        // Withdrawn on one target, current on another.
        let spread = f.publish("x.conf", b"x", &["web-01"]);
        f.publish("x.conf", b"x", &["group:web"]);
        f.withdraw("web-01", 6);
        let decision = f.decide(1);
        for hash in [shared, both, spread] {
            assert!(decision.unneeded.iter().all(|(h, _)| *h != hash), "{hash} is needed");
        }
        assert!(decision.unneeded.is_empty(), "{:?}", unneeded(&decision));
    }

    #[test]
    fn a_version_after_a_withdrawn_newest_is_current_again() {
        let mut f = Fixture::new();
        let v1 = f.publish("app.conf", b"v1", &["web-01"]);
        let v2 = f.publish("app.conf", b"v2", &["web-01"]);
        f.withdraw("web-01", 2);
        // v2 is withdrawn, so nothing supersedes v1: hosts still get it whole.
        let decision = f.decide(1);
        assert_eq!(unneeded(&decision), [(v2, vec!["web-01 2 app.conf withdrawn".to_owned()])]);
        assert!(decision.referenced.contains(&v1));
    }

    #[test]
    fn a_blob_every_entry_of_which_is_unneeded_lists_them_all_in_publish_order() {
        let mut f = Fixture::new();
        let old = f.publish("a.conf", b"old", &["web-01", "db-01"]);
        f.publish("a.conf", b"new", &["web-01", "db-01"]);
        f.withdraw("db-01", 2);
        // On db-01 the newest (seq 2) is withdrawn, so seq 1 is current again there.
        assert!(f.decide(1).unneeded.iter().all(|(h, _)| *h != old));
        f.publish("a.conf", b"newest", &["db-01"]);
        assert_eq!(
            unneeded(&f.decide(1))[0],
            (
                old,
                vec![
                    "web-01 1 a.conf superseded by 2".to_owned(),
                    "db-01 1 a.conf superseded by 3".to_owned()
                ]
            )
        );
    }

    #[test]
    fn a_publish_whose_blob_gc_removed_while_it_waited_for_the_lock_copies_it_again() {
        let f = Fixture::new();
        let source = f.dir.path().join("source");
        std::fs::write(&source, b"stored before").unwrap();
        // What a publish does outside the lock: the content is stored (or found so).
        let (hash, size) = f.store.put_blob(std::fs::File::open(&source).unwrap()).unwrap();
        let blob = f.store.blob_path(&hash);
        f.store.blob_still_there(&source, hash, size).unwrap();
        assert!(blob.exists());
        // gc removed it before the publish got the lock.
        std::fs::remove_file(&blob).unwrap();
        f.store.blob_still_there(&source, hash, size).unwrap();
        assert_eq!(std::fs::read(&blob).unwrap(), b"stored before", "copied again");
        // And the file changed in between: refused, the record is never written.
        std::fs::remove_file(&blob).unwrap();
        std::fs::write(&source, b"other bytes").unwrap();
        let err = f.store.blob_still_there(&source, hash, size).unwrap_err();
        assert!(matches!(err, StoreError::ChangedWhilePublishing { .. }), "{err:?}");
    }
}
