//! The rustls configurations of both sides (PROTOCOL.md section 1) and the check the
//! server runs on every session before it reads a byte.
//!
//! Both sides: TLS 1.3 only, the `ring` provider passed explicitly (the process-wide
//! default is never installed nor needed), ALPN `fts/1`.
//!
//! **Server.** Client certificates are mandatory and verified by [`ClientAuth`]: the
//! client CA roots plus the *current* CRLs, swappable at run time
//! ([`ClientAuth::replace_crls`]). The `ServerConfig` holds the `ClientAuth` itself as
//! its verifier, so a CRL reload changes what new handshakes accept without building a
//! new config, and sessions (stateless tickets) survive it.
//! A resumed session is not verified again by rustls, so [`ClientAuth::check_session`]
//! must run after **every** handshake: it refuses a missing or wrong ALPN, verifies
//! the session's certificate chain again against the roots and the CRLs as they are
//! now, and applies the identity rules ([`crate::identity`]).
//!
//! Revocation policy, chosen deliberately:
//! - only the client's own (end-entity) certificate is checked: fts CAs are one level;
//! - when any CRL is configured, a certificate whose issuer has no CRL is refused
//!   (unknown status is denied, PROTOCOL.md section 1); with no CRL configured,
//!   revocation is off and the server says so at start;
//! - a CRL past its next-update is still used (not enforced): revocations it lists
//!   stay in force, and the server warns ([`ClientAuth::overdue_crls`]);
//! - CRL numbers never go back: a CRL set in which a CRL signed by a client CA has a
//!   lower number than that CA's CRL already in force is refused whole, and the CRLs
//!   in force stay ([`crate::crl_floor`]; the floor can be kept across restarts,
//!   [`ClientAuth::with_crl_floor`], and lowered once on purpose, [`OlderCrls`]).
//!
//! Refused certificates are logged by [`crate::refusals`]: at warn, once a minute per
//! client id, when the chain verified up to the client CA; at debug otherwise.
//!
//! **Client.** The server's chain is verified against the configured CA only (no
//! system roots), for the name dialled, and the server certificate must list the
//! serverAuth extended key usage explicitly: webpki alone accepts a certificate with
//! no EKU extension at all, so [`RequireServerAuth`] adds that one check on top of
//! webpki's verifier and delegates everything else to it.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::ProducesTickets;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    ServerConnection, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crl::{Crl, load_crls};
use crate::crl_floor::CrlFloor;
use crate::error::{Error, SessionRefused};
use crate::identity::{ClientIdentity, client_identity};
use crate::pem::load_certificates;
use crate::refusals::{CertificateWarnings, Checked, RefusalReason, classify, verified_refusal};
use crate::verified_chains::VerifiedChains;

/// The one ALPN protocol id of version 1 of the protocol.
pub const ALPN: &[u8] = b"fts/1";

/// How many (client id, ignored O value) pairs are remembered so each is logged once.
const MAX_REMEMBERED_WARNINGS: usize = 10_000;

/// The crypto provider of every fts TLS object.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(roots: Vec<CertificateDer<'static>>) -> Result<Arc<RootCertStore>, Error> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root)?;
    }
    Ok(Arc::new(store))
}

/// Who may connect to the server: the client CA roots and the current CRLs. Shared
/// (`Arc`) by the server's `ServerConfig`, which uses it as its client certificate
/// verifier, and by the per-connection [`check_session`](Self::check_session).
pub struct ClientAuth {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    /// The roots as certificates, to check whose signature a CRL carries.
    root_certificates: Vec<CertificateDer<'static>>,
    root_hints: Vec<DistinguishedName>,
    /// Swapped whole on reload; readers clone the `Arc` and never hold the lock long.
    revocation: RwLock<Arc<Revocation>>,
    /// The lowest CRL number accepted per CA. Its lock is held across each CRL swap,
    /// so concurrent replacements are checked and applied one at a time.
    floor: Mutex<CrlFloor>,
    /// `--accept-older-crl`: one older CRL set may still be put in force, once.
    accept_one_older: AtomicBool,
    /// (client id, O value) pairs already logged, so each is logged once.
    warned: Mutex<HashSet<(String, String)>>,
    refusals: CertificateWarnings,
}

/// What [`ClientAuth`] does with a CRL set older than the CRLs in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OlderCrls {
    /// Refuse it (the rule).
    Refuse,
    /// Accept the set put in force at start even if it is older, then refuse again:
    /// `fts serve --accept-older-crl`, for a deliberate rollback. Only at start: a
    /// flag left in a unit file must not accept a stale copy that arrives days later.
    AcceptOnce,
}

