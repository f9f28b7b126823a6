//! Bounded whole-file reads: every small file fts reads whole (keys, certificates,
//! CRLs, the CA's lists, the host's state, the status files) is read through
//! [`read_bounded`] or [`Dir::read_bounded`], so that a huge or endless file (a wrong
//! path, `/dev/zero`, damage) is refused as [`FsError::TooLarge`] instead of filling
//! the memory. Each caller picks the bound and words the refusal for its file.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::{Dir, FsError, Result};

/// Reads the whole file at `path`, of at most `max` bytes. The path is the caller's
/// configuration and may go through links (use [`Dir::read_bounded`] for a name that
/// must not).
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(FsError::io("open", path))?;
    read_to_end_bounded(file, path, max)
}

impl Dir {
    /// Reads the whole regular file `name` (never through a link), of at most `max`
    /// bytes.
    pub fn read_bounded(&self, name: impl AsRef<std::ffi::OsStr>, max: u64) -> Result<Vec<u8>> {
        let file = self.open_file(name.as_ref())?;
        read_to_end_bounded(file, &self.join(name), max)
    }
}

fn read_to_end_bounded(file: File, path: &Path, max: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    // One byte more than allowed tells "exactly max" from "more".
    file.take(max.saturating_add(1)).read_to_end(&mut bytes).map_err(FsError::io("read", path))?;
    if bytes.len() as u64 > max {
        return Err(FsError::TooLarge { path: path.to_owned(), max });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_over_the_bound_is_refused_with_its_path_and_a_missing_one_is_not_found() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("big");
        std::fs::write(&path, vec![b'x'; 11]).unwrap();
        let err = read_bounded(&path, 10).unwrap_err();
        assert!(matches!(&err, FsError::TooLarge { max: 10, .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert_eq!(read_bounded(&path, 11).unwrap().len(), 11);
        let dir = Dir::open(temp.path()).unwrap();
        assert_eq!(dir.read_bounded("big", 11).unwrap().len(), 11);
        assert!(matches!(dir.read_bounded("big", 3), Err(FsError::TooLarge { .. })));
        assert!(read_bounded(&temp.path().join("missing"), 1).unwrap_err().is_not_found());
        std::os::unix::fs::symlink(&path, temp.path().join("link")).unwrap();
        assert!(read_bounded(&temp.path().join("link"), 11).is_ok(), "a configured path may be a link");
        assert!(matches!(dir.read_bounded("link", 11), Err(FsError::SymbolicLink { .. })));
    }
}
