//! The host side (`fts poll`): one poll at a time, each `file` frame taken through the
//! checks of PROTOCOL.md section 6 in order, and only verified bytes installed.
//!
//! - [`state`]: the durable state (since per target, installed files, pending hooks
//!   and reports), written atomically;
//! - [`receive`]: the streaming receiver, the only maker of a [`VerifiedFile`](receive::VerifiedFile);
//! - [`partial`]: the folder beside the destination where bodies wait until verified;
//! - [`hook`]: the `--exec` hook;
//! - [`poller`]: `--once` and the loop with its intervals and backoff;
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
//!   `since` as it was, is reported, and the entry is fetched again;
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
pub mod hook;
pub mod metrics_file;
pub mod partial;
pub mod poller;
pub mod rate;
pub mod receive;
pub mod state;
pub mod tls_words;

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
    ClientId, ErrorChain, FileHeader, Published, RejectReason, Report, Request, Seq, ServerFrame, Target,
};
use fts_trust::{TrustedKeys, VerifyError};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::connection::{Connection, ReadError};
use crate::error::peer_text;
pub use crate::error::{Interruption, PollError, ProtocolBreach, TlsProblem, TransportError};
use deadline::{Cut, PollClock};
use hook::Hook;
use partial::PartialDir;
use poller::Stop;
use receive::{Progress, ReceiveError, receive_file};
use state::{CertificateRefused, Installed, PendingHook, State, StateError};

/// The most reports carried by one request (PROTOCOL.md section 3.1).
const REPORTS_PER_REQUEST: usize = fts_proto::MAX_REPORTS;

/// The name of the lock file that keeps two clients off one destination.
const LOCK_FILE: &str = ".fts-lock";

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
    /// `--max-rate`: the most body bytes per second this host receives ([`rate`]);
    /// `None`, as fast as they come.
    pub max_rate: Option<u64>,
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
    _lock: File,
    /// A stop request (SIGTERM) ends an answer between files, never inside one.
    stop: Arc<Stop>,
}

impl Client {
    /// Checks that the destination and the state file's folder are private to this
    /// user, takes the destination's lock, removes temporary files a killed client
    /// left, and loads the state (an unreadable state is an error unless
    /// `reset_state`).
    pub fn open(settings: ClientSettings, reset_state: bool) -> Result<Client, PollError> {
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
        let state = match State::load_in(&state_dir, &state_name) {
            Ok(state) => state,
            // Only damaged content is reset: a file that cannot be read at all (EACCES,
            // EIO) may be intact, and a reset would refetch everything and re-run
            // every hook.
            Err(e @ StateError::Corrupt { .. }) if reset_state => {
                tracing::warn!(error = %ErrorChain(&e), "--reset-state: starting from empty state");
                State::empty()
            }
            Err(e @ StateError::Read { .. }) if reset_state => return Err(PollError::ResetRefused(e)),
            Err(e) => return Err(e.into()),
        };
        Ok(Client {
            settings,
            state,
            dest,
            partial,
            state_dir,
            state_name,
            _lock: lock,
            stop: Arc::default(),
        })
    }

