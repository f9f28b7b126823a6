//! Enrolment by certificate signing request: `fts keygen csr` on the host makes a key
//! that never leaves it and a CSR; `fts keygen sign` on the CA host turns the CSR into
//! a client certificate.
//!
//! **The signer decides the whole profile.** A CSR is a request, written by whoever
//! sent it. [`sign`] takes exactly two things from it, after checking its
//! self-signature: the public key (ECDSA P-256) and the subject's single Common Name,
//! which must be a valid client id. Everything else it asks for (CA=true, SANs,
//! serverAuth or any other key usage, O values that would become groups, any other
//! subject attribute or extension) is ignored, and listed in
//! [`SignedCsr::ignored`] so the operator sees what was asked. The certificate gets
//! the same profile as `fts keygen client`: not a CA, clientAuth only,
//! digitalSignature, no SAN, CN = the id, one O per `--group` given to `sign`, a random
//! serial and a real validity period.
//!
//! rcgen's `CertificateSigningRequestParams::from_der` is deliberately not used: it
//! copies the requested extensions into the parameters it returns (and refuses CSRs
//! with extensions it does not know), so signing its output would issue a CA
//! certificate to whoever asked for one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fts_proto::{ClientId, GroupName};
use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, PKCS_ECDSA_P256_SHA256};
use rustls_pki_types::CertificateSigningRequestDer;
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_ORGANIZATION_NAME};
use x509_parser::prelude::FromDer;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::files::{MAX_CREDENTIAL_FILE, Mode, read_bounded, write_atomic};
use crate::issued::{self, IssuedKind, IssuedRecord, Serial};
use crate::keygen::{CertificateAuthority, leaf_params, new_key, prepare};
use crate::pem;
use crate::revocation::CaLock;
use crate::x509_subject::{SubjectAttribute, sign_with_subject};

/// `fts keygen csr --id ID`
#[derive(Debug, Clone)]
pub struct CsrOptions {
    /// The folder the key and CSR are written to (`--dir`).
    pub dir: PathBuf,
    /// The host's client id, the CSR's only CN.
    pub id: ClientId,
    /// Replace existing files (`--force`).
    pub force: bool,
}

/// What `fts keygen csr` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrWritten {
    /// The client id the CSR asks for.
    pub id: ClientId,
    /// `<id>.key`, mode 0600: stays on the host.
    pub key_path: PathBuf,
    /// `<id>.csr`: goes to the CA host.
    pub csr_path: PathBuf,
}

/// `fts keygen sign FILE.csr [--group G]...`
#[derive(Debug, Clone)]
pub struct SignOptions {
    /// The CA folder; the certificate is written here as `<id>.crt`.
    pub dir: PathBuf,
    /// The CSR file to sign.
    pub csr: PathBuf,
    /// The groups to give the host (each an O value); what the CSR asked for is ignored.
    pub groups: Vec<GroupName>,
    /// Validity of the certificate, in days.
    pub days: u32,
    /// Replace an existing certificate (`--force`).
    pub force: bool,
}

/// What `fts keygen sign` issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCsr {
    /// The client id: the CSR's CN, checked.
    pub id: ClientId,
    /// The groups given to `sign`, sorted, without duplicates.
    pub groups: Vec<GroupName>,
    /// Where the certificate was written (`<id>.crt` in the CA folder).
    pub cert_path: PathBuf,
    /// The certificate's serial, as recorded in `issued.tsv`.
    pub serial: Serial,
    /// The start of the certificate's validity.
    pub not_before: OffsetDateTime,
    /// The end of the certificate's validity.
    pub not_after: OffsetDateTime,
    /// Everything the CSR asked for beyond its CN and key, none of it granted, in
    /// words an operator reads (`CA`, `SAN DNS:evil.example`, `serverAuth`, `O=admin`).
    pub ignored: Vec<String>,
    /// `<id>.key` in the CA folder, when one is there (left by an earlier
    /// `fts keygen client`): it does not belong to the new certificate.
    pub stale_key: Option<PathBuf>,
}

/// `fts keygen csr`: a new ECDSA P-256 key `<id>.key` (0600) and a CSR `<id>.csr` whose
/// subject is CN = id and which asks for nothing else (the signer decides the rest).
pub fn csr(opts: &CsrOptions) -> Result<CsrWritten, Error> {
    let key_path = opts.dir.join(format!("{}.key", opts.id));
    let csr_path = opts.dir.join(format!("{}.csr", opts.id));
    prepare(&opts.dir, &[&key_path, &csr_path], opts.force)?;

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, opts.id.as_str());
    let key = new_key()?;
    let request = params.serialize_request(&key)?;
    let csr_pem = request.pem()?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    // The key first: a CSR without its key is useless, a key without a CSR harmless.
    write_atomic(&key_path, key_pem.as_bytes(), Mode::Secret, opts.force)?;
    write_atomic(&csr_path, csr_pem.as_bytes(), Mode::Public, opts.force)?;
    Ok(CsrWritten { id: opts.id.clone(), key_path, csr_path })
}

