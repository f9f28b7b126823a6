//! The PKI lifecycle: enrolment by CSR with the signer's own profile, revocation of
//! every certificate of an id, CRL renewal, real handshakes against the new CRL, and
//! what openssl makes of all of it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Pki, ServerSaw, connect_once};
use fts_proto::{ClientId, GroupName};
use fts_testkit::openssl::{openssl, openssl_ok};
use fts_trust::crl::{CRL_FILE, load_crls};
use fts_trust::enrol::{self, CsrOptions, SignOptions, SignedCsr};
use fts_trust::issued::{INDEX_FILE, client_serials, read_index};
use fts_trust::keygen::{self, ClientOptions};
use fts_trust::pem::load_certificates;
use fts_trust::revocation::{
    self, CRL_NUMBER_FILE, CrlOptions, REVOKED_FILE, RevokeOptions, RevokeSummary, read_revoked,
};
use fts_trust::{ClientAuth, Error, Serial, client_identity};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, SanType,
};
use x509_parser::prelude::{FromDer, X509Certificate};

fn id(s: &str) -> ClientId {
    ClientId::parse(s).unwrap()
}

fn groups(gs: &[&str]) -> Vec<GroupName> {
    gs.iter().map(|g| GroupName::parse(g).unwrap()).collect()
}

/// `fts keygen csr` in a fresh "host" folder; returns the folder and the CSR's path.
fn host_csr(client_id: &str) -> (tempfile::TempDir, PathBuf) {
    let host = tempfile::tempdir().unwrap();
    let written =
        enrol::csr(&CsrOptions { dir: host.path().to_owned(), id: id(client_id), force: false }).unwrap();
    (host, written.csr_path)
}

fn sign(pki: &Pki, csr: &Path, gs: &[&str], force: bool) -> Result<SignedCsr, Error> {
    enrol::sign(&SignOptions {
        dir: pki.dir.path().to_owned(),
        csr: csr.to_owned(),
        groups: groups(gs),
        days: 30,
        force,
    })
}

fn revoke(pki: &Pki, client_id: &str, crl_days: u32) -> Result<RevokeSummary, Error> {
    revocation::revoke(&RevokeOptions { dir: pki.dir.path().to_owned(), id: id(client_id), crl_days })
}

fn renew(pki: &Pki, crl_days: u32) -> Result<fts_trust::crl::CrlWritten, Error> {
    revocation::renew_crl(&CrlOptions { dir: pki.dir.path().to_owned(), crl_days })
}

/// A CSR made with rcgen directly, asking for whatever `params` says, written to
/// `<dir>/<name>.csr`.
fn rcgen_csr(dir: &Path, name: &str, params: &CertificateParams, key: &KeyPair) -> PathBuf {
    let path = dir.join(format!("{name}.csr"));
    fs::write(&path, params.serialize_request(key).unwrap().pem().unwrap()).unwrap();
    path
}

fn greedy_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.distinguished_name.push(DnType::OrganizationName, "admin");
    params.distinguished_name.push(DnType::OrganizationalUnitName, "ops");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.subject_alt_names = vec![
        SanType::DnsName("evil.example".try_into().unwrap()),
        SanType::IpAddress("10.0.0.1".parse().unwrap()),
    ];
    params.extended_key_usages =
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    params
}

fn cert_der(path: &Path) -> Vec<u8> {
    load_certificates(path).unwrap().swap_remove(0).to_vec()
}

