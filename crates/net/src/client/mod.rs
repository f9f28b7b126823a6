//! The host side (`fts poll`): one poll at a time, each `file` frame taken through the
//! checks of PROTOCOL.md section 6 in order, and only verified bytes installed.
//!
//! - [`state`]: the durable state (since per target, installed files, pending hooks
//!   and reports), written atomically;
//! - [`receive`]: the streaming receiver, the only maker of a [`VerifiedFile`](receive::VerifiedFile);
//! - [`partial`]: the folder beside the destination where bodies wait until verified;
//! - [`held`]: held targets (an entry that cannot be applied yet waits on its own
//!   target, with a backoff), PROTOCOL.md section 3.1.1;
//! - [`hook`]: the `--exec` hook;
//! - [`poller`]: `--once` and the loop with its intervals and backoff;
//! - [`failover`]: several `--server`s, the order a poll tries them in and when it
//!   moves on to the next;
//! - [`deadline`]: how long a poll may take (`--read-timeout`, `--poll-timeout`);
//! - [`rate`]: the host's cap on its receive rate (`--max-rate`);
//! - [`tls_words`]: TLS failures said in words, with what to check;
//! - [`metrics_file`]: the host's figures for node-exporter (`--metrics-file`).
//!
//! Security properties that hold here, and why:
//! - a host never installs bytes that fail a check: installing takes a
//!   [`VerifiedFile`](receive::VerifiedFile), which only [`receive::receive_file`] builds, from a
//!   `Verified<Statement>` (which only signature verification builds) and a body whose
//!   length and SHA-256 matched it;
//! - a forged frame can never make the host skip a genuine entry: only an install, or
//!   a rule on *signed* fields (check 5), applies an entry; every other failure leaves
//!   `since` as it was, is reported, and holds the entry's target ([`held`]), whose
//!   entry is fetched again when the hold ends; the other targets go on;
//! - a kept prefix of a cut transfer is never trusted: it is hashed again with the rest,
//!   and only a whole file whose SHA-256 is the signed hash is installed; an `offset`
//!   the request did not ask for is refused;
//! - no received byte is written outside the destination: the only file names used
//!   are [`fts_proto::FileName`]s (one component, no leading dot) and the client's own
//!   dot-files;
//! - a crash never leaves a partial file: bodies go to a temporary file that is
//!   renamed into place only once verified and flushed (fts-fs's crate docs give the
//!   crash argument);
//! - the destination holds only verified files (and the client's own dot-files): the
//!   bodies being received live in `<dest>/.fts-partial/` ([`partial`]);
//! - nobody else can redirect what the client writes or reads: the destination and
//!   the state file's folder must be owned by the user running fts and writable by
//!   no one else, and so must every folder on the way to them, or the client refuses
//!   to start ([`fts_fs::private`]); the lock, the state, the temporary files and the
//!   install are then opened, created and renamed on the folders' handles, never
//!   following a link ([`fts_fs::Dir`]);
//! - a server cannot write to the operator's terminal or forge log lines: every text
//!   it sent (an error frame's message and code, a header excerpt in a protocol error,
//!   the names of its certificate) is escaped with [`fts_proto::Printable`] before it
//!   is put into a [`PollError`] or a log line;
//! - a server cannot keep a host inside one poll forever: [`deadline`] bounds every
//!   read and the whole round, between files.

pub mod deadline;
pub mod failover;
pub mod freshness;
pub mod held;
pub mod hook;
pub mod metrics_file;
pub mod partial;
pub mod poller;
pub mod rate;
pub mod reboot;
pub mod receipts;
pub mod receive;
pub mod state;
mod supersede;
pub mod tls_words;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fts_fs::{Dir, FsError};
use fts_proto::Statement;
use fts_proto::{
    ClientId, ErrorChain, Features, FileHash, FileHeader, FileName, KeyId, Published, RejectReason, Report,
    Request, Resume, Seq, ServerFrame, SupersededFrame, Target, WithdrawnFrame,
};
use fts_trust::{TrustedKeys, VerifyError};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::connection::{Connection, ReadError};
pub use crate::error::{Interruption, PollError, ProtocolBreach, TlsProblem, TransportError};
use crate::error::{LocalFailure, peer_text};
use deadline::{Cut, PollClock};
use failover::{Endpoint, FailoverSettings, Verdict};
use freshness::{AnswerLog, LogBook, LogSettings};
use held::{Conditions, Hold, HoldCause};
use hook::Hook;
use partial::PartialDir;
use poller::Stop;
use receive::{Progress, ReceiveError, ReceiveInto, receive_file};
use state::{
    CertificateRefused, Installed, KeptTransfer, PendingHook, State, StateError, WithdrawnInstalled,
};
use supersede::Deferred;

/// The most reports carried by one request (PROTOCOL.md section 3.1).
const REPORTS_PER_REQUEST: usize = fts_proto::MAX_REPORTS;

/// The name of the lock file that keeps two clients off one destination.
const LOCK_FILE: &str = ".fts-lock";

/// Files at least this large are received into a kept file, so that a cut transfer
/// resumes (PROTOCOL.md section 3.2.1); a prefix shorter than this is not kept.
pub const RESUMABLE_MIN: u64 = 1 << 20;

/// What one request held and asked to resume: the answer is checked against it.
#[derive(Debug, Default)]
struct Exchange {
    held: BTreeMap<Target, Seq>,
    resume: Vec<Resume>,
}

impl Exchange {
    /// The offset the request asked the file of `hash` to resume at.
    fn resume_offset(&self, hash: &FileHash) -> Option<u64> {
        self.resume.iter().find(|r| r.file_hash == *hash).map(|r| r.offset)
    }
}

/// How the client reaches the server.
#[derive(Clone)]
pub enum ClientTransport {
    /// Mutual TLS, the normal case.
    Tls {
        /// This host's certificate and key, and the CA that the server's must chain to.
        config: Arc<rustls::ClientConfig>,
        /// The name the server's certificate must hold (the HOST of `--server`).
        server_name: ServerName<'static>,
        /// Hex SHA-256 of this host's certificate (DER), to tell whether a refusal
        /// recorded in the state was of the certificate in use now.
        certificate_sha256: String,
    },
    /// `--plaintext`, for a lab or a trusted segment: the client id is unproven
    /// (docs/PROTOCOL.md).
    Plaintext,
}

impl ClientTransport {
    /// Mutual TLS with `config`, dialling `server_name`, as the holder of `certificate`.
    pub fn tls(
        config: Arc<rustls::ClientConfig>,
        server_name: ServerName<'static>,
        certificate: &rustls::pki_types::CertificateDer<'_>,
    ) -> ClientTransport {
        use sha2::Digest;
        let certificate_sha256 = hex::encode(sha2::Sha256::digest(certificate.as_ref()));
        ClientTransport::Tls { config, server_name, certificate_sha256 }
    }
}

/// Everything one host needs to poll.
pub struct ClientSettings {
    /// `HOST:PORT` as given; HOST is also the name checked against the certificate.
    /// With several `--server`s, the first of them ([`ClientSettings::failover`] has the
    /// others).
    pub server: String,
    /// How to reach the server.
    pub transport: ClientTransport,
    /// This host's client id, as its request names it.
    pub id: ClientId,
    /// The host's targets: its id, `all`, and `group:G` for each group of its
    /// certificate (no groups in plaintext).
    pub targets: Vec<Target>,
    /// The signing keys whose signatures this host accepts.
    pub trusted: TrustedKeys,
    /// The folder files are installed in.
    pub dest: PathBuf,
    /// The state file ([`state`]).
    pub state_path: PathBuf,
    /// A file larger than this is refused (reported as `too-large`), never stored.
    pub max_file_size: u64,
    /// A read that makes no progress for this long ends the poll.
    pub read_timeout: Duration,
    /// The deadline of a round of polls, after which no new file starts
    /// ([`deadline`]).
    pub poll_timeout: Duration,
    /// The most frames accepted in one answer.
    pub max_frames: usize,
    /// The program run after each install (`--exec`).
    pub hook: Option<Hook>,
    /// The program run for an installed file whose entry was withdrawn
    /// (`--exec-withdrawn`), like a hook.
    pub exec_withdrawn: Option<Hook>,
    /// How many times a failed hook runs again (`--hook-retries`).
    pub hook_retries: u32,
    /// Hold a target while the hook of its last install fails
    /// (`--hold-on-hook-failure`).
    pub hold_on_hook_failure: bool,
    /// Where the backoff of a held entry and of a failed hook starts
    /// (`--min-interval`): doubled at each failure, up to [`held::MAX_BACKOFF`].
    pub retry_base: Duration,
    /// A kept prefix never leaves less than this share of the file system free
    /// (`--min-free`, in percent).
    pub min_free_percent: u8,
    /// `--max-rate`: the most body bytes per second this host receives ([`rate`]);
    /// `None`, as fast as they come.
    pub max_rate: Option<u64>,
    /// The log: origin, cosigners, and the alarm limits ([`freshness`]).
    pub log: LogSettings,
    /// Signs this host's receipts with its certificate key ([`receipts`]); `None`
    /// (plaintext) sends none.
    pub receipt_signer: Option<Arc<fts_trust::ReceiptSigner>>,
    /// The longest this host waits before its next poll, in seconds, as each request
    /// promises it (`next-poll-within`): the server's status calls it silent after
    /// three times that.
    pub next_poll_within: u64,
    /// The distribution's file that says a reboot is required
    /// (`--reboot-required-file`, [`reboot`]); `None`: not looked at.
    pub reboot_required_file: Option<PathBuf>,
    /// The other `--server`s and `--server-order` ([`failover`]); the default: none,
    /// a single server.
    pub failover: FailoverSettings,
}

