//! Certificate serial numbers and the index of issued certificates kept beside the
//! CA, so that `fts keygen revoke ID` can revoke every certificate ever issued for an
//! id, not only the newest one.
//!
//! The index is `issued.tsv` in the CA folder: UTF-8 text, append-only, created when
//! missing. Lines starting with `#` are comments. Every other line is one issued
//! certificate, five fields separated by one tab:
//!
//! ```text
//! serial     kind    subject               not-after               issued-at
//! 4f1c..e2   client  web-01                2027-11-25T18:00:00Z    2026-11-25T18:00:00Z
//! ```
//!
//! - serial: the certificate's serial number as lower-case hex, exactly the bytes of
//!   its DER INTEGER (fts serials are 16 bytes with the top bit clear, so no sign byte);
//! - kind: `ca`, `server` or `client`;
//! - subject: the client id, the server's names joined by `,`, or the CA's CN;
//! - not-after, issued-at: RFC 3339 UTC times.
//!
//! Only fts keygen writes it (`ca`, `server`, `client`, `sign`); a certificate made
//! elsewhere (with openssl, from the same CA) is not in it, so `fts keygen revoke`
//! cannot find it. [`crate::revocation`] keeps the revoked ones.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fts_proto::ClientId;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Error;
use crate::files::tsv_rows;

/// The index file's name inside the CA folder.
pub const INDEX_FILE: &str = "issued.tsv";

const HEADER: &str = "# fts issued certificates: serial\tkind\tsubject\tnot-after\tissued-at\n";

/// A certificate serial number: the bytes of its DER INTEGER.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// 16 random bytes, positive (top bit clear) and with the second-highest bit set,
    /// so every serial has the same 16-byte encoding and 126 bits of randomness
    /// (RFC 5280 allows up to 20 bytes; CA/B asks for at least 64 random bits).
    pub fn random() -> Result<Self, Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| Error::Random(e.to_string()))?;
        bytes[0] = (bytes[0] & 0x3f) | 0x40;
        Ok(Serial(bytes.to_vec()))
    }

    /// A serial from its DER INTEGER bytes (as in a certificate or CRL entry).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Serial(bytes.into())
    }

    /// Parses lower-case or upper-case hex (no separators).
    pub fn parse_hex(s: &str) -> Option<Self> {
        hex::decode(s).ok().filter(|b| !b.is_empty() && b.len() <= 21).map(Serial)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({self})")
    }
}

/// What an issued certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuedKind {
    Ca,
    Server,
    Client,
}

impl IssuedKind {
    fn as_str(self) -> &'static str {
        match self {
            IssuedKind::Ca => "ca",
            IssuedKind::Server => "server",
            IssuedKind::Client => "client",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ca" => Some(IssuedKind::Ca),
            "server" => Some(IssuedKind::Server),
            "client" => Some(IssuedKind::Client),
            _ => None,
        }
    }
}

impl fmt::Display for IssuedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One line of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedRecord {
    pub serial: Serial,
    pub kind: IssuedKind,
    pub subject: String,
    pub not_after: OffsetDateTime,
    pub issued_at: OffsetDateTime,
}

fn index_path(ca_dir: &Path) -> PathBuf {
    ca_dir.join(INDEX_FILE)
}

