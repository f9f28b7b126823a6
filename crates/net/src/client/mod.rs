//! The host side (`fts poll`): one poll at a time, each `file` frame taken through the
//! checks of PROTOCOL.md section 6 in order, and only verified bytes installed.
//!
//! - [`state`]: the durable state (since per target, installed files, pending hooks
//!   and reports), written atomically;
//! - [`receive`]: the streaming receiver, the only maker of a [`VerifiedFile`];
//! - [`partial`]: the folder beside the destination where bodies wait until verified;
//! - [`hook`]: the `--exec` hook;
//! - [`poller`]: `--once` and the loop with its intervals and backoff;
//! - [`metrics_file`]: the host's figures for node-exporter (`--metrics-file`).
//!
//! Security properties that hold here, and why:
//! - a host never installs bytes that fail a check: installing takes a
//!   [`VerifiedFile`], which only [`receive::receive_file`] builds, from a
//!   `Verified<Statement>` (which only signature verification builds) and a body whose
//!   length and SHA-256 matched it;
//! - a forged frame can never make the host skip a genuine entry: only an install, or
//!   a rule on *signed* fields (check 5), applies an entry; every other failure leaves
//!   `since` as it was, is reported, and the entry is fetched again;
//! - no received byte is written outside the destination: the only file names used
//!   are [`fts_proto::FileName`]s (one component, no leading dot) and the client's own
//!   dot-files;
//! - a crash never leaves a partial file: bodies go to a temporary file that is
//!   renamed into place only once verified and flushed;
//! - the destination holds only verified files (and the client's own dot-files): the
//!   bodies being received live in `<dest>/.fts-partial/` ([`partial`]);
//! - nobody else can redirect what the client writes or reads: the destination and
//!   the state file's folder must be owned by the user running fts and writable by
//!   no one else, and so must every folder on the way to them, or the client refuses
//!   to start ([`fts_fs::private`]); the lock, the state, the temporary files and the
//!   install are then opened, created and renamed on the folders' handles, never
//!   following a link ([`fts_fs::Dir`]).

pub mod hook;
pub mod metrics_file;
pub mod partial;
pub mod poller;
pub mod receive;
pub mod state;

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fts_fs::{Dir, FsError};
use fts_proto::{ClientId, ErrorFrame, FileHeader, RejectReason, Report, Request, ServerFrame, Target};
use fts_trust::{Statement, TrustedKeys, VerifyError};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::connection::{Connection, ReadError};
use hook::Hook;
use partial::PartialDir;
use poller::Stop;
use receive::{Progress, ReceiveError, receive_file, with_cause};
use state::{Installed, PendingHook, State, StateError};

/// Body bytes read from the connection and written to disk at a time: small enough to
/// stay in the CPU caches between decryption, hashing and the copy into the page cache
/// (1 GiB installs in 2.3 s with 64 KiB, 2.8 s with 256 KiB; docs/PERFORMANCE.md).
pub const RECEIVE_CHUNK: usize = 64 * 1024;

/// The most reports carried by one request (PROTOCOL.md section 3.1).
const REPORTS_PER_REQUEST: usize = fts_proto::MAX_REPORTS;

/// The name of the lock file that keeps two clients off one destination.
const LOCK_FILE: &str = ".fts-lock";

