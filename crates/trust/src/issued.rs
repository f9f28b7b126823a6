//! Certificate serial numbers and the index of issued certificates kept beside the
//! CA, so that `fts keygen revoke ID` can revoke every certificate ever issued for an
//! id, not only the newest one.
//!
//! The index is `issued.tsv` in the CA folder: UTF-8 text, append-only, created when
//! missing. Lines starting with `#` are comments. Every other line is one issued
//! certificate, six fields separated by one tab:
//!
//! ```text
//! serial     kind    subject   not-after               issued-at               groups
//! 4f1c..e2   client  web-01    2027-11-25T18:00:00Z    2026-11-25T18:00:00Z    db,web
//! ```
//!
//! - serial: the certificate's serial number as lower-case hex, exactly the bytes of
//!   its DER INTEGER (fts serials are 16 bytes with the top bit clear, so no sign byte);
//! - kind: `ca`, `server` or `client`;
//! - subject: the client id, the server's names joined by `,`, or the CA's CN;
//! - not-after, issued-at: RFC 3339 UTC times;
//! - groups: a client certificate's groups (its O values) joined by `,`, or `-` for
//!   none; `-` for the CA and the server. Lines written before this field existed
//!   have five fields: their groups are unknown, not empty.
//!
//! Only fts keygen writes it (`ca`, `server`, `client`, `sign`); a certificate made
//! elsewhere (with openssl, from the same CA) is not in it, so `fts keygen revoke`
//! cannot find it. [`crate::revocation`] keeps the revoked ones.
//!
//! `fts publish` reads it as the list of [`KnownTargets`]: a target that names no
//! issued client id and no issued group reaches nobody, so it is refused before it is
//! signed (a typo such as `--to web` for `--to group:web` would otherwise be published
//! silently, and delivered to whichever host is enrolled as `web` one day).

use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use fts_proto::{ClientId, GroupName, Target};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Error;
use crate::files::tsv_rows;

/// The index file's name inside the CA folder.
pub const INDEX_FILE: &str = "issued.tsv";

const HEADER: &str = "# fts issued certificates: serial\tkind\tsubject\tnot-after\tissued-at\tgroups\n";

/// A certificate serial number: the bytes of its DER INTEGER.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// 16 random bytes, positive (top bit clear) and with the second-highest bit set,
    /// so every serial has the same 16-byte encoding and 126 bits of randomness
    /// (RFC 5280 allows up to 20 bytes; CA/B asks for at least 64 random bits).
    pub fn random() -> Result<Self, Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(Error::Random)?;
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

    /// The serial's bytes, big-endian, as the certificate carries them.
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
    /// The CA's own certificate.
    Ca,
    /// The server's certificate.
    Server,
    /// A host's client certificate.
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
    /// The certificate's serial.
    pub serial: Serial,
    /// What the certificate is for.
    pub kind: IssuedKind,
    /// The client id, the server's names joined by `,`, or the CA's CN.
    pub subject: String,
    /// The end of the certificate's validity.
    pub not_after: OffsetDateTime,
    /// When fts issued it.
    pub issued_at: OffsetDateTime,
    /// A client certificate's groups; empty for the CA and the server. `None` on a
    /// line written before the index had this field.
    pub groups: Option<Vec<GroupName>>,
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
    let file = OpenOptions::new().append(true).create(true).mode(0o644).open(&path).map_err(write_err)?;
    let is_new = file.metadata().map_err(write_err)?.len() == 0;
    // Subjects are validated names; a tab or newline would still never split a line.
    let subject: String = record.subject.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let mut line = if is_new { HEADER.to_owned() } else { String::new() };
    let groups = match record.groups.as_deref() {
        None | Some([]) => "-".to_owned(),
        Some(groups) => groups.iter().map(GroupName::as_str).collect::<Vec<_>>().join(","),
    };
    line.push_str(&format!(
        "{}\t{}\t{}\t{}\t{}\t{groups}\n",
        record.serial,
        record.kind,
        subject,
        rfc3339(record.not_after),
        rfc3339(record.issued_at)
    ));
    // One write of one short line to an O_APPEND file: never interleaved with another.
    fts_fs::append_durably(&file, line.as_bytes(), &path).map_err(|e| write_err(e.into_io()))
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
                    "line {line}: expected serial, kind, subject, not-after, issued-at and groups \
                     separated by tabs"
                ),
            )
        };
        let (serial, kind, subject, not_after, issued_at, groups) = match fields.as_slice() {
            [serial, kind, subject, not_after, issued_at] => {
                (serial, kind, subject, not_after, issued_at, None)
            }
            [serial, kind, subject, not_after, issued_at, groups] => {
                (serial, kind, subject, not_after, issued_at, Some(parse_groups(groups).ok_or_else(bad)?))
            }
            _ => return Err(bad()),
        };
        records.push(IssuedRecord {
            serial: Serial::parse_hex(serial).ok_or_else(bad)?,
            kind: IssuedKind::parse(kind).ok_or_else(bad)?,
            subject: subject.clone(),
            not_after: OffsetDateTime::parse(not_after, &Rfc3339).map_err(|_| bad())?,
            issued_at: OffsetDateTime::parse(issued_at, &Rfc3339).map_err(|_| bad())?,
            groups,
        });
    }
    Ok(records)
}

