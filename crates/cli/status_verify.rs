//! `fts status --verify`: checks every stored receipt against the certificate it was
//! checked with when it arrived, and each host's chain.
//!
//! Findings (exit 3): a stored certificate the client CA did not issue (`--ca`: one
//! made by whoever owns the status folder); a receipt whose signature, identity or
//! hash does not check (altered in the status store, or one host's receipt filed
//! under another's id); a
//! chain with a receipt missing or out of place (removed, or reordered); two receipts
//! with one number; a host whose stored chain is shorter than the count it declared
//! at its last poll (a dropped tail) or whose head differs. A chain restart (a new
//! state or a new certificate, a receipt saying so, signed) is listed as a restart,
//! not a finding. A forget marker (`--forget`) ends a host's chain: a host enrolled
//! again under the id starts anew.
//!
//! What this proves: whoever altered the status folder could not make a host's
//! signature, so what the receipts say is what the host said. What it cannot prove:
//! that the tail the host last declared is all it made since (a server can drop both a
//! tail and the poll that declared it; the host's own `--metrics-file` has its count).

use std::collections::BTreeMap;

use anyhow::Context;
use fts_proto::{ClientId, FileHash, Published, Receipt};
use fts_status::StatusBackend;
use fts_status::receipts::{LogLine, StoredReceipt};
use serde::Serialize;
use tokio_rustls::rustls::pki_types::CertificateDer;

use crate::exit;

/// One finding.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Finding {
    client_id: ClientId,
    /// `bad-receipt`, `bad-certificate` (missing, or not issued by the client CA),
    /// `gap`, `out-of-chain`, `duplicate`, `dropped-tail`, `head-differs`.
    kind: &'static str,
    message: String,
}

/// A restart, which is not a finding.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Restart {
    client_id: ClientId,
    reason: String,
    /// The head of the chain it ends, if it named one.
    previous: Option<FileHash>,
    made: Published,
}

/// What `--verify --json` prints.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Report {
    receipts: usize,
    hosts: usize,
    findings: Vec<Finding>,
    restarts: Vec<Restart>,
    damaged_lines: Vec<String>,
}

/// A host's chain as verification walks it.
#[derive(Debug, Default)]
struct Chain {
    number: u64,
    head: Option<FileHash>,
    /// Every receipt stored of the host since it was last forgotten.
    stored: std::collections::BTreeSet<FileHash>,
    /// Gaps in its chains, each with its finding: reported unless the receipts the
    /// host says it dropped unsent (`dropped n`, signed) account for them.
    gaps: Vec<(u64, Finding)>,
    /// The receipts the host says it dropped unsent.
    dropped: u64,
}

