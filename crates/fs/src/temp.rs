//! [`TempFile`]: the one kind of temporary file fts makes, its one name scheme
//! (`.fts-tmp-<label>-<16 hex>`), and the one rule by which the temps of a killed
//! process are removed ([`remove_stale_temps`]). The crate docs give the crash
//! argument and say why the rule is safe.

use std::borrow::Borrow;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::FlockOperation;
use rustix::io::Errno;

use crate::{Dir, FileKind, FileMode, FileStat, FsError, Result};

/// The start of every temp's name, and only of temps: a dot-file (never a name fts
/// installs or serves: file names never start with a dot; skipped by installers and
/// collectors that read `*.prom` or `*.json`).
pub const TEMP_PREFIX: &str = ".fts-tmp-";

/// How many fresh names are tried before giving up when each one is taken.
const ATTEMPTS: usize = 8;

/// A temporary file in a folder: created exclusively under a fresh random name, locked
/// (`flock`) for as long as this value lives, and removed when dropped unless
/// [`persist`](TempFile::persist)ed. `D` is how the folder is held: an `Arc<Dir>` for
/// a temp that outlives the scope that made it (a body being received), `&Dir` for
/// one that does not.
#[derive(Debug)]
pub struct TempFile<D: Borrow<Dir> = Arc<Dir>> {
    dir: D,
    name: OsString,
    /// A handle of the temp (the same open file as the one given to the caller),
    /// kept so that the lock lives exactly as long as the name is ours, wherever the
    /// caller's handle goes, and so that [`TempFile::sync`] can flush it.
    handle: File,
    armed: bool,
}

impl<D: Borrow<Dir>> TempFile<D> {
    /// Creates `.fts-tmp-<label>-<16 hex>` in `dir` with `mode`, open for reading and
    /// writing, and locks it; returns the temp and a handle to write through (which
    /// may travel to another thread; the lock stays with the temp).
    ///
    /// The creation is exclusive (`O_CREAT|O_EXCL`, no link followed), so a name
    /// someone planted is never opened: a clash only makes the next name be tried.
    /// Once locked, the name is checked to still be this file: a cleaner that took it
    /// in the instant before the lock makes a new name be tried, so the temp returned
    /// is one that no cleaner removes while it lives. `label` says what the temp is
    /// for: lower-case ASCII letters.
    pub fn create(dir: D, label: &str, mode: FileMode) -> Result<(TempFile<D>, File)> {
        if label.is_empty() || !label.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(FsError::NotAName { name: label.into() });
        }
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let name = OsString::from(format!("{TEMP_PREFIX}{label}-{}", random_hex()));
            let folder: &Dir = dir.borrow();
            let file = match folder.create_exclusive(&name, mode.creation_bits()) {
                Ok(file) => file,
                Err(e) if e.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::AlreadyExists) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !lock_if_named(folder, &name, &file)? {
                // A cleaner took the name before the lock: it removes it; not ours.
                last = Some(FsError::io("lock", folder.join(&name))(std::io::ErrorKind::WouldBlock.into()));
                continue;
            }
            // From here on the name is ours: an error below removes it (by the drop).
            let temp = TempFile { dir, name, handle: file, armed: true };
            if let FileMode::Exact(bits) = mode {
                rustix::fs::fchmod(&temp.handle, rustix::fs::Mode::from_raw_mode(bits as _))
                    .map_err(|e| FsError::io("set the mode of", temp.path())(e.into()))?;
            }
            let file = temp.handle.try_clone().map_err(FsError::io("create", temp.path()))?;
            return Ok((temp, file));
        }
        Err(last.unwrap_or_else(|| FsError::NotAName { name: label.into() }))
    }

    /// The temp's name in its folder.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The temp's path, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir.borrow().join(&self.name)
    }

    /// Flushes the temp's bytes and metadata to disk (`fsync`): step 3 of a durable
    /// write, before it is renamed into place.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.handle).map_err(|e| FsError::io("flush", self.path())(e.into()))
    }

    /// Renames the temp to `name` in `target` (its own folder or another on the same
    /// file system), replacing what is there (a link there is replaced, never
    /// followed). Flush the temp before ([`TempFile::sync`]) and `target` after
    /// ([`Dir::sync`]) when the write must be durable. On failure the temp is still
    /// removed when dropped.
    pub fn persist(mut self, target: &Dir, name: impl AsRef<OsStr>) -> Result<()> {
        self.dir.borrow().rename_into(&self.name, target, name)?;
        self.armed = false;
        Ok(())
    }

    /// Like [`TempFile::persist`], but never replaces a file: the temp is linked to
    /// `name`, which fails with [`FsError::AlreadyExists`] if the name exists (even
    /// as a dangling link), atomically; then the temp's own name is removed.
    pub fn persist_new(self, target: &Dir, name: impl AsRef<OsStr>) -> Result<()> {
        self.dir.borrow().link_into(&self.name, target, name)
        // Dropping `self` removes the temp's name; the file stays under `name`.
    }
}