/// The groups field: `-` for none, else group names joined by `,`.
fn parse_groups(field: &str) -> Option<Vec<GroupName>> {
    if field == "-" {
        return Some(Vec::new());
    }
    field.split(',').map(|g| GroupName::parse(g).ok()).collect()
}

/// The serials of every client certificate ever issued for `id` by the CA in `ca_dir`.
pub fn client_serials(ca_dir: &Path, id: &ClientId) -> Result<Vec<Serial>, Error> {
    Ok(read_index(ca_dir)?
        .into_iter()
        .filter(|r| r.kind == IssuedKind::Client && r.subject == id.as_str())
        .map(|r| r.serial)
        .collect())
}

/// The targets that reach at least one host: the client ids and groups of every
/// client certificate in the index, and those an operator lists for certificates made
/// outside fts. `all` is always known.
#[derive(Debug, Clone, Default)]
pub struct KnownTargets {
    ids: BTreeSet<ClientId>,
    groups: BTreeSet<GroupName>,
    /// Some client lines predate the groups field, so a group missing here may still
    /// have members.
    groups_incomplete: bool,
}

/// What [`KnownTargets::check`] says of one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetCheck {
    /// Some certificate in the index has this target: a host will get the entry.
    Known,
    /// A group no certificate in the index names, on an index where some client
    /// certificates were recorded without their groups: it may or may not have members.
    Unverifiable,
    /// No host has this target. `suggestion`: a known target it is probably a typo of.
    Unknown {
        /// The known target closest to the one given, if one is close.
        suggestion: Option<Target>,
    },
}

impl KnownTargets {
    /// The client ids and groups of the index in `ca_dir` (none when it has no index).
    pub fn from_index(ca_dir: &Path) -> Result<Self, Error> {
        let mut known = KnownTargets::default();
        for record in read_index(ca_dir)?.into_iter().filter(|r| r.kind == IssuedKind::Client) {
            if let Ok(id) = ClientId::parse(&record.subject) {
                known.ids.insert(id);
            }
            match record.groups {
                Some(groups) => known.groups.extend(groups),
                None => known.groups_incomplete = true,
            }
        }
        Ok(known)
    }

    /// Adds the targets listed in `path`: one per line (`web-01`, `group:web`), blank
    /// lines and `#` comments ignored.
    pub fn add_list(&mut self, path: &Path) -> Result<(), Error> {
        let bytes = crate::files::read_bounded(path, 64 << 20)?;
        let text = String::from_utf8(bytes).map_err(|_| Error::bad_file(path, "not UTF-8 text"))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match Target::parse(line) {
                Ok(Target::Client(id)) => {
                    self.ids.insert(id);
                }
                Ok(Target::Group(group)) => {
                    self.groups.insert(group);
                }
                Ok(Target::All) => {}
                Err(e) => return Err(Error::bad_file_because(path, format!("line {}", n + 1), e)),
            }
        }
        Ok(())
    }

    /// Whether `target` reaches a host, and if not, what was probably meant.
    pub fn check(&self, target: &Target) -> TargetCheck {
        match target {
            Target::All => TargetCheck::Known,
            Target::Client(id) if self.ids.contains(id) => TargetCheck::Known,
            Target::Group(group) if self.groups.contains(group) => TargetCheck::Known,
            Target::Group(_) if self.groups_incomplete => TargetCheck::Unverifiable,
            _ => TargetCheck::Unknown { suggestion: self.suggest(target) },
        }
    }

    /// The known target `target` is most likely a typo of: the same name as the other
    /// kind (`web` for `group:web`), else the closest name within two edits.
    fn suggest(&self, target: &Target) -> Option<Target> {
        let name = match target {
            Target::Client(id) => id.as_str(),
            Target::Group(group) => group.as_str(),
            Target::All => return None,
        };
        let other_kind = match target {
            Target::Client(_) => self.groups.iter().find(|g| g.as_str() == name).cloned().map(Target::Group),
            _ => self.ids.iter().find(|id| id.as_str() == name).cloned().map(Target::Client),
        };
        other_kind.or_else(|| {
            let candidates = self
                .ids
                .iter()
                .map(|id| (id.as_str(), Target::Client(id.clone())))
                .chain(self.groups.iter().map(|g| (g.as_str(), Target::Group(g.clone()))));
            candidates
                .map(|(candidate, target)| (edit_distance(name, candidate), target))
                .filter(|(distance, _)| *distance <= 2)
                .min_by_key(|(distance, _)| *distance)
                .map(|(_, target)| target)
        })
    }
}

