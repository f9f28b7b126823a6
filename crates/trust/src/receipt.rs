//! Host receipts ([`fts_proto::receipt`]): a host signs them with its TLS client key,
//! the server checks them against the certificate the host connected with.
//!
//! Owns: the signing prefix, [`receipt_hash`], [`ReceiptSigner`] (every key rustls
//! takes for client authentication: ECDSA P-256 and P-384, Ed25519, RSA; as PKCS#8,
//! SEC1 or PKCS#1), [`check_receipt`], and the only constructor of
//! [`CheckedReceipt`]. Does not own the receipt bytes (fts-proto), storing receipts or
//! checking that a host's chain is unbroken (the status store), nor whether the
//! certificate is valid, which the TLS verifier decided when the host connected
//! ([`crate::tls`]).
//!
//! ```text
//! signed message  =  "fts host receipt v1" 0x00  ||  receipt bytes
//!                     ^------ 20 bytes, the prefix  ^ "fts-receipt-v1\n" ...
//! signature       =  the host key's scheme over the whole message (ECDSA and RSA-PSS
//!                    hash it with SHA-256, or SHA-384 for P-384; Ed25519 signs it)
//! receipt hash    =  "sha256:" + hex(SHA-256(receipt bytes))   (the bytes alone)
//! ```
//!
//! # Security model
//!
//! **The host's own key.** A receipt is signed with the private key of the host's
//! client certificate, the one its TLS handshakes prove it holds: no key to make,
//! distribute or revoke apart from it, and a receipt is bound to exactly the identity
//! the server already checks on every connection. A server (or anyone who can write to
//! its store) cannot make up a receipt; a host cannot later deny one.
//!
//! **Domain separation.** That key signs the host's TLS 1.3 handshakes too. A TLS 1.3
//! CertificateVerify signs 64 spaces (0x20), a context string, a zero byte and a
//! transcript hash (RFC 8446 section 4.4.3); a TLS 1.2 one signs the handshake messages,
//! which start with a handshake type byte (1, ClientHello). A receipt's message starts
//! with `f` (0x66), so a receipt signature is never a valid handshake signature nor the
//! other way round: a server that collects a host's handshake signatures cannot turn
//! one into a receipt, and a receipt cannot stand in for a handshake. The prefix ends
//! with a zero byte, which no fts text (statements, notes, receipts: printable text)
//! holds, so the message splits into prefix and receipt one way only, and no other
//! signed fts text can be read as a receipt message. The prefix names its version:
//! another receipt format would get another prefix.
//!
//! **What a check proves** ([`check_receipt`]): the holder of the certificate's key
//! signed these exact bytes; they are a valid receipt; the receipt names the
//! certificate's client id, and reports entries of that client's targets only
//! ([`ClientIdentity::targets`]). It proves nothing of time: no date is read, neither
//! the receipt's nor the certificate's, so a receipt stored a year ago checks against
//! its stored certificate today even when the certificate has expired or has been
//! revoked since ([`verify_stored_receipt`]). Whether the certificate was valid is
//! what the server's TLS verifier checked when the host connected; a reader of old
//! receipts weighs a later revocation (the key may have been stolen) against the
//! receipts' times. A receipt can be sent twice: the server keeps receipts by hash,
//! so a replay is a duplicate, and the chain (numbers and previous hashes) shows
//! what is missing.
//!
//! **Hash.** The hash is of the receipt's bytes alone: ECDSA signatures are
//! randomised, and the same receipt signed twice is the same receipt.

use std::fmt;
use std::path::Path;

use fts_proto::{FileHash, ProtoError, Receipt, ReceiptScheme, SignedReceipt};
use rustls::SignatureScheme;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::{Error, ReceiptError};
use crate::identity::{ClientIdentity, client_identity};
use crate::pem;

/// What precedes a receipt's bytes in the message its signature is over (module docs:
/// why).
pub const RECEIPT_SIGNING_PREFIX: &[u8] = b"fts host receipt v1\0";

