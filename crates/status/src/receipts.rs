//! The receipt log: every host receipt the server accepted, as the host signed it,
//! and the certificate that checks it.
//!
//! ```text
//! status/
//!   receipts/2026-12-02.jsonl     one line per receipt (or forget marker), appended
//!   certificates/<serial>.der     each client certificate once per serial
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
    /// The serial of the session's certificate (its file in `certificates/`).
    pub certificate: String,
    /// When the server received it.
    pub received: Published,
    /// The SHA-256 of its bytes, as the server computed it.
    pub hash: FileHash,
    /// The receipt, its scheme and signature, as the host sent them.
    pub signed: SignedReceipt,
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
    /// Stores `arrivals` durably, in one append and one flush, then updates each
    /// client's status file. Returns once the receipts are on disk; an error means
    /// none may be acknowledged.
    pub fn record_receipts(&self, arrivals: &[ReceiptArrival]) -> Result<()> {
        if arrivals.is_empty() {
            return Ok(());
        }
        let status = Dir::open(self.dir())?;
        let (certificates, _) = status.open_or_create_dir(CERTIFICATES_DIR, 0o755)?;
        let mut serials: Vec<&str> = Vec::new();
        for arrival in arrivals {
            if serials.contains(&arrival.serial.as_str()) {
                continue;
            }
            serials.push(&arrival.serial);
            store_certificate(&certificates, &arrival.serial, &arrival.certificate)?;
        }
        let mut bytes = Vec::new();
        for arrival in arrivals {
            let line = LogLine::Receipt(StoredReceipt {
                client_id: arrival.client_id.clone(),
                certificate: arrival.serial.clone(),
                received: arrival.received.clone(),
                hash: arrival.hash,
                signed: arrival.signed.clone(),
            });
            push_line(&mut bytes, &line)?;
        }
        let day = day_of(&arrivals[0].received);
        append_to_log(&status, &day, &bytes)?;
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
                // The receipts are stored: the log is what --verify reads, and the
                // file is rebuilt from it at the next start.
                tracing::warn!(client_id = %client, error = %ErrorChain(&e), "cannot record a receipt in the client's status file");
            }
        }
        Ok(())
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

    /// The certificate of `serial` the server stored, DER.
    pub fn certificate(&self, serial: &str) -> Result<Option<Vec<u8>>> {
        if !is_serial(serial) {
            return Ok(None);
        }
        let path = self.dir().join(CERTIFICATES_DIR).join(format!("{serial}.der"));
        match fts_fs::read_bounded(&path, MAX_CERTIFICATE) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Brings every client's status file up to the receipts in the log: a crash
    /// between the log's flush and a file's update left the file behind. Run by the
    /// server at start; cheap when nothing is missing (one read of the log).
    pub fn recover_receipts(&self) -> Result<usize> {
        let log = self.read_receipts()?;
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
            // The receipts after the file's head (all of them when the head is not in
            // the log: then the file is older than every line).
            let from = match &head {
                Some(head) => match stored.iter().rposition(|s| s.hash == *head) {
                    Some(at) => at + 1,
                    None => 0,
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

/// Takes one receipt into a client's status: its chain head, and each outcome.
pub fn apply_receipt(status: &mut ClientStatus, receipt: &Receipt, hash: &FileHash, received: &Published) {
    let book = status.receipts.get_or_insert_with(ReceiptBook::default);
    if receipt.is_restart() {
        book.restarts += 1;
        book.stored = receipt.number;
        book.stored_head = Some(*hash);
    } else if receipt.number > book.stored {
        book.stored = receipt.number;
        book.stored_head = Some(*hash);
    }
    book.last_received = Some(received.clone());
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
                };
                status.entries.retain(|e| !(e.target == state.target && e.seq == state.seq));
                status.entries.push(state);
            }
            Outcome::Alarm { name, raised: true } => {
                status.alarms.entry(name.clone()).or_insert_with(|| receipt.made.clone());
            }
            Outcome::Alarm { name, raised: false } => {
                status.alarms.remove(name);
            }
            Outcome::RebootRequired => status.reboot_required = true,
            Outcome::Dropped { count } => book_of(status).dropped += count,
            Outcome::Restart { .. } => {}
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

/// A serial as the server writes it: lower-case hex, at most 20 bytes (RFC 5280).
fn is_serial(serial: &str) -> bool {
    !serial.is_empty()
        && serial.len() <= 40
        && serial.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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

/// Writes a certificate's file unless one for its serial is there.
fn store_certificate(certificates: &Dir, serial: &str, der: &[u8]) -> Result<()> {
    if !is_serial(serial) {
        return Err(StatusError::BadSerial { serial: serial.chars().take(64).collect() });
    }
    let name = format!("{serial}.der");
    if certificates.stat(&name).is_ok() {
        return Ok(());
    }
    let options = WriteOptions { durable: true, overwrite: false, label: "certificate", ..STATUS_WRITE };
    match certificates.write_atomic(&name, der, &options) {
        Ok(()) => Ok(()),
        // Another batch wrote it meanwhile.
        Err(_) if certificates.stat(&name).is_ok() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
