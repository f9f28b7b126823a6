//! Admission of polls: the server-wide cap on active polls and the cap per client id.
//!
//! Both are soft limits answered with `busy` and a `retry-after`, not queues: a client
//! that is turned away polls again later, and a burst never piles up work in memory.
//! The connection cap is separate (a semaphore permit taken before `accept`), and so
//! is the admission of transfers under `--max-send-rate` ([`crate::egress`]), which
//! answers with the same `busy`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use fts_proto::ClientId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a poll was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// `--max-active-polls` polls are running.
    #[error("the server is at its limit of active polls")]
    Server,
    /// This client id has `--max-polls-per-client` polls running.
    #[error("this client id already has the maximum number of polls running")]
    Client,
    /// A new transfer would not fit in `--max-send-rate` ([`crate::egress`]).
    #[error("the server is at its limit of transfers for its --max-send-rate")]
    SendRate,
}

/// The admission state shared by every connection.
#[derive(Debug)]
pub struct PollLimits {
    active: Arc<Semaphore>,
    max_active: usize,
    per_client: Arc<Mutex<HashMap<ClientId, usize>>>,
    max_per_client: usize,
}

/// Held for the duration of one poll; frees both slots when dropped, whatever way the
/// poll ends.
#[derive(Debug)]
pub struct PollPermit {
    _active: OwnedSemaphorePermit,
    per_client: Arc<Mutex<HashMap<ClientId, usize>>>,
    client: ClientId,
}

impl PollLimits {
    /// Limits of `max_active` polls in all and `max_per_client` per client id.
    pub fn new(max_active: usize, max_per_client: usize) -> Self {
        PollLimits {
            active: Arc::new(Semaphore::new(max_active)),
            max_active,
            per_client: Arc::default(),
            max_per_client,
        }
    }

    /// Admits a poll for `client` now, or says why not.
    pub fn try_admit(&self, client: &ClientId) -> Result<PollPermit, Busy> {
        let active = Arc::clone(&self.active).try_acquire_owned().map_err(|_| Busy::Server)?;
        let mut counts = self.per_client.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(client.clone()).or_insert(0);
        if *count >= self.max_per_client {
            return Err(Busy::Client);
        }
        *count += 1;
        Ok(PollPermit { _active: active, per_client: Arc::clone(&self.per_client), client: client.clone() })
    }

    /// Polls running now.
    pub fn active(&self) -> usize {
        self.max_active.saturating_sub(self.active.available_permits())
    }
}

impl Drop for PollPermit {
    fn drop(&mut self) {
        let mut counts = self.per_client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }

    #[test]
    fn a_client_gets_at_most_its_share_of_polls() {
        let limits = PollLimits::new(10, 2);
        let first = limits.try_admit(&id("web-01")).unwrap();
        let _second = limits.try_admit(&id("web-01")).unwrap();
        assert_eq!(limits.try_admit(&id("web-01")).unwrap_err(), Busy::Client);
        assert!(limits.try_admit(&id("web-02")).is_ok(), "other clients are not affected");
        drop(first);
        assert!(limits.try_admit(&id("web-01")).is_ok(), "a finished poll frees its slot");
    }

    #[test]
    fn the_server_admits_at_most_its_active_polls() {
        let limits = PollLimits::new(2, 2);
        let _a = limits.try_admit(&id("a")).unwrap();
        let b = limits.try_admit(&id("b")).unwrap();
        assert_eq!(limits.try_admit(&id("c")).unwrap_err(), Busy::Server);
        assert_eq!(limits.active(), 2);
        drop(b);
        assert!(limits.try_admit(&id("c")).is_ok());
    }

    #[test]
    fn a_refused_poll_takes_no_slot() {
        let limits = PollLimits::new(3, 1);
        let _a = limits.try_admit(&id("a")).unwrap();
        assert_eq!(limits.try_admit(&id("a")).unwrap_err(), Busy::Client);
        assert_eq!(limits.active(), 1, "the server-wide slot of the refused poll was given back");
    }
}