#[test]
fn a_csr_that_asks_to_be_a_ca_with_sans_server_auth_and_groups_yields_a_plain_client_certificate() {
    let pki = Pki::new();
    let host = tempfile::tempdir().unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let csr = rcgen_csr(host.path(), "web-01", &greedy_params("web-01"), &key);

    let signed = sign(&pki, &csr, &["web", "db", "web"], false).unwrap();
    assert_eq!(signed.cert_path, pki.path("web-01.crt"), "named after the CSR's id, in the CA folder");
    assert_eq!(signed.groups, groups(&["db", "web"]), "the signer's groups, sorted and deduplicated");
    for asked in ["CA", "SAN DNS:evil.example", "SAN IP:10.0.0.1", "serverAuth", "O=admin", "OU=ops"] {
        assert!(signed.ignored.iter().any(|i| i == asked), "{asked} listed as ignored: {:?}", signed.ignored);
    }
    assert!(signed.ignored.iter().any(|i| i.contains("Key Cert Sign")), "{:?}", signed.ignored);
    assert!(!signed.ignored.iter().any(|i| i.contains("clientAuth")), "what is granted is not 'ignored'");

    let der = cert_der(&signed.cert_path);
    let identity = client_identity(&der).unwrap();
    assert_eq!(identity.id, id("web-01"));
    assert_eq!(identity.groups, groups(&["db", "web"]), "no group from the CSR");
    assert!(identity.ignored_organizations.is_empty(), "O=admin is not in the certificate at all");

    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let bc = cert.basic_constraints().unwrap().expect("basicConstraints present");
    assert!(!bc.value.ca && bc.value.path_len_constraint.is_none(), "not a CA");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty(), "clientAuth only");
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign(), "digitalSignature only: {ku}");
    assert!(cert.subject_alternative_name().unwrap().is_none(), "no SAN");
    assert_eq!(cert.subject().to_string(), "CN=web-01, O=db, O=web");
    assert_eq!(
        cert.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice(),
        "the CSR's key"
    );
    assert_eq!(cert.raw_serial(), signed.serial.as_bytes());
    let days = (signed.not_after - signed.not_before).whole_days();
    assert_eq!(days, 30, "real validity: 5 minutes early, 30 days from now");
    assert_eq!(
        client_serials(pki.dir.path(), &id("web-01")).unwrap(),
        std::slice::from_ref(&signed.serial),
        "indexed"
    );

    let Some(text) = openssl_ok(&["x509", "-noout", "-text", "-in", "web-01.crt"], pki.dir.path()) else {
        return;
    };
    assert!(text.contains("CA:FALSE") && !text.contains("CA:TRUE"), "{text}");
    assert!(text.contains("TLS Web Client Authentication"), "{text}");
    assert!(!text.contains("TLS Web Server Authentication"), "{text}");
    assert!(!text.contains("Subject Alternative Name") && !text.contains("evil.example"), "{text}");
    assert!(!text.contains("Certificate Sign"), "{text}");
    assert!(text.contains("Subject: CN = web-01, O = db, O = web"), "{text}");
    let verify = openssl_ok(&["verify", "-CAfile", "ca.crt", "web-01.crt"], pki.dir.path()).unwrap();
    assert!(verify.contains(": OK"), "{verify}");
}

#[test]
fn a_csr_made_by_openssl_with_every_extension_still_yields_only_the_signers_profile() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let steps: [&[&str]; 2] = [
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "web-05.key"],
        &[
            "req",
            "-new",
            "-key",
            "web-05.key",
            "-subj",
            "/CN=web-05/O=admin/O=web",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "subjectAltName=DNS:server.example",
            "-addext",
            "extendedKeyUsage=serverAuth",
            "-addext",
            "subjectKeyIdentifier=hash",
            "-out",
            "web-05.csr",
        ],
    ];
    for step in steps {
        if openssl_ok(step, dir).is_none() {
            return;
        }
    }
    let signed = sign(&pki, &pki.path("web-05.csr"), &["db"], false).unwrap();
    for asked in ["CA", "SAN DNS:server.example", "serverAuth", "O=admin", "O=web"] {
        assert!(signed.ignored.iter().any(|i| i == asked), "{asked}: {:?}", signed.ignored);
    }
    assert!(
        signed.ignored.iter().any(|i| i.starts_with("extension ")),
        "unknown extension: {:?}",
        signed.ignored
    );
    let identity = client_identity(&cert_der(&signed.cert_path)).unwrap();
    assert_eq!((identity.id, identity.groups), (id("web-05"), groups(&["db"])));
    let text = openssl_ok(&["x509", "-noout", "-text", "-in", "web-05.crt"], dir).unwrap();
    assert!(text.contains("CA:FALSE") && !text.contains("server.example"), "{text}");
    assert!(!text.contains("TLS Web Server Authentication"), "{text}");
    openssl_ok(&["verify", "-CAfile", "ca.crt", "web-05.crt"], dir);
}

