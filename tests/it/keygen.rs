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

#[test]
fn keygen_signing_writes_the_log_origin_given_or_a_random_one() {
    let sandbox = Sandbox::new();
    let out = expect_success(&mut sandbox.fts(["keygen", "signing", "--log-origin", "fts.example/prod"]));
    assert!(stdout(&out).contains("log origin fts.example/prod"), "{}", stdout(&out));
    let origin_file = sandbox.join("certs/log-origin");
    assert_eq!(std::fs::read_to_string(&origin_file).unwrap(), "fts.example/prod\n");
    assert_eq!(std::fs::metadata(&origin_file).unwrap().permissions().mode() & 0o777, 0o644);

    // Like the key files, never replaced without --force: nothing at all is written.
    let key = std::fs::read(sandbox.join("certs/signing.key")).unwrap();
    let out = expect_code(&mut sandbox.fts(["keygen", "signing", "--log-origin", "fts.example/other"]), 1);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&origin_file).unwrap(), "fts.example/prod\n");
    assert_eq!(std::fs::read(sandbox.join("certs/signing.key")).unwrap(), key);
    // log-origin alone is enough to refuse.
    let dir = sandbox.join("only-origin");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("log-origin"), "x/y\n").unwrap();
    let out = expect_code(&mut sandbox.fts(["keygen", "signing", "--dir", "only-origin"]), 1);
    assert!(stderr(&out).contains("log-origin"), "{}", stderr(&out));
    assert!(!dir.join("signing.key").exists());

    // The default: fts.local/ and 16 random lower-case hex digits.
    let out = expect_success(&mut sandbox.fts(["keygen", "signing", "--force"]));
    let origin = std::fs::read_to_string(&origin_file).unwrap();
    let hex = origin.strip_prefix("fts.local/").and_then(|o| o.strip_suffix('\n')).unwrap();
    assert!(
        hex.len() == 16 && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)),
        "{origin}"
    );
    assert!(stdout(&out).contains(origin.trim_end()), "{}", stdout(&out));
    assert_ne!(std::fs::read(sandbox.join("certs/signing.key")).unwrap(), key);

    // A bad origin is a usage error naming the rule; nothing is written.
    for bad in ["no-slash", "fts-heads/x", "a b/c", "a+b/c"] {
        let out =
            expect_code(&mut sandbox.fts(["keygen", "signing", "--dir", "bad", "--log-origin", bad]), 2);
        assert!(stderr(&out).contains("invalid log origin"), "{bad}: {}", stderr(&out));
    }
    assert!(!sandbox.join("bad").exists());
}

#[test]
fn keygen_timestamp_writes_its_key_pair_and_says_where_each_goes() {
    let sandbox = Sandbox::new();
    let out = expect_success(&mut sandbox.fts(["keygen", "timestamp", "--dir", "ts"]));
    let text = stdout(&out);
    assert!(text.contains("timestamp key fts-timestamp/"), "{text}");
    assert!(text.contains("only on the timestamp machine"), "{text}");
    assert!(text.contains("fts poll --timestamp-key"), "{text}");
    let mode =
        |name: &str| std::fs::metadata(sandbox.join("ts").join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("timestamp.key"), 0o600);
    assert_eq!(mode("timestamp.pub"), 0o644);
    let public = std::fs::read_to_string(sandbox.join("ts/timestamp.pub")).unwrap();
    assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{public}");

    let key = std::fs::read(sandbox.join("ts/timestamp.key")).unwrap();
    let out = expect_code(&mut sandbox.fts(["keygen", "timestamp", "--dir", "ts"]), 1);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(sandbox.join("ts/timestamp.key")).unwrap(), key);
    expect_success(&mut sandbox.fts(["keygen", "timestamp", "--dir", "ts", "--force"]));
    assert_ne!(std::fs::read(sandbox.join("ts/timestamp.key")).unwrap(), key);
}

#[test]
fn keygen_ticket_key_writes_a_private_file_rotates_it_and_serve_refuses_a_bad_one() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    let out = expect_success(&mut sandbox.fts(["keygen", "ticket-key"]));
    assert!(stdout(&out).contains("certs/ticket.key") && stdout(&out).contains("SIGHUP"), "{}", stdout(&out));
    let path = sandbox.join("certs/ticket.key");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let first = std::fs::read(&path).unwrap();

    let out = expect_code(&mut sandbox.fts(["keygen", "ticket-key"]), 1);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&path).unwrap(), first, "unchanged");

    let out = expect_success(&mut sandbox.fts(["keygen", "ticket-key", "--rotate"]));
    assert!(stdout(&out).contains("seals now") && stdout(&out).contains("only opens"), "{}", stdout(&out));
    let rotated = std::fs::read(&path).unwrap();
    let out = expect_code(&mut sandbox.fts(["keygen", "ticket-key", "--rotate"]), 1);
    assert!(stderr(&out).contains("once a day") && stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&path).unwrap(), rotated, "a refused rotation changes nothing");
    expect_success(&mut sandbox.fts(["keygen", "ticket-key", "--rotate", "--force"]));

    // A server refuses to start with a ticket key file it cannot use, and says which.
    sandbox.publish("a.conf", b"a\n", &["all"]);
    std::fs::write(sandbox.join("bad.key"), "seal 00 0 00\n").unwrap();
    let out =
        expect_code(&mut sandbox.fts(["serve", "--ticket-key", "bad.key", "--listen", "127.0.0.1:0"]), 1);
    let message = stderr(&out);
    assert!(
        message.contains("bad.key")
            && message.contains("--ticket-key")
            && message.contains("not a ticket key file"),
        "{message}"
    );
    let out =
        expect_code(&mut sandbox.fts(["serve", "--ticket-key", "missing.key", "--listen", "127.0.0.1:0"]), 1);
    assert!(stderr(&out).contains("missing.key"), "{}", stderr(&out));
}
