//! Real TLS handshakes on loopback between configs built from fts keygen output.

mod common;

use std::sync::Arc;

use common::{Pki, ServerSaw, connect_once};
use fts_trust::crl::{Revoked, write_crl};
use fts_trust::keygen::CertificateAuthority;
use fts_trust::pem::load_certificates;
use fts_trust::ticket_key::{TicketKeyOptions, TicketKeys, ticket_key};
use fts_trust::{ClientAuth, IdentityError, SessionRefused};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use time::{Duration, OffsetDateTime};

fn assert_handshake_failed(saw: &ServerSaw, client: &Result<u8, String>) {
    assert!(matches!(saw, ServerSaw::HandshakeFailed(_)), "server: {saw:?}");
    assert!(client.is_err(), "client: {client:?}");
}

#[tokio::test]
async fn mutual_tls_gives_the_server_the_client_id_and_groups() {
    let pki = Pki::new();
    pki.client("web-01", &["web", "db"]);
    let auth = pki.client_auth();
    let (saw, client) =
        connect_once(pki.server_config(&auth), auth.clone(), pki.client_config("web-01"), "localhost").await;
    let ServerSaw::Accepted(identity, kind, byte) = saw else { panic!("server: {saw:?}") };
    assert_eq!(identity.id.as_str(), "web-01");
    let groups: Vec<&str> = identity.groups.iter().map(|g| g.as_str()).collect();
    assert_eq!(groups, ["db", "web"]);
    assert_eq!(kind, Some(HandshakeKind::Full));
    assert_eq!((byte, client), (42, Ok(42)), "a byte round-trips");
}

