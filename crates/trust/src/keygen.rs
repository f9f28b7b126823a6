//! Provisioning credentials (`fts keygen`): the CA, the server's and clients'
//! certificates, and the release signing key. Library functions taking plain option
//! structs; the CLI only parses flags and prints the returned summary.
//!
//! Every certificate has an ECDSA P-256 key, a random 16-byte serial (never rcgen's
//! default, which repeats for the same key and would make CRLs ambiguous) and a real
//! validity period: from 5 minutes ago (clock skew between machines) for `days` days.
//! The profiles are fixed here, never taken from input:
//!
//! | file | profile |
//! |---|---|
//! | `ca.crt` | CN "fts CA", CA with path length 0, keyCertSign + cRLSign |
//! | `server.crt` | CN = first name, each name a DNS or IP SAN, serverAuth only, digitalSignature, CA=false |
//! | `<id>.crt` | CN = id, one O per group, clientAuth only, digitalSignature, CA=false, no SAN |
//!
//! Private keys are written 0600 and no file is replaced without `force`: every
//! destination is checked before anything is generated, so a refused command leaves
//! the folder as it was. Each issued certificate is recorded in the index beside the
//! CA ([`crate::issued`]).
//!
//! Enrolment by CSR (`fts keygen csr` / `sign`, same client profile) is in
//! [`crate::enrol`]; revocation and CRLs (`fts keygen revoke` / `crl`) in
//! [`crate::revocation`].

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use fts_proto::{ClientId, GroupName, KeyId, Origin};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::files::{MAX_CREDENTIAL_FILE, Mode, read_bounded, refuse_existing, write_atomic};
use crate::issued::{self, IssuedKind, IssuedRecord, Serial};
use crate::note::TimestampKey;
use crate::pem;
use crate::rotation::{NextKey, commitment};
use crate::signing::SigningKey;
use crate::x509_subject::{SubjectAttribute, sign_with_subject};

/// The CA certificate's file name in the CA folder.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA private key's file name (mode 0600, signing host only).
pub const CA_KEY_FILE: &str = "ca.key";
/// The server certificate's file name.
pub const SERVER_CERT_FILE: &str = "server.crt";
/// The server private key's file name (mode 0600).
pub const SERVER_KEY_FILE: &str = "server.key";
/// The release signing key's file name (mode 0600, signing host only).
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// The release public key's file name, the one hosts trust (`--trust`).
pub const SIGNING_PUB_FILE: &str = "signing.pub";
/// The next release key's file name (mode 0600): made with the signing key, kept
/// offline apart from it, used only to rotate to it (docs/OPERATIONS.md).
pub const NEXT_KEY_FILE: &str = "next.key";
/// The file beside the signing key that names its log: the origin and a newline.
pub const LOG_ORIGIN_FILE: &str = "log-origin";
/// The timestamp key's file name (mode 0600, timestamp machine only).
pub const TIMESTAMP_KEY_FILE: &str = "timestamp.key";
/// The timestamp public key's file name, given to every host.
pub const TIMESTAMP_PUB_FILE: &str = "timestamp.pub";

/// How far back `not_before` is set, so a machine whose clock is a little behind
/// accepts a certificate made a moment ago.
const CLOCK_SKEW: Duration = Duration::minutes(5);

const CA_COMMON_NAME: &str = "fts CA";

/// `fts keygen ca`
#[derive(Debug, Clone)]
pub struct CaOptions {
    /// The folder the CA is written to (`--dir`).
    pub dir: PathBuf,
    /// Validity of the CA certificate, in days.
    pub days: u32,
    /// Replace an existing CA (`--force`).
    pub force: bool,
}

/// `fts keygen server --name N...`
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The folder with the CA, where the server's files are written (`--dir`).
    pub dir: PathBuf,
    /// DNS names or IP addresses; the first is also the CN.
    pub names: Vec<String>,
    /// Validity of the certificate, in days.
    pub days: u32,
    /// Replace existing files (`--force`).
    pub force: bool,
}

/// `fts keygen client --id ID [--group G]...`
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The folder with the CA, where the host's files are written (`--dir`).
    pub dir: PathBuf,
    /// The host's client id, the certificate's CN.
    pub id: ClientId,
    /// The groups the host belongs to, each an O value.
    pub groups: Vec<GroupName>,
    /// Validity of the certificate, in days.
    pub days: u32,
    /// Replace existing files (`--force`).
    pub force: bool,
}

/// `fts keygen signing`
#[derive(Debug, Clone)]
pub struct SigningOptions {
    /// The folder the key pair and `log-origin` are written to (`--dir`).
    pub dir: PathBuf,
    /// The origin of the log the key signs checkpoints of (`--log-origin`); `None`:
    /// `fts.local/` and 16 random lower-case hex digits.
    pub log_origin: Option<Origin>,
    /// Replace an existing key and `log-origin` (`--force`).
    pub force: bool,
}

