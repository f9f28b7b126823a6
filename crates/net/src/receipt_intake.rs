//! The server's side of host receipts (docs/PROTOCOL.md section 9): a `receipt`
//! request is checked, stored durably, and only then acknowledged.
//!
//! Checks, before anything is stored: mutual TLS (a plaintext client's id is only
//! claimed, so it sends none); the request's client id is the session's; each
//! receipt's signature verifies with the session's certificate key, and the receipt
//! names that host and only its targets (fts-trust's `check_receipt`); at most
//! [`RECEIPTS_PER_MINUTE`] receipts a minute per host. A receipt that fails is counted
//! (`fts_receipts_refused_total{reason="invalid"}`), logged, and left out of the
//! acknowledgement.
//!
//! Durability: every receipt checked goes to one writer task, which takes all that
//! are waiting, stores them in one append and one flush
//! ([`StatusBackend::record_receipts`]), answers each request, and then takes them
//! into the hosts' status ([`StatusBackend::apply_receipts`]). Under load a
//! batch grows by itself (group commit), so a thousand hosts arriving at once cost a
//! few flushes, not a thousand; no receipt waits for a timer. A failure to store is
//! answered `internal` with a `retry-after`: the host keeps the receipts and sends
//! them again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use fts_proto::{ClientId, ErrorChain, FileHash, Published, ReceiptRequest};
use fts_status::StatusBackend;
use fts_status::receipts::ReceiptArrival;
use rustls::pki_types::CertificateDer;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::{Metrics, ReceiptRefusal};

/// At most this many receipts a minute per host (a host sends one per answer; this
/// leaves room for a backlog resent after an outage, 16 per request).
pub const RECEIPTS_PER_MINUTE: u32 = 60;
/// Requests waiting for the writer; beyond this a request waits to be queued.
const QUEUE: usize = 4096;

/// The host a receipt request comes from, as its session proves it.
pub(crate) struct ReceiptSender<'a> {
    /// Its id.
    pub id: &'a ClientId,
    /// Its certificate (DER) and serial (hex).
    pub certificate: &'a CertificateDer<'static>,
    /// See `certificate`.
    pub serial: &'a str,
}

/// Why a receipt request got no acknowledgement.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Over [`RECEIPTS_PER_MINUTE`].
    Rate,
    /// The status folder could not store them.
    Store(String),
}

/// One request's checked receipts, waiting for the writer.
struct Batch {
    arrivals: Vec<ReceiptArrival>,
    arrived: Instant,
    done: oneshot::Sender<Result<(), String>>,
}

/// Checks, stores and counts receipts.
pub(crate) struct ReceiptIntake {
    batches: mpsc::Sender<Batch>,
    metrics: Arc<Metrics>,
    /// Receipts per host in the current minute (only hosts that sent some in it).
    rates: Mutex<(u64, HashMap<ClientId, u32>)>,
}

impl ReceiptIntake {
    /// Starts the writer task on the current runtime.
    pub(crate) fn start(status: Arc<dyn StatusBackend>, metrics: Arc<Metrics>) -> ReceiptIntake {
        let (batches, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(queue, status));
        ReceiptIntake { batches, metrics, rates: Mutex::default() }
    }

