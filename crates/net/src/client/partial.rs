//! The partial folder, `<dest>/.fts-partial/`: where bodies are received until they
//! are verified, so that the destination itself only ever holds verified files (and
//! the client's own dot-files). A root installer that watches the destination never
//! sees unverified bytes under any name.
//!
//! Owns: the folder's name, its creation (mode 0700, checked private, on the
//! destination's file system so the rename that installs stays atomic), the bodies
//! being received (fts-fs temps, `.fts-tmp-body-<16 hex>`), and their removal at start
//! (a killed client leaves at most one; fts-fs's lock rule). The renaming into the
//! destination is [`VerifiedFile::install`](crate::client::receive::VerifiedFile::install)'s.
//!
//! Also the kept prefixes of cut transfers (PROTOCOL.md section 3.2.1), named by
//! the signed hash and size ([`PartialDir::kept_name`]) rather than as temps, so the
//! temp cleanup leaves them alone; the client removes those it no longer wants
//! ([`PartialDir::remove_unwanted`]). A kept prefix is unverified: it is never
//! installed, reported or handed to a hook until the whole file's hash matched.

use std::fs::File;
use std::sync::Arc;

use fts_fs::{Dir, FileKind, FileMode, FsError, TempFile};
use fts_proto::FileHash;

/// The partial folder's name in the destination. A dot-file: never a received
/// [`FileName`](fts_proto::FileName), skipped by installers.
pub const PARTIAL_DIR: &str = ".fts-partial";

/// The temp label of a body being received (`.fts-tmp-body-<16 hex>`).
pub const BODY_LABEL: &str = "body";

/// The partial folder of one destination, opened.
#[derive(Debug)]
pub struct PartialDir {
    dir: Arc<Dir>,
}

impl PartialDir {
    /// Opens `<dest>/.fts-partial`, creating it 0700 when missing. Refuses a link, a
    /// folder someone else could write, and a folder on another file system than
    /// `dest` (something mounted there).
    pub fn open(dest: &Dir) -> Result<PartialDir, FsError> {
        let (dir, created) = dest.open_or_create_dir(PARTIAL_DIR, 0o700)?;
        if created {
            dest.sync()?;
        }
        fts_fs::private::check_private(&dir)?;
        dest.expect_same_file_system(&dir)?;
        Ok(PartialDir { dir: Arc::new(dir) })
    }

    /// The folder.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The folder's shared handle (a received body keeps one until it is installed).
    pub fn shared_dir(&self) -> &Arc<Dir> {
        &self.dir
    }

    /// Creates a new, empty file for a body, mode 0644 whatever the umask (installed
    /// files are readable and never executable), set before its first byte; the
    /// folder keeps others out until it is installed. Removed when the returned
    /// [`TempFile`] is dropped, unless it is installed.
    pub fn create_body(&self) -> Result<(TempFile, File), FsError> {
        TempFile::create(Arc::clone(&self.dir), BODY_LABEL, FileMode::Exact(0o644))
    }

    /// The name of the kept prefix of the file of `hash` and `size`:
    /// `sha256-<64 hex>-<size>`, which no temp and no installed file can have.
    pub fn kept_name(hash: &FileHash, size: u64) -> String {
        format!("sha256-{}-{size}", hex::encode(hash.digest()))
    }

    /// Opens (creating it when missing, mode 0644 whatever the umask) the kept file
    /// `name` for reading and writing, never through a link.
    pub fn open_kept(&self, name: &str) -> Result<File, FsError> {
        let file = self.dir.open_or_create_file(name, 0o644)?;
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .map_err(|source| FsError::Io { action: "set the mode of", path: self.dir.join(name), source })?;
        Ok(file)
    }

    /// The length of the kept file `name`, when it is there as a regular file.
    pub fn kept_len(&self, name: &str) -> Option<u64> {
        self.dir.stat(name).ok().filter(|stat| stat.kind == FileKind::File).map(|stat| stat.len)
    }

    /// Removes the kept file `name` (nothing when it is not there).
    pub fn remove_kept(&self, name: &str) -> Result<(), FsError> {
        match self.dir.remove_file(name) {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every file that is neither a temp (those are [`remove_leftovers`]'s)
    /// nor named in `wanted`. Returns how many.
    ///
    /// [`remove_leftovers`]: PartialDir::remove_leftovers
    pub fn remove_unwanted(&self, wanted: &[String]) -> Result<usize, FsError> {
        let mut removed = 0;
        for (name, kind) in self.dir.entries()? {
            let removable = matches!(kind, FileKind::File | FileKind::SymbolicLink);
            if !removable
                || fts_fs::is_temp_name(&name)
                || wanted.iter().any(|w| std::ffi::OsStr::new(w) == name)
            {
                continue;
            }
            self.dir.remove_file(&name)?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Removes the temporary files a killed client left. Returns how many.
    pub fn remove_leftovers(&self) -> Result<usize, FsError> {
        fts_fs::remove_stale_temps(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_partial_folder_is_made_private_and_cleaned_of_temps_only() {
        let temp = tempfile::tempdir().unwrap();
        let dest = Dir::open(temp.path()).unwrap();
        let partial = PartialDir::open(&dest).unwrap();
        let path = temp.path().join(PARTIAL_DIR);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::write(path.join(".fts-tmp-body-0123456789abcdef"), b"half").unwrap();
        std::fs::write(path.join("kept.partial"), b"a resumable transfer").unwrap();
        assert_eq!(partial.remove_leftovers().unwrap(), 1);
        assert!(path.join("kept.partial").exists());

        let (body, _) = partial.create_body().unwrap();
        assert_eq!(std::fs::metadata(body.path()).unwrap().permissions().mode() & 0o777, 0o644);
        drop(body);
        assert_eq!(partial.remove_leftovers().unwrap(), 0, "a dropped body is gone");
    }

    #[test]
    fn a_partial_folder_that_is_a_link_or_shared_is_refused() {
        let temp = tempfile::tempdir().unwrap();
        let dest = Dir::open(temp.path()).unwrap();
        let elsewhere = temp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, temp.path().join(PARTIAL_DIR)).unwrap();
        assert!(matches!(PartialDir::open(&dest), Err(FsError::SymbolicLink { .. })));
        std::fs::remove_file(temp.path().join(PARTIAL_DIR)).unwrap();

        std::fs::create_dir(temp.path().join(PARTIAL_DIR)).unwrap();
        std::fs::set_permissions(temp.path().join(PARTIAL_DIR), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        assert!(matches!(PartialDir::open(&dest), Err(FsError::NotPrivate { .. })));
    }
}
