//! The host's receipts (docs/PROTOCOL.md section 9): after an answer in which
//! anything changed, one receipt with every outcome, signed with this host's
//! certificate key, sent at once on a connection of its own.
//!
//! What goes in: every install (with its file name and hash), every hook's result,
//! every report (held, refused, withdrawn, withdrawn-installed, superseded), the
//! supersessions applied, and the alarms raised or cleared since the last receipt.
//! `Outcomes` gathers them while the answer is read; `Client::send_receipt`
//! makes the receipt, queues it in the state (saved before it is sent, so a crash
//! resends it), and sends the queue, oldest first, at most
//! [`MAX_RECEIPTS_PER_REQUEST`] per request.
//!
//! The chain: each receipt names the hash of the one before. A new certificate
//! starts a new chain with a `restart new-certificate` receipt naming the old head;
//! a state file started anew starts with `restart new-state` and `none`. At most
//! [`MAX_UNSENT`] receipts wait unsent (an old server, a long outage); past that the
//! oldest go, and the next receipt says how many (`dropped n`).
//!
//! With a server that stored a receipt, polls no longer carry `rejected`: the
//! receipts say it, signed. A server that answers `unknown-request` (an older fts)
//! gets the reports in `rejected` as before, and receipts are tried again a day
//! later.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fts_proto::{
    AlarmName, EntryOutcome, EntryOutcomeKind, ErrorChain, ErrorCode, FileHash, FileName, MAX_OUTCOMES,
    MAX_RECEIPTS_PER_REQUEST, MAX_SENDABLE_RECEIPT_BYTES, Outcome, Published, Receipt, ReceiptRequest,
    RejectReason, Report, RestartReason, Seq, ServerFrame, SignedReceipt, Target,
};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::client::{Client, ClientTransport, unix_now};
use crate::connection::{Connection, ReadError};

/// Receipts kept unsent at most; past that the oldest are dropped (and counted).
pub const MAX_UNSENT: usize = 1000;
/// After a server answered `unknown-request`, receipts are tried again this much later.
const RETRY_OLD_SERVER: u64 = 86_400;
/// A receipt the server left out of its acknowledgement this many times (it failed
/// the server's check) is dropped and counted.
const MAX_REFUSALS: u32 = 3;

/// The receipt chain in the state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReceiptQueue {
    /// The number of the newest receipt made in the current chain (0: none yet).
    pub count: u64,
    /// Its hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<FileHash>,
    /// Hex SHA-256 of the certificate the chain is signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_sha256: Option<String>,
    /// Receipts made and not yet acknowledged, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsent: Vec<QueuedReceipt>,
    /// Receipts dropped unsent since the last one made (said in the next).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
    /// The alarms raised as the last receipt said.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub alarms: BTreeSet<AlarmName>,
    /// The server stored a receipt: polls carry no `rejected`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub server_takes_receipts: bool,
    /// When a server last answered `unknown-request` (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused_at: Option<u64>,
}

/// A receipt waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct QueuedReceipt {
    /// Its hash.
    pub hash: FileHash,
    /// The receipt, its scheme and signature.
    pub signed: SignedReceipt,
    /// How many acknowledgements left it out.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub refusals: u32,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// The outcomes gathered since the last receipt was made (memory only: a crash
/// before the receipt loses them, and the host's next poll still says its `since`).
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    entries: Vec<EntryOutcome>,
    reports: Vec<Report>,
    /// Outcomes of the host itself (`reboot-required`).
    host: Vec<Outcome>,
}

impl Outcomes {
    /// An entry installed.
    pub(crate) fn installed(&mut self, target: &Target, seq: Seq, name: &FileName, hash: FileHash) {
        self.push(target, seq, Some((name.clone(), hash)), EntryOutcomeKind::Installed);
    }

    /// A hook's result for an installed entry.
    pub(crate) fn hook(
        &mut self,
        target: &Target,
        seq: Seq,
        file: (FileName, FileHash),
        kind: EntryOutcomeKind,
    ) {
        self.push(target, seq, Some(file), kind);
    }

    /// A supersession applied: `seq` was not installed because `by` was.
    pub(crate) fn superseded(&mut self, target: &Target, seq: Seq, file: (FileName, FileHash), by: Seq) {
        self.push(target, seq, Some(file), EntryOutcomeKind::Superseded { by });
    }

    /// An outcome of the host itself.
    pub(crate) fn host(&mut self, outcome: Outcome) {
        self.host.push(outcome);
    }

