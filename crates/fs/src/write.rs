//! Durable writes, the two shapes fts has (the crate docs give the crash argument):
//! a whole file replaced atomically ([`Dir::write_atomic`], [`write_atomic`]; a
//! [`TempFile`] when the bytes stream in), and records appended to a log
//! ([`append_durably`], [`truncate_durably`]).

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::{Dir, FsError, Result, TempFile};

/// The permission bits of a file fts creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// These bits less the process's umask, as `open(2)` gives them: for files whose
    /// readers the operator chooses with the umask (the store, the status folder).
    LessUmask(u32),
    /// Exactly these bits, whatever the umask: the file is created with them (less
    /// the umask, so never more for an instant) and they are set again on its handle
    /// (`fchmod`) before its first byte is written. For a key (0600: nobody else ever
    /// reads a byte of it), or a file another user must read (a CRL the server loads,
    /// a body installed for a root installer: 0644; a blob: 0444).
    Exact(u32),
}

impl FileMode {
    /// The mode given to `open(2)`.
    pub(crate) fn creation_bits(self) -> u32 {
        match self {
            FileMode::LessUmask(bits) | FileMode::Exact(bits) => bits,
        }
    }
}

/// How [`Dir::write_atomic`] writes a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOptions {
    /// What the file is, in its temp's name (`.fts-tmp-<label>-<16 hex>`): lower-case
    /// ASCII letters.
    pub label: &'static str,
    /// The new file's mode.
    pub mode: FileMode,
    /// Flush the file before the rename and the folder after it, so that a power
    /// loss after the call keeps the new file. Without it the write is still atomic
    /// for readers and for a crash of the process (the old file or the new one,
    /// whole), but a power loss may keep the old file, the new one, or a damaged one:
    /// for advisory files whose readers live with that.
    pub durable: bool,
    /// Replace a file already under the name. Without it, the new file is linked into
    /// place (`linkat`), which fails with [`FsError::AlreadyExists`] if the name
    /// exists, even as a dangling link: the check and the write are one atomic step.
    pub overwrite: bool,
}

impl Dir {
    /// Writes `bytes` as the file `name` in this folder, atomically: a [`TempFile`] in
    /// this folder, written whole, flushed, renamed (or linked) over `name`, the
    /// folder flushed (the flushes only when `options.durable`). Any reader sees the
    /// old file or the new one, whole; on failure the old one is untouched and the
    /// temp removed.
    pub fn write_atomic(&self, name: impl AsRef<OsStr>, bytes: &[u8], options: &WriteOptions) -> Result<()> {
        let (temp, mut file) = TempFile::create(self, options.label, options.mode)?;
        file.write_all(bytes).map_err(FsError::io("write", temp.path()))?;
        drop(file);
        if options.durable {
            temp.sync()?;
        }
        if options.overwrite {
            temp.persist(self, name)?;
        } else {
            temp.persist_new(self, name)?;
        }
        if options.durable {
            self.sync()?;
        }
        Ok(())
    }
}

/// [`Dir::write_atomic`] of the file at `path`, in the folder that holds it (opened
/// by path: the caller's configuration, which may go through links; the file's own
/// name is never followed).
pub fn write_atomic(path: &Path, bytes: &[u8], options: &WriteOptions) -> Result<()> {
    let name = path.file_name().ok_or_else(|| FsError::NotAName { name: path.as_os_str().to_owned() })?;
    Dir::open(parent_dir(path))?.write_atomic(name, bytes, options)
}

/// The folder holding `path`: its parent, or `.` for a bare file name.
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Appends `bytes` to a log at the handle's position (its end, for a file opened
/// `O_APPEND`, or where the caller sought) and flushes them with the file's new size
/// (`fdatasync`) before returning: durable on return. A crash before leaves a prefix
/// of `bytes` (a torn tail), which the log's format must tell from a whole record and
/// its writer cut off ([`truncate_durably`]). `path` is for messages.
pub fn append_durably(file: &File, bytes: &[u8], path: &Path) -> Result<()> {
    let mut handle = file;
    handle.write_all(bytes).map_err(FsError::io("append to", path))?;
    rustix::fs::fdatasync(file).map_err(|e| FsError::io("append to", path)(e.into()))
}

/// Cuts a log back to its first `len` bytes (a torn tail off) and flushes that.
pub fn truncate_durably(file: &File, len: u64, path: &Path) -> Result<()> {
    file.set_len(len).map_err(FsError::io("truncate", path))?;
    rustix::fs::fdatasync(file).map_err(|e| FsError::io("flush", path)(e.into()))
}

/// Flushes a file's content and size to disk (`fsync`), before it is renamed into
/// place. `path` is for messages.
pub fn sync_file(file: &File, path: &Path) -> Result<()> {
    rustix::fs::fsync(file).map_err(|e| FsError::io("flush", path)(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const OPTIONS: WriteOptions =
        WriteOptions { label: "test", mode: FileMode::Exact(0o644), durable: true, overwrite: true };

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_nothing_else() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Dir::open(temp.path()).unwrap();
        dir.write_atomic("f", b"one", &OPTIONS).unwrap();
        dir.write_atomic("f", b"two", &WriteOptions { durable: false, ..OPTIONS }).unwrap();
        assert_eq!(std::fs::read(temp.path().join("f")).unwrap(), b"two");
        assert_eq!(mode_of(&temp.path().join("f")), 0o644);
        assert_eq!(dir.entries().unwrap().len(), 1, "no temp left behind");
    }

    #[test]
    fn without_overwrite_an_existing_name_is_kept_and_reported() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("key");
        let secret = WriteOptions { mode: FileMode::Exact(0o600), overwrite: false, ..OPTIONS };
        write_atomic(&path, b"old", &secret).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert!(matches!(write_atomic(&path, b"new", &secret), Err(FsError::AlreadyExists { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 1, "no temp left behind");
    }

    #[test]
    fn a_link_under_the_name_is_replaced_never_written_through() {
        let temp = tempfile::tempdir().unwrap();
        let target = temp.path().join("target");
        std::fs::write(&target, b"untouched").unwrap();
        std::os::unix::fs::symlink(&target, temp.path().join("f")).unwrap();
        write_atomic(&temp.path().join("f"), b"new", &OPTIONS).unwrap();
        assert!(std::fs::symlink_metadata(temp.path().join("f")).unwrap().is_file());
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
    }

    #[test]
    fn a_bare_name_is_written_in_the_current_folder_and_a_path_without_a_name_refused() {
        assert_eq!(parent_dir(Path::new("state.json")), Path::new("."));
        assert_eq!(parent_dir(Path::new("a/state.json")), Path::new("a"));
        assert_eq!(parent_dir(Path::new("/state.json")), Path::new("/"));
        assert!(matches!(write_atomic(Path::new("a/.."), b"", &OPTIONS), Err(FsError::NotAName { .. })));
    }

    #[test]
    fn an_append_is_durable_and_a_torn_tail_cut_off() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("log");
        let file = std::fs::OpenOptions::new().append(true).create(true).open(&path).unwrap();
        append_durably(&file, b"one\n", &path).unwrap();
        append_durably(&file, b"tw", &path).unwrap();
        truncate_durably(&file, 4, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one\n");
    }
}
