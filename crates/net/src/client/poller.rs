//! When to poll: `--once` (one poll, repeated at once while the server says `more` or
//! a rule of check 5 closed the answer early, a bounded number of times, all within
//! `--poll-timeout`), and the loop (a stop request honoured between polls).
//!
//! The wait between two rounds ([`Schedule::next_wait`]), then random jitter added:
//! - after a complete round, the later of `--interval` and the server's `poll-after`
//!   advice: the server can slow a host down, never speed it up past its own interval;
//! - after a failure, capped exponential backoff from `--min-interval`, or the
//!   server's `retry-after` when it said `busy`;
//! - after the server refused this host's certificate (revoked, expired, another CA),
//!   `--max-interval` at once: polling again soon only adds to the server's log;
//! - always within `--min-interval` and `--max-interval`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fts_proto::Report;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::client::receive::Progress;
use crate::client::{Client, PollError, PollOutcome};

/// The most polls one round makes, following `more` and early closes.
pub const MAX_REPEATS: usize = 100;

/// How a round of polls ended.
#[derive(Debug)]
pub enum RoundResult {
    /// Every poll completed. `reported` holds the problems found in this round (an
    /// entry refused, too large, superseded, a hook that failed).
    Completed {
        /// How many files were installed.
        installed: usize,
        /// The problems found.
        reported: Vec<Report>,
        /// The server's last `poll-after` advice, in seconds.
        poll_after: Option<u64>,
    },
    /// A poll failed as a whole.
    Failed(PollError),
}