/// One consistent revocation state: the CRLs, the webpki verifier built from them, and
/// the chains it accepted.
struct Revocation {
    crls: Vec<Crl>,
    verifier: Arc<dyn ClientCertVerifier>,
    verified: VerifiedChains,
}

impl Revocation {
    /// webpki's verdict on the client's chain, now. A chain this state already
    /// accepted is not verified again while it is within its dates (the module
    /// `verified_chains` says why that gives the same verdict). `remember`: add an
    /// accepted chain to the memo; only after a completed handshake, when the client
    /// has proved it holds the certificate's key, so that someone replaying another
    /// host's public certificate with varied intermediates cannot churn the memo.
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        remember: bool,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if self.verified.contains(end_entity, intermediates, now) {
            return Ok(ClientCertVerified::assertion());
        }
        let verified = self.verifier.verify_client_cert(end_entity, intermediates, now)?;
        if remember {
            self.verified.insert(end_entity, intermediates);
        }
        Ok(verified)
    }
}

impl ClientAuth {
    /// Trusts client certificates issued by `client_ca_roots`, revoked by `crls` (none:
    /// revocation off).
    pub fn new(client_ca_roots: Vec<CertificateDer<'static>>, crls: Vec<Crl>) -> Result<Arc<Self>, Error> {
        Self::with_crl_floor(client_ca_roots, crls, CrlFloor::default(), OlderCrls::Refuse)
    }

    /// [`new`](Self::new), with the CRL numbers a previous run had in force: `crls`
    /// must not be older than `floor` (unless `older` lets one older set through), and
    /// neither may any CRL set put in force later. [`crl_floor`](Self::crl_floor) says
    /// what to keep for the next run.
    pub fn with_crl_floor(
        client_ca_roots: Vec<CertificateDer<'static>>,
        crls: Vec<Crl>,
        floor: CrlFloor,
        older: OlderCrls,
    ) -> Result<Arc<Self>, Error> {
        let provider = provider();
        let roots = root_store(client_ca_roots.clone())?;
        let root_hints = roots.subjects();
        let auth = ClientAuth {
            revocation: RwLock::new(Arc::new(Self::revocation(&provider, &roots, Vec::new())?)),
            provider,
            roots,
            root_certificates: client_ca_roots,
            root_hints,
            floor: Mutex::new(floor),
            accept_one_older: AtomicBool::new(older == OlderCrls::AcceptOnce),
            warned: Mutex::new(HashSet::new()),
            refusals: CertificateWarnings::default(),
        };
        auth.replace_crls(crls)?;
        auth.accept_one_older.store(false, Ordering::SeqCst);
        Ok(Arc::new(auth))
    }

    /// [`new`](Self::new) from files: the client CA certificates (PEM, at least one)
    /// and, when given, a CRL file (PEM, at least one CRL). Errors name the file.
    pub fn from_files(client_ca: &Path, crl: Option<&Path>) -> Result<Arc<Self>, Error> {
        let crls = match crl {
            Some(path) => load_crls(path)?,
            None => Vec::new(),
        };
        Self::new(load_certificates(client_ca)?, crls)
    }

    fn revocation(
        provider: &Arc<CryptoProvider>,
        roots: &Arc<RootCertStore>,
        crls: Vec<Crl>,
    ) -> Result<Revocation, Error> {
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls(crls.iter().map(|crl| crl.der().clone()))
            .only_check_end_entity_revocation()
            // Deliberately not called: allow_unknown_revocation_status (an issuer
            // without a CRL is refused once any CRL is configured) and
            // enforce_revocation_expiration (an overdue CRL is still used).
            .build()?;
        Ok(Revocation { crls, verifier, verified: VerifiedChains::default() })
    }