/// A time as RFC 3339 UTC with whole seconds (`2026-11-25T17:00:00Z`), as the index
/// and the revoked list write it.
pub fn rfc3339(t: OffsetDateTime) -> String {
    // Whole seconds in UTC always format; fall back to the Unix time just in case.
    let t = t.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Appends one record to the index in `ca_dir`, creating the file when missing.
pub fn append(ca_dir: &Path, record: &IssuedRecord) -> Result<(), Error> {
    let path = index_path(ca_dir);
    let write_err = |source| Error::Write { path: path.clone(), source };
    let mut file = OpenOptions::new().append(true).create(true).mode(0o644).open(&path).map_err(write_err)?;
    let is_new = file.metadata().map_err(write_err)?.len() == 0;
    // Subjects are validated names; a tab or newline would still never split a line.
    let subject: String = record.subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut line = if is_new { HEADER.to_owned() } else { String::new() };
    line.push_str(&format!(
        "{}\t{}\t{}\t{}\t{}\n",
        record.serial,
        record.kind,
        subject,
        rfc3339(record.not_after),
        rfc3339(record.issued_at)
    ));
    // One write of one short line to an O_APPEND file: never interleaved with another.
    file.write_all(line.as_bytes()).map_err(write_err)?;
    file.sync_all().map_err(write_err)
}

/// Every record of the index in `ca_dir`; an empty list when there is no index yet.
pub fn read_index(ca_dir: &Path) -> Result<Vec<IssuedRecord>, Error> {
    let path = index_path(ca_dir);
    let mut records = Vec::new();
    for (line, fields) in tsv_rows(&path)? {
        let bad = || {
            Error::bad_file(
                &path,
                format!(
                    "line {line}: expected serial, kind, subject, not-after, issued-at separated by tabs"
                ),
            )
        };
        let [serial, kind, subject, not_after, issued_at] = fields.as_slice() else {
            return Err(bad());
        };
        records.push(IssuedRecord {
            serial: Serial::parse_hex(serial).ok_or_else(bad)?,
            kind: IssuedKind::parse(kind).ok_or_else(bad)?,
            subject: subject.clone(),
            not_after: OffsetDateTime::parse(not_after, &Rfc3339).map_err(|_| bad())?,
            issued_at: OffsetDateTime::parse(issued_at, &Rfc3339).map_err(|_| bad())?,
        });
    }
    Ok(records)
}

/// The serials of every client certificate ever issued for `id` by the CA in `ca_dir`.
pub fn client_serials(ca_dir: &Path, id: &ClientId) -> Result<Vec<Serial>, Error> {
    Ok(read_index(ca_dir)?
        .into_iter()
        .filter(|r| r.kind == IssuedKind::Client && r.subject == id.as_str())
        .map(|r| r.serial)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_16_byte_and_distinct() {
        let a = Serial::random().unwrap();
        let b = Serial::random().unwrap();
        assert_ne!(a, b);
        for s in [&a, &b] {
            assert_eq!(s.as_bytes().len(), 16);
            assert_eq!(s.as_bytes()[0] & 0xc0, 0x40);
            assert_eq!(Serial::parse_hex(&s.to_string()).as_ref(), Some(s));
        }
    }

    #[test]
    fn the_index_round_trips_and_finds_every_certificate_of_an_id() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_index(dir.path()).unwrap().is_empty(), "a missing index is empty");
        let now = OffsetDateTime::from_unix_timestamp(1_795_626_000).unwrap();
        let record = |kind, subject: &str| IssuedRecord {
            serial: Serial::random().unwrap(),
            kind,
            subject: subject.to_owned(),
            not_after: now + time::Duration::days(365),
            issued_at: now,
        };
        let records = [
            record(IssuedKind::Ca, "fts CA"),
            record(IssuedKind::Client, "web-01"),
            record(IssuedKind::Client, "web-02"),
            record(IssuedKind::Server, "localhost,127.0.0.1"),
            record(IssuedKind::Client, "web-01"),
        ];
        for r in &records {
            append(dir.path(), r).unwrap();
        }
        assert_eq!(read_index(dir.path()).unwrap(), records);
        let id = ClientId::parse("web-01").unwrap();
        assert_eq!(
            client_serials(dir.path(), &id).unwrap(),
            [records[1].serial.clone(), records[4].serial.clone()]
        );
        let text = std::fs::read_to_string(dir.path().join(INDEX_FILE)).unwrap();
        assert!(text.starts_with('#') && text.contains("\tclient\tweb-01\t"), "{text}");
    }

    #[test]
    fn a_damaged_index_line_is_reported_with_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(INDEX_FILE), "# header\nnot a record\n").unwrap();
        let err = read_index(dir.path()).unwrap_err().to_string();
        assert!(err.contains(INDEX_FILE) && err.contains("line 2"), "{err}");
    }
}