pub fn run(status: &dyn StatusBackend, ca: &std::path::Path, json: bool) -> anyhow::Result<u8> {
    // The status folder is the server's to write: a certificate in it proves nothing
    // until it chains to the client CA.
    let cas = fts_trust::pem::load_certificates(ca).with_context(|| {
        format!(
            "--verify checks the stored certificates against the client CA: cannot read {} (--ca)",
            ca.display()
        )
    })?;
    let log = status.receipts().context("cannot read the receipt log")?;
    let clients = status.clients().context("cannot read the hosts' status")?;
    let mut report = Report { damaged_lines: log.damaged, ..Report::default() };
    let mut chains: BTreeMap<ClientId, Chain> = BTreeMap::new();
    let mut certificates: BTreeMap<String, Result<Vec<u8>, String>> = BTreeMap::new();
    for line in log.lines {
        let stored = match line {
            LogLine::Forget(forgotten) => {
                chains.remove(&forgotten.client_id);
                continue;
            }
            LogLine::Receipt(stored) => stored,
        };
        report.receipts += 1;
        let certificate = certificates
            .entry(stored.certificate.clone())
            .or_insert_with(|| stored_certificate(status, &stored.certificate, &cas));
        let certificate = match certificate {
            Ok(certificate) => certificate,
            Err(why) => {
                report.findings.push(finding(&stored, "bad-certificate", why.clone()));
                continue;
            }
        };
        let Some(receipt) = check(&stored, certificate, &mut report) else { continue };
        let chain = chains.entry(stored.client_id.clone()).or_default();
        follow(chain, &stored, &receipt, &mut report);
    }
    report.hosts = chains.len();
    for chain in chains.values_mut() {
        let missing: u64 = chain.gaps.iter().map(|(n, _)| n).sum();
        if missing > chain.dropped {
            report.findings.extend(chain.gaps.drain(..).map(|(_, f)| f));
        }
    }
    for client in &clients {
        let (Some(book), Some(chain)) = (&client.receipts, chains.get(&client.client_id)) else { continue };
        // What its last poll declared must be stored: the receipts it had made by then
        // (the receipt of that poll's own answer came after it).
        let (Some(declared), Some(head)) = (book.declared, book.declared_head) else { continue };
        if chain.stored.contains(&head) {
            continue;
        }
        let (kind, message) = if declared > chain.number {
            let missing = declared - chain.number;
            let message = format!(
                "it declared receipt {declared} at its last poll ({}), the stored chain ends at {}: the last {missing} are missing",
                client.last_poll, chain.number
            );
            ("dropped-tail", message)
        } else {
            (
                "head-differs",
                format!("its last poll declared receipt {declared} as {head}, which is not stored"),
            )
        };
        report.findings.push(Finding { client_id: client.client_id.clone(), kind, message });
    }

    let code = if report.findings.is_empty() && report.damaged_lines.is_empty() {
        exit::SUCCESS
    } else {
        exit::REPORTED
    };
    if json {
        serde_json::to_writer_pretty(std::io::stdout().lock(), &report)?;
        println!();
        return Ok(code);
    }
    for f in &report.findings {
        println!("FINDING {} {}: {}", f.client_id, f.kind, f.message);
    }
    for line in &report.damaged_lines {
        println!("FINDING damaged line: {line}");
    }
    for r in &report.restarts {
        let previous = r.previous.map_or("none".to_owned(), |h| h.to_string());
        println!("restart {}: {} at {} (previous head {previous})", r.client_id, r.reason, r.made);
    }
    println!(
        "verified {} receipts of {} hosts: {} finding(s), {} restart(s)",
        report.receipts,
        report.hosts,
        report.findings.len() + report.damaged_lines.len(),
        report.restarts.len()
    );
    Ok(code)
}

/// The receipt, when its signature, identity and hash check.
fn check(stored: &StoredReceipt, certificate: &[u8], report: &mut Report) -> Option<Receipt> {
    let checked = match fts_trust::check_receipt(&stored.signed, &CertificateDer::from(certificate)) {
        Ok(checked) => checked,
        Err(e) => {
            let message =
                format!("a receipt stored {} does not check: {}", stored.received, fts_proto::ErrorChain(&e));
            report.findings.push(finding(stored, "bad-receipt", message));
            return None;
        }
    };
    let receipt = checked.receipt().clone();
    if receipt.client_id != stored.client_id {
        let message = format!(
            "receipt {} of {} is filed as {}'s (stored {})",
            receipt.number, receipt.client_id, stored.client_id, stored.received
        );
        report.findings.push(finding(stored, "bad-receipt", message));
        return None;
    }
    if checked.hash() != stored.hash {
        let message = format!("receipt {} is filed under another hash ({})", receipt.number, stored.hash);
        report.findings.push(finding(stored, "bad-receipt", message));
        return None;
    }
    Some(receipt)
}

