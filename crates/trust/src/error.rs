//! The crate's errors, in one place so a reviewer sees every way trust can fail.
//!
//! [`Error`] is the one error of the crate's operations (files, keys, keygen, TLS
//! configuration). Four decisions that callers must tell apart get a small enum of
//! their own, each convertible into [`Error`] (but [`SessionRefused`]):
//!
//! - [`VerifyError`]: a signed statement was refused (`untrusted-key` vs `signature`
//!   in PROTOCOL.md section 3.1);
//! - [`IdentityError`]: a certificate breaks the identity rules of section 4;
//! - [`SessionRefused`]: a TLS session is refused after its handshake (section 1);
//! - [`ReceiptError`]: a host receipt was refused, or could not be signed
//!   ([`crate::receipt`]).
//!
//! Messages are lower-case, name the file when a file is involved, and say who is at
//! fault: the file (its contents), the operator (a flag or an existing file), the
//! peer (the client or its certificate), or this machine (I/O, randomness).
//!
//! A message never quotes its cause: the cause is the error's `source()`, and whoever
//! prints the error prints the chain ([`fts_proto::ErrorChain`]). The errors of
//! x509-parser, pkcs8 and spki quote their own causes, so a chain through them would
//! say a cause twice: they are kept as text, a leaf ([`Error::BadFile`]'s source, or
//! [`IdentityError::Malformed`]).

use std::io;
use std::path::PathBuf;

use fts_proto::{ClientId, KeyId, NameError, NoteError, Origin, ProtoError, ReceiptScheme, Target};

use crate::refusals::CertificateRefusal;

