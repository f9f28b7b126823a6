//! `fts keygen` through the real binary: the files it writes, its refusals, and the
//! configuration layering observed through where the files land.

use std::os::unix::fs::PermissionsExt;

use crate::common::{Sandbox, expect_code, expect_success, stderr, stdout};

#[test]
fn keygen_provisions_a_ca_a_server_a_client_and_a_signing_key() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    expect_success(&mut sandbox.fts(["keygen", "server", "--name", "localhost", "--name", "127.0.0.1"]));
    let out = expect_success(&mut sandbox.fts(["keygen", "client", "--id", "web-01", "--group", "web"]));
    assert!(stdout(&out).contains("web-01.crt"), "{}", stdout(&out));
    let out = expect_success(&mut sandbox.fts(["keygen", "signing"]));
    assert!(stdout(&out).contains("key id "), "{}", stdout(&out));

    for key in ["ca.key", "server.key", "web-01.key", "signing.key"] {
        let mode = std::fs::metadata(sandbox.join("certs").join(key)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{key} is private");
    }
    for public in ["ca.crt", "server.crt", "web-01.crt", "signing.pub"] {
        assert!(sandbox.join("certs").join(public).is_file(), "{public}");
    }
}

#[test]
fn keygen_without_a_ca_says_which_command_makes_one() {
    let sandbox = Sandbox::new();
    let out = expect_code(&mut sandbox.fts(["keygen", "client", "--id", "web-01"]), 1);
    assert!(stderr(&out).contains("fts keygen ca"), "{}", stderr(&out));
}

#[test]
fn keygen_never_overwrites_without_force() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    let before = std::fs::read(sandbox.join("certs/ca.key")).unwrap();
    let out = expect_code(&mut sandbox.fts(["keygen", "ca"]), 1);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(sandbox.join("certs/ca.key")).unwrap(), before);
    expect_success(&mut sandbox.fts(["keygen", "ca", "--force"]));
    assert_ne!(std::fs::read(sandbox.join("certs/ca.key")).unwrap(), before);
}

#[test]
fn keygen_refuses_bad_names_as_usage_errors() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    for args in [
        &["keygen", "client"][..],
        &["keygen", "client", "--id", "all"],
        &["keygen", "client", "--id", "Web 01"],
        &["keygen", "client", "--id", "web-01", "--group", "Web"],
        &["keygen", "server"],
    ] {
        let out = expect_code(&mut sandbox.fts(args), 2);
        assert!(stderr(&out).starts_with("fts: error: "), "{args:?}: {}", stderr(&out));
    }
    assert!(!sandbox.join("certs/all.crt").exists());
}

/// Flag, then environment, then config file, then default: observed through the
/// folder `fts keygen ca` writes into.
#[test]
fn settings_come_from_flag_then_environment_then_file_then_default() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("fts.toml"), "[keygen]\ndir = \"from-file\"\n").unwrap();
    let ca_in = |dir: &str| sandbox.join(dir).join("ca.crt").is_file();

    expect_success(
        sandbox
            .fts(["--config", "fts.toml", "keygen", "ca", "--dir", "from-flag"])
            .env("FTS_DIR", "from-env"),
    );
    assert!(ca_in("from-flag") && !ca_in("from-env") && !ca_in("from-file"));

    expect_success(sandbox.fts(["--config", "fts.toml", "keygen", "ca"]).env("FTS_DIR", "from-env"));
    assert!(ca_in("from-env") && !ca_in("from-file"));

    expect_success(&mut sandbox.fts(["--config", "fts.toml", "keygen", "ca"]));
    assert!(ca_in("from-file") && !ca_in("certs"));

    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    assert!(ca_in("certs"));
}

#[test]
fn a_flag_given_by_environment_only_is_still_checked() {
    let sandbox = Sandbox::new();
    let out = expect_code(sandbox.fts(["keygen", "ca"]).env("FTS_DAYS", "forever"), 2);
    assert!(stderr(&out).contains("forever"), "{}", stderr(&out));
}