    /// Replaces the CRLs used from now on, for new handshakes and for
    /// [`check_session`](Self::check_session). On error the previous CRLs stay in
    /// force: a CRL the verifier cannot use, or a set older than the CRLs in force
    /// ([`Error::OlderCrl`]: a CRL signed by a client CA whose number is below the
    /// highest number of that CA already in force, or that has no number although
    /// one was).
    pub fn replace_crls(&self, crls: Vec<Crl>) -> Result<(), Error> {
        let mut floor = self.floor.lock().unwrap_or_else(PoisonError::into_inner);
        // Only CRLs the client CA signed move or meet the floor (crl_floor says why).
        let verified: Vec<&Crl> = crls
            .iter()
            .filter(|crl| self.root_certificates.iter().any(|root| crl.is_signed_by(root)))
            .collect();
        let older = floor.first_older(verified.iter().copied());
        let rolled_back = match older {
            None => false,
            Some(older) if self.accept_one_older.swap(false, Ordering::SeqCst) => {
                tracing::warn!(
                    issuer = %older.issuer,
                    number = older.number.map_or_else(|| "none".to_owned(), |n| n.to_string()),
                    in_force = older.in_force,
                    "accepting an older CRL once (--accept-older-crl): its number is the new floor"
                );
                true
            }
            Some(older) => {
                return Err(Error::OlderCrl {
                    issuer: older.issuer.to_string(),
                    number: older.number,
                    in_force: older.in_force,
                });
            }
        };
        // Built only for a set the floor lets through: a refused stale copy, tried
        // every few seconds, costs no verifier.
        let revocation = Self::revocation(&self.provider, &self.roots, crls.clone())?;
        *self.revocation.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(revocation);
        floor.put_in_force(verified, rolled_back);
        Ok(())
    }

