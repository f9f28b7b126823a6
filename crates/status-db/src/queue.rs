//! What a server holds in memory for the database: the status updates waiting to be
//! written ([`Queue`], bounded) and the book of unchanged polls ([`PollBook`]).
//!
//! Why: no database on the poll path. A poll only adds to the queue (or, when it
//! changes nothing but the time, to the book), and the writer writes the queue in
//! batches, so a database that is down or slow delays status, never a poll. The
//! queue is bounded ([`MAX_QUEUED`]): when it is full the oldest update goes, is
//! counted, and its host's fingerprint is forgotten, so that its next poll is
//! written whole again. Receipts never wait here: they are stored, and taken into
//! their hosts' status, before they are acknowledged (`record_receipts`).

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use fts_proto::{ClientId, Published, Report, Target};
use fts_status::PollClaims;

/// The most status updates held in memory (about 1 KiB each at most).
pub const MAX_QUEUED: usize = 200_000;
/// Shards of the poll book.
const SHARDS: usize = 64;

/// One status update waiting to be written.
#[derive(Debug, Clone)]
pub(crate) enum Update {
    /// A poll that changed something.
    Poll {
        client: ClientId,
        authenticated: bool,
        claims: Box<PollClaims>,
        reports: Vec<Report>,
        at: Published,
    },
    /// What an answer sent.
    Offered { client: ClientId, offered: BTreeMap<Target, u64>, at: Published },
}

impl Update {
    pub(crate) fn client(&self) -> &ClientId {
        match self {
            Update::Poll { client, .. } | Update::Offered { client, .. } => client,
        }
    }
}

