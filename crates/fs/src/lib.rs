//! fts-fs: files opened, created and renamed beneath a folder handle, never through a
//! link someone else planted.
//!
//! Owns:
//! - [`Dir`]: a folder opened once (`O_DIRECTORY`, the handle checked with `fstat`),
//!   and every operation on the names in it relative to that handle: open a regular
//!   file ([`Dir::open_file`]), open or create a subfolder ([`Dir::open_dir`],
//!   [`Dir::open_or_create_dir`]), create a file that did not exist
//!   ([`Dir::create_exclusive`]), rename within or across folders
//!   ([`Dir::rename_within`], [`Dir::rename_into`]), remove, list, `lstat`, flush
//!   ([`Dir::sync`]);
//! - [`TempFile`]: a uniquely named file created exclusively in a folder, removed when
//!   dropped unless renamed into place;
//! - [`private`]: the checks that a folder is private to the user running fts (owner
//!   and mode, and the folders on the way to it).
//!
//! Not here: what the files mean (the store's layout, the client's state); error
//! messages about them belong to their owners.
//!
//! # Why these opens are safe
//!
//! - **A name is one path component.** Every name given to a [`Dir`] method is
//!   checked to hold no `/` and not to be `.` or `..` (a caller's bug otherwise), so
//!   the kernel resolves exactly one step from the folder's handle: no folder on the
//!   way can be a link, because there is none on the way.
//! - **The last step never follows a link.** Every open of a name passes
//!   `O_NOFOLLOW`; a symbolic link there fails the open with `ELOOP`, reported as
//!   [`FsError::SymbolicLink`]. `lstat` (`AT_SYMLINK_NOFOLLOW`) is used where only the
//!   metadata is wanted. A creation uses `O_CREAT|O_EXCL` (which never follows a link
//!   and never opens an existing file) or `O_CREAT|O_NOFOLLOW`.
//! - **What was opened is what is checked.** The kind of file (regular, folder) is
//!   checked with `fstat` on the opened descriptor, never by a `stat` of the name
//!   before or after, so a swap between the check and the use changes nothing. Files
//!   are opened `O_NONBLOCK` (a FIFO planted under a file's name cannot hang the
//!   open; the flag is cleared once the file is known to be regular) and `O_NOCTTY`.
//! - **Hard links are not refused.** A hard link names the same inode as its target,
//!   so `O_NOFOLLOW` cannot tell it from the file. The kernel's
//!   `fs.protected_hardlinks=1` (the default of systemd-based distributions) keeps a
//!   user from linking a file they neither own nor can read and write; and refusing
//!   `nlink > 1` would refuse legitimate layouts (a store replica kept with `rsync
//!   --link-dest`, a `cp -al` snapshot). The documentation of each user says so.
//! - **Descriptors are `O_CLOEXEC`**, so a hook started by the client inherits none.
//!
//! # Why durable writes hold (the crash argument)
//!
//! A file is replaced by writing a [`TempFile`] in the same folder (or in a folder on
//! the same file system), flushing its data (`fsync` of the file), renaming it over
//! the old name (`renameat`, atomic: any reader sees the old file or the new one,
//! whole), then flushing the folder ([`Dir::sync`]) so the rename itself survives a
//! power loss. A crash before the rename leaves the old file and a temp that its owner
//! removes at its next start; after it, the new file. A rename across file systems
//! fails (`EXDEV`) instead of silently copying, and the callers that rename across
//! folders check the two are on one file system when they open them.
//!
//! # Why a crate of its own
//!
//! The lowest crates that need these opens are fts-trust (credential files, the CA
//! folder) and fts-store (blobs, the journal); the code-health issue that follows
//! removes fts-store's dependency on fts-trust, so the module must sit below both.
//! fts-proto stays pure (no files), and a `util` module in either crate would make
//! the other depend on it. The durable-write code that today exists four times
//! (fts-trust's `files.rs`, fts-store's `fsutil.rs`, the client's state and metrics
//! files) is meant to move here on top of [`Dir`] and [`TempFile`].
//!
//! Unix only, like the rest of fts. Synchronous: async callers use blocking tasks.
#![forbid(unsafe_code)]

mod dir;
mod error;
pub mod private;
mod temp;

pub use dir::{Dir, FileKind, FileStat};
pub use error::FsError;
pub use temp::TempFile;

/// The crate's result type.
pub type Result<T, E = FsError> = std::result::Result<T, E>;
