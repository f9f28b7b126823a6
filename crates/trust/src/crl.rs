//! Certificate revocation lists: reading them (for the server) and signing them
//! (for `fts keygen revoke` / `fts keygen crl`, which keep their state in
//! [`crate::revocation`]).
//!
//! A [`Crl`] is the DER the TLS verifier uses plus the few fields an operator needs
//! to see: issuer, this-update, next-update, CRL number, revoked serials. Parsing
//! here checks the syntax only; the CRL's signature is checked by the TLS verifier
//! against the issuer of each client certificate it is used for, so a forged CRL
//! revokes nothing and a CRL from another CA is simply never consulted.
//!
//! A CRL past its next-update time is still used: its revocations stay in force, and
//! locking every host out for a late renewal would be worse (docs/PKI.md, "Revocation
//! policy"). The server warns instead: [`Crl::is_past_next_update`] lets it say so.
//!
//! [`Crl::issuer_key`] names the CA a CRL speaks for (issuer name and authority key
//! id), and [`Crl::is_signed_by`] checks its signature against a CA certificate: the
//! server's rule that CRL numbers never go back ([`crate::crl_floor`]) only counts
//! CRLs whose signature it checked, so a forged CRL with a huge number cannot lock
//! out every later genuine one.

use std::path::{Path, PathBuf};

use rcgen::{CertificateRevocationListParams, RevokedCertParams, SerialNumber};
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use crate::crl_floor::CrlIssuer;

use crate::error::Error;
use crate::files::{Mode, read_bounded, write_atomic};
use crate::issued::Serial;
use crate::keygen::CertificateAuthority;
use crate::pem;

/// The CRL file's name beside the CA (`fts keygen revoke` / `crl` write it, `fts serve`
/// reads it by default).
pub const CRL_FILE: &str = "ca.crl";

/// CRLs can legitimately be large; this bounds memory for a wrong path.
const MAX_CRL_FILE: u64 = 64 << 20;

/// How long a new CRL is valid when `--crl-days` is not given.
pub const DEFAULT_CRL_DAYS: u32 = 30;

/// One parsed CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crl {
    der: CertificateRevocationListDer<'static>,
    issuer: String,
    /// The issuer name's DER, to match it against a CA certificate's subject exactly.
    issuer_der: Vec<u8>,
    /// The authority key identifier extension's key id, when present.
    authority_key_id: Option<Vec<u8>>,
    this_update: OffsetDateTime,
    next_update: Option<OffsetDateTime>,
    number: Option<u64>,
    revoked: Vec<Serial>,
}

