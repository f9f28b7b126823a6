//! The server's in-memory book of when each client last polled, and its snapshot
//! `last-polls.tsv` in the status folder.
//!
//! Why it exists: most polls change nothing but the time (the client's `since` and its
//! authentication are the same as at its previous poll, and it reports nothing).
//! Rewriting the client's status file for those cost more CPU than the TLS handshake
//! of a resumed poll (a temp file, a rename, and a thread hop). So the server remembers
//! a fingerprint of what it last wrote for each client; a poll that matches it only
//! updates the time here, in memory, and `LastPolls::flush` writes every client's
//! time in one file every few seconds and when the server stops. A poll that changes
//! anything, or reports a problem, still rewrites the client's file at once.
//!
//! Readers take, per client, the later of the time in its own file and the time here
//! ([`last_poll_to_show`]), leaving out a time more than [`MAX_AHEAD_SECS`] ahead of
//! their clock: a server clock that ran ahead for a while must not freeze a host's
//! "last poll" in the future (each poll records the time it saw, later or not, so
//! the book heals at the next poll once the clock is right). A time in this file for a
//! client without a file of its own is ignored (the client file carries everything
//! else `fts status` shows). A client whose file was deleted leaves the book at the
//! next flush (one listing of the folder), so its next poll writes its file again and
//! the book stays as large as the folder.
//!
//! Format, one line per client after a comment line, sorted by id:
//! `<client-id> TAB <YYYY-MM-DDTHH:MM:SSZ>`. Lines that do not parse are skipped (one
//! warning says how many). Advisory like the rest of the status: replaced atomically
//! ([`fts_fs::Dir::write_atomic`]), never flushed to disk. A crash costs the times
//! noted since the last flush; a power loss can cost the whole file, and then each
//! host shows the time of its last change until its next poll.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use fts_proto::{ClientId, ErrorChain, Published};

use crate::dir::{STATUS_WRITE, read_small_file};
use crate::error::Result;

/// The snapshot's file name (never a client file: those end in `.json`).
const LAST_POLLS_FILE: &str = "last-polls.tsv";
const HEADER: &str = "# fts last polls, format 1: client-id<TAB>last poll (UTC)";
/// A snapshot larger than this is not read (64 MiB: about two million clients).
const MAX_LAST_POLLS_FILE: u64 = 64 << 20;
/// Shards of the book, so that polls of different clients rarely wait for each other.
const SHARDS: usize = 64;
/// A time further than this ahead of the reader's clock was written by a clock that
/// was wrong, and is not believed.
pub const MAX_AHEAD_SECS: u64 = 600;

/// What the book knows of one client.
#[derive(Debug, Clone, Copy)]
struct Seen {
    last_poll: u64,
    /// The fingerprint of what the client's status file holds, when this process
    /// wrote it; `None` for a time loaded from the snapshot (its file may differ).
    written: Option<u64>,
}

/// Last poll times, in memory, shared by every connection task.
#[derive(Debug)]
pub(crate) struct LastPolls {
    shards: Vec<Mutex<HashMap<ClientId, Seen>>>,
    /// Set when a time changed that only this book holds.
    dirty: AtomicBool,
    /// Held for a whole flush, so that two flushes (the periodic one and the one at
    /// stop) never race to rename an older snapshot over a newer one.
    flushing: Mutex<()>,
}

/// The fingerprint of the part of a client's status file that a plain poll would
/// rewrite: its authentication and its `since` per target. Equal fingerprints of
/// different contents (one chance in 2^64) would only delay a status update, never
/// touch delivery.
pub fn fingerprint(authenticated: bool, since: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    authenticated.hash(&mut hasher);
    since.hash(&mut hasher);
    hasher.finish()
}

impl LastPolls {
    pub(crate) fn new() -> LastPolls {
        LastPolls {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            dirty: AtomicBool::new(false),
            flushing: Mutex::new(()),
        }
    }

