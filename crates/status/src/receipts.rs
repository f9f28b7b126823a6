//! The receipt log: every host receipt the server accepted, as the host signed it,
//! and the certificate that checks it.
//!
//! ```text
//! status/
//!   receipts/2026-12-02.jsonl     one line per receipt (or forget marker), appended
//!   certificates/<sha256>.der     each client certificate once (named by its hash)
//! ```
//!
//! A line is `{"receipt": {"client-id", "certificate", "received", "hash", "signed":
//! {"receipt", "scheme", "signature"}}}` or `{"forget": {"client-id", "at"}}` (`fts
//! status --forget`: receipts of that id before it belong to a host that is gone). The
//! files are never rewritten: appended, then flushed (`fdatasync`) before
//! [`StatusDir::record_receipts`] returns, so a receipt the server acknowledges is on
//! disk. A crash mid-append leaves a line without its newline, cut off before the next
//! append and skipped by readers. The signed bytes are kept exactly as they came:
//! `fts status --verify` checks every one against its certificate and its chain, so a
//! line altered or removed here is found, whoever did it.
//!
//! After the log, each client's status file takes the receipts' outcomes
//! ([`ClientStatus::entries`]) and its chain head; that file is advisory like the rest
//! and rebuilt from the log at start ([`StatusDir::recover_receipts`]) when a crash
//! came between the two.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use fts_fs::{Dir, WriteOptions};
use fts_proto::{
    ClientId, EntryOutcomeKind, ErrorChain, FileHash, Outcome, Published, Receipt, SignedReceipt,
};
use serde::{Deserialize, Serialize};

use crate::dir::{ClientStatus, EntryState, MAX_ENTRY_STATES, ReceiptBook, STATUS_WRITE, StatusDir};
use crate::error::{Result, StatusError};

/// The receipt log's folder in the status folder.
pub const RECEIPTS_DIR: &str = "receipts";
/// The certificates' folder in the status folder.
pub const CERTIFICATES_DIR: &str = "certificates";
/// A line longer than this is not one the server wrote.
const MAX_LINE: usize = 256 << 10;
/// A certificate file larger than this is not one the server wrote.
const MAX_CERTIFICATE: u64 = 64 << 10;

/// One receipt, checked by the server (signature against the session's certificate,
/// client id and targets against its identity), ready to be stored.
#[derive(Debug, Clone)]
pub struct ReceiptArrival {
    /// The session's client id (the receipt names the same).
    pub client_id: ClientId,
    /// The session's certificate, DER.
    pub certificate: Vec<u8>,
    /// Its serial, hex.
    pub serial: String,
    /// The receipt as signed.
    pub signed: SignedReceipt,
    /// Its parsed bytes.
    pub receipt: Receipt,
    /// The SHA-256 of its bytes.
    pub hash: FileHash,
    /// When the server received it.
    pub received: Published,
}

/// One line of the receipt log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogLine {
    /// A stored receipt.
    Receipt(StoredReceipt),
    /// `fts status --forget`: the id's earlier receipts are of a host that is gone.
    Forget(Forgotten),
}

/// A receipt as the log keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct StoredReceipt {
    /// The session's client id.
    pub client_id: ClientId,
    /// The session's certificate: the SHA-256 of its DER, hex (its file in
    /// `certificates/`).
    pub certificate: String,
    /// When the server received it.
    pub received: Published,
    /// The SHA-256 of its bytes, as the server computed it.
    pub hash: FileHash,
    /// The receipt, its scheme and signature, as the host sent them.
    pub signed: SignedReceipt,
}

impl StoredReceipt {
    /// How the log keeps `arrival`, whose certificate is stored as `certificate`
    /// ([`certificate_name`]).
    pub fn of(arrival: &ReceiptArrival, certificate: String) -> StoredReceipt {
        StoredReceipt {
            client_id: arrival.client_id.clone(),
            certificate,
            received: arrival.received.clone(),
            hash: arrival.hash,
            signed: arrival.signed.clone(),
        }
    }
}

/// A forget marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Forgotten {
    /// The id forgotten.
    pub client_id: ClientId,
    /// When.
    pub at: Published,
}

/// What reading the log found.
#[derive(Debug, Default)]
pub struct ReceiptLog {
    /// Every whole line, in the order written (files by day, lines by position).
    pub lines: Vec<LogLine>,
    /// Lines that do not parse (damage, or a torn tail), with their file and line.
    pub damaged: Vec<String>,
}

