//! The PKI lifecycle through the real binary: a host makes its key and CSR, the CA
//! host signs it with the groups it chooses, revokes it, renews the CRL; and the exit
//! codes of every refusal.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use fts_testkit::openssl::openssl;

use crate::common::{Sandbox, expect_code, expect_success, stderr, stdout};

fn both(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

/// The serials of an `fts keygen` summary line `... serial <hex> ...`.
fn serial_in(text: &str) -> String {
    let after = text.split("serial ").nth(1).unwrap_or_else(|| panic!("no serial in {text}"));
    after.split([',', ' ', '\n']).next().unwrap().to_owned()
}

#[test]
fn a_host_enrols_by_csr_and_is_revoked_and_the_crl_is_renewed() {
    let sandbox = Sandbox::new();
    fs::create_dir_all(sandbox.join("host")).unwrap();
    fs::create_dir_all(sandbox.join("ca-host")).unwrap();
    let host = |args: &[&str]| {
        let mut cmd = sandbox.fts(args);
        cmd.current_dir(sandbox.join("host"));
        cmd
    };
    let ca = |args: &[&str]| {
        let mut cmd = sandbox.fts(args);
        cmd.current_dir(sandbox.join("ca-host"));
        cmd
    };
    expect_success(&mut ca(&["keygen", "ca"]));
    expect_success(&mut ca(&["keygen", "client", "--id", "web-01", "--group", "old"]));

    // On the host: the key stays, the CSR travels.
    let out = expect_success(&mut host(&["keygen", "csr", "--id", "web-01"]));
    assert!(
        stdout(&out).contains("web-01.csr") && stdout(&out).contains("fts keygen sign"),
        "{}",
        stdout(&out)
    );
    let key = sandbox.join("host/certs/web-01.key");
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    fs::copy(sandbox.join("host/certs/web-01.csr"), sandbox.join("ca-host/web-01.csr")).unwrap();

    // On the CA host: an existing web-01.crt is kept without --force.
    let out = expect_code(&mut ca(&["keygen", "sign", "web-01.csr", "--group", "web"]), 1);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = expect_success(&mut ca(&[
        "keygen",
        "sign",
        "web-01.csr",
        "--group",
        "web",
        "--group",
        "db",
        "--days",
        "90",
        "--force",
    ]));
    let text = stdout(&out);
    assert!(text.contains("certs/web-01.crt") && text.contains("for web-01, groups: db, web"), "{text}");
    assert!(text.contains("the CSR asked for nothing beyond its CN and key"), "{text}");
    assert!(text.contains("web-01.key is from an earlier certificate"), "stale key pointed out: {text}");
    let signed_serial = serial_in(&text);
    let index = fs::read_to_string(sandbox.join("ca-host/certs/issued.tsv")).unwrap();
    assert_eq!(index.matches("\tclient\tweb-01\t").count(), 2, "{index}");
    assert!(index.contains(&signed_serial), "{index}");

    // The certificate goes back to the host, beside its own key.
    fs::copy(sandbox.join("ca-host/certs/web-01.crt"), sandbox.join("host/certs/web-01.crt")).unwrap();
    if let Some(out) =
        openssl(&["verify", "-CAfile", "../ca-host/certs/ca.crt", "certs/web-01.crt"], &sandbox.join("host"))
    {
        assert!(out.status.success() && stdout(&out).contains(": OK"), "{}", both(&out));
        let from_cert =
            openssl(&["x509", "-noout", "-pubkey", "-in", "certs/web-01.crt"], &sandbox.join("host"));
        let from_key = openssl(&["pkey", "-pubout", "-in", "certs/web-01.key"], &sandbox.join("host"));
        assert_eq!(stdout(&from_cert.unwrap()), stdout(&from_key.unwrap()), "signed for the host's own key");
    }

    // Revoke: both certificates of web-01, CRL number 1.
    let out = expect_success(&mut ca(&["keygen", "revoke", "web-01", "--crl-days", "7"]));
    let text = stdout(&out);
    assert!(text.contains("revoked 2 certificate(s) of web-01") && text.contains(&signed_serial), "{text}");
    assert!(text.contains("crl number 1, 2 revoked certificate(s)"), "{text}");
    let revoked = fs::read_to_string(sandbox.join("ca-host/certs/revoked.tsv")).unwrap();
    assert_eq!(revoked.matches("\tweb-01\t").count(), 2, "{revoked}");

    // Renewal: same entries, next number, fresh next-update.
    let out = expect_success(&mut ca(&["keygen", "crl"]));
    assert!(stdout(&out).contains("crl number 2, 2 revoked certificate(s)"), "{}", stdout(&out));
    assert_eq!(fs::read_to_string(sandbox.join("ca-host/certs/revoked.tsv")).unwrap(), revoked, "unchanged");

    let dir = sandbox.join("ca-host/certs");
    let Some(out) = openssl(&["crl", "-in", "ca.crl", "-CAfile", "ca.crt", "-noout", "-text"], &dir) else {
        return;
    };
    let text = both(&out);
    assert!(out.status.success() && text.contains("verify OK"), "{text}");
    assert!(text.contains("X509v3 CRL Number") && text.to_lowercase().contains(&signed_serial), "{text}");
    let out =
        openssl(&["verify", "-crl_check", "-CRLfile", "ca.crl", "-CAfile", "ca.crt", "web-01.crt"], &dir);
    let out = out.unwrap();
    assert!(!out.status.success() && both(&out).contains("certificate revoked"), "{}", both(&out));
}

#[test]
fn the_signer_ignores_what_an_openssl_csr_asks_for_and_says_so() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    let dir = sandbox.path();
    let Some(out) = openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "h.key"], dir)
    else {
        return;
    };
    assert!(out.status.success(), "{}", both(&out));
    let out = openssl(
        &[
            "req",
            "-new",
            "-key",
            "h.key",
            "-subj",
            "/CN=web-03/O=admin",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectAltName=DNS:evil.example",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-out",
            "h.csr",
        ],
        dir,
    )
    .unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let out = expect_success(&mut sandbox.fts(["keygen", "sign", "h.csr", "--group", "web"]));
    let text = stdout(&out);
    assert!(text.contains("wrote certs/web-03.crt"), "named after the CSR's id: {text}");
    assert!(
        text.contains("the CSR asked for: O=admin, CA, SAN DNS:evil.example, serverAuth; ignored"),
        "{text}"
    );
    let out = openssl(&["x509", "-noout", "-text", "-in", "certs/web-03.crt"], dir).unwrap();
    let cert = stdout(&out);
    assert!(cert.contains("CA:FALSE") && !cert.contains("evil.example"), "{cert}");
    assert!(cert.contains("Subject: CN = web-03, O = web"), "{cert}");
    assert!(
        cert.contains("TLS Web Client Authentication") && !cert.contains("Server Authentication"),
        "{cert}"
    );

    // A CSR whose CN is a reserved word is refused: exit 1, naming the file.
    let out = openssl(&["req", "-new", "-key", "h.key", "-subj", "/CN=all", "-out", "all.csr"], dir).unwrap();
    assert!(out.status.success(), "{}", both(&out));
    let out = expect_code(&mut sandbox.fts(["keygen", "sign", "all.csr"]), 1);
    assert!(
        stderr(&out).contains("all.csr") && stderr(&out).contains("not a valid client id"),
        "{}",
        stderr(&out)
    );
    assert!(!sandbox.join("certs/all.crt").exists());
}

