//! [`Dir`]: a folder handle and the operations on the names in it, each one step from
//! the handle and none following a link (the crate docs give the argument).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::{FsError, Result};

/// What a name is, as `lstat` or `fstat` tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
    /// A symbolic link (only `lstat` sees one: opens never follow it).
    SymbolicLink,
    /// A named pipe, which could hang a reader that opened it blocking.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A kind the platform reports that none of the above is.
    Unknown,
}

impl FileKind {
    fn of(file_type: FileType) -> FileKind {
        match file_type {
            FileType::RegularFile => FileKind::File,
            FileType::Directory => FileKind::Dir,
            FileType::Symlink => FileKind::SymbolicLink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            _ => FileKind::Unknown,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::File => "a regular file",
            FileKind::Dir => "a folder",
            FileKind::SymbolicLink => "a symbolic link",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Unknown => "a file of an unknown kind",
        })
    }
}

/// The metadata fts looks at, from `fstat` or `lstat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// What the name is.
    pub kind: FileKind,
    /// The size in bytes.
    pub len: u64,
    /// The device of the file system it is on (a rename across devices is not atomic).
    pub dev: u64,
    /// The inode number: with `dev`, which file this is.
    pub ino: u64,
    /// How many names the file has (hard links).
    pub nlink: u64,
    /// The owner's user id.
    pub uid: u32,
    /// The permission bits, with setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// The last modification time, when the platform gives one.
    pub mtime: Option<SystemTime>,
}

impl FileStat {
    // The field types of `struct stat` differ between architectures; these casts
    // widen (or keep) each of them to the one type used here.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    pub(crate) fn of(stat: &rustix::fs::Stat) -> FileStat {
        let mtime = (stat.st_mtime as i64).try_into().ok().and_then(|secs: u64| {
            SystemTime::UNIX_EPOCH
                .checked_add(Duration::new(secs, (stat.st_mtime_nsec as u32).min(999_999_999)))
        });
        FileStat {
            kind: FileKind::of(FileType::from_raw_mode(stat.st_mode as _)),
            len: u64::try_from(stat.st_size as i64).unwrap_or(0),
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
            nlink: stat.st_nlink as u64,
            uid: stat.st_uid as u32,
            mode: (stat.st_mode as u32) & 0o7777,
            mtime,
        }
    }

    /// `fstat` of an open file.
    pub fn of_file(file: &File, path: &Path) -> Result<FileStat> {
        let stat = rustix::fs::fstat(file).map_err(|e| FsError::io("inspect", path)(e.into()))?;
        Ok(FileStat::of(&stat))
    }
}

/// A folder opened once. Every name given to its methods is one path component,
/// resolved from this handle without following a link; the folder's own path is kept
/// for messages only and never used to reach a file.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Checks that `name` is one path component: not empty, not `.` or `..`, no `/`.
fn check_name(name: &OsStr) -> Result<()> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes == b"." || bytes == b".." || bytes.contains(&b'/') || bytes.contains(&0) {
        return Err(FsError::NotAName { name: name.to_owned() });
    }
    Ok(())
}

/// Flags of every open: no descriptor leaks into a hook, no terminal is acquired.
const BASE: OFlags = OFlags::CLOEXEC.union(OFlags::NOCTTY);

impl Dir {
    /// Opens the folder at `path`. The path is the caller's configuration and may go
    /// through links (an operator's `/srv/fts/store -> /data/store`); what it reaches
    /// must be a folder, checked on the opened handle.
    pub fn open(path: impl AsRef<Path>) -> Result<Dir> {
        let path = path.as_ref();
        let fd = rustix::fs::open(path, BASE | OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).map_err(
            |e| match e {
                Errno::NOTDIR => FsError::WrongKind {
                    path: path.to_owned(),
                    found: std::fs::metadata(path).map_or(FileKind::Unknown, |m| kind_of_std(m.file_type())),
                    wanted: FileKind::Dir,
                },
                e => FsError::io("open the folder", path)(e.into()),
            },
        )?;
        let dir = Dir { fd, path: path.to_owned() };
        dir.expect_kind(&dir.metadata()?, FileKind::Dir, &dir.path)?;
        Ok(dir)
    }

    /// The folder's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this folder, for messages.
    pub fn join(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    /// `fstat` of the folder itself.
    pub fn metadata(&self) -> Result<FileStat> {
        let stat = rustix::fs::fstat(&self.fd).map_err(|e| FsError::io("inspect", &self.path)(e.into()))?;
        Ok(FileStat::of(&stat))
    }

    /// `lstat` of `name`: a link is described, never followed.
    pub fn stat(&self, name: impl AsRef<OsStr>) -> Result<FileStat> {
        let name = name.as_ref();
        check_name(name)?;
        let stat = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::io("inspect", self.join(name))(e.into()))?;
        Ok(FileStat::of(&stat))
    }

