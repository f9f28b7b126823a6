//! `/usr/bin/openssl`, run on fts's files. Under CI (env `CI` set) a missing openssl
//! fails the test; elsewhere the check is skipped with a message.

use std::path::Path;
use std::process::{Command, Output};

/// `/usr/bin/openssl` with `args` in `dir`, or `None` (with a message) when it is
/// missing outside CI.
pub fn openssl(args: &[&str], dir: &Path) -> Option<Output> {
    let path = Path::new("/usr/bin/openssl");
    if !path.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "openssl is required under CI but /usr/bin/openssl is missing"
        );
        eprintln!("skipping openssl check: /usr/bin/openssl not found");
        return None;
    }
    Some(Command::new(path).args(args).current_dir(dir).output().expect("run openssl"))
}

/// Like [`openssl`], asserting success; returns stdout.
pub fn openssl_ok(args: &[&str], dir: &Path) -> Option<String> {
    let out = openssl(args, dir)?;
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}
