//! [`FileIdentity`]: the one rule by which fts tells whether a file it read has
//! changed since, without reading it again: the store's reader for its journal, the
//! server for its CRL.
//!
//! Device and inode say which file a name reaches (a file replaced by rename, as
//! `rsync`, `fts keygen crl` and editors do, has a new inode); length and modification
//! time say whether that file was written since. Metadata only: a rewrite in place
//! that keeps the length within the file system's time granularity is not seen. Both
//! users accept that, since their files are replaced by rename or only appended to.

use std::path::Path;
use std::time::SystemTime;

use crate::FileStat;

/// Enough of a file's metadata to tell "unchanged" from "the same file, written to"
/// from "another file under the name". Equal identities mean unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    /// The file system's device: with `ino`, which file it is.
    pub dev: u64,
    /// The inode number: a new file under the name has another.
    pub ino: u64,
    /// The size in bytes: an append changes it.
    pub len: u64,
    /// The last modification time: a rewrite in place changes it.
    pub mtime: Option<SystemTime>,
}

impl FileIdentity {
    /// The identity of the file `path` reaches now, links followed (the path is the
    /// operator's configuration); `None` when it cannot be inspected.
    pub fn of(path: &Path) -> Option<FileIdentity> {
        rustix::fs::stat(path).ok().map(|stat| FileStat::of(&stat).identity())
    }

    /// Whether both are the same file (device and inode), changed or not.
    pub fn same_file(&self, other: &FileIdentity) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }
}

impl FileStat {
    /// The [`FileIdentity`] part of this metadata.
    pub fn identity(&self) -> FileIdentity {
        FileIdentity { dev: self.dev, ino: self.ino, len: self.len, mtime: self.mtime }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Dir;

    #[test]
    fn a_replaced_file_is_another_file_and_a_grown_one_the_same() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let first = FileIdentity::of(&path).unwrap();
        assert_eq!(
            Dir::open(temp.path()).unwrap().stat("f").unwrap().identity(),
            first,
            "by name or by handle"
        );
        assert_eq!(FileIdentity::of(&path), Some(first), "unchanged");

        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b" two").unwrap();
        let grown = FileIdentity::of(&path).unwrap();
        assert!(grown != first && grown.same_file(&first) && grown.len == 7);

        std::fs::write(temp.path().join("g"), b"other").unwrap();
        std::fs::rename(temp.path().join("g"), &path).unwrap();
        assert!(!FileIdentity::of(&path).unwrap().same_file(&first), "replaced by rename");
        assert_eq!(FileIdentity::of(&temp.path().join("missing")), None);
    }
}
