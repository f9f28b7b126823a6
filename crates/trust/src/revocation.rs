//! Revoking client certificates and keeping the CRL fresh: `fts keygen revoke ID` and
//! `fts keygen crl`, on the CA host.
//!
//! Three files beside the CA hold the state, and `ca.crl` is always derived from them:
//!
//! | file | contents |
//! |---|---|
//! | `issued.tsv` | every certificate issued ([`crate::issued`]): where `revoke ID` finds the serials of an id |
//! | `revoked.tsv` | every revoked certificate: serial, client id, revocation time (RFC 3339 UTC) |
//! | `crl.number` | the number of the last CRL signed, in decimal |
//!
//! `revoked.tsv` is the list of record: each CRL carries exactly its entries, with the
//! revocation times first recorded, so `fts keygen crl` can re-sign it any number of
//! times without losing or re-dating an entry. It only grows: a revoked certificate
//! stays revoked (also after it expires; the list stays small for a fleet).
//!
//! **CRL number.** Each CRL gets a number one higher than both the counter in
//! `crl.number` and the number of the current `ca.crl` (if it was signed by this CA),
//! so numbers keep increasing if either file is lost or restored from an older backup.
//! The counter is written before the CRL: a crash in between skips a number, which
//! is allowed, and never repeats one.
//!
//! **Safety net.** If the current `ca.crl`, signed by this CA, revokes a serial that
//! `revoked.tsv` does not list (the list was lost or edited), nothing is written:
//! re-signing would silently un-revoke that certificate.
//!
//! **Concurrency.** Every read-modify-write of these files (and `fts keygen sign`'s
//! append to the index) holds an exclusive lock on `ca.lock` in the CA folder
//! ([`std::fs::File::lock`]; released when the process ends, also on a crash). The
//! lock file itself is left in place: removing it would race with the next locker.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fts_proto::ClientId;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crl::{self, CRL_FILE, Crl, Revoked};
use crate::error::Error;
use crate::files::{Mode, read_optional, tsv_rows, write_atomic};
use crate::issued::{self, INDEX_FILE, Serial};
use crate::keygen::CertificateAuthority;

/// The list of revoked certificates in the CA folder.
pub const REVOKED_FILE: &str = "revoked.tsv";
/// The number of the last CRL signed, in the CA folder.
pub const CRL_NUMBER_FILE: &str = "crl.number";
/// The lock file taken around every change to the CA folder's state.
pub const LOCK_FILE: &str = "ca.lock";

const REVOKED_HEADER: &str = "# fts revoked certificates: serial\tclient-id\trevoked-at\n";

/// An exclusive lock on the CA folder, held until dropped.
#[derive(Debug)]
pub struct CaLock {
    _file: File,
}

impl CaLock {
    /// Waits for and takes the lock on `dir/ca.lock`, creating the file when missing.
    pub fn acquire(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(LOCK_FILE);
        let err = |source| Error::Write { path: path.clone(), source };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o644)
            .open(&path)
            .map_err(err)?;
        file.lock().map_err(err)?;
        Ok(CaLock { _file: file })
    }
}

/// One line of `revoked.tsv`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedRecord {
    /// The revoked certificate's serial.
    pub serial: Serial,
    /// The client id the certificate was issued for.
    pub id: String,
    /// When it was revoked; kept each time the CRL is signed again.
    pub revoked_at: OffsetDateTime,
}

/// `fts keygen revoke ID`
#[derive(Debug, Clone)]
pub struct RevokeOptions {
    /// The CA folder (`--dir`).
    pub dir: PathBuf,
    /// The client whose every certificate is revoked.
    pub id: ClientId,
    /// Validity of the new CRL, in days.
    pub crl_days: u32,
}

/// `fts keygen crl`
#[derive(Debug, Clone)]
pub struct CrlOptions {
    /// The CA folder (`--dir`).
    pub dir: PathBuf,
    /// Validity of the new CRL, in days.
    pub crl_days: u32,
}

