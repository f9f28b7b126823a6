//! The server's view of the store: polls read an immutable [`StoreSnapshot`] without
//! taking a lock, and looks at the store happen on a blocking thread.
//!
//! A poll must see every entry published before its request was read (a host that
//! polls right after a publish gets it). So each poll takes a ticket; the looker notes
//! the highest ticket taken, refreshes the reader ([`StoreReader::refresh`]: three
//! `stat` calls when nothing changed) and publishes the snapshot with that ticket as
//! checked. A poll then waits until a check that began after its ticket is done.
//! Polls that arrive during a look are all served by the next one, so a thousand polls
//! at once cost a few looks, not a thousand, and none of them ever blocks an async
//! worker on the file system.
//!
//! There is no refresher task in between: the poll that finds no look under way starts
//! one with `spawn_blocking`, and that blocking thread goes on looking while tickets
//! keep coming, then stops. A look thus costs one wake-up of a blocking thread and one
//! of the poll (the hand-off is most of what a look costs; docs/PERFORMANCE.md). Being
//! a `spawn_blocking` task, a look also holds paused tokio time still in tests.
//!
//! A store that does not answer (a hung NFS mount) cannot hold polls for long: after
//! [`CHECK_WAIT`] a poll is served from the snapshot it has (correct, only late), and
//! a refresh that took long is logged. A refresh that fails keeps the old index,
//! which is still served.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fts_proto::ErrorChain;
use fts_store::{StoreReader, StoreSnapshot};
use tokio::sync::watch;

/// The longest a poll waits for a look at the store begun after its request.
pub const CHECK_WAIT: Duration = Duration::from_secs(1);

/// A refresh that takes longer than this is logged.
const SLOW_REFRESH: Duration = Duration::from_secs(1);

/// What a look publishes: the snapshot, and the last ticket whose check it includes.
#[derive(Debug, Clone)]
struct Checked {
    ticket: u64,
    snapshot: Arc<StoreSnapshot>,
}

/// What the polls and the looker share.
#[derive(Debug)]
struct Shared {
    /// Locked only by the looker, on a blocking thread.
    reader: Mutex<StoreReader>,
    /// Tickets taken so far (one per poll).
    tickets: AtomicU64,
    /// A looker is running (at most one is).
    looking: AtomicBool,
    checked: watch::Sender<Checked>,
}

/// The store as the server's polls see it.
#[derive(Debug)]
pub struct StoreView {
    shared: Arc<Shared>,
}

impl StoreView {
    /// The view of `reader`; its looks run on the current runtime's blocking threads.
    pub fn start(reader: StoreReader) -> StoreView {
        let (checked, _) = watch::channel(Checked { ticket: 0, snapshot: reader.snapshot() });
        let shared = Shared {
            reader: Mutex::new(reader),
            tickets: AtomicU64::new(0),
            looking: AtomicBool::new(false),
            checked,
        };
        StoreView { shared: Arc::new(shared) }
    }

    /// The store as it is now: a snapshot that includes a look at the store begun
    /// after this call (or, if the store takes longer than [`CHECK_WAIT`] to answer,
    /// the one already indexed).
    pub async fn current(&self) -> Arc<StoreSnapshot> {
        let mut checked = self.shared.checked.subscribe();
        let ticket = self.shared.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        if self.shared.looking.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            let shared = Arc::clone(&self.shared);
            // Not awaited: the looker ends by itself, and the poll waits for the
            // snapshot, not for the thread.
            drop(tokio::task::spawn_blocking(move || look_while_asked(&shared)));
        }
        let waited = tokio::time::timeout(CHECK_WAIT, checked.wait_for(|c| c.ticket >= ticket))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|done| Arc::clone(&done.snapshot));
        // Too slow: what is indexed is still correct, only late.
        waited.unwrap_or_else(|| Arc::clone(&checked.borrow().snapshot))
    }

    /// The snapshot last published, without a look at the store.
    pub fn last(&self) -> Arc<StoreSnapshot> {
        Arc::clone(&self.shared.checked.borrow().snapshot)
    }
}

/// The looker, on a blocking thread: looks until a look covers every ticket taken,
/// then stops, unless a ticket came as it was stopping (then it goes on, so that no
/// poll is left waiting with nobody looking).
fn look_while_asked(shared: &Shared) {
    // Whatever ends this looker (a panic included), `looking` must not stay set, or no
    // look would ever start again and every poll would wait CHECK_WAIT for nothing.
    let _unset = UnsetOnUnwind(&shared.looking);
    let mut reader = shared.reader.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        let upto = shared.tickets.load(Ordering::SeqCst);
        look(&mut reader);
        shared.checked.send_replace(Checked { ticket: upto, snapshot: reader.snapshot() });
        if shared.tickets.load(Ordering::SeqCst) != upto {
            continue;
        }
        shared.looking.store(false, Ordering::SeqCst);
        // A poll that took its ticket after the check above found `looking` still
        // set and started nobody: take the job back if nobody else has.
        let again = shared.tickets.load(Ordering::SeqCst) != upto
            && shared.looking.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_ok();
        if !again {
            return;
        }
    }
}

/// Clears the `looking` flag if the looker unwinds (its normal ends clear it
/// themselves, in order with the tickets).
struct UnsetOnUnwind<'a>(&'a AtomicBool);

impl Drop for UnsetOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(false, Ordering::SeqCst);
        }
    }
}

/// One look at the store, logged when it fails or takes long.
fn look(reader: &mut StoreReader) {
    let started = Instant::now();
    // A panic in a look (a bug) must not end the looker with `looking` still set:
    // every later poll would wait CHECK_WAIT for nothing. The published snapshot
    // stays whole either way.
    match std::panic::catch_unwind(AssertUnwindSafe(|| reader.refresh())) {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            // The index keeps what it had; serving it is still correct, only late.
            tracing::warn!(error = %ErrorChain(&e), "cannot refresh the store index: serving what is already indexed");
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %message, "refreshing the store index failed: serving what is already indexed");
        }
    }
    let took = started.elapsed();
    if took > SLOW_REFRESH {
        tracing::warn!(
            took_ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "the store took long to answer a look at its journal: polls meanwhile were served the \
             entries already indexed (is its file system slow or hung?)"
        );
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