impl StatusDir {
    /// Stores `arrivals` durably, in one append and one flush, leaving out those
    /// already stored (a host resends a receipt whose acknowledgement it lost).
    /// Returns once they are on disk; an error means none may be acknowledged. The
    /// client files take them in [`StatusDir::apply_receipts`], after the
    /// acknowledgement.
    pub fn record_receipts(&self, arrivals: &[ReceiptArrival]) -> Result<()> {
        let new = self.not_stored_yet(arrivals);
        if new.is_empty() {
            return Ok(());
        }
        let status = Dir::open(self.dir())?;
        let (certificates, created) = status.open_or_create_dir(CERTIFICATES_DIR, 0o755)?;
        if created {
            status.sync()?;
        }
        let mut stored: Vec<String> = Vec::new();
        let mut bytes = Vec::new();
        for arrival in new {
            let name = certificate_name(&arrival.certificate);
            if !stored.contains(&name) {
                store_certificate(&certificates, &name, &arrival.certificate)?;
                stored.push(name.clone());
            }
            let line = LogLine::Receipt(StoredReceipt::of(arrival, name));
            push_line(&mut bytes, &line)?;
        }
        append_to_log(&status, &day_of(&arrivals[0].received), &bytes)
    }

    /// The arrivals that are not stored yet: a receipt numbered at or below the
    /// newest stored of its host's chain is, unless it starts a new chain.
    fn not_stored_yet<'a>(&self, arrivals: &'a [ReceiptArrival]) -> Vec<&'a ReceiptArrival> {
        let mut books: BTreeMap<&ClientId, ReceiptBook> = BTreeMap::new();
        let mut new = Vec::new();
        for arrival in arrivals {
            let book =
                books.entry(&arrival.client_id).or_insert_with(|| match self.read_file(&arrival.client_id) {
                    Ok(Some(status)) => status.receipts.unwrap_or_default(),
                    _ => ReceiptBook::default(),
                });
            let (receipt, hash) = (&arrival.receipt, &arrival.hash);
            if starts_a_chain(receipt, hash, book) || receipt.number > book.stored {
                if receipt.number == 1 {
                    book.first = Some(*hash);
                }
                book.stored = receipt.number;
                new.push(arrival);
            }
        }
        new
    }

    /// Takes stored receipts into their clients' status files (not flushed: the log
    /// is; [`StatusDir::recover_receipts`] redoes it after a crash). A failure is
    /// logged: the receipts are stored, and `--verify` reads the log.
    pub fn apply_receipts(&self, arrivals: &[ReceiptArrival]) {
        let mut by_client: BTreeMap<&ClientId, Vec<&ReceiptArrival>> = BTreeMap::new();
        for arrival in arrivals {
            by_client.entry(&arrival.client_id).or_default().push(arrival);
        }
        for (client, arrivals) in by_client {
            let applied = self.update(client, |status| {
                let mut status = status?;
                for arrival in &arrivals {
                    apply_receipt(&mut status, &arrival.receipt, &arrival.hash, &arrival.received);
                }
                Some(status)
            });
            if let Err(e) = applied {
                tracing::warn!(client_id = %client, error = %ErrorChain(&e), "cannot record a receipt in the client's status file");
            }
        }
    }

    /// Appends a forget marker for `client` (durably) and removes its status file.
    /// Says whether there was a file.
    pub fn forget(&self, client: &ClientId, now: Published) -> Result<bool> {
        let status = Dir::open(self.dir())?;
        let mut bytes = Vec::new();
        push_line(&mut bytes, &LogLine::Forget(Forgotten { client_id: client.clone(), at: now.clone() }))?;
        append_to_log(&status, &day_of(&now), &bytes)?;
        self.remove_client_file(client)
    }

    /// Reads the whole receipt log (`fts status --verify`).
    pub fn read_receipts(&self) -> Result<ReceiptLog> {
        self.read_receipt_days(None)
    }

    /// Reads the newest `days` day files of the receipt log (all with `None`).
    fn read_receipt_days(&self, days_kept: Option<usize>) -> Result<ReceiptLog> {
        let mut log = ReceiptLog::default();
        let folder = self.dir().join(RECEIPTS_DIR);
        let dir = match Dir::open(&folder) {
            Ok(dir) => dir,
            Err(e) if e.is_not_found() => return Ok(log),
            Err(e) => return Err(e.into()),
        };
        let mut days: Vec<String> = dir
            .entries()?
            .into_iter()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| name.ends_with(".jsonl") && !name.starts_with('.'))
            .collect();
        days.sort();
        if let Some(keep) = days_kept {
            days.drain(..days.len().saturating_sub(keep));
        }
        for day in days {
            let mut text = String::new();
            dir.open_file(&day)?
                .read_to_string(&mut text)
                .map_err(StatusError::io("read", folder.join(&day)))?;
            let whole = text.rfind('\n').map_or("", |end| &text[..end]);
            for (n, line) in whole.lines().enumerate() {
                match serde_json::from_str::<LogLine>(line) {
                    Ok(parsed) if line.len() <= MAX_LINE => log.lines.push(parsed),
                    Ok(_) => log.damaged.push(format!("{day} line {}: longer than {MAX_LINE} bytes", n + 1)),
                    Err(e) => log.damaged.push(format!("{day} line {}: {e}", n + 1)),
                }
            }
        }
        Ok(log)
    }

    /// The certificate the log names `name` (its SHA-256, hex), DER.
    pub fn certificate(&self, name: &str) -> Result<Option<Vec<u8>>> {
        if !is_certificate_name(name) {
            return Ok(None);
        }
        let path = self.dir().join(CERTIFICATES_DIR).join(format!("{name}.der"));
        match fts_fs::read_bounded(&path, MAX_CERTIFICATE) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Brings every client's status file up to the receipts in the log: a crash
    /// between the log's flush and a file's update left the file behind. Run by the
    /// server at start; it reads the newest two days of the log.
    pub fn recover_receipts(&self) -> Result<usize> {
        // A crash leaves at most the receipts of its last batches unapplied: the
        // newest two days' files hold them (one, unless it came at midnight).
        let log = self.read_receipt_days(Some(2))?;
        let mut newest: BTreeMap<ClientId, Vec<StoredReceipt>> = BTreeMap::new();
        for line in log.lines {
            match line {
                LogLine::Receipt(stored) => newest.entry(stored.client_id.clone()).or_default().push(stored),
                LogLine::Forget(forgotten) => {
                    newest.remove(&forgotten.client_id);
                }
            }
        }
        let mut recovered = 0;
        for (client, stored) in newest {
            let Some(status) = self.read_file(&client)? else { continue };
            let head = status.receipts.as_ref().and_then(|book| book.stored_head);
            // The receipts after the file's head; none when the head is older than the
            // days read (the file then took everything since).
            let from = match &head {
                Some(head) => match stored.iter().rposition(|s| s.hash == *head) {
                    Some(at) => at + 1,
                    None => continue,
                },
                None => 0,
            };
            if from >= stored.len() {
                continue;
            }
            let missing: Vec<(Receipt, StoredReceipt)> = stored[from..]
                .iter()
                .filter_map(|s| Receipt::parse(&s.signed.bytes).ok().map(|r| (r, s.clone())))
                .collect();
            recovered += missing.len();
            self.update(&client, |status| {
                let mut status = status?;
                for (receipt, stored) in &missing {
                    apply_receipt(&mut status, receipt, &stored.hash, &stored.received);
                }
                Some(status)
            })?;
        }
        Ok(recovered)
    }
}