/// The hash that names a receipt: `sha256:` and the hex of the SHA-256 of its bytes
/// (what a `receipts-stored` frame lists and the next receipt's `previous` names).
pub fn receipt_hash(bytes: &[u8]) -> FileHash {
    FileHash::from_digest(Sha256::digest(bytes).into())
}

/// The message a receipt's signature is over: the prefix, then the bytes.
fn signed_message(bytes: &[u8]) -> Vec<u8> {
    [RECEIPT_SIGNING_PREFIX, bytes].concat()
}

/// The schemes a host signs with, in the order rustls is offered them.
const OFFERED: [SignatureScheme; 4] = [
    SignatureScheme::ED25519,
    SignatureScheme::ECDSA_NISTP256_SHA256,
    SignatureScheme::ECDSA_NISTP384_SHA384,
    SignatureScheme::RSA_PSS_SHA256,
];

/// The receipt scheme of a TLS signature scheme, if it is one.
fn receipt_scheme(scheme: SignatureScheme) -> Option<ReceiptScheme> {
    match scheme {
        SignatureScheme::ED25519 => Some(ReceiptScheme::Ed25519),
        SignatureScheme::ECDSA_NISTP256_SHA256 => Some(ReceiptScheme::EcdsaP256Sha256),
        SignatureScheme::ECDSA_NISTP384_SHA384 => Some(ReceiptScheme::EcdsaP384Sha384),
        SignatureScheme::RSA_PSS_SHA256 => Some(ReceiptScheme::RsaPssSha256),
        _ => None,
    }
}

/// The webpki algorithm that verifies a scheme's signatures. RSA's is the one for
/// keys whose SubjectPublicKeyInfo says `rsaEncryption` (webpki's "legacy key"), as
/// every RSA client certificate's does.
fn verification_algorithm(
    scheme: ReceiptScheme,
) -> &'static dyn rustls_pki_types::SignatureVerificationAlgorithm {
    match scheme {
        ReceiptScheme::EcdsaP256Sha256 => webpki::ring::ECDSA_P256_SHA256,
        ReceiptScheme::EcdsaP384Sha384 => webpki::ring::ECDSA_P384_SHA384,
        ReceiptScheme::Ed25519 => webpki::ring::ED25519,
        ReceiptScheme::RsaPssSha256 => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    }
}

/// A host's receipt signing key: the private key of its TLS client certificate.
/// `Debug` shows the scheme, never the key.
pub struct ReceiptSigner {
    signer: Box<dyn rustls::sign::Signer>,
    scheme: ReceiptScheme,
}

impl ReceiptSigner {
    /// Loads the host's TLS private key file (`PRIVATE KEY`, `EC PRIVATE KEY` or
    /// `RSA PRIVATE KEY` PEM, exactly one), the one its client certificate is for.
    pub fn from_pem_file(path: &Path) -> Result<ReceiptSigner, Error> {
        let der = pem::load_private_key(path)?;
        Self::signer_of(der).map_err(|e| Error::bad_file_because(path, "not a key that can sign receipts", e))
    }

    /// The signer of a private key already read (the same DER rustls takes for the
    /// client's TLS configuration).
    pub fn from_der(der: PrivateKeyDer<'static>) -> Result<ReceiptSigner, Error> {
        Self::signer_of(der).map_err(Error::Receipt)
    }

    fn signer_of(der: PrivateKeyDer<'static>) -> Result<ReceiptSigner, ReceiptError> {
        let key = crate::tls::provider().key_provider.load_private_key(der).map_err(ReceiptError::Key)?;
        let no_scheme = || ReceiptError::NoScheme { algorithm: format!("{:?}", key.algorithm()) };
        let signer = key.choose_scheme(&OFFERED).ok_or_else(no_scheme)?;
        let scheme = receipt_scheme(signer.scheme()).ok_or_else(no_scheme)?;
        Ok(ReceiptSigner { signer, scheme })
    }

    /// The scheme this key signs with.
    pub fn scheme(&self) -> ReceiptScheme {
        self.scheme
    }