    /// The lowest CRL number accepted from each CA from now on: the highest in force
    /// (what the server keeps for its next start).
    pub fn crl_floor(&self) -> CrlFloor {
        self.floor.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn current(&self) -> Arc<Revocation> {
        self.revocation.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether any CRL is configured (the server logs this at start).
    pub fn revocation_enabled(&self) -> bool {
        !self.current().crls.is_empty()
    }

    /// The CRLs in force.
    pub fn crls(&self) -> Vec<Crl> {
        self.current().crls.clone()
    }

    /// The CRLs in force whose next-update is before `now`: still used, but overdue
    /// (the server warns in its log and status).
    pub fn overdue_crls(&self, now: OffsetDateTime) -> Vec<Crl> {
        self.current().crls.iter().filter(|crl| crl.is_past_next_update(now)).cloned().collect()
    }

    /// The check of PROTOCOL.md section 1, after every handshake (full or resumed)
    /// and before reading the request: ALPN `fts/1`, the session's client certificate
    /// chain verified again against the roots and the CRLs as they are now, and the
    /// identity rules. O values that grant nothing are logged once per client.
    pub fn check_session(&self, conn: &ServerConnection) -> Result<ClientIdentity, SessionRefused> {
        if conn.is_handshaking() {
            return Err(SessionRefused::Handshaking);
        }
        let identity =
            self.check_peer(conn.alpn_protocol(), conn.peer_certificates()).inspect_err(|refused| {
                let end_entity = conn.peer_certificates().and_then(<[_]>::first);
                let refusal = match (refused, end_entity) {
                    (SessionRefused::Revoked, Some(cert)) => verified_refusal(RefusalReason::Revoked, cert),
                    (SessionRefused::Identity(e), Some(cert)) => {
                        verified_refusal(RefusalReason::Identity(e.clone()), cert)
                    }
                    (SessionRefused::Certificate(refusal), _) => refusal.clone(),
                    // ALPN, no certificate: nothing about a certificate to say; the
                    // server logs these with the other failed handshakes.
                    _ => return,
                };
                self.refusals.log(&refusal, Checked::Session);
            })?;
        self.warn_ignored_organizations(&identity);
        Ok(identity)
    }

    /// [`check_session`](Self::check_session) on the parts of a session, without
    /// logging: the negotiated ALPN and the peer's chain (entry 0 the client's own).
    pub fn check_peer(
        &self,
        alpn: Option<&[u8]>,
        peer_certificates: Option<&[CertificateDer<'static>]>,
    ) -> Result<ClientIdentity, SessionRefused> {
        match alpn {
            None => return Err(SessionRefused::NoAlpn),
            Some(ALPN) => {}
            Some(other) => {
                return Err(SessionRefused::WrongAlpn(String::from_utf8_lossy(other).into_owned()));
            }
        }
        let (end_entity, intermediates) = match peer_certificates {
            Some([end_entity, intermediates @ ..]) => (end_entity, intermediates),
            _ => return Err(SessionRefused::NoCertificate),
        };
        let current = self.current();
        current.verify_chain(end_entity, intermediates, UnixTime::now(), true).map_err(|e| match e {
            rustls::Error::InvalidCertificate(CertificateError::Revoked) => SessionRefused::Revoked,
            other => SessionRefused::Certificate(classify(&other, end_entity, |at| {
                current.verifier.verify_client_cert(end_entity, intermediates, at).map(drop)
            })),
        })?;
        Ok(client_identity(end_entity)?)
    }

    fn warn_ignored_organizations(&self, identity: &ClientIdentity) {
        if identity.ignored_organizations.is_empty() {
            return;
        }
        let mut warned = self.warned.lock().unwrap_or_else(PoisonError::into_inner);
        for org in &identity.ignored_organizations {
            let key = (identity.id.to_string(), org.clone());
            // Once the memory is full, keep warning rather than go quiet.
            let first_time = warned.len() >= MAX_REMEMBERED_WARNINGS || warned.insert(key);
            if first_time {
                tracing::warn!(
                    client_id = %identity.id,
                    organization = %fts_proto::Printable(org),
                    "client certificate O value is not a valid group name: it grants nothing"
                );
            }
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("roots", &self.roots.len())
            .field("crls", &self.current().crls.len())
            .finish_non_exhaustive()
    }
}

/// rustls asks the current revocation state for every full handshake. Every method
/// delegates to the webpki verifier of the moment (the chain through its memo of
/// accepted chains); nothing is decided here. A refusal is logged
/// ([`crate::refusals`]) and returned unchanged, so the TLS alert the client gets
/// (certificate revoked, expired, unknown CA ...) is webpki's.
impl ClientCertVerifier for ClientAuth {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.root_hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Mid-handshake: the client has not yet proved it holds the key.
        let current = self.current();
        current.verify_chain(end_entity, intermediates, now, false).inspect_err(|e| {
            let refusal = classify(e, end_entity, |at| {
                current.verifier.verify_client_cert(end_entity, intermediates, at).map(drop)
            });
            self.refusals.log(&refusal, Checked::Handshake);
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verifier.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.current().verifier.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.current().verifier.supported_verify_schemes()
    }
}

/// The server's TLS configuration: TLS 1.3 only, no early data, ALPN `fts/1`,
/// mandatory client certificates verified by `client_auth`, session tickets sealed
/// with a key of this process alone (random, rotated every 6 hours).
/// Build it once: CRL reloads go through `client_auth`. A `key` that is not the key of
/// `cert_chain` is [`Error::KeyMismatch`] (the caller names both files).
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: Arc<ClientAuth>,
) -> Result<Arc<ServerConfig>, Error> {
    server_config_with_tickets(cert_chain, key, client_auth, rustls::crypto::ring::Ticketer::new()?)
}

/// [`server_config`], with the session tickets sealed by `tickets`: the keys of
/// `--ticket-key` ([`crate::ticket_key::TicketKeys`]), shared by the replicas so that
/// each resumes what another sealed.
pub fn server_config_with_tickets(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: Arc<ClientAuth>,
    tickets: Arc<dyn ProducesTickets>,
) -> Result<Arc<ServerConfig>, Error> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_auth)
        .with_single_cert(cert_chain, key)
        .map_err(credentials_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.max_early_data_size = 0;
    config.send_half_rtt_data = false;
    // Stateless resumption: the session (with the client's certificate chain) travels
    // in a sealed ticket, so every host of a fleet can resume, not only the last 256
    // (rustls' default session cache). The ticket only spares the handshake's
    // signatures: the chain it carries is checked again by `check_session`, as for a
    // full handshake.
    config.ticketer = tickets;
    Ok(Arc::new(config))
}

/// The client's TLS configuration: TLS 1.3 only, the server verified against
/// `ca_roots` only (no system roots) with serverAuth required, the client's
/// certificate for mutual TLS, ALPN `fts/1`, default session resumption store. Reuse
/// the returned `Arc` across polls so sessions resume. A `key` that is not the key of
/// `cert_chain` is [`Error::KeyMismatch`] (the caller names both files).
pub fn client_config(
    ca_roots: Vec<CertificateDer<'static>>,
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>, Error> {
    let provider = provider();
    let webpki =
        WebPkiServerVerifier::builder_with_provider(root_store(ca_roots)?, provider.clone()).build()?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        // "dangerous" only in rustls' naming: the verifier below is webpki's, plus a check.
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RequireServerAuth { webpki }))
        .with_client_auth_cert(cert_chain, key)
        .map_err(credentials_error)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.enable_early_data = false;
    Ok(Arc::new(config))
}

/// A certificate and key that rustls refused together, said in words when they are
/// simply not a pair.
fn credentials_error(e: rustls::Error) -> Error {
    match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => Error::KeyMismatch,
        other => Error::Tls(other),
    }
}

/// The name the client dials (`--server HOST:PORT` without the port), as rustls
/// wants it: a DNS name or an IP address.
pub fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    ServerName::try_from(host.to_owned()).map_err(|_| Error::InvalidServerName { name: host.to_owned() })
}