impl Crl {
    /// Parses a DER CRL. The error says what is wrong, for the caller to put beside
    /// the file name.
    pub fn from_der(der: CertificateRevocationListDer<'static>) -> Result<Self, String> {
        let (rest, crl) = x509_parser::parse_x509_crl(der.as_ref()).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("trailing bytes after the crl".into());
        }
        let time = |t: x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp()).map_err(|e| e.to_string())
        };
        let number = match crl.crl_number() {
            None => None,
            Some(n) => Some(u64::try_from(n).map_err(|_| "crl number larger than 64 bits".to_owned())?),
        };
        let issuer = crl.issuer().to_string();
        let issuer_der = crl.issuer().as_raw().to_vec();
        let authority_key_id = crl.extensions().iter().find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        });
        let this_update = time(crl.last_update())?;
        let next_update = crl.next_update().map(time).transpose()?;
        let revoked = crl.iter_revoked_certificates().map(|r| Serial::from_bytes(r.raw_serial())).collect();
        Ok(Crl { der, issuer, issuer_der, authority_key_id, this_update, next_update, number, revoked })
    }

    /// The CA this CRL speaks for: its issuer name and authority key id (what the
    /// server's CRL-number floor is kept per).
    pub fn issuer_key(&self) -> CrlIssuer {
        CrlIssuer { name: self.issuer.clone(), key_id: self.authority_key_id.as_ref().map(hex::encode) }
    }

    /// Whether `ca` (a CA certificate, DER) issued this CRL: its subject is the CRL's
    /// issuer and the CRL's signature verifies with its key. Anything unreadable is
    /// `false`.
    pub fn is_signed_by(&self, ca: &CertificateDer<'_>) -> bool {
        let Ok((_, ca)) = X509Certificate::from_der(ca.as_ref()) else { return false };
        if ca.subject().as_raw() != self.issuer_der.as_slice() {
            return false;
        }
        let Ok((_, crl)) = CertificateRevocationList::from_der(self.der.as_ref()) else { return false };
        crl.verify_signature(ca.public_key()).is_ok()
    }

    /// The CRL as DER, as the TLS verifier takes it.
    pub fn der(&self) -> &CertificateRevocationListDer<'static> {
        &self.der
    }

    /// The issuer's distinguished name, as text (for logs and status).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// When the CA signed this CRL.
    pub fn this_update(&self) -> OffsetDateTime {
        self.this_update
    }

    /// When the issuer promised a newer CRL. `None` when the CRL does not say.
    pub fn next_update(&self) -> Option<OffsetDateTime> {
        self.next_update
    }

    /// [`next_update`](Self::next_update) for a log or a message: RFC 3339 UTC, or
    /// `none`.
    pub fn next_update_text(&self) -> String {
        self.next_update.map_or_else(|| "none".to_owned(), crate::issued::rfc3339)
    }

    /// The CRL number extension (increases with each CRL the CA signs).
    pub fn number(&self) -> Option<u64> {
        self.number
    }

    /// The serials of the certificates this CRL revokes.
    pub fn revoked_serials(&self) -> &[Serial] {
        &self.revoked
    }

    /// True once `now` is past next-update: the CRL is still used, and the server
    /// warns that a newer one is overdue.
    pub fn is_past_next_update(&self, now: OffsetDateTime) -> bool {
        self.next_update.is_some_and(|next| now > next)
    }

    /// The CRL as a PEM `X509 CRL` block, as `ca.crl` holds it.
    pub fn to_pem(&self) -> String {
        pem::encode("X509 CRL", self.der.as_ref())
    }
}

/// Every `X509 CRL` block of a PEM file, at least one, each parsed.
pub fn load_crls(path: &Path) -> Result<Vec<Crl>, Error> {
    let bytes = read_bounded(path, MAX_CRL_FILE)?;
    pem::all_blocks::<CertificateRevocationListDer<'static>>(&bytes, path, "X509 CRL")?
        .into_iter()
        .map(|der| {
            Crl::from_der(der).map_err(|problem| Error::bad_file_because(path, "not a valid CRL", problem))
        })
        .collect()
}

/// One revoked certificate: its serial and when the CA revoked it (kept the same
/// each time the CRL is re-signed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    /// The revoked certificate's serial.
    pub serial: Serial,
    /// When it was revoked (the time the CRL states for it).
    pub revoked_at: OffsetDateTime,
}

/// Signs a CRL with the CA: `revoked` serials, CRL number `crl_number`, this-update
/// now and next-update `next_update_days` days from now.
pub fn build_crl(
    ca: &CertificateAuthority,
    revoked: &[Revoked],
    crl_number: u64,
    next_update_days: u32,
) -> Result<Crl, Error> {
    if next_update_days == 0 {
        return Err(Error::ZeroDays { what: "crl next-update (--crl-days)" });
    }
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
    let params = CertificateRevocationListParams {
        this_update: now,
        next_update: now + Duration::days(i64::from(next_update_days)),
        crl_number: SerialNumber::from_slice(&minimal_be(crl_number)),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
                revocation_time: r.revoked_at,
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: ca.key_id_method().clone(),
    };
    let der = params.signed_by(ca.issuer())?.der().clone();
    Crl::from_der(der)
        .map_err(|problem| Error::bad_file_because(ca.dir(), "signed an unreadable crl", problem))
}

/// What [`write_crl`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlWritten {
    /// Where the CRL was written (`ca.crl` in the CA folder).
    pub path: PathBuf,
    /// The CRL that was signed and written.
    pub crl: Crl,
}

