//! Delivery status, kept by the server in its own folder (`--status-dir`), outside the
//! store, so that the store can stay read-only for the server.
//!
//! One JSON file per client, `<client-id>.json`, replaced whole
//! ([`fts_fs::Dir::write_atomic`], so a reader sees the old file or the new one). It says when the client last polled,
//! whether that poll was authenticated, its `since` per target, and the problems it
//! reported: each (target, seq, reason) once, with first-seen and last-seen times, the
//! newest [`MAX_PROBLEMS`] kept.
//!
//! A client's file is rewritten by a poll that changes it: a new `since`, a change of
//! authentication, or a report. A poll that changes nothing but the time is only noted
//! in memory ([`StatusDir::note_unchanged_poll`]) and reaches `last-polls.tsv` at the
//! server's next [`StatusDir::flush_last_polls`], every few seconds (the module
//! `last_polls` says why); readers take the later of the two times.
//!
//! Status is advisory. A file is flushed to disk only when it records a new problem,
//! and at most [`DURABLE_WRITES_PER_MINUTE`] times a minute per client (the reports
//! are the client's own words: a client making up a new one every poll must not buy
//! an fsync per poll); after a power loss a plain poll update, or a problem recorded
//! beyond that budget, may be lost or the file left damaged. A
//! damaged file is skipped with a warning by [`StatusDir::read_all`] and rewritten at
//! the client's first poll after the server starts, or its next change. One server
//! process writes a status folder; within it, polls of the same client are serialized
//! by an in-process lock.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use fts_proto::{
    AlarmName, ClientId, ErrorChain, FileHash, FileName, Published, RejectReason, Report, Target,
};
use serde::{Deserialize, Serialize};

use fts_fs::{Dir, FileMode, FsError, WriteOptions};

use crate::error::{BadStatusFile, Result, StatusError};
use crate::last_polls::{LastPolls, fingerprint, last_poll_to_show, read_snapshot};

/// Problems kept per client; the ones seen least recently go first.
pub const MAX_PROBLEMS: usize = 100;
/// The `format` written in each status file.
pub const STATUS_FORMAT: u32 = 1;
/// A status file larger than this is not read (it cannot be one of ours).
const MAX_STATUS_FILE: u64 = 1 << 20;
/// Stripes of the per-client lock.
const LOCK_STRIPES: usize = 64;
/// The most status writes flushed to disk per client and minute (see the module docs).
pub const DURABLE_WRITES_PER_MINUTE: u32 = 6;

/// What the server knows about one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ClientStatus {
    /// The status file format, [`STATUS_FORMAT`].
    pub format: u32,
    /// The client this status is about (its file is named after it).
    pub client_id: ClientId,
    /// When it last polled.
    pub last_poll: Published,
    /// Whether the last poll came over mutual TLS (false: plaintext, id unproven).
    pub authenticated: bool,
    /// The client's `since` per target at its last poll.
    pub since: BTreeMap<Target, u64>,
    /// The targets the client held at its last poll, and the entry each is held at
    /// (PROTOCOL.md section 3.1.1). Absent in files of older servers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub held: BTreeMap<Target, u64>,
    /// The log alarms the client had raised at its last poll, each with when it was
    /// first raised (PROTOCOL.md section 7.5). Absent in files of older servers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub alarms: BTreeMap<AlarmName, Published>,
    /// Whether the client announced that it understands withdrawals (PROTOCOL.md
    /// section 8.1): one that does not stops before a withdrawn entry and needs an
    /// upgrade. Absent (false) in files of older servers.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub understands_withdrawals: bool,
    /// Problems reported, oldest first by last-seen time.
    pub problems: Vec<Problem>,
    /// The longest the host said it waits before its next poll (`next-poll-within`,
    /// seconds): it is silent after three times that. Absent from older hosts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_poll_within: Option<u64>,
    /// The certificate of its last authenticated poll or receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateSeen>,
    /// The size of the newest checkpoint it had verified at its last poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_size: Option<u64>,
    /// Whether its last poll said a reboot is required for what it installed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reboot_required: bool,
    /// Per target, the newest entry the server sent it and when, so that an entry
    /// sent without a receipt yet shows as offered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offered: BTreeMap<Target, Offered>,
    /// Its receipt chain as stored here and as it last declared it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipts: Option<ReceiptBook>,
    /// What its receipts said of each entry, newest state per (target, seq), at most
    /// [`MAX_ENTRY_STATES`] kept (the oldest go first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<EntryState>,
}

