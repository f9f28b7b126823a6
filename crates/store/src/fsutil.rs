//! Small file system helpers shared by the publisher and the status folder: flushing
//! a directory, and temporary files that are locked by their owner while they live.
//!
//! A [`TempFile`] holds an exclusive advisory lock (`flock`) on itself from the moment
//! it is created until it is renamed into place or removed. The lock dies with its
//! process, so [`remove_stale_temps`] can tell the temp of a publisher that was killed
//! (lock free) from one still being written by a live publisher (lock held) without
//! guessing from pids or ages. It also leaves alone anything younger than a minute, so
//! a temp caught in the instant between its creation and its locking is never taken
//! for stale. Deleting a live temp would only make its publisher fail with a clear
//! error, never corrupt the store, so even a wrong call here is safe.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::error::{Result, StoreError};

/// Temps younger than this are never removed by [`remove_stale_temps`].
pub(crate) const STALE_TEMP_MIN_AGE: Duration = Duration::from_secs(60);

/// Makes a new or renamed directory entry durable: fsync of the directory itself.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let handle = File::open(dir).map_err(StoreError::io("open directory", dir))?;
    handle.sync_all().map_err(StoreError::io("flush directory", dir))
}

/// Reads a small file of the status folder whole; `None` when it does not exist. A
/// file larger than `max` bytes cannot be one the server wrote and is refused.
pub(crate) fn read_small_file(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io("open", path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes).map_err(StoreError::io("read", path))?;
    if bytes.len() as u64 > max {
        return Err(StoreError::BadStatusFile {
            path: path.to_path_buf(),
            detail: format!("larger than {max} bytes"),
        });
    }
    Ok(Some(bytes))
}

/// A unique name for a temporary file of this process: prefix, pid, time and a
/// counter, so two threads or two processes never pick the same one.
pub(crate) fn unique_temp_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}{}-{nanos:09}-{n}.tmp", std::process::id())
}

/// A temporary file, exclusively locked while it lives, removed on drop unless it was
/// [`persist`](TempFile::persist)ed.
pub(crate) struct TempFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Creates (never opens an existing) `dir/<prefix><unique>.tmp` and locks it.
    pub(crate) fn create(dir: &Path, prefix: &str) -> Result<TempFile> {
        let path = dir.join(unique_temp_name(prefix));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(StoreError::io("create temporary file", &path))?;
        let temp = TempFile { file, path, armed: true };
        temp.file.lock().map_err(StoreError::io("lock temporary file", &temp.path))?;
        Ok(temp)
    }

    /// Renames the file onto `dest` (replacing it) and keeps it. The caller flushes
    /// the data before and the directory after.
    pub(crate) fn persist(mut self, dest: &Path) -> Result<()> {
        fs::rename(&self.path, dest).map_err(StoreError::io("rename temporary file into", dest))?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = fs::remove_file(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot remove temporary file");
        }
    }
}

/// Removes the temps in `dir` whose owner is gone: lock free and at least
/// [`STALE_TEMP_MIN_AGE`] old. Never fails: a temp it cannot judge is left alone and
/// logged. Returns how many it removed.
pub(crate) fn remove_stale_temps(dir: &Path, now: SystemTime) -> usize {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %e, "cannot list temporary files");
            return 0;
        }
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || path.extension().is_none_or(|ext| ext != "tmp") {
            continue;
        }
        let young = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_none_or(|age| age < STALE_TEMP_MIN_AGE);
        if young {
            continue;
        }
        let Ok(file) = File::open(&path) else { continue };
        match file.try_lock() {
            Ok(()) => match fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed a temporary file left by an interrupted run");
                    removed += 1;
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove stale temporary file")
                }
            },
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot check temporary file")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_temp_is_kept_and_an_unlocked_old_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let live = TempFile::create(dir.path(), "blob-").unwrap();
        // A killed owner leaves its file behind with its lock released.
        let orphan = dir.path().join("blob-orphan.tmp");
        fs::write(&orphan, b"partial").unwrap();
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(remove_stale_temps(dir.path(), later), 1);
        assert!(!orphan.exists(), "an unlocked old temp is removed");
        assert!(live.path.exists(), "a temp whose owner holds its lock is kept");
    }

    #[test]
    fn a_young_unlocked_temp_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let orphan = dir.path().join("blob-orphan.tmp");
        fs::write(&orphan, b"partial").unwrap();
        assert_eq!(remove_stale_temps(dir.path(), SystemTime::now()), 0);
        assert!(orphan.exists());
    }

    #[test]
    fn a_dropped_temp_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let temp = TempFile::create(dir.path(), "x-").unwrap();
        let path = temp.path.clone();
        drop(temp);
        assert!(!path.exists());
    }
}