    /// Lets `stop` end an answer between two files (the rest comes at the next run).
    pub fn stop_with(&mut self, stop: Arc<Stop>) {
        self.stop = stop;
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The state as last loaded or saved.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Runs the hooks marked pending: after a poll, those of the files it installed;
    /// at the start of a round, those a previous run did not finish.
    pub async fn run_pending_hooks(&mut self) -> Result<Vec<Report>, PollError> {
        let mut reported = Vec::new();
        let Some(hook) = self.settings.hook.clone() else {
            if !self.state.hooks_pending.is_empty() {
                tracing::warn!(
                    pending = self.state.hooks_pending.len(),
                    "hooks were pending but no --exec is set: dropping them"
                );
                self.state.hooks_pending.clear();
                self.save()?;
            }
            return Ok(reported);
        };
        while let Some(pending) = self.state.hooks_pending.first().cloned() {
            let path = self.settings.dest.join(pending.file_name.as_str());
            // A state written before hooks were coalesced ([`mark_hook_pending`]) may
            // hold an older hook for a name that a later one replaced: it would run
            // with a stale hash.
            let superseded = self.state.hooks_pending[1..].iter().any(|p| p.file_name == pending.file_name);
            if superseded {
                tracing::info!(file = %path.display(), seq = pending.seq.get(), "skipping a hook for a version that a newer install replaced");
            } else {
                tracing::info!(file = %path.display(), seq = pending.seq.get(), "running the hook");
                if let Err(e) = hook.run(&pending, &path).await {
                    tracing::warn!(file = %path.display(), error = %ErrorChain(&e), "hook failed");
                    let report = Report {
                        target: pending.target.clone(),
                        seq: pending.seq.get(),
                        reason: RejectReason::HookFailed,
                    };
                    self.state.add_report(report.clone());
                    reported.push(report);
                }
            }
            self.state.hooks_pending.remove(0);
            self.save()?;
        }
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
        let result = match self.connect_and_exchange(&clock, progress).await {
            (Err(e @ PollError::NoAnswer { .. }), Handshake::Resumed) => {
                tracing::info!(
                    problem = %ErrorChain(&e),
                    "the server closed a resumed TLS session without answering: trying once more at once \
                     with a full handshake"
                );
                self.forget_tls_sessions();
                self.connect_and_exchange(&clock, progress).await.0
            }
            (result, _) => result,
        };
        self.note_certificate_refusal(&result);
        // Hooks run once the connection is closed, so a slow hook never holds the
        // server's connection; their pending marks are already on disk. They run even
        // when the poll failed later on: the files they are for were installed.
        let hooks = self.run_pending_hooks().await;
        let mut outcome = result?;
        outcome.reported.extend(hooks?);
        Ok(outcome)
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
        let server = self.settings.server.clone();
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
        let carried: Vec<Report> = self.state.reports.iter().take(REPORTS_PER_REQUEST).cloned().collect();
        request.rejected = carried.clone();
        match tokio::time::timeout(clock.read_timeout(), conn.send_request(&request)).await {
            Err(_) => return Err(PollError::Timeout(clock.read_timeout())),
            Ok(Err(e)) => return Err(self.io_error(e, true)),
            Ok(Ok(())) => {}
        }

        let mut outcome = PollOutcome::default();
        let result = self.read_answer(&mut conn, &carried, &mut outcome, clock, progress).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
        result.map(|()| outcome)
    }

    /// Reads frames until `done`, an error, or a reason to stop; applies what passes.
    async fn read_answer<S>(
        &mut self,
        conn: &mut Connection<S>,
        carried: &[Report],
        outcome: &mut PollOutcome,
        clock: &PollClock,
        progress: &mut dyn Progress,
    ) -> Result<(), PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
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
                            self.report(outcome, report)
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
            match frame {
                ServerFrame::Error(error) => return Err(PollError::Refused(error)),
                ServerFrame::Done(done) => {
                    if first {
                        self.answered(carried)?;
                    }
                    outcome.more = done.more;
                    outcome.poll_after = Some(done.poll_after);
                    return Ok(());
                }
                ServerFrame::File(header) => {
                    if first {
                        self.answered(carried)?;
                    }
                    if !self.take_file(conn, header, outcome, clock, progress).await? {
                        return Ok(());
                    }
                }
            }
        }
        Err(PollError::Protocol(ProtocolBreach::TooManyFrames(self.settings.max_frames)))
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
        PollError::NoAnswer { server: self.settings.server.clone(), reset, tls }
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

    /// Queues `report`, saves the state, and ends the answer (`Ok`): the entry is not
    /// applied and will be fetched again.
    fn report(&mut self, outcome: &mut PollOutcome, report: Report) -> Result<(), PollError> {
        self.state.add_report(report.clone());
        outcome.reported.push(report);
        self.save()
    }

    /// Like [`Client::report`], for a local failure (disk full, I/O) that applied
    /// nothing: the report stands even if the state cannot be saved, since a full disk
    /// usually refuses the state write too. The state on disk then lacks only this
    /// report (it still holds everything applied); the report stays queued in memory.
    fn report_local_failure(&mut self, outcome: &mut PollOutcome, report: Report) -> Result<(), PollError> {
        self.state.add_report(report.clone());
        outcome.reported.push(report);
        if let Err(e) = self.save() {
            tracing::warn!(error = %ErrorChain(&e), "cannot save the report of a local failure: it is kept in memory only");
        }
        Ok(())
    }

    /// Checks 2 to 7 for one `file` frame. `Ok(true)`: go on to the next frame;
    /// `Ok(false)`: the answer ends here (a refusal, or a rule of check 5).
    async fn take_file<S>(
        &mut self,
        conn: &mut Connection<S>,
        header: FileHeader,
        outcome: &mut PollOutcome,
        clock: &PollClock,
        progress: &mut dyn Progress,
    ) -> Result<bool, PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let target = header.target.clone();
        let seq = header.seq;
        let refuse = |reason: RejectReason| Report { target: target.clone(), seq: seq.get(), reason };