/// What one poll did.
#[derive(Debug, Default)]
pub struct PollOutcome {
    /// Paths installed.
    pub installed: Vec<PathBuf>,
    /// Problems found in this poll (also queued for the next request).
    pub reported: Vec<Report>,
    /// The server has more entries waiting (its budget stopped it).
    pub more: bool,
    /// The poll stopped early by a rule of check 5 and should be repeated at once.
    pub repeat_now: bool,
    /// The server's `poll-after` advice, when the answer got as far as `done`.
    pub poll_after: Option<u64>,
    /// The answer's checkpoint was refused (`fork`, `behind`): nothing was applied.
    pub log_refused: bool,
    /// Entries applied as withdrawn (never installed).
    pub withdrawn: Vec<(Target, Seq)>,
    /// Entries taken as superseded in this answer.
    pub superseded: usize,
}

/// A host's client: its settings, its state, and the lock on its destination.
pub struct Client {
    settings: ClientSettings,
    state: State,
    /// The destination, opened once: installs are renamed into this handle.
    dest: Dir,
    /// Where bodies are received until verified.
    partial: PartialDir,
    /// The state file's folder (the destination's handle by default) and the file's
    /// name in it.
    state_dir: Dir,
    state_name: OsString,
    /// The log state, in its own file beside the state ([`freshness`]).
    log: LogBook,
    /// The supersessions of the answer being read ([`supersede`]).
    deferred: Deferred,
    /// The supersessions taken in the answer being read, with their file, until
    /// their successor is installed.
    superseding: Vec<(Target, Seq, FileName, FileHash, Seq)>,
    /// What changed since the last receipt ([`receipts`]).
    outcomes: receipts::Outcomes,
    /// The state file was damaged and started anew: the next receipt restarts the
    /// chain and says so.
    state_was_reset: bool,
    _lock: File,
    /// A stop request (SIGTERM) ends an answer between files, never inside one.
    stop: Arc<Stop>,
    /// Every server, `settings.server` first, then `settings.failover.others`.
    servers: Vec<Endpoint>,
    /// The index in `servers` of the one dialled now (or last): the poll's and its
    /// receipt's server.
    active: usize,
    /// The index of the server that answered the last poll (`None`: none did).
    answered: Option<usize>,
}

impl Client {
    /// Checks that the destination and the state file's folder are private to this
    /// user, takes the destination's lock, removes temporary files a killed client
    /// left, and loads the state (an unreadable state is an error unless
    /// `reset_state`).
    pub fn open(settings: ClientSettings, reset_state: bool) -> Result<Client, PollError> {
        Self::open_with(settings, reset_state, false)
    }