    /// A report (held, refused, withdrawn ...), mapped when the receipt is made.
    pub(crate) fn report(&mut self, report: &Report) {
        self.reports.push(report.clone());
    }

    fn push(
        &mut self,
        target: &Target,
        seq: Seq,
        file: Option<(FileName, FileHash)>,
        kind: EntryOutcomeKind,
    ) {
        self.entries.push(EntryOutcome { target: target.clone(), seq, file, kind });
    }
}

impl Client {
    /// Makes the receipt of what this answer changed, if anything did, and sends every
    /// receipt waiting. Never fails the poll: a failure is logged, and the receipts
    /// wait in the state for the next try.
    pub(crate) async fn send_receipt(&mut self) {
        let ClientTransport::Tls { .. } = &self.settings.transport else {
            self.outcomes = Outcomes::default(); // plaintext: no receipts
            return;
        };
        let Some(signer) = self.settings.receipt_signer.clone() else { return };
        self.check_reboot();
        if let Err(e) = self.make_receipt(&signer) {
            tracing::warn!(error = %ErrorChain(&e), "cannot make the receipt of this answer");
        }
        let now = unix_now();
        if self.state.receipts.unsent.is_empty()
            || self.state.receipts.refused_at.is_some_and(|at| now.saturating_sub(at) < RETRY_OLD_SERVER)
        {
            return;
        }
        for _ in 0..4 {
            match self.send_waiting().await {
                Ok(true) if !self.state.receipts.unsent.is_empty() => continue, // a full request: more
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, waiting = self.state.receipts.unsent.len(), "receipts not sent: they are sent again after the next poll");
                    break;
                }
            }
        }
    }

    /// The receipt of the outcomes gathered, signed and queued (the state saved).
    fn make_receipt(&mut self, signer: &fts_trust::ReceiptSigner) -> Result<(), crate::error::PollError> {
        let outcomes = std::mem::take(&mut self.outcomes);
        let mut lines: Vec<Outcome> = Vec::new();
        let queue = &self.state.receipts;
        let certificate = match &self.settings.transport {
            ClientTransport::Tls { certificate_sha256, .. } => Some(certificate_sha256.clone()),
            ClientTransport::Plaintext => None,
        };
        // A state started anew (it was damaged: --reset-state) starts a new chain and
        // says so; a host's very first receipt just starts one.
        let restart = if queue.count == 0 {
            self.state_was_reset.then_some("new-state")
        } else if queue.certificate_sha256 != certificate {
            Some("new-certificate")
        } else {
            None
        };
        if queue.dropped > 0 {
            lines.push(Outcome::Dropped { count: queue.dropped });
        }
        let (_, raised) = self.log.request_fields(unix_now());
        let raised: BTreeSet<AlarmName> = raised.into_keys().collect();
        for name in raised.difference(&queue.alarms) {
            lines.push(Outcome::Alarm { name: name.clone(), raised: true });
        }
        for name in queue.alarms.difference(&raised) {
            lines.push(Outcome::Alarm { name: name.clone(), raised: false });
        }
        lines.extend(outcomes.host.iter().cloned());
        let entries =
            entry_outcomes(outcomes, &self.state.held, &self.state.installed, self.settings.hook_retries);
        lines.extend(entries.into_iter().map(Outcome::Entry));
        if restart == Some("new-certificate") && !self.state.receipts.unsent.is_empty() {
            // Receipts signed with the old key are refused over a session of the new
            // certificate: what they said goes again in the new chain, signed anew.
            let old = std::mem::take(&mut self.state.receipts.unsent);
            let again: Vec<Outcome> = old
                .iter()
                .filter_map(|q| Receipt::parse(&q.signed.bytes).ok())
                .flat_map(|r| r.outcomes)
                .filter(|o| !matches!(o, Outcome::Restart { .. }))
                .collect();
            tracing::info!(
                receipts = old.len(),
                "a new certificate: the unsent receipts go again, signed with its key"
            );
            lines.splice(0..0, again);
        }
        let queue = &self.state.receipts;
        // A line the receipt format cannot carry (a reason too new to be a word of
        // it) would make the whole receipt fail to sign: it is left out, and said.
        lines.retain(|line| {
            let fits = carries(&self.settings.id, line);
            if !fits {
                tracing::warn!(outcome = %line, "an outcome a receipt cannot carry: left out of it");
            }
            fits
        });
        if lines.is_empty() {
            return Ok(());
        }
        if let Some(reason) = restart.and_then(RestartReason::parse) {
            // (The reasons above are valid words: a test says so.)
            lines.insert(0, Outcome::Restart { reason });
        }
        let made = Published::from_unix_seconds(unix_now());
        let first = if restart.is_some() { 1 } else { queue.count + 1 };
        for (number, outcomes) in (first..).zip(split(lines, self.settings.id.as_str().len())) {
            let receipt = Receipt {
                client_id: self.settings.id.clone(),
                number,
                previous: self.state.receipts.head,
                made: made.clone(),
                outcomes,
            };
            let signed = signer.sign(&receipt).map_err(crate::error::PollError::Receipt)?;
            let hash = fts_trust::receipt_hash(&signed.bytes);
            tracing::debug!(number, %hash, "made a receipt");
            // The chain moves with each receipt queued, so that a failure to sign the
            // next one never numbers two receipts alike.
            let queue = &mut self.state.receipts;
            queue.unsent.push(QueuedReceipt { hash, signed, refusals: 0 });
            (queue.count, queue.head) = (number, Some(hash));
            queue.certificate_sha256.clone_from(&certificate);
            queue.dropped = 0;
            queue.alarms.clone_from(&raised);
            self.state_was_reset = false;
        }
        let queue = &mut self.state.receipts;
        if queue.unsent.len() > MAX_UNSENT {
            let over = queue.unsent.len() - MAX_UNSENT;
            queue.unsent.drain(..over);
            queue.dropped += over as u64;
            tracing::warn!(
                dropped = over,
                "dropped the oldest unsent receipts: the next receipt says how many"
            );
        }
        self.save()
    }

    /// Sends the oldest waiting receipts in one request. `Ok(true)`: the server
    /// acknowledged a full request (there may be more to send).
    async fn send_waiting(&mut self) -> Result<bool, String> {
        let ClientTransport::Tls { config, server_name, .. } = self.settings.transport.clone() else {
            return Ok(false);
        };
        // The server that answered the poll (with several `--server`s).
        let endpoint = self.active_endpoint().clone();
        let server_name = endpoint.server_name.unwrap_or(server_name);
        let signed: Vec<SignedReceipt> = self
            .state
            .receipts
            .unsent
            .iter()
            .take(MAX_RECEIPTS_PER_REQUEST)
            .map(|q| q.signed.clone())
            .collect();
        let fit = ReceiptRequest::how_many_fit(&self.settings.id, &signed).max(1);
        let request = ReceiptRequest {
            client_id: self.settings.id.clone(),
            receipts: signed[..fit.min(signed.len())].to_vec(),
        };
        let sent: Vec<FileHash> =
            self.state.receipts.unsent.iter().take(request.receipts.len()).map(|q| q.hash).collect();
        let timeout = self.settings.read_timeout.min(Duration::from_secs(30));
        let exchange = async {
            let tcp = TcpStream::connect(&endpoint.address).await.map_err(|e| format!("connect: {e}"))?;
            let _ = tcp.set_nodelay(true);
            let tls = TlsConnector::from(config)
                .connect(server_name, tcp)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            let mut conn = Connection::client(tls);
            conn.send_receipts(&request).await.map_err(|e| format!("send: {e}"))?;
            let frame = conn.read_server_frame().await;
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
            match frame {
                Ok(frame) => Ok(frame),
                Err(ReadError::Proto(e)) => Err(format!("the answer does not parse: {e}")),
                Err(ReadError::Closed) => Err("the server closed without answering".into()),
                Err(ReadError::Io(e)) => Err(format!("read: {e}")),
            }
        };
        let frame = tokio::time::timeout(timeout, exchange).await.map_err(|_| "timed out".to_owned())??;
        match frame {
            ServerFrame::ReceiptsStored(stored) => {
                let full = request.receipts.len() == MAX_RECEIPTS_PER_REQUEST;
                self.acknowledged(&sent, &stored.stored);
                Ok(full)
            }
            ServerFrame::Error(error) if error.code == ErrorCode::UnknownRequest => {
                tracing::info!(
                    "the server does not take receipts (an older fts): its reports go in polls; receipts are tried again in a day"
                );
                let queue = &mut self.state.receipts;
                queue.server_takes_receipts = false;
                queue.refused_at = Some(unix_now());
                self.save_quietly();
                Ok(false)
            }
            ServerFrame::Error(error) => Err(format!(
                "the server refused them: {} {}",
                crate::error::peer_text(error.code.as_str()),
                crate::error::peer_text(&error.message)
            )),
            _ => Err("the server answered receipts with a frame of a poll".into()),
        }
    }

    /// Drops the acknowledged receipts from the queue; counts a refusal for those
    /// sent and left out.
    fn acknowledged(&mut self, sent: &[FileHash], stored: &[FileHash]) {
        let queue = &mut self.state.receipts;
        if !stored.is_empty() {
            queue.server_takes_receipts = true;
            queue.refused_at = None;
        }
        let mut dropped = 0;
        queue.unsent.retain_mut(|q| {
            if stored.contains(&q.hash) {
                return false;
            }
            if sent.contains(&q.hash) {
                q.refusals += 1;
                if q.refusals >= MAX_REFUSALS {
                    tracing::error!(hash = %q.hash, "the server refused a receipt {MAX_REFUSALS} times: dropping it (the next receipt says so)");
                    dropped += 1;
                    return false;
                }
            }
            true
        });
        queue.dropped += dropped;
        // Every report made so far is in a receipt the server has now: polls need not
        // carry them (a server that later answers `unknown-request` gets the ones
        // made after this in its polls).
        if queue.unsent.is_empty() && queue.server_takes_receipts {
            self.state.reports.clear();
        }
        self.save_quietly();
    }

    fn save_quietly(&self) {
        if let Err(e) = self.save() {
            tracing::warn!(error = %ErrorChain(&e), "cannot save the receipt queue: acknowledged receipts may be sent again");
        }
    }

    /// `receipt-count` and `receipt-head` for a poll request.
    pub(crate) fn receipt_fields(&self) -> (Option<u64>, Option<FileHash>) {
        match &self.settings.transport {
            ClientTransport::Tls { .. } if self.settings.receipt_signer.is_some() => {
                (Some(self.state.receipts.count), self.state.receipts.head)
            }
            _ => (None, None),
        }
    }
}