    /// Signs `receipt` over [`RECEIPT_SIGNING_PREFIX`] and its bytes. A receipt that
    /// breaks the format is refused ([`ReceiptError::Invalid`]) rather than signed:
    /// its bytes must read back as exactly this receipt.
    pub fn sign(&self, receipt: &Receipt) -> Result<SignedReceipt, ReceiptError> {
        let bytes = receipt.to_bytes();
        let invalid = |source| ReceiptError::Invalid { number: receipt.number, source };
        let read = Receipt::parse(&bytes).map_err(invalid)?;
        if read != *receipt {
            return Err(invalid(ProtoError::BadReceipt {
                detail: "its bytes read back as another receipt: a field holds a value written another way \
                         (a reject reason `Other` that names a known one, ...)"
                    .to_owned(),
            }));
        }
        let signature = self.signer.sign(&signed_message(&bytes)).map_err(ReceiptError::Sign)?;
        Ok(SignedReceipt { bytes, scheme: self.scheme, signature })
    }
}

impl fmt::Debug for ReceiptSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiptSigner").field("scheme", &self.scheme).finish_non_exhaustive()
    }
}

/// A receipt whose signature by a client certificate's key, format and identity
/// have been checked. Only [`check_receipt`] makes one, so code that stores receipts
/// cannot be handed an unchecked one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedReceipt {
    signed: SignedReceipt,
    receipt: Receipt,
    hash: FileHash,
    identity: ClientIdentity,
}

impl CheckedReceipt {
    /// Only this module's check makes one.
    fn new(signed: SignedReceipt, receipt: Receipt, identity: ClientIdentity) -> Self {
        let hash = receipt_hash(&signed.bytes);
        CheckedReceipt { signed, receipt, hash, identity }
    }

    /// The receipt, as its bytes say.
    pub fn receipt(&self) -> &Receipt {
        &self.receipt
    }

    /// The signed receipt as it arrived: what is stored.
    pub fn signed(&self) -> &SignedReceipt {
        &self.signed
    }

    /// The receipt's hash ([`receipt_hash`] of its bytes).
    pub fn hash(&self) -> FileHash {
        self.hash
    }

    /// The identity of the certificate it was checked against.
    pub fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    /// The signed receipt, for code that no longer needs the proof that it was checked.
    pub fn into_signed(self) -> SignedReceipt {
        self.signed
    }
}

/// Checks a receipt a host sent against the client certificate of its session: the
/// signature first (by the certificate's key, over [`RECEIPT_SIGNING_PREFIX`] and the
/// bytes, in the scheme the receipt names, which must be the key's), then the bytes
/// ([`Receipt::parse`]), then the identity: the receipt names the certificate's
/// client id, and each of its entry outcomes is of one of that client's targets.
///
/// The certificate's validity (dates, chain, revocation) is not checked here: that is
/// the TLS verifier's, when the host connects. Nothing here reads the time (see
/// [`verify_stored_receipt`]).
pub fn check_receipt(
    signed: &SignedReceipt,
    certificate: &CertificateDer<'_>,
) -> Result<CheckedReceipt, ReceiptError> {
    verify_signature(signed, certificate)?;
    let receipt = Receipt::parse(&signed.bytes).map_err(ReceiptError::Malformed)?;
    let identity = client_identity(certificate).map_err(ReceiptError::Identity)?;
    if receipt.client_id != identity.id {
        return Err(ReceiptError::WrongClient {
            number: receipt.number,
            receipt: receipt.client_id,
            certificate: identity.id,
        });
    }
    let targets = identity.targets();
    if let Some(entry) = receipt.entries().find(|entry| !targets.contains(&entry.target)) {
        return Err(ReceiptError::WrongTarget {
            number: receipt.number,
            target: entry.target.clone(),
            client: identity.id,
            targets,
        });
    }
    Ok(CheckedReceipt::new(signed.clone(), receipt, identity))
}

