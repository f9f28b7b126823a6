//! fts-trust: everything a security reviewer must read, and nothing else.
//!
//! | module | owns |
//! |---|---|
//! | [`signing`] | release signing keys (Ed25519), key ids, signing, [`TrustedKeys`], [`Verified`] |
//! | [`note`] | checkpoints as signed notes: the release key's signature, the timestamp key and its cosignatures |
//! | [`identity`] | the client id and groups a certificate carries |
//! | [`receipt`] | host receipts: signed with the host's TLS key, checked against its certificate |
//! | [`tls`] | rustls configs of both sides, [`ClientAuth`] and the per-session check |
//! | `verified_chains` | the chains the current CRLs already accepted (private) |
//! | `x509_subject` | certificates whose subject repeats O, one per group (private) |
//! | [`crl`] | reading and signing certificate revocation lists |
//! | [`crl_floor`] | the server's rule that CRL numbers never go back, and its state file |
//! | [`refusals`] | how a refused client certificate is described and logged |
//! | [`keygen`] | the CA, server and client certificates, the signing key files |
//! | [`enrol`] | `fts keygen csr` and `sign`: enrolment by CSR, with the signer's own profile |
//! | [`revocation`] | `fts keygen revoke` and `crl`: the revoked list, CRL numbers, the CA lock |
//! | [`issued`] | serial numbers and the index of issued certificates |
//! | [`pem`] | PEM files, with the path in every error |
//! | [`error`] | every error of the crate |
//!
//! # Security model
//!
//! **What is protected.** A host installs a file only if a release signing key it
//! trusts signed the statement of PROTOCOL.md section 5 for it: target, sequence
//! number, name, size, SHA-256 and publish time. The signing key lives on the signing
//! host only; the server stores and forwards signatures and never holds it. So a
//! compromised server, or anyone on the network, can withhold files or serve them
//! late, but cannot make a host install anything that was not published for it.
//! [`TrustedKeys::verify`] is the only constructor of [`Verified<Statement>`](Verified), so code
//! that installs cannot be handed an unchecked statement. Verification is strict
//! Ed25519 (no malleable signatures, no small-order keys). Several keys can be
//! trusted at once for rotation; key ids are unambiguous within a set.
//!
//! **Who may poll.** Mutual TLS 1.3 (no 0-RTT, ALPN `fts/1`). A client is who its
//! certificate says ([`identity`]): the single CN is its id, its O values that are
//! group names are its groups, it must carry clientAuth and must not be a CA. Whoever
//! can get a certificate from the client CA can become any client with any group, so
//! that CA must be dedicated to fts. The CA key never needs to be on the server.
//!
//! **Revocation.** CRLs checked for the client's own certificate; when any CRL is
//! configured, a certificate whose issuer has none is refused; an overdue CRL is still
//! used (with a warning) rather than failing open or locking every host out. CRLs can
//! be replaced while the server runs ([`ClientAuth::replace_crls`]), never by one with
//! a lower CRL number from the same CA than the one in force ([`crl_floor`]). Session
//! resumption is kept (it halves the cost of a poll), and because a resumed session is
//! not re-verified by rustls, [`ClientAuth::check_session`] re-verifies the session's
//! certificate against the CRLs *as they are now* after every handshake, so a
//! certificate revoked after its session began is refused on resumption. Resumption
//! uses stateless tickets, so every host of a fleet can resume, at any replica sharing
//! a `--ticket-key` ([`ticket_key`]: whoever holds that file can resume as any host,
//! so it is kept like the server's key); a chain the current
//! CRLs already accepted is not verified again while within its dates (module
//! `verified_chains`: same verdict, one ECDSA verification less per poll). The CA side
//! ([`revocation`]) revokes every certificate of an id at once, keeps the revoked list
//! and CRL numbers under a lock, and never signs a CRL that would drop an entry.
//!
//! **Host receipts.** After an answer that changed anything, a host signs a receipt
//! with its TLS client key, over a prefix that keeps it apart from its handshake
//! signatures; the server keeps it only after [`check_receipt`] verified the signature
//! with the key of the session's certificate and that the receipt names that client
//! and only its targets ([`receipt`]). No time is read, so stored receipts verify
//! again later whatever became of the certificate.
//!
//! **The server, seen from the client.** Verified against the configured CA only (no
//! system roots), for the name dialled, and its certificate must list serverAuth.
//!
//! **Files.** Private keys are created with mode 0600, written atomically, and never
//! overwritten without `force`. Secret bytes are never printed by `Debug`.
//!
//! **Out of scope here.** Frame limits and timeouts (fts-proto, fts-net), the hash of
//! a file's body (checked while streaming, fts-net), the store (fts-store).
//!
//! # Crypto provider
//!
//! rustls with `ring` only, passed explicitly to every builder ([`tls::provider`]):
//! the process-wide default provider is never needed.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod crl;
pub mod crl_floor;
pub mod enrol;
pub mod error;
mod files;
pub mod identity;
pub mod issued;
pub mod keygen;
pub mod note;
pub mod pem;
pub mod receipt;
pub mod refusals;
pub mod revocation;
pub mod rotation;
pub mod signing;
pub mod ticket_key;
pub mod tls;
mod verified_chains;
mod x509_subject;

pub use crl::{Crl, Revoked};
pub use error::{Error, IdentityError, ReceiptError, SessionRefused, VerifyError};
pub use identity::{ClientIdentity, certificate_serial_and_expiry, client_identity};
pub use issued::Serial;
pub use note::{
    Cosigned, TimestampKey, TimestampPublic, VerifiedCheckpoint, verify_checkpoint,
    verify_checkpoint_any_origin, verify_cosignatures,
};
pub use receipt::{
    CheckedReceipt, RECEIPT_SIGNING_PREFIX, ReceiptSigner, check_receipt, issued_by_client_ca, receipt_hash,
    verify_stored_receipt,
};
pub use rotation::{KeyRing, NextKey, commitment};
pub use signing::{PublicKey, SigningKey, TrustedKeys, Verified};
pub use tls::{ALPN, ClientAuth, OlderCrls, client_config, server_config, server_config_with_tickets};
