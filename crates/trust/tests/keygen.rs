//! fts keygen output: what openssl makes of it, file modes, no silent overwrites,
//! the issued index, and interoperability with certificates made by openssl.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{Pki, ServerSaw, connect_once};
use fts_proto::ClientId;
use fts_testkit::openssl::{openssl, openssl_ok};
use fts_trust::Error;
use fts_trust::issued::{IssuedKind, client_serials, read_index};
use fts_trust::keygen::{self, CaOptions, ClientOptions, ServerOptions, SigningOptions};
use fts_trust::pem::load_certificates;

#[test]
fn keygen_output_passes_openssl_verify_and_pkey() {
    let pki = Pki::new();
    pki.client("web-01", &["web", "db"]);
    keygen::signing(&SigningOptions { dir: pki.dir.path().to_owned(), log_origin: None, force: false })
        .unwrap();
    let dir = pki.dir.path();
    for cert in ["server.crt", "web-01.crt"] {
        let Some(out) = openssl_ok(&["verify", "-CAfile", "ca.crt", cert], dir) else { return };
        assert!(out.contains(": OK"), "{out}");
    }
    for key in ["ca.key", "server.key", "web-01.key", "signing.key"] {
        openssl_ok(&["pkey", "-noout", "-in", key], dir);
    }
    openssl_ok(&["pkey", "-pubin", "-noout", "-in", "signing.pub"], dir);
    // Every certificate carries its key's public half.
    for (cert, key) in [("ca.crt", "ca.key"), ("server.crt", "server.key"), ("web-01.crt", "web-01.key")] {
        let from_cert = openssl_ok(&["x509", "-noout", "-pubkey", "-in", cert], dir).unwrap();
        let from_key = openssl_ok(&["pkey", "-pubout", "-in", key], dir).unwrap();
        assert_eq!(from_cert, from_key, "{cert} matches {key}");
    }
}

#[test]
fn openssl_sees_the_profiles_of_each_certificate() {
    let pki = Pki::new();
    pki.client("web-01", &["web", "db"]);
    let dir = pki.dir.path();
    let text = |cert: &str| openssl_ok(&["x509", "-noout", "-text", "-in", cert], dir);
    let Some(ca) = text("ca.crt") else { return };
    assert!(ca.contains("CA:TRUE") && ca.contains("pathlen:0"), "{ca}");
    assert!(ca.contains("Certificate Sign, CRL Sign"), "{ca}");
    assert!(ca.contains("ecdsa-with-SHA256") && ca.contains("P-256"), "{ca}");

    let server = text("server.crt").unwrap();
    assert!(server.contains("CA:FALSE"), "{server}");
    assert!(server.contains("TLS Web Server Authentication"), "{server}");
    assert!(!server.contains("TLS Web Client Authentication"), "{server}");
    assert!(server.contains("DNS:localhost") && server.contains("IP Address:127.0.0.1"), "{server}");

    let client = text("web-01.crt").unwrap();
    assert!(client.contains("CA:FALSE"), "{client}");
    assert!(client.contains("TLS Web Client Authentication"), "{client}");
    assert!(!client.contains("TLS Web Server Authentication"), "{client}");
    assert!(!client.contains("Subject Alternative Name"), "{client}");
    assert!(client.contains("Subject: CN = web-01, O = db, O = web"), "one O per group: {client}");
    let dates = openssl_ok(&["x509", "-noout", "-startdate", "-enddate", "-in", "web-01.crt"], dir).unwrap();
    assert!(!dates.contains("1975") && !dates.contains("4096"), "real validity: {dates}");
}

#[test]
fn the_crl_verifies_with_openssl_against_the_ca() {
    let pki = Pki::new();
    let issued = pki.client("web-01", &[]);
    let revoked =
        fts_trust::Revoked { serial: issued.serial.clone(), revoked_at: time::OffsetDateTime::now_utc() };
    fts_trust::crl::write_crl(pki.dir.path(), &[revoked], 2, 30).unwrap();
    let Some(out) =
        openssl(&["crl", "-in", "ca.crl", "-CAfile", "ca.crt", "-noout", "-text"], pki.dir.path())
    else {
        return;
    };
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && all.contains("verify OK"), "{all}");
    assert!(all.to_lowercase().contains(&issued.serial.to_string()), "{all}");
    let Some(out) = openssl(
        &["verify", "-crl_check", "-CRLfile", "ca.crl", "-CAfile", "ca.crt", "web-01.crt"],
        pki.dir.path(),
    ) else {
        return;
    };
    assert!(!out.status.success(), "openssl agrees the certificate is revoked");
}