/// Entry states kept per client (a host's receipts name each entry a few times).
pub const MAX_ENTRY_STATES: usize = 128;

/// A client certificate, as status needs it: which one it was and when it expires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CertificateSeen {
    /// Its serial number, hex.
    pub serial: String,
    /// Its notAfter time.
    pub not_after: Published,
}

/// The newest entry of one target a server sent a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Offered {
    /// Its seq.
    pub seq: u64,
    /// When it was sent.
    pub at: Published,
}

/// A client's receipt chain: what is stored here, and what the host last declared in
/// a poll (`receipt-count`, `receipt-head`), so that a stored chain shorter than the
/// declared one shows (`fts status --verify`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReceiptBook {
    /// The number of the newest receipt stored of its current chain.
    pub stored: u64,
    /// The hash of that receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stored_head: Option<FileHash>,
    /// The hash of its current chain's first receipt (a receipt numbered 1 with
    /// another hash starts a new chain; with this one, it was sent again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first: Option<FileHash>,
    /// When the newest receipt arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_received: Option<Published>,
    /// The count the host declared in its last poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<u64>,
    /// The head the host declared in its last poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_head: Option<FileHash>,
    /// Chains restarted (a new state or certificate).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u64,
    /// Receipts the host said it dropped unsent (its queue was full).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a host's receipts said of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct EntryState {
    /// The entry's target.
    pub target: Target,
    /// Its seq.
    pub seq: u64,
    /// Its file name, when the receipt named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<FileName>,
    /// Its file hash, when the receipt named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<FileHash>,
    /// The receipt's outcome (`installed`, `hook-ok`, `hook-failed`, `held`,
    /// `refused`, `withdrawn`, `withdrawn-installed`, `superseded`).
    pub outcome: String,
    /// Its detail: the reason, the attempt, the superseding seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When the host made the receipt.
    pub at: Published,
    /// The number of the receipt that said it (0 in files of an earlier release):
    /// one above the count the host declared at its last poll is news the poll did
    /// not have.
    #[serde(default)]
    pub receipt: u64,
}

/// What one poll says of its client, as its status file keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PollClaims {
    /// Per target, the seq of the last applied entry (`since`).
    pub since: BTreeMap<Target, u64>,
    /// Per held target, the entry it is held at.
    pub held: BTreeMap<Target, u64>,
    /// The raised alarms, each with when it was first raised (Unix seconds).
    pub alarms: BTreeMap<AlarmName, u64>,
    /// The client announced the `withdrawn` feature.
    pub understands_withdrawals: bool,
    /// `next-poll-within`: the longest it waits before its next poll, in seconds.
    pub next_poll_within: Option<u64>,
    /// `receipt-count` and `receipt-head`: its receipt chain as it declares it.
    pub receipt_count: Option<u64>,
    /// See `receipt_count`.
    pub receipt_head: Option<FileHash>,
    /// The session's certificate (TLS only).
    pub certificate: Option<CertificateSeen>,
    /// `reboot-required`.
    pub reboot_required: bool,
    /// `log-size`: the size of the newest checkpoint it verified.
    pub log_size: Option<u64>,
}

impl PollClaims {
    /// A poll that says only its `since`.
    pub fn of(since: &BTreeMap<Target, u64>) -> PollClaims {
        PollClaims { since: since.clone(), ..PollClaims::default() }
    }
}