/// Whether a receipt carries `line` as it is (its bytes read back as the same).
fn carries(client: &fts_proto::ClientId, line: &Outcome) -> bool {
    let probe = Receipt {
        client_id: client.clone(),
        number: 2,
        previous: Some(FileHash::from_digest([0; 32])),
        made: Published::from_unix_seconds(0),
        outcomes: vec![line.clone()],
    };
    Receipt::parse(&probe.to_bytes()).is_ok_and(|back| back == probe)
}

/// The outcomes of one answer in receipts that each fit a request alone
/// ([`MAX_SENDABLE_RECEIPT_BYTES`], [`fts_proto::MAX_OUTCOMES`]), in order.
fn split(lines: Vec<Outcome>, id_len: usize) -> Vec<Vec<Outcome>> {
    // The header lines: tag, id, number, previous hash, time, count.
    let header = 15 + id_len + 21 + 72 + 21 + 4;
    let mut receipts: Vec<Vec<Outcome>> = Vec::new();
    let mut current: Vec<Outcome> = Vec::new();
    let mut len = header;
    for line in lines {
        let line_len = line.to_string().len() + 1;
        if !current.is_empty()
            && (len + line_len > MAX_SENDABLE_RECEIPT_BYTES || current.len() == MAX_OUTCOMES)
        {
            receipts.push(std::mem::take(&mut current));
            len = header;
        }
        len += line_len;
        current.push(line);
    }
    if !current.is_empty() {
        receipts.push(current);
    }
    receipts
}