    /// [`Client::open`], also starting the log state again when `reset_log_state`
    /// (`--reset-log-state`; the old one is kept as evidence).
    pub fn open_with(
        settings: ClientSettings,
        reset_state: bool,
        reset_log_state: bool,
    ) -> Result<Client, PollError> {
        let dest_path = &settings.dest;
        // 0750 (less the umask) for the folders fts makes, the default `incoming/` too.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o750)
            .create(dest_path)
            .map_err(|source| PollError::CreateDestination { path: dest_path.clone(), source })?;
        // Both folders are judged before anything is created in either.
        let dest = open_private_dir(dest_path)?;
        let state_dir = open_private_dir(fts_fs::parent_dir(&settings.state_path))?;
        let state_name = settings
            .state_path
            .file_name()
            .map(OsString::from)
            .ok_or_else(|| PollError::StateNotAFile { path: settings.state_path.clone() })?;
        let lock = dest.open_or_create_file(LOCK_FILE, 0o600)?;
        lock.try_lock().map_err(|_| PollError::Locked { path: dest_path.clone() })?;
        let partial = PartialDir::open(&dest)?;
        let cleaned = [
            (partial.dir().path(), partial.remove_leftovers()),
            (dest.path(), fts_fs::remove_stale_temps(&dest)),
            (state_dir.path(), fts_fs::remove_stale_temps(&state_dir)),
        ];
        for (dir, removed) in cleaned {
            match removed {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(dir = %dir.display(), removed = n, "removed temporary files of an interrupted run")
                }
                Err(source) => return Err(PollError::Clean { dir: dir.to_owned(), source }),
            }
        }
        let mut state_was_reset = false;
        let state = match State::load_in(&state_dir, &state_name) {
            Ok(state) => state,
            // Only damaged content is reset: a file that cannot be read at all (EACCES,
            // EIO) may be intact, and a reset would refetch everything and re-run
            // every hook.
            Err(e @ StateError::Corrupt { .. }) if reset_state => {
                tracing::warn!(error = %ErrorChain(&e), "--reset-state: starting from empty state");
                state_was_reset = true;
                State::empty()
            }
            Err(e @ StateError::Read { .. }) if reset_state => return Err(PollError::ResetRefused(e)),
            Err(e) => return Err(e.into()),
        };
        let log = LogBook::open(
            settings.log.clone(),
            open_private_dir(state_dir.path())?,
            &state_name,
            reset_log_state,
        )?;
        let server_name = match &settings.transport {
            ClientTransport::Tls { server_name, .. } => Some(server_name.clone()),
            ClientTransport::Plaintext => None,
        };
        let mut servers = vec![Endpoint { address: settings.server.clone(), server_name }];
        servers.extend(settings.failover.others.iter().cloned());
        let active = match servers.len() {
            1 => 0,
            _ => failover::pass_order(
                &servers,
                state.failover.last_server.as_deref(),
                settings.failover.order,
                0,
            )
            .first()
            .copied()
            .unwrap_or(0),
        };
        let mut client = Client {
            servers,
            active,
            answered: None,
            settings,
            state,
            dest,
            partial,
            state_dir,
            state_name,
            log,
            deferred: Deferred::default(),
            superseding: Vec::new(),
            outcomes: receipts::Outcomes::default(),
            state_was_reset,
            _lock: lock,
            stop: Arc::default(),
        };
        client.tidy_up()?;
        Ok(client)
    }

    /// Lets `stop` end an answer between two files (the rest comes at the next run).
    pub fn stop_with(&mut self, stop: Arc<Stop>) {
        self.stop = stop;
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// `HOST:PORT` of the server that answered the last poll (`None`: no poll yet, or
    /// none answered).
    pub fn answered_server(&self) -> Option<&str> {
        self.answered.and_then(|i| self.servers.get(i)).map(|s| s.address.as_str())
    }

    /// Every server this host polls, `--server` order.
    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.servers.iter().map(|s| s.address.as_str())
    }

    /// The server dialled now (or last).
    fn active_endpoint(&self) -> &Endpoint {
        // `active` is always an index of `servers`, which is never empty.
        &self.servers[self.active.min(self.servers.len() - 1)]
    }

    /// The state as last loaded or saved.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Runs the hooks that are due: after a poll, those of the files it installed; at
    /// the start of a round, those a previous run did not finish, and the retries of
    /// failed ones whose backoff has ended. Returns the problems it reported.
    pub async fn run_pending_hooks(&mut self) -> Result<Vec<Report>, PollError> {
        let mut reported = Vec::new();
        if self.settings.hook.is_none() {
            if !self.state.hooks_pending.is_empty() {
                tracing::warn!(
                    pending = self.state.hooks_pending.len(),
                    "hooks were pending but no --exec is set: dropping them"
                );
                self.state.hooks_pending.clear();
                self.save()?;
            }
            return Ok(reported);
        }
        // A state written before hooks were coalesced ([`mark_hook_pending`]) may hold
        // an older hook for a name that a later one replaced: it would run with a
        // stale hash.
        let mut seen: Vec<FileName> = Vec::new();
        let before = self.state.hooks_pending.len();
        for i in (0..before).rev() {
            let name = self.state.hooks_pending[i].file_name.clone();
            if seen.contains(&name) {
                let stale = self.state.hooks_pending.remove(i);
                tracing::info!(file = %name, seq = stale.seq.get(), "skipping a hook for a version that a newer install replaced");
            } else {
                seen.push(name);
            }
        }
        if self.state.hooks_pending.len() != before {
            self.save()?;
        }
        let due: Vec<FileName> = self
            .state
            .hooks_pending
            .iter()
            .filter(|hook| hook.is_due(unix_now()))
            .map(|hook| hook.file_name.clone())
            .collect();
        for name in due {
            reported.extend(self.run_hook_of(&name).await?);
        }
        Ok(reported)
    }

    /// `fts poll --rerun-hook NAME`: runs the hook of the installed file `name` now,
    /// whether it is pending, waiting for a retry, given up, or done. Its outcome is
    /// recorded as any run's (a failure is reported at the next poll).
    pub async fn rerun_hook(&mut self, name: &FileName) -> Result<Vec<Report>, PollError> {
        if self.settings.hook.is_none() {
            return Err(PollError::NoHook);
        }
        let Some(installed) = self.state.installed.get(name) else {
            return Err(PollError::NotInstalled { name: name.clone() });
        };
        let fresh = PendingHook::new(name.clone(), installed);
        match self.state.hooks_pending.iter_mut().find(|hook| hook.file_name == *name) {
            // The same install: keep its count of failures, and run it now.
            Some(hook) if hook.file_hash == fresh.file_hash => {
                hook.given_up = false;
                hook.retry_at = None;
            }
            _ => mark_hook_pending(&mut self.state.hooks_pending, fresh),
        }
        self.run_hook_of(name).await
    }

    /// Runs the pending hook of `name` once and records its outcome: done, or failed
    /// with a retry after a backoff, or given up after `--hook-retries` retries.
    async fn run_hook_of(&mut self, name: &FileName) -> Result<Vec<Report>, PollError> {
        let (Some(hook), Some(pending)) = (
            self.settings.hook.clone(),
            self.state.hooks_pending.iter().find(|hook| hook.file_name == *name).cloned(),
        ) else {
            return Ok(Vec::new());
        };
        let path = self.settings.dest.join(name.as_str());
        let attempt = pending.failures.saturating_add(1);
        tracing::info!(file = %path.display(), seq = pending.seq.get(), attempt, "running the hook");
        let result = hook.run(&pending, &path, &self.hook_status_file()).await;
        let mut reported = Vec::new();
        let position = self.state.hooks_pending.iter().position(|hook| hook.file_name == *name);
        match (result, position) {
            (_, None) => {}
            (Ok(outcome), Some(i)) => {
                if outcome.reboot_required {
                    tracing::info!(file = %path.display(), "the hook says a reboot is required");
                    self.note_reboot_required("the hook");
                }
                let done = self.state.hooks_pending.remove(i);
                self.outcomes.hook(
                    &done.target,
                    done.seq,
                    (done.file_name.clone(), done.file_hash),
                    fts_proto::EntryOutcomeKind::HookOk { attempt },
                );
                if attempt > 1 {
                    tracing::info!(file = %path.display(), attempt, "the hook succeeded");
                }
                // A hold on this failing hook ends with it.
                self.state
                    .held
                    .retain(|_, hold| hold.cause != HoldCause::HookFailing { file_name: name.clone() });
            }
            (Err(e), Some(i)) => {
                let give_up = attempt > self.settings.hook_retries;
                let hook = &mut self.state.hooks_pending[i];
                hook.failures = attempt;
                let report = |reason| Report {
                    attempt: Some(u64::from(attempt)),
                    ..Report::new(pending.target.clone(), pending.seq.get(), reason)
                };
                reported.push(report(RejectReason::HookFailed));
                self.outcomes.hook(
                    &pending.target,
                    pending.seq,
                    (pending.file_name.clone(), pending.file_hash),
                    fts_proto::EntryOutcomeKind::HookFailed {
                        attempt,
                        allowed: self.settings.hook_retries.saturating_add(1).max(attempt),
                    },
                );
                if give_up {
                    hook.given_up = true;
                    tracing::error!(file = %path.display(), attempt, error = %ErrorChain(&e), "the hook failed for the last time: giving up (fts poll --rerun-hook runs it again)");
                    reported.push(report(RejectReason::HookGivenUp));
                } else {
                    let wait = held::backoff(self.settings.retry_base, attempt);
                    hook.retry_at = Some(held::retry_at_after(wait));
                    tracing::warn!(file = %path.display(), attempt, retry_in = ?wait, error = %ErrorChain(&e), "the hook failed: it runs again later");
                }
                if self.settings.hold_on_hook_failure
                    && let Some(next) = Seq::after(self.state.since(&pending.target))
                {
                    let cause = HoldCause::HookFailing { file_name: name.clone() };
                    self.record_hold(&pending.target, next, RejectReason::HookFailed, cause);
                }
                for report in &reported {
                    self.queue_report(report.clone());
                }
            }
        }
        self.save()?;
        Ok(reported)
    }

    fn save(&self) -> Result<(), PollError> {
        Ok(self.state.save_in(&self.state_dir, &self.state_name)?)
    }

    /// One poll with its own deadline (`--poll-timeout` from now); see
    /// [`Client::poll_until`].
    pub async fn poll_once(&mut self, progress: &mut dyn Progress) -> Result<PollOutcome, PollError> {
        let deadline = Instant::now() + self.settings.poll_timeout;
        self.poll_until(deadline, progress).await
    }

    /// One poll: connect, send the request, take each frame through the checks, and
    /// close; no new file starts after `deadline`. Hooks of the files installed run
    /// after the connection is closed, whether the poll completed or not.
    ///
    /// A resumed TLS session that the server closes without a frame (a server refuses
    /// a revoked host only after resumption, when it checks the session's certificate
    /// again, and then closes without an alert) is retried once at once with a full
    /// handshake, whose answer is then what is reported: a refusal of the certificate
    /// arrives as a TLS alert only in a full handshake. Nothing was applied by the
    /// first attempt (it read no frame), so the retry changes nothing else.
    pub async fn poll_until(
        &mut self,
        deadline: Instant,
        progress: &mut dyn Progress,
    ) -> Result<PollOutcome, PollError> {
        let clock = PollClock::new(self.settings.read_timeout, deadline).throttled(self.settings.max_rate);
        let result = match self.servers.len() {
            1 => {
                let result = self.attempt(&clock, progress).await;
                self.answered = result.as_ref().ok().map(|_| 0);
                result
            }
            _ => self.failover_pass(&clock, progress).await,
        };
        self.note_certificate_refusal(&result);
        if let Err(e) = self.tidy_up() {
            tracing::warn!(error = %ErrorChain(&e), "cannot tidy the partial folder up");
        }
        // Hooks run once the connection is closed, so a slow hook never holds the
        // server's connection; their pending marks are already on disk. They run even
        // when the poll failed later on: the files they are for were installed.
        let hooks = self.run_pending_hooks().await;
        if let Err(e) = self.run_withdrawn_hooks().await {
            tracing::warn!(error = %ErrorChain(&e), "cannot record that --exec-withdrawn ran");
        }
        // Whatever the poll did, its receipt goes now, not at the next poll.
        self.send_receipt().await;
        let mut outcome = result?;
        outcome.reported.extend(hooks?);
        Ok(outcome)
    }

    /// One server's attempt: connect and exchange, and once more at once with a full
    /// handshake when a resumed session was closed without an answer.
    async fn attempt(
        &mut self,
        clock: &PollClock,
        progress: &mut dyn Progress,
    ) -> Result<PollOutcome, PollError> {
        match self.connect_and_exchange(clock, progress).await {
            (Err(e @ PollError::NoAnswer { .. }), Handshake::Resumed) => {
                tracing::info!(
                    problem = %ErrorChain(&e),
                    "the server closed a resumed TLS session without answering: trying once more at once \
                     with a full handshake"
                );
                self.forget_tls_sessions();
                self.connect_and_exchange(clock, progress).await.0
            }
            (result, _) => result,
        }
    }

    /// One pass over several servers ([`failover`]): from the remembered one, each
    /// tried at most once, until one answers (fresh, when freshness is on). What the
    /// answers applied is kept whatever comes after; the server that answered is
    /// remembered in the state, and is where the receipt goes.
    async fn failover_pass(
        &mut self,
        clock: &PollClock,
        progress: &mut dyn Progress,
    ) -> Result<PollOutcome, PollError> {
        let now = unix_now();
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        let remembered = self.state.failover.last_server.clone();
        let order = failover::pass_order(
            &self.servers,
            remembered.as_deref(),
            self.settings.failover.order,
            u64::from_le_bytes(seed),
        );
        let max_age = self.settings.log.max_age.as_secs();
        let mut failures: Vec<(String, PollError)> = Vec::new();
        let mut merged: Option<PollOutcome> = None;
        // The server whose answer ends the pass (fresh, or the first stale one when
        // every answer was stale), and the last one whose answer was taken.
        let mut chosen: Option<usize> = None;
        let mut first_stale: Option<usize> = None;
        let mut last_answer: Option<usize> = None;
        let mut stopped: Option<PollError> = None;
        let mut fresh_pass = false;
        for (n, &index) in order.iter().enumerate() {
            if n > 0 && (self.stop.is_requested() || clock.past_deadline()) {
                break;
            }
            self.active = index;
            let result = self.attempt(clock, progress).await;
            let stale = self.log.state().alarms.keys().any(|a| a.as_str() == freshness::alarm::STALE);
            let verdict = failover::judge(&result.as_ref().map(|o| o.log_refused), stale);
            let address = self.servers[index].address.clone();
            let next = order.get(n + 1).map(|&i| self.servers[i].address.clone());
            let then = next
                .as_ref()
                .map_or_else(|| "no server left to try".to_owned(), |next| format!("trying {next}"));
            match result {
                Ok(outcome) => {
                    if !outcome.log_refused {
                        last_answer = Some(index);
                    }
                    merged = Some(match merged.take() {
                        Some(earlier) => merge_outcomes(earlier, outcome),
                        None => outcome,
                    });
                }
                Err(e) => match verdict {
                    Verdict::Stop => {
                        stopped = Some(e);
                        break;
                    }
                    _ => {
                        tracing::warn!(server = %address, next = next.as_deref().unwrap_or("-"), problem = %ErrorChain(&e), "failing over: {address}: {}; {then}", match &verdict { Verdict::MoveOn(why) => why.as_str(), _ => "failed" });
                        failures.push((address, e));
                        continue;
                    }
                },
            }
            match verdict {
                Verdict::Answered => {
                    chosen = Some(index);
                    fresh_pass = true;
                    break;
                }
                Verdict::MoveOn(why) => {
                    tracing::warn!(server = %address, next = next.as_deref().unwrap_or("-"), "failing over: {address}: {why}; {then}");
                }
                Verdict::Stale => {
                    first_stale.get_or_insert(index);
                    if next.is_none() {
                        tracing::warn!(server = %address, "every server is stale: staying with {}", self.servers[first_stale.unwrap_or(index)].address);
                        break;
                    }
                    if !failover::stale_pass_due(&self.state.failover, now, max_age) {
                        tracing::info!(server = %address, "{address} is stale, and the other servers were tried for that less than --max-age ago: staying with it");
                        break;
                    }
                    self.state.failover.stale_pass_at = Some(now);
                    tracing::warn!(server = %address, next = next.as_deref().unwrap_or("-"), "failing over: {address} is stale (no fresh cosignature within --max-age); {then}");
                }
                Verdict::Stop => {}
            }
        }
        let chosen = chosen.or(first_stale);
        self.answered = chosen.or(last_answer);
        // The receipt goes to the server that answered.
        if let Some(index) = self.answered {
            self.active = index;
        }
        let memory_before = self.state.failover.clone();
        if let Some(index) = chosen {
            let address = self.servers[index].address.clone();
            if remembered.as_deref() != Some(address.as_str()) {
                tracing::info!(server = %address, "polling {address} from now on (the last server that answered)");
            }
            self.state.failover.last_server = Some(address);
        }
        if fresh_pass {
            self.state.failover.stale_pass_at = None;
        }
        if self.state.failover != memory_before
            && let Err(e) = self.save()
        {
            tracing::warn!(error = %ErrorChain(&e), "cannot record the server that answered in the state file");
        }
        if let Some(e) = stopped {
            return Err(e);
        }
        match merged {
            Some(outcome) => Ok(outcome),
            None if failures.len() == 1 => Err(failures.remove(0).1),
            None => Err(PollError::NoServerAnswered(failures)),
        }
    }

    /// Records in the state that the server refused this host's certificate, or that
    /// it no longer does (an answer came). A failure to save is logged: the record
    /// only spares the server, it decides nothing about what is installed.
    fn note_certificate_refusal(&mut self, result: &Result<PollOutcome, PollError>) {
        let ClientTransport::Tls { certificate_sha256, .. } = &self.settings.transport else { return };
        let refused = match result {
            Err(e) if e.is_certificate_refusal() => Some(CertificateRefused {
                at: Published::from_unix_seconds(unix_now()),
                certificate_sha256: certificate_sha256.clone(),
            }),
            Err(_) => return, // no answer either way: nothing learnt
            Ok(_) => None,
        };
        if refused.is_none() && self.state.certificate_refused.is_none() {
            return;
        }
        self.state.certificate_refused = refused;
        if let Err(e) = self.save() {
            tracing::warn!(error = %ErrorChain(&e), "cannot record the certificate refusal in the state file");
        }
    }

    /// When the server refused this host's current certificate less than `within`
    /// ago (`--max-interval`), that refusal: a `--once` run then does not dial again.
    pub fn recent_certificate_refusal(&self, within: Duration) -> Option<&CertificateRefused> {
        let ClientTransport::Tls { certificate_sha256, .. } = &self.settings.transport else { return None };
        let refused = self.state.certificate_refused.as_ref()?;
        let age = unix_now().saturating_sub(refused.at.unix_seconds());
        (refused.certificate_sha256 == *certificate_sha256 && age < within.as_secs()).then_some(refused)
    }

    /// Drops every TLS session this client holds (a fresh, empty session store), so
    /// that the next connection makes a full handshake and keeps its new session.
    fn forget_tls_sessions(&mut self) {
        if let ClientTransport::Tls { config, .. } = &mut self.settings.transport {
            let mut fresh = rustls::ClientConfig::clone(config);
            // The default store of a ClientConfig: 256 sessions in memory.
            fresh.resumption = rustls::client::Resumption::in_memory_sessions(256);
            *config = Arc::new(fresh);
        }
    }

    /// Connects (TCP, then TLS unless plaintext) and exchanges one request and its
    /// answer. Also says whether the TLS session was resumed.
    async fn connect_and_exchange(
        &mut self,
        clock: &PollClock,
        progress: &mut dyn Progress,
    ) -> (Result<PollOutcome, PollError>, Handshake) {
        let timeout = self.settings.read_timeout;
        let endpoint = self.active_endpoint().clone();
        let server = endpoint.address;
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&server)).await {
            Err(_) => return (Err(PollError::ConnectTimeout { server, after: timeout }), Handshake::None),
            Ok(Err(source)) => return (Err(PollError::Connect { server, source }), Handshake::None),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        match self.settings.transport.clone() {
            ClientTransport::Plaintext => {
                (self.exchange(Connection::client(tcp), clock, progress).await, Handshake::None)
            }
            ClientTransport::Tls { config, server_name, .. } => {
                let server_name = endpoint.server_name.unwrap_or(server_name);
                let connecting = TlsConnector::from(config).connect(server_name.clone(), tcp);
                let tls = match tokio::time::timeout(timeout, connecting).await {
                    Err(_) => {
                        return (
                            Err(PollError::HandshakeTimeout { server, after: timeout }),
                            Handshake::None,
                        );
                    }
                    Ok(Err(e)) => return (Err(handshake_error(&server, &server_name, e)), Handshake::None),
                    Ok(Ok(tls)) => tls,
                };
                // The config (and its session store) is shared by every poll of this
                // client, so polls after the first resume their TLS session.
                let handshake = match tls.get_ref().1.handshake_kind() {
                    Some(rustls::HandshakeKind::Resumed) => Handshake::Resumed,
                    _ => Handshake::Full,
                };
                tracing::debug!(resumed = handshake == Handshake::Resumed, "tls session established");
                (self.exchange(Connection::client(tls), clock, progress).await, handshake)
            }
        }
    }

    /// One poll over a stream that is already connected (and past any TLS handshake):
    /// the request, then every frame of the answer through the checks of PROTOCOL.md
    /// section 6, exactly as [`Client::poll_once`] does once it has connected, without
    /// running hooks afterwards. For tests and fuzzing: anything can play the server.
    pub async fn poll_over<S>(
        &mut self,
        stream: S,
        progress: &mut dyn Progress,
    ) -> Result<PollOutcome, PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let clock = PollClock::new(self.settings.read_timeout, Instant::now() + self.settings.poll_timeout)
            .throttled(self.settings.max_rate);
        self.exchange(Connection::client(stream), &clock, progress).await
    }

    async fn exchange<S>(
        &mut self,
        mut conn: Connection<S>,
        clock: &PollClock,
        progress: &mut dyn Progress,
    ) -> Result<PollOutcome, PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut request = Request::new(self.settings.id.clone());
        for target in &self.settings.targets {
            request.since.insert(target.clone(), self.state.since(target));
        }
        // A server that stores receipts has the reports from them, signed.
        let carried: Vec<Report> = match self.state.receipts.server_takes_receipts {
            true => Vec::new(),
            false => self.state.reports.iter().take(REPORTS_PER_REQUEST).cloned().collect(),
        };
        request.rejected = carried.clone();
        let exchange = self.exchange_plan();
        request.held = exchange.held.clone();
        request.resume = exchange.resume.clone();
        let (log_size, alarms) = self.log.request_fields(unix_now());
        request.log_size = Some(log_size);
        request.alarms = alarms;
        request.features = Features::ALL;
        request.max_file_size = Some(self.settings.max_file_size);
        let ring = self.log.keyring(&self.settings.trusted);
        request.keys = ring.trusted_now().key_ids().take(fts_proto::MAX_KEYS).collect();
        request.rotation = Some(ring.known_through());
        (request.receipt_count, request.receipt_head) = self.receipt_fields();
        request.next_poll_within = Some(self.settings.next_poll_within);
        request.reboot_required = self.state.reboot_required.is_some();
        match tokio::time::timeout(clock.read_timeout(), conn.send_request(&request)).await {
            Err(_) => return Err(PollError::Timeout(clock.read_timeout())),
            Ok(Err(e)) => return Err(self.io_error(e, true)),
            Ok(Ok(())) => {}
        }

        let mut outcome = PollOutcome::default();
        self.deferred = Deferred::default();
        self.superseding.clear();
        let result = self.read_answer(&mut conn, &carried, &exchange, &mut outcome, clock, progress).await;
        let not_applied = self.deferred.finish();
        for (target, n, m) in &not_applied {
            tracing::warn!(%target, seq = n.get(), superseded_by = m.get(), "not applied: the answer superseded this entry by one it did not then install");
        }
        for (target, seq, name, hash, by) in std::mem::take(&mut self.superseding) {
            if !not_applied.iter().any(|(t, n, _)| *t == target && *n == seq) {
                self.outcomes.superseded(&target, seq, (name, hash), by);
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
        self.judge_log();
        result.map(|()| outcome)
    }

    /// Reads frames until `done`, an error, or a reason to stop; applies what passes.
    async fn read_answer<S>(
        &mut self,
        conn: &mut Connection<S>,
        carried: &[Report],
        exchange: &Exchange,
        outcome: &mut PollOutcome,
        clock: &PollClock,
        progress: &mut dyn Progress,
    ) -> Result<(), PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut answer_log: Option<AnswerLog> = None;
        for frame_number in 0..self.settings.max_frames {
            let first = frame_number == 0;
            if !first && self.stop.is_requested() {
                tracing::info!("stop requested: closing the answer between two files");
                return Ok(());
            }
            if !first && clock.past_deadline() {
                return Err(self.deadline_passed());
            }
            let (by, cut) = clock.header_deadline();
            let frame = match tokio::time::timeout_at(by, conn.read_server_frame()).await {
                Err(_) if cut == Cut::PollDeadline => return Err(self.deadline_passed()),
                Err(_) => return Err(PollError::Timeout(clock.read_timeout())),
                Ok(Ok(frame)) => frame,
                Ok(Err(ReadError::Proto(e))) => {
                    if first {
                        self.answered(carried)?;
                    }
                    // Check 1: a bad header that names its entry is reported; one that
                    // cannot be tied to an entry fails the poll. The error may quote the
                    // server's bytes.
                    return match e.report() {
                        Some(report) => {
                            tracing::warn!(problem = %peer_text(&e.to_string()), "refused an entry");
                            // The entry's own target waits for it; the others go on.
                            let next = Seq::after(self.state.since(&report.target));
                            match next {
                                Some(next) if self.settings.targets.contains(&report.target) => {
                                    let target = report.target.clone();
                                    self.hold(outcome, &target, next, report, HoldCause::Backoff).map(drop)
                                }
                                _ => self.report(outcome, report),
                            }
                        }
                        None => Err(PollError::Protocol(ProtocolBreach::Frame(e))),
                    };
                }
                Ok(Err(ReadError::Closed)) if first => return Err(self.no_answer(false)),
                Ok(Err(ReadError::Closed)) => {
                    return Err(PollError::Interrupted(Interruption::ClosedBeforeDone));
                }
                Ok(Err(ReadError::Io(e))) => return Err(self.io_error(e, first)),
            };
            // Any frame but a refusal answers the request that carried the reports.
            if first && !matches!(frame, ServerFrame::Error(_)) {
                self.answered(carried)?;
            }
            match frame {
                ServerFrame::Error(error) => return Err(PollError::Refused(error)),
                ServerFrame::Log(frame) => {
                    if !first {
                        return Err(PollError::Protocol(ProtocolBreach::LateLogFrame));
                    }
                    let checked = self.log.check_frame(
                        &frame,
                        &self.settings.trusted,
                        &self.settings.targets,
                        unix_now(),
                    );
                    if matches!(checked, AnswerLog::Refused) {
                        outcome.log_refused = true;
                        return Ok(());
                    }
                    self.notice_withdrawn_installs(&checked, outcome)?;
                    answer_log = Some(checked);
                }
                ServerFrame::Withdrawn(frame) => {
                    let standing = answer_log.get_or_insert_with(|| self.log.without_frame()).clone();
                    if !self.take_withdrawn(frame, exchange, &standing, outcome)? {
                        return Ok(());
                    }
                }
                ServerFrame::Superseded(frame) => {
                    let standing = answer_log.get_or_insert_with(|| self.log.without_frame()).clone();
                    if !self.take_superseded(frame, exchange, &standing, outcome)? {
                        return Ok(());
                    }
                }
                ServerFrame::ReceiptsStored(_) => {
                    return Err(PollError::Protocol(ProtocolBreach::UnannouncedFrame("receipts-stored")));
                }
                ServerFrame::Done(done) => {
                    outcome.more = done.more;
                    outcome.poll_after = Some(done.poll_after);
                    self.note_heads(&done.heads);
                    return Ok(());
                }
                ServerFrame::File(header) => {
                    let standing = answer_log.get_or_insert_with(|| self.log.without_frame());
                    let standing = standing.clone();
                    if !self.take_file(conn, header, exchange, &standing, outcome, clock, progress).await? {
                        return Ok(());
                    }
                }
            }
        }
        Err(PollError::Protocol(ProtocolBreach::TooManyFrames(self.settings.max_frames)))
    }

    /// The log state: the recorded checkpoint and the alarms.
    pub fn log_state(&self) -> &freshness::LogState {
        self.log.state()
    }

    /// Judges the alarms that depend on time after an exchange (`stale`,
    /// `withheld`): a target held on a genuine entry (its leaf verified, refused for
    /// a local reason it reported) is not withheld.
    fn judge_log(&mut self) {
        let state = &self.state;
        let since = |target: &Target| state.since(target);
        let genuine = |target: &Target| {
            state.held.get(target).is_some_and(|hold| {
                matches!(
                    hold.cause,
                    HoldCause::TooLarge { .. }
                        | HoldCause::UntrustedKey { .. }
                        | HoldCause::NoSpace { .. }
                        | HoldCause::HookFailing { .. }
                ) || hold.reason == RejectReason::InstallFailed
            })
        };
        self.log.judge(unix_now(), &since, &genuine);
    }

    /// What the next request holds and asks to resume (PROTOCOL.md sections 3.1.1
    /// and 3.2.1): each held target whose backoff has not ended and whose cause is
    /// still there (a failing hook's hold ends only when the hook succeeds), and each
    /// kept transfer of a target not held, at the length of its kept file.
    fn exchange_plan(&self) -> Exchange {
        let now = unix_now();
        let available_space = self.partial.dir().available_space().ok();
        let keys = self.log.keyring(&self.settings.trusted).trusted_now();
        let trusts = |key: &KeyId| keys.key_ids().any(|k| k == *key);
        let hook_failing = |name: &FileName| {
            self.state.hooks_pending.iter().any(|hook| hook.file_name == *name && hook.failures > 0)
        };
        let conditions = Conditions {
            max_file_size: self.settings.max_file_size,
            available_space,
            trusts: &trusts,
            hook_failing: &hook_failing,
        };
        let mut exchange = Exchange::default();
        for (target, hold) in &self.state.held {
            if !self.settings.targets.contains(target) || exchange.held.len() >= fts_proto::MAX_HELD {
                continue;
            }
            let waiting = match hold.cause {
                HoldCause::HookFailing { .. } => true,
                _ => hold.retry_at.unix_seconds() > now,
            };
            if waiting && !hold.cause.has_cleared(&conditions) {
                exchange.held.insert(target.clone(), hold.seq);
            }
        }
        for (target, transfer) in &self.state.transfers {
            if exchange.held.contains_key(target) || exchange.resume.len() >= fts_proto::MAX_HELD {
                continue;
            }
            let name = PartialDir::kept_name(&transfer.file_hash, transfer.file_size);
            if let Some(offset) =
                self.partial.kept_len(&name).filter(|&len| len > 0 && len < transfer.file_size)
            {
                exchange.resume.push(Resume { file_hash: transfer.file_hash, offset });
            }
        }
        exchange
    }

    /// Keeps the server's newest seq of each held target, to say how many entries
    /// wait behind the held one.
    fn note_heads(&mut self, heads: &BTreeMap<Target, u64>) {
        let mut changed = false;
        for (target, hold) in &mut self.state.held {
            let newest = heads.get(target).copied();
            if newest.is_some() && hold.newest != newest {
                hold.newest = newest;
                changed = true;
            }
        }
        if changed && let Err(e) = self.save() {
            tracing::warn!(error = %ErrorChain(&e), "cannot record how many entries wait behind a held one");
        }
    }

    /// Forgets holds and kept transfers that are over (their entry applied, or their
    /// target no longer this host's) and removes the partial folder's files that no
    /// kept transfer names. At start and after each poll.
    fn tidy_up(&mut self) -> Result<(), PollError> {
        let before = (self.state.held.len(), self.state.transfers.len());
        let targets = &self.settings.targets;
        let since = self.state.since.clone();
        let open = |target: &Target, seq: Seq| {
            targets.contains(target) && seq.get() > since.get(target).copied().unwrap_or(0)
        };
        self.state.held.retain(|target, hold| open(target, hold.seq));
        self.state.transfers.retain(|target, transfer| open(target, transfer.seq));
        if (self.state.held.len(), self.state.transfers.len()) != before {
            self.save()?;
        }
        let wanted: Vec<String> =
            self.state.transfers.values().map(|t| PartialDir::kept_name(&t.file_hash, t.file_size)).collect();
        match self.partial.remove_unwanted(&wanted) {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "removed received parts of transfers no longer wanted"),
            Err(source) => {
                return Err(PollError::Clean { dir: self.partial.dir().path().to_owned(), source });
            }
        }
        Ok(())
    }

    fn deadline_passed(&self) -> PollError {
        tracing::warn!(
            limit = ?self.settings.poll_timeout,
            "--poll-timeout passed: ending the poll between two files"
        );
        PollError::PollDeadline { limit: self.settings.poll_timeout }
    }

    /// The connection ended before the first frame, without a TLS alert.
    fn no_answer(&self, reset: bool) -> PollError {
        let tls = matches!(self.settings.transport, ClientTransport::Tls { .. });
        PollError::NoAnswer { server: self.active_endpoint().address.clone(), reset, tls }
    }

    /// The server answered the request that carried `carried`: it has them now. If the
    /// state cannot be saved (a full disk), the poll goes on: the reports stay in the
    /// state on disk and are only sent again, which the server records once.
    fn answered(&mut self, carried: &[Report]) -> Result<(), PollError> {
        if carried.is_empty() {
            return Ok(());
        }
        self.state.reports.retain(|r| !carried.contains(r));
        if let Err(e) = self.save() {
            tracing::warn!(error = %ErrorChain(&e), "cannot record that the server has the reports: they will be sent again");
        }
        Ok(())
    }

    /// Queues `report` for the next request (a server that takes no receipts) and
    /// for the next receipt.
    fn queue_report(&mut self, report: Report) {
        self.outcomes.report(&report);
        self.state.add_report(report);
    }

    /// Queues `report`, saves the state, and ends the answer (`Ok`): the entry is not
    /// applied and will be fetched again.
    fn report(&mut self, outcome: &mut PollOutcome, report: Report) -> Result<(), PollError> {
        self.queue_report(report.clone());
        outcome.reported.push(report);
        self.save()
    }

    /// Like [`Client::report`], for a local failure (disk full, I/O) that applied
    /// nothing: the report stands even if the state cannot be saved, since a full disk
    /// usually refuses the state write too. The state on disk then lacks only this
    /// report (it still holds everything applied); the report stays queued in memory.
    fn report_local_failure(&mut self, outcome: &mut PollOutcome, report: Report) -> Result<(), PollError> {
        self.queue_report(report.clone());
        outcome.reported.push(report);
        if let Err(e) = self.save() {
            tracing::warn!(error = %ErrorChain(&e), "cannot save the report: it is kept in memory only");
        }
        Ok(())
    }

    /// Checks 2 to 7 for one `file` frame. `Ok(true)`: go on to the next frame;
    /// `Ok(false)`: the answer ends here (a refusal, a hold, or a rule of check 5).
    /// `asked` holds the resume offsets the request asked for, by file hash.
    #[allow(clippy::too_many_arguments)]
    async fn take_file<S>(
        &mut self,
        conn: &mut Connection<S>,
        header: FileHeader,
        exchange: &Exchange,
        answer_log: &AnswerLog,
        outcome: &mut PollOutcome,
        clock: &PollClock,
        progress: &mut dyn Progress,
    ) -> Result<bool, PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let target = header.target.clone();
        let seq = header.seq;
        let refuse = |reason: RejectReason| Report::new(target.clone(), seq.get(), reason);

        // Check 2: one of this host's targets, and not one it held.
        if !self.settings.targets.contains(&target) {
            tracing::warn!(%target, seq = seq.get(), "refused an entry for a target that is not this host's");
            self.report(outcome, refuse(RejectReason::WrongTarget))?;
            return Ok(false);
        }
        if exchange.held.contains_key(&target) {
            return Err(PollError::Protocol(ProtocolBreach::FrameForHeldTarget { target, seq: seq.get() }));
        }
        // Check 3: the next in sequence. What was sent is not the entry this host
        // waits for, so the target is held at that one.
        let since = self.state.since(&target);
        let Some(next) = self.deferred.next(&target, since) else {
            // Nothing can follow the largest seq: whatever was sent is a replay.
            self.report(outcome, refuse(RejectReason::Replay))?;
            return Ok(false);
        };
        if next != seq {
            let reason = if seq < next { RejectReason::Replay } else { RejectReason::Gap };
            tracing::warn!(%target, seq = seq.get(), expected = next.get(), %reason, "refused an entry out of sequence");
            return self.hold(outcome, &target, next, refuse(reason), HoldCause::Backoff);
        }
        // In the log the answer's checkpoint proves (PROTOCOL.md section 7.4), before
        // the signature: a hold after this one is on a genuine entry, whose leaf
        // verifies, and does not count toward `withheld`.
        if let Err(why) = answer_log.check_entry(&header) {
            tracing::warn!(%target, seq = seq.get(), problem = %why, "refused an entry that is not in the verified log");
            return self.hold(outcome, &target, seq, refuse(RejectReason::NotLogged), HoldCause::Backoff);
        }
        // A withdrawn entry is never installed, whichever frame carries it.
        if answer_log.is_withdrawn(&target, seq) {
            tracing::warn!(%target, seq = seq.get(), file = %header.file_name, "applied a withdrawn entry without installing it (the server sent it whole)");
            self.apply_withdrawn(outcome, &target, seq)?;
            outcome.repeat_now = true;
            return Ok(false);
        }
        // Check 4: signed by a trusted key.
        // A key a rotation retired signs only leaves below the rotation (PROTOCOL.md
        // section 8.3): the leaf index counts only once its inclusion verified.
        let unlogged;
        let (keys, index) = match answer_log {
            AnswerLog::Verified { keys, .. } => (&**keys, header.log_index),
            _ => {
                unlogged = self.log.keyring(&self.settings.trusted);
                (&unlogged, None)
            }
        };
        let verified = match keys.verify_entry(header.statement(), &header.key_id, &header.signature, index) {
            Ok(verified) => verified,
            Err(e @ VerifyError::UntrustedKey { .. }) => {
                tracing::warn!(%target, seq = seq.get(), problem = %ErrorChain(&e), "refused an entry signed by a key this host does not trust");
                let cause = HoldCause::UntrustedKey { key_id: header.key_id };
                return self.hold(outcome, &target, seq, refuse(RejectReason::UntrustedKey), cause);
            }
            Err(e @ VerifyError::RetiredKey { .. }) => {
                tracing::warn!(%target, seq = seq.get(), problem = %ErrorChain(&e), "refused an entry signed by a retired key");
                return self.hold(
                    outcome,
                    &target,
                    seq,
                    refuse(RejectReason::RetiredKey),
                    HoldCause::Backoff,
                );
            }
            Err(e @ VerifyError::BadSignature { .. }) => {
                tracing::warn!(%target, seq = seq.get(), problem = %ErrorChain(&e), "refused an entry whose signature does not verify");
                return self.hold(outcome, &target, seq, refuse(RejectReason::Signature), HoldCause::Backoff);
            }
        };

        // Check 5: rules on signed fields.
        let installed = self.state.installed.get(&verified.file_name).cloned();
        if installed.as_ref().is_some_and(|old| old.published > verified.published) {
            tracing::warn!(%target, seq = seq.get(), file = %verified.file_name, "applied an entry without installing it: a later publication of its name is installed");
            self.apply_done(&target, seq);
            self.queue_report(refuse(RejectReason::Superseded));
            outcome.reported.push(refuse(RejectReason::Superseded));
            self.save()?;
            return self.skip_body(conn, &target, verified, clock, progress, outcome).await;
        }
        if verified.file_size > self.settings.max_file_size {
            // Held, never skipped: it installs once the limit allows it.
            tracing::warn!(%target, seq = seq.get(), file = %verified.file_name, size = verified.file_size, limit = self.settings.max_file_size, "an entry is larger than --max-file-size");
            let cause = HoldCause::TooLarge { file_size: verified.file_size };
            return self.hold(outcome, &target, seq, refuse(RejectReason::TooLarge), cause);
        }
        if installed.as_ref().is_some_and(|old| old.file_hash == verified.file_hash) {
            tracing::info!(%target, seq = seq.get(), file = %verified.file_name, "already installed with this content");
            self.apply_done(&target, seq);
            self.state.held.remove(&target);
            self.state.installed.insert(verified.file_name.clone(), installed_record(&verified, &header));
            self.save()?;
            return self.skip_body(conn, &target, verified, clock, progress, outcome).await;
        }

        // Check 6: the body, streamed, counted and hashed; a large one into a kept
        // file that a later try can resume.
        let offset = header.body_offset();
        let asked = exchange.resume_offset(&verified.file_hash);
        if offset > 0 && asked != Some(offset) {
            tracing::warn!(%target, seq = seq.get(), offset, asked = asked.unwrap_or(0), "refused a frame that resumes a transfer at an offset this host did not ask for");
            self.drop_kept(&target);
            return self.hold(outcome, &target, seq, refuse(RejectReason::BadHeader), HoldCause::Backoff);
        }
        let into = self.receive_into(&target, &verified, offset)?;
        let kept = matches!(into, ReceiveInto::Kept { .. });
        let file = match receive_file(conn, verified, &self.partial, into, clock, progress).await {
            Ok(file) => file,
            Err(e @ ReceiveError::HashMismatch { .. }) => {
                tracing::warn!(%target, seq = seq.get(), resumed_at = offset, problem = %ErrorChain(&e), "refused a body that is not what was signed");
                self.drop_kept(&target);
                if offset > 0 {
                    // The kept prefix may be what was wrong: the next try starts from
                    // zero, and only a whole body that fails holds the target.
                    self.report(outcome, refuse(RejectReason::HashMismatch))?;
                    return Ok(false);
                }
                return self.hold(
                    outcome,
                    &target,
                    seq,
                    refuse(RejectReason::HashMismatch),
                    HoldCause::Backoff,
                );
            }
            Err(ReceiveError::Local { dir, cause }) => {
                let needed = header.body_len();
                let e = ReceiveError::Local { dir, cause };
                tracing::error!(%target, seq = seq.get(), problem = %ErrorChain(&e), "cannot store a file");
                // A full disk is not helped by a kept prefix.
                self.drop_kept(&target);
                let cause = match &e {
                    ReceiveError::Local {
                        cause: LocalFailure::NoSpace { .. } | LocalFailure::DiskFull,
                        ..
                    } => HoldCause::NoSpace { needed },
                    _ => HoldCause::Backoff,
                };
                return self.hold(outcome, &target, seq, refuse(RejectReason::InstallFailed), cause);
            }
            Err(e) => {
                if kept {
                    self.keep_or_drop_prefix(&target);
                }
                return Err(match e {
                    e @ ReceiveError::Truncated { .. } => PollError::Interrupted(Interruption::Body(e)),
                    ReceiveError::BelowMinimumRate { received, expected } => {
                        let limit = self.settings.poll_timeout;
                        tracing::warn!(%target, seq = seq.get(), received, expected, "--poll-timeout passed and the file arrives below the minimum rate: abandoning it");
                        PollError::BelowMinimumRate { limit, received, expected }
                    }
                    _ => PollError::Timeout(self.settings.read_timeout),
                });
            }
        };

        // Check 7: install, then apply with the hook mark, in one atomic state write.
        let statement: Statement = file.statement().clone();
        let path = match file.install(&self.dest) {
            Ok(path) => path,
            Err(e) => {
                tracing::error!(%target, seq = seq.get(), problem = %ErrorChain(&e), "cannot install a verified file");
                self.drop_kept(&target);
                let report = refuse(RejectReason::InstallFailed);
                return self.hold(outcome, &target, seq, report, HoldCause::Backoff);
            }
        };
        self.apply_done(&target, seq);
        self.state.held.remove(&target);
        self.state.transfers.remove(&target);
        let record = installed_record(&statement, &header);
        if self.settings.hook.is_some() {
            mark_hook_pending(
                &mut self.state.hooks_pending,
                PendingHook::new(statement.file_name.clone(), &record),
            );
        }
        self.state.installed.insert(statement.file_name.clone(), record);
        self.save()?;
        tracing::info!(%target, seq = seq.get(), file = %path.display(), size = statement.file_size, hash = %statement.file_hash, resumed_at = offset, "installed");
        self.outcomes.installed(&target, seq, &statement.file_name, statement.file_hash);
        outcome.installed.push(path);
        Ok(true)
    }

    /// A `withdrawn` frame (PROTOCOL.md section 8.1): checks 2 and 3 as for a file,
    /// the entry's leaf, then the withdrawal (listed by the verified head, its leaf in
    /// the checkpoint, signed by a trusted key); applies the entry as withdrawn.
    /// `Ok(true)`: go on (no body follows).
    fn take_withdrawn(
        &mut self,
        frame: WithdrawnFrame,
        exchange: &Exchange,
        answer_log: &AnswerLog,
        outcome: &mut PollOutcome,
    ) -> Result<bool, PollError> {
        let target = frame.entry.target.clone();
        let seq = frame.entry.seq;
        let refuse = |reason: RejectReason| Report::new(target.clone(), seq.get(), reason);
        if !self.settings.targets.contains(&target) {
            tracing::warn!(%target, seq = seq.get(), "refused a withdrawal for a target that is not this host's");
            self.report(outcome, refuse(RejectReason::WrongTarget))?;
            return Ok(false);
        }
        if exchange.held.contains_key(&target) {
            return Err(PollError::Protocol(ProtocolBreach::FrameForHeldTarget { target, seq: seq.get() }));
        }
        if let Some(refused) = self.out_of_sequence(outcome, &target, seq, "a withdrawal")? {
            return Ok(refused);
        }
        let checked = answer_log.check_entry(&frame.entry).and_then(|()| answer_log.check_withdrawal(&frame));
        match checked {
            Ok(withdrawal) => {
                tracing::warn!(%target, seq = seq.get(), file = %frame.entry.file_name, reason = %peer_text(withdrawal.reason.as_str()), "applied a withdrawn entry without installing it");
                self.apply_withdrawn(outcome, &target, seq)?;
                Ok(true)
            }
            Err(why) => {
                tracing::warn!(%target, seq = seq.get(), problem = %why, "refused a withdrawal that does not verify");
                self.hold(outcome, &target, seq, refuse(RejectReason::NotLogged), HoldCause::Backoff)
                    .map(|_| false)
            }
        }
    }

    /// Check 3 for a frame without a body: `Some(false)` (the answer ends, the target
    /// held at the entry expected) unless `seq` is the next one of `target`.
    fn out_of_sequence(
        &mut self,
        outcome: &mut PollOutcome,
        target: &Target,
        seq: Seq,
        what: &str,
    ) -> Result<Option<bool>, PollError> {
        let next = self.deferred.next(target, self.state.since(target));
        if next == Some(seq) {
            return Ok(None);
        }
        let next = next.unwrap_or(seq);
        let reason = if seq < next { RejectReason::Replay } else { RejectReason::Gap };
        tracing::warn!(%target, seq = seq.get(), expected = next.get(), %reason, "refused {what} out of sequence");
        let report = Report::new(target.clone(), seq.get(), reason);
        self.hold(outcome, target, next, report, HoldCause::Backoff).map(|_| Some(false))
    }

    /// A `superseded` frame (PROTOCOL.md section 8.2): checks 2 and 3 as for a file,
    /// then both leaves against a verified checkpoint, then the superseding entry as
    /// a host would install it (same target and file name, a later seq and
    /// `published`, not listed withdrawn, not above `--max-file-size`, signed by a key
    /// trusted now). The superseded entry needs no key of its own: its leaf is in the
    /// log. It is applied only once the superseding one is installed in this answer
    /// ([`supersede`]). `Ok(true)`: go on (no body follows).
    fn take_superseded(
        &mut self,
        frame: SupersededFrame,
        exchange: &Exchange,
        answer_log: &AnswerLog,
        outcome: &mut PollOutcome,
    ) -> Result<bool, PollError> {
        let SupersededFrame { entry, by } = frame;
        let (target, seq) = (entry.target.clone(), entry.seq);
        let refuse = |reason: RejectReason| Report::new(target.clone(), seq.get(), reason);
        if !self.settings.targets.contains(&target) {
            tracing::warn!(%target, seq = seq.get(), "refused a supersession for a target that is not this host's");
            self.report(outcome, refuse(RejectReason::WrongTarget))?;
            return Ok(false);
        }
        if exchange.held.contains_key(&target) {
            return Err(PollError::Protocol(ProtocolBreach::FrameForHeldTarget { target, seq: seq.get() }));
        }
        if let Some(refused) = self.out_of_sequence(outcome, &target, seq, "a supersession")? {
            return Ok(refused);
        }
        let logged = match answer_log {
            AnswerLog::Verified { .. } => answer_log.check_entry(&entry).and_then(|()| {
                answer_log.check_entry(&by).map_err(|why| format!("the superseding entry: {why}"))
            }),
            _ => Err("a supersession is accepted only in an answer whose checkpoint verified".into()),
        };
        if let Err(why) = logged {
            tracing::warn!(%target, seq = seq.get(), problem = %why, "refused a supersession that is not in the verified log");
            return self
                .hold(outcome, &target, seq, refuse(RejectReason::NotLogged), HoldCause::Backoff)
                .map(|_| false);
        }
        let problem = if by.target != target || by.file_name != entry.file_name {
            Some("the superseding entry is not of the same target and file name".to_owned())
        } else if by.seq <= seq || by.published <= entry.published {
            Some("the superseding entry is not later (seq and published)".to_owned())
        } else if answer_log.is_withdrawn(&target, by.seq) {
            Some("the superseding entry is withdrawn".to_owned())
        } else if by.file_size > self.settings.max_file_size {
            Some(format!("the superseding entry is larger than --max-file-size ({} bytes)", by.file_size))
        } else {
            let keys = match answer_log {
                AnswerLog::Verified { keys, .. } => keys.trusted_now(),
                _ => self.log.keyring(&self.settings.trusted).trusted_now(),
            };
            keys.verify(by.statement(), &by.key_id, &by.signature)
                .err()
                .map(|e| format!("the superseding entry: {}", ErrorChain(&e)))
        };
        if let Some(why) = problem {
            tracing::warn!(%target, seq = seq.get(), superseded_by = by.seq.get(), problem = %why, "refused a supersession: the entry must come whole");
            let report = refuse(RejectReason::BadSupersession);
            return self.hold(outcome, &target, seq, report, HoldCause::Backoff).map(|_| false);
        }
        tracing::debug!(%target, seq = seq.get(), file = %entry.file_name, superseded_by = by.seq.get(), "superseded, pending its successor");
        self.deferred.defer(&target, seq, by.seq);
        self.superseding.push((target.clone(), seq, entry.file_name.clone(), entry.file_hash, by.seq));
        outcome.superseded += 1;
        Ok(true)
    }

    /// Entry `seq` of `target` is done with (installed, or applied without an
    /// install): the state's `since` moves to it unless a superseded entry of the
    /// target still waits for its successor in this answer ([`supersede`]).
    fn apply_done(&mut self, target: &Target, seq: Seq) {
        if let Some(since) = self.deferred.done(target, seq) {
            self.state.applied(target, since);
        }
    }

    /// After an entry applied without an install: the answer ends here (its body is
    /// not read), unless a superseded entry of its target waits for a successor later
    /// in this answer: then the body is read and dropped, and the answer goes on.
    async fn skip_body<S>(
        &mut self,
        conn: &mut Connection<S>,
        target: &Target,
        verified: fts_trust::Verified<Statement>,
        clock: &PollClock,
        progress: &mut dyn Progress,
        outcome: &mut PollOutcome,
    ) -> Result<bool, PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if !self.deferred.is_waiting(target) {
            outcome.repeat_now = true;
            return Ok(false);
        }
        match receive_file(conn, verified, &self.partial, ReceiveInto::Temp, clock, progress).await {
            // Received and verified into a temp that is dropped, never installed.
            Ok(_) => Ok(true),
            Err(e) => {
                tracing::warn!(%target, problem = %ErrorChain(&e), "could not read past an entry applied without an install: ending the answer");
                outcome.repeat_now = true;
                Ok(false)
            }
        }
    }

    /// Applies entry `seq` of `target` as withdrawn: done with, never installed,
    /// reported as `withdrawn`.
    fn apply_withdrawn(
        &mut self,
        outcome: &mut PollOutcome,
        target: &Target,
        seq: Seq,
    ) -> Result<(), PollError> {
        self.apply_done(target, seq);
        self.state.held.remove(target);
        self.state.transfers.remove(target);
        let report = Report::new(target.clone(), seq.get(), RejectReason::Withdrawn);
        self.queue_report(report.clone());
        outcome.reported.push(report);
        outcome.withdrawn.push((target.clone(), seq));
        self.save()
    }

    /// After a verified checkpoint: each withdrawn entry (as its head lists) that
    /// this host has installed, noticed once: reported as `withdrawn-installed`, and
    /// `--exec-withdrawn` queued. The file stays where it is.
    fn notice_withdrawn_installs(
        &mut self,
        log: &AnswerLog,
        outcome: &mut PollOutcome,
    ) -> Result<(), PollError> {
        let AnswerLog::Verified { withdrawn, .. } = log else { return Ok(()) };
        let mut noticed = Vec::new();
        for (name, installed) in &self.state.installed {
            let listed = withdrawn.get(&installed.target).is_some_and(|w| w.contains(&installed.seq));
            let known = self
                .state
                .withdrawn_installed
                .iter()
                .any(|w| w.target == installed.target && w.seq == installed.seq);
            if listed && !known {
                noticed.push(WithdrawnInstalled {
                    target: installed.target.clone(),
                    seq: installed.seq,
                    file_name: name.clone(),
                    exec_pending: self.settings.exec_withdrawn.is_some(),
                });
            }
        }
        if noticed.is_empty() {
            return Ok(());
        }
        for w in noticed {
            tracing::error!(target = %w.target, seq = w.seq.get(), file = %w.file_name, "an installed file was withdrawn by its publisher: it stays installed (see --exec-withdrawn)");
            let report = Report::new(w.target.clone(), w.seq.get(), RejectReason::WithdrawnInstalled);
            self.queue_report(report.clone());
            outcome.reported.push(report);
            self.state.withdrawn_installed.push(w);
        }
        self.save()
    }

    /// Runs `--exec-withdrawn` for each installed file noticed withdrawn and not run
    /// for yet, with the installed file's path and `FTS_HOOK_*` variables like a hook.
    /// A failure is logged and not retried (removal is the host's own policy).
    pub async fn run_withdrawn_hooks(&mut self) -> Result<(), PollError> {
        let Some(hook) = self.settings.exec_withdrawn.clone() else { return Ok(()) };
        let due: Vec<usize> = (0..self.state.withdrawn_installed.len())
            .filter(|&i| self.state.withdrawn_installed[i].exec_pending)
            .collect();
        for i in due {
            let w = self.state.withdrawn_installed[i].clone();
            let installed =
                self.state.installed.get(&w.file_name).filter(|i| i.target == w.target && i.seq == w.seq);
            if installed.is_none() {
                tracing::info!(file = %w.file_name, "not running --exec-withdrawn: a later version replaced the withdrawn one");
            }
            if let Some(installed) = installed {
                let entry = PendingHook::new(w.file_name.clone(), installed);
                let path = self.dest.path().join(w.file_name.as_str());
                match hook.run(&entry, &path, &self.hook_status_file()).await {
                    Ok(_) => {
                        tracing::info!(file = %w.file_name, "--exec-withdrawn ran for a withdrawn file")
                    }
                    Err(e) => {
                        tracing::error!(file = %w.file_name, error = %ErrorChain(&e), "--exec-withdrawn failed for a withdrawn file")
                    }
                }
            }
            self.state.withdrawn_installed[i].exec_pending = false;
            self.save()?;
        }
        Ok(())
    }

    /// Where the body of `verified` goes: a file at least [`RESUMABLE_MIN`] large into
    /// its kept file (recorded in the state before its first byte, so that a host
    /// killed mid-way resumes it), after the `offset` bytes kept from before; a smaller
    /// one into a temp. A kept file of another transfer of the same target is removed
    /// (at most one per target).
    fn receive_into(
        &mut self,
        target: &Target,
        verified: &Statement,
        offset: u64,
    ) -> Result<ReceiveInto, PollError> {
        if verified.file_size < RESUMABLE_MIN {
            self.drop_kept(target);
            return Ok(ReceiveInto::Temp);
        }
        let record =
            KeptTransfer { seq: verified.seq, file_hash: verified.file_hash, file_size: verified.file_size };
        if self.state.transfers.get(target) != Some(&record) {
            self.drop_kept(target);
            self.state.transfers.insert(target.clone(), record);
            if let Err(e) = self.save() {
                // Not resumable then, but still receivable: a state that cannot be
                // written (a full disk) is the receive's own failure to report.
                tracing::warn!(error = %ErrorChain(&e), "cannot record the transfer: receiving it without a kept file");
                self.state.transfers.remove(target);
                return Ok(ReceiveInto::Temp);
            }
        }
        Ok(ReceiveInto::Kept {
            name: PartialDir::kept_name(&verified.file_hash, verified.file_size),
            start: offset,
        })
    }

    /// After a cut transfer into a kept file: keeps the prefix for a resume when it
    /// is at least [`RESUMABLE_MIN`] and the file system keeps `--min-free` free;
    /// else removes it.
    fn keep_or_drop_prefix(&mut self, target: &Target) {
        let Some(record) = self.state.transfers.get(target) else { return };
        let name = PartialDir::kept_name(&record.file_hash, record.file_size);
        let len = self.partial.kept_len(&name).unwrap_or(0);
        let dir = self.partial.dir();
        let free_enough = match (dir.available_space(), dir.total_space()) {
            (Ok(free), Ok(total)) => {
                u128::from(free) * 100 >= u128::from(total) * u128::from(self.settings.min_free_percent)
            }
            _ => false,
        };
        if len >= RESUMABLE_MIN && free_enough {
            tracing::info!(%target, seq = record.seq.get(), kept = len, of = record.file_size, "kept the received part of a cut transfer, to resume it");
            return;
        }
        tracing::info!(%target, kept = len, free_enough, "not keeping the received part of a cut transfer");
        self.drop_kept(target);
    }

    /// Removes the kept transfer of `target`, its file and its record (saved with the
    /// next state write; an orphan file is removed by the next tidy-up).
    fn drop_kept(&mut self, target: &Target) {
        if let Some(record) = self.state.transfers.remove(target) {
            let name = PartialDir::kept_name(&record.file_hash, record.file_size);
            if let Err(e) = self.partial.remove_kept(&name) {
                tracing::warn!(error = %ErrorChain(&e), "cannot remove a kept transfer");
            }
        }
    }

    /// Holds `target` at entry `seq` (PROTOCOL.md section 3.1.1): reports `report`,
    /// records the hold with its backoff and `cause`, and ends the answer so that the
    /// other targets go on at once, in a poll that names this one in `held`. The hold
    /// and its report stand even if the state cannot be saved (a full disk refuses the
    /// state write too): they are kept in memory, see [`Client::report_local_failure`].
    fn hold(
        &mut self,
        outcome: &mut PollOutcome,
        target: &Target,
        seq: Seq,
        report: Report,
        cause: HoldCause,
    ) -> Result<bool, PollError> {
        // A target with superseded entries pending is held at the first of them:
        // those are dropped with the answer, and its next entry is since + 1.
        let seq = match self.deferred.is_waiting(target) {
            true => Seq::after(self.state.since(target)).unwrap_or(seq),
            false => seq,
        };
        self.record_hold(target, seq, report.reason.clone(), cause);
        outcome.repeat_now = true;
        self.report_local_failure(outcome, report).map(|()| false)
    }

    fn record_hold(&mut self, target: &Target, seq: Seq, reason: RejectReason, cause: HoldCause) {
        let now = unix_now();
        let previous = self.state.held.get(target).filter(|hold| hold.seq == seq);
        let tries = previous.map_or(1, |hold| hold.tries.saturating_add(1));
        let held_since =
            previous.map_or_else(|| Published::from_unix_seconds(now), |hold| hold.held_since.clone());
        let newest = previous.and_then(|hold| hold.newest);
        let wait = held::backoff(self.settings.retry_base, tries);
        let retry_at = held::retry_at_after(wait);
        tracing::warn!(
            %target, seq = seq.get(), %reason, tries, retry_at = %retry_at,
            "holding the target at this entry: its other targets go on"
        );
        self.state
            .held
            .insert(target.clone(), Hold { seq, reason, held_since, tries, retry_at, cause, newest });
    }

    /// Names an I/O failure. At the first read after the handshake, a TLS alert is the
    /// server refusing this host's certificate (TLS 1.3 reports it only then), and an
    /// end of the connection is a server that did not answer.
    fn io_error(&self, e: io::Error, first_read: bool) -> PollError {
        let server = self.active_endpoint().address.clone();
        match tls_words::tls_error(&e) {
            Some(rustls::Error::AlertReceived(alert)) if first_read && is_certificate_alert(alert) => {
                PollError::CertificateRefused { server, alert: *alert }
            }
            // Any other alert (internal_error, decode_error ...) says nothing about this
            // host's certificate: a failed poll, not a refusal to back off from.
            _ if first_read && e.kind() == io::ErrorKind::UnexpectedEof => self.no_answer(false),
            _ if first_read && e.kind() == io::ErrorKind::ConnectionReset => self.no_answer(true),
            _ => PollError::Interrupted(Interruption::Transport(TransportError::Io(e))),
        }
    }
}