#[test]
fn a_csr_whose_common_name_is_not_one_valid_client_id_is_refused() {
    let pki = Pki::new();
    let host = tempfile::tempdir().unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let before = read_index(pki.dir.path()).unwrap();
    for (name, cn, expected) in [
        ("reserved", Some("all"), "not a valid client id"),
        ("spaces", Some("Bad Name"), "not a valid client id"),
        ("upper", Some("Web-01"), "not a valid client id"),
        ("none", None, "no common name"),
    ] {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.distinguished_name.push(DnType::OrganizationName, "web");
        let csr = rcgen_csr(host.path(), name, &params, &key);
        let err = sign(&pki, &csr, &[], false).unwrap_err().to_string();
        assert!(err.contains(expected) && err.contains(&format!("{name}.csr")), "{name}: {err}");
    }
    // Two CNs: openssl can write them.
    if openssl_ok(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "two.key"], host.path())
        .is_some()
    {
        openssl_ok(
            &["req", "-new", "-key", "two.key", "-subj", "/CN=web-01/CN=web-02", "-out", "two.csr"],
            host.path(),
        );
        let err = sign(&pki, &host.path().join("two.csr"), &[], false).unwrap_err().to_string();
        assert!(err.contains("2 common names"), "{err}");
    }
    assert_eq!(read_index(pki.dir.path()).unwrap(), before, "nothing issued");
    let crts = fs::read_dir(pki.dir.path()).unwrap().filter(|e| {
        let name = e.as_ref().unwrap().file_name().into_string().unwrap();
        name.ends_with(".crt") && !["ca.crt", "server.crt"].contains(&name.as_str())
    });
    assert_eq!(crts.count(), 0, "no certificate written");
}

#[test]
fn a_csr_with_a_bad_self_signature_or_another_key_type_is_refused() {
    let pki = Pki::new();
    let (host, csr) = host_csr("web-01");
    // Change one byte of the signature value (the last byte of the DER).
    let mut der = fs::read(&csr).unwrap();
    let pem_text = String::from_utf8(der.clone()).unwrap();
    let b64: String = pem_text.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = host.path().join("tampered.csr");
    let body = base64::engine::general_purpose::STANDARD.encode(&der);
    fs::write(
        &tampered,
        format!("-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"),
    )
    .unwrap();
    let err = sign(&pki, &tampered, &[], false).unwrap_err().to_string();
    assert!(err.contains("self-signature does not verify") && err.contains("tampered.csr"), "{err}");

    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, "web-01");
    let other = rcgen_csr(host.path(), "p384", &params, &p384);
    let err = sign(&pki, &other, &[], false).unwrap_err().to_string();
    assert!(err.contains("not an ECDSA P-256 key"), "{err}");

    fs::write(host.path().join("garbage.csr"), "hello\n").unwrap();
    let err = sign(&pki, &host.path().join("garbage.csr"), &[], false).unwrap_err().to_string();
    assert!(err.contains("garbage.csr") && err.contains("CERTIFICATE REQUEST"), "{err}");
    assert!(!pki.path("web-01.crt").exists());
}

