//! Is a folder private to the user running fts? A folder fts writes into and trusts
//! (the client's destination, the folder of its state file) must be one that nobody
//! else can change, or the files in it can be swapped, planted or pointed elsewhere
//! behind fts's back.
//!
//! Two checks, in the spirit of sshd's `StrictModes`:
//! - [`check_private`]: the folder itself (on its open handle) is owned by the
//!   effective user and writable by neither its group nor others;
//! - [`check_ancestors`]: every folder on the way to it can be changed only by root
//!   or that user: each is owned by one of them, and writable by nobody else unless
//!   it has the sticky bit (as `/tmp` does: others can add names there but cannot
//!   rename or remove ours). Links on the way are resolved as the kernel would, and
//!   the folders holding them are checked too, since whoever can write such a folder
//!   can point the link elsewhere.
//!
//! Why the ancestors matter even though fts works through a handle: fts itself would
//! keep writing into the folder it opened, but a hook, a root installer or an
//! operator reaches the files by path, and a writable parent lets its writers rename
//! the folder away and put another in its place.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::{Dir, FileKind, FsError, Result};

/// Links followed before giving up, as the kernel's limit.
const MAX_LINKS: usize = 40;

/// The effective user id of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Who can write a folder with `mode`, in words, or `None` when only its owner can.
fn other_writers(mode: u32) -> Option<&'static str> {
    match (mode & 0o020 != 0, mode & 0o002 != 0) {
        (true, true) => Some("its group and others"),
        (true, false) => Some("its group"),
        (false, true) => Some("others"),
        (false, false) => None,
    }
}

/// Refuses `dir` unless the effective user owns it and no one else can write it.
pub fn check_private(dir: &Dir) -> Result<()> {
    let stat = dir.metadata()?;
    let euid = euid();
    let path = dir.path();
    let refuse = |problem: String, fix: String| FsError::NotPrivate {
        path: path.to_owned(),
        problem,
        owner: stat.uid,
        mode: stat.mode,
        euid,
        fix,
    };
    if stat.uid != euid {
        return Err(refuse(
            format!("it is owned by uid {}, not by the user running fts", stat.uid),
            format!("run `chown {euid} {}`, or run fts as uid {}", path.display(), stat.uid),
        ));
    }
    if let Some(writers) = other_writers(stat.mode) {
        return Err(refuse(
            format!("it is writable by {writers}"),
            format!("run `chmod 0750 {}` (or 0700)", path.display()),
        ));
    }
    Ok(())
}

/// Refuses `path` (a folder that exists) if any folder on the way to it, the folders
/// holding links included, can be changed by someone other than root and the
/// effective user. `path` itself is not judged here: [`check_private`] does, on the
/// opened handle.
pub fn check_ancestors(path: &Path) -> Result<()> {
    let absolute = std::path::absolute(path).map_err(FsError::io("resolve", path))?;
    let euid = euid();
    // Components still to walk, the next one last.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, &absolute);
    let mut current = PathBuf::from("/");
    let mut checked: Vec<PathBuf> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            current.pop();
            continue;
        }
        // The folder `name` sits in: whoever can write it can replace `name`.
        if !checked.contains(&current) {
            check_ancestor(&current, path, euid)?;
            checked.push(current.clone());
        }
        let next = current.join(&name);
        let meta = match std::fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            // Nothing further to judge; opening the folder will say it is missing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(FsError::io("inspect", &next)(e)),
        };
        if meta.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(FsError::io("resolve", path)(std::io::Error::other("too many symbolic links")));
            }
            let target = std::fs::read_link(&next).map_err(FsError::io("read the link", &next))?;
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            push_components(&mut pending, &target);
        } else if meta.is_dir() {
            current = next;
        } else {
            return Err(FsError::WrongKind { path: next, found: FileKind::File, wanted: FileKind::Dir });
        }
    }
    Ok(())
}

/// Pushes the components of `path` so that the first is popped first.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let names: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.to_owned()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    pending.extend(names.into_iter().rev());
}

