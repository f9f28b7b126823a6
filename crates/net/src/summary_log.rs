//! [`SummaryLog`]: the one rate limit of every log line that someone else can cause.
//!
//! Anyone who can reach the server can make connections fail, and a CRL file that
//! keeps failing to load is looked at every two seconds: one line per event would
//! let a flood (or a stuck file) write the log. So such events are counted by kind,
//! and a summary is due at most once per interval: the first event after a quiet
//! interval gets one at once, later ones are summed into the summary that the first
//! event after the interval brings (or that a forced event brings at once, for a new
//! kind of trouble the operator must hear about now). The caller writes the line, with
//! its own message and fields; this only decides when, and with which counts.
//!
//! Used by admission (connections refused before their handshake), the handshake log
//! (connections that failed before a request, polls refused while the CRL is stale)
//! and the CRL watcher (a reload that keeps failing).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Counts of `N` kinds of event between summaries.
#[derive(Debug)]
pub struct SummaryLog<const N: usize> {
    every: Duration,
    window: Mutex<Window<N>>,
}

#[derive(Debug)]
struct Window<const N: usize> {
    counts: [u64; N],
    since: SystemTime,
    last_summary: Option<Instant>,
}

/// What a due summary reports: the events of each kind since the last one, and since
/// when (wall clock, for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary<const N: usize> {
    /// Per kind, the events since the last summary.
    pub counts: [u64; N],
    /// When the period began.
    pub since: SystemTime,
}

impl<const N: usize> Summary<N> {
    /// The events of every kind.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl<const N: usize> SummaryLog<N> {
    /// At most one summary per `every`.
    pub fn new(every: Duration) -> Self {
        SummaryLog {
            every,
            window: Mutex::new(Window { counts: [0; N], since: SystemTime::now(), last_summary: None }),
        }
    }

    /// Counts one event of kind `kind` (`< N`) at `now`; returns the summary when one
    /// is due.
    pub fn count(&self, kind: usize, now: Instant) -> Option<Summary<N>> {
        self.note(kind, now, false)
    }

    /// Like [`count`](Self::count), but with `force` the summary is due at once.
    pub fn note(&self, kind: usize, now: Instant, force: bool) -> Option<Summary<N>> {
        let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = window.counts.get_mut(kind) {
            *count += 1;
        }
        let quiet = window.last_summary.is_none_or(|last| now.duration_since(last) >= self.every);
        if !quiet && !force {
            return None;
        }
        window.last_summary = Some(now);
        let counts = std::mem::replace(&mut window.counts, [0; N]);
        let since = std::mem::replace(&mut window.since, SystemTime::now());
        Some(Summary { counts, since })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_event_is_summarized_at_once_then_at_most_once_an_interval() {
        let log = SummaryLog::<3>::new(Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(log.count(1, start).map(|s| s.counts), Some([0, 1, 0]));
        for i in 0..10 {
            assert!(log.count(2, start + Duration::from_secs(i)).is_none());
        }
        assert!(log.count(0, start + Duration::from_secs(30)).is_none());
        let summary = log.count(1, start + Duration::from_secs(60)).unwrap();
        assert_eq!(summary.counts, [1, 1, 10]);
        assert_eq!(summary.total(), 12);
    }

    #[test]
    fn a_forced_event_brings_the_summary_at_once() {
        let log = SummaryLog::<1>::new(Duration::from_secs(60));
        let start = Instant::now();
        assert!(log.count(0, start).is_some());
        assert!(log.count(0, start + Duration::from_secs(1)).is_none());
        assert_eq!(log.note(0, start + Duration::from_secs(2), true).map(|s| s.counts), Some([2]));
        assert!(log.count(0, start + Duration::from_secs(3)).is_none(), "the interval starts again");
    }
}