#[tokio::test]
async fn the_client_reads_its_own_identity_by_the_same_rule() {
    let pki = Pki::new();
    let issued = pki.client("web-01", &["web"]);
    let cert = load_certificates(&issued.cert_path).unwrap();
    let identity = fts_trust::client_identity(&cert[0]).unwrap();
    assert_eq!((identity.id.as_str(), identity.groups[0].as_str()), ("web-01", "web"));
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let pki = Pki::new();
    let auth = pki.client_auth();
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(&pki.path("ca.crt")).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(fts_trust::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![fts_trust::ALPN.to_vec()];
    let (saw, client) =
        connect_once(pki.server_config(&auth), auth.clone(), Arc::new(config), "localhost").await;
    assert_handshake_failed(&saw, &client);
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused() {
    let pki = Pki::new();
    let other = Pki::new();
    other.client("web-01", &[]);
    let auth = pki.client_auth();
    // The client trusts our server, but its certificate comes from the other CA.
    let config = pki.client_config_with(&other.path("web-01.crt"), &other.path("web-01.key"));
    let (saw, client) = connect_once(pki.server_config(&auth), auth.clone(), config, "localhost").await;
    assert_handshake_failed(&saw, &client);
}

#[tokio::test]
async fn a_client_that_offers_no_alpn_is_refused_after_the_handshake() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    let auth = pki.client_auth();
    let mut config = Arc::unwrap_or_clone(pki.client_config("web-01"));
    config.alpn_protocols.clear();
    let (saw, client) =
        connect_once(pki.server_config(&auth), auth.clone(), Arc::new(config), "localhost").await;
    assert!(matches!(saw, ServerSaw::Refused(SessionRefused::NoAlpn, _)), "server: {saw:?}");
    assert!(client.is_err(), "closed without an answer: {client:?}");
}

#[tokio::test]
async fn a_client_that_dials_another_name_refuses_the_server() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    let auth = pki.client_auth();
    let (saw, client) =
        connect_once(pki.server_config(&auth), auth.clone(), pki.client_config("web-01"), "other.example")
            .await;
    assert_handshake_failed(&saw, &client);
    let err = client.unwrap_err();
    assert!(err.contains("NotValidForName") || err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn the_server_is_reachable_by_its_ip_address_name() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    let auth = pki.client_auth();
    let (saw, client) =
        connect_once(pki.server_config(&auth), auth.clone(), pki.client_config("web-01"), "127.0.0.1").await;
    assert!(matches!(saw, ServerSaw::Accepted(..)), "server: {saw:?}");
    assert_eq!(client, Ok(42));
}

#[tokio::test]
async fn a_server_certificate_used_as_a_client_certificate_is_refused() {
    let pki = Pki::new();
    let auth = pki.client_auth();
    let config = pki.client_config_with(&pki.path("server.crt"), &pki.path("server.key"));
    let (saw, client) = connect_once(pki.server_config(&auth), auth.clone(), config, "localhost").await;
    assert_handshake_failed(&saw, &client);
}

/// Signs a certificate with the test CA directly with rcgen, bypassing keygen's
/// profile, and writes `<name>.crt` / `<name>.key`.
fn rcgen_cert(pki: &Pki, name: &str, edit: impl FnOnce(&mut CertificateParams)) {
    let ca = CertificateAuthority::load(pki.dir.path()).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.not_before = OffsetDateTime::now_utc() - Duration::minutes(5);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(1);
    params.serial_number = Some(SerialNumber::from_slice(fts_trust::Serial::random().unwrap().as_bytes()));
    params.is_ca = IsCa::ExplicitNoCa;
    edit(&mut params);
    let cert = params.signed_by(&key, ca.issuer()).unwrap();
    std::fs::write(pki.path(&format!("{name}.crt")), cert.pem()).unwrap();
    std::fs::write(pki.path(&format!("{name}.key")), key.serialize_pem()).unwrap();
}

#[tokio::test]
async fn a_client_certificate_whose_common_name_is_not_a_client_id_is_refused() {
    let pki = Pki::new();
    let auth = pki.client_auth();
    for (file, cn) in [("bad-name", "Bad Name"), ("reserved", "all")] {
        rcgen_cert(&pki, file, |p| {
            p.distinguished_name.push(DnType::CommonName, cn);
            p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        });
        let config =
            pki.client_config_with(&pki.path(&format!("{file}.crt")), &pki.path(&format!("{file}.key")));
        let (saw, client) = connect_once(pki.server_config(&auth), auth.clone(), config, "localhost").await;
        let ServerSaw::Refused(SessionRefused::Identity(IdentityError::InvalidClientId(e)), _) = &saw else {
            panic!("server: {saw:?}")
        };
        assert!(e.to_string().contains(cn), "{e}");
        assert!(client.is_err());
    }
}

#[tokio::test]
async fn a_client_certificate_without_any_extended_key_usage_is_refused_by_the_identity_rules() {
    // webpki accepts a certificate with no EKU extension; the identity rules do not.
    let pki = Pki::new();
    let auth = pki.client_auth();
    rcgen_cert(&pki, "no-eku", |p| p.distinguished_name.push(DnType::CommonName, "web-07"));
    let config = pki.client_config_with(&pki.path("no-eku.crt"), &pki.path("no-eku.key"));
    let (saw, _) = connect_once(pki.server_config(&auth), auth.clone(), config, "localhost").await;
    assert!(
        matches!(saw, ServerSaw::Refused(SessionRefused::Identity(IdentityError::NoClientAuth), _)),
        "server: {saw:?}"
    );
}

#[tokio::test]
async fn the_client_requires_server_auth_on_the_server_certificate() {
    let pki = Pki::new();
    pki.client("web-01", &[]);
    let auth = pki.client_auth();
    let no_eku = |p: &mut CertificateParams| {
        p.distinguished_name.push(DnType::CommonName, "localhost");
        p.subject_alt_names = vec![rcgen::SanType::DnsName("localhost".try_into().unwrap())];
    };
    rcgen_cert(&pki, "server-no-eku", no_eku);
    rcgen_cert(&pki, "server-client-eku", |p| {
        no_eku(p);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    });
    for name in ["server-no-eku", "server-client-eku"] {
        let server = fts_trust::server_config(
            load_certificates(&pki.path(&format!("{name}.crt"))).unwrap(),
            fts_trust::pem::load_private_key(&pki.path(&format!("{name}.key"))).unwrap(),
            auth.clone(),
        )
        .unwrap();
        let (saw, client) =
            connect_once(server, auth.clone(), pki.client_config("web-01"), "localhost").await;
        assert_handshake_failed(&saw, &client);
        let err = client.unwrap_err();
        assert!(err.contains("InvalidPurpose") || err.contains("server authentication"), "{name}: {err}");
    }
}

#[tokio::test]
async fn a_session_resumes_however_many_other_clients_connected_since() {
    // A fleet: thousands of hosts poll between two polls of one host. The server keeps
    // no per-session state (tickets), so no cache size decides who resumes.
    let pki = Pki::new();
    pki.client("web-01", &[]);
    pki.client("db-01", &[]);
    let auth = pki.client_auth();
    let server = pki.server_config(&auth);
    let web = pki.client_config("web-01");
    let (saw, _) = connect_once(server.clone(), auth.clone(), web.clone(), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(_, Some(HandshakeKind::Full), _)), "server: {saw:?}");
    for _ in 0..300 {
        // A fresh client config each time: a new session (a full handshake) each time.
        let (saw, _) =
            connect_once(server.clone(), auth.clone(), pki.client_config("db-01"), "localhost").await;
        assert!(matches!(saw, ServerSaw::Accepted(_, Some(HandshakeKind::Full), _)), "server: {saw:?}");
    }
    let (saw, _) = connect_once(server, auth, web, "localhost").await;
    let ServerSaw::Accepted(identity, Some(HandshakeKind::Resumed), _) = &saw else {
        panic!("server: {saw:?}")
    };
    assert_eq!(identity.id.as_str(), "web-01");
}