#[test]
fn a_crl_can_be_made_before_anything_is_revoked() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    let out = expect_success(&mut sandbox.fts(["keygen", "crl", "--crl-days", "10"]));
    assert!(stdout(&out).contains("crl number 1, 0 revoked certificate(s)"), "{}", stdout(&out));
    assert!(sandbox.join("certs/ca.crl").is_file());
    if let Some(out) =
        openssl(&["crl", "-in", "ca.crl", "-CAfile", "ca.crt", "-noout"], &sandbox.join("certs"))
    {
        assert!(out.status.success() && both(&out).contains("verify OK"), "{}", both(&out));
    }
}

#[test]
fn keygen_pki_commands_exit_2_on_usage_errors_and_1_on_failures() {
    let sandbox = Sandbox::new();
    // Usage errors: exit 2, before anything is read.
    for args in [
        &["keygen", "csr"][..],
        &["keygen", "csr", "--id", "all"],
        &["keygen", "csr", "--id", "Web 01"],
        &["keygen", "sign"],
        &["keygen", "sign", "x.csr", "--group", "Not A Group"],
        &["keygen", "revoke"],
        &["keygen", "revoke", "Bad Name"],
        &["keygen", "crl", "--crl-days", "soon"],
    ] {
        let out = expect_code(&mut sandbox.fts(args), 2);
        assert!(!stderr(&out).is_empty(), "{args:?}");
    }

    // Failures: exit 1 with a message saying what to do.
    expect_success(&mut sandbox.fts(["keygen", "csr", "--id", "web-01", "--dir", "host"]));
    for args in
        [&["keygen", "sign", "host/web-01.csr"][..], &["keygen", "revoke", "web-01"], &["keygen", "crl"]]
    {
        let out = expect_code(&mut sandbox.fts(args), 1);
        assert!(stderr(&out).contains("fts keygen ca"), "{args:?}: {}", stderr(&out));
    }
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    let out = expect_code(&mut sandbox.fts(["keygen", "sign", "missing.csr"]), 1);
    assert!(stderr(&out).contains("missing.csr"), "{}", stderr(&out));
    let out = expect_code(&mut sandbox.fts(["keygen", "revoke", "web-01"]), 1);
    assert!(stderr(&out).contains("no certificate was ever issued for \"web-01\""), "{}", stderr(&out));
    assert!(!sandbox.join("certs/ca.crl").exists(), "nothing written");
    let out = expect_code(&mut sandbox.fts(["keygen", "csr", "--id", "web-01", "--dir", "host"]), 1);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = expect_code(&mut sandbox.fts(["keygen", "crl", "--crl-days", "0"]), 1);
    assert!(stderr(&out).contains("--crl-days"), "{}", stderr(&out));
}