/// webpki's server verifier, plus: the server certificate must carry the serverAuth
/// extended key usage explicitly (webpki accepts one without any EKU extension).
#[derive(Debug)]
pub struct RequireServerAuth {
    webpki: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for RequireServerAuth {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let has_server_auth = X509Certificate::from_der(end_entity)
            .ok()
            .and_then(|(_, cert)| cert.extended_key_usage().ok().flatten().map(|eku| eku.value.server_auth))
            .unwrap_or(false);
        if !has_server_auth {
            return Err(rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fts_proto::ClientId;
    use time::OffsetDateTime;

    use super::*;
    use crate::crl::{Revoked, build_crl, write_crl};
    use crate::keygen::{self, CaOptions, CertificateAuthority, ClientOptions};
    use crate::refusals::CertificateRefusal;

    fn ca() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        keygen::ca(&CaOptions { dir: dir.path().to_owned(), days: 30, force: false }).unwrap();
        dir
    }

    fn roots(dir: &tempfile::TempDir) -> Vec<CertificateDer<'static>> {
        load_certificates(&dir.path().join("ca.crt")).unwrap()
    }

    fn client(dir: &tempfile::TempDir, id: &str) -> (crate::keygen::Issued, CertificateDer<'static>) {
        let issued = keygen::client(&ClientOptions {
            dir: dir.path().to_owned(),
            id: ClientId::parse(id).unwrap(),
            groups: Vec::new(),
            days: 30,
            force: false,
        })
        .unwrap();
        let cert = load_certificates(&issued.cert_path).unwrap().remove(0);
        (issued, cert)
    }

    fn revoking(issued: &crate::keygen::Issued) -> Vec<Revoked> {
        vec![Revoked { serial: issued.serial.clone(), revoked_at: OffsetDateTime::now_utc() }]
    }

    #[test]
    fn an_older_crl_is_refused_and_the_newer_one_stays_in_force() {
        let dir = ca();
        let (web01, cert) = client(&dir, "web-01");
        let auth =
            ClientAuth::new(roots(&dir), vec![write_crl(dir.path(), &[], 1, 30).unwrap().crl]).unwrap();
        auth.replace_crls(vec![write_crl(dir.path(), &revoking(&web01), 5, 30).unwrap().crl]).unwrap();
        let refused = auth.check_peer(Some(ALPN), Some(std::slice::from_ref(&cert)));
        assert!(matches!(refused, Err(SessionRefused::Revoked)), "{refused:?}");

        // A stale copy: validly signed, number 2, empty. It would un-revoke web-01.
        let stale = write_crl(dir.path(), &[], 2, 30).unwrap().crl;
        let err = auth.replace_crls(vec![stale]).unwrap_err();
        assert!(matches!(err, Error::OlderCrl { number: Some(2), in_force: 5, .. }), "{err}");
        assert!(err.to_string().contains("--accept-older-crl"), "{err}");
        assert_eq!(auth.crls()[0].number(), Some(5));
        let refused = auth.check_peer(Some(ALPN), Some(std::slice::from_ref(&cert)));
        assert!(matches!(refused, Err(SessionRefused::Revoked)), "still revoked: {refused:?}");

        // Equal and higher numbers are fine.
        auth.replace_crls(vec![write_crl(dir.path(), &revoking(&web01), 5, 30).unwrap().crl]).unwrap();
        auth.replace_crls(vec![write_crl(dir.path(), &revoking(&web01), 6, 30).unwrap().crl]).unwrap();
        assert_eq!(auth.crl_floor().iter().map(|(_, n)| n).collect::<Vec<_>>(), [6]);
    }

    #[test]
    fn the_floor_of_a_previous_run_holds_at_start_and_one_rollback_can_be_asked_for() {
        let dir = ca();
        let auth =
            ClientAuth::new(roots(&dir), vec![write_crl(dir.path(), &[], 7, 30).unwrap().crl]).unwrap();
        let floor = auth.crl_floor();
        let stale = || write_crl(dir.path(), &[], 3, 30).unwrap().crl;

        let err = ClientAuth::with_crl_floor(roots(&dir), vec![stale()], floor.clone(), OlderCrls::Refuse)
            .unwrap_err();
        assert!(matches!(err, Error::OlderCrl { number: Some(3), in_force: 7, .. }), "{err}");

        let auth =
            ClientAuth::with_crl_floor(roots(&dir), vec![stale()], floor.clone(), OlderCrls::AcceptOnce)
                .unwrap();
        assert_eq!(auth.crls()[0].number(), Some(3), "accepted once");
        assert_eq!(auth.crl_floor().iter().map(|(_, n)| n).collect::<Vec<_>>(), [3], "the new floor");
        let err = auth.replace_crls(vec![write_crl(dir.path(), &[], 2, 30).unwrap().crl]).unwrap_err();
        assert!(matches!(err, Error::OlderCrl { number: Some(2), in_force: 3, .. }), "only once: {err}");

        // Not needed at start: disarmed all the same, so a stale copy arriving later
        // (the flag left in a unit file) is refused.
        let auth = ClientAuth::with_crl_floor(
            roots(&dir),
            vec![write_crl(dir.path(), &[], 8, 30).unwrap().crl],
            floor,
            OlderCrls::AcceptOnce,
        )
        .unwrap();
        assert!(auth.replace_crls(vec![stale()]).is_err(), "only the CRL loaded at start");
    }

    #[test]
    fn a_crl_not_signed_by_a_client_ca_never_moves_the_floor() {
        let dir = ca();
        let other = ca();
        let auth =
            ClientAuth::new(roots(&dir), vec![write_crl(dir.path(), &[], 4, 30).unwrap().crl]).unwrap();
        // Another CA's CRL with a huge number, beside ours: consulted by nobody, and it
        // must not raise any floor (a forged CRL could otherwise lock out genuine ones).
        let foreign =
            build_crl(&CertificateAuthority::load(other.path()).unwrap(), &[], u64::MAX - 1, 30).unwrap();
        auth.replace_crls(vec![write_crl(dir.path(), &[], 4, 30).unwrap().crl, foreign]).unwrap();
        assert_eq!(auth.crl_floor().iter().map(|(_, n)| n).collect::<Vec<_>>(), [4]);
        auth.replace_crls(vec![write_crl(dir.path(), &[], 5, 30).unwrap().crl]).unwrap();
    }

    /// The refusal `ClientAuth` describes for `cert` checked at `at`.
    fn refusal_at(auth: &ClientAuth, cert: &CertificateDer<'_>, at: OffsetDateTime) -> CertificateRefusal {
        let at = UnixTime::since_unix_epoch(Duration::from_secs(at.unix_timestamp() as u64));
        let current = auth.current();
        let err = current.verify_chain(cert, &[], at, false).unwrap_err();
        classify(&err, cert, |t| current.verifier.verify_client_cert(cert, &[], t).map(drop))
    }

    #[test]
    fn an_expired_certificate_is_said_to_be_the_client_cas_only_when_its_chain_verifies() {
        let dir = ca();
        let other = ca();
        let (web01, ours) = client(&dir, "web-01");
        let (_, theirs) = client(&other, "web-01");
        let auth =
            ClientAuth::new(roots(&dir), vec![write_crl(dir.path(), &revoking(&web01), 1, 30).unwrap().crl])
                .unwrap();
        let later = web01.not_after + time::Duration::days(1);

        // Expired and revoked: webpki reports the dates first; it is still ours.
        let refusal = refusal_at(&auth, &ours, later);
        assert!(refusal.issued_by_client_ca, "{refusal:?}");
        assert_eq!(refusal.common_name.as_deref(), Some("web-01"));
        assert_eq!(refusal.serial.as_ref(), Some(&web01.serial));
        let text = refusal.reason.to_string();
        assert!(text.starts_with("expired at ") && text.ends_with('Z'), "{text}");

        // Same name, expired, from another CA: not ours, whatever it claims.
        let refusal = refusal_at(&auth, &theirs, later);
        assert!(!refusal.issued_by_client_ca, "{refusal:?}");
        let refusal = refusal_at(&auth, &theirs, OffsetDateTime::now_utc());
        assert!(
            !refusal.issued_by_client_ca && refusal.reason == RefusalReason::NotIssuedByClientCa,
            "{refusal:?}"
        );
    }
}