/// Whether `receipt` starts a new chain over one whose newest stored receipt is
/// `stored`: a signed restart, or a first receipt naming no previous one (a host whose
/// state was lost: re-imaged, or its state file deleted).
fn starts_a_chain(receipt: &Receipt, hash: &FileHash, book: &ReceiptBook) -> bool {
    let first_again = book.first.as_ref() == Some(hash); // the same first receipt, resent
    (receipt.is_restart() && !first_again)
        || (book.stored > 0 && receipt.number == 1 && receipt.previous.is_none() && !first_again)
}

/// Takes one receipt into a client's status: its chain head, and each outcome. A
/// receipt already taken (numbered at or below the chain's newest) changes nothing. A
/// new chain starts the host's entries afresh: what the old chain said of them is
/// not what the host has now. What a receipt says of the host itself (alarms, a
/// reboot) counts only when no later poll has spoken (its number is above the count
/// the host declared at its last poll).
pub fn apply_receipt(status: &mut ClientStatus, receipt: &Receipt, hash: &FileHash, received: &Published) {
    let book = status.receipts.get_or_insert_with(ReceiptBook::default);
    if starts_a_chain(receipt, hash, book) {
        book.restarts += 1;
        book.declared = None;
        book.declared_head = None;
        status.entries.clear();
        status.offered.clear();
    } else if receipt.number <= book.stored {
        return;
    }
    book.stored = receipt.number;
    book.stored_head = Some(*hash);
    if receipt.number == 1 {
        book.first = Some(*hash);
    }
    book.last_received = Some(received.clone());
    let fresh = book.declared.is_none_or(|declared| receipt.number > declared);
    for outcome in &receipt.outcomes {
        match outcome {
            Outcome::Entry(entry) => {
                let (outcome, detail) = entry_outcome(&entry.kind);
                let state = EntryState {
                    target: entry.target.clone(),
                    seq: entry.seq.get(),
                    file_name: entry.file.as_ref().map(|(name, _)| name.clone()),
                    file_hash: entry.file.as_ref().map(|(_, hash)| *hash),
                    outcome: outcome.to_owned(),
                    detail,
                    at: receipt.made.clone(),
                    receipt: receipt.number,
                };
                status.entries.retain(|e| !(e.target == state.target && e.seq == state.seq));
                status.entries.push(state);
            }
            Outcome::Alarm { name, raised: true } if fresh => {
                status.alarms.entry(name.clone()).or_insert_with(|| receipt.made.clone());
            }
            Outcome::Alarm { name, raised: false } if fresh => {
                status.alarms.remove(name);
            }
            Outcome::RebootRequired if fresh => status.reboot_required = true,
            Outcome::Dropped { count } => book_of(status).dropped += count,
            _ => {}
        }
    }
    if status.entries.len() > MAX_ENTRY_STATES {
        status.entries.sort_by(|a, b| a.at.cmp(&b.at));
        status.entries.drain(..status.entries.len() - MAX_ENTRY_STATES);
    }
}