/// Whether `certificate` is a client certificate the client CA issued (any of
/// `cas`, directly): its chain and clientAuth usage are checked as of its own
/// notBefore, so that one which has expired or been revoked since still counts as
/// issued. `fts status --verify` checks each stored certificate with it: the status
/// folder is the server's to write, so a certificate found there proves nothing by
/// itself.
pub fn issued_by_client_ca(
    certificate: &CertificateDer<'_>,
    cas: &[CertificateDer<'_>],
) -> Result<(), ReceiptError> {
    let anchors: Vec<_> = cas
        .iter()
        .map(|ca| webpki::anchor_from_trusted_cert(ca).map(|a| a.to_owned()))
        .collect::<Result<_, _>>()
        .map_err(ReceiptError::NotIssuedByCa)?;
    let (_, parsed) = X509Certificate::from_der(certificate.as_ref())
        .map_err(|_| ReceiptError::NotIssuedByCa(webpki::Error::BadDer))?;
    let not_before = u64::try_from(parsed.validity().not_before.timestamp()).unwrap_or(0);
    let at = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        not_before.saturating_add(1),
    ));
    let end_entity = webpki::EndEntityCert::try_from(certificate).map_err(ReceiptError::NotIssuedByCa)?;
    end_entity
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &[],
            at,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(ReceiptError::NotIssuedByCa)
}

/// Checks a stored receipt again against the certificate stored with it (`fts status
/// --verify`): the same checks as [`check_receipt`], none of which depends on the time.
/// A receipt still verifies after its certificate has expired or been revoked: what it
/// proves is that the key signed it, and the certificate said whose key it was.
/// Whether that certificate is one the client CA issued is [`issued_by_client_ca`]'s.
pub fn verify_stored_receipt(
    signed: &SignedReceipt,
    certificate: &CertificateDer<'_>,
) -> Result<CheckedReceipt, ReceiptError> {
    check_receipt(signed, certificate)
}

/// The signature step of [`check_receipt`].
fn verify_signature(signed: &SignedReceipt, certificate: &CertificateDer<'_>) -> Result<(), ReceiptError> {
    let end_entity = webpki::EndEntityCert::try_from(certificate).map_err(ReceiptError::Certificate)?;
    let key = CertificateKey::of(certificate);
    if !key.signs_with(signed.scheme) {
        return Err(ReceiptError::UnsupportedScheme { scheme: signed.scheme, key: key.describe() });
    }
    let message = signed_message(&signed.bytes);
    end_entity.verify_signature(verification_algorithm(signed.scheme), &message, &signed.signature).map_err(
        |e| match e {
            webpki::Error::InvalidSignatureForPublicKey => ReceiptError::BadSignature,
            other => ReceiptError::UnusableKey { scheme: signed.scheme, source: other },
        },
    )
}

/// The kind of key a certificate carries, as far as receipts care: webpki's
/// algorithms each take exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertificateKey {
    EcP256,
    EcP384,
    EcOtherCurve,
    Ed25519,
    Rsa,
    Other,
}