/// A server config of the PKI's server certificate whose tickets `tickets` seals.
fn server_with_tickets(
    pki: &Pki,
    auth: &Arc<ClientAuth>,
    tickets: Arc<TicketKeys>,
) -> Arc<rustls::ServerConfig> {
    fts_trust::server_config_with_tickets(
        load_certificates(&pki.path("server.crt")).unwrap(),
        fts_trust::pem::load_private_key(&pki.path("server.key")).unwrap(),
        auth.clone(),
        tickets,
    )
    .unwrap()
}

#[tokio::test]
async fn replicas_sharing_a_ticket_key_resume_each_others_sessions_and_others_do_not() {
    // Behind a load balancer: a host's second poll lands on another server.
    let pki = Pki::new();
    let issued = pki.client("web-01", &[]);
    let auth = pki.client_auth();
    let shared = TicketKeyOptions { dir: pki.path("shared"), rotate: false, force: false };
    let path = ticket_key(&shared).unwrap().path;
    let other = ticket_key(&TicketKeyOptions { dir: pki.path("other"), ..shared.clone() }).unwrap().path;
    let one = server_with_tickets(&pki, &auth, TicketKeys::load(&path).unwrap());
    let two = server_with_tickets(&pki, &auth, TicketKeys::load(&path).unwrap());
    let stranger = server_with_tickets(&pki, &auth, TicketKeys::load(&other).unwrap());

    let web = pki.client_config("web-01");
    let (saw, _) = connect_once(one.clone(), auth.clone(), web.clone(), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(_, Some(HandshakeKind::Full), _)), "server: {saw:?}");
    let (saw, _) = connect_once(two.clone(), auth.clone(), web.clone(), "localhost").await;
    let ServerSaw::Accepted(identity, Some(HandshakeKind::Resumed), _) = &saw else {
        panic!("the second replica resumes the first one's session: {saw:?}")
    };
    assert_eq!(identity.id.as_str(), "web-01");

    // Another host, whose ticket from the first replica a server with another key
    // cannot open: a full handshake, not a failure.
    let other_host = pki.client_config("web-01");
    let (saw, _) = connect_once(one, auth.clone(), other_host.clone(), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(_, Some(HandshakeKind::Full), _)), "server: {saw:?}");
    let (saw, _) = connect_once(stranger, auth.clone(), other_host, "localhost").await;
    assert!(
        matches!(saw, ServerSaw::Accepted(_, Some(HandshakeKind::Full), _)),
        "another ticket key: {saw:?}"
    );

    // A session resumed at a replica is still checked against the CRLs in force there.
    let (saw, _) = connect_once(two.clone(), auth.clone(), web.clone(), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(_, Some(HandshakeKind::Resumed), _)), "server: {saw:?}");
    let revoked = Revoked { serial: issued.serial.clone(), revoked_at: OffsetDateTime::now_utc() };
    auth.replace_crls(vec![write_crl(pki.dir.path(), &[revoked], 1, 30).unwrap().crl]).unwrap();
    let (saw, client) = connect_once(two, auth, web, "localhost").await;
    assert!(!matches!(saw, ServerSaw::Accepted(..)), "revoked: {saw:?} / {client:?}");
}