/// Everything that can go wrong in fts-trust outside the three decisions below.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// This machine could not read a file (missing, permissions, I/O).
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// This machine could not write a file.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file (or the folder it was to go in).
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The operator asked to write a file that exists, without `--force`.
    #[error("{} already exists: refusing to overwrite it without --force", path.display())]
    AlreadyExists {
        /// The file that exists.
        path: PathBuf,
    },
    /// The file was read but its contents are not what they must be. `problem` says
    /// what is wrong in fts's words; `source` is the lower error that found it, when
    /// one did (a parser of keys, PEM, JSON or names).
    #[error("{}: {problem}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What the file is not, or what is wrong in it.
        problem: String,
        /// The lower error that found it, if one did.
        #[source]
        source: Option<BoxedCause>,
    },
    /// The operator ran a command that needs the CA before making one.
    #[error("no CA in {}: run `fts keygen ca` first", dir.display())]
    MissingCa {
        /// The folder that has no CA.
        dir: PathBuf,
    },
    /// The operator asked to revoke an id the CA never issued a certificate for.
    #[error(
        "no certificate was ever issued for {id:?} according to {}: nothing to revoke \
         (check the id; certificates made outside fts keygen are not in the index)",
        index.display()
    )]
    NeverIssued {
        /// The id asked for.
        id: String,
        /// The index of issued certificates that was searched (`issued.tsv`).
        index: PathBuf,
    },
    /// The operator gave a name that breaks PROTOCOL.md section 4.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The operator gave a server name that is neither a DNS name nor an IP address.
    #[error("invalid server name {name:?}: expected a DNS name (like server.example) or an IP address")]
    InvalidServerName {
        /// The name given.
        name: String,
    },
    /// The operator asked for a server certificate without any name.
    #[error("a server certificate needs at least one name (--name)")]
    NoServerNames,
    /// The operator asked for a validity or CRL period of zero days.
    #[error("{what} must be at least 1 day")]
    ZeroDays {
        /// Which period, with its flag.
        what: &'static str,
    },
    /// The operator gave no trusted signing key at all.
    #[error("no trusted signing key given: at least one public key file is needed")]
    NoTrustedKeys,
    /// Two different trusted keys have the same 8-byte id; one of the files is wrong.
    #[error("{}: key id {key_id} is already used by a different trusted key", path.display())]
    KeyIdCollision {
        /// The file whose key clashes with one loaded before.
        path: PathBuf,
        /// The id both keys have.
        key_id: KeyId,
    },

    /// `fts keygen ticket-key --rotate` before the sealing key's predecessor's tickets
    /// expired.
    #[error(
        "ticket key {key_id} has sealed for only {minutes} min, and tickets of the key before it stay valid \
         for {lifetime_hours} h: rotating now would drop that key (each host would make one full handshake); \
         rotate once a day, or pass --force"
    )]
    TicketKeyTooNew {
        /// The key sealing now.
        key_id: String,
        /// How long it has sealed.
        minutes: u64,
        /// [`crate::ticket_key::TICKET_LIFETIME`], in hours.
        lifetime_hours: u64,
    },

    /// This machine's random number generator failed.
    #[error("the system random number generator failed")]
    Random(#[source] getrandom::Error),
    /// rcgen refused to build a certificate or CRL (a bug here or a bad CA file).
    #[error("cannot build the certificate or crl")]
    Certificate(#[from] rcgen::Error),
    /// A certificate could not be encoded as required (a bug here, never the input).
    /// The text is fts's own description of what came out wrong, not a lower error.
    #[error("cannot encode the certificate: {0}")]
    CertificateEncoding(String),
    /// The operator gave a private key that is not the key of the certificate given
    /// with it. The caller names both files (it knows the flags).
    #[error(
        "the private key does not belong to the certificate (the certificate carries another public \
         key): give the key file that was made with this certificate"
    )]
    KeyMismatch,
    /// rustls refused the configuration (a key type it cannot use, ...).
    #[error("tls configuration refused")]
    Tls(#[from] rustls::Error),
    /// rustls refused the trust anchors or CRLs given for a verifier.
    #[error("cannot build the certificate verifier from the configured ca and crls")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A CRL would take its CA's CRL number back below the one in force: most
    /// likely a stale copy, which would un-revoke every certificate revoked since.
    #[error(
        "the CRL of {issuer} {} is lower than number {in_force}, which was in force: a stale copy \
         would un-revoke certificates (copy the current ca.crl; to roll back on purpose, start fts \
         serve once with --accept-older-crl)",
        number.map_or_else(|| "has no CRL number, which".to_owned(), |n| format!("is number {n}, which"))
    )]
    OlderCrl {
        /// The CA whose CRL it is.
        issuer: String,
        /// The refused CRL's number (`None`: it has none).
        number: Option<u64>,
        /// The highest number accepted before for this CA.
        in_force: u64,
    },
    /// A checkpoint note (or its checkpoint text) breaks the format; the source says
    /// where and how. Whoever sent the note is at fault.
    #[error("the log checkpoint note is malformed")]
    Note(#[from] NoteError),
    /// The checkpoint is for another log than the one pinned.
    #[error("the checkpoint is for log {found}, not {expected}: refused")]
    WrongOrigin {
        /// The origin this host follows.
        expected: Origin,
        /// The origin the checkpoint names.
        found: Origin,
    },
    /// A signature line of a trusted release key does not verify: the note was altered
    /// or forged, and the whole note is refused.
    #[error(
        "the checkpoint signature line of trusted release key {key_id} (log {origin}) does not verify: \
         the note was altered or not signed by it; the whole note is refused"
    )]
    CheckpointSignature {
        /// The log.
        origin: Origin,
        /// The trusted key whose line failed.
        key_id: KeyId,
    },
    /// No signature line of the note is by a trusted release key.
    #[error("the checkpoint of log {origin} is not signed by a trusted release key")]
    CheckpointNotSigned {
        /// The log.
        origin: Origin,
    },
    /// A cosignature line of a known timestamp key does not verify: the whole note is
    /// refused.
    #[error(
        "the cosignature of timestamp key {name} does not verify ({why}): the note was altered or not \
         cosigned by it; the whole note is refused"
    )]
    Cosignature {
        /// The timestamp key's note name.
        name: String,
        /// What is wrong: a wrong length, a time out of range, a bad signature.
        why: &'static str,
    },
    /// A statement did not verify.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// A certificate breaks the identity rules.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// A host key cannot sign receipts, or a receipt was refused.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
}

/// A lower error kept as the `source` of an [`Error::BadFile`].
pub type BoxedCause = Box<dyn std::error::Error + Send + Sync + 'static>;

impl Error {
    /// A file whose contents are wrong, found by fts's own checks.
    pub(crate) fn bad_file(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Error::BadFile { path: path.into(), problem: problem.into(), source: None }
    }

    /// A file whose contents are wrong, found by a lower parser: its error is the
    /// source, and `problem` says what the file is not.
    pub(crate) fn bad_file_because(
        path: impl Into<PathBuf>,
        problem: impl Into<String>,
        source: impl Into<BoxedCause>,
    ) -> Self {
        Error::BadFile { path: path.into(), problem: problem.into(), source: Some(source.into()) }
    }
}