#[test]
fn the_csr_key_stays_private_and_openssl_accepts_the_key_and_the_request() {
    let (host, csr) = host_csr("web-01");
    let key = host.path().join("web-01.key");
    assert_eq!(fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let err =
        enrol::csr(&CsrOptions { dir: host.path().to_owned(), id: id("web-01"), force: false }).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let request = enrol::read_csr(&csr).unwrap();
    assert_eq!(request.id, id("web-01"));
    assert!(request.ignored.is_empty(), "fts keygen csr asks for nothing: {:?}", request.ignored);
    let Some(_) = openssl_ok(&["pkey", "-noout", "-in", "web-01.key"], host.path()) else { return };
    let out = openssl(&["req", "-verify", "-noout", "-text", "-in", "web-01.csr"], host.path()).unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && all.contains("verify OK"), "{all}");
    assert!(all.contains("Subject: CN = web-01") && all.contains("P-256"), "{all}");
    let from_csr = openssl_ok(&["req", "-noout", "-pubkey", "-in", "web-01.csr"], host.path()).unwrap();
    let from_key = openssl_ok(&["pkey", "-pubout", "-in", "web-01.key"], host.path()).unwrap();
    assert_eq!(from_csr, from_key, "the CSR carries the key's public half");
}

#[test]
fn a_signed_csr_is_refused_over_an_existing_certificate_without_force() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    let (_host, csr) = host_csr("web-01");
    let before = fs::read(pki.path("web-01.crt")).unwrap();
    let err = sign(&pki, &csr, &[], false).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(fs::read(pki.path("web-01.crt")).unwrap(), before);
    let signed = sign(&pki, &csr, &[], true).unwrap();
    assert_eq!(signed.stale_key, Some(pki.path("web-01.key")), "the old key is pointed out");
}

#[test]
fn one_revoke_revokes_every_certificate_ever_issued_for_the_id() {
    let pki = Pki::new();
    let first = pki.client("web-01", &["web"]);
    let (_host, csr) = host_csr("web-01");
    let second = sign(&pki, &csr, &["web"], true).unwrap();
    let other = pki.client("web-02", &[]);
    assert_ne!(first.serial, second.serial);

    let summary = revoke(&pki, "web-01", 30).unwrap();
    assert_eq!(summary.newly_revoked, [first.serial.clone(), second.serial.clone()]);
    assert!(summary.already_revoked.is_empty());
    let crl = &summary.crl.crl;
    assert_eq!(crl.number(), Some(1));
    assert_eq!(crl.revoked_serials(), [first.serial.clone(), second.serial.clone()]);
    assert!(!crl.revoked_serials().contains(&other.serial));
    assert_eq!(load_crls(&pki.path(CRL_FILE)).unwrap(), std::slice::from_ref(crl), "written to ca.crl");

    // Revoking again: both stay revoked with their first revocation time.
    let listed = read_revoked(pki.dir.path()).unwrap();
    let again = revoke(&pki, "web-01", 30).unwrap();
    assert!(again.newly_revoked.is_empty());
    assert_eq!(again.already_revoked, [first.serial.clone(), second.serial.clone()]);
    assert_eq!(again.crl.crl.number(), Some(2));
    assert_eq!(read_revoked(pki.dir.path()).unwrap(), listed);

    // A certificate issued after the revocation is revoked by the next revoke.
    let third = pki.client_with_force("web-01");
    let later = revoke(&pki, "web-01", 30).unwrap();
    assert_eq!(later.newly_revoked, [third]);
    assert_eq!(later.crl.crl.revoked_serials().len(), 3);
    assert_eq!(later.crl.crl.number(), Some(3));
}