/// `fts keygen timestamp`
#[derive(Debug, Clone)]
pub struct TimestampOptions {
    /// The folder the key pair is written to (`--dir`).
    pub dir: PathBuf,
    /// Replace an existing key (`--force`).
    pub force: bool,
}

/// What a keygen command wrote, for the CLI to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// What the certificate is for.
    pub kind: IssuedKind,
    /// Where the certificate was written.
    pub cert_path: PathBuf,
    /// Where its private key was written (mode 0600).
    pub key_path: PathBuf,
    /// The client id, the server's names joined by `,`, or the CA's CN.
    pub subject: String,
    /// The certificate's serial, as recorded in `issued.tsv`.
    pub serial: Serial,
    /// The end of the certificate's validity.
    pub not_after: OffsetDateTime,
}

/// What `fts keygen signing` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyWritten {
    /// Where the private key was written (mode 0600).
    pub key_path: PathBuf,
    /// Where the public key was written, for the hosts.
    pub public_key_path: PathBuf,
    /// The key's id, which entries signed with it carry.
    pub key_id: KeyId,
    /// Where the log's origin was written.
    pub origin_path: PathBuf,
    /// Where the next key was written (mode 0600), to be moved offline.
    pub next_key_path: PathBuf,
    /// The next key's id.
    pub next_key_id: KeyId,
    /// The origin of the log the key signs.
    pub log_origin: Origin,
}

/// What `fts keygen timestamp` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampKeyWritten {
    /// Where the private key was written (mode 0600).
    pub key_path: PathBuf,
    /// Where the public key was written, for the hosts.
    pub public_key_path: PathBuf,
    /// The key's id.
    pub key_id: KeyId,
    /// The key's note name, `fts-timestamp/{key id}`.
    pub name: String,
}

/// The CA as loaded from its folder, able to sign certificates and CRLs.
pub struct CertificateAuthority {
    dir: PathBuf,
    certificate: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate's subject key identifier, reused as the authority key
    /// identifier of what it signs.
    key_id_method: KeyIdMethod,
}

impl CertificateAuthority {
    /// Loads `ca.crt` and `ca.key` from `dir`. If either is missing, the error tells
    /// the operator to run `fts keygen ca`.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let (cert_path, key_path) = (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE));
        if !cert_path.exists() || !key_path.exists() {
            return Err(Error::MissingCa { dir: dir.to_owned() });
        }
        let certificate = pem::load_certificates(&cert_path)?.swap_remove(0);
        let key_pem = Zeroizing::new(read_bounded(&key_path, MAX_CREDENTIAL_FILE)?);
        let key_text =
            std::str::from_utf8(&key_pem).map_err(|_| Error::bad_file(&key_path, "not PEM text"))?;
        let key = KeyPair::from_pem(key_text)
            .map_err(|e| Error::bad_file_because(&key_path, "not a usable CA private key", e))?;