#[test]
fn a_chain_accepted_once_is_judged_afresh_outside_its_dates_and_after_a_crl_change() {
    use rustls::server::danger::ClientCertVerifier;
    use rustls_pki_types::UnixTime;
    use x509_parser::prelude::{FromDer, X509Certificate};

    let pki = Pki::new();
    let issued = pki.client("web-01", &[]);
    let auth = pki.client_auth();
    let chain = load_certificates(&pki.path("web-01.crt")).unwrap();
    let cert = &chain[0];
    let (_, parsed) = X509Certificate::from_der(cert.as_ref()).unwrap();
    let not_before = parsed.validity().not_before.timestamp() as u64;
    let not_after = parsed.validity().not_after.timestamp() as u64;
    let at = |secs: u64| UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs));
    let verify = |now| auth.verify_client_cert(cert, &[], now).map(drop).map_err(|e| e.to_string());

    // The check after a handshake accepts the chain and remembers it; later checks
    // must still see its dates.
    assert!(auth.check_peer(Some(fts_trust::tls::ALPN), Some(&chain[..])).is_ok());
    assert_eq!(verify(UnixTime::now()), Ok(()));
    assert_eq!(verify(at(not_after)), Ok(()), "its last second is still inside its dates");
    let expired = verify(at(not_after + 1)).unwrap_err();
    assert!(expired.contains("xpired"), "{expired}");
    let early = verify(at(not_before - 1)).unwrap_err();
    assert!(early.contains("not valid yet") || early.contains("NotValidYet"), "{early}");

    let revoked = Revoked { serial: issued.serial.clone(), revoked_at: OffsetDateTime::now_utc() };
    auth.replace_crls(vec![write_crl(pki.dir.path(), &[revoked], 1, 30).unwrap().crl]).unwrap();
    let refused = verify(UnixTime::now()).unwrap_err();
    assert!(refused.to_lowercase().contains("revoked"), "{refused}");
    assert!(matches!(
        auth.check_peer(Some(fts_trust::tls::ALPN), Some(&chain[..])),
        Err(SessionRefused::Revoked)
    ));
}

#[tokio::test]
async fn a_session_resumed_after_its_certificate_was_revoked_is_refused() {
    let pki = Pki::new();
    let issued = pki.client("web-01", &["web"]);
    let auth = pki.client_auth();
    let server = pki.server_config(&auth);
    // One client config for every connection: its session store is what resumes.
    let client = pki.client_config("web-01");

    let (saw, reply) = connect_once(server.clone(), auth.clone(), client.clone(), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(_, Some(HandshakeKind::Full), 42)), "server: {saw:?}");
    assert_eq!(reply, Ok(42));

    let (saw, _) = connect_once(server.clone(), auth.clone(), client.clone(), "localhost").await;
    let ServerSaw::Accepted(identity, Some(HandshakeKind::Resumed), _) = &saw else {
        panic!("server: {saw:?}")
    };
    assert_eq!(identity.id.as_str(), "web-01", "a resumed session still carries the client certificate");

    let revoked = Revoked { serial: issued.serial.clone(), revoked_at: OffsetDateTime::now_utc() };
    let written = write_crl(pki.dir.path(), &[revoked], 1, 30).unwrap();
    auth.replace_crls(vec![written.crl]).unwrap();
    assert!(auth.revocation_enabled());

    let (saw, reply) = connect_once(server.clone(), auth.clone(), client.clone(), "localhost").await;
    assert!(
        matches!(saw, ServerSaw::Refused(SessionRefused::Revoked, Some(HandshakeKind::Resumed))),
        "server: {saw:?}"
    );
    assert!(reply.is_err());

    // A fresh client, with no session to resume, fails in the handshake itself.
    let fresh = pki.client_config("web-01");
    let (saw, reply) = connect_once(server, auth.clone(), fresh, "localhost").await;
    assert_handshake_failed(&saw, &reply);
}

