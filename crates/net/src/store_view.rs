//! The server's view of the store: polls read an immutable [`StoreSnapshot`] without
//! taking a lock, and one refresher keeps it current on a blocking thread.
//!
//! A poll must see every entry published before its request was read (a host that
//! polls right after a publish gets it). So each poll takes a ticket and wakes the
//! refresher; the refresher notes the highest ticket taken, refreshes the reader on a
//! blocking thread ([`StoreReader::refresh`]: three `stat` calls when nothing changed),
//! and publishes the snapshot with that ticket as checked. A poll then waits until a
//! check that began after its ticket is done. Polls that arrive during a refresh are
//! all served by the next one, so a thousand polls at once cost a few refreshes, not
//! a thousand, and none of them ever blocks an async worker on the file system.
//!
//! A store that does not answer (a hung NFS mount) cannot hold polls for long: after
//! [`CHECK_WAIT`] a poll is served from the snapshot it has (correct, only late), and
//! a refresh that took long is logged. A refresh that fails keeps the old index,
//! which is still served.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use fts_proto::ErrorChain;
use fts_store::{StoreReader, StoreSnapshot};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The longest a poll waits for a look at the store begun after its request.
pub const CHECK_WAIT: Duration = Duration::from_secs(1);

/// A refresh that takes longer than this is logged.
const SLOW_REFRESH: Duration = Duration::from_secs(1);

/// What the refresher publishes: the snapshot, and the last ticket whose check it
/// includes.
#[derive(Debug, Clone)]
struct Checked {
    ticket: u64,
    snapshot: Arc<StoreSnapshot>,
}

/// What the polls and the refresher share.
#[derive(Debug)]
struct Shared {
    /// Locked only by the refresher, on a blocking thread.
    reader: Arc<Mutex<StoreReader>>,
    /// Tickets taken so far (one per poll).
    tickets: AtomicU64,
    /// Wakes the refresher; a wake-up that finds it busy is kept for its next round.
    wake: Notify,
    checked: watch::Sender<Checked>,
}

/// The store as the server's polls see it. Dropping it stops the refresher.
#[derive(Debug)]
pub struct StoreView {
    shared: Arc<Shared>,
    refresher: JoinHandle<()>,
}

impl StoreView {
    /// Starts the refresher of `reader` on the current runtime.
    pub fn start(reader: StoreReader) -> StoreView {
        let snapshot = reader.snapshot();
        let (checked, _) = watch::channel(Checked { ticket: 0, snapshot });
        let shared = Arc::new(Shared {
            reader: Arc::new(Mutex::new(reader)),
            tickets: AtomicU64::new(0),
            wake: Notify::new(),
            checked,
        });
        let refresher = tokio::spawn(refresh_when_asked(Arc::clone(&shared)));
        StoreView { shared, refresher }
    }

    /// The store as it is now: a snapshot that includes a look at the store begun
    /// after this call (or, if the store takes longer than [`CHECK_WAIT`] to answer,
    /// the one already indexed).
    pub async fn current(&self) -> Arc<StoreSnapshot> {
        let ticket = self.shared.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        let mut checked = self.shared.checked.subscribe();
        self.shared.wake.notify_one();
        let waited = tokio::time::timeout(CHECK_WAIT, checked.wait_for(|c| c.ticket >= ticket))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|done| Arc::clone(&done.snapshot));
        // Too slow, or the refresher is gone (only while the server stops): what is
        // indexed is still correct, only late.
        waited.unwrap_or_else(|| Arc::clone(&checked.borrow().snapshot))
    }

    /// The snapshot last published, without a look at the store.
    pub fn last(&self) -> Arc<StoreSnapshot> {
        Arc::clone(&self.shared.checked.borrow().snapshot)
    }
}

impl Drop for StoreView {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// The refresher: one refresh at a time, each covering every ticket taken before it
/// began.
async fn refresh_when_asked(shared: Arc<Shared>) {
    let mut done = 0;
    loop {
        shared.wake.notified().await;
        let upto = shared.tickets.load(Ordering::Acquire);
        if upto <= done {
            continue;
        }
        let reader = Arc::clone(&shared.reader);
        let started = Instant::now();
        let refreshed = tokio::task::spawn_blocking(move || {
            let mut reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
            let result = reader.refresh();
            (result, reader.snapshot())
        })
        .await;
        let snapshot = match refreshed {
            Ok((result, snapshot)) => {
                if let Err(e) = result {
                    // The index keeps what it had; serving it is still correct, only late.
                    tracing::warn!(error = %ErrorChain(&e), "cannot refresh the store index: serving what is already indexed");
                }
                snapshot
            }
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "refreshing the store index failed: serving what is already indexed");
                Arc::clone(&shared.checked.borrow().snapshot)
            }
        };
        let took = started.elapsed();
        if took > SLOW_REFRESH {
            tracing::warn!(
                took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                "the store took long to answer a look at its journal: polls meanwhile were served the \
                 entries already indexed (is its file system slow or hung?)"
            );
        }
        done = upto;
        shared.checked.send_replace(Checked { ticket: upto, snapshot });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_poll_sees_what_was_published_before_it_asked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("store")).unwrap();
        let view = StoreView::start(StoreReader::open(dir.path().join("store")).unwrap());
        assert!(view.current().await.is_empty());
        // A journal that appears (a replica's first sync) is picked up by the next poll.
        let store = fts_store::Store::open_or_create(dir.path().join("store")).unwrap();
        let source = dir.path().join("a.bin");
        std::fs::write(&source, b"a").unwrap();
        let key = fts_trust::SigningKey::generate().unwrap();
        let name = fts_proto::FileName::parse("a.bin").unwrap();
        store.publish(&source, &name, &[fts_proto::Target::All], &key).unwrap();
        let seen = view.current().await;
        assert_eq!(seen.len(), 1);
        // Many polls at once share refreshes, and each one sees the entry.
        let polls: Vec<_> = (0..50).map(|_| view.current()).collect();
        for poll in polls {
            assert_eq!(poll.await.len(), 1);
        }
        assert_eq!(view.last().generation(), seen.generation(), "nothing changed since");
    }
}