/// Walks one receipt along its host's chain.
fn follow(chain: &mut Chain, stored: &StoredReceipt, receipt: &Receipt, report: &mut Report) {
    if !chain.stored.insert(stored.hash) {
        return; // stored twice (a host resent it): harmless
    }
    chain.dropped += receipt
        .outcomes
        .iter()
        .map(|o| match o {
            fts_proto::Outcome::Dropped { count } => *count,
            _ => 0,
        })
        .sum::<u64>();
    let unsigned_restart = chain.number > 0 && receipt.number == 1 && receipt.previous.is_none();
    if receipt.is_restart() || unsigned_restart {
        let reason = receipt.restart_reason().map_or("new-chain (the host's state was lost)", |r| r.as_str());
        // A restart names the old chain's head: it must be stored.
        if let Some(previous) = receipt.previous.filter(|p| chain.number > 0 && !chain.stored.contains(p)) {
            let message = format!(
                "its restart names {previous} as the end of its old chain, which is not stored: the old chain's tail is missing"
            );
            report.findings.push(finding(stored, "dropped-tail", message));
        }
        report.restarts.push(Restart {
            client_id: stored.client_id.clone(),
            reason: reason.to_owned(),
            previous: receipt.previous,
            made: receipt.made.clone(),
        });
        (chain.number, chain.head) = (receipt.number, Some(stored.hash));
        return;
    }
    let expected = chain.number + 1;
    match receipt.number {
        n if n == expected && receipt.previous == chain.head => {}
        n if n == expected => report.findings.push(finding(
            stored,
            "out-of-chain",
            format!(
                "receipt {n} does not name receipt {} as its previous: one was altered or replaced",
                chain.number
            ),
        )),
        n if n > expected => {
            let message = format!(
                "receipt {n} follows receipt {}: {} receipt(s) missing (removed from the status store?)",
                chain.number,
                n - expected
            );
            chain.gaps.push((n - expected, finding(stored, "gap", message)));
        }
        n => report.findings.push(finding(
            stored,
            "duplicate",
            format!("a second, different receipt {n} after receipt {}", chain.number),
        )),
    }
    if receipt.number >= chain.number {
        (chain.number, chain.head) = (receipt.number, Some(stored.hash));
    }
}

/// A stored certificate, if it is there and the client CA issued it.
fn stored_certificate(
    status: &dyn StatusBackend,
    name: &str,
    cas: &[tokio_rustls::rustls::pki_types::CertificateDer<'static>],
) -> Result<Vec<u8>, String> {
    let der = match status.certificate(name) {
        Ok(Some(der)) => der,
        Ok(None) => return Err(format!("certificate {name} is not in the status folder")),
        Err(e) => return Err(format!("certificate {name}: {}", fts_proto::ErrorChain(&e))),
    };
    fts_trust::issued_by_client_ca(&CertificateDer::from(der.as_slice()), cas)
        .map_err(|e| format!("certificate {name} of the status folder: {}", fts_proto::ErrorChain(&e)))?;
    Ok(der)
}

fn finding(stored: &StoredReceipt, kind: &'static str, message: String) -> Finding {
    Finding { client_id: stored.client_id.clone(), kind, message }
}

/// One stored receipt of a host, for `fts status --host`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReceiptLine {
    pub number: u64,
    pub hash: FileHash,
    pub made: Published,
    pub received: Published,
    pub outcomes: Vec<String>,
}

/// The stored receipts of `id` since it was last forgotten, oldest first (not
/// verified: `--verify` does that).
pub fn receipts_of(status: &dyn StatusBackend, id: &ClientId) -> anyhow::Result<Vec<ReceiptLine>> {
    let log = status.receipts().context("cannot read the receipt log")?;
    let mut lines = Vec::new();
    for line in log.lines {
        match line {
            LogLine::Forget(f) if f.client_id == *id => lines.clear(),
            LogLine::Receipt(stored) if stored.client_id == *id => {
                let Ok(receipt) = Receipt::parse(&stored.signed.bytes) else { continue };
                lines.push(ReceiptLine {
                    number: receipt.number,
                    hash: stored.hash,
                    made: receipt.made.clone(),
                    received: stored.received.clone(),
                    outcomes: receipt.outcomes.iter().map(ToString::to_string).collect(),
                });
            }
            _ => {}
        }
    }
    Ok(lines)
}