/// The updates waiting, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    updates: Mutex<VecDeque<Update>>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Update>> {
        self.updates.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds an update; returns the client of one dropped to make room.
    pub(crate) fn push(&self, update: Update) -> Option<ClientId> {
        let mut updates = self.lock();
        let dropped = if updates.len() >= MAX_QUEUED { updates.pop_front() } else { None };
        updates.push_back(update);
        dropped.map(|d| d.client().clone())
    }

    /// Takes up to `max` of the oldest updates.
    pub(crate) fn take(&self, max: usize) -> Vec<Update> {
        let mut updates = self.lock();
        let n = updates.len().min(max);
        updates.drain(..n).collect()
    }

    /// Takes every update of the hosts in `clients`, in their order, leaving the
    /// others where they are.
    pub(crate) fn take_of(&self, clients: &std::collections::HashSet<&ClientId>) -> Vec<Update> {
        let mut updates = self.lock();
        let (theirs, others): (VecDeque<Update>, VecDeque<Update>) =
            updates.drain(..).partition(|update| clients.contains(update.client()));
        *updates = others;
        theirs.into()
    }

    /// Puts back updates a failed write took (before any newer), as far as they fit;
    /// returns the clients of those that did not.
    pub(crate) fn put_back(&self, taken: Vec<Update>) -> Vec<ClientId> {
        let mut updates = self.lock();
        let room = MAX_QUEUED.saturating_sub(updates.len());
        let mut dropped = Vec::new();
        let keep = taken.len().min(room);
        let mut taken = taken;
        // The newest of the taken fit; the oldest go.
        for update in taken.drain(..taken.len() - keep) {
            dropped.push(update.client().clone());
        }
        for update in taken.into_iter().rev() {
            updates.push_front(update);
        }
        dropped
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// What the book knows of one host.
#[derive(Debug, Clone, Copy)]
struct Seen {
    /// The fingerprint of the poll last queued for it.
    fingerprint: u64,
    /// Its latest poll (Unix seconds).
    last_poll: u64,
    /// Whether `last_poll` is newer than what the database has.
    dirty: bool,
}

/// Per host, the fingerprint of the poll this process last queued and the time of
/// its latest unchanged poll.
#[derive(Debug)]
pub(crate) struct PollBook {
    shards: Vec<Mutex<HashMap<ClientId, Seen>>>,
}

impl PollBook {
    pub(crate) fn new() -> PollBook {
        PollBook { shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect() }
    }

    fn shard(&self, client: &ClientId) -> MutexGuard<'_, HashMap<ClientId, Seen>> {
        let mut hasher = DefaultHasher::new();
        client.hash(&mut hasher);
        self.shards[(hasher.finish() % SHARDS as u64) as usize].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a poll at `now` if the last one queued had `fingerprint`; says whether.
    pub(crate) fn note_if_unchanged(&self, client: &ClientId, fingerprint: u64, now: u64) -> bool {
        match self.shard(client).get_mut(client) {
            Some(seen) if seen.fingerprint == fingerprint => {
                seen.last_poll = seen.last_poll.max(now);
                seen.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Notes that a poll with `fingerprint` at `now` was queued.
    pub(crate) fn queued(&self, client: &ClientId, fingerprint: u64, now: u64) {
        self.shard(client).insert(client.clone(), Seen { fingerprint, last_poll: now, dirty: false });
    }

    /// Forgets a host, so that its next poll is written whole.
    pub(crate) fn forget(&self, client: &ClientId) {
        self.shard(client).remove(client);
    }

    /// Takes the times newer than the database's.
    pub(crate) fn take_dirty(&self) -> Vec<(ClientId, u64)> {
        let mut dirty = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for (client, seen) in shard.iter_mut().filter(|(_, seen)| seen.dirty) {
                seen.dirty = false;
                dirty.push((client.clone(), seen.last_poll));
            }
        }
        dirty
    }

    /// Whether every time is in the database.
    pub(crate) fn is_clean(&self) -> bool {
        self.shards
            .iter()
            .all(|shard| shard.lock().unwrap_or_else(PoisonError::into_inner).values().all(|s| !s.dirty))
    }

    /// Marks times taken by a write that failed as dirty again.
    pub(crate) fn restore_dirty(&self, times: &[(ClientId, u64)]) {
        for (client, _) in times {
            if let Some(seen) = self.shard(client).get_mut(client) {
                seen.dirty = true;
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

    fn offered(client: &str, seq: u64) -> Update {
        Update::Offered {
            client: id(client),
            offered: BTreeMap::from([(Target::All, seq)]),
            at: Published::from_unix_seconds(1_795_626_000),
        }
    }

    #[test]
    fn a_failed_write_goes_back_before_newer_updates() {
        let queue = Queue::default();
        queue.push(offered("a", 1));
        queue.push(offered("b", 2));
        let taken = queue.take(10);
        queue.push(offered("c", 3));
        assert!(queue.put_back(taken).is_empty());
        let order: Vec<String> = queue.take(10).iter().map(|u| u.client().to_string()).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn the_updates_of_some_hosts_are_taken_in_their_order() {
        let queue = Queue::default();
        for (client, seq) in [("a", 1), ("b", 1), ("a", 2), ("c", 1)] {
            queue.push(offered(client, seq));
        }
        let a = id("a");
        let taken = queue.take_of(&std::collections::HashSet::from([&a]));
        let seqs: Vec<u64> = taken
            .iter()
            .map(|u| match u {
                Update::Offered { offered, .. } => offered[&Target::All],
                Update::Poll { .. } => 0,
            })
            .collect();
        assert_eq!(seqs, [1, 2]);
        let left: Vec<String> = queue.take(10).iter().map(|u| u.client().to_string()).collect();
        assert_eq!(left, ["b", "c"]);
    }

    #[test]
    fn a_full_queue_drops_its_oldest_and_says_whose() {
        let queue = Queue::default();
        for n in 0..MAX_QUEUED {
            assert!(queue.push(offered(&format!("h-{n}"), 1)).is_none());
        }
        assert_eq!(queue.push(offered("late", 1)), Some(id("h-0")));
        assert_eq!(queue.len(), MAX_QUEUED);
    }

    #[test]
    fn the_book_notes_only_polls_like_the_last_queued() {
        let book = PollBook::new();
        assert!(!book.note_if_unchanged(&id("a"), 7, 100), "unknown");
        book.queued(&id("a"), 7, 100);
        assert!(book.take_dirty().is_empty(), "the queued poll carries its time");
        assert!(book.note_if_unchanged(&id("a"), 7, 160));
        assert!(!book.note_if_unchanged(&id("a"), 8, 170), "another fingerprint");
        let dirty = book.take_dirty();
        assert_eq!(dirty, [(id("a"), 160)]);
        assert!(book.take_dirty().is_empty());
        book.restore_dirty(&dirty);
        assert_eq!(book.take_dirty(), [(id("a"), 160)]);
        book.forget(&id("a"));
        assert!(!book.note_if_unchanged(&id("a"), 7, 200));
    }
}