#[test]
fn private_keys_are_written_owner_only() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    keygen::signing(&SigningOptions { dir: pki.dir.path().to_owned(), log_origin: None, force: false })
        .unwrap();
    for key in ["ca.key", "server.key", "web-01.key", "signing.key"] {
        let mode = fs::metadata(pki.path(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    for public in ["ca.crt", "server.crt", "web-01.crt", "signing.pub"] {
        let mode = fs::metadata(pki.path(public)).unwrap().permissions().mode();
        assert_eq!(mode & 0o077 & !0o044, 0, "{public} is not writable by others");
    }
}

#[test]
fn a_second_keygen_without_force_refuses_and_leaves_files_unchanged() {
    let pki = Pki::new();
    pki.client("web-01", &["web"]);
    keygen::signing(&SigningOptions { dir: pki.dir.path().to_owned(), log_origin: None, force: false })
        .unwrap();
    let names = [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "web-01.crt",
        "web-01.key",
        "signing.key",
        "signing.pub",
    ];
    let before: Vec<Vec<u8>> = names.iter().map(|n| fs::read(pki.path(n)).unwrap()).collect();
    let dir = pki.dir.path().to_owned();

    let errors = [
        keygen::ca(&CaOptions { dir: dir.clone(), days: 30, force: false }).unwrap_err(),
        keygen::server(&ServerOptions {
            dir: dir.clone(),
            names: vec!["localhost".into()],
            days: 30,
            force: false,
        })
        .unwrap_err(),
        keygen::client(&ClientOptions {
            dir: dir.clone(),
            id: ClientId::parse("web-01").unwrap(),
            groups: vec![],
            days: 30,
            force: false,
        })
        .unwrap_err(),
        keygen::signing(&SigningOptions { dir: dir.clone(), log_origin: None, force: false }).unwrap_err(),
    ];
    for err in errors {
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
    }
    let after: Vec<Vec<u8>> = names.iter().map(|n| fs::read(pki.path(n)).unwrap()).collect();
    assert_eq!(before, after);

    // With force, the client is re-issued: a new serial, and the index keeps both.
    let again = keygen::client(&ClientOptions {
        dir: dir.clone(),
        id: ClientId::parse("web-01").unwrap(),
        groups: vec![],
        days: 30,
        force: true,
    })
    .unwrap();
    assert_ne!(fs::read(pki.path("web-01.crt")).unwrap(), before[4]);
    let serials = client_serials(&dir, &ClientId::parse("web-01").unwrap()).unwrap();
    assert_eq!(serials.len(), 2);
    assert_eq!(serials[1], again.serial);
}

#[test]
fn a_missing_ca_names_the_command_that_makes_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = keygen::server(&ServerOptions {
        dir: dir.path().to_owned(),
        names: vec!["localhost".into()],
        days: 30,
        force: false,
    })
    .unwrap_err();
    let client = keygen::client(&ClientOptions {
        dir: dir.path().to_owned(),
        id: ClientId::parse("web-01").unwrap(),
        groups: vec![],
        days: 30,
        force: false,
    })
    .unwrap_err();
    for err in [server, client] {
        let text = err.to_string();
        assert!(
            text.contains("run `fts keygen ca` first") && text.contains(&dir.path().display().to_string()),
            "{text}"
        );
    }
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "nothing written");
}

#[test]
fn bad_server_names_and_zero_days_are_refused_before_anything_is_written() {
    let pki = Pki::new();
    let opts =
        |names: Vec<String>, days| ServerOptions { dir: pki.dir.path().to_owned(), names, days, force: true };
    assert!(matches!(keygen::server(&opts(vec![], 30)), Err(Error::NoServerNames)));
    let err = keygen::server(&opts(vec!["bad name".into()], 30)).unwrap_err();
    assert!(matches!(err, Error::InvalidServerName { .. }), "{err}");
    let err = keygen::server(&opts(vec!["localhost".into()], 0)).unwrap_err();
    assert!(matches!(err, Error::ZeroDays { .. }), "{err}");
}

#[test]
fn the_index_records_every_certificate_with_serial_subject_and_expiry() {
    let pki = Pki::new();
    let issued = pki.client("web-01", &["web"]);
    let records = read_index(pki.dir.path()).unwrap();
    let kinds: Vec<IssuedKind> = records.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [IssuedKind::Ca, IssuedKind::Server, IssuedKind::Client]);
    assert_eq!(records[1].subject, "localhost,127.0.0.1");
    let client = &records[2];
    assert_eq!((client.subject.as_str(), &client.serial), ("web-01", &issued.serial));
    assert_eq!(client.not_after.unix_timestamp(), issued.not_after.unix_timestamp());
    // The serial in the index is the certificate's.
    let cert = load_certificates(&issued.cert_path).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert[0]).unwrap();
    assert_eq!(parsed.raw_serial(), issued.serial.as_bytes());
    let validity = parsed.validity();
    let days = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400;
    assert_eq!(days, 30, "not_before 5 minutes early, rounded down to 30 days");
}

#[tokio::test]
async fn a_client_certificate_made_by_openssl_from_the_same_ca_works() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    fs::write(
        pki.path("ext.cnf"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    let steps: [&[&str]; 3] = [
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "web-09.key"],
        &["req", "-new", "-key", "web-09.key", "-subj", "/CN=web-09/O=web/O=Acme Inc.", "-out", "web-09.csr"],
        &[
            "x509",
            "-req",
            "-in",
            "web-09.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "web-09.crt",
        ],
    ];
    for step in steps {
        if openssl_ok(step, dir).is_none() {
            return;
        }
    }
    let auth = pki.client_auth();
    let config = pki.client_config_with(&pki.path("web-09.crt"), &pki.path("web-09.key"));
    let (saw, reply) = connect_once(pki.server_config(&auth), auth.clone(), config, "localhost").await;
    let ServerSaw::Accepted(identity, _, _) = saw else { panic!("server: {saw:?}") };
    assert_eq!(identity.id.as_str(), "web-09");
    assert_eq!(identity.groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(), ["web"]);
    assert_eq!(identity.ignored_organizations, ["Acme Inc."]);
    assert_eq!(reply, Ok(42));
}