/// One folder on the way to `target`: owned by root or `euid`, writable by nobody
/// else unless sticky.
fn check_ancestor(folder: &Path, target: &Path, euid: u32) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(folder).map_err(FsError::io("inspect", folder))?;
    let (owner, mode) = (meta.uid(), meta.mode() & 0o7777);
    let refuse = |problem: String, fix: String| FsError::NotPrivate {
        path: target.to_owned(),
        problem,
        owner,
        mode,
        euid,
        fix,
    };
    if owner != 0 && owner != euid {
        return Err(refuse(
            format!(
                "the folder {} on its way is owned by uid {owner}, who could replace it",
                folder.display()
            ),
            "choose a folder whose parents belong to root or to the user running fts".into(),
        ));
    }
    let sticky = mode & 0o1000 != 0;
    if let Some(writers) = other_writers(mode).filter(|_| !sticky) {
        return Err(refuse(
            format!(
                "the folder {} on its way is writable by {writers}, who could replace it",
                folder.display()
            ),
            format!("run `chmod go-w {}` (or `chmod +t` it), or choose another folder", folder.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_folder_writable_by_group_or_others_is_refused_with_the_fix() {
        let temp = tempfile::tempdir().unwrap();
        let dest = temp.path().join("in");
        std::fs::create_dir(&dest).unwrap();
        chmod(&dest, 0o750);
        check_private(&Dir::open(&dest).unwrap()).unwrap();
        for (mode, writers) in [(0o770, "its group"), (0o757, "others"), (0o777, "its group and others")] {
            chmod(&dest, mode);
            let err = check_private(&Dir::open(&dest).unwrap()).unwrap_err().to_string();
            assert!(err.contains(&format!("writable by {writers}")), "{err}");
            assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
            assert!(err.contains(&format!("chmod 0750 {}", dest.display())), "{err}");
        }
    }

    #[test]
    fn a_folder_owned_by_another_user_is_refused_with_the_fix() {
        if euid() != 0 {
            eprintln!("SKIPPED: only root can give a folder to another user");
            return;
        }
        let temp = tempfile::tempdir().unwrap();
        let dest = temp.path().join("in");
        std::fs::create_dir(&dest).unwrap();
        std::os::unix::fs::chown(&dest, Some(65534), None).unwrap();
        let err = check_private(&Dir::open(&dest).unwrap()).unwrap_err().to_string();
        assert!(err.contains("owned by uid 65534, not by the user running fts"), "{err}");
        assert!(err.contains(&format!("chown 0 {}", dest.display())), "{err}");
        // As a parent, a folder of another user is refused too: it could swap `in`.
        let below = dest.join("below");
        std::fs::create_dir(&below).unwrap();
        let err = check_ancestors(&below).unwrap_err().to_string();
        assert!(err.contains("is owned by uid 65534, who could replace it"), "{err}");
    }

    #[test]
    fn a_folder_under_a_writable_parent_is_refused_unless_the_parent_is_sticky() {
        let temp = tempfile::tempdir().unwrap();
        let parent = temp.path().join("shared");
        let dest = parent.join("in");
        std::fs::create_dir_all(&dest).unwrap();
        check_ancestors(&dest).unwrap();
        chmod(&parent, 0o777);
        let err = check_ancestors(&dest).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{} on its way is writable by its group and others", parent.display())),
            "{err}"
        );
        chmod(&parent, 0o1777);
        check_ancestors(&dest).unwrap();
        chmod(&parent, 0o755);
    }

    #[test]
    fn the_folder_holding_a_link_on_the_way_is_checked_too() {
        let temp = tempfile::tempdir().unwrap();
        let real = temp.path().join("real");
        let links = temp.path().join("links");
        std::fs::create_dir_all(real.join("in")).unwrap();
        std::fs::create_dir(&links).unwrap();
        symlink(&real, links.join("to-real")).unwrap();
        let through = links.join("to-real/in");
        check_ancestors(&through).unwrap();
        // Whoever can write `links` can point `to-real` anywhere.
        chmod(&links, 0o777);
        let err = check_ancestors(&through).unwrap_err().to_string();
        assert!(err.contains(&format!("{} on its way", links.display())), "{err}");
        chmod(&links, 0o755);
        // The link's target's parents count as well.
        chmod(&real, 0o777);
        assert!(check_ancestors(&through).is_err());
        chmod(&real, 0o755);
    }
}
