//! The slowest a client may read: a minimum average send rate, with a window of slack.
//!
//! A client that stops reading would otherwise hold a connection, a poll slot and an
//! open blob for as long as it likes. The pacer keeps a virtual clock that every byte
//! sent advances by `1 / bytes_per_second`: a client reading at exactly the minimum
//! rate keeps it level with real time. The next write must finish within `window` of
//! that clock. The clock may run at most one window ahead of real time (a fast start
//! does not buy an hour of stalling) and is never let fall more than one window
//! behind (a slow start is not punished forever), so the average is in effect taken
//! over a window.
//!
//! Time that the sending side spends waiting on its own rate limit (the server's
//! `--max-send-rate`, the host's `--max-rate`) is not the peer's fault: it is
//! [excused](Pacer::excuse), moving the clock on by as much.

use std::time::Duration;

use tokio::time::Instant;

/// The minimum send rate, averaged over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinSendRate {
    /// The rate a client must read at, at least.
    pub bytes_per_second: u64,
    /// How long the client may fall behind before it is cut off (a grace for slow
    /// starts and short stalls).
    pub window: Duration,
}

/// Tracks one connection's progress against a [`MinSendRate`].
#[derive(Debug)]
pub struct Pacer {
    rate: MinSendRate,
    /// The virtual clock: how far the bytes sent so far have paid for.
    paid_until: Instant,
}

impl Pacer {
    /// A pacer whose clock starts now.
    pub fn new(rate: MinSendRate) -> Self {
        Pacer { rate, paid_until: Instant::now() }
    }

    /// The instant by which the next write must have finished.
    pub fn write_deadline(&self) -> Instant {
        self.paid_until + self.rate.window
    }

    /// Moves the clock on by `waited`, time spent waiting on this side's own rate
    /// limit: the peer is not blamed for it.
    pub fn excuse(&mut self, waited: Duration) {
        self.paid_until = self.paid_until.checked_add(waited).unwrap_or(self.paid_until);
    }

    /// Records `n` bytes sent just now.
    pub fn sent(&mut self, n: u64) {
        let now = Instant::now();
        let earned = if self.rate.bytes_per_second == 0 {
            self.rate.window
        } else {
            Duration::from_secs_f64(n as f64 / self.rate.bytes_per_second as f64)
        };
        let base = self.paid_until.max(now.checked_sub(self.rate.window).unwrap_or(now));
        self.paid_until = (base + earned).min(now + self.rate.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: MinSendRate = MinSendRate { bytes_per_second: 1000, window: Duration::from_secs(10) };

    #[tokio::test(start_paused = true)]
    async fn a_reader_at_the_minimum_rate_or_faster_is_never_cut_off() {
        for per_second in [1000, 1100, 50_000] {
            let mut pacer = Pacer::new(RATE);
            for _ in 0..100 {
                let deadline = pacer.write_deadline();
                tokio::time::advance(Duration::from_secs(1)).await;
                assert!(Instant::now() < deadline, "{per_second} B/s");
                pacer.sent(per_second);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_slower_than_the_minimum_is_cut_off_within_about_a_window() {
        let mut pacer = Pacer::new(RATE);
        let start = Instant::now();
        loop {
            let deadline = pacer.write_deadline();
            tokio::time::advance(Duration::from_secs(1)).await;
            if Instant::now() >= deadline {
                break;
            }
            pacer.sent(500);
        }
        let elapsed = Instant::now() - start;
        assert!(elapsed <= Duration::from_secs(25), "cut off after {elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn time_spent_on_the_own_limit_is_not_blamed_on_the_reader() {
        let mut pacer = Pacer::new(RATE);
        // The sender waits 30 s on its own limit before each write of a second's worth:
        // far below the minimum rate in wall time, never cut off.
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(30)).await;
            pacer.excuse(Duration::from_secs(30));
            let deadline = pacer.write_deadline();
            tokio::time::advance(Duration::from_millis(500)).await;
            assert!(Instant::now() < deadline);
            pacer.sent(1000);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_start_buys_at_most_one_window_of_stalling() {
        let mut pacer = Pacer::new(RATE);
        pacer.sent(1 << 30);
        assert_eq!(pacer.write_deadline(), Instant::now() + Duration::from_secs(20));
    }
}