/// Why a signed statement was refused. The variants map onto the `untrusted-key` and
/// `signature` reasons a client reports; the sender of the entry is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signing key {key_id} is not trusted by this host")]
    /// The entry names a key this host does not trust.
    UntrustedKey {
        /// The key id the entry carries.
        key_id: KeyId,
    },
    #[error("signature does not verify with trusted key {key_id}: the entry was altered or not signed by it")]
    /// The signature does not verify with the trusted key the entry names.
    BadSignature {
        /// The key id the entry carries.
        key_id: KeyId,
    },
    #[error(
        "signing key {key_id} was retired by a rotation at log leaf {below}: it signs only entries below it"
    )]
    /// The entry names a key a rotation retired, and is not a leaf below the
    /// rotation (or its place in the log is not known).
    RetiredKey {
        /// The key id the entry carries.
        key_id: KeyId,
        /// The leaf index of the rotation that retired it.
        below: u64,
    },
}

/// Why a certificate cannot identify a client (PROTOCOL.md section 4). The
/// certificate, and so whoever presented or issued it, is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate does not parse, or breaks its own structure. The text is
    /// x509-parser's message or fts's own: x509-parser's errors quote their own cause,
    /// so they are kept as a leaf (and this enum stays `Clone` and `Eq`).
    #[error("client certificate is not a well-formed x.509 certificate: {0}")]
    Malformed(String),
    /// The subject has no CN, so there is no client id.
    #[error("client certificate has no common name (CN) in its subject")]
    NoCommonName,
    #[error("client certificate has {count} common names (CN) in its subject: exactly one is allowed")]
    /// The subject has more than one CN: which one is the id would be ambiguous.
    SeveralCommonNames {
        /// How many CNs it has.
        count: usize,
    },
    /// The CN is not a string type fts can read as text.
    #[error("client certificate's common name is not a text string")]
    CommonNameNotText,
    /// The CN breaks the client id rules; the source says how.
    #[error("client certificate's common name is not a valid client id")]
    InvalidClientId(#[source] NameError),
    /// The certificate was not made for client authentication.
    #[error("client certificate lacks the clientAuth extended key usage")]
    NoClientAuth,
    /// The certificate could issue others, so it cannot be a client's.
    #[error("client certificate is a CA certificate (basicConstraints CA=true)")]
    IsCa,
}