/// One problem a client reported about one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Problem {
    /// The target of the entry.
    pub target: Target,
    /// The seq of the entry.
    pub seq: u64,
    /// Why the client refused or could not install it.
    pub reason: RejectReason,
    /// When a poll first reported it.
    pub first_seen: Published,
    /// When a poll last reported it.
    pub last_seen: Published,
    /// How many polls reported it.
    pub count: u64,
    /// Whether any poll that reported it was authenticated.
    pub authenticated: bool,
    /// For a failed hook, the highest attempt reported. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u64>,
}

/// What the server says about itself, in `server.json` ("server" can never be a client
/// id): whether revocation is on and how current its CRL is, so that `fts status` can
/// warn about a CRL past its next-update time or a changed CRL that cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerStatus {
    /// The status file format, [`STATUS_FORMAT`].
    pub format: u32,
    /// When the server last wrote this file (at start, at each CRL reload, and while a
    /// reload fails, at most once a minute).
    pub updated: Published,
    /// Whether the server checks client certificates against a CRL.
    pub revocation: bool,
    /// The earliest next-update time of the CRLs in force, when they give one.
    pub crl_next_update: Option<Published>,
    /// The highest CRL number in force, when the CRLs give one.
    pub crl_number: Option<u64>,
    /// Set while the CRL file has changed but cannot be put in force (the CRLs above
    /// are still enforced). Absent in files of older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crl_reload_failing: Option<CrlReloadFailing>,
    /// The serials (lower-case hex) the CRLs in force revoke, so that `fts status`
    /// shows a revoked host as revoked. Absent in files of older servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_serials: Vec<String>,
}

/// A changed CRL file the server cannot put in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CrlReloadFailing {
    /// When the first attempt failed.
    pub since: Published,
    /// The last error (with its file name), and what to do about it when known.
    pub error: String,
    /// What the operator can do about it, when fts knows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// The file name of [`ServerStatus`].
pub const SERVER_STATUS_FILE: &str = "server.json";

/// The status folder.
#[derive(Debug)]
pub struct StatusDir {
    dir: PathBuf,
    stripes: Vec<Mutex<()>>,
    /// Empty in a handle opened for reading.
    last_polls: LastPolls,
    /// Flushes per client in the current minute.
    flushes: Mutex<FlushBudget>,
}

/// Counts durable writes per client in one-minute windows. Holds only clients that
/// flushed in the current window, so it never outgrows the clients reporting now.
#[derive(Debug, Default)]
struct FlushBudget {
    window: u64,
    used: std::collections::HashMap<ClientId, u32>,
}

impl FlushBudget {
    /// Takes one flush for `client` at `now` (unix seconds) if the minute allows it.
    fn take(&mut self, client: &ClientId, now: u64) -> bool {
        let window = now / 60;
        if window != self.window {
            self.window = window;
            self.used.clear();
        }
        let used = self.used.entry(client.clone()).or_insert(0);
        if *used >= DURABLE_WRITES_PER_MINUTE {
            return false;
        }
        *used += 1;
        true
    }
}

