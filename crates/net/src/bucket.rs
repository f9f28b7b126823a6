//! A byte-rate token bucket that lends: the core of the host's `--max-rate` throttle
//! ([`crate::client::rate`]) and of the server's `--max-send-rate` limiter
//! ([`crate::egress`]).
//!
//! It is kept as a theoretical arrival time (GCRA): `paid_until` is when every byte
//! reserved so far is paid for at the rate. A reservation of `n` bytes moves it on by
//! `n / rate` (from now, when the bucket was idle) and must wait until it is no more
//! than the burst's worth of time ahead of now. So reservations are served in the
//! order they were made (the bucket is fair between the tasks that share it), a
//! reservation is never refused (it only waits), and over any span of time `T` the
//! bytes released are at most `burst + rate x T`, plus the one reservation that
//! crossed the span's end.
//!
//! The bucket itself only computes; it never sleeps and holds no lock, so it can sit
//! behind a short mutex shared by every connection. Time is tokio's, so paused-time
//! tests drive it.

use std::time::Duration;

use tokio::time::Instant;

/// A rate in bytes per second with a burst, as a theoretical arrival time.
#[derive(Debug)]
pub struct TokenBucket {
    bytes_per_second: u64,
    /// The burst as time at the rate: how far `paid_until` may run ahead of now
    /// without a wait.
    burst: Duration,
    paid_until: Instant,
}

impl TokenBucket {
    /// A full bucket of `bytes_per_second` (at least 1) with bursts of `burst_bytes`.
    pub fn new(bytes_per_second: u64, burst_bytes: u64) -> TokenBucket {
        let bytes_per_second = bytes_per_second.max(1);
        TokenBucket {
            bytes_per_second,
            burst: time_for(burst_bytes, bytes_per_second),
            paid_until: Instant::now(),
        }
    }

    /// The rate, in bytes per second.
    pub fn bytes_per_second(&self) -> u64 {
        self.bytes_per_second
    }

    /// Reserves `n` bytes at `now`; returns how long to wait before they may go (zero
    /// while the burst covers them).
    pub fn reserve(&mut self, n: u64, now: Instant) -> Duration {
        let cost = time_for(n, self.bytes_per_second);
        let start = self.paid_until.max(now);
        // An Instant this far out is centuries away: keep the last one rather than panic.
        self.paid_until = start.checked_add(cost).unwrap_or(start);
        self.paid_until.saturating_duration_since(now).saturating_sub(self.burst)
    }
}

/// The time `bytes` take at `per_second` (at least 1), to the nanosecond.
fn time_for(bytes: u64, per_second: u64) -> Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(per_second.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_burst_goes_at_once_and_the_rest_at_the_rate() {
        let mut bucket = TokenBucket::new(1000, 500);
        let now = Instant::now();
        assert_eq!(bucket.reserve(500, now), Duration::ZERO, "the burst needs no wait");
        assert_eq!(bucket.reserve(1000, now), Duration::from_secs(1));
        assert_eq!(bucket.reserve(250, now), Duration::from_millis(1250), "in the order reserved");
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_up_to_its_burst_only() {
        let mut bucket = TokenBucket::new(1000, 500);
        tokio::time::advance(Duration::from_secs(3600)).await;
        let now = Instant::now();
        assert_eq!(bucket.reserve(500, now), Duration::ZERO);
        assert_eq!(bucket.reserve(100, now), Duration::from_millis(100), "an hour idle buys one burst");
    }

    #[tokio::test(start_paused = true)]
    async fn released_bytes_stay_within_burst_plus_rate_times_time() {
        // Three tasks reserving chunks in turn, each sending once its wait is over.
        let mut bucket = TokenBucket::new(10_000, 2_000);
        let start = Instant::now();
        let mut released: Vec<(Instant, u64)> = Vec::new();
        let mut ready = [start; 3];
        for step in 0..300 {
            let task = step % 3;
            let at = ready[task];
            let wait = bucket.reserve(700, at);
            ready[task] = at + wait;
            released.push((at + wait, 700));
        }
        let end = released.iter().map(|(t, _)| *t).max().unwrap_or(start);
        for span_start in [start, start + Duration::from_secs(3), start + Duration::from_millis(7_500)] {
            for span in [Duration::from_secs(1), Duration::from_secs(5), end - start] {
                let sent: u64 = released
                    .iter()
                    .filter(|(t, _)| *t >= span_start && *t <= span_start + span)
                    .map(|r| r.1)
                    .sum();
                let bound = 2_000 + 10_000 * span.as_millis() as u64 / 1000 + 700;
                assert!(sent <= bound, "{sent} > {bound} over {span:?}");
            }
        }
    }

    #[test]
    fn huge_figures_neither_overflow_nor_panic() {
        assert_eq!(time_for(u64::MAX, 1), Duration::from_nanos(u64::MAX));
        assert_eq!(time_for(1, 0), Duration::from_secs(1), "a zero rate counts as 1 B/s");
        let mut bucket = TokenBucket::new(1, u64::MAX);
        let _ = bucket.reserve(u64::MAX, Instant::now());
        let _ = bucket.reserve(u64::MAX, Instant::now());
    }
}