#[test]
fn crl_renewal_keeps_the_entries_and_their_times_and_pushes_next_update() {
    let pki = Pki::new();
    let issued = pki.client("web-01", &[]);
    let revoked = revoke(&pki, "web-01", 1).unwrap().crl.crl;
    let renewed = renew(&pki, 30).unwrap().crl;
    assert_eq!(renewed.number(), Some(2));
    assert_eq!(renewed.revoked_serials(), std::slice::from_ref(&issued.serial));
    assert!(renewed.next_update().unwrap() > revoked.next_update().unwrap() + time::Duration::days(28));
    let dates = |crl: &fts_trust::Crl| -> Vec<i64> {
        let (_, parsed) = x509_parser::parse_x509_crl(crl.der().as_ref()).unwrap();
        parsed.iter_revoked_certificates().map(|r| r.revocation_date.timestamp()).collect()
    };
    assert_eq!(dates(&renewed), dates(&revoked), "the revocation time is kept");
    assert_eq!(renew(&pki, 30).unwrap().crl.number(), Some(3));
    assert_eq!(fs::read_to_string(pki.path(CRL_NUMBER_FILE)).unwrap().trim(), "3");

    // Numbers keep increasing when the counter file is lost ...
    fs::remove_file(pki.path(CRL_NUMBER_FILE)).unwrap();
    assert_eq!(renew(&pki, 30).unwrap().crl.number(), Some(4));
    // ... and when ca.crl is.
    fs::remove_file(pki.path(CRL_FILE)).unwrap();
    assert_eq!(renew(&pki, 30).unwrap().crl.number(), Some(5));
    assert_eq!(renew(&pki, 30).unwrap().crl.revoked_serials(), [issued.serial]);
}

#[tokio::test]
async fn a_crl_with_nothing_revoked_can_be_made_from_day_one_and_lets_clients_in() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    let written = renew(&pki, 30).unwrap();
    assert_eq!(written.crl.number(), Some(1));
    assert!(written.crl.revoked_serials().is_empty());
    let auth = ClientAuth::from_files(&pki.path("ca.crt"), Some(&written.path)).unwrap();
    assert!(auth.revocation_enabled());
    let (saw, reply) =
        connect_once(pki.server_config(&auth), auth.clone(), pki.client_config("web-01"), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(..)), "server: {saw:?}");
    assert_eq!(reply, Ok(42));
}

#[test]
fn revoking_an_id_that_was_never_issued_is_an_error_and_writes_nothing() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    let err = revoke(&pki, "web-10", 30).unwrap_err();
    assert!(matches!(err, Error::NeverIssued { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("web-10") && text.contains(INDEX_FILE), "{text}");
    for file in [CRL_FILE, REVOKED_FILE, CRL_NUMBER_FILE] {
        assert!(!pki.path(file).exists(), "{file}");
    }
}

#[test]
fn revoke_and_crl_without_a_ca_name_the_command_that_makes_it() {
    let dir = tempfile::tempdir().unwrap();
    let revoke_err =
        revocation::revoke(&RevokeOptions { dir: dir.path().to_owned(), id: id("web-01"), crl_days: 30 })
            .unwrap_err();
    let crl_err =
        revocation::renew_crl(&CrlOptions { dir: dir.path().to_owned(), crl_days: 30 }).unwrap_err();
    let (_host, csr) = host_csr("web-01");
    let sign_err =
        enrol::sign(&SignOptions { dir: dir.path().to_owned(), csr, groups: vec![], days: 30, force: false })
            .unwrap_err();
    for err in [revoke_err, crl_err, sign_err] {
        assert!(err.to_string().contains("run `fts keygen ca` first"), "{err}");
    }
    let pki = Pki::new();
    assert!(matches!(renew(&pki, 0), Err(Error::ZeroDays { .. })));
}

#[test]
fn a_lost_revoked_list_is_never_silently_turned_into_an_unrevoking_crl() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    revoke(&pki, "web-01", 30).unwrap();
    let crl_before = fs::read(pki.path(CRL_FILE)).unwrap();
    fs::remove_file(pki.path(REVOKED_FILE)).unwrap();
    let err = renew(&pki, 30).unwrap_err().to_string();
    assert!(err.contains(REVOKED_FILE) && err.contains("un-revoke"), "{err}");
    assert_eq!(fs::read(pki.path(CRL_FILE)).unwrap(), crl_before, "ca.crl untouched");
}

