//! Who is publishing: the login name and the host name that `fts publish` records
//! beside each publish ([`fts_store::Publisher`]). Informational and unsigned: the
//! person running fts controls its environment, so this says who they said they were
//! on which machine, for the operators reading `fts log`, not proof of anything.
//!
//! Kept simple, and never a reason for a publish to fail: the user is `$USER`, else
//! `$LOGNAME`, else the name of the real uid in `/etc/passwd`, else `uid N`; the host
//! is the kernel's host name. A value that is not printable text is skipped for the
//! next one.

use std::path::Path;

use fts_store::Publisher;

/// The most read of `/etc/passwd` (a larger one is a directory service's job, which
/// the environment's `USER` covers) and of a host name file.
const PASSWD_MAX: u64 = 4 << 20;
const HOSTNAME_MAX: u64 = 256;

/// The publisher of this process, `None` only if no user name at all is usable.
pub fn current() -> Option<Publisher> {
    let host = host_name();
    let uid = rustix::process::getuid().as_raw();
    let candidates = ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|var| std::env::var(var).ok())
        .chain(passwd_name(Path::new("/etc/passwd"), uid))
        .chain([format!("uid {uid}")]);
    candidates.into_iter().find_map(|user| Publisher::new(&user, host.as_deref()))
}

/// The kernel's host name (`/proc/sys/kernel/hostname`, Linux), else `/etc/hostname`.
fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"].into_iter().find_map(|path| {
        let text = read_bounded(Path::new(path), HOSTNAME_MAX)?;
        let name = text.trim();
        (!name.is_empty()).then(|| name.to_owned())
    })
}

/// The name of `uid` in a passwd file (`name:x:uid:...`).
fn passwd_name(path: &Path, uid: u32) -> Option<String> {
    let text = read_bounded(path, PASSWD_MAX)?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// A small text file whole; `None` if it cannot be read, is larger than `max` bytes
/// or is not UTF-8.
fn read_bounded(path: &Path, max: u64) -> Option<String> {
    String::from_utf8(fts_fs::read_bounded(path, max).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_of_a_uid_is_read_from_a_passwd_file() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/sh\nbroken line\nalice:x:1000:1000::/home/alice:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(passwd_name(&passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(passwd_name(&passwd, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(&passwd, 7), None);
        assert_eq!(passwd_name(&dir.path().join("none"), 0), None);
    }

    #[test]
    fn this_process_has_a_publisher() {
        assert!(current().is_some(), "at worst `uid N`");
    }
}