        let (_, parsed) = X509Certificate::from_der(&certificate)
            // x509-parser's errors quote their own cause: its text is the leaf.
            .map_err(|e| Error::bad_file_because(&cert_path, "not an X.509 certificate", e.to_string()))?;
        if parsed.public_key().subject_public_key.data.as_ref() != rcgen::PublicKeyData::der_bytes(&key) {
            return Err(Error::bad_file(
                &key_path,
                format!("does not match the CA certificate {}", cert_path.display()),
            ));
        }
        if !parsed.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca) {
            return Err(Error::bad_file(
                &cert_path,
                "not a CA certificate (basicConstraints CA=true is missing)",
            ));
        }
        let key_id_method = parsed
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(ski) => Some(KeyIdMethod::PreSpecified(ski.0.to_vec())),
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        let issuer = Issuer::from_ca_cert_der(&certificate, key)
            .map_err(|e| Error::bad_file_because(&cert_path, "cannot use this CA certificate", e))?;
        Ok(CertificateAuthority { dir: dir.to_owned(), certificate, issuer, key_id_method })
    }

    /// The CA folder it was loaded from, where its index and CRL live.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate, as DER.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The rcgen issuer, to sign certificates or CRLs with a profile of one's own
    /// (tests; `fts keygen sign`).
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    pub(crate) fn key_id_method(&self) -> &KeyIdMethod {
        &self.key_id_method
    }
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateAuthority").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// `fts keygen ca`: a new self-signed CA in `ca.crt` / `ca.key`.
pub fn ca(opts: &CaOptions) -> Result<Issued, Error> {
    let (cert_path, key_path) = (opts.dir.join(CA_CERT_FILE), opts.dir.join(CA_KEY_FILE));
    prepare(&opts.dir, &[&cert_path, &key_path], opts.force)?;

    let (mut params, serial) = base_params(opts.days)?;
    params.distinguished_name.push(DnType::CommonName, CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let not_after = params.not_after;

    let key = new_key()?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    let ca = CertifiedIssuer::self_signed(params, key)?;
    write_pair(&cert_path, &ca.pem(), &key_path, &key_pem, opts.force)?;
    record(
        &opts.dir,
        IssuedKind::Ca,
        CA_COMMON_NAME.into(),
        Vec::new(),
        serial,
        not_after,
        cert_path,
        key_path,
    )
}

/// `fts keygen server`: `server.crt` / `server.key`, signed by the CA in the same folder.
pub fn server(opts: &ServerOptions) -> Result<Issued, Error> {
    if opts.names.is_empty() {
        return Err(Error::NoServerNames);
    }
    let sans = opts.names.iter().map(|n| server_name_san(n)).collect::<Result<Vec<_>, _>>()?;
    let ca = CertificateAuthority::load(&opts.dir)?;
    let (cert_path, key_path) = (opts.dir.join(SERVER_CERT_FILE), opts.dir.join(SERVER_KEY_FILE));
    prepare(&opts.dir, &[&cert_path, &key_path], opts.force)?;

    let (mut params, serial) = leaf_params(opts.days)?;
    params.distinguished_name.push(DnType::CommonName, opts.names[0].as_str());
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let subject = opts.names.join(",");
    let not_after = params.not_after;
    let key = new_key()?;
    let cert = params.signed_by(&key, ca.issuer())?;
    let key_pem = Zeroizing::new(key.serialize_pem());
    write_pair(&cert_path, &cert.pem(), &key_path, &key_pem, opts.force)?;
    record(ca.dir(), IssuedKind::Server, subject, Vec::new(), serial, not_after, cert_path, key_path)
}

/// `fts keygen client`: `<id>.crt` / `<id>.key`, signed by the CA in the same folder.
pub fn client(opts: &ClientOptions) -> Result<Issued, Error> {
    let ca = CertificateAuthority::load(&opts.dir)?;
    let cert_path = opts.dir.join(format!("{}.crt", opts.id));
    let key_path = opts.dir.join(format!("{}.key", opts.id));
    prepare(&opts.dir, &[&cert_path, &key_path], opts.force)?;

    let (mut params, serial) = leaf_params(opts.days)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let mut groups = opts.groups.clone();
    groups.sort();
    groups.dedup();
    let mut subject = vec![(SubjectAttribute::CommonName, opts.id.as_str())];
    subject.extend(groups.iter().map(|g| (SubjectAttribute::Organization, g.as_str())));

    let not_after = params.not_after;
    let key = new_key()?;
    let cert = sign_with_subject(&params, &subject, &key, ca.issuer())?;
    // The certificate must read back as exactly what was asked for.
    let identity = crate::identity::client_identity(&cert)?;
    if identity.id != opts.id || identity.groups != groups || !identity.ignored_organizations.is_empty() {
        return Err(Error::CertificateEncoding(
            "the new client certificate does not read back as requested".into(),
        ));
    }
    let key_pem = Zeroizing::new(key.serialize_pem());
    write_pair(&cert_path, &pem::encode("CERTIFICATE", &cert), &key_path, &key_pem, opts.force)?;
    record(ca.dir(), IssuedKind::Client, opts.id.to_string(), groups, serial, not_after, cert_path, key_path)
}

/// `fts keygen signing`: `signing.key` (PKCS#8 v1, 0600), `signing.pub` (SPKI) and
/// `log-origin` (the origin and a newline, 0644). None is written if one exists,
/// unless `force`.
pub fn signing(opts: &SigningOptions) -> Result<SigningKeyWritten, Error> {
    let key_path = opts.dir.join(SIGNING_KEY_FILE);
    let public_key_path = opts.dir.join(SIGNING_PUB_FILE);
    let origin_path = opts.dir.join(LOG_ORIGIN_FILE);
    prepare(&opts.dir, &[&key_path, &public_key_path, &origin_path], opts.force)?;
    let log_origin = match &opts.log_origin {
        Some(origin) => origin.clone(),
        None => random_origin()?,
    };
    let next_key_path = opts.dir.join(NEXT_KEY_FILE);
    prepare(&opts.dir, &[&next_key_path], opts.force)?;
    let key = SigningKey::generate()?;
    let next = SigningKey::generate()?;
    key.save(&key_path, opts.force)?;
    next.save(&next_key_path, opts.force)?;
    let next_key = NextKey { next: commitment(&next.public_key()), rotation: 0 };
    write_trust_file(&public_key_path, &key.public_key(), &next_key, opts.force)?;
    write_atomic(&origin_path, format!("{log_origin}\n").as_bytes(), Mode::Public, opts.force)?;
    Ok(SigningKeyWritten {
        key_path,
        public_key_path,
        key_id: key.key_id(),
        origin_path,
        log_origin,
        next_key_path,
        next_key_id: next.key_id(),
    })
}

/// Writes a host's trust file: the key's PEM block, then its commitment lines
/// ([`NextKey::to_lines`]), which releases that do not know them skip.
pub fn write_trust_file(
    path: &Path,
    key: &crate::PublicKey,
    next: &NextKey,
    force: bool,
) -> Result<(), Error> {
    let text = format!("{}{}", key.to_pem(), next.to_lines());
    write_atomic(path, text.as_bytes(), Mode::Public, force)
}

/// `fts.local/` and 16 random lower-case hex digits: a log name that no other log has.
pub fn random_origin() -> Result<Origin, Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(Error::Random)?;
    // Not input: `fts.local/` and hex digits always meet the origin rules.
    Ok(Origin::parse(&format!("fts.local/{}", hex::encode(bytes)))
        .expect("fts.local/<hex> is a valid origin"))
}