    /// A book holding the times of the snapshot in `dir` (none when it is missing) for
    /// the clients that have a status file, except times from the future.
    pub(crate) fn load(dir: &Path, now: u64) -> LastPolls {
        let book = LastPolls::new();
        let with_files = clients_with_files(dir);
        for (client, time) in read_snapshot(dir) {
            let last_poll = time.unix_seconds();
            let has_file = with_files.as_ref().is_none_or(|with_files| with_files.contains(&client));
            if has_file && last_poll <= now.saturating_add(MAX_AHEAD_SECS) {
                book.shard(&client).insert(client, Seen { last_poll, written: None });
            }
        }
        book
    }

    fn shard(&self, client: &ClientId) -> MutexGuard<'_, HashMap<ClientId, Seen>> {
        let mut hasher = DefaultHasher::new();
        client.hash(&mut hasher);
        // A poisoned shard only means a thread panicked between two plain field
        // writes; every entry is still a valid time.
        self.shards[(hasher.finish() % SHARDS as u64) as usize].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a poll at `now` (Unix seconds) if the client's file already holds
    /// `fingerprint`, and says whether it did. No I/O.
    pub(crate) fn note_if_unchanged(&self, client: &ClientId, fingerprint: u64, now: u64) -> bool {
        let mut shard = self.shard(client);
        match shard.get_mut(client) {
            Some(seen) if seen.written == Some(fingerprint) => {
                seen.last_poll = now;
                self.dirty.store(true, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    /// Notes that the client's file was just written with `fingerprint` and time `now`
    /// (the snapshot follows at the next flush, so it never keeps an older time).
    pub(crate) fn written(&self, client: &ClientId, fingerprint: u64, now: u64) {
        self.shard(client).insert(client.clone(), Seen { last_poll: now, written: Some(fingerprint) });
        self.dirty.store(true, Ordering::Release);
    }

    /// Forgets what the client's file holds, so that its next poll rewrites it (after
    /// a write failed part way).
    pub(crate) fn forget_written(&self, client: &ClientId) {
        if let Some(seen) = self.shard(client).get_mut(client) {
            seen.written = None;
        }
    }

    /// Writes the snapshot if a time changed since the last flush; says whether it
    /// wrote. A failed write leaves the book dirty, so the next flush tries again.
    pub(crate) fn flush(&self, dir: &Path) -> Result<bool> {
        let _one_at_a_time = self.flushing.lock().unwrap_or_else(PoisonError::into_inner);
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(false);
        }
        // A client whose file is gone (an operator forgetting a host) leaves the book:
        // its next poll then writes its file again, as any first poll does.
        let with_files = clients_with_files(dir);
        let mut all: Vec<(ClientId, u64)> = Vec::new();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(with_files) = &with_files {
                shard.retain(|client, _| with_files.contains(client));
            }
            all.extend(shard.iter().map(|(client, seen)| (client.clone(), seen.last_poll)));
        }
        all.sort_unstable();
        let mut text = String::with_capacity(HEADER.len() + 1 + all.len() * 48);
        text.push_str(HEADER);
        text.push('\n');
        for (client, secs) in &all {
            text.push_str(client.as_str());
            text.push('\t');
            text.push_str(Published::from_unix_seconds(*secs).as_str());
            text.push('\n');
        }
        let written = fts_fs::Dir::open(dir)
            .and_then(|folder| folder.write_atomic(LAST_POLLS_FILE, text.as_bytes(), &STATUS_WRITE))
            .map_err(Into::into);
        if written.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        written.map(|()| true)
    }
}

/// The times of the snapshot in `dir`; empty when it is missing or unreadable (which
/// is logged: the client files still give each client's time of its last change).
pub(crate) fn read_snapshot(dir: &Path) -> HashMap<ClientId, Published> {
    let path = dir.join(LAST_POLLS_FILE);
    let bytes = match read_small_file(&path, MAX_LAST_POLLS_FILE) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return HashMap::new(),
        Err(e) => {
            tracing::warn!(error = %ErrorChain(&e), "ignoring the last poll times");
            return HashMap::new();
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut times = HashMap::new();
    let (mut damaged, mut first_damaged) = (0usize, 0usize);
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line
            .split_once('\t')
            .and_then(|(client, time)| Some((ClientId::parse(client).ok()?, Published::parse(time).ok()?)));
        match parsed {
            Some((client, time)) => {
                times.insert(client, time);
            }
            None => {
                damaged += 1;
                if first_damaged == 0 {
                    first_damaged = n + 1;
                }
            }
        }
    }
    if damaged > 0 {
        tracing::warn!(path = %path.display(), lines = damaged, first = first_damaged, "skipping damaged lines");
    }
    times
}

/// The last poll time to show for a client: the later of its file's and the
/// snapshot's, leaving out a time more than [`MAX_AHEAD_SECS`] ahead of `now` (unless
/// both are: then the file's).
pub fn last_poll_to_show(file: Published, snapshot: Option<Published>, now: u64) -> Published {
    let believable = |time: &Published| time.unix_seconds() <= now.saturating_add(MAX_AHEAD_SECS);
    match snapshot.filter(believable) {
        Some(snapshot) if !believable(&file) || snapshot > file => snapshot,
        _ => file,
    }
}

/// The clients that have a status file in `dir` (`<client-id>.json`); `None` when the
/// folder cannot be listed (then nobody is taken for gone).
fn clients_with_files(dir: &Path) -> Option<HashSet<ClientId>> {
    let mut clients = HashSet::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let name = entry.ok()?.file_name();
        if let Some(client) =
            name.to_str().and_then(|n| n.strip_suffix(".json")).and_then(|n| ClientId::parse(n).ok())
        {
            clients.insert(client);
        }
    }
    Some(clients)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }

