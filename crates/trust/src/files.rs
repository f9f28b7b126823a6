//! Reading and writing credential files safely: the rules every key and certificate
//! file follows, on top of fts-fs's durable writes (whose crate docs give the crash
//! argument):
//!
//! - a private key is created with mode 0600 from its first byte, public files with
//!   0644, both exactly whatever the umask ([`fts_fs::FileMode::Exact`]): a `ca.crl`
//!   written under `UMask=0077` must still be readable by the server that loads it (a
//!   0600 CRL the server cannot read stops revocation updates), and a key stays
//!   exactly 0600;
//! - a file is written whole and durably, so a crash leaves the old file or the new
//!   one;
//! - an existing file is never replaced unless the caller passes `overwrite`, and the
//!   refusal is atomic (the new file is linked into place, which fails if the name
//!   exists);
//! - reads are bounded, so a huge or endless file (`/dev/zero`) is refused.
//!
//! Unix only (file modes, hard links), like the rest of fts.

use std::fs;
use std::io;
use std::path::Path;

use fts_fs::{FileMode, FsError, WriteOptions};

use crate::error::Error;

/// Who may read a file once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Private keys: owner read/write only.
    Secret,
    /// Certificates, public keys, CRLs.
    Public,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Secret => 0o600,
            Mode::Public => 0o644,
        }
    }
}

/// Credential files are small; anything larger than this is not one of ours.
pub(crate) const MAX_CREDENTIAL_FILE: u64 = 1 << 20;

/// Reads a whole file of at most `max` bytes.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    fts_fs::read_bounded(path, max).map_err(|e| match e {
        FsError::TooLarge { .. } => {
            Error::bad_file(path, format!("larger than {max} bytes: not a credential file"))
        }
        e => Error::Read { path: path.to_owned(), source: e.into_io() },
    })
}

/// `read_bounded`, with a missing file read as `None`.
pub(crate) fn read_optional(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Error> {
    match read_bounded(path, max) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(Error::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The data rows of one of the CA folder's tab-separated lists (`issued.tsv`,
/// `revoked.tsv`): each non-empty, non-`#` line split at tabs, with its line number
/// for error messages. A missing file has no rows.
pub(crate) fn tsv_rows(path: &Path) -> Result<Vec<(usize, Vec<String>)>, Error> {
    let Some(bytes) = read_optional(path, 256 << 20)? else { return Ok(Vec::new()) };
    let text = String::from_utf8(bytes).map_err(|_| Error::bad_file(path, "not UTF-8 text"))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| (n + 1, line.split('\t').map(str::to_owned).collect()))
        .collect())
}

/// Refuses before anything is written if one of `paths` exists and `overwrite` is
/// false, so a command that writes several files writes all of them or none.
pub(crate) fn refuse_existing(paths: &[&Path], overwrite: bool) -> Result<(), Error> {
    if overwrite {
        return Ok(());
    }
    for path in paths {
        match fs::symlink_metadata(path) {
            Ok(_) => return Err(Error::AlreadyExists { path: path.to_path_buf() }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Read { path: path.to_path_buf(), source }),
        }
    }
    Ok(())
}

/// Writes `contents` to `path` atomically and durably with the given mode. Without
/// `overwrite`, an existing `path` is left untouched and reported as
/// [`Error::AlreadyExists`].
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: Mode, overwrite: bool) -> Result<(), Error> {
    let options =
        WriteOptions { label: "credential", mode: FileMode::Exact(mode.bits()), durable: true, overwrite };
    fts_fs::write_atomic(path, contents, &options).map_err(|e| match e {
        FsError::AlreadyExists { .. } => Error::AlreadyExists { path: path.to_owned() },
        e => Error::Write { path: path.to_owned(), source: e.into_io() },
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn secret_files_are_created_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        write_atomic(&path, b"secret", Mode::Secret, false).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"secret");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }

    #[test]
    fn public_files_are_written_0644_and_secret_files_0600_exactly() {
        // The umask is process-wide and tests run in parallel, so it is not changed
        // here: `tests/it/revocation.rs` runs `fts keygen crl` under `umask 077`. This
        // checks the mode is the one asked for, whatever was created.
        let dir = tempfile::tempdir().unwrap();
        for (name, mode, bits) in [("p", Mode::Public, 0o644), ("s", Mode::Secret, 0o600)] {
            let path = dir.path().join(name);
            write_atomic(&path, b"x", mode, true).unwrap();
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, bits, "{name}");
        }
    }

    #[test]
    fn existing_files_are_kept_unless_overwrite_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old", Mode::Public, false).unwrap();
        let err = write_atomic(&path, b"new", Mode::Public, false).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        write_atomic(&path, b"new", Mode::Public, true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn oversized_files_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        fs::write(&path, vec![b'x'; 11]).unwrap();
        let err = read_bounded(&path, 10).unwrap_err();
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
        assert_eq!(read_bounded(&path, 11).unwrap().len(), 11);
    }
}