/// Levenshtein distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
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
        let record = |kind, subject: &str, groups: &[&str]| IssuedRecord {
            serial: Serial::random().unwrap(),
            kind,
            subject: subject.to_owned(),
            not_after: now + time::Duration::days(365),
            issued_at: now,
            groups: Some(groups.iter().map(|g| GroupName::parse(g).unwrap()).collect()),
        };
        let records = [
            record(IssuedKind::Ca, "fts CA", &[]),
            record(IssuedKind::Client, "web-01", &["web"]),
            record(IssuedKind::Client, "web-02", &["db", "web"]),
            record(IssuedKind::Server, "localhost,127.0.0.1", &[]),
            record(IssuedKind::Client, "web-01", &[]),
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

    fn target(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    /// An index as `fts keygen` writes it, plus one line of the older five-field form.
    fn index_with(dir: &Path, lines: &[&str]) {
        let mut text = String::from(HEADER);
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(dir.join(INDEX_FILE), text).unwrap();
    }

    const T: &str = "2027-01-01T00:00:00Z\t2026-01-01T00:00:00Z";

    #[test]
    fn targets_are_known_by_the_ids_and_groups_of_issued_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        index_with(
            dir.path(),
            &[
                &format!("4f01\tca\tfts CA\t{T}\t-"),
                &format!("4f02\tserver\tlocalhost\t{T}\t-"),
                &format!("4f03\tclient\tweb-01\t{T}\tweb,frontend"),
                &format!("4f04\tclient\tdb-01\t{T}\t-"),
            ],
        );
        let known = KnownTargets::from_index(dir.path()).unwrap();
        for good in ["all", "web-01", "db-01", "group:web", "group:frontend"] {
            assert_eq!(known.check(&target(good)), TargetCheck::Known, "{good}");
        }
        let unknown = |t: &str| match known.check(&target(t)) {
            TargetCheck::Unknown { suggestion } => suggestion.map(|s| s.to_string()),
            other => panic!("{t}: {other:?}"),
        };
        assert_eq!(unknown("web").as_deref(), Some("group:web"), "a group named without group:");
        assert_eq!(unknown("web-1").as_deref(), Some("web-01"), "a typo of an id");
        assert_eq!(unknown("group:db-01").as_deref(), Some("db-01"), "an id named as a group");
        assert_eq!(unknown("group:wbe").as_deref(), Some("group:web"));
        assert_eq!(unknown("mail-07"), None, "nothing close");
        assert_eq!(unknown("fts"), None, "the CA and server are not targets");
    }

    #[test]
    fn a_group_on_an_index_without_group_fields_cannot_be_checked() {
        let dir = tempfile::tempdir().unwrap();
        index_with(dir.path(), &[&format!("4f03\tclient\tweb-01\t{T}")]);
        let known = KnownTargets::from_index(dir.path()).unwrap();
        assert_eq!(known.check(&target("group:web")), TargetCheck::Unverifiable);
        assert_eq!(known.check(&target("web-01")), TargetCheck::Known);
        assert!(
            matches!(known.check(&target("web-02")), TargetCheck::Unknown { .. }),
            "ids are still checked"
        );
    }

    #[test]
    fn a_list_of_known_targets_adds_certificates_made_outside_fts() {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("targets");
        std::fs::write(&list, "# made with openssl\nmail-01\n\n  group:mail  \nall\n").unwrap();
        let mut known = KnownTargets::from_index(dir.path()).unwrap();
        assert!(matches!(known.check(&target("mail-01")), TargetCheck::Unknown { .. }));
        known.add_list(&list).unwrap();
        assert_eq!(known.check(&target("mail-01")), TargetCheck::Known);
        assert_eq!(known.check(&target("group:mail")), TargetCheck::Known);
        std::fs::write(&list, "mail-01\ngroup:Mail\n").unwrap();
        let err = known.add_list(&list).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("targets"), "{err}");
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("web", "web"), 0);
        assert_eq!(edit_distance("web", "wbe"), 2);
        assert_eq!(edit_distance("web-1", "web-01"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