/// Why a host receipt was refused by [`check_receipt`](crate::receipt::check_receipt)
/// (the host that sent it is at fault, or whoever altered it), or could not be signed
/// by a [`ReceiptSigner`](crate::receipt::ReceiptSigner) (this host's key or receipt).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// A stored certificate does not chain to the client CA (`fts status --verify`):
    /// whoever wrote it into the status folder made it.
    #[error("the certificate it is checked with was not issued by the client CA")]
    NotIssuedByCa(#[source] webpki::Error),
    /// webpki cannot read the certificate the receipt is checked against.
    #[error("the receipt's certificate cannot be read as an x.509 certificate")]
    Certificate(#[source] webpki::Error),
    /// The receipt says it is signed with a scheme the certificate's key does not
    /// have.
    #[error("unsupported receipt scheme {scheme} for {key}")]
    UnsupportedScheme {
        /// The scheme the signed receipt names.
        scheme: ReceiptScheme,
        /// The certificate's key, in words (`an EC P-256 key`).
        key: &'static str,
    },
    /// The signature is not the certificate key's over the receipt: the receipt was
    /// altered, or signed by another key.
    #[error("the receipt's signature does not verify with the certificate's key")]
    BadSignature,
    /// The certificate's key is of the scheme's type but cannot be used (an RSA key
    /// outside 2048 to 8192 bits, a point not on the curve, ...).
    #[error("the certificate's key cannot verify a {scheme} signature")]
    UnusableKey {
        /// The scheme the signed receipt names.
        scheme: ReceiptScheme,
        /// What webpki said.
        #[source]
        source: webpki::Error,
    },
    /// The signature verifies but the bytes are not a receipt: the host signed
    /// something it should not have.
    #[error("the receipt is signed by the certificate's key but is not a valid receipt")]
    Malformed(#[source] ProtoError),
    /// The certificate does not identify a client (PROTOCOL.md section 4).
    #[error("the receipt's certificate does not identify a client")]
    Identity(#[source] IdentityError),
    /// The receipt names another client than the certificate it is checked against.
    #[error("receipt {number} names client {receipt} but the certificate is {certificate}'s")]
    WrongClient {
        /// The receipt's number.
        number: u64,
        /// The client id the receipt names.
        receipt: ClientId,
        /// The client id of the certificate.
        certificate: ClientId,
    },
    /// The receipt reports an entry of a target the certificate's client does not
    /// get.
    #[error(
        "receipt {number} reports target {target}, which is not one of {client}'s targets ({})",
        target_list(.targets)
    )]
    WrongTarget {
        /// The receipt's number.
        number: u64,
        /// The first target it reports that is not the client's.
        target: Target,
        /// The certificate's client.
        client: ClientId,
        /// That client's targets (its id, `all`, its groups).
        targets: Vec<Target>,
    },
    /// This host's key supports none of the receipt schemes (an ECDSA key on another
    /// curve, ...).
    #[error(
        "the host's {algorithm} key can sign with none of the receipt schemes (ed25519, ecdsa-p256-sha256, \
         ecdsa-p384-sha384, rsa-pss-sha256)"
    )]
    NoScheme {
        /// The key's algorithm, as rustls names it.
        algorithm: String,
    },
    /// rustls cannot use the host's private key.
    #[error("the host's private key cannot be used for signing")]
    Key(#[source] rustls::Error),
    /// This host was asked to sign a receipt that breaks the format (a bug of the
    /// caller): it would be refused, so it is not signed.
    #[error("refusing to sign receipt {number}: it is not a valid receipt")]
    Invalid {
        /// The receipt's number.
        number: u64,
        /// What is wrong with it.
        #[source]
        source: ProtoError,
    },
    /// The host's key failed to sign.
    #[error("signing the receipt failed")]
    Sign(#[source] rustls::Error),
}

fn target_list(targets: &[Target]) -> String {
    targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Why a TLS session was refused after its handshake, before any byte of the request
/// is read. Except for [`SessionRefused::Handshaking`] (a bug in the caller), the
/// client is at fault; the connection is closed without a frame.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionRefused {
    /// The session was checked before its handshake ended: a bug of the caller.
    #[error("the tls handshake has not completed (caller bug: check the session after the handshake)")]
    Handshaking,
    /// The client did not say it speaks `fts/1`.
    #[error("the client offered no ALPN protocol: `fts/1` is required")]
    NoAlpn,
    /// The client negotiated another protocol than `fts/1` (the name it gave).
    #[error("the client negotiated ALPN protocol {0:?}: `fts/1` is required")]
    WrongAlpn(String),
    /// The client sent no certificate, so it has no identity.
    #[error("the client presented no certificate")]
    NoCertificate,
    /// A CRL in force revokes the client's certificate.
    #[error("the client certificate is revoked")]
    Revoked,
    /// The certificate was refused by the verifier or the CRLs. The refusal is a
    /// description of the certificate (why, and what it claims), not a lower error.
    #[error("the client certificate is not accepted: {0}")]
    Certificate(CertificateRefusal),
    /// The certificate verified but breaks the identity rules.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

#[cfg(test)]
mod tests {
    use fts_proto::ErrorChain;

    use super::*;

    #[test]
    fn a_message_says_its_own_part_and_the_chain_adds_the_cause_once() {
        let io = io::Error::new(io::ErrorKind::PermissionDenied, "Permission denied (os error 13)");
        let e = Error::Read { path: "certs/signing.pub".into(), source: io };
        assert_eq!(e.to_string(), "cannot read certs/signing.pub");
        assert_eq!(
            ErrorChain(&e).to_string(),
            "cannot read certs/signing.pub: Permission denied (os error 13)"
        );

        let name = fts_proto::ClientId::parse("Web 01").unwrap_err();
        let e = Error::bad_file_because("issued.tsv", "line 3", name.clone());
        assert_eq!(e.to_string(), "issued.tsv: line 3");
        assert_eq!(ErrorChain(&e).to_string(), format!("issued.tsv: line 3: {name}"));
        assert_eq!(
            ErrorChain(&Error::bad_file("ca.crl", "trailing bytes")).to_string(),
            "ca.crl: trailing bytes"
        );
    }
}