impl StatusDir {
    /// Opens the folder for writing, creating it when missing, and removes temps left
    /// by a server that was killed (fts-fs's lock rule; a failure there is logged).
    pub fn open_or_create(dir: impl AsRef<Path>) -> Result<StatusDir> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(StatusError::io("create", &dir))?;
        match fts_fs::remove_stale_temps(&Dir::open(&dir)?) {
            Ok(0) => {}
            Ok(removed) => {
                tracing::info!(dir = %dir.display(), removed, "removed temporary files of an interrupted server")
            }
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "cannot remove the temporary files of an interrupted server")
            }
        }
        let last_polls = LastPolls::load(&dir, unix_seconds(SystemTime::now()));
        Ok(StatusDir { last_polls, ..StatusDir::open(dir) })
    }

    /// Opens the folder for reading only (`fts status`); it need not exist.
    pub fn open(dir: impl AsRef<Path>) -> StatusDir {
        let stripes = (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect();
        StatusDir {
            dir: dir.as_ref().to_path_buf(),
            stripes,
            last_polls: LastPolls::new(),
            flushes: Mutex::default(),
        }
    }

    /// The status folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, client: &ClientId) -> PathBuf {
        self.dir.join(file_name_of(client))
    }

    /// Records a poll of `client` that changes nothing in its file but the time, and
    /// says whether it did: no report, and the same authentication and `since` as this
    /// process last wrote for it. Memory only, no I/O, so an async task may call it;
    /// the time reaches the folder at the next [`flush_last_polls`](Self::flush_last_polls).
    /// `false`: the poll needs [`record_poll`](Self::record_poll).
    pub fn note_unchanged_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> bool {
        reports.is_empty()
            && self.last_polls.note_if_unchanged(
                client,
                fingerprint(authenticated, claims),
                unix_seconds(now),
            )
    }

    /// Writes `last-polls.tsv` if [`note_unchanged_poll`](Self::note_unchanged_poll)
    /// noted anything since the last flush; says whether it wrote. The server calls it
    /// every few seconds and when it stops.
    pub fn flush_last_polls(&self) -> Result<bool> {
        self.last_polls.flush(&self.dir)
    }

    /// Records one poll of `client` in its file and returns its new status.
    pub fn record_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> Result<ClientStatus> {
        let _guard = self.lock(client);
        let path = self.path_of(client);
        let previous = match read_status(&path, client) {
            Ok(previous) => previous,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "starting a fresh status for this client");
                None
            }
        };
        let secs = unix_seconds(now);
        let (status, new_problem) =
            apply_poll(previous, client, authenticated, claims, reports, Published::from_unix_seconds(secs));
        let fingerprint = fingerprint(authenticated, claims);
        let durable = new_problem
            && self.flushes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take(client, secs);
        match self.write(&file_name_of(client), &status, durable) {
            Ok(()) => self.last_polls.written(client, fingerprint, secs),
            Err(e) => {
                self.last_polls.forget_written(client);
                return Err(e);
            }
        }
        Ok(status)
    }

    /// Serializes the updates of one client's file.
    fn lock(&self, client: &ClientId) -> std::sync::MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        client.hash(&mut hasher);
        let stripe = &self.stripes[(hasher.finish() % LOCK_STRIPES as u64) as usize];
        // A poisoned stripe only means another update panicked midway; the file on
        // disk is still whole (it is replaced by rename), so carry on.
        stripe.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Replaces `client`'s file with what `change` makes of it (`None` in, the client
    /// has no file; `None` out, nothing is written), under the client's lock, not
    /// flushed to disk. (The poll book's fingerprint covers only what polls claim,
    /// which this leaves as it was.)
    pub(crate) fn update(
        &self,
        client: &ClientId,
        change: impl FnOnce(Option<ClientStatus>) -> Option<ClientStatus>,
    ) -> Result<()> {
        let _guard = self.lock(client);
        let previous = match read_status(&self.path_of(client), client) {
            Ok(previous) => previous,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "a damaged status file: it is rewritten at the next poll");
                None
            }
        };
        let Some(status) = change(previous) else { return Ok(()) };
        self.write(&file_name_of(client), &status, false)
    }

    /// Records that the server sent `client` the entries up to `offered` (per target,
    /// the newest seq sent), at `now`. Only for a client with a file (its poll wrote
    /// one first).
    pub fn record_offered(
        &self,
        client: &ClientId,
        offered: &BTreeMap<Target, u64>,
        now: SystemTime,
    ) -> Result<()> {
        let at = Published::from_unix_seconds(unix_seconds(now));
        self.update(client, |status| {
            let mut status = status?;
            apply_offered(&mut status, offered, &at);
            Some(status)
        })
    }

    /// A client's file as it is, without the poll book's time.
    pub(crate) fn read_file(&self, client: &ClientId) -> Result<Option<ClientStatus>> {
        read_status(&self.path_of(client), client)
    }

    /// Removes `client`'s file; says whether there was one.
    pub(crate) fn remove_client_file(&self, client: &ClientId) -> Result<bool> {
        let _guard = self.lock(client);
        self.last_polls.forget_written(client);
        match Dir::open(&self.dir)?.remove_file(file_name_of(client)) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Records what the server says about itself.
    pub fn write_server(&self, status: &ServerStatus) -> Result<()> {
        self.write(SERVER_STATUS_FILE, status, false)
    }

    /// What the server last said about itself; `None` when it never did (or the file
    /// is damaged, which is logged).
    pub fn read_server(&self) -> Option<ServerStatus> {
        let path = self.dir.join(SERVER_STATUS_FILE);
        let bytes = read_small_file(&path, MAX_STATUS_FILE).ok()??;
        match serde_json::from_slice::<ServerStatus>(&bytes) {
            Ok(status) if status.format == STATUS_FORMAT => Some(status),
            Ok(status) => {
                tracing::warn!(path = %path.display(), format = status.format, "unknown server status format");
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %ErrorChain(&e), "skipping a damaged server status file");
                None
            }
        }
    }

    /// Replaces the file `name` of the folder with `status`, flushed to disk only when
    /// `durable` (the module docs say when). The folder is opened by path at each
    /// write, as the operator named it.
    fn write(&self, name: &str, status: &impl Serialize, durable: bool) -> Result<()> {
        let mut bytes = serde_json::to_vec(status)
            .map_err(|source| StatusError::Encode { what: "a status file", source })?;
        bytes.push(b'\n');
        let options = WriteOptions { durable, ..STATUS_WRITE };
        Dir::open(&self.dir)?.write_atomic(name, &bytes, &options)?;
        Ok(())
    }

    /// The status of one client, `None` if it never polled.
    pub fn read(&self, client: &ClientId) -> Result<Option<ClientStatus>> {
        let Some(mut status) = read_status(&self.path_of(client), client)? else { return Ok(None) };
        let snapshot = read_snapshot(&self.dir).remove(client);
        status.last_poll = last_poll_to_show(status.last_poll, snapshot, unix_seconds(SystemTime::now()));
        Ok(Some(status))
    }

    /// Every client's status, sorted by client id. A damaged or foreign status file is
    /// skipped with a warning naming it; a missing folder means no client polled yet.
    pub fn read_all(&self) -> Result<Vec<ClientStatus>> {
        let files = self.status_files()?;
        // Read and parsed on every core: at 50,000 hosts this is most of the time
        // `fts status` takes (docs/PERFORMANCE.md, issue 20).
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        let chunk = files.len().div_ceil(threads).max(1);
        let mut all: Vec<ClientStatus> = std::thread::scope(|scope| {
            let readers: Vec<_> =
                files.chunks(chunk).map(|part| scope.spawn(move || read_files(part))).collect();
            readers
                .into_iter()
                .flat_map(|reader| {
                    reader.join().unwrap_or_else(|_| {
                        // A bug (parsing never panics on input): said, not hidden.
                        tracing::error!(
                            "a status reader thread failed: some hosts are missing from this view"
                        );
                        Vec::new()
                    })
                })
                .collect()
        });
        show_last_polls(&mut all, &mut read_snapshot(&self.dir));
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(all)
    }

    /// Every client's status as [`read_all`](Self::read_all) reads it, but handed to
    /// `each` at most `batch` at a time (in no particular order) and read on this
    /// thread alone: for a view that need not hold the whole fleet at once, in a
    /// process that serves meanwhile (the server's fleet gauges).
    pub fn read_in_batches(&self, batch: usize, each: &mut dyn FnMut(Vec<ClientStatus>)) -> Result<()> {
        let files = self.status_files()?;
        let mut last_polls = read_snapshot(&self.dir);
        for part in files.chunks(batch.max(1)) {
            let mut statuses = read_files(part);
            show_last_polls(&mut statuses, &mut last_polls);
            each(statuses);
        }
        Ok(())
    }

    /// The clients' status files of the folder (none when it is missing); a file whose
    /// name is not a client id is skipped with a warning.
    fn status_files(&self) -> Result<Vec<(ClientId, PathBuf)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StatusError::io("list", &self.dir)(e)),
        };
        let mut files: Vec<(ClientId, PathBuf)> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(StatusError::io("list", &self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".json").filter(|_| !name.starts_with('.')) else { continue };
            if name == SERVER_STATUS_FILE {
                continue;
            }
            let path = entry.path();
            match ClientId::parse(stem) {
                Ok(client) => files.push((client, path)),
                Err(_) => {
                    tracing::warn!(path = %path.display(), "skipping a file whose name is not a client id")
                }
            }
        }
        Ok(files)
    }
}