/// Signs a CRL with the CA in `dir` and writes it to `dir/ca.crl` (PEM, replacing the
/// previous one atomically, so a server reloading it never sees half a file).
pub fn write_crl(
    dir: &Path,
    revoked: &[Revoked],
    crl_number: u64,
    next_update_days: u32,
) -> Result<CrlWritten, Error> {
    let ca = CertificateAuthority::load(dir)?;
    write_crl_with(&ca, revoked, crl_number, next_update_days)
}

/// [`write_crl`] with a CA already loaded: writes `ca.crl` in the CA's folder.
pub fn write_crl_with(
    ca: &CertificateAuthority,
    revoked: &[Revoked],
    crl_number: u64,
    next_update_days: u32,
) -> Result<CrlWritten, Error> {
    let crl = build_crl(ca, revoked, crl_number, next_update_days)?;
    let path = ca.dir().join(CRL_FILE);
    write_atomic(&path, crl.to_pem().as_bytes(), Mode::Public, true)?;
    Ok(CrlWritten { path, crl })
}

/// The big-endian bytes of `n` without leading zeros (at least one byte), as a DER
/// INTEGER's content wants them; rcgen adds the sign byte when needed.
fn minimal_be(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
    bytes[first..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keygen::{self, CaOptions};

    #[test]
    fn a_signed_crl_reads_back_with_its_number_serials_and_next_update() {
        let dir = tempfile::tempdir().unwrap();
        keygen::ca(&CaOptions { dir: dir.path().to_owned(), days: 10, force: false }).unwrap();
        let revoked_at = OffsetDateTime::from_unix_timestamp(1_795_626_000).unwrap();
        let revoked: Vec<Revoked> =
            (0..3).map(|_| Revoked { serial: Serial::random().unwrap(), revoked_at }).collect();
        let written = write_crl(dir.path(), &revoked, 300, 30).unwrap();
        let loaded = load_crls(&written.path).unwrap();
        assert_eq!(loaded, std::slice::from_ref(&written.crl));
        let crl = &loaded[0];
        assert_eq!(crl.number(), Some(300));
        assert_eq!(crl.revoked_serials(), revoked.iter().map(|r| r.serial.clone()).collect::<Vec<_>>());
        assert!(crl.issuer().contains("fts CA"), "{}", crl.issuer());
        let next = crl.next_update().unwrap();
        assert_eq!(next - crl.this_update(), Duration::days(30));
        assert!(!crl.is_past_next_update(crl.this_update()));
        assert!(crl.is_past_next_update(next + Duration::seconds(1)));
    }

    #[test]
    fn a_crl_names_its_ca_and_verifies_only_against_it() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        keygen::ca(&CaOptions { dir: dir.path().to_owned(), days: 10, force: false }).unwrap();
        keygen::ca(&CaOptions { dir: other.path().to_owned(), days: 10, force: false }).unwrap();
        let crl = write_crl(dir.path(), &[], 1, 30).unwrap().crl;
        let ca = crate::pem::load_certificates(&dir.path().join("ca.crt")).unwrap();
        let other_ca = crate::pem::load_certificates(&other.path().join("ca.crt")).unwrap();
        assert!(crl.is_signed_by(&ca[0]));
        assert!(!crl.is_signed_by(&other_ca[0]), "same name, another key");
        let key = crl.issuer_key();
        assert!(key.name.contains("fts CA"), "{key:?}");
        assert!(key.key_id.as_ref().is_some_and(|id| id.len() >= 16), "an authority key id: {key:?}");
        let other_key = write_crl(other.path(), &[], 1, 30).unwrap().crl.issuer_key();
        assert_ne!(key, other_key, "two CAs with the same name are told apart by their key id");
        assert!(crl.next_update_text().ends_with('Z') && crl.next_update_text().contains('T'));
    }

    #[test]
    fn crl_numbers_are_minimal_big_endian() {
        assert_eq!(minimal_be(0), [0]);
        assert_eq!(minimal_be(1), [1]);
        assert_eq!(minimal_be(256), [1, 0]);
        assert_eq!(minimal_be(u64::MAX), [0xff; 8]);
    }

    #[test]
    fn a_crl_without_a_ca_names_the_command_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_crl(dir.path(), &[], 1, 30).unwrap_err().to_string();
        assert!(err.contains("fts keygen ca"), "{err}");
    }
}