/// Each report mapped to its entry outcome: held when the target is held at it,
/// and the rest as their reasons say; then the entry outcomes gathered directly.
fn entry_outcomes(
    outcomes: Outcomes,
    held: &BTreeMap<Target, crate::client::held::Hold>,
    installed: &BTreeMap<FileName, crate::client::state::Installed>,
    hook_retries: u32,
) -> Vec<EntryOutcome> {
    let Outcomes { mut entries, reports, .. } = outcomes;
    let allowed = hook_retries.saturating_add(1);
    for report in reports {
        let Some(seq) = Seq::new(report.seq) else { continue };
        let kind = match &report.reason {
            RejectReason::Withdrawn => EntryOutcomeKind::Withdrawn,
            RejectReason::WithdrawnInstalled => EntryOutcomeKind::WithdrawnInstalled,
            // An older publication of a name installed later: applied, never
            // installed, by the installed entry when it is a later one of this target.
            RejectReason::Superseded => match superseded_by(installed, &report.target, seq) {
                Some(by) => EntryOutcomeKind::Superseded { by },
                None => EntryOutcomeKind::Refused { reason: RejectReason::Superseded },
            },
            // Its hook-failed line says it (the attempt is the last allowed).
            RejectReason::HookGivenUp => continue,
            RejectReason::HookFailed => {
                // A hook's result is gathered with its file; a report without one
                // (a state from before receipts) still says it.
                let attempt = report.attempt.and_then(|a| u32::try_from(a).ok()).unwrap_or(1);
                if entries.iter().any(|e| {
                    e.target == report.target
                        && e.seq == seq
                        && matches!(e.kind, EntryOutcomeKind::HookFailed { .. })
                }) {
                    continue;
                }
                EntryOutcomeKind::HookFailed { attempt, allowed: allowed.max(attempt) }
            }
            reason if held.get(&report.target).is_some_and(|h| h.seq == seq) => {
                EntryOutcomeKind::Held { reason: reason.clone() }
            }
            reason => EntryOutcomeKind::Refused { reason: reason.clone() },
        };
        entries.push(EntryOutcome { target: report.target.clone(), seq, file: None, kind });
    }
    // One line per (target, seq, kind): a report repeated in a round says it once.
    let mut seen = BTreeSet::new();
    entries.retain(|e| seen.insert(e.to_string()));
    entries
}