/// Sets the time each status shows as its last poll: the later of its file's and the
/// one `last-polls.tsv` noted (`noted`, each taken out as it is used).
fn show_last_polls(statuses: &mut [ClientStatus], noted: &mut HashMap<ClientId, Published>) {
    let now = unix_seconds(SystemTime::now());
    for status in statuses {
        let seen = noted.remove(&status.client_id);
        status.last_poll = last_poll_to_show(status.last_poll.clone(), seen, now);
    }
}

/// The statuses of `files`, a damaged or foreign one skipped with a warning.
fn read_files(files: &[(ClientId, PathBuf)]) -> Vec<ClientStatus> {
    files
        .iter()
        .filter_map(|(client, path)| match read_status(path, client) {
            Ok(status) => status,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "skipping a status file");
                None
            }
        })
        .collect()
}

/// What a poll of `client` at `now` makes of its status (`previous`: what was kept of
/// it): the poll's claims replace the last poll's, its reports join the problems, and
/// what the server offered and the receipts said is kept. Also says whether a report
/// was news (a new problem, or a later attempt of a hook). Every backend records polls
/// with it.
pub fn apply_poll(
    previous: Option<ClientStatus>,
    client: &ClientId,
    authenticated: bool,
    claims: &PollClaims,
    reports: &[Report],
    now: Published,
) -> (ClientStatus, bool) {
    let (mut problems, kept) = match previous {
        Some(previous) => (
            previous.problems,
            Kept { offered: previous.offered, receipts: previous.receipts, entries: previous.entries },
        ),
        None => (Vec::new(), Kept::default()),
    };
    let mut new_problem = false;
    for report in reports {
        let known = problems
            .iter_mut()
            .find(|p| p.target == report.target && p.seq == report.seq && p.reason == report.reason);
        match known {
            Some(problem) if report.attempt > problem.attempt => {
                // A later attempt of a hook: news, kept durably like a new problem.
                new_problem = true;
                problem.attempt = report.attempt;
                problem.last_seen = now.clone();
                problem.count += 1;
                problem.authenticated |= authenticated;
            }
            Some(problem) => {
                problem.last_seen = now.clone();
                problem.count += 1;
                problem.authenticated |= authenticated;
            }
            None => {
                new_problem = true;
                problems.push(Problem {
                    target: report.target.clone(),
                    seq: report.seq,
                    reason: report.reason.clone(),
                    first_seen: now.clone(),
                    last_seen: now.clone(),
                    count: 1,
                    authenticated,
                    attempt: report.attempt,
                });
            }
        }
    }
    // Stable sort: equal times keep their order, so the oldest report goes first.
    problems.sort_by(|a, b| a.last_seen.cmp(&b.last_seen));
    if problems.len() > MAX_PROBLEMS {
        problems.drain(..problems.len() - MAX_PROBLEMS);
    }
    let status = ClientStatus {
        format: STATUS_FORMAT,
        client_id: client.clone(),
        last_poll: now,
        authenticated,
        since: claims.since.clone(),
        held: claims.held.clone(),
        alarms: claims
            .alarms
            .iter()
            .map(|(name, &at)| (name.clone(), Published::from_unix_seconds(at)))
            .collect(),
        understands_withdrawals: claims.understands_withdrawals,
        problems,
        next_poll_within: claims.next_poll_within,
        certificate: claims.certificate.clone(),
        reboot_required: claims.reboot_required,
        log_size: claims.log_size,
        offered: kept.offered,
        receipts: declare(kept.receipts, claims),
        entries: kept.entries,
    };
    (status, new_problem)
}