fn book_of(status: &mut ClientStatus) -> &mut ReceiptBook {
    status.receipts.get_or_insert_with(ReceiptBook::default)
}

/// An entry outcome's name and detail, as status files and views show them.
pub fn entry_outcome(kind: &EntryOutcomeKind) -> (&'static str, Option<String>) {
    match kind {
        EntryOutcomeKind::Installed => ("installed", None),
        EntryOutcomeKind::HookOk { attempt } => ("hook-ok", Some(attempt.to_string())),
        EntryOutcomeKind::HookFailed { attempt, allowed } => {
            ("hook-failed", Some(format!("{attempt}/{allowed}")))
        }
        EntryOutcomeKind::Held { reason } => ("held", Some(reason.to_string())),
        EntryOutcomeKind::Refused { reason } => ("refused", Some(reason.to_string())),
        EntryOutcomeKind::Withdrawn => ("withdrawn", None),
        EntryOutcomeKind::WithdrawnInstalled => ("withdrawn-installed", None),
        EntryOutcomeKind::Superseded { by } => ("superseded", Some(by.to_string())),
    }
}

/// `YYYY-MM-DD.jsonl` of a time.
fn day_of(time: &Published) -> String {
    format!("{}.jsonl", &time.as_str()[..10])
}

/// A certificate's name in `certificates/`: the SHA-256 of its DER, hex (a serial
/// alone is not unique across CAs or reissues).
pub fn certificate_name(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

/// A name [`certificate_name`] makes: 64 lower-case hex digits.
pub fn is_certificate_name(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn push_line(bytes: &mut Vec<u8>, line: &LogLine) -> Result<()> {
    serde_json::to_writer(&mut *bytes, line)
        .map_err(|source| StatusError::Encode { what: "a receipt log line", source })?;
    bytes.push(b'\n');
    Ok(())
}

/// Appends `bytes` (whole lines) to the day's file and flushes them; a torn line a
/// crash left at its end is cut off first, so that it cannot glue onto the next.
fn append_to_log(status: &Dir, day: &str, bytes: &[u8]) -> Result<()> {
    let (receipts, created) = status.open_or_create_dir(RECEIPTS_DIR, 0o755)?;
    if created {
        status.sync()?;
    }
    let path = receipts.join(day);
    let existed = receipts.stat(day).is_ok();
    let mut file = receipts.open_or_create_file(day, 0o644)?;
    // One writer at a time, across processes (`fts status --forget` appends too).
    file.lock().map_err(StatusError::io("lock", &path))?;
    let len = file.seek(SeekFrom::End(0)).map_err(StatusError::io("seek in", &path))?;
    if len > 0 {
        let whole = whole_lines_len(&mut file, len, &path)?;
        if whole < len {
            tracing::warn!(path = %path.display(), cut = len - whole, "cutting off a torn receipt line");
            fts_fs::truncate_durably(&file, whole, &path)?;
            file.seek(SeekFrom::Start(whole)).map_err(StatusError::io("seek in", &path))?;
        }
    }
    fts_fs::append_durably(&file, bytes, &path)?;
    if !existed {
        receipts.sync()?;
    }
    Ok(())
}

/// The length of the file up to and including its last newline.
fn whole_lines_len(file: &mut std::fs::File, len: u64, path: &Path) -> Result<u64> {
    let mut end = len;
    let mut chunk = vec![0u8; 4096];
    while end > 0 {
        let start = end.saturating_sub(chunk.len() as u64);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start)).map_err(StatusError::io("seek in", path))?;
        file.read_exact(&mut chunk[..n]).map_err(StatusError::io("read", path))?;
        if let Some(at) = chunk[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Writes a certificate's file unless it is there (its name is its hash).
fn store_certificate(certificates: &Dir, name: &str, der: &[u8]) -> Result<()> {
    let file = format!("{name}.der");
    if certificates.stat(&file).is_ok() {
        return Ok(());
    }
    let options = WriteOptions { durable: true, overwrite: false, label: "certificate", ..STATUS_WRITE };
    match certificates.write_atomic(&file, der, &options) {
        Ok(()) => Ok(()),
        // Another batch wrote it meanwhile.
        Err(_) if certificates.stat(&file).is_ok() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