/// How the client reaches the server.
#[derive(Clone)]
pub enum ClientTransport {
    Tls { config: Arc<rustls::ClientConfig>, server_name: ServerName<'static> },
    Plaintext,
}

/// Everything one host needs to poll.
pub struct ClientSettings {
    /// `HOST:PORT` as given; HOST is also the name checked against the certificate.
    pub server: String,
    pub transport: ClientTransport,
    pub id: ClientId,
    /// The host's targets: its id, `all`, and `group:G` for each group of its
    /// certificate (no groups in plaintext).
    pub targets: Vec<Target>,
    pub trusted: TrustedKeys,
    pub dest: PathBuf,
    pub state_path: PathBuf,
    pub max_file_size: u64,
    /// A read that makes no progress for this long ends the poll.
    pub read_timeout: Duration,
    /// The most frames accepted in one answer.
    pub max_frames: usize,
    pub hook: Option<Hook>,
}

/// Why a poll failed as a whole (nothing about one entry): exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("cannot connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    #[error("the TLS handshake with {server} failed: {reason}")]
    Handshake { server: String, reason: String },
    #[error(
        "authentication failed: {server} refused this host's certificate ({reason}); check that it \
         was issued by the server's client CA, has not expired and was not revoked"
    )]
    Authentication { server: String, reason: String },
    #[error("the server refused the poll: {code}: {message}", code = .0.code, message = .0.message)]
    Refused(ErrorFrame),
    #[error("the server's answer breaks the protocol: {0}")]
    Protocol(String),
    #[error("the poll was cut short: {0}")]
    Interrupted(String),
    #[error("no progress for {0:?}: the poll was abandoned")]
    Timeout(Duration),
    #[error(transparent)]
    State(#[from] StateError),
    /// The destination or the state file's folder cannot be used: missing, a link
    /// where fts makes its own files, writable by others, or an I/O error.
    #[error(transparent)]
    Folder(#[from] FsError),
    #[error("{0}")]
    Local(String),
}

impl PollError {
    /// The server's `retry-after` advice, for `busy`.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            PollError::Refused(frame) => frame.retry_after,
            _ => None,
        }
    }
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
    state_dir: Arc<Dir>,
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
        std::fs::DirBuilder::new().recursive(true).mode(0o750).create(dest_path).map_err(|e| {
            PollError::Local(format!("cannot create the destination {}: {e}", dest_path.display()))
        })?;
        // Both folders are judged before anything is created in either.
        let dest = open_private_dir(dest_path)?;
        let state_dir = Arc::new(open_private_dir(state::parent_dir(&settings.state_path))?);
        let state_name = settings.state_path.file_name().map(OsString::from).ok_or_else(|| {
            PollError::Local(format!("--state {} does not name a file", settings.state_path.display()))
        })?;
        let lock = dest.open_or_create_file(LOCK_FILE, 0o600)?;
        lock.try_lock().map_err(|_| {
            PollError::Local(format!("another fts poll is already using {}", dest_path.display()))
        })?;
        let partial = PartialDir::open(&dest)?;
        let cleaned = [
            (partial.dir().path(), partial.remove_leftovers()),
            (dest.path(), state::remove_temp_files(&dest)),
            (state_dir.path(), state::remove_temp_files(&state_dir)),
        ];
        for (dir, removed) in cleaned {
            match removed {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(dir = %dir.display(), removed = n, "removed temporary files of an interrupted run")
                }
                Err(e) => {
                    return Err(PollError::Local(format!(
                        "cannot clean {}: {}",
                        dir.display(),
                        with_cause(&e)
                    )));
                }
            }
        }
        let state = match State::load_in(&state_dir, &state_name) {
            Ok(state) => state,
            Err(e) if reset_state => {
                tracing::warn!(error = %e, "--reset-state: starting from empty state");
                State::empty()
            }
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

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Runs the hooks that a previous run marked pending and did not finish.
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
            tracing::info!(file = %path.display(), "running a hook left pending by an interrupted run");
            if let Err(problem) = hook.run(&pending, &path).await {
                tracing::warn!(file = %path.display(), problem = %problem, "hook failed");
                let report = Report {
                    target: pending.target.clone(),
                    seq: pending.seq,
                    reason: RejectReason::HookFailed,
                };
                self.state.add_report(report.clone());
                reported.push(report);
            }
            self.state.hooks_pending.remove(0);
            self.save()?;
        }
        Ok(reported)
    }

    fn save(&self) -> Result<(), PollError> {
        Ok(self.state.save_in(&self.state_dir, &self.state_name)?)
    }

    /// One poll: connect, send the request, take each frame through the checks, and
    /// close. Hooks of the files installed run after the connection is closed.
    pub async fn poll_once(&mut self, progress: &mut dyn Progress) -> Result<PollOutcome, PollError> {
        let timeout = self.settings.read_timeout;
        let server = self.settings.server.clone();
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(&server))
            .await
            .map_err(|_| PollError::Connect {
                server: server.clone(),
                reason: format!("no answer within {timeout:?}"),
            })?
            .map_err(|e| PollError::Connect { server: server.clone(), reason: e.to_string() })?;
        let _ = tcp.set_nodelay(true);
        let outcome = match self.settings.transport.clone() {
            ClientTransport::Plaintext => self.exchange(Connection::new(tcp), progress).await,
            ClientTransport::Tls { config, server_name } => {
                let tls = tokio::time::timeout(timeout, TlsConnector::from(config).connect(server_name, tcp))
                    .await
                    .map_err(|_| PollError::Handshake {
                        server: server.clone(),
                        reason: format!("no progress for {timeout:?}"),
                    })?
                    .map_err(|e| handshake_error(&server, e))?;
                // The config (and its session store) is shared by every poll of this
                // client, so polls after the first resume their TLS session.
                let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
                tracing::debug!(resumed, "tls session established");
                self.exchange(Connection::new(tls), progress).await
            }
        };
        let mut outcome = outcome?;
        // Hooks run once the connection is closed, so a slow hook never holds the
        // server's connection; their pending marks are already on disk.
        outcome.reported.extend(self.run_pending_hooks().await?);
        Ok(outcome)
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
        self.exchange(Connection::new(stream), progress).await
    }

    async fn exchange<S>(
        &mut self,
        mut conn: Connection<S>,
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
        conn.send_request(&request).await.map_err(|e| self.io_error(e, true))?;

        let mut outcome = PollOutcome::default();
        let result = self.read_answer(&mut conn, &carried, &mut outcome, progress).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
        result.map(|()| outcome)
    }

    /// Reads frames until `done`, an error, or a reason to stop; applies what passes.
    async fn read_answer<S>(
        &mut self,
        conn: &mut Connection<S>,
        carried: &[Report],
        outcome: &mut PollOutcome,
        progress: &mut dyn Progress,
    ) -> Result<(), PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let timeout = self.settings.read_timeout;
        for frame_number in 0..self.settings.max_frames {
            let first = frame_number == 0;
            if !first && self.stop.is_requested() {
                tracing::info!("stop requested: closing the answer between two files");
                return Ok(());
            }
            let frame = match tokio::time::timeout(timeout, conn.read_server_frame()).await {
                Err(_) => return Err(PollError::Timeout(timeout)),
                Ok(Ok(frame)) => frame,
                Ok(Err(ReadError::Proto(e))) => {
                    if first {
                        self.answered(carried)?;
                    }
                    // Check 1: a bad header that names its entry is reported; one that
                    // cannot be tied to an entry fails the poll.
                    return match e.report() {
                        Some(report) => {
                            tracing::warn!(problem = %e, "refused an entry");
                            self.report(outcome, report)
                        }
                        None => Err(PollError::Protocol(e.to_string())),
                    };
                }
                Ok(Err(ReadError::Closed)) if first => {
                    return Err(PollError::Authentication {
                        server: self.settings.server.clone(),
                        reason: "it closed the connection right after the handshake without answering".into(),
                    });
                }
                Ok(Err(ReadError::Closed)) => {
                    return Err(PollError::Interrupted(
                        "the server closed the connection before `done`".into(),
                    ));
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
                    if !self.take_file(conn, header, outcome, progress).await? {
                        return Ok(());
                    }
                }
            }
        }
        Err(PollError::Protocol(format!("more than {} frames in one answer", self.settings.max_frames)))
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
            tracing::warn!(error = %e, "cannot record that the server has the reports: they will be sent again");
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
            tracing::warn!(error = %e, "cannot save the report of a local failure: it is kept in memory only");
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
        progress: &mut dyn Progress,
    ) -> Result<bool, PollError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let target = header.target.clone();
        let seq = header.seq;
        let refuse = |reason: RejectReason| Report { target: target.clone(), seq, reason };

        // Check 2: one of this host's targets.
        if !self.settings.targets.contains(&target) {
            tracing::warn!(%target, seq, "refused an entry for a target that is not this host's");
            self.report(outcome, refuse(RejectReason::WrongTarget))?;
            return Ok(false);
        }
        // Check 3: the next in sequence.
        let expected = self.state.since(&target) + 1;
        if seq != expected {
            let reason = if seq < expected { RejectReason::Replay } else { RejectReason::Gap };
            tracing::warn!(%target, seq, expected, %reason, "refused an entry out of sequence");
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
                tracing::warn!(%target, seq, problem = %e, "refused an entry whose signature does not verify");
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
            tracing::warn!(%target, seq, file = %verified.file_name, %reason, "applied an entry without installing it");
            self.state.since.insert(target.clone(), seq);
            outcome.repeat_now = true;
            self.report(outcome, refuse(reason))?;
            return Ok(false);
        }
        if installed.as_ref().is_some_and(|old| old.file_hash == verified.file_hash) {
            tracing::info!(%target, seq, file = %verified.file_name, "already installed with this content");
            self.state.since.insert(target.clone(), seq);
            self.state.installed.insert(verified.file_name.clone(), installed_record(&verified));
            outcome.repeat_now = true;
            self.save()?;
            return Ok(false);
        }

        // Check 6: the body, streamed, counted and hashed.
        let file =
            match receive_file(conn, verified, &self.partial, self.settings.read_timeout, progress).await {
                Ok(file) => file,
                Err(e @ ReceiveError::HashMismatch { .. }) => {
                    tracing::warn!(%target, seq, problem = %e, "refused a body that is not what was signed");
                    self.report(outcome, refuse(RejectReason::HashMismatch))?;
                    return Ok(false);
                }
                Err(e @ ReceiveError::Local { .. }) => {
                    tracing::error!(%target, seq, problem = %e, "cannot store a file");
                    self.report_local_failure(outcome, refuse(RejectReason::InstallFailed))?;
                    return Ok(false);
                }
                Err(e @ ReceiveError::Truncated { .. }) => return Err(PollError::Interrupted(e.to_string())),
                Err(ReceiveError::Timeout) => return Err(PollError::Timeout(self.settings.read_timeout)),
            };

        // Check 7: install, then apply with the hook mark, in one atomic state write.
        let statement: Statement = file.statement().clone();
        let path = match file.install(&self.dest) {
            Ok(path) => path,
            Err(e) => {
                tracing::error!(%target, seq, problem = %with_cause(&e), "cannot install a verified file");
                self.report_local_failure(outcome, refuse(RejectReason::InstallFailed))?;
                return Ok(false);
            }
        };
        self.state.since.insert(target.clone(), seq);
        self.state.installed.insert(statement.file_name.clone(), installed_record(&statement));
        if self.settings.hook.is_some() {
            self.state.hooks_pending.push(PendingHook {
                file_name: statement.file_name.clone(),
                target: target.clone(),
                seq,
                published: statement.published.clone(),
                file_hash: statement.file_hash,
            });
        }
        self.save()?;
        tracing::info!(%target, seq, file = %path.display(), size = statement.file_size, hash = %statement.file_hash, "installed");
        outcome.installed.push(path);
        Ok(true)
    }

    /// Names an I/O failure: at the first read after the handshake, a TLS alert is the
    /// server refusing this host's certificate (TLS 1.3 reports it only then).
    fn io_error(&self, e: io::Error, first_read: bool) -> PollError {
        let server = self.settings.server.clone();
        let alert =
            e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).and_then(|tls| match tls {
                rustls::Error::AlertReceived(alert) => Some(format!("TLS alert {alert:?}")),
                _ => None,
            });
        match alert {
            Some(reason) if first_read => PollError::Authentication { server, reason },
            Some(reason) => PollError::Interrupted(reason),
            None if first_read && e.kind() == io::ErrorKind::ConnectionReset => PollError::Authentication {
                server,
                reason: "it reset the connection right after the handshake".into(),
            },
            None => PollError::Interrupted(e.to_string()),
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

fn installed_record(statement: &Statement) -> Installed {
    Installed {
        target: statement.target.clone(),
        seq: statement.seq,
        published: statement.published.clone(),
        file_hash: statement.file_hash,
    }
}

fn handshake_error(server: &str, e: io::Error) -> PollError {
    let reason = e.to_string();
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::AlertReceived(alert)) => PollError::Authentication {
            server: server.to_owned(),
            reason: format!("TLS alert {alert:?} during the handshake"),
        },
        Some(rustls::Error::InvalidCertificate(problem)) => PollError::Handshake {
            server: server.to_owned(),
            reason: format!("its certificate is not valid for this name and CA: {problem:?}"),
        },
        _ => PollError::Handshake { server: server.to_owned(), reason },
    }
}