/// Records in `status` that the server sent the entries up to `offered` (per target,
/// the newest seq sent) at `at`.
pub fn apply_offered(status: &mut ClientStatus, offered: &BTreeMap<Target, u64>, at: &Published) {
    for (target, &seq) in offered {
        status.offered.insert(target.clone(), Offered { seq, at: at.clone() });
    }
}

/// What a poll keeps of a client's file: what the server and the receipts wrote.
#[derive(Default)]
struct Kept {
    offered: BTreeMap<Target, Offered>,
    receipts: Option<ReceiptBook>,
    entries: Vec<EntryState>,
}

/// The receipt book after a poll that declared `claims`' count and head.
fn declare(book: Option<ReceiptBook>, claims: &PollClaims) -> Option<ReceiptBook> {
    if book.is_none() && claims.receipt_count.is_none() {
        return None;
    }
    let mut book = book.unwrap_or_default();
    book.declared = claims.receipt_count;
    book.declared_head = claims.receipt_head;
    Some(book)
}

/// How status files are written: atomically, replacing, mode 0666 less the umask
/// (the operator chooses who reads the status); durable only when asked.
pub(crate) const STATUS_WRITE: WriteOptions =
    WriteOptions { label: "status", mode: FileMode::LessUmask(0o666), durable: false, overwrite: true };