/// `fts keygen timestamp`: `timestamp.key` (PKCS#8 v1, 0600) and `timestamp.pub`
/// (SPKI), neither written if one exists, unless `force`.
pub fn timestamp(opts: &TimestampOptions) -> Result<TimestampKeyWritten, Error> {
    let key_path = opts.dir.join(TIMESTAMP_KEY_FILE);
    let public_key_path = opts.dir.join(TIMESTAMP_PUB_FILE);
    prepare(&opts.dir, &[&key_path, &public_key_path], opts.force)?;
    let key = TimestampKey::generate()?;
    key.save(&key_path, opts.force)?;
    key.public().save(&public_key_path, opts.force)?;
    Ok(TimestampKeyWritten { key_path, public_key_path, key_id: key.key_id(), name: key.name() })
}

/// Creates the folder (0700: it holds private keys; an existing folder keeps its
/// mode) and refuses existing destinations before any key is made.
pub(crate) fn prepare(dir: &Path, destinations: &[&Path], force: bool) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Write { path: dir.to_owned(), source })?;
    refuse_existing(destinations, force)
}

pub(crate) fn new_key() -> Result<KeyPair, Error> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}

/// Serial, validity and an empty subject: what every certificate gets. Returns the
/// serial too, for the index.
fn base_params(days: u32) -> Result<(CertificateParams, Serial), Error> {
    if days == 0 {
        return Err(Error::ZeroDays { what: "certificate validity (--days)" });
    }
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let serial = Serial::random()?;
    params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + Duration::days(i64::from(days));
    Ok((params, serial))
}

/// The common part of server and client certificates.
pub(crate) fn leaf_params(days: u32) -> Result<(CertificateParams, Serial), Error> {
    let (mut params, serial) = base_params(days)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    Ok((params, serial))
}

/// The key first: a certificate without its key is useless, a key without its
/// certificate is harmless.
fn write_pair(
    cert_path: &Path,
    cert_pem: &str,
    key_path: &Path,
    key_pem: &str,
    force: bool,
) -> Result<(), Error> {
    write_atomic(key_path, key_pem.as_bytes(), Mode::Secret, force)?;
    write_atomic(cert_path, cert_pem.as_bytes(), Mode::Public, force)
}

#[allow(clippy::too_many_arguments)]
fn record(
    ca_dir: &Path,
    kind: IssuedKind,
    subject: String,
    groups: Vec<GroupName>,
    serial: Serial,
    not_after: OffsetDateTime,
    cert_path: PathBuf,
    key_path: PathBuf,
) -> Result<Issued, Error> {
    let record = IssuedRecord {
        serial: serial.clone(),
        kind,
        subject: subject.clone(),
        not_after,
        issued_at: OffsetDateTime::now_utc(),
        groups: Some(groups),
    };
    issued::append(ca_dir, &record)?;
    Ok(Issued { kind, cert_path, key_path, subject, serial, not_after })
}

/// A `--name` as a subject alternative name: an IP address if it parses as one,
/// else a DNS name, which must be syntactically valid.
fn server_name_san(name: &str) -> Result<SanType, Error> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = || Error::InvalidServerName { name: name.to_owned() };
    rustls_pki_types::DnsName::try_from(name).map_err(|_| invalid())?;
    Ok(SanType::DnsName(name.try_into().map_err(|_| invalid())?))
}
