//! fts-fs: the one module through which fts touches files it must trust or find
//! intact after a crash. Files are opened, created and renamed beneath a folder
//! handle, never through a link someone else planted; every durable write (a whole
//! file replaced, a record appended to a log) goes through here, with its crash
//! argument below.
//!
//! Owns:
//! - [`Dir`]: a folder opened once (`O_DIRECTORY`, the handle checked with `fstat`),
//!   and every operation on the names in it relative to that handle: open a regular
//!   file ([`Dir::open_file`]), open or create a subfolder ([`Dir::open_dir`],
//!   [`Dir::open_or_create_dir`]), create a file that did not exist
//!   ([`Dir::create_exclusive`]), rename or link within or across folders
//!   ([`Dir::rename_within`], [`Dir::rename_into`], [`Dir::link_into`]), remove, list,
//!   `lstat`, flush ([`Dir::sync`]);
//! - durable writes: [`Dir::write_atomic`] (and [`write_atomic`] by path) with its
//!   [`WriteOptions`] (mode, durable or not, overwrite or not); [`TempFile`] for bytes
//!   that stream in; [`append_durably`] and [`truncate_durably`] for logs;
//! - temporary files: their one name scheme (`.fts-tmp-<label>-<16 hex>`,
//!   [`TEMP_PREFIX`]) and the one rule that removes those of a killed process
//!   ([`remove_stale_temps`]);
//! - [`stream`]: the buffer size, writeback and buffer filling of the three byte
//!   streams (publish, receive, serve);
//! - bounded whole-file reads ([`read_bounded`], [`Dir::read_bounded`]), the
//!   [`FileIdentity`] by which a changed file is noticed, and [`parent_dir`];
//! - [`private`]: the checks that a folder is private to the user running fts (owner
//!   and mode, and the folders on the way to it).
//!
//! Not here: what the files mean (the store's layout, the client's state); error
//! messages about them belong to their owners, who map [`FsError`] into their own.
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
//! **A whole file replaced** ([`Dir::write_atomic`]; a [`TempFile`] for a blob or a
//! body that streams in) takes five steps:
//!
//! 1. create a temp in the target's folder (or one on the same file system, checked
//!    when the folders are opened) with `O_CREAT|O_EXCL|O_NOFOLLOW` and its final
//!    mode, and lock it (`flock`, see below);
//! 2. write it whole;
//! 3. flush it (`fsync`);
//! 4. rename it over the name (`renameat`), or, when it must not replace a file,
//!    link it to the name (`linkat`, which fails if the name exists) and remove the
//!    temp's name;
//! 5. flush the folder ([`Dir::sync`]).
//!
//! What a crash at each point leaves:
//! - during 1 to 3, or between 3 and 4: the old file untouched, and a temp that no
//!   reader opens (its name says what it is) and the next cleanup removes;
//! - during 4: the rename is atomic, so the name holds the old file or the new one,
//!   whole, never a mixture; a reader that had the old file open keeps reading the
//!   old bytes. A link that failed left the name as it was;
//! - between 4 and 5: after a crash of the process, the new file. After a power
//!   loss, the old file or the new one: the rename may not have reached the disk, but
//!   the new bytes have (step 3), so the name never holds a torn new file. The caller
//!   has not reported success yet, so nothing was promised;
//! - after 5: the new file, durably. Only now does the caller report success.
//!
//! Why flush the temp before the rename: a file system may write the rename before
//! the data, and a power loss then leaves the name on an empty or partly written
//! file (ext4 hides some of these cases, other file systems do not). Why flush the
//! folder after: the rename is a change of the folder, and until the folder is on
//! disk a power loss may undo it. A caller that already said "done" (a publish that
//! printed its seq, a host that recorded the version it installed and ran its hook)
//! would then have promised something that is gone: the state would say version N
//! is installed while version N-1 came back.
//!
//! Why `O_EXCL` temps under random names: a temp's name is never an existing file,
//! so a name someone planted (a link to a key, a FIFO) fails the creation instead of
//! being opened and written through, and two writers (threads, processes) never share
//! a temp. The name is 64 random bits, so a clash only costs another try.
//!
//! A write that must not replace a file (a key without `--force`) links instead of
//! renaming: the check "the name is free" and the naming are one step, so a file
//! that appears in between is never overwritten. A crash between the link and the
//! removal of the temp's name leaves the new file under both names; the cleanup
//! removes the temp's, and removing a name never changes the file under its other.
//!
//! A write that need not survive a power loss (`durable: false`: the server's
//! advisory status) skips steps 3 and 5: still atomic for readers and for a crash of
//! the process, but after a power loss the name may hold the old file, the new one
//! or a damaged one, which its readers skip.
//!
//! **A record appended to a log** ([`append_durably`]): the bytes are written at the
//! end and flushed with the file's size (`fdatasync`) before the call returns. A
//! crash before leaves a prefix of the record, a torn tail: the log's format must
//! tell it from a whole record (the store's journal checksums every line and stops
//! at the first bad one), and its writer cuts it off ([`truncate_durably`]) under
//! its own lock before appending again.
//!
//! # Temps of killed processes: the lock rule
//!
//! A temp is locked (`flock`, exclusive) by the process that writes it from its
//! creation until it is renamed into place or removed ([`TempFile`] holds the lock
//! for as long as it lives), and the kernel releases the lock when that process ends,
//! however it ends. The cleanup ([`remove_stale_temps`], run by each owner over its
//! own folders: the client at start, a publisher under the publish lock, the server
//! when it opens its status folder) removes a temp only when it can take that lock
//! itself and, once it holds it, the name still names the file it locked. Why that is
//! safe:
//!
//! - **A live writer's temp is never removed**, however slow the writer: its lock is
//!   held, so the cleanup's attempt fails. No process id is guessed (ids are reused,
//!   and hosts sharing a folder have their own) and no age limit is needed (one would
//!   either remove a slow live copy or keep a dead one's for a while).
//! - **The instant between creation and lock** is covered on the writer's side: once
//!   it holds the lock, the writer checks that the name still names its file. If a
//!   cleanup took the temp in that instant (it holds the lock, or removed the name),
//!   the check fails and the writer starts again under a new name. So a cleanup may
//!   remove a killed process's temps at once.
//! - **Nothing but a temp is removed.** The cleanup takes only regular files whose
//!   name starts with [`TEMP_PREFIX`] (never a name fts installs or serves: file names
//!   never start with a dot), opened without following a link, and checks the name
//!   after taking the lock: a temp renamed into place meanwhile is no longer under it,
//!   and nothing else can appear under a temp's name while the temp is there
//!   (creation is exclusive, and nothing renames onto a temp's name).
//! - **`flock` locks belong to the open file**, not to the process (unlike `fcntl`
//!   locks, which a close of any descriptor of the file in the process drops): a
//!   cleanup in the same process as a writer (the server's status folder) still finds
//!   the writer's lock held.
//! - **Where there is no `flock`** (some network file systems), a temp is made
//!   unlocked and the cleanup, unable to lock it either, leaves it alone: leftovers
//!   stay, and a live temp is never removed. On a network file system whose locks are
//!   local to each host, a cleanup on another host could take a live temp: its writer
//!   then fails its rename with an error. In every case a wrong removal costs the
//!   writer an error and nothing else: removing a temp's name never changes a file in
//!   place.
//!
//! # Why a crate of its own
//!
//! The lowest crates that need these opens are fts-trust (credential files, the CA
//! folder) and fts-store (blobs, the journal); the code-health issue that follows
//! removes fts-store's dependency on fts-trust, so the module must sit below both.
//! fts-proto stays pure (no files), and a `util` module in either crate would make
//! the other depend on it. It has one reason to change: how fts keeps files safe and
//! durable. A test (`tests/call_sites.rs`) fails when code outside this crate renames,
//! flushes, links or exclusively creates a file itself.
//!
//! Unix only, like the rest of fts. Synchronous: async callers use blocking tasks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dir;
mod error;
mod identity;
pub mod private;
mod read;
pub mod stream;
mod temp;
mod write;

pub use dir::{Dir, FileKind, FileStat};
pub use error::FsError;
pub use identity::FileIdentity;
pub use read::read_bounded;
pub use temp::{TEMP_PREFIX, TempFile, is_temp_name, remove_stale_temps};
pub use write::{
    FileMode, WriteOptions, append_durably, parent_dir, sync_file, truncate_durably, write_atomic,
};

/// The crate's result type.
pub type Result<T, E = FsError> = std::result::Result<T, E>;