impl<D: Borrow<Dir>> Drop for TempFile<D> {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a temp left behind is unlocked once this process is gone,
            // and removed by its owner's next cleanup. (The lock is released after
            // this, when `handle` is closed.)
            let _ = self.dir.borrow().remove_file(&self.name);
        }
    }
}

/// Takes the temp's lock and checks that `name` still names the locked file. False
/// when a cleaner holds the lock or took the name in the instant since its creation.
/// Where the file system has no `flock`, the temp goes on unlocked: cleaners cannot
/// lock it either, so they leave it alone.
fn lock_if_named(dir: &Dir, name: &OsStr, file: &File) -> Result<bool> {
    match rustix::fs::flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => return Ok(false),
        Err(_) => {}
    }
    still_named(dir, name, file)
}

/// Whether `name` in `dir` is (still) the open `file`.
fn still_named(dir: &Dir, name: &OsStr, file: &File) -> Result<bool> {
    let held = FileStat::of_file(file, &dir.join(name))?;
    match dir.stat(name) {
        Ok(now) => Ok(now.dev == held.dev && now.ino == held.ino),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `name` is a temp's name (by [`TEMP_PREFIX`]).
pub fn is_temp_name(name: &OsStr) -> bool {
    name.as_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

/// The temps of the release before fts-fs (`blob-*.tmp` and `journal-*.tmp` in a
/// store's `tmp/`, `body-*.tmp` in a host's `.fts-partial/`): a crash under that
/// release left them, and nothing else removes them after an upgrade. Their writers
/// locked them too, but only just after creating them, so they are judged only once
/// [`LEGACY_TEMP_MIN_AGE`] old. To be dropped a release or two from now.
fn is_legacy_temp_name(name: &OsStr) -> bool {
    let name = name.as_bytes();
    name.ends_with(b".tmp") && [&b"blob-"[..], b"journal-", b"body-"].iter().any(|p| name.starts_with(p))
}

/// How old a temp of the previous release must be before it is judged stale.
pub const LEGACY_TEMP_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Whether `stat` says the file was last written at least [`LEGACY_TEMP_MIN_AGE`] ago.
fn old_enough(stat: &FileStat) -> bool {
    stat.mtime
        .and_then(|m| std::time::SystemTime::now().duration_since(m).ok())
        .is_some_and(|age| age >= LEGACY_TEMP_MIN_AGE)
}

/// Removes the temps in `dir` whose writer is gone: regular files named as temps
/// (or as the previous release's, once an hour old) whose lock this
/// call can take. A temp whose lock is held (its writer lives,
/// however slow) is kept; one that cannot be judged (no `flock` on this file system,
/// not readable by this user) is left alone. Returns how many were removed, or the
/// first error met after trying every temp.
pub fn remove_stale_temps(dir: &Dir) -> Result<usize> {
    let mut removed = 0;
    let mut first_error = None;
    for (name, kind) in dir.entries()? {
        if kind != FileKind::File {
            continue;
        }
        let stale_candidate = is_temp_name(&name)
            || (is_legacy_temp_name(&name) && dir.stat(&name).is_ok_and(|stat| old_enough(&stat)));
        if !stale_candidate {
            continue;
        }
        match remove_if_stale(dir, &name) {
            Ok(true) => removed += 1,
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(removed), Err)
}

/// Removes the temp `name` if its lock is free and, once taken, the name is still
/// the locked file (it was not renamed into place meanwhile). Says whether it did.
fn remove_if_stale(dir: &Dir, name: &OsStr) -> Result<bool> {
    let file = match dir.open_file(name) {
        Ok(file) => file,
        // Gone (renamed into place or removed) or swapped since the listing.
        Err(e) if e.is_not_found() => return Ok(false),
        Err(FsError::SymbolicLink { .. } | FsError::WrongKind { .. }) => return Ok(false),
        Err(e) if e.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied) => {
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        // Held: its writer lives. Any other error: no locks here, so no judging.
        Err(_) => return Ok(false),
    }
    if !still_named(dir, name, &file)? {
        return Ok(false);
    }
    match dir.remove_file(name) {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// 16 hex digits from the system's random source; should it fail, from the time, the
/// process id and a counter, which still never repeat within this process (and a
/// clash with another process only makes the next name be tried).
fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mixed = nanos ^ (u64::from(std::process::id()) << 40) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes = mixed.to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn an_old_temp_of_the_previous_release_is_removed_and_a_fresh_one_kept() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Dir::open(temp.path()).unwrap();
        let long_ago = std::time::SystemTime::now() - 2 * LEGACY_TEMP_MIN_AGE;
        for name in ["blob-1234-000000001-0.tmp", "journal-1-2-3.tmp", "body-0123456789abcdef.tmp"] {
            std::fs::File::create(temp.path().join(name)).unwrap().set_modified(long_ago).unwrap();
        }
        std::fs::write(temp.path().join("blob-fresh.tmp"), b"a live old writer's").unwrap();
        std::fs::File::create(temp.path().join("notes.tmp")).unwrap().set_modified(long_ago).unwrap();
        assert_eq!(remove_stale_temps(&dir).unwrap(), 3);
        let mut left: Vec<_> = std::fs::read_dir(temp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["blob-fresh.tmp", "notes.tmp"]);
    }

    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn folder() -> (tempfile::TempDir, Arc<Dir>) {
        let temp = tempfile::tempdir().unwrap();
        let dir = Arc::new(Dir::open(temp.path()).unwrap());
        (temp, dir)
    }

    #[test]
    fn a_temp_is_removed_unless_persisted() {
        let (temp, dir) = folder();
        let (dropped, _) = TempFile::create(Arc::clone(&dir), "t", FileMode::LessUmask(0o600)).unwrap();
        let path = dropped.path();
        assert!(path.exists());
        let name = dropped.name().to_string_lossy().into_owned();
        assert!(name.starts_with(".fts-tmp-t-") && name.len() == TEMP_PREFIX.len() + 2 + 16, "{name}");
        assert!(is_temp_name(dropped.name()));
        drop(dropped);
        assert!(!path.exists());

        let (kept, mut file) = TempFile::create(&*dir, "t", FileMode::LessUmask(0o600)).unwrap();
        file.write_all(b"whole").unwrap();
        drop(file);
        kept.sync().unwrap();
        kept.persist(&dir, "final").unwrap();
        dir.sync().unwrap();
        assert_eq!(std::fs::read(temp.path().join("final")).unwrap(), b"whole");
        assert_eq!(dir.entries().unwrap().len(), 1, "nothing but the final file");
    }

    #[test]
    fn persist_new_never_replaces_and_leaves_no_temp() {
        let (temp, dir) = folder();
        std::fs::write(temp.path().join("taken"), b"old").unwrap();
        std::os::unix::fs::symlink(temp.path().join("nowhere"), temp.path().join("dangling")).unwrap();
        for name in ["taken", "dangling"] {
            let (temp_file, _) = TempFile::create(&*dir, "t", FileMode::Exact(0o644)).unwrap();
            assert!(
                matches!(temp_file.persist_new(&dir, name), Err(FsError::AlreadyExists { .. })),
                "{name}"
            );
        }
        assert_eq!(std::fs::read(temp.path().join("taken")).unwrap(), b"old");
        assert!(!temp.path().join("nowhere").exists(), "nothing made at a link's target");
        let (temp_file, mut file) = TempFile::create(&*dir, "t", FileMode::Exact(0o644)).unwrap();
        file.write_all(b"new").unwrap();
        temp_file.persist_new(&dir, "fresh").unwrap();
        assert_eq!(std::fs::read(temp.path().join("fresh")).unwrap(), b"new");
        assert_eq!(dir.entries().unwrap().len(), 3, "taken, dangling and fresh only");
    }

    #[test]
    fn an_exact_mode_holds_whatever_the_umask_and_a_masked_one_never_exceeds_its_bits() {
        let (_temp, dir) = folder();
        for bits in [0o644, 0o600, 0o444] {
            let (temp_file, _) = TempFile::create(&*dir, "t", FileMode::Exact(bits)).unwrap();
            let mode = std::fs::metadata(temp_file.path()).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, bits);
        }
        let (temp_file, _) = TempFile::create(&*dir, "t", FileMode::LessUmask(0o600)).unwrap();
        let mode = std::fs::metadata(temp_file.path()).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode & !0o600, 0);
    }

    #[test]
    fn a_locked_temp_is_kept_and_an_unlocked_one_removed_at_once() {
        let (temp, dir) = folder();
        let (live, _) = TempFile::create(&*dir, "blob", FileMode::LessUmask(0o644)).unwrap();
        // A killed writer leaves its temp with its lock released, however young.
        std::fs::write(temp.path().join(".fts-tmp-blob-0123456789abcdef"), b"partial").unwrap();
        // Not temps: left alone whatever their lock.
        std::fs::write(temp.path().join("blob-0123.tmp"), b"").unwrap();
        std::fs::create_dir(temp.path().join(".fts-tmp-dir")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", temp.path().join(".fts-tmp-link")).unwrap();
        assert_eq!(remove_stale_temps(&dir).unwrap(), 1);
        assert!(!temp.path().join(".fts-tmp-blob-0123456789abcdef").exists(), "an unlocked temp is removed");
        assert!(live.path().exists(), "a temp whose writer holds its lock is kept");
        for kept in ["blob-0123.tmp", ".fts-tmp-dir", ".fts-tmp-link"] {
            assert!(std::fs::symlink_metadata(temp.path().join(kept)).is_ok(), "{kept}");
        }
        // Its handle may be gone (to another thread, closed): the lock stays with it.
        let (live, file) = TempFile::create(&*dir, "body", FileMode::LessUmask(0o600)).unwrap();
        drop(file);
        assert_eq!(remove_stale_temps(&dir).unwrap(), 0);
        assert!(live.path().exists());
        drop(live);
        assert_eq!(remove_stale_temps(&dir).unwrap(), 0, "dropped: already gone");
    }

    #[test]
    fn a_temp_taken_by_a_cleaner_before_its_lock_is_never_used() {
        // The instant between creation and lock: the cleaner saw the name unlocked
        // and removed it (or holds its lock). The creator's check finds it is no
        // longer its file, so it takes a fresh name instead.
        let (temp, dir) = folder();
        let file = dir.create_exclusive(".fts-tmp-t-0000000000000000", 0o600).unwrap();
        std::fs::remove_file(temp.path().join(".fts-tmp-t-0000000000000000")).unwrap();
        assert!(!lock_if_named(&dir, OsStr::new(".fts-tmp-t-0000000000000000"), &file).unwrap());

        let name = OsStr::new(".fts-tmp-t-1111111111111111");
        let file = dir.create_exclusive(name, 0o600).unwrap();
        let cleaner = dir.open_file(name).unwrap();
        rustix::fs::flock(&cleaner, FlockOperation::NonBlockingLockExclusive).unwrap();
        assert!(!lock_if_named(&dir, name, &file).unwrap(), "the cleaner holds it");
        drop(cleaner);
        assert!(lock_if_named(&dir, name, &file).unwrap(), "free and still named: ours");
        assert_eq!(remove_stale_temps(&dir).unwrap(), 0, "and then never removed");
    }

    #[test]
    fn labels_are_lower_case_letters() {
        let (_temp, dir) = folder();
        for label in ["", "A", "a-b", "a/b", "."] {
            assert!(matches!(
                TempFile::create(&*dir, label, FileMode::LessUmask(0o600)),
                Err(FsError::NotAName { .. })
            ));
        }
    }
}