/// What `fts keygen revoke` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokeSummary {
    /// The client that was revoked.
    pub id: ClientId,
    /// Serials revoked by this call.
    pub newly_revoked: Vec<Serial>,
    /// Serials of the id that were revoked before (their revocation time is kept).
    pub already_revoked: Vec<Serial>,
    /// The CRL signed with the revocations, and where it was written.
    pub crl: crl::CrlWritten,
}

/// `fts keygen revoke ID`: revokes every client certificate the index records for
/// `id` and writes a new `ca.crl`. An id the CA never issued a certificate for is an
/// error ([`Error::NeverIssued`]): most likely a typo, and a CRL that silently revokes
/// nothing would hide it.
pub fn revoke(opts: &RevokeOptions) -> Result<RevokeSummary, Error> {
    let ca = CertificateAuthority::load(&opts.dir)?;
    check_days(opts.crl_days)?;
    let _lock = CaLock::acquire(&opts.dir)?;
    let serials = issued::client_serials(&opts.dir, &opts.id)?;
    if serials.is_empty() {
        return Err(Error::NeverIssued { id: opts.id.to_string(), index: opts.dir.join(INDEX_FILE) });
    }
    let mut list = read_revoked(&opts.dir)?;
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc());
    let (mut newly_revoked, mut already_revoked) = (Vec::new(), Vec::new());
    for serial in serials {
        if newly_revoked.contains(&serial) || already_revoked.contains(&serial) {
            continue;
        }
        if list.iter().any(|r| r.serial == serial) {
            already_revoked.push(serial);
        } else {
            list.push(RevokedRecord { serial: serial.clone(), id: opts.id.to_string(), revoked_at: now });
            newly_revoked.push(serial);
        }
    }
    let crl = sign_crl(&ca, &list, opts.crl_days, !newly_revoked.is_empty())?;
    Ok(RevokeSummary { id: opts.id.clone(), newly_revoked, already_revoked, crl })
}

/// `fts keygen crl`: re-signs `ca.crl` with the entries of `revoked.tsv` (none at all:
/// an empty CRL, so a server can have one from day one), the next CRL number and a
/// next-update `crl_days` from now.
pub fn renew_crl(opts: &CrlOptions) -> Result<crl::CrlWritten, Error> {
    let ca = CertificateAuthority::load(&opts.dir)?;
    check_days(opts.crl_days)?;
    let _lock = CaLock::acquire(&opts.dir)?;
    let list = read_revoked(&opts.dir)?;
    sign_crl(&ca, &list, opts.crl_days, false)
}

fn check_days(crl_days: u32) -> Result<(), Error> {
    if crl_days == 0 {
        return Err(Error::ZeroDays { what: "crl next-update (--crl-days)" });
    }
    Ok(())
}

/// With the lock held: checks the current CRL against `list`, writes `list` (when it
/// changed), the next number, and the CRL signed with both.
fn sign_crl(
    ca: &CertificateAuthority,
    list: &[RevokedRecord],
    crl_days: u32,
    list_changed: bool,
) -> Result<crl::CrlWritten, Error> {
    let dir = ca.dir();
    let current = current_crl(ca)?;
    if let Some(crl) = &current {
        let missing: Vec<&Serial> =
            crl.revoked_serials().iter().filter(|s| !list.iter().any(|r| &r.serial == *s)).collect();
        if !missing.is_empty() {
            return Err(Error::bad_file(
                dir.join(REVOKED_FILE),
                format!(
                    "does not list {} serial(s) that {} revokes (first: {}); was it lost or edited? \
                     Restore it from a backup: signing a new CRL now would un-revoke them",
                    missing.len(),
                    dir.join(CRL_FILE).display(),
                    missing[0]
                ),
            ));
        }
    }
    let counter = read_crl_number(dir)?;
    let from_crl = current.as_ref().and_then(Crl::number).unwrap_or(0);
    let number = counter.max(from_crl).checked_add(1).ok_or_else(|| {
        Error::bad_file(dir.join(CRL_NUMBER_FILE), "the crl number cannot increase any further")
    })?;

    if list_changed {
        write_revoked(dir, list)?;
    }
    write_atomic(&dir.join(CRL_NUMBER_FILE), format!("{number}\n").as_bytes(), Mode::Public, true)?;
    let entries: Vec<Revoked> =
        list.iter().map(|r| Revoked { serial: r.serial.clone(), revoked_at: r.revoked_at }).collect();
    crl::write_crl_with(ca, &entries, number, crl_days)
}