        // Check 2: one of this host's targets.
        if !self.settings.targets.contains(&target) {
            tracing::warn!(%target, seq = seq.get(), "refused an entry for a target that is not this host's");
            self.report(outcome, refuse(RejectReason::WrongTarget))?;
            return Ok(false);
        }
        // Check 3: the next in sequence.
        let since = self.state.since(&target);
        if Seq::after(since) != Some(seq) {
            let reason = if seq.get() <= since { RejectReason::Replay } else { RejectReason::Gap };
            let expected = since.saturating_add(1);
            tracing::warn!(%target, seq = seq.get(), expected, %reason, "refused an entry out of sequence");
            self.report(outcome, refuse(reason))?;
            return Ok(false);
        }
        // Check 4: signed by a trusted key.
        let verified = match self.settings.trusted.verify(
            header.statement(),
            &header.key_id,
            &header.signature,
        ) {
            Ok(verified) => verified,
            Err(e) => {
                let reason = match e {
                    VerifyError::UntrustedKey { .. } => RejectReason::UntrustedKey,
                    VerifyError::BadSignature { .. } => RejectReason::Signature,
                };
                tracing::warn!(%target, seq = seq.get(), problem = %ErrorChain(&e), "refused an entry whose signature does not verify");
                self.report(outcome, refuse(reason))?;
                return Ok(false);
            }
        };

        // Check 5: rules on signed fields, which apply the entry without installing it.
        let installed = self.state.installed.get(&verified.file_name).cloned();
        let rule = match &installed {
            Some(old) if old.published > verified.published => Some(RejectReason::Superseded),
            _ if verified.file_size > self.settings.max_file_size => Some(RejectReason::TooLarge),
            _ => None,
        };
        if let Some(reason) = rule {
            tracing::warn!(%target, seq = seq.get(), file = %verified.file_name, %reason, "applied an entry without installing it");
            self.state.applied(&target, seq);
            outcome.repeat_now = true;
            self.report(outcome, refuse(reason))?;
            return Ok(false);
        }
        if installed.as_ref().is_some_and(|old| old.file_hash == verified.file_hash) {
            tracing::info!(%target, seq = seq.get(), file = %verified.file_name, "already installed with this content");
            self.state.applied(&target, seq);
            self.state.installed.insert(verified.file_name.clone(), installed_record(&verified, &header));
            outcome.repeat_now = true;
            self.save()?;
            return Ok(false);
        }

        // Check 6: the body, streamed, counted and hashed.
        let file = match receive_file(conn, verified, &self.partial, clock, progress).await {
            Ok(file) => file,
            Err(e @ ReceiveError::HashMismatch { .. }) => {
                tracing::warn!(%target, seq = seq.get(), problem = %ErrorChain(&e), "refused a body that is not what was signed");
                self.report(outcome, refuse(RejectReason::HashMismatch))?;
                return Ok(false);
            }
            Err(e @ ReceiveError::Local { .. }) => {
                tracing::error!(%target, seq = seq.get(), problem = %ErrorChain(&e), "cannot store a file");
                self.report_local_failure(outcome, refuse(RejectReason::InstallFailed))?;
                return Ok(false);
            }
            Err(e @ ReceiveError::Truncated { .. }) => {
                return Err(PollError::Interrupted(Interruption::Body(e)));
            }
            Err(ReceiveError::Timeout) => return Err(PollError::Timeout(self.settings.read_timeout)),
            Err(ReceiveError::BelowMinimumRate { received, expected }) => {
                let limit = self.settings.poll_timeout;
                tracing::warn!(%target, seq = seq.get(), received, expected, "--poll-timeout passed and the file arrives below the minimum rate: abandoning it");
                return Err(PollError::BelowMinimumRate { limit, received, expected });
            }
        };

        // Check 7: install, then apply with the hook mark, in one atomic state write.
        let statement: Statement = file.statement().clone();
        let path = match file.install(&self.dest) {
            Ok(path) => path,
            Err(e) => {
                tracing::error!(%target, seq = seq.get(), problem = %ErrorChain(&e), "cannot install a verified file");
                self.report_local_failure(outcome, refuse(RejectReason::InstallFailed))?;
                return Ok(false);
            }
        };
        self.state.applied(&target, seq);
        self.state.installed.insert(statement.file_name.clone(), installed_record(&statement, &header));
        if self.settings.hook.is_some() {
            mark_hook_pending(
                &mut self.state.hooks_pending,
                PendingHook {
                    file_name: statement.file_name.clone(),
                    target: target.clone(),
                    seq,
                    published: statement.published.clone(),
                    file_hash: statement.file_hash,
                },
            );
        }
        self.save()?;
        tracing::info!(%target, seq = seq.get(), file = %path.display(), size = statement.file_size, hash = %statement.file_hash, "installed");
        outcome.installed.push(path);
        Ok(true)
    }

    /// Names an I/O failure. At the first read after the handshake, a TLS alert is the
    /// server refusing this host's certificate (TLS 1.3 reports it only then), and an
    /// end of the connection is a server that did not answer.
    fn io_error(&self, e: io::Error, first_read: bool) -> PollError {
        let server = self.settings.server.clone();
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

fn unix_now() -> u64 {
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
        PendingHook {
            file_name: fts_proto::FileName::parse(name).unwrap(),
            target: Target::All,
            seq: Seq::new(seq).unwrap(),
            published: fts_proto::Published::from_unix_seconds(1_800_000_000 + seq),
            file_hash: fts_proto::FileHash::from_digest([byte; 32]),
        }
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