impl CertificateKey {
    fn of(certificate: &CertificateDer<'_>) -> CertificateKey {
        let Ok((_, cert)) = X509Certificate::from_der(certificate.as_ref()) else {
            return CertificateKey::Other;
        };
        let algorithm = &cert.public_key().algorithm;
        if algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            match curve {
                Some(curve) if curve == OID_EC_P256 => CertificateKey::EcP256,
                Some(curve) if curve == OID_NIST_EC_P384 => CertificateKey::EcP384,
                _ => CertificateKey::EcOtherCurve,
            }
        } else if algorithm.algorithm == OID_SIG_ED25519 {
            CertificateKey::Ed25519
        } else if algorithm.algorithm == OID_PKCS1_RSAENCRYPTION {
            CertificateKey::Rsa
        } else {
            CertificateKey::Other
        }
    }

    fn signs_with(self, scheme: ReceiptScheme) -> bool {
        matches!(
            (self, scheme),
            (CertificateKey::EcP256, ReceiptScheme::EcdsaP256Sha256)
                | (CertificateKey::EcP384, ReceiptScheme::EcdsaP384Sha384)
                | (CertificateKey::Ed25519, ReceiptScheme::Ed25519)
                | (CertificateKey::Rsa, ReceiptScheme::RsaPssSha256)
        )
    }

    fn describe(self) -> &'static str {
        match self {
            CertificateKey::EcP256 => "an EC P-256 key",
            CertificateKey::EcP384 => "an EC P-384 key",
            CertificateKey::EcOtherCurve => "an EC key on another curve",
            CertificateKey::Ed25519 => "an Ed25519 key",
            CertificateKey::Rsa => "an RSA key",
            CertificateKey::Other => "a key of another type",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;

    use fts_proto::{
        AlarmName, ClientId, EntryOutcome, EntryOutcomeKind, FileName, GroupName, Outcome, Published,
        RejectReason, Seq, Target,
    };
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, PKCS_ECDSA_P256_SHA256};
    use rustls_pki_types::PrivatePkcs8KeyDer;

    use super::*;
    use crate::keygen::{self, CaOptions, ClientOptions};

    /// A CA and clients made by fts keygen in a temporary folder.
    struct Hosts {
        dir: tempfile::TempDir,
    }

    impl Hosts {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            keygen::ca(&CaOptions { dir: dir.path().to_owned(), days: 30, force: false }).unwrap();
            Hosts { dir }
        }

        /// A client's signer and certificate.
        fn client(&self, id: &str, groups: &[&str]) -> (ReceiptSigner, CertificateDer<'static>) {
            keygen::client(&ClientOptions {
                dir: self.dir.path().to_owned(),
                id: ClientId::parse(id).unwrap(),
                groups: groups.iter().map(|g| GroupName::parse(g).unwrap()).collect(),
                days: 30,
                force: false,
            })
            .unwrap();
            let signer = ReceiptSigner::from_pem_file(&self.dir.path().join(format!("{id}.key"))).unwrap();
            let cert = pem::load_certificates(&self.dir.path().join(format!("{id}.crt"))).unwrap().remove(0);
            (signer, cert)
        }
    }

    fn entry(target: &str, seq: u64, kind: EntryOutcomeKind) -> Outcome {
        Outcome::Entry(EntryOutcome {
            target: Target::parse(target).unwrap(),
            seq: Seq::new(seq).unwrap(),
            file: Some((FileName::parse("openssl.deb").unwrap(), FileHash::from_digest([7; 32]))),
            kind,
        })
    }

    fn receipt(client: &str, outcomes: Vec<Outcome>) -> Receipt {
        Receipt {
            client_id: ClientId::parse(client).unwrap(),
            number: 7,
            previous: Some(FileHash::from_digest([1; 32])),
            made: Published::parse("2026-12-02T09:00:00Z").unwrap(),
            outcomes,
        }
    }

    fn web_receipt(client: &str) -> Receipt {
        receipt(
            client,
            vec![
                entry("group:web", 42, EntryOutcomeKind::Installed),
                entry("all", 3, EntryOutcomeKind::HookFailed { attempt: 2, allowed: 4 }),
                Outcome::Alarm { name: AlarmName::parse("stale").unwrap(), raised: true },
            ],
        )
    }

    #[test]
    fn a_receipt_signed_with_an_fts_keygen_key_checks_against_its_certificate() {
        let hosts = Hosts::new();
        let (signer, cert) = hosts.client("web-01", &["web"]);
        assert_eq!(signer.scheme(), ReceiptScheme::EcdsaP256Sha256);
        let signed = signer.sign(&web_receipt("web-01")).unwrap();
        // Through the wire and back, as the server gets it.
        let signed: SignedReceipt = serde_json::from_str(&serde_json::to_string(&signed).unwrap()).unwrap();
        let checked = check_receipt(&signed, &cert).unwrap();
        assert_eq!(checked.receipt(), &web_receipt("web-01"));
        assert_eq!(checked.signed(), &signed);
        assert_eq!(checked.hash(), receipt_hash(&web_receipt("web-01").to_bytes()));
        assert_eq!(checked.identity().id.as_str(), "web-01");
        assert_eq!(verify_stored_receipt(&signed, &cert), Ok(checked.clone()));
        assert_eq!(checked.into_signed(), signed);
        assert!(!format!("{signer:?}").contains("key:"), "Debug shows the scheme only");
    }

    #[test]
    fn an_altered_byte_of_the_receipt_or_its_signature_fails() {
        let hosts = Hosts::new();
        let (signer, cert) = hosts.client("web-01", &["web"]);
        let signed = signer.sign(&web_receipt("web-01")).unwrap();
        for at in [0, 20, signed.bytes.len() - 2] {
            let mut altered = signed.clone();
            altered.bytes[at] ^= 1;
            assert_eq!(check_receipt(&altered, &cert), Err(ReceiptError::BadSignature), "byte {at}");
        }
        let mut altered = signed.clone();
        let last = altered.signature.len() - 1;
        altered.signature[last] ^= 1;
        assert_eq!(check_receipt(&altered, &cert), Err(ReceiptError::BadSignature));
        let mut appended = signed.clone();
        appended.bytes.extend_from_slice(b"reboot-required\n");
        assert_eq!(check_receipt(&appended, &cert), Err(ReceiptError::BadSignature));

        let mut rescheme = signed;
        for scheme in [ReceiptScheme::EcdsaP384Sha384, ReceiptScheme::Ed25519, ReceiptScheme::RsaPssSha256] {
            rescheme.scheme = scheme;
            let err = check_receipt(&rescheme, &cert).unwrap_err();
            assert_eq!(err, ReceiptError::UnsupportedScheme { scheme, key: "an EC P-256 key" });
            assert_eq!(err.to_string(), format!("unsupported receipt scheme {scheme} for an EC P-256 key"));
        }
    }

    #[test]
    fn a_receipt_signed_by_one_host_fails_with_another_hosts_certificate() {
        let hosts = Hosts::new();
        let (web_01, _) = hosts.client("web-01", &["web"]);
        let (_, web_02_cert) = hosts.client("web-02", &["web"]);
        let signed = web_01.sign(&web_receipt("web-01")).unwrap();
        let err = check_receipt(&signed, &web_02_cert).unwrap_err();
        assert_eq!(err, ReceiptError::BadSignature);
        assert_eq!(err.to_string(), "the receipt's signature does not verify with the certificate's key");
    }

    #[test]
    fn a_receipt_naming_another_host_fails_on_identity_even_when_its_signature_verifies() {
        let hosts = Hosts::new();
        let (web_02, web_02_cert) = hosts.client("web-02", &["web"]);
        let signed = web_02.sign(&web_receipt("web-01")).unwrap();
        let err = check_receipt(&signed, &web_02_cert).unwrap_err();
        assert_eq!(err.to_string(), "receipt 7 names client web-01 but the certificate is web-02's");
        assert!(matches!(err, ReceiptError::WrongClient { number: 7, .. }));
    }

    #[test]
    fn a_target_outside_the_hosts_identity_fails_and_names_its_targets() {
        let hosts = Hosts::new();
        let (signer, cert) = hosts.client("web-01", &["web"]);
        for target in ["web-01", "all", "group:web"] {
            let signed =
                signer.sign(&receipt("web-01", vec![entry(target, 1, EntryOutcomeKind::Withdrawn)])).unwrap();
            assert!(check_receipt(&signed, &cert).is_ok(), "{target}");
        }
        for target in ["group:db", "web-02"] {
            let outcomes = vec![
                entry("group:web", 1, EntryOutcomeKind::Installed),
                entry(target, 3, EntryOutcomeKind::Refused { reason: RejectReason::WrongTarget }),
            ];
            let signed = signer.sign(&receipt("web-01", outcomes)).unwrap();
            let err = check_receipt(&signed, &cert).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "receipt 7 reports target {target}, which is not one of web-01's targets (web-01, all, group:web)"
                )
            );
        }
    }

    /// A self-signed certificate of `id` for `key`, with clientAuth unless `eku` is
    /// empty, valid from `not_before` to `not_after` (years).
    fn self_signed(
        key: &KeyPair,
        id: &str,
        eku: Vec<ExtendedKeyUsagePurpose>,
        years: (i32, i32),
    ) -> CertificateDer<'static> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, id);
        params.extended_key_usages = eku;
        params.not_before = rcgen::date_time_ymd(years.0, 1, 1);
        params.not_after = rcgen::date_time_ymd(years.1, 1, 1);
        params.self_signed(key).unwrap().der().clone()
    }

    fn signer_of(key: &KeyPair) -> ReceiptSigner {
        ReceiptSigner::from_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))).unwrap()
    }

    #[test]
    fn a_receipt_still_checks_after_its_certificate_expired_because_no_time_is_read() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let expired = self_signed(&key, "web-01", vec![ExtendedKeyUsagePurpose::ClientAuth], (2019, 2020));
        let signed = signer_of(&key).sign(&receipt("web-01", vec![Outcome::RebootRequired])).unwrap();
        assert!(verify_stored_receipt(&signed, &expired).is_ok());
    }

    #[test]
    fn a_certificate_that_is_not_a_clients_fails_after_the_signature_verifies() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let not_a_client =
            self_signed(&key, "web-01", vec![ExtendedKeyUsagePurpose::ServerAuth], (2020, 2040));
        let signed = signer_of(&key).sign(&receipt("web-01", vec![Outcome::RebootRequired])).unwrap();
        let err = check_receipt(&signed, &not_a_client).unwrap_err();
        assert_eq!(err, ReceiptError::Identity(crate::IdentityError::NoClientAuth));
        let garbage = CertificateDer::from(b"not a certificate".to_vec());
        assert!(matches!(check_receipt(&signed, &garbage), Err(ReceiptError::Certificate(_))));
    }

    #[test]
    fn signed_bytes_that_are_not_a_receipt_are_malformed() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = self_signed(&key, "web-01", vec![ExtendedKeyUsagePurpose::ClientAuth], (2020, 2040));
        let signer = signer_of(&key);
        let bytes = b"fts-receipt-v1\nweb-01\n07\n".to_vec();
        let signature = signer.signer.sign(&signed_message(&bytes)).unwrap();
        let signed = SignedReceipt { bytes, scheme: signer.scheme(), signature };
        let err = check_receipt(&signed, &cert).unwrap_err();
        assert!(
            matches!(&err, ReceiptError::Malformed(ProtoError::BadReceipt { detail }) if detail.starts_with("line 3")),
            "{err:?}"
        );
    }

    #[test]
    fn an_invalid_receipt_is_never_signed() {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let signer = signer_of(&key);
        let mut zero = receipt("web-01", vec![Outcome::RebootRequired]);
        zero.number = 0;
        let none = receipt("web-01", Vec::new());
        let known_as_other = receipt(
            "web-01",
            vec![entry("all", 1, EntryOutcomeKind::Held { reason: RejectReason::Other("signature".into()) })],
        );
        for bad in [zero, none, known_as_other] {
            let err = signer.sign(&bad).unwrap_err();
            assert!(matches!(err, ReceiptError::Invalid { .. }), "{err:?}");
            assert!(err.to_string().starts_with("refusing to sign receipt"), "{err}");
        }
    }

    #[test]
    fn a_file_that_holds_no_usable_key_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web-01.key");
        std::fs::write(&path, pem::encode("PRIVATE KEY", b"\x30\x03\x02\x01\x00")).unwrap();
        let err = ReceiptSigner::from_pem_file(&path).unwrap_err().to_string();
        assert!(err.contains("web-01.key") && err.contains("not a key that can sign receipts"), "{err}");
        std::fs::write(&path, "").unwrap();
        assert!(ReceiptSigner::from_pem_file(&path).unwrap_err().to_string().contains("web-01.key"));
    }

    #[test]
    fn the_prefix_can_never_begin_a_tls_certificate_verify_and_ends_with_a_zero_byte() {
        assert_eq!(RECEIPT_SIGNING_PREFIX.len(), 20);
        assert_ne!(RECEIPT_SIGNING_PREFIX[0], b' ', "TLS 1.3 signs 64 spaces first");
        assert_ne!(RECEIPT_SIGNING_PREFIX[0], 1, "TLS 1.2 signs a ClientHello first");
        assert_eq!(RECEIPT_SIGNING_PREFIX.iter().position(|&b| b == 0), Some(19));
        assert!(signed_message(b"x").starts_with(RECEIPT_SIGNING_PREFIX));
    }

    /// `/usr/bin/openssl` in `dir`, or `None` (a skip, but under CI a failure).
    fn openssl(dir: &Path, args: &[&str]) -> Option<()> {
        let path = Path::new("/usr/bin/openssl");
        if !path.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "openssl is required under CI but /usr/bin/openssl is missing"
            );
            eprintln!("skipping: /usr/bin/openssl not found");
            return None;
        }
        let out = Command::new(path).args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Some(())
    }

    /// A key made by openssl with `genkey` arguments, as `key.pem`, and a self-signed
    /// client certificate for it, as `cert.pem`.
    fn openssl_host(dir: &Path, genkey: &[&str]) -> Option<(PathBuf, CertificateDer<'static>)> {
        std::fs::write(
            dir.join("client.cnf"),
            "[req]\ndistinguished_name = dn\nx509_extensions = client\nprompt = no\n[dn]\nCN = web-01\nO = web\n\
             [client]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n\
             extendedKeyUsage = clientAuth\n",
        )
        .unwrap();
        openssl(dir, genkey)?;
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-x509",
                "-config",
                "client.cnf",
                "-key",
                "key.pem",
                "-days",
                "2",
                "-out",
                "cert.pem",
            ],
        )?;
        let cert = pem::load_certificates(&dir.join("cert.pem")).unwrap().remove(0);
        Some((dir.join("key.pem"), cert))
    }

    #[test]
    fn keys_made_by_openssl_sign_receipts_in_every_scheme() {
        let cases: [(&[&str], &str, ReceiptScheme); 4] = [
            (&["genpkey", "-algorithm", "ed25519", "-out", "key.pem"], "PRIVATE KEY", ReceiptScheme::Ed25519),
            (
                &["genrsa", "-traditional", "-out", "key.pem", "2048"],
                "RSA PRIVATE KEY",
                ReceiptScheme::RsaPssSha256,
            ),
            (
                &["ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", "key.pem"],
                "EC PRIVATE KEY",
                ReceiptScheme::EcdsaP384Sha384,
            ),
            (
                &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem"],
                "EC PRIVATE KEY",
                ReceiptScheme::EcdsaP256Sha256,
            ),
        ];
        for (genkey, label, scheme) in cases {
            let dir = tempfile::tempdir().unwrap();
            let Some((key, cert)) = openssl_host(dir.path(), genkey) else { return };
            let pem_text = std::fs::read_to_string(&key).unwrap();
            // The PEM label openssl wrote: the key format this case is about.
            assert!(pem_text.starts_with(&format!("-----BEGIN {label}-----")), "{scheme}: {pem_text:.40}");
            let signer = ReceiptSigner::from_pem_file(&key).unwrap();
            assert_eq!(signer.scheme(), scheme);
            let signed = signer.sign(&web_receipt("web-01")).unwrap();
            let checked = check_receipt(&signed, &cert).unwrap();
            assert_eq!(checked.identity().groups, [GroupName::parse("web").unwrap()]);
            let mut altered = signed.clone();
            altered.bytes[30] ^= 1;
            assert_eq!(check_receipt(&altered, &cert), Err(ReceiptError::BadSignature), "{scheme}");
            let mut rescheme = signed;
            rescheme.scheme = if scheme == ReceiptScheme::Ed25519 {
                ReceiptScheme::RsaPssSha256
            } else {
                ReceiptScheme::Ed25519
            };
            assert!(
                matches!(check_receipt(&rescheme, &cert), Err(ReceiptError::UnsupportedScheme { .. })),
                "{scheme}"
            );
        }
    }
}