/// `fts keygen sign`: checks the CSR in `opts.csr` and issues `<id>.crt` in the CA
/// folder with the signer's own profile (module docs), recorded in the issued index.
pub fn sign(opts: &SignOptions) -> Result<SignedCsr, Error> {
    let request = read_csr(&opts.csr)?;
    let mut groups = opts.groups.clone();
    groups.sort();
    groups.dedup();

    let ca = CertificateAuthority::load(&opts.dir)?;
    let cert_path = opts.dir.join(format!("{}.crt", request.id));
    let _lock = CaLock::acquire(&opts.dir)?;
    prepare(&opts.dir, &[&cert_path], opts.force)?;

    let (mut params, serial) = leaf_params(opts.days)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let mut subject = vec![(SubjectAttribute::CommonName, request.id.as_str())];
    subject.extend(groups.iter().map(|g| (SubjectAttribute::Organization, g.as_str())));
    let (not_before, not_after) = (params.not_before, params.not_after);
    let cert = sign_with_subject(&params, &subject, &request.public_key, ca.issuer())?;

    // What was issued must read back as exactly the signer's profile.
    let identity = crate::identity::client_identity(&cert)?;
    if identity.id != request.id || identity.groups != groups || !identity.ignored_organizations.is_empty() {
        return Err(Error::CertificateEncoding(
            "the new client certificate does not read back as issued".into(),
        ));
    }
    write_atomic(&cert_path, pem::encode("CERTIFICATE", &cert).as_bytes(), Mode::Public, opts.force)?;
    issued::append(
        ca.dir(),
        &IssuedRecord {
            serial: serial.clone(),
            kind: IssuedKind::Client,
            subject: request.id.to_string(),
            not_after,
            issued_at: OffsetDateTime::now_utc(),
            groups: Some(groups.clone()),
        },
    )?;
    let key_path = opts.dir.join(format!("{}.key", request.id));
    let stale_key = key_path.exists().then_some(key_path);
    Ok(SignedCsr {
        id: request.id,
        groups,
        cert_path,
        serial,
        not_before,
        not_after,
        ignored: request.ignored,
        stale_key,
    })
}

/// The parts of a CSR the signer uses, and a description of the rest.
#[derive(Debug)]
pub struct CsrRequest {
    /// The client id from the CSR's one CN, checked.
    pub id: ClientId,
    /// The key to certify; its self-signature was checked.
    pub public_key: CsrPublicKey,
    /// What the CSR asked for beyond its CN and key, escaped for printing; none of it is granted.
    pub ignored: Vec<String>,
}

/// An ECDSA P-256 public key taken from a CSR (the uncompressed point).
#[derive(Debug, Clone)]
pub struct CsrPublicKey(Vec<u8>);

impl rcgen::PublicKeyData for CsrPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// SubjectPublicKeyInfo of an ECDSA P-256 key up to the point: SEQUENCE, algorithm
/// id-ecPublicKey with the prime256v1 curve, BIT STRING of 66 bytes, no unused bits,
/// uncompressed point marker `04`.
const P256_SPKI_PREFIX: [u8; 27] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
    0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
];
const P256_SPKI_LEN: usize = 91;

/// Reads and checks a CSR file (PEM `CERTIFICATE REQUEST`, exactly one): it parses,
/// its self-signature verifies, its key is ECDSA P-256, its subject has exactly one
/// CN and that CN is a valid client id. Errors name the file and say what is wrong.
pub fn read_csr(path: &Path) -> Result<CsrRequest, Error> {
    let bytes = read_bounded(path, MAX_CREDENTIAL_FILE)?;
    let der: CertificateSigningRequestDer<'static> =
        pem::exactly_one_block(&bytes, path, "CERTIFICATE REQUEST")?;
    parse_csr(der.as_ref(), path)
}