    /// Checks and stores the receipts of `request` from `sender`; returns the hashes
    /// of those stored (durable now), leaving out those that failed their check.
    pub(crate) async fn take(
        &self,
        sender: &ReceiptSender<'_>,
        request: ReceiptRequest,
    ) -> Result<Vec<FileHash>, Refused> {
        if !self.allow(sender.id, request.receipts.len()) {
            self.metrics.receipts_refused(ReceiptRefusal::Rate, request.receipts.len());
            return Err(Refused::Rate);
        }
        let received = Published::from_unix_seconds(unix_now());
        let mut arrivals = Vec::with_capacity(request.receipts.len());
        for signed in request.receipts {
            if signed.bytes.len() > fts_proto::MAX_SENDABLE_RECEIPT_BYTES {
                self.metrics.receipts_refused(ReceiptRefusal::Invalid, 1);
                tracing::warn!(client_id = %sender.id, bytes = signed.bytes.len(), "refused a receipt larger than a host makes one");
                continue;
            }
            match fts_trust::check_receipt(&signed, sender.certificate) {
                Ok(checked) => arrivals.push(ReceiptArrival {
                    client_id: sender.id.clone(),
                    certificate: sender.certificate.to_vec(),
                    serial: sender.serial.to_owned(),
                    receipt: checked.receipt().clone(),
                    hash: checked.hash(),
                    signed,
                    received: received.clone(),
                }),
                Err(e) => {
                    self.metrics.receipts_refused(ReceiptRefusal::Invalid, 1);
                    tracing::warn!(client_id = %sender.id, error = %ErrorChain(&e), "refused a receipt");
                }
            }
        }
        if arrivals.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<FileHash> = arrivals.iter().map(|a| a.hash).collect();
        let count = arrivals.len();
        let (done, stored) = oneshot::channel();
        let batch = Batch { arrivals, arrived: Instant::now(), done };
        let arrived = batch.arrived;
        if self.batches.send(batch).await.is_err() {
            return Err(Refused::Store("the receipt writer has stopped".into()));
        }
        match stored.await {
            Ok(Ok(())) => {
                self.metrics.receipts_stored(count, arrived.elapsed().as_secs_f64());
                Ok(hashes)
            }
            Ok(Err(e)) => {
                self.metrics.receipts_refused(ReceiptRefusal::Store, count);
                Err(Refused::Store(e))
            }
            Err(_) => Err(Refused::Store("the receipt writer has stopped".into())),
        }
    }

    /// Takes `count` receipts of `client`'s budget for this minute, if it has them.
    fn allow(&self, client: &ClientId, count: usize) -> bool {
        let minute = unix_now() / 60;
        let mut rates = self.rates.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if rates.0 != minute {
            *rates = (minute, HashMap::new());
        }
        let used = rates.1.entry(client.clone()).or_insert(0);
        let count = u32::try_from(count).unwrap_or(u32::MAX);
        if used.saturating_add(count) > RECEIPTS_PER_MINUTE {
            return false;
        }
        *used += count;
        true
    }
}

/// The writer: stores every batch waiting in one call, then answers each.
async fn write_batches(mut queue: mpsc::Receiver<Batch>, status: Arc<dyn StatusBackend>) {
    while let Some(first) = queue.recv().await {
        let mut batches = vec![first];
        while let Ok(more) = queue.try_recv() {
            batches.push(more);
            if batches.len() >= QUEUE {
                break;
            }
        }
        let arrivals: Vec<ReceiptArrival> = batches.iter().flat_map(|b| b.arrivals.iter().cloned()).collect();
        let backend = Arc::clone(&status);
        let stored =
            tokio::task::spawn_blocking(move || backend.record_receipts(&arrivals).map(|()| arrivals)).await;
        let (result, arrivals) = match stored {
            Ok(Ok(arrivals)) => (Ok(()), Some(arrivals)),
            Ok(Err(e)) => {
                tracing::error!(error = %ErrorChain(&e), "cannot store receipts: the hosts keep them and send them again");
                (Err(ErrorChain(&e).to_string()), None)
            }
            Err(e) => (Err(format!("the receipt store task failed: {e}")), None),
        };
        // Acknowledged as soon as they are durable; the status files follow.
        for batch in batches {
            let _ = batch.done.send(result.clone());
        }
        if let Some(arrivals) = arrivals {
            let backend = Arc::clone(&status);
            if let Err(e) = tokio::task::spawn_blocking(move || backend.apply_receipts(&arrivals)).await {
                tracing::warn!(error = %ErrorChain(&e), "taking receipts into the status files failed");
            }
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