/// The installed entry of `target` later than `seq`, if one is (the newest).
fn superseded_by(
    installed: &BTreeMap<FileName, crate::client::state::Installed>,
    target: &Target,
    seq: Seq,
) -> Option<Seq> {
    installed.values().filter(|i| i.target == *target && i.seq > seq).map(|i| i.seq).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(seq: u64, name: &str) -> Outcome {
        Outcome::Entry(EntryOutcome {
            target: Target::All,
            seq: Seq::new(seq).unwrap(),
            file: Some((FileName::parse(name).unwrap(), FileHash::from_digest([7; 32]))),
            kind: EntryOutcomeKind::Installed,
        })
    }

    #[test]
    fn many_outcomes_are_split_into_receipts_that_each_fit_a_request() {
        let id = fts_proto::ClientId::parse("web-01").unwrap();
        let lines: Vec<Outcome> =
            (1..=400).map(|n| installed(n, &format!("{}-{n}.deb", "x".repeat(100)))).collect();
        let receipts = split(lines.clone(), id.as_str().len());
        assert!(receipts.len() > 1);
        assert_eq!(receipts.concat(), lines, "every outcome, in order, once");
        for outcomes in &receipts {
            let receipt = Receipt {
                client_id: id.clone(),
                number: 9,
                previous: Some(FileHash::from_digest([1; 32])),
                made: Published::from_unix_seconds(1_795_626_000),
                outcomes: outcomes.clone(),
            };
            assert!(receipt.to_bytes().len() <= MAX_SENDABLE_RECEIPT_BYTES);
            assert!(outcomes.len() <= MAX_OUTCOMES);
        }
        assert_eq!(split(vec![installed(1, "a")], 6).len(), 1);
        assert!(split(Vec::new(), 6).is_empty());
    }

    #[test]
    fn reports_become_the_outcomes_they_stand_for() {
        let mut outcomes = Outcomes::default();
        let all = Target::All;
        let seq = |n| Seq::new(n).unwrap();
        outcomes.report(&Report::new(all.clone(), 3, RejectReason::TooLarge));
        outcomes.report(&Report::new(all.clone(), 3, RejectReason::TooLarge));
        outcomes.report(&Report::new(all.clone(), 4, RejectReason::Withdrawn));
        outcomes.report(&Report::new(all.clone(), 5, RejectReason::Signature));
        outcomes.report(&Report::new(all.clone(), 2, RejectReason::Superseded));
        outcomes.report(&Report::new(all.clone(), 1, RejectReason::HookGivenUp));
        let hold = crate::client::held::Hold {
            seq: seq(3),
            reason: RejectReason::TooLarge,
            held_since: Published::from_unix_seconds(0),
            tries: 1,
            retry_at: Published::from_unix_seconds(0),
            cause: crate::client::held::HoldCause::Backoff,
            newest: None,
        };
        let held = BTreeMap::from([(all.clone(), hold)]);
        let lines: Vec<String> =
            entry_outcomes(outcomes, &held, &BTreeMap::new(), 3).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "held all 3 - - too-large",
                "withdrawn all 4 - -",
                "refused all 5 - - signature",
                "refused all 2 - - superseded",
            ],
            "once each; a hold where the target is held; superseded by nothing installed is a refusal"
        );
    }

    #[test]
    fn the_restart_reasons_are_valid_words() {
        for reason in ["new-state", "new-certificate"] {
            assert!(RestartReason::parse(reason).is_some(), "{reason}");
        }
    }
}