fn parse_csr(der: &[u8], path: &Path) -> Result<CsrRequest, Error> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        // x509-parser's errors quote their own cause: its text is the leaf.
        .map_err(|e| {
            Error::bad_file_because(path, "not a valid certificate signing request", e.to_string())
        })?;
    if !rest.is_empty() {
        return Err(Error::bad_file(path, "trailing bytes after the certificate signing request"));
    }
    csr.verify_signature().map_err(|_| {
        Error::bad_file(
            path,
            "the request's self-signature does not verify: it was altered, or not signed by the key it carries",
        )
    })?;

    let spki = &csr.certification_request_info.subject_pki;
    if spki.raw.len() != P256_SPKI_LEN || !spki.raw.starts_with(&P256_SPKI_PREFIX) {
        return Err(Error::bad_file(
            path,
            format!(
                "the request's key is not an ECDSA P-256 key (algorithm {}): fts certificates use P-256 keys, \
                 as `fts keygen csr` or `openssl ecparam -name prime256v1 -genkey` make",
                spki.algorithm.algorithm
            ),
        ));
    }
    let public_key = CsrPublicKey(spki.subject_public_key.data.to_vec());

    let subject = &csr.certification_request_info.subject;
    let common_names: Vec<_> = subject.iter_common_name().collect();
    let common_name = match common_names.as_slice() {
        [] => {
            return Err(Error::bad_file(
                path,
                "the request has no common name (CN): it must be the host's client id",
            ));
        }
        [one] => one
            .as_str()
            .map_err(|_| Error::bad_file(path, "the request's common name (CN) is not a text string"))?,
        several => {
            return Err(Error::bad_file(
                path,
                format!(
                    "the request has {} common names (CN): exactly one, the host's client id, is allowed",
                    several.len()
                ),
            ));
        }
    };
    let id = ClientId::parse(common_name).map_err(|e| {
        Error::bad_file_because(path, "the request's common name is not a valid client id", e)
    })?;

    let mut ignored = Vec::new();
    for attr in subject.iter_attributes() {
        let oid = attr.attr_type();
        if *oid == OID_X509_COMMON_NAME {
            continue;
        }
        let value = attr.as_str().map(str::to_owned).unwrap_or_else(|_| hex::encode(attr.as_slice()));
        let name = if *oid == OID_X509_ORGANIZATION_NAME {
            "O".to_owned()
        } else {
            x509_parser::objects::oid2abbrev(oid, x509_parser::objects::oid_registry())
                .map(str::to_owned)
                .unwrap_or_else(|_| oid.to_id_string())
        };
        ignored.push(format!("{name}={value}"));
    }
    for attr in csr.certification_request_info.iter_attributes() {
        match attr.parsed_attribute() {
            ParsedCriAttribute::ExtensionRequest(request) => {
                for ext in &request.extensions {
                    describe_extension(ext.parsed_extension(), &ext.oid.to_id_string(), &mut ignored);
                }
            }
            ParsedCriAttribute::ChallengePassword(_) => ignored.push("challengePassword".into()),
            ParsedCriAttribute::UnsupportedAttribute => ignored.push(format!("attribute {}", attr.oid)),
        }
    }
    // What the CSR asked for is the requester's text, printed to the CA operator:
    // control characters escaped, so a CSR cannot rewrite the operator's screen.
    let ignored = ignored.iter().map(|asked| fts_proto::printable(asked)).collect();
    Ok(CsrRequest { id, public_key, ignored })
}

/// Adds what a requested extension asks for to `out`, leaving out what the signer's
/// profile gives anyway (CA:FALSE, clientAuth, digitalSignature).
fn describe_extension(ext: &ParsedExtension<'_>, oid: &str, out: &mut Vec<String>) {
    match ext {
        ParsedExtension::BasicConstraints(bc) if bc.ca => out.push("CA".into()),
        ParsedExtension::BasicConstraints(_) => {}
        ParsedExtension::SubjectAlternativeName(san) => {
            for name in &san.general_names {
                out.push(match name {
                    GeneralName::DNSName(dns) => format!("SAN DNS:{dns}"),
                    GeneralName::IPAddress(bytes) => match ip_address(bytes) {
                        Some(ip) => format!("SAN IP:{ip}"),
                        None => format!("SAN IP:{}", hex::encode(bytes)),
                    },
                    GeneralName::RFC822Name(email) => format!("SAN email:{email}"),
                    GeneralName::URI(uri) => format!("SAN URI:{uri}"),
                    other => format!("SAN {other}"),
                });
            }
        }
        ParsedExtension::ExtendedKeyUsage(eku) => {
            let named = [
                (eku.any, "anyExtendedKeyUsage"),
                (eku.server_auth, "serverAuth"),
                (eku.code_signing, "codeSigning"),
                (eku.email_protection, "emailProtection"),
                (eku.time_stamping, "timeStamping"),
                (eku.ocsp_signing, "OCSPSigning"),
            ];
            out.extend(named.iter().filter(|(asked, _)| *asked).map(|(_, name)| (*name).to_owned()));
            out.extend(eku.other.iter().map(|oid| format!("extended key usage {oid}")));
        }
        ParsedExtension::KeyUsage(ku) => {
            let asked = ku.to_string();
            let beyond: Vec<&str> =
                asked.split(", ").filter(|u| !u.is_empty() && *u != "Digital Signature").collect();
            if !beyond.is_empty() {
                out.push(format!("key usage {}", beyond.join(", ")));
            }
        }
        _ => out.push(format!("extension {oid}")),
    }
}

fn ip_address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