/// Opens a folder the client writes into and trusts, refusing it unless it and every
/// folder on the way to it can be changed only by this user (and root).
/// `later` after `earlier` in one pass over several servers: what both applied, and
/// what the later one says of what comes next.
fn merge_outcomes(mut earlier: PollOutcome, later: PollOutcome) -> PollOutcome {
    earlier.installed.extend(later.installed);
    earlier.reported.extend(later.reported);
    earlier.withdrawn.extend(later.withdrawn);
    earlier.superseded += later.superseded;
    earlier.more = later.more;
    earlier.repeat_now = later.repeat_now;
    earlier.poll_after = later.poll_after.or(earlier.poll_after);
    earlier.log_refused = later.log_refused;
    earlier
}

fn open_private_dir(path: &Path) -> Result<Dir, FsError> {
    let dir = Dir::open(path)?;
    fts_fs::private::check_private(&dir)?;
    fts_fs::private::check_ancestors(path)?;
    Ok(dir)
}

/// Marks a hook pending for `entry`, replacing any hook still pending for the same file
/// name. Coalescing rather than checking the hash at run time: the file on disk is
/// now `entry`'s, so a hook for an earlier entry of that name would run on bytes
/// other than those its `FTS_HOOK_FILE_HASH` names, and the newest entry's hook acts on
/// exactly what is installed. (One poll installs a name twice when two entries of it
/// wait for the host, e.g. v1 and v2 published before it polled.)
fn mark_hook_pending(pending: &mut Vec<PendingHook>, entry: PendingHook) {
    pending.retain(|p| p.file_name != entry.file_name);
    pending.push(entry);
}

pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn installed_record(statement: &Statement, header: &FileHeader) -> Installed {
    Installed {
        target: statement.target.clone(),
        seq: statement.seq,
        published: statement.published.clone(),
        file_hash: statement.file_hash,
        file_size: Some(statement.file_size),
        key_id: Some(header.key_id),
        signature: Some(header.signature),
    }
}

/// Whether a TLS session was resumed (for the retry of [`Client::poll_until`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    /// Plaintext, or no handshake completed.
    None,
    Full,
    Resumed,
}

/// A handshake that failed, in words: the server's certificate (which name, which CA,
/// which date, what to check), or an alert from the server.
fn handshake_error(server: &str, dialled: &ServerName<'_>, e: io::Error) -> PollError {
    let server = server.to_owned();
    let problem = match tls_words::tls_error(&e) {
        Some(rustls::Error::AlertReceived(alert)) if is_certificate_alert(alert) => {
            return PollError::CertificateRefused { server, alert: *alert };
        }
        Some(rustls::Error::AlertReceived(alert)) => TlsProblem::Alert(*alert),
        Some(rustls::Error::InvalidCertificate(problem)) => {
            TlsProblem::ServerCertificate { problem: problem.clone(), dialled: dialled.to_owned() }
        }
        _ => TlsProblem::Transport(e),
    };
    PollError::Handshake { server, problem }
}