#[test]
fn concurrent_revokes_and_renewals_lose_no_entry_and_never_repeat_a_crl_number() {
    let pki = Pki::new();
    let ids: Vec<String> = (0..8).map(|i| format!("web-{i:02}")).collect();
    let serials: Vec<Serial> = ids.iter().map(|i| pki.client(i, &[]).serial).collect();
    let dir = pki.dir.path().to_owned();
    let numbers: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .iter()
            .flat_map(|client| {
                let dir = dir.clone();
                let dir2 = dir.clone();
                [
                    s.spawn(move || {
                        revocation::revoke(&RevokeOptions { dir, id: id(client), crl_days: 30 }).unwrap().crl
                    }),
                    s.spawn(move || revocation::renew_crl(&CrlOptions { dir: dir2, crl_days: 30 }).unwrap()),
                ]
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap().crl.number().unwrap()).collect()
    });
    let mut sorted = numbers.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, (1..=16).collect::<Vec<u64>>(), "16 CRLs, 16 distinct numbers");
    let last = &load_crls(&pki.path(CRL_FILE)).unwrap()[0];
    assert_eq!(last.number(), Some(16));
    let mut revoked = last.revoked_serials().to_vec();
    revoked.sort();
    let mut expected = serials;
    expected.sort();
    assert_eq!(revoked, expected, "every revocation is in the last CRL");
}

#[tokio::test]
async fn a_revoked_certificate_fails_a_real_handshake_while_another_client_still_connects() {
    let pki = Pki::new();
    let (host, csr) = host_csr("web-01");
    let signed = sign(&pki, &csr, &["web"], false).unwrap();
    pki.client("web-02", &["web"]);
    // The host's own key with the certificate the CA signed for it.
    let web01 = pki.client_config_with(&signed.cert_path, &host.path().join("web-01.key"));
    let auth = ClientAuth::from_files(&pki.path("ca.crt"), None).unwrap();
    let (saw, reply) = connect_once(pki.server_config(&auth), auth.clone(), web01.clone(), "localhost").await;
    let ServerSaw::Accepted(identity, _, _) = saw else { panic!("before revocation: {saw:?}") };
    assert_eq!((identity.id, identity.groups), (id("web-01"), groups(&["web"])));
    assert_eq!(reply, Ok(42));

    let written = revoke(&pki, "web-01", 30).unwrap().crl;
    let auth = ClientAuth::from_files(&pki.path("ca.crt"), Some(&written.path)).unwrap();
    let fresh = pki.client_config_with(&signed.cert_path, &host.path().join("web-01.key"));
    let (saw, reply) = connect_once(pki.server_config(&auth), auth.clone(), fresh, "localhost").await;
    let ServerSaw::HandshakeFailed(why) = &saw else { panic!("revoked: {saw:?}") };
    assert!(why.to_lowercase().contains("revoked"), "{why}");
    assert!(reply.is_err(), "{reply:?}");

    let (saw, reply) =
        connect_once(pki.server_config(&auth), auth.clone(), pki.client_config("web-02"), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(..)), "web-02: {saw:?}");
    assert_eq!(reply, Ok(42));
}