/// A stop request (SIGTERM), checked between polls and during waits.
#[derive(Debug, Default)]
pub struct Stop {
    requested: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Asks the loop to stop, and wakes it from a wait.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration` unless a stop is requested first; true if stopped.
    pub async fn sleep(&self, duration: Duration) -> bool {
        let notified = self.notify.notified();
        if self.is_requested() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(duration) => self.is_requested(),
            () = notified => true,
        }
    }
}

/// One round: pending hooks first, then polls until the answer is complete, all
/// within `--poll-timeout` (no new poll, and no new file, starts after it).
pub async fn round(client: &mut Client, progress: &mut dyn Progress, stop: &Stop) -> RoundResult {
    let mut reported = match client.run_pending_hooks().await {
        Ok(reported) => reported,
        Err(e) => return RoundResult::Failed(e),
    };
    // From after the pending hooks: a slow hook must not leave the poll no time.
    let deadline = Instant::now() + client.settings().poll_timeout;
    let mut installed = 0;
    let mut poll_after = None;
    for repeat in 0..MAX_REPEATS {
        if repeat > 0 && Instant::now() >= deadline {
            tracing::warn!(
                limit = ?client.settings().poll_timeout,
                "--poll-timeout passed: no more repeats in this round; the rest comes next round"
            );
            return RoundResult::Completed { installed, reported, poll_after };
        }
        match client.poll_until(deadline, progress).await {
            Ok(PollOutcome {
                installed: files,
                reported: found,
                more,
                repeat_now,
                poll_after: advice,
                ..
            }) => {
                installed += files.len();
                reported.extend(found);
                poll_after = advice.or(poll_after);
                if !(more || repeat_now) || stop.is_requested() {
                    return RoundResult::Completed { installed, reported, poll_after };
                }
            }
            Err(e) => return RoundResult::Failed(e),
        }
    }
    tracing::warn!(
        repeats = MAX_REPEATS,
        "stopped repeating polls for this round; the rest comes next round"
    );
    RoundResult::Completed { installed, reported, poll_after }
}

/// The timing of the loop.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The wait after a complete round (`--interval`).
    pub interval: Duration,
    /// Random jitter added to each wait, in percent of it.
    pub jitter_percent: u8,
    /// The shortest wait, and the start of the backoff (`--min-interval`).
    pub min_interval: Duration,
    /// The longest wait (`--max-interval`).
    pub max_interval: Duration,
}

impl Schedule {
    /// The wait before the next round after `result`, given `failures` in a row (the
    /// rules are in the module docs).
    pub fn next_wait(&self, result: &RoundResult, failures: u32) -> Duration {
        let base = match result {
            RoundResult::Completed { poll_after: Some(secs), .. } => {
                self.interval.max(Duration::from_secs(*secs))
            }
            RoundResult::Completed { poll_after: None, .. } => self.interval,
            RoundResult::Failed(e) if e.is_certificate_refusal() => self.max_interval,
            RoundResult::Failed(e) => match e.retry_after() {
                Some(secs) => Duration::from_secs(secs),
                // Capped exponential backoff from the minimum interval.
                None => self.min_interval.saturating_mul(1u32 << failures.min(16)),
            },
        };
        self.jittered(base.clamp(self.min_interval, self.max_interval.max(self.min_interval)))
    }

    fn jittered(&self, base: Duration) -> Duration {
        if self.jitter_percent == 0 {
            return base;
        }
        let mut bytes = [0u8; 4];
        let _ = getrandom::fill(&mut bytes);
        let fraction = f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX);
        base + base.mul_f64(fraction * f64::from(self.jitter_percent) / 100.0)
    }
}

/// Polls until `stop` is requested. Each round's result goes to `on_round`, with the
/// client as the round left it.
pub async fn run_loop(
    client: &mut Client,
    schedule: Schedule,
    stop: Arc<Stop>,
    progress: &mut dyn Progress,
    mut on_round: impl FnMut(&Client, &RoundResult),
) {
    let mut failures: u32 = 0;
    while !stop.is_requested() {
        let result = round(client, progress, &stop).await;
        on_round(client, &result);
        failures = match result {
            RoundResult::Failed(_) => failures.saturating_add(1),
            RoundResult::Completed { .. } => 0,
        };
        let wait = schedule.next_wait(&result, failures.saturating_sub(1));
        tracing::debug!(?wait, "next poll");
        if stop.sleep(wait).await {
            break;
        }
    }
    tracing::info!("stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEDULE: Schedule = Schedule {
        interval: Duration::from_secs(60),
        jitter_percent: 0,
        min_interval: Duration::from_secs(10),
        max_interval: Duration::from_secs(3600),
    };

    fn completed(poll_after: Option<u64>) -> RoundResult {
        RoundResult::Completed { installed: 0, reported: Vec::new(), poll_after }
    }

    #[test]
    fn the_later_of_the_interval_and_the_servers_advice_is_followed_within_the_bounds() {
        // Advice longer than the interval slows the host down ...
        assert_eq!(SCHEDULE.next_wait(&completed(Some(120)), 0), Duration::from_secs(120));
        // ... advice shorter than it never speeds the host up.
        assert_eq!(SCHEDULE.next_wait(&completed(Some(1)), 0), Duration::from_secs(60));
        assert_eq!(SCHEDULE.next_wait(&completed(Some(59)), 0), Duration::from_secs(60));
        assert_eq!(SCHEDULE.next_wait(&completed(Some(1 << 40)), 0), Duration::from_secs(3600));
        assert_eq!(SCHEDULE.next_wait(&completed(None), 0), Duration::from_secs(60));
    }

    #[test]
    fn an_interval_of_30s_with_advice_of_1s_or_5s_waits_30s() {
        let schedule =
            Schedule { interval: Duration::from_secs(30), min_interval: Duration::from_secs(1), ..SCHEDULE };
        for advice in [1, 5] {
            assert_eq!(schedule.next_wait(&completed(Some(advice)), 0), Duration::from_secs(30));
        }
    }

    #[test]
    fn the_interval_itself_is_kept_within_the_bounds() {
        let short = Schedule { interval: Duration::from_secs(1), ..SCHEDULE };
        assert_eq!(short.next_wait(&completed(None), 0), Duration::from_secs(10));
        let long = Schedule { interval: Duration::from_secs(7200), ..SCHEDULE };
        assert_eq!(long.next_wait(&completed(Some(5)), 0), Duration::from_secs(3600));
    }

    #[test]
    fn a_refused_certificate_waits_the_maximum_interval_at_once() {
        let refused = RoundResult::Failed(PollError::CertificateRefused {
            server: "127.0.0.1:6543".into(),
            alert: rustls::AlertDescription::CertificateRevoked,
        });
        assert_eq!(SCHEDULE.next_wait(&refused, 0), Duration::from_secs(3600));
    }

    #[test]
    fn failures_back_off_exponentially_up_to_the_maximum() {
        let failed = || RoundResult::Failed(PollError::Locked { path: "/srv/incoming".into() });
        let waits: Vec<u64> = (0..12).map(|n| SCHEDULE.next_wait(&failed(), n).as_secs()).collect();
        assert_eq!(waits[..5], [10, 20, 40, 80, 160]);
        assert_eq!(*waits.last().unwrap(), 3600);
    }

    #[test]
    fn jitter_only_lengthens_the_wait_by_at_most_its_share() {
        let schedule = Schedule { jitter_percent: 10, ..SCHEDULE };
        for _ in 0..100 {
            let wait = schedule.next_wait(&completed(None), 0);
            assert!(wait >= Duration::from_secs(60) && wait <= Duration::from_secs(66), "{wait:?}");
        }
    }

    #[tokio::test]
    async fn a_stop_request_ends_a_wait_at_once() {
        let stop = Arc::new(Stop::default());
        let waiter = {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move { stop.sleep(Duration::from_secs(3600)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.request();
        assert!(tokio::time::timeout(Duration::from_secs(5), waiter).await.unwrap().unwrap());
    }
}
