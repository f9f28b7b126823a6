//! [`TempFile`]: a file created exclusively under a fresh random name in a folder,
//! removed when dropped unless [`persist`](TempFile::persist)ed. The first half of
//! every durable write (write the temp, flush it, rename it into place, flush the
//! folder; the crate docs give the crash argument).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Dir, FsError, Result};

/// How many fresh names are tried before giving up when each one exists already.
const ATTEMPTS: usize = 8;

/// The name of a temporary file in a folder, removed when dropped unless persisted.
/// The open handle is returned beside it by [`TempFile::create`], so the handle can
/// travel (to a writer thread) while the name stays with its owner.
#[derive(Debug)]
pub struct TempFile {
    dir: Arc<Dir>,
    name: OsString,
    armed: bool,
}

impl TempFile {
    /// Creates `<prefix><16 hex digits><suffix>` in `dir` with `mode` (less the
    /// umask), open for reading and writing. The name is random, and the creation
    /// exclusive (`O_CREAT|O_EXCL`), so a name someone planted is never opened: a
    /// clash only makes the next name be tried.
    pub fn create(dir: &Arc<Dir>, prefix: &str, suffix: &str, mode: u32) -> Result<(TempFile, File)> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let name = OsString::from(format!("{prefix}{}{suffix}", random_hex()));
            match dir.create_exclusive(&name, mode) {
                Ok(file) => return Ok((TempFile { dir: Arc::clone(dir), name, armed: true }, file)),
                Err(e @ FsError::Io { .. })
                    if e.io_error().is_some_and(|io| io.kind() == std::io::ErrorKind::AlreadyExists) =>
                {
                    last = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| FsError::NotAName { name: prefix.into() }))
    }

    /// The temp's name in its folder.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// The temp's path, for messages.
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// Renames the temp to `name` in `target` (its own folder or another on the same
    /// file system), replacing what is there. The caller flushes the data before and
    /// `target` after. On failure the temp is still removed when dropped.
    pub fn persist(mut self, target: &Dir, name: impl AsRef<OsStr>) -> Result<()> {
        self.dir.rename_into(&self.name, target, name)?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a temp left behind is removed by its owner's next start.
            let _ = self.dir.remove_file(&self.name);
        }
    }
}

/// 16 hex digits from the system's random source; should it fail, from the time, the
/// process id and a counter, which still never repeat within this process.
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
    use super::*;
    use std::io::Write;

    #[test]
    fn a_temp_is_removed_unless_persisted() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Arc::new(Dir::open(temp.path()).unwrap());
        let (dropped, _) = TempFile::create(&dir, "t-", ".tmp", 0o600).unwrap();
        let path = dropped.path();
        assert!(path.exists());
        let name = dropped.name().to_string_lossy().into_owned();
        assert!(name.starts_with("t-") && name.ends_with(".tmp") && name.len() == 2 + 16 + 4, "{name}");
        drop(dropped);
        assert!(!path.exists());

        let (kept, mut file) = TempFile::create(&dir, "t-", ".tmp", 0o600).unwrap();
        file.write_all(b"whole").unwrap();
        file.sync_all().unwrap();
        kept.persist(&dir, "final").unwrap();
        dir.sync().unwrap();
        assert_eq!(std::fs::read(temp.path().join("final")).unwrap(), b"whole");
        assert_eq!(dir.entries().unwrap().len(), 1, "nothing but the final file");
    }
}
