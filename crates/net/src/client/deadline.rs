//! How long one poll may take, so that a server (hostile or just stuck) can never keep a
//! host inside a poll forever: its pending hooks, its other targets, its metrics file
//! and a stop request all wait for the poll to end.
//!
//! Two bounds, each with its own flag:
//! - `--read-timeout`: a read that makes no progress for this long ends the poll (as
//!   before);
//! - `--poll-timeout`: the deadline of a round of polls (a poll and the repeats that
//!   follow `more`). Once it has passed, no new file is started: the poll ends between
//!   files, and everything installed so far stays installed. The file arriving when the
//!   deadline passes goes on for as long as it arrives at [`MIN_RECEIVE_RATE`] or
//!   faster, so an honest transfer of a large file is never cut by it; a trickle below
//!   that rate is abandoned (nothing of it is installed).
//!
//! The longest a round can last is therefore `--poll-timeout`, plus the rest of one
//! file at the minimum rate (`--max-file-size` / 16 KiB/s at worst), plus one
//! `--read-timeout` for the frame header being read.
//!
//! The minimum receive rate is the server's minimum send rate (16 KiB/s averaged over
//! 60 s, [`crate::server::ServerSettings`]) with the same arithmetic
//! ([`crate::pacing::Pacer`]): an fts server already cuts off a transfer slower than
//! that, so any transfer it keeps going passes the client's check too.
//!
//! With `--max-rate` the poll's clock carries the host's [`Throttle`]: each body read
//! is followed by [`TransferClock::throttle`], and the time the host sleeps there is
//! never counted against the server. `--read-timeout` starts at each read, after the
//! sleep; the minimum receive rate is excused the sleep ([`Pacer::excuse`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::rate::Throttle;
use crate::pacing::{MinSendRate, Pacer};

/// The slowest a file may arrive once the poll deadline has passed: 16 KiB/s averaged
/// over a window of 60 s (a transfer that starts gets one window of grace).
pub const MIN_RECEIVE_RATE: MinSendRate =
    MinSendRate { bytes_per_second: 16 * 1024, window: Duration::from_secs(60) };

/// Which bound a read ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// No byte arrived for `--read-timeout`.
    NoProgress,
    /// The poll deadline passed: between files, or while a file arrived below
    /// [`MIN_RECEIVE_RATE`].
    PollDeadline,
}

/// The bounds of one poll: the read timeout and the round's deadline; and the host's
/// own cap on its receive rate, when it has one.
#[derive(Debug, Clone)]
pub struct PollClock {
    read_timeout: Duration,
    deadline: Instant,
    throttle: Option<Arc<Throttle>>,
}

impl PollClock {
    /// A poll whose reads may each stall for `read_timeout` and that starts no new
    /// file after `deadline`.
    pub fn new(read_timeout: Duration, deadline: Instant) -> Self {
        PollClock { read_timeout, deadline, throttle: None }
    }

    /// The same, receiving bodies at most at `max_rate` bytes per second (`None`: as
    /// fast as they come), over one bucket for every file of the poll.
    pub fn throttled(self, max_rate: Option<u64>) -> Self {
        PollClock { throttle: max_rate.map(|rate| Arc::new(Throttle::new(rate))), ..self }
    }

    /// How long a read may make no progress.
    pub fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// Whether the deadline has passed: no new file may start.
    pub fn past_deadline(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// When the next frame header must have arrived: within the read timeout, and never
    /// after the deadline (past it, no new file starts).
    pub fn header_deadline(&self) -> (Instant, Cut) {
        earlier((Instant::now() + self.read_timeout, Cut::NoProgress), (self.deadline, Cut::PollDeadline))
    }

    /// The clock of one file's body, from now.
    pub fn transfer(&self) -> TransferClock {
        TransferClock { poll: self.clone(), pacer: Pacer::new(MIN_RECEIVE_RATE) }
    }
}

/// The bounds of one body: the read timeout, and past the poll deadline the minimum
/// receive rate.
#[derive(Debug)]
pub struct TransferClock {
    poll: PollClock,
    /// How far the bytes received so far have paid for at [`MIN_RECEIVE_RATE`].
    pacer: Pacer,
}

impl TransferClock {
    /// When the read under way must have returned bytes: within the read timeout; and,
    /// once the poll deadline has passed, by the time the bytes received so far have
    /// paid for at the minimum rate (before the deadline that rate does not matter).
    pub fn read_deadline(&self) -> (Instant, Cut) {
        let paced = self.poll.deadline.max(self.pacer.write_deadline());
        earlier((Instant::now() + self.poll.read_timeout, Cut::NoProgress), (paced, Cut::PollDeadline))
    }