/// Reads a small file of the status folder whole; `None` when it does not exist. A
/// file larger than `max` bytes cannot be one the server wrote and is refused.
pub(crate) fn read_small_file(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    match fts_fs::read_bounded(path, max) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(FsError::TooLarge { .. }) => Err(StatusError::BadStatusFile {
            path: path.to_path_buf(),
            problem: BadStatusFile::TooLarge { max },
        }),
        Err(e) => Err(e.into()),
    }
}

/// The name of `client`'s status file.
fn file_name_of(client: &ClientId) -> String {
    format!("{client}.json")
}

/// Reads one status file; `None` if it does not exist.
fn read_status(path: &Path, client: &ClientId) -> Result<Option<ClientStatus>> {
    let bad = |problem| StatusError::BadStatusFile { path: path.to_path_buf(), problem };
    let Some(bytes) = read_small_file(path, MAX_STATUS_FILE)? else { return Ok(None) };
    let status: ClientStatus = serde_json::from_slice(&bytes).map_err(|e| bad(BadStatusFile::Json(e)))?;
    if status.format != STATUS_FORMAT {
        return Err(bad(BadStatusFile::Format { found: status.format, supported: STATUS_FORMAT }));
    }
    if status.client_id != *client {
        return Err(bad(BadStatusFile::OtherClient { holder: status.client_id }));
    }
    Ok(Some(status))
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ClientId {
        ClientId::parse(s).unwrap()
    }

    #[test]
    fn a_client_reporting_a_new_problem_every_poll_gets_a_bounded_number_of_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let status = StatusDir::open_or_create(dir.path()).unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_626_000 / 60 * 60);
        for seq in 1..=20 {
            let report = Report::new(Target::All, seq, RejectReason::Signature);
            let now = start + Duration::from_secs(seq);
            status.record_poll(&id("web-01"), true, &PollClaims::default(), &[report], now).unwrap();
        }
        let used = |client: &str| status.flushes.lock().unwrap().used.get(&id(client)).copied();
        assert_eq!(used("web-01"), Some(DURABLE_WRITES_PER_MINUTE), "flushes stop at the budget");
        let recorded = status.read(&id("web-01")).unwrap().unwrap();
        assert_eq!(recorded.problems.len(), 20, "every report is still recorded");

        let report = Report::new(Target::All, 1, RejectReason::Gap);
        status
            .record_poll(&id("db-01"), true, &PollClaims::default(), std::slice::from_ref(&report), start)
            .unwrap();
        assert_eq!(used("db-01"), Some(1), "other clients have their own budget");
        let next_minute = start + Duration::from_secs(61);
        let report = Report { seq: 2, ..report };
        status.record_poll(&id("web-01"), true, &PollClaims::default(), &[report], next_minute).unwrap();
        assert_eq!(used("web-01"), Some(1), "the budget is per minute");
        assert_eq!(used("db-01"), None, "an old window is forgotten");
    }
}
