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
//!   stay in force, and the server warns ([`ClientAuth::overdue_crls`]).
//!
//! **Client.** The server's chain is verified against the configured CA only (no
//! system roots), for the name dialled, and the server certificate must list the
//! serverAuth extended key usage explicitly: webpki alone accepts a certificate with
//! no EKU extension at all, so [`RequireServerAuth`] adds that one check on top of
//! webpki's verifier and delegates everything else to it.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
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
use crate::error::{Error, SessionRefused};
use crate::identity::{ClientIdentity, client_identity};
use crate::pem::load_certificates;
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
    root_hints: Vec<DistinguishedName>,
    /// Swapped whole on reload; readers clone the `Arc` and never hold the lock long.
    revocation: RwLock<Arc<Revocation>>,
    /// (client id, O value) pairs already logged, so each is logged once.
    warned: Mutex<HashSet<(String, String)>>,
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
        let provider = provider();
        let roots = root_store(client_ca_roots)?;
        let root_hints = roots.subjects();
        let revocation = Self::revocation(&provider, &roots, crls)?;
        Ok(Arc::new(ClientAuth {
            provider,
            roots,
            root_hints,
            revocation: RwLock::new(Arc::new(revocation)),
            warned: Mutex::new(HashSet::new()),
        }))
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
    /// [`check_session`](Self::check_session). On error (a CRL the verifier cannot
    /// use) the previous CRLs stay in force.
    pub fn replace_crls(&self, crls: Vec<Crl>) -> Result<(), Error> {
        let revocation = Arc::new(Self::revocation(&self.provider, &self.roots, crls)?);
        *self.revocation.write().unwrap_or_else(PoisonError::into_inner) = revocation;
        Ok(())
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
        let identity = self.check_peer(conn.alpn_protocol(), conn.peer_certificates())?;
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
        self.current().verify_chain(end_entity, intermediates, UnixTime::now(), true).map_err(
            |e| match e {
                rustls::Error::InvalidCertificate(CertificateError::Revoked) => SessionRefused::Revoked,
                other => SessionRefused::Certificate(other),
            },
        )?;
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
                    organization = %org,
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
/// accepted chains); nothing is decided here.
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
        self.current().verify_chain(end_entity, intermediates, now, false)
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
/// mandatory client certificates verified by `client_auth`, session tickets.
/// Build it once: CRL reloads go through `client_auth`. A `key` that is not the key of
/// `cert_chain` is [`Error::KeyMismatch`] (the caller names both files).
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_auth: Arc<ClientAuth>,
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
    // in a ticket sealed with a key of this process (random, rotated every 6 hours),
    // so every host of a fleet can resume, not only the last 256 (rustls' default
    // session cache). The ticket only spares the handshake's signatures: the chain it
    // carries is checked again by `check_session`, as for a full handshake.
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
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
