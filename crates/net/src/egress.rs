//! The server's cap on its total egress of body bytes (`fts serve --max-send-rate`),
//! across every connection: what keeps a patch night (200 MB to 50,000 hosts) from
//! filling the uplink that everything else shares.
//!
//! Two parts:
//! - **admission** ([`Egress::admit`]): an answer that has a file to send takes a
//!   [`TransferPermit`] before its first `file` frame, and holds it until the answer
//!   ends. It is admitted only if every transfer could still get the minimum send rate
//!   (`--min-send-rate`) out of the cap: `(active + 1) x min_send_rate <= max_send_rate`.
//!   Otherwise the poll is answered `busy` (the server's `error` frame, with a
//!   `retry-after`), before any file frame, so that a host is refused cleanly instead
//!   of being admitted into a share too thin to pass the slow-reader check. An answer
//!   with nothing to send (the common poll) never needs admission;
//! - **the shared bucket** ([`Egress::take`]): every body chunk reserves its bytes in
//!   one [`TokenBucket`] before it is written, and waits its turn. Reservations are
//!   served in order, so the admitted transfers share the cap fairly, and over any
//!   span the body bytes sent stay within the rate plus a burst of 100 ms (at least
//!   four chunks). The time a connection waits here is the server's own: its pacer is
//!   excused it ([`crate::pacing::Pacer::excuse`]), so a host is never called a slow
//!   reader for the server's limit. Each transfer has at most one chunk waiting, so
//!   admission also bounds the wait between two chunks of one transfer: at most
//!   `capacity x chunk / max_send_rate`, so one chunk at the minimum send rate (4 s for
//!   64 KiB at 16 KiB/s), far below a host's `--read-timeout` (60 s).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::bucket::TokenBucket;
use crate::limits::Busy;

/// The burst as a share of a second of the rate: 100 ms.
const BURST_DIVISOR: u64 = 10;

/// The smallest burst: four body chunks, so that a low cap still lets a chunk through
/// without splitting it.
const MIN_BURST: u64 = 4 * fts_fs::stream::CHUNK as u64;

/// The cap on the server's body bytes per second, and the transfers admitted under it.
#[derive(Debug)]
pub struct Egress {
    bucket: Mutex<TokenBucket>,
    /// How many transfers fit: `max_send_rate / min_send_rate`.
    capacity: usize,
    active: AtomicUsize,
}

/// One admitted answer's place under the cap; given back when dropped, whatever way
/// the answer ends.
#[derive(Debug)]
pub struct TransferPermit {
    egress: Arc<Egress>,
}

impl Egress {
    /// A cap of `max_send_rate` bytes per second, for transfers that must each get
    /// `min_send_rate` (0: no minimum, any number of transfers fits).
    pub fn new(max_send_rate: u64, min_send_rate: u64) -> Arc<Egress> {
        let capacity = match max_send_rate.checked_div(min_send_rate) {
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
            None => usize::MAX,
        };
        let burst = (max_send_rate / BURST_DIVISOR).max(MIN_BURST);
        Arc::new(Egress {
            bucket: Mutex::new(TokenBucket::new(max_send_rate, burst)),
            capacity,
            active: AtomicUsize::new(0),
        })
    }

    /// The cap, in bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner).bytes_per_second()
    }

    /// How many transfers fit at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Transfers admitted now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Admits one more transfer if it fits, else says `busy`.
    pub fn admit(self: &Arc<Self>) -> Result<TransferPermit, Busy> {
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.capacity).then(|| n + 1))
            .map(|_| TransferPermit { egress: Arc::clone(self) })
            .map_err(|_| Busy::SendRate)
    }

    /// Reserves `n` bytes about to be written and waits until they fit in the cap;
    /// returns how long it waited (time the peer is not to be blamed for).
    pub async fn take(&self, n: u64) -> Duration {
        let wait = self.bucket.lock().unwrap_or_else(PoisonError::into_inner).reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

impl Drop for TransferPermit {
    fn drop(&mut self) {
        self.egress.active.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn a_transfer_is_admitted_only_while_each_keeps_the_minimum_rate() {
        // 100 KiB/s with a minimum of 16 KiB/s: six transfers fit (96 KiB/s), not seven.
        let egress = Egress::new(100 * KIB, 16 * KIB);
        let permits: Vec<_> = (0..6).map(|_| egress.admit().unwrap()).collect();
        assert_eq!(egress.admit().unwrap_err(), Busy::SendRate);
        assert_eq!(egress.active(), 6, "a refused transfer takes no place");
        drop(permits);
        assert_eq!(egress.active(), 0);
        assert!(egress.admit().is_ok(), "an ended transfer gives its place back");
    }

    #[test]
    fn without_a_minimum_rate_every_transfer_fits() {
        let egress = Egress::new(KIB, 0);
        let _permits: Vec<_> = (0..1000).map(|_| egress.admit().unwrap()).collect();
    }

    #[tokio::test(start_paused = true)]
    async fn connections_sharing_the_cap_stay_within_it_together() {
        let egress = Egress::new(1024 * KIB, 64 * KIB);
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let egress = Arc::clone(&egress);
            tasks.spawn(async move {
                let mut sent = 0u64;
                while Instant::now() < start + Duration::from_secs(30) {
                    egress.take(64 * KIB).await;
                    sent += 64 * KIB;
                }
                sent
            });
        }
        let mut per_task = Vec::new();
        while let Some(sent) = tasks.join_next().await {
            per_task.push(sent.unwrap());
        }
        let total: u64 = per_task.iter().sum();
        // 30 s at 1 MiB/s, plus the burst, plus the chunk each task reserved last.
        assert!(total <= 30 * 1024 * KIB + egress_burst(1024 * KIB) + 8 * 64 * KIB, "{total}");
        assert!(total >= 29 * 1024 * KIB, "the cap is used: {total}");
        let (min, max) = (per_task.iter().min().unwrap(), per_task.iter().max().unwrap());
        // Fairly: apart from the burst, which the first tasks to start share.
        assert!(max - min <= egress_burst(1024 * KIB) + 2 * 64 * KIB, "shared fairly: {per_task:?}");
    }

    fn egress_burst(rate: u64) -> u64 {
        (rate / BURST_DIVISOR).max(MIN_BURST)
    }
}
