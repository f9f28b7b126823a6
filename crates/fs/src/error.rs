//! [`FsError`]: every way an open, a creation, a write, a rename or a privacy check
//! fails.
//! Each variant names the path; a failed system call keeps its `io::Error` as the
//! source (not in the message), so a caller can tell "missing" from the rest.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::dir::FileKind;

/// Why a file operation beneath a folder failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// A system call failed. `action` says which ("open", "rename", ...).
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, as a verb phrase: "open", "rename into place", ...
        action: &'static str,
        /// The name it was done to.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },

    /// The name is a symbolic link, which these opens never follow.
    #[error("{} is a symbolic link, which fts does not follow there", path.display())]
    SymbolicLink {
        /// The link's name.
        path: PathBuf,
    },

    /// The name exists but is not the kind of file wanted.
    #[error("{} is {found}, not {wanted}", path.display())]
    WrongKind {
        /// The name.
        path: PathBuf,
        /// What the name is.
        found: FileKind,
        /// What it had to be.
        wanted: FileKind,
    },

    /// A rename across these folders would not be atomic.
    #[error("{} is on another file system than {}: a rename between them is not atomic", path.display(), other.display())]
    OtherFileSystem {
        /// The folder that would be renamed from or into.
        path: PathBuf,
        /// The folder on the other file system.
        other: PathBuf,
    },

    /// A folder someone other than the user running fts could change.
    #[error(
        "refusing to use {}: {problem} (owner uid {owner}, mode {mode:04o}; fts runs as uid {euid}); {fix}",
        path.display()
    )]
    NotPrivate {
        /// The folder that was to be used.
        path: PathBuf,
        /// Who could change it, and which folder (it or one on its way), in fts's words.
        problem: String,
        /// The owner of the folder at fault.
        owner: u32,
        /// The permission bits of the folder at fault.
        mode: u32,
        /// The user fts runs as.
        euid: u32,
        /// What to do about it: a command to run, or another folder to choose.
        fix: String,
    },

    /// A name that is not one path component: a bug of the caller, never the input's.
    #[error("{name:?} is not a single file name")]
    NotAName {
        /// The name given.
        name: OsString,
    },

    /// A write that must not replace a file found one under its name.
    #[error("{} already exists", path.display())]
    AlreadyExists {
        /// The name that was taken.
        path: PathBuf,
    },

    /// A bounded read found more than the bound: not a file of the kind expected.
    #[error("{} is larger than {max} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The bound it went over, in bytes.
        max: u64,
    },
}

impl FsError {
    /// An [`FsError::Io`] naming the action and the path.
    pub(crate) fn io(action: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> FsError {
        let path = path.as_ref().to_path_buf();
        move |source| FsError::Io { action, path, source }
    }

    /// The name does not exist (`ENOENT`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// The path the error is about.
    pub fn path(&self) -> Option<&Path> {
        match self {
            FsError::Io { path, .. }
            | FsError::SymbolicLink { path }
            | FsError::WrongKind { path, .. }
            | FsError::OtherFileSystem { path, .. }
            | FsError::NotPrivate { path, .. }
            | FsError::AlreadyExists { path }
            | FsError::TooLarge { path, .. } => Some(path),
            FsError::NotAName { .. } => None,
        }
    }

    /// The underlying system error, for [`FsError::Io`].
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            FsError::Io { source, .. } => Some(source),
            _ => None,
        }
    }

    /// An `io::Error` for callers whose errors carry one: the system error itself for
    /// [`FsError::Io`], otherwise this error inside one of the matching kind.
    pub fn into_io(self) -> io::Error {
        if let FsError::Io { source, .. } = self {
            return source;
        }
        let kind = match &self {
            FsError::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            FsError::WrongKind { wanted: FileKind::Dir, .. } => io::ErrorKind::NotADirectory,
            FsError::WrongKind { found: FileKind::Dir, .. } => io::ErrorKind::IsADirectory,
            FsError::NotAName { .. } => io::ErrorKind::InvalidInput,
            FsError::TooLarge { .. } => io::ErrorKind::FileTooLarge,
            FsError::NotPrivate { .. } => io::ErrorKind::PermissionDenied,
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, self)
    }
}