/// The current `ca.crl`, if there is one signed by this CA. A CRL of another CA (one
/// replaced with `fts keygen ca --force`) is not this CA's business and is ignored; a
/// file that is not a CRL at all is an error naming it.
fn current_crl(ca: &CertificateAuthority) -> Result<Option<Crl>, Error> {
    let path = ca.dir().join(CRL_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let crls = crl::load_crls(&path)?;
    let (_, ca_cert) = X509Certificate::from_der(ca.certificate())
        .map_err(|e| Error::bad_file(ca.dir().join(crate::keygen::CA_CERT_FILE), e.to_string()))?;
    let spki = ca_cert.public_key();
    for crl in crls {
        let signed_by_ca = x509_parser::parse_x509_crl(crl.der().as_ref())
            .is_ok_and(|(_, parsed)| parsed.verify_signature(spki).is_ok());
        if signed_by_ca {
            return Ok(Some(crl));
        }
    }
    Ok(None)
}

fn read_crl_number(dir: &Path) -> Result<u64, Error> {
    let path = dir.join(CRL_NUMBER_FILE);
    let Some(bytes) = read_optional(&path, 64)? else { return Ok(0) };
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .ok_or_else(|| Error::bad_file(&path, "expected the last crl number, in decimal"))
}

/// Every record of `revoked.tsv` in `dir`; an empty list when there is none yet.
pub fn read_revoked(dir: &Path) -> Result<Vec<RevokedRecord>, Error> {
    let path = dir.join(REVOKED_FILE);
    let mut records = Vec::new();
    for (line, fields) in tsv_rows(&path)? {
        let bad = || {
            Error::bad_file(
                &path,
                format!("line {line}: expected serial, client id, revoked-at separated by tabs"),
            )
        };
        let [serial, id, revoked_at] = fields.as_slice() else {
            return Err(bad());
        };
        records.push(RevokedRecord {
            serial: Serial::parse_hex(serial).ok_or_else(bad)?,
            id: id.clone(),
            revoked_at: OffsetDateTime::parse(revoked_at, &Rfc3339).map_err(|_| bad())?,
        });
    }
    Ok(records)
}

/// Replaces `revoked.tsv` with `list`, atomically.
fn write_revoked(dir: &Path, list: &[RevokedRecord]) -> Result<(), Error> {
    let mut text = REVOKED_HEADER.to_owned();
    for r in list {
        let id: String = r.id.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        text.push_str(&format!("{}\t{}\t{}\n", r.serial, id, issued::rfc3339(r.revoked_at)));
    }
    write_atomic(&dir.join(REVOKED_FILE), text.as_bytes(), Mode::Public, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_revoked_list_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_revoked(dir.path()).unwrap().is_empty(), "a missing list is empty");
        let at = OffsetDateTime::from_unix_timestamp(1_795_626_000).unwrap();
        let list: Vec<RevokedRecord> = (0..3)
            .map(|i| RevokedRecord {
                serial: Serial::random().unwrap(),
                id: format!("web-0{i}"),
                revoked_at: at + time::Duration::seconds(i),
            })
            .collect();
        write_revoked(dir.path(), &list).unwrap();
        assert_eq!(read_revoked(dir.path()).unwrap(), list);
    }

    #[test]
    fn a_damaged_revoked_list_or_counter_is_reported_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(REVOKED_FILE), "# h\nzz\tweb-01\tyesterday\n").unwrap();
        let err = read_revoked(dir.path()).unwrap_err().to_string();
        assert!(err.contains(REVOKED_FILE) && err.contains("line 2"), "{err}");
        assert_eq!(read_crl_number(dir.path()).unwrap(), 0, "no counter yet");
        std::fs::write(dir.path().join(CRL_NUMBER_FILE), "seven\n").unwrap();
        let err = read_crl_number(dir.path()).unwrap_err().to_string();
        assert!(err.contains(CRL_NUMBER_FILE), "{err}");
    }
}