    /// Opens the subfolder `name`, refusing a link.
    pub fn open_dir(&self, name: impl AsRef<OsStr>) -> Result<Dir> {
        let name = name.as_ref();
        check_name(name)?;
        let path = self.join(name);
        let flags = BASE | OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty())
            .map_err(|e| self.open_error(e, name, FileKind::Dir, "open the folder"))?;
        let dir = Dir { fd, path };
        dir.expect_kind(&dir.metadata()?, FileKind::Dir, &dir.path)?;
        Ok(dir)
    }

    /// Opens the subfolder `name`, creating it with `mode` (less the umask) when it
    /// does not exist. Says whether it was created; a new folder's entry is not
    /// flushed (call [`Dir::sync`] on this folder when that matters).
    pub fn open_or_create_dir(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<(Dir, bool)> {
        let name = name.as_ref();
        check_name(name)?;
        let created = match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode as _)) {
            Ok(()) => true,
            Err(Errno::EXIST) => false,
            Err(e) => return Err(FsError::io("create the folder", self.join(name))(e.into())),
        };
        Ok((self.open_dir(name)?, created))
    }

    /// Opens the regular file `name` for reading, refusing a link or anything that
    /// is not a regular file (checked on the opened descriptor).
    pub fn open_file(&self, name: impl AsRef<OsStr>) -> Result<File> {
        self.open_regular(name.as_ref(), OFlags::RDONLY, Mode::empty(), "open")
    }

    /// Opens the regular file `name` for reading and writing, creating it with `mode`
    /// (less the umask) if it does not exist; refuses a link (even a dangling one:
    /// nothing is ever created at a link's target) and anything not a regular file.
    pub fn open_or_create_file(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File> {
        self.open_regular(
            name.as_ref(),
            OFlags::RDWR | OFlags::CREATE,
            Mode::from_raw_mode(mode as _),
            "open",
        )
    }

    /// Creates the file `name`, which must not exist (`O_CREAT|O_EXCL`: never an
    /// existing file, never through a link), with `mode` (less the umask), open for
    /// reading and writing.
    pub fn create_exclusive(&self, name: impl AsRef<OsStr>, mode: u32) -> Result<File> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
        self.open_regular(name.as_ref(), flags, Mode::from_raw_mode(mode as _), "create")
    }

    fn open_regular(&self, name: &OsStr, access: OFlags, mode: Mode, action: &'static str) -> Result<File> {
        check_name(name)?;
        // O_NONBLOCK: opening a FIFO planted under the name must not wait for a writer.
        let flags = BASE | OFlags::NOFOLLOW | OFlags::NONBLOCK | access;
        let fd = rustix::fs::openat(&self.fd, name, flags, mode)
            .map_err(|e| self.open_error(e, name, FileKind::File, action))?;
        let path = self.join(name);
        let stat = rustix::fs::fstat(&fd).map_err(|e| FsError::io("inspect", &path)(e.into()))?;
        self.expect_kind(&FileStat::of(&stat), FileKind::File, &path)?;
        rustix::fs::fcntl_setfl(
            &fd,
            rustix::fs::fcntl_getfl(&fd).map_err(|e| FsError::io(action, &path)(e.into()))?
                - OFlags::NONBLOCK,
        )
        .map_err(|e| FsError::io(action, &path)(e.into()))?;
        Ok(File::from(fd))
    }

    fn expect_kind(&self, stat: &FileStat, wanted: FileKind, path: &Path) -> Result<()> {
        if stat.kind == wanted {
            Ok(())
        } else {
            Err(FsError::WrongKind { path: path.to_owned(), found: stat.kind, wanted })
        }
    }

    /// Names a failed open: a link (`ELOOP` under `O_NOFOLLOW`), the wrong kind of
    /// file, or an I/O error.
    fn open_error(&self, e: Errno, name: &OsStr, wanted: FileKind, action: &'static str) -> FsError {
        let path = self.join(name);
        match e {
            Errno::LOOP => FsError::SymbolicLink { path },
            Errno::NOTDIR | Errno::ISDIR => match self.stat(name) {
                Ok(stat) if stat.kind == FileKind::SymbolicLink => FsError::SymbolicLink { path },
                Ok(stat) => FsError::WrongKind { path, found: stat.kind, wanted },
                Err(_) => FsError::io(action, path)(e.into()),
            },
            e => FsError::io(action, path)(e.into()),
        }
    }

    /// Gives the file `from` in this folder a second name, `to` in `target` (same file
    /// system), failing with [`FsError::AlreadyExists`] if `to` exists, even as a
    /// dangling link: the check and the naming are one atomic step (`linkat`).
    pub fn link_into(&self, from: impl AsRef<OsStr>, target: &Dir, to: impl AsRef<OsStr>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from)?;
        check_name(to)?;
        rustix::fs::linkat(&self.fd, from, &target.fd, to, AtFlags::empty()).map_err(|e| match e {
            Errno::EXIST => FsError::AlreadyExists { path: target.join(to) },
            e => FsError::io("link into place", target.join(to))(e.into()),
        })
    }

    /// Renames `from` to `to` in this folder, replacing `to` (a link there is
    /// replaced, not followed).
    pub fn rename_within(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Result<()> {
        self.rename_into(from, self, to)
    }

    /// Renames `from` in this folder to `to` in `target` (which must be on the same
    /// file system), replacing `to`.
    pub fn rename_into(&self, from: impl AsRef<OsStr>, target: &Dir, to: impl AsRef<OsStr>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        check_name(from)?;
        check_name(to)?;
        rustix::fs::renameat(&self.fd, from, &target.fd, to)
            .map_err(|e| FsError::io("rename into place", target.join(to))(e.into()))
    }

    /// Removes the file (or link) `name`.
    pub fn remove_file(&self, name: impl AsRef<OsStr>) -> Result<()> {
        let name = name.as_ref();
        check_name(name)?;
        rustix::fs::unlinkat(&self.fd, name, AtFlags::empty())
            .map_err(|e| FsError::io("remove", self.join(name))(e.into()))
    }

    /// The names in the folder (without `.` and `..`) and what each is, unsorted.
    pub fn entries(&self) -> Result<Vec<(OsString, FileKind)>> {
        let list_err = |e: Errno| FsError::io("list", &self.path)(e.into());
        let mut reader = rustix::fs::Dir::read_from(&self.fd).map_err(list_err)?;
        let mut entries = Vec::new();
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(list_err)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let kind = match FileKind::of(entry.file_type()) {
                // Some file systems do not say in the listing.
                FileKind::Unknown => self.stat(name).map_or(FileKind::Unknown, |s| s.kind),
                kind => kind,
            };
            entries.push((name.to_owned(), kind));
        }
        Ok(entries)
    }

    /// Flushes the folder's entries (a creation, a rename, a removal in it) to disk.
    pub fn sync(&self) -> Result<()> {
        rustix::fs::fsync(&self.fd).map_err(|e| FsError::io("flush the folder", &self.path)(e.into()))
    }

    /// The bytes an unprivileged user may still write on this folder's file system.
    pub fn available_space(&self) -> Result<u64> {
        let stat = rustix::fs::fstatvfs(&self.fd)
            .map_err(|e| FsError::io("read the free space of", &self.path)(e.into()))?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// The size of this folder's file system, in bytes.
    pub fn total_space(&self) -> Result<u64> {
        let stat = rustix::fs::fstatvfs(&self.fd)
            .map_err(|e| FsError::io("read the size of", &self.path)(e.into()))?;
        Ok(stat.f_blocks.saturating_mul(stat.f_frsize))
    }

    /// Refuses `other` unless it is on this folder's file system, so that a rename
    /// between the two is atomic.
    pub fn expect_same_file_system(&self, other: &Dir) -> Result<()> {
        if self.metadata()?.dev == other.metadata()?.dev {
            Ok(())
        } else {
            Err(FsError::OtherFileSystem { path: other.path.clone(), other: self.path.clone() })
        }
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn kind_of_std(file_type: std::fs::FileType) -> FileKind {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_file() {
        FileKind::File
    } else if file_type.is_dir() {
        FileKind::Dir
    } else if file_type.is_symlink() {
        FileKind::SymbolicLink
    } else if file_type.is_fifo() {
        FileKind::Fifo
    } else if file_type.is_socket() {
        FileKind::Socket
    } else if file_type.is_char_device() {
        FileKind::CharDevice
    } else if file_type.is_block_device() {
        FileKind::BlockDevice
    } else {
        FileKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    fn folder() -> (tempfile::TempDir, Dir) {
        let temp = tempfile::tempdir().unwrap();
        let dir = Dir::open(temp.path()).unwrap();
        (temp, dir)
    }

    #[test]
    fn a_regular_file_opens_and_reads() {
        let (temp, dir) = folder();
        std::fs::write(temp.path().join("a"), b"bytes").unwrap();
        let mut text = String::new();
        dir.open_file("a").unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "bytes");
        assert_eq!(dir.stat("a").unwrap().kind, FileKind::File);
        assert_eq!(dir.stat("a").unwrap().len, 5);
    }

    #[test]
    fn a_link_is_never_followed_by_any_open() {
        let (temp, dir) = folder();
        let secret = temp.path().join("secret");
        std::fs::write(&secret, b"key").unwrap();
        std::fs::create_dir(temp.path().join("sub")).unwrap();
        symlink(&secret, temp.path().join("to-file")).unwrap();
        symlink(temp.path().join("sub"), temp.path().join("to-dir")).unwrap();
        symlink(temp.path().join("not-there"), temp.path().join("dangling")).unwrap();

        assert!(matches!(dir.open_file("to-file"), Err(FsError::SymbolicLink { .. })));
        assert!(matches!(dir.open_dir("to-dir"), Err(FsError::SymbolicLink { .. })));
        assert!(matches!(dir.open_or_create_dir("to-dir", 0o700), Err(FsError::SymbolicLink { .. })));
        assert!(matches!(dir.open_or_create_file("to-file", 0o600), Err(FsError::SymbolicLink { .. })));
        assert!(matches!(dir.open_or_create_file("dangling", 0o600), Err(FsError::SymbolicLink { .. })));
        assert!(dir.create_exclusive("dangling", 0o600).is_err());
        assert!(!temp.path().join("not-there").exists(), "nothing is created at a link's target");
        assert_eq!(dir.stat("to-file").unwrap().kind, FileKind::SymbolicLink);
        assert_eq!(std::fs::read(&secret).unwrap(), b"key", "the target is untouched");
    }

    #[test]
    fn anything_but_a_regular_file_is_refused_as_a_file() {
        let (temp, dir) = folder();
        std::fs::create_dir(temp.path().join("sub")).unwrap();
        let fifo = temp.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        // A FIFO must not hang the open (it would wait for a writer without O_NONBLOCK).
        for name in ["sub", "fifo"] {
            match dir.open_file(name) {
                Err(FsError::WrongKind { wanted: FileKind::File, .. }) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(matches!(dir.open_or_create_file("sub", 0o600), Err(FsError::WrongKind { .. })));
        std::fs::write(temp.path().join("file"), b"").unwrap();
        assert!(matches!(dir.open_dir("file"), Err(FsError::WrongKind { found: FileKind::File, .. })));
    }

    #[test]
    fn names_of_more_than_one_component_are_refused() {
        let (_temp, dir) = folder();
        for name in ["", ".", "..", "a/b", "/etc/passwd", "../x"] {
            assert!(matches!(dir.open_file(name), Err(FsError::NotAName { .. })), "{name:?}");
            assert!(matches!(dir.create_exclusive(name, 0o600), Err(FsError::NotAName { .. })), "{name:?}");
        }
    }

    #[test]
    fn create_exclusive_never_opens_an_existing_file_and_rename_replaces() {
        let (temp, dir) = folder();
        let mut file = dir.create_exclusive("new", 0o600).unwrap();
        file.write_all(b"new").unwrap();
        assert!(dir.create_exclusive("new", 0o600).is_err());
        std::fs::write(temp.path().join("old"), b"old").unwrap();
        dir.rename_within("new", "old").unwrap();
        dir.sync().unwrap();
        assert_eq!(std::fs::read(temp.path().join("old")).unwrap(), b"new");
        let (sub, created) = dir.open_or_create_dir("sub", 0o700).unwrap();
        assert!(created);
        assert!(!dir.open_or_create_dir("sub", 0o700).unwrap().1);
        dir.rename_into("old", &sub, "moved").unwrap();
        assert_eq!(std::fs::read(temp.path().join("sub/moved")).unwrap(), b"new");
        dir.expect_same_file_system(&sub).unwrap();
        let names: Vec<_> = sub.entries().unwrap();
        assert_eq!(names, [(OsString::from("moved"), FileKind::File)]);
        sub.remove_file("moved").unwrap();
        assert!(sub.entries().unwrap().is_empty());
    }

    #[test]
    fn a_path_that_is_not_a_folder_is_refused_by_name() {
        let temp = tempfile::tempdir().unwrap();
        let file = temp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = Dir::open(&file).unwrap_err();
        assert!(matches!(err, FsError::WrongKind { found: FileKind::File, .. }), "{err:?}");
        assert!(err.to_string().contains("is a regular file, not a folder"), "{err}");
        assert!(Dir::open(temp.path().join("missing")).unwrap_err().is_not_found());
    }
}