/// Alerts a server sends about the client's certificate.
fn is_certificate_alert(alert: &rustls::AlertDescription) -> bool {
    use rustls::AlertDescription as A;
    matches!(
        alert,
        A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::DecryptError
            | A::CertificateRequired
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(name: &str, seq: u64, byte: u8) -> PendingHook {
        let installed = Installed {
            target: Target::All,
            seq: Seq::new(seq).unwrap(),
            published: fts_proto::Published::from_unix_seconds(1_800_000_000 + seq),
            file_hash: fts_proto::FileHash::from_digest([byte; 32]),
            file_size: None,
            key_id: None,
            signature: None,
        };
        PendingHook::new(fts_proto::FileName::parse(name).unwrap(), &installed)
    }

    #[test]
    fn a_newer_install_of_a_name_replaces_its_pending_hook() {
        let mut hooks = Vec::new();
        mark_hook_pending(&mut hooks, pending("app.conf", 1, 1));
        mark_hook_pending(&mut hooks, pending("other.conf", 2, 2));
        mark_hook_pending(&mut hooks, pending("app.conf", 3, 3));
        assert_eq!(hooks, [pending("other.conf", 2, 2), pending("app.conf", 3, 3)]);
    }

    #[test]
    fn peer_text_is_escaped_only_when_it_holds_a_control_character() {
        assert_eq!(peer_text(r#"unknown frame type "\u{1b}[2K""#), r#"unknown frame type "\u{1b}[2K""#);
        assert_eq!(peer_text("unknown field `\u{1b}[2K`"), r"unknown field `\u{1b}[2K`");
    }

    #[test]
    fn an_error_frame_is_displayed_with_its_control_characters_escaped() {
        let frame = fts_proto::ErrorFrame {
            code: fts_proto::ErrorCode::parse("x\u{1b}]0;t\u{7}"),
            message: "\u{1b}[2K\rfts poll: done".into(),
            retry_after: None,
        };
        let text = PollError::Refused(frame).to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(text, r"the server refused the poll: x\u{1b}]0;t\u{7}: \u{1b}[2K\u{d}fts poll: done");
    }
}