#[test]
fn openssl_reads_the_crl_and_refuses_the_revoked_certificate() {
    let pki = Pki::new();
    let (host, csr) = host_csr("web-01");
    let signed = sign(&pki, &csr, &["web"], false).unwrap();
    pki.client("web-02", &[]);
    let dir = pki.dir.path();
    let Some(out) = openssl_ok(&["verify", "-CAfile", "ca.crt", "web-01.crt"], dir) else { return };
    assert!(out.contains(": OK"), "{out}");
    openssl_ok(&["pkey", "-noout", "-in", host.path().join("web-01.key").to_str().unwrap()], dir);

    let revoked = revoke(&pki, "web-01", 30).unwrap();
    renew(&pki, 45).unwrap();
    let out = openssl(&["crl", "-in", "ca.crl", "-CAfile", "ca.crt", "-noout", "-text"], dir).unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && all.contains("verify OK"), "{all}");
    assert!(all.contains("X509v3 CRL Number") && all.contains("\n                2\n"), "number 2: {all}");
    assert!(all.contains("Next Update:"), "{all}");
    assert!(all.to_lowercase().contains(&signed.serial.to_string()), "{all}");
    assert_eq!(revoked.newly_revoked, [signed.serial]);

    let out =
        openssl(&["verify", "-crl_check", "-CRLfile", "ca.crl", "-CAfile", "ca.crt", "web-01.crt"], dir)
            .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && all.contains("certificate revoked"), "{all}");
    let ok =
        openssl_ok(&["verify", "-crl_check", "-CRLfile", "ca.crl", "-CAfile", "ca.crt", "web-02.crt"], dir);
    assert!(ok.unwrap().contains(": OK"));
}

#[tokio::test]
async fn an_openssl_csr_signed_by_fts_gets_the_signers_groups_in_a_real_handshake() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let steps: [&[&str]; 2] = [
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "web-07.key"],
        &["req", "-new", "-key", "web-07.key", "-subj", "/CN=web-07/O=admin", "-out", "web-07.csr"],
    ];
    for step in steps {
        if openssl_ok(step, dir).is_none() {
            return;
        }
    }
    sign(&pki, &pki.path("web-07.csr"), &["web"], false).unwrap();
    let auth = pki.client_auth();
    let config = pki.client_config_with(&pki.path("web-07.crt"), &pki.path("web-07.key"));
    let (saw, reply) = connect_once(pki.server_config(&auth), auth.clone(), config, "localhost").await;
    let ServerSaw::Accepted(identity, _, _) = saw else { panic!("server: {saw:?}") };
    assert_eq!((identity.id, identity.groups), (id("web-07"), groups(&["web"])));
    assert!(identity.ignored_organizations.is_empty());
    assert_eq!(reply, Ok(42));
}

trait ClientWithForce {
    fn client_with_force(&self, id: &str) -> Serial;
}

impl ClientWithForce for Pki {
    fn client_with_force(&self, client_id: &str) -> Serial {
        keygen::client(&ClientOptions {
            dir: self.dir.path().to_owned(),
            id: id(client_id),
            groups: vec![],
            days: 30,
            force: true,
        })
        .unwrap()
        .serial
    }
}