#[tokio::test]
async fn other_clients_still_connect_once_a_crl_is_loaded() {
    let pki = Pki::new();
    let revoked = pki.client("web-01", &[]);
    pki.client("web-02", &[]);
    let auth = pki.client_auth();
    let crl = write_crl(
        pki.dir.path(),
        &[Revoked { serial: revoked.serial, revoked_at: OffsetDateTime::now_utc() }],
        1,
        30,
    )
    .unwrap();
    auth.replace_crls(vec![crl.crl]).unwrap();
    let (saw, reply) =
        connect_once(pki.server_config(&auth), auth.clone(), pki.client_config("web-02"), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(..)), "server: {saw:?}");
    assert_eq!(reply, Ok(42));
}

#[tokio::test]
async fn a_client_whose_issuer_has_no_crl_is_refused_once_revocation_is_on() {
    let pki = Pki::new();
    let other = Pki::new();
    pki.client("web-01", &[]);
    other.client("web-02", &[]);
    // The server trusts both CAs but has a CRL only for the first.
    let mut roots = load_certificates(&pki.path("ca.crt")).unwrap();
    roots.extend(load_certificates(&other.path("ca.crt")).unwrap());
    let crl = write_crl(pki.dir.path(), &[], 1, 30).unwrap();
    let auth = ClientAuth::new(roots, vec![crl.crl]).unwrap();
    let config = pki.client_config_with(&other.path("web-02.crt"), &other.path("web-02.key"));
    let (saw, reply) = connect_once(pki.server_config(&auth), auth.clone(), config, "localhost").await;
    assert_handshake_failed(&saw, &reply);
    let (saw, _) =
        connect_once(pki.server_config(&auth), auth.clone(), pki.client_config("web-01"), "localhost").await;
    assert!(matches!(saw, ServerSaw::Accepted(..)), "server: {saw:?}");
}

#[tokio::test]
async fn an_overdue_crl_is_still_used_and_reported() {
    let pki = Pki::new();
    let issued = pki.client("web-01", &[]);
    let crl = write_crl(
        pki.dir.path(),
        &[Revoked { serial: issued.serial, revoked_at: OffsetDateTime::now_utc() }],
        1,
        1,
    )
    .unwrap()
    .crl;
    let auth = pki.client_auth();
    auth.replace_crls(vec![crl]).unwrap();
    let in_two_days = OffsetDateTime::now_utc() + Duration::days(2);
    assert_eq!(auth.overdue_crls(in_two_days).len(), 1, "the server can warn");
    assert!(auth.overdue_crls(OffsetDateTime::now_utc()).is_empty());
    // Expiry is not enforced: still revoked even when checked after next-update.
    let cert = load_certificates(&pki.path("web-01.crt")).unwrap();
    let late = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        in_two_days.unix_timestamp() as u64,
    ));
    let err = rustls::server::danger::ClientCertVerifier::verify_client_cert(&*auth, &cert[0], &[], late)
        .unwrap_err();
    assert!(matches!(err, rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)), "{err:?}");
}

#[test]
fn an_unreadable_crl_file_is_an_error_naming_it_and_the_crls_in_force_stay() {
    let pki = Pki::new();
    let written = write_crl(pki.dir.path(), &[], 7, 30).unwrap();
    let auth = ClientAuth::from_files(&pki.path("ca.crt"), Some(&written.path)).unwrap();
    // What a reload does: read the file, and only on success replace the CRLs.
    let broken = pki.path("broken.crl");
    std::fs::write(&broken, "-----BEGIN X509 CRL-----\nMAA=\n-----END X509 CRL-----\n").unwrap();
    let err = fts_trust::crl::load_crls(&broken).unwrap_err().to_string();
    assert!(err.contains("broken.crl"), "{err}");
    assert_eq!(auth.crls()[0].number(), Some(7));
    assert!(auth.revocation_enabled());
}
