//! The host's cap on how fast it receives file bodies (`fts poll --max-rate`).
//!
//! A [`Throttle`] is a [`TokenBucket`] with a small burst
//! (50 ms of the rate, at least one read chunk), shared by the files of one poll. The
//! receiver takes from it after each read ([`Throttle::take`]): the bytes are already
//! here, so it sleeps long enough that the average stays at the rate. While it sleeps
//! it does not read, TCP's flow control holds the server back, and the server sends no
//! faster than the host reads.
//!
//! The floor, [`MIN_MAX_RATE`], is four times the server's default minimum send rate
//! (16 KiB/s, `fts serve --min-send-rate`): a server cuts off a host that reads slower
//! than that as a slow reader, so a host must never throttle itself anywhere near it.
//! The time the host sleeps is its own, never a stalled server's: each read's
//! `--read-timeout` starts after the sleep, and past the poll deadline the minimum
//! receive rate is excused the sleep ([`crate::client::deadline`]).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::bucket::TokenBucket;
use crate::client::deadline::MIN_RECEIVE_RATE;

/// The lowest `--max-rate` accepted: 64 KiB/s, four times the server's minimum send
/// rate.
pub const MIN_MAX_RATE: u64 = 4 * MIN_RECEIVE_RATE.bytes_per_second;

/// The burst as a share of a second of the rate: 50 ms.
const BURST_DIVISOR: u64 = 20;

/// The cap on one poll's body bytes.
#[derive(Debug)]
pub struct Throttle {
    bucket: Mutex<TokenBucket>,
}

impl Throttle {
    /// A cap of `bytes_per_second`, whose bucket starts full.
    pub fn new(bytes_per_second: u64) -> Throttle {
        let burst = (bytes_per_second / BURST_DIVISOR).max(fts_fs::stream::CHUNK as u64);
        Throttle { bucket: Mutex::new(TokenBucket::new(bytes_per_second, burst)) }
    }

    /// The cap, in bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner).bytes_per_second()
    }

    /// Counts `n` bytes just received and sleeps until the average is back at the
    /// cap; returns how long it slept.
    pub async fn take(&self, n: u64) -> Duration {
        let wait = self.bucket.lock().unwrap_or_else(PoisonError::into_inner).reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_throttled_receiver_averages_the_cap() {
        let throttle = Throttle::new(MIN_MAX_RATE);
        let start = Instant::now();
        let chunk = 16 * 1024;
        // 120 chunks of 16 KiB: 30 s at 64 KiB/s, less the burst (one second of it).
        for _ in 0..120 {
            throttle.take(chunk).await;
        }
        let elapsed = Instant::now() - start;
        assert!(elapsed >= Duration::from_secs(29), "{elapsed:?}");
        assert!(elapsed <= Duration::from_secs(30), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_slower_than_the_cap_never_wait() {
        let throttle = Throttle::new(1 << 20);
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(100)).await;
            assert_eq!(throttle.take(64 * 1024).await, Duration::ZERO);
        }
    }

    #[test]
    fn the_floor_is_four_times_the_minimum_send_rate() {
        assert_eq!(MIN_MAX_RATE, 64 * 1024);
    }
}