/// The corporate-CA recipe of docs/PKI.md, with openssl: a root, a dedicated
/// intermediate for fts clients, client certificates from it, and its CRL.
#[tokio::test]
async fn a_dedicated_corporate_intermediate_works_as_the_client_ca_and_its_crl_is_enforced() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    fs::write(
        pki.path("intermediate.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    fs::write(
        pki.path("client.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n\
         subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
    )
    .unwrap();
    fs::write(
        pki.path("ca.cnf"),
        "[ca]\ndefault_ca = fts_clients\n[fts_clients]\ndatabase = index.txt\ncrlnumber = crlnumber\n\
         default_md = sha256\ndefault_crl_days = 30\n",
    )
    .unwrap();
    fs::write(pki.path("index.txt"), "").unwrap();
    fs::write(pki.path("crlnumber"), "1000\n").unwrap();
    let leaf = |id: &str, subj: &str, ca: &str| -> Vec<Vec<String>> {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<String>>();
        vec![
            v(&["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", &format!("{id}.key")]),
            v(&["req", "-new", "-key", &format!("{id}.key"), "-subj", subj, "-out", &format!("{id}.csr")]),
            v(&[
                "x509",
                "-req",
                "-in",
                &format!("{id}.csr"),
                "-CA",
                &format!("{ca}.crt"),
                "-CAkey",
                &format!("{ca}.key"),
                "-days",
                "30",
                "-extfile",
                "client.ext",
                "-out",
                &format!("{id}.crt"),
            ]),
        ]
    };
    let mut steps: Vec<Vec<String>> = vec![
        ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "root.key"]
            .map(String::from)
            .to_vec(),
        [
            "req",
            "-x509",
            "-new",
            "-key",
            "root.key",
            "-subj",
            "/O=Acme Inc./CN=Acme Root CA",
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-out",
            "root.crt",
        ]
        .map(String::from)
        .to_vec(),
        ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "fts-clients.key"]
            .map(String::from)
            .to_vec(),
        [
            "req",
            "-new",
            "-key",
            "fts-clients.key",
            "-subj",
            "/O=Acme Inc./CN=Acme fts clients CA",
            "-out",
            "i.csr",
        ]
        .map(String::from)
        .to_vec(),
        [
            "x509",
            "-req",
            "-in",
            "i.csr",
            "-CA",
            "root.crt",
            "-CAkey",
            "root.key",
            "-days",
            "30",
            "-extfile",
            "intermediate.ext",
            "-out",
            "fts-clients.crt",
        ]
        .map(String::from)
        .to_vec(),
    ];
    steps.extend(leaf("web-20", "/O=Acme Inc./O=web/CN=web-20", "fts-clients"));
    steps.extend(leaf("web-21", "/O=Acme Inc./O=db/CN=web-21", "fts-clients"));
    // Issued by the corporate root directly, not by the dedicated intermediate.
    steps.extend(leaf("web-22", "/O=Acme Inc./O=web/CN=web-22", "root"));
    for step in &steps {
        let args: Vec<&str> = step.iter().map(String::as_str).collect();
        if openssl_ok(&args, dir).is_none() {
            return;
        }
    }

    // The client CA file holds the intermediate only: not the root, not the chain.
    let connect = |auth: std::sync::Arc<ClientAuth>, id: &str| {
        let config = pki.client_config_with(&pki.path(&format!("{id}.crt")), &pki.path(&format!("{id}.key")));
        connect_once(pki.server_config(&auth), auth.clone(), config, "localhost")
    };
    let auth = ClientAuth::from_files(&pki.path("fts-clients.crt"), None).unwrap();
    let (saw, reply) = connect(auth.clone(), "web-20").await;
    let ServerSaw::Accepted(identity, _, _) = saw else { panic!("web-20: {saw:?}") };
    assert_eq!((identity.id, identity.groups), (id("web-20"), groups(&["web"])));
    assert_eq!(identity.ignored_organizations, ["Acme Inc."], "the corporate O grants nothing");
    assert_eq!(reply, Ok(42));
    let (saw, _) = connect(auth.clone(), "web-22").await;
    assert!(matches!(saw, ServerSaw::HandshakeFailed(_)), "another branch of the corporate PKI: {saw:?}");

    // The intermediate's own CRL, made by openssl, revokes web-20 only.
    let revoke_steps: [&[&str]; 2] = [
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-cert",
            "fts-clients.crt",
            "-keyfile",
            "fts-clients.key",
            "-revoke",
            "web-20.crt",
        ],
        &[
            "ca",
            "-config",
            "ca.cnf",
            "-cert",
            "fts-clients.crt",
            "-keyfile",
            "fts-clients.key",
            "-gencrl",
            "-out",
            "fts-clients.crl",
        ],
    ];
    for step in revoke_steps {
        openssl_ok(step, dir);
    }
    let auth =
        ClientAuth::from_files(&pki.path("fts-clients.crt"), Some(&pki.path("fts-clients.crl"))).unwrap();
    let (saw, _) = connect(auth.clone(), "web-20").await;
    assert!(matches!(saw, ServerSaw::HandshakeFailed(_)), "revoked by the intermediate's CRL: {saw:?}");
    let (saw, reply) = connect(auth.clone(), "web-21").await;
    assert!(matches!(saw, ServerSaw::Accepted(..)), "web-21: {saw:?}");
    assert_eq!(reply, Ok(42));
}