    /// Records `n` body bytes received just now.
    pub fn received(&mut self, n: u64) {
        self.pacer.sent(n);
    }

    /// After `n` body bytes were received: sleeps as long as the host's `--max-rate`
    /// asks (not at all without one), and excuses the server that time.
    pub async fn throttle(&mut self, n: u64) {
        if let Some(throttle) = &self.poll.throttle {
            let slept = throttle.take(n).await;
            self.pacer.excuse(slept);
        }
    }
}

fn earlier(a: (Instant, Cut), b: (Instant, Cut)) -> (Instant, Cut) {
    if b.0 < a.0 { b } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READ_TIMEOUT: Duration = Duration::from_secs(60);

    fn clock(deadline_in: Duration) -> PollClock {
        PollClock::new(READ_TIMEOUT, Instant::now() + deadline_in)
    }

    #[tokio::test(start_paused = true)]
    async fn before_the_deadline_only_the_read_timeout_bounds_a_header() {
        let clock = clock(Duration::from_secs(3600));
        assert_eq!(clock.header_deadline(), (Instant::now() + READ_TIMEOUT, Cut::NoProgress));
        assert!(!clock.past_deadline());
    }

    #[tokio::test(start_paused = true)]
    async fn no_header_is_awaited_past_the_deadline() {
        let clock = clock(Duration::from_secs(5));
        assert_eq!(clock.header_deadline(), (Instant::now() + Duration::from_secs(5), Cut::PollDeadline));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(clock.past_deadline());
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_before_the_deadline_is_bounded_by_the_read_timeout_only() {
        let clock = clock(Duration::from_secs(3600));
        let mut transfer = clock.transfer();
        for _ in 0..100 {
            tokio::time::advance(Duration::from_secs(30)).await;
            transfer.received(1);
            assert_eq!(transfer.read_deadline(), (Instant::now() + READ_TIMEOUT, Cut::NoProgress));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_transfer_at_the_minimum_rate_or_faster_is_never_cut_by_the_deadline() {
        for per_second in [MIN_RECEIVE_RATE.bytes_per_second, 10 * MIN_RECEIVE_RATE.bytes_per_second] {
            let clock = clock(Duration::from_secs(10));
            let mut transfer = clock.transfer();
            // Long past the deadline, a chunk arriving each second stays within bounds.
            for second in 0..600 {
                let (by, _) = transfer.read_deadline();
                tokio::time::advance(Duration::from_secs(1)).await;
                assert!(Instant::now() < by, "{per_second} B/s cut at second {second}");
                transfer.received(per_second);
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_past_the_deadline_is_cut_within_about_a_window() {
        let clock = clock(Duration::from_secs(10));
        let mut transfer = clock.transfer();
        let start = Instant::now();
        let cut = loop {
            let (by, cut) = transfer.read_deadline();
            tokio::time::advance(Duration::from_secs(1)).await;
            if Instant::now() >= by {
                break cut;
            }
            transfer.received(100);
        };
        assert_eq!(cut, Cut::PollDeadline);
        let elapsed = Instant::now() - start;
        // The deadline (10 s), then at most about a window of grace for the transfer.
        assert!(elapsed >= Duration::from_secs(10) && elapsed <= Duration::from_secs(75), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_hosts_own_sleep_is_never_counted_against_the_server() {
        // Past the deadline, at the floor of --max-rate: a server sending as fast as it
        // can is never cut off, however long the host sleeps in all.
        let clock = clock(Duration::ZERO).throttled(Some(crate::client::rate::MIN_MAX_RATE));
        let mut transfer = clock.transfer();
        let start = Instant::now();
        for _ in 0..2_000 {
            let (by, _) = transfer.read_deadline();
            assert!(Instant::now() < by);
            transfer.received(64 * 1024);
            transfer.throttle(64 * 1024).await;
        }
        assert!(Instant::now() - start >= Duration::from_secs(1_990), "{:?}", Instant::now() - start);
        let (by, cut) = transfer.read_deadline();
        assert_eq!(cut, Cut::NoProgress, "the read timeout starts after the sleep");
        assert_eq!(by, Instant::now() + READ_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_transfer_past_the_deadline_is_cut_before_the_read_timeout() {
        let clock = clock(Duration::ZERO);
        let mut transfer = clock.transfer();
        tokio::time::advance(Duration::from_secs(120)).await;
        transfer.received(1);
        let (by, cut) = transfer.read_deadline();
        assert_eq!(cut, Cut::PollDeadline);
        assert!(by < Instant::now() + Duration::from_secs(1), "{:?}", by - Instant::now());
    }
}