#[test]
fn crl_days_can_come_from_the_keygen_section_of_a_config_file() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    fs::write(sandbox.join("fts.toml"), "[keygen]\ncrl-days = 3\n").unwrap();
    // `crl-days` means nothing to `keygen ca`, and is used by `keygen crl`.
    expect_success(&mut sandbox.fts(["--config", "fts.toml", "keygen", "ca", "--dir", "other"]));
    let in_3_days = || {
        let out = Command::new("date").args(["-u", "-d", "+3 days", "+%Y-%m-%d"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let before = in_3_days();
    let out = expect_success(&mut sandbox.fts(["--config", "fts.toml", "keygen", "crl"]));
    let after = in_3_days();
    let text = stdout(&out);
    let next = text.split("next update ").nth(1).unwrap().get(..10).unwrap().to_owned();
    assert!(next == before || next == after, "next update in 3 days ({before}): {text}");
}

#[test]
fn what_a_csr_asks_for_is_shown_with_its_control_characters_escaped() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    let cnf = "[req]\ndistinguished_name = dn\nreq_extensions = ext\nprompt = no\n[dn]\nCN = web-09\n\
               OU = ops\x1b]0;owned\x07\n[ext]\nsubjectAltName = DNS:evil\x1b[2K.example\n";
    fs::write(sandbox.join("req.cnf"), cnf).unwrap();
    let Some(key) =
        openssl(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "k.pem"], sandbox.path())
    else {
        return;
    };
    assert!(key.status.success(), "{}", stderr(&key));
    let req = openssl(
        &["req", "-new", "-key", "k.pem", "-config", "req.cnf", "-out", "web-09.csr"],
        sandbox.path(),
    )
    .unwrap();
    assert!(req.status.success(), "{}", stderr(&req));

    let out = expect_success(&mut sandbox.fts(["keygen", "sign", "web-09.csr"]));
    let text = both(&out);
    assert!(!text.contains('\x1b') && !text.contains('\x07'), "raw control characters: {text:?}");
    assert!(text.contains(r"SAN DNS:evil\u{1b}[2K.example"), "{text}");
    assert!(text.contains(r"\u{1b}]0;owned\u{7}"), "{text}");
}