    #[test]
    fn a_poll_is_noted_only_when_the_file_holds_the_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("web-01.json"), b"{}").unwrap();
        let book = LastPolls::new();
        assert!(!book.note_if_unchanged(&id("web-01"), 7, 100), "never written: the file must be");
        book.written(&id("web-01"), 7, 100);
        assert!(!book.note_if_unchanged(&id("web-01"), 8, 110), "changed: the file must be rewritten");
        assert!(book.note_if_unchanged(&id("web-01"), 7, 120));
        assert!(book.flush(dir.path()).unwrap());
        assert!(!book.flush(dir.path()).unwrap(), "nothing changed since");
        let times = read_snapshot(dir.path());
        assert_eq!(times[&id("web-01")].unix_seconds(), 120);
        book.forget_written(&id("web-01"));
        assert!(!book.note_if_unchanged(&id("web-01"), 7, 130));
    }

    #[test]
    fn the_latest_time_seen_is_kept_and_a_reload_keeps_what_it_can_believe() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.json", "b.json", "c.json"] {
            fs::write(dir.path().join(name), b"{}").unwrap();
        }
        let book = LastPolls::new();
        book.written(&id("a"), 1, 500);
        book.written(&id("b"), 1, 100);
        assert!(book.note_if_unchanged(&id("a"), 1, 400), "the clock stepped back: 400 is the truth now");
        assert!(book.note_if_unchanged(&id("b"), 1, 200));
        book.written(&id("c"), 1, 9_000_000);
        book.flush(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(LAST_POLLS_FILE)).unwrap();
        assert_eq!(
            text,
            format!("{HEADER}\na\t1970-01-01T00:06:40Z\nb\t1970-01-01T00:03:20Z\nc\t1970-04-15T04:00:00Z\n")
        );

        // b's file is gone; c's time is in the future of a clock at 1,000.
        fs::remove_file(dir.path().join("b.json")).unwrap();
        let reloaded = LastPolls::load(dir.path(), 1_000);
        assert!(!reloaded.note_if_unchanged(&id("a"), 1, 600), "a loaded time says nothing of the file");
        reloaded.dirty.store(true, Ordering::Release);
        reloaded.flush(dir.path()).unwrap();
        let times = read_snapshot(dir.path());
        let ids: Vec<_> = times.keys().map(ClientId::as_str).collect();
        assert_eq!(ids, ["a"], "b has no file, c's time cannot be believed");
        assert_eq!(times[&id("a")].unix_seconds(), 400);
    }

    #[test]
    fn the_time_shown_is_the_later_believable_one() {
        let t = Published::from_unix_seconds;
        let now = 10_000;
        assert_eq!(last_poll_to_show(t(100), None, now), t(100));
        assert_eq!(last_poll_to_show(t(100), Some(t(200)), now), t(200));
        assert_eq!(last_poll_to_show(t(300), Some(t(200)), now), t(300));
        assert_eq!(last_poll_to_show(t(100), Some(t(now + MAX_AHEAD_SECS)), now), t(now + MAX_AHEAD_SECS));
        assert_eq!(
            last_poll_to_show(t(100), Some(t(now + MAX_AHEAD_SECS + 1)), now),
            t(100),
            "from the future"
        );
        assert_eq!(
            last_poll_to_show(t(now + 99_999), Some(t(200)), now),
            t(200),
            "the file's is from the future"
        );
        assert_eq!(last_poll_to_show(t(now + 99_999), Some(t(now + 88_888)), now), t(now + 99_999));
    }

    #[test]
    fn a_flush_never_writes_an_older_snapshot_over_a_newer_one() {
        // The periodic flush and the one at stop may run at once: whichever renames
        // last must hold every time noted before it began.
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.json"), b"{}").unwrap();
        let book = std::sync::Arc::new(LastPolls::new());
        book.written(&id("a"), 1, 1);
        std::thread::scope(|scope| {
            for thread in 0..4u64 {
                let book = &book;
                let dir = dir.path();
                scope.spawn(move || {
                    for n in 0..200u64 {
                        assert!(book.note_if_unchanged(&id("a"), 1, 10 + n * 4 + thread));
                        book.flush(dir).unwrap();
                    }
                });
            }
        });
        book.flush(dir.path()).unwrap();
        let in_book = book.shard(&id("a")).get(&id("a")).unwrap().last_poll;
        assert_eq!(read_snapshot(dir.path())[&id("a")].unix_seconds(), in_book);
    }

    #[test]
    fn a_client_whose_file_was_deleted_leaves_the_book_at_the_next_flush() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("web-01.json"), b"{}").unwrap();
        fs::write(dir.path().join("db-01.json"), b"{}").unwrap();
        let book = LastPolls::new();
        book.written(&id("web-01"), 1, 100);
        book.written(&id("db-01"), 1, 100);
        fs::remove_file(dir.path().join("web-01.json")).unwrap();
        assert!(book.note_if_unchanged(&id("web-01"), 1, 110), "not noticed before the flush");
        book.flush(dir.path()).unwrap();
        let ids: Vec<_> = read_snapshot(dir.path()).into_keys().collect();
        assert_eq!(ids, [id("db-01")]);
        assert!(!book.note_if_unchanged(&id("web-01"), 1, 120), "its next poll writes its file again");
        assert!(book.note_if_unchanged(&id("db-01"), 1, 120));
    }

    #[test]
    fn damaged_lines_are_skipped_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_snapshot(dir.path()).is_empty());
        let text = "# comment\nweb-01\t2026-11-25T17:00:00Z\nNot An Id\t2026-11-25T17:00:00Z\n\
                    db-01\tyesterday\nno-tab\n\x00\x01\ndb-02\t2026-11-25T17:00:01Z\n";
        fs::write(dir.path().join(LAST_POLLS_FILE), text).unwrap();
        let times = read_snapshot(dir.path());
        let mut ids: Vec<_> = times.keys().map(ClientId::as_str).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["db-02", "web-01"]);
    }
}
