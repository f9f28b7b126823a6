//! The server: accept, handshake, check the session, read one request, answer it from
//! the store, close. PROTOCOL.md sections 1 to 3 are the contract.
//!
//! Each connection is its own task, so a slow or idle client never delays another:
//! every phase has its own bound (first-byte timeout, handshake timeout, request
//! timeout, the minimum send rate per write, an overall deadline per poll), and
//! before its handshake a connection also counts against its source's limits
//! ([`crate::admission`]). With `--max-send-rate` every body chunk also waits its turn
//! in one shared bucket, and an answer with files to send is admitted only while its
//! transfer fits ([`crate::egress`]). Memory per connection is the
//! TLS state, one request header (at most 16 KiB) and, while a body is sent,
//! `BLOB_BUFFERS` buffers of [`BODY_CHUNK`] bytes; bodies stream from their blob and are never held
//! whole.
//!
//! Nothing blocks an async worker: the store is read from an immutable snapshot
//! ([`crate::store_view`], refreshed on a blocking thread), the blob checks of one
//! answer run in one blocking task, each blob is opened and read on the blocking
//! thread that streams it, and status files are written on blocking threads.
//!
//! Security properties that hold here, and why:
//! - the server never holds a signing key: it forwards the signature made at publish
//!   time, so nothing it does can make a host install unsigned bytes;
//! - a client can never act as another: under TLS the targets come from the session's
//!   certificate ([`fts_trust::ClientAuth::check_session`], run after every handshake,
//!   resumed or not, before a byte of the request is read, and
//!   [`ClientIdentity::targets`]), and a request naming another id gets
//!   `identity-mismatch`;
//! - the store is only read: entries and blobs come through [`StoreReader`], and the
//!   only thing written is delivery status, in its own folder.
//!
//! [`Server::run`] serves a listener until its shutdown future completes;
//! [`Server::serve_connection`] serves one stream that is already connected (any
//! `AsyncRead + AsyncWrite`, past accept and admission), which is how tests drive the
//! server over an in-memory pipe on paused time.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fts_proto::{
    ClientId, ClientRequest, Done, ErrorChain, ErrorCode, ErrorFrame, FileHeader, LogHash, ProtoError,
    ReceiptRequest, ReceiptsStored, Report, Request, ServerFrame, SupersededFrame, Target, Withdrawal,
    WithdrawnFrame,
};
use fts_status::{CertificateSeen, PollClaims, StatusBackend};
use fts_store::served_log::ServedLog;
use fts_store::{
    Answer, Entry, Outgoing, Sending, ServeRules, StoreError, StoreReader, StoreSnapshot, WithdrawalEntry,
};
use fts_trust::{ClientAuth, ClientIdentity};

use crate::receipt_intake::{RECEIPTS_PER_MINUTE, ReceiptIntake, ReceiptSender, Refused};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;

use crate::admission::{Admission, AdmissionSettings, BeforeHandshake, ConnectionSlots};
use crate::connection::{Connection, ReadError};
use crate::crl_watch::CrlHealth;
use crate::egress::{Egress, TransferPermit};
use crate::error::{IdentityMismatch, PollEnd};
use crate::handshake_log::{FailedBefore, HandshakeLog, classify_handshake_error, describe_handshake_error};
use crate::limits::{Busy, PollLimits};
use crate::metrics::{ConnectionGuard, HandshakeFailure, Metrics};
use crate::pacing::{MinSendRate, Pacer};
use crate::store_view::StoreView;

/// Body bytes read from a blob and written to the client at a time: the stream chunk
/// of fts-fs ([`fts_fs::stream`]). 64 KiB x 4 costs the same CPU per GiB as 256 KiB x 2
/// (measured, within noise) and half the memory per file being sent: 256 KiB, so 500
/// MiB at the default 2,000 active polls.
pub const BODY_CHUNK: usize = fts_fs::stream::CHUNK;

/// Buffers of [`BODY_CHUNK`] bytes in flight between a blob and its connection.
const BLOB_BUFFERS: usize = 4;

/// How long the server keeps reading (and discarding) input after `header-too-large`,
/// so that its error frame is not lost to a connection reset.
const DRAIN_AFTER_ERROR: Duration = Duration::from_secs(1);

/// How long closing a connection (TLS close_notify) may take.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The `retry-after` sent with `busy`.
const BUSY_RETRY_AFTER_SECS: u64 = 30;

/// Everything `fts serve` can tune. Defaults are those of docs/OPERATIONS.md.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Most connections open at once; those before their handshake get at most 90 %
    /// of it (see `admission`).
    pub max_connections: NonZeroUsize,
    /// Most polls answered at once (past their request), server-wide.
    pub max_active_polls: NonZeroUsize,
    /// Most polls answered at once for one client id.
    pub max_polls_per_client: NonZeroUsize,
    /// How long a connection may take from accept to the end of its TLS handshake.
    pub handshake_timeout: Duration,
    /// How long the request may take to arrive after the handshake.
    pub request_timeout: Duration,
    /// The slowest a client may read the answer ([`crate::pacing`]).
    pub min_send_rate: MinSendRate,
    /// `--max-send-rate`: the most body bytes per second sent in all, across every
    /// connection ([`crate::egress`]); `None`, no cap.
    pub max_send_rate: Option<u64>,
    /// The longest one poll may take, from the end of the handshake.
    pub poll_deadline: Duration,
    /// Most files in one answer (one is always sent, whatever its size).
    pub poll_max_files: NonZeroUsize,
    /// Most body bytes in one answer (one file is always sent, whatever its size).
    pub poll_max_bytes: u64,
    /// The `poll-after` advice of every `done` frame.
    pub poll_after: Duration,
    /// How long transfers in flight may take to finish after shutdown begins.
    pub grace: Duration,
    /// How often the last poll times of polls that changed nothing else are written
    /// to the status folder (also written when the server stops).
    pub status_flush_interval: Duration,
    /// How often the fleet gauges of `/metrics` are computed from the status
    /// (`fts_release_hosts` ...); `None`: never (no `/metrics`).
    pub fleet_metrics_interval: Option<Duration>,
    /// What a source may hold before its handshake, and who is a trusted proxy.
    pub admission: AdmissionSettings,
    /// `--crl-max-stale`: once the changed CRL has failed to load for longer than
    /// this, polls are refused (`None`: keep serving with the CRL in force).
    pub crl_max_stale: Option<Duration>,
    /// Whether the CRL file is the one in force (written by the CRL watcher).
    pub crl_health: Arc<CrlHealth>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        let non_zero = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        ServerSettings {
            max_connections: non_zero(10_000),
            max_active_polls: non_zero(2_000),
            max_polls_per_client: non_zero(2),
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            min_send_rate: MinSendRate { bytes_per_second: 16 * 1024, window: Duration::from_secs(60) },
            max_send_rate: None,
            poll_deadline: Duration::from_secs(6 * 3600),
            poll_max_files: non_zero(100),
            poll_max_bytes: 64 << 30,
            poll_after: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            status_flush_interval: Duration::from_secs(5),
            fleet_metrics_interval: None,
            admission: AdmissionSettings::default(),
            crl_max_stale: None,
            crl_health: CrlHealth::new(),
        }
    }
}

/// How connections are secured.
#[derive(Clone)]
pub enum Transport {
    /// Mutual TLS: the acceptor's config must use `client_auth` as its client
    /// certificate verifier (as [`fts_trust::server_config`] builds it).
    Tls {
        /// The server's TLS configuration.
        acceptor: TlsAcceptor,
        /// The client certificate check (and its CRLs) the configuration uses.
        client_auth: Arc<ClientAuth>,
    },
    /// No TLS (PROTOCOL.md section 1): the id is only claimed, so only that id and
    /// `all` are served and the client's status is marked unauthenticated.
    Plaintext,
}

/// How one connection ended: what [`Server::serve_connection`] returns, and what the
/// log line and the metrics of the connection say.
#[derive(Debug)]
pub enum ConnectionEnd {
    /// It failed before a request: the handshake failed or timed out, or the session
    /// was refused (counted in the summary of connections that failed before a
    /// request).
    BeforeRequest(FailedBefore),
    /// `--crl-max-stale`: refused with `internal`, because the changed CRL has failed
    /// to load for too long.
    CrlStale,
    /// A poll was answered, completely or not.
    Poll(PollReport),
}

impl ConnectionEnd {
    /// How the poll ended, when the connection got as far as one.
    pub fn poll_end(&self) -> Option<&PollEnd> {
        match self {
            ConnectionEnd::Poll(report) => Some(&report.end),
            _ => None,
        }
    }
}

/// One poll, as its log line says it.
#[derive(Debug)]
pub struct PollReport {
    /// Whose poll it was, once the request (or the certificate) said.
    pub client: Option<ClientId>,
    /// Files sent whole.
    pub files: u64,
    /// The body bytes of the files sent whole.
    pub bytes: u64,
    /// A `receipt` request, not a poll: how many receipts it carried.
    pub receipts: Option<usize>,
    /// How the poll ended.
    pub end: PollEnd,
}

/// The state every connection task shares.
struct Shared {
    transport: Transport,
    settings: ServerSettings,
    /// Where the server counts what it does (`--metrics-listen` serves it).
    metrics: Arc<Metrics>,
    /// The checks before TLS: per-source limits, the first byte, PROXY headers.
    admission: Admission,
    limits: PollLimits,
    /// `--max-send-rate`: the shared cap on body bytes and its admission of transfers.
    egress: Option<Arc<Egress>>,
    /// The store as polls read it: a snapshot, kept current by one refresher on a
    /// blocking thread.
    store: StoreView,
    /// Unchanged polls are noted in memory on the connection's task; everything that
    /// writes a file runs on a blocking thread.
    status: Arc<dyn StatusBackend>,
    /// Host receipts: checked, stored durably in batches, then acknowledged.
    receipts: ReceiptIntake,
    /// Connections that failed before a request: debug lines and a summary.
    handshake_log: HandshakeLog,
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds `addr`. The store is opened by the caller (read-only) and the status
    /// folder created by the caller; `metrics` is where the server counts (it may be
    /// shared with a `/metrics` endpoint and the CRL watcher). Looks at the store
    /// run on the current runtime's blocking threads.
    pub async fn bind(
        addr: SocketAddr,
        transport: Transport,
        settings: ServerSettings,
        store: StoreReader,
        status: Arc<dyn StatusBackend>,
        metrics: Arc<Metrics>,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let limits = PollLimits::new(settings.max_active_polls.get(), settings.max_polls_per_client.get());
        let admission = Admission::new(settings.admission.clone(), settings.max_connections.get());
        let egress =
            settings.max_send_rate.map(|max| Egress::new(max, settings.min_send_rate.bytes_per_second));
        metrics.set_max_send_rate(settings.max_send_rate);
        if let Some(log) = store.snapshot().log() {
            metrics.set_log(log.size(), log.newest_cosignature);
        }
        let shared = Arc::new(Shared {
            transport,
            settings,
            metrics: Arc::clone(&metrics),
            admission,
            limits,
            egress,
            store: StoreView::start(store),
            receipts: ReceiptIntake::start(Arc::clone(&status), Arc::clone(&metrics)),
            status,
            handshake_log: HandshakeLog::default(),
        });
        Ok(Server { listener, shared })
    }

    /// The address the server listens on (its port, when it was bound to port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The store as the server serves it now (for tests and diagnostics).
    pub fn store_snapshot(&self) -> Arc<StoreSnapshot> {
        self.shared.store.last()
    }

    /// Serves one connection that is already accepted, from `peer` (the address its
    /// log lines and status name): the TLS handshake (unless plaintext), the session
    /// check, the request and the answer, with every timeout of a connection that
    /// came through [`run`](Server::run), from now. It skips only accept and the
    /// admission checks before TLS (connection slots, per-source limits, the first
    /// byte, PROXY headers). Logs and counts the connection like `run` does.
    pub async fn serve_connection<S>(&self, stream: S, peer: SocketAddr) -> ConnectionEnd
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let _open = self.shared.metrics.connection_opened();
        let handshake_deadline = Instant::now() + self.shared.settings.handshake_timeout;
        serve_stream(&self.shared, stream, peer, None, None, handshake_deadline).await
    }

    /// Serves until `shutdown` completes, then stops accepting, lets connections in
    /// flight finish within the grace period, and drops the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let slots = ConnectionSlots::new(self.shared.settings.max_connections.get());
        let flusher = tokio::spawn(flush_last_polls_every(
            Arc::clone(&self.shared.status),
            self.shared.settings.status_flush_interval,
            Arc::clone(&self.shared.metrics),
        ));
        let fleet_gauges = self.shared.settings.fleet_metrics_interval.map(|every| {
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                let snapshot = || shared.store.last();
                crate::fleet_metrics::update_every(&shared.status, snapshot, &shared.metrics, every).await;
            })
        });
        let mut tasks = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            // The slot in all is taken before accept: at the limit, new connections wait
            // in the kernel's backlog instead of costing memory here.
            let (early, permit) = tokio::select! {
                () = &mut shutdown => break,
                permits = slots.acquire() => match permits {
                    Some(permits) => permits,
                    None => break,
                },
            };
            let (tcp, peer) = tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %ErrorChain(&e), "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let accepted = Instant::now();
            while tasks.try_join_next().is_some() {}
            // Over its limits, a source's connection is closed here, before it costs a
            // task (counted and logged at a bounded rate inside).
            let Ok(early) = self.shared.admission.at_accept(peer, early, &self.shared.metrics) else {
                continue;
            };
            let shared = Arc::clone(&self.shared);
            let open = shared.metrics.connection_opened();
            tasks.spawn(async move {
                handle_connection(&shared, tcp, peer, early, accepted).await;
                drop(open);
                drop(permit);
            });
        }

        drop(self.listener);
        let in_flight = tasks.len();
        if in_flight > 0 {
            tracing::info!(connections = in_flight, grace = ?self.shared.settings.grace, "stopping: letting transfers in flight finish");
        }
        let drained =
            timeout(self.shared.settings.grace, async { while tasks.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(connections = tasks.len(), "grace period over: closing the remaining connections");
            tasks.shutdown().await;
        }
        flusher.abort();
        if let Some(task) = fleet_gauges {
            task.abort();
        }
        flush_last_polls(Arc::clone(&self.shared.status)).await;
        tracing::info!("server stopped");
    }
}

/// Serves one TCP connection from `tcp_peer`, accepted at `accepted`: the admission
/// checks before TLS, then [`serve_stream`]. `early` holds its slots before the
/// handshake, given back as soon as the handshake is over.
async fn handle_connection(
    shared: &Shared,
    mut tcp: TcpStream,
    tcp_peer: SocketAddr,
    mut early: BeforeHandshake,
    accepted: Instant,
) {
    let _ = tcp.set_nodelay(true);
    // Everything before the session, PROXY header and first byte included, fits in
    // the handshake timeout; the first byte must come sooner.
    let handshake_deadline = accepted + shared.settings.handshake_timeout;
    let first_byte_deadline =
        handshake_deadline.min(accepted + shared.admission.settings().first_byte_timeout);
    let opened =
        shared.admission.open(&mut tcp, tcp_peer, &mut early, first_byte_deadline, &shared.metrics).await;
    // From here on the peer is the client a trusted proxy named, if it named one: in
    // logs, limits and status alike.
    let peer = match opened {
        Ok(opened) => {
            if let Some(via) = opened.via {
                tracing::debug!(peer = %opened.client, %via, "connection through a trusted proxy");
            }
            opened.client
        }
        Err(_) => return, // counted and logged by the admission checks
    };
    serve_stream(shared, tcp, peer, Some(early), Some(tcp_peer), handshake_deadline).await;
}

/// Everything after admission: the handshake by `handshake_deadline`, the session
/// check, then the poll. `known_source`, the TCP source address, may use the reserve of
/// connection slots once its client has authenticated.
async fn serve_stream<S>(
    shared: &Shared,
    stream: S,
    peer: SocketAddr,
    early: Option<BeforeHandshake>,
    known_source: Option<SocketAddr>,
    handshake_deadline: Instant,
) -> ConnectionEnd
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (acceptor, client_auth) = match &shared.transport {
        Transport::Plaintext => {
            drop(early);
            return ConnectionEnd::Poll(serve_poll(shared, Connection::server(stream), None, peer).await);
        }
        Transport::Tls { acceptor, client_auth } => (acceptor, client_auth),
    };
    // The span gives the peer's address to what the certificate verifier logs.
    let handshake = tracing::info_span!("handshake", %peer);
    let handshaking = timeout_at(handshake_deadline, acceptor.accept(stream));
    let stream = match tracing::Instrument::instrument(handshaking, handshake.clone()).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            // A certificate refused here was logged by the verifier (at warn when the
            // client CA issued it): this is the port-scan-proof part.
            let kind = classify_handshake_error(&e);
            shared.metrics.handshake_failed(kind.metric());
            let detail = describe_handshake_error(&e);
            shared.handshake_log.failed(kind, peer, &format_args!("tls handshake failed: {detail}"));
            return ConnectionEnd::BeforeRequest(kind);
        }
        Err(_) => {
            shared.metrics.handshake_failed(HandshakeFailure::Timeout);
            shared.handshake_log.failed(FailedBefore::Timeout, peer, &"tls handshake timed out");
            return ConnectionEnd::BeforeRequest(FailedBefore::Timeout);
        }
    };
    // Past the handshake: its slots before the handshake go to the next one.
    drop(early);
    let resumed = matches!(stream.get_ref().1.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    tracing::debug!(%peer, resumed, "tls session established");
    // Resumed or not, the session's certificate is checked against the CRLs again.
    let identity = match handshake.in_scope(|| client_auth.check_session(stream.get_ref().1)) {
        Ok(identity) => identity,
        Err(refused) => {
            // Closed without a frame: the peer learns nothing about why.
            shared.metrics.handshake_failed(HandshakeFailure::Refused);
            shared.handshake_log.failed(
                FailedBefore::Refused,
                peer,
                &format_args!("connection refused after the handshake: {}", ErrorChain(&refused)),
            );
            return ConnectionEnd::BeforeRequest(FailedBefore::Refused);
        }
    };
    shared.metrics.session_accepted(resumed);
    // A host: its source may use the reserve of connection slots from now on.
    if let Some(source) = known_source {
        shared.admission.authenticated(source);
    }
    if let Some(max) = shared.settings.crl_max_stale
        && let Some(stale) = shared.settings.crl_health.failing_for().filter(|stale| *stale > max)
    {
        refuse_while_crl_stale(shared, Connection::server(stream), stale, max).await;
        return ConnectionEnd::CrlStale;
    }
    let session = match Session::of(identity, stream.get_ref().1.peer_certificates()) {
        Some(session) => session,
        None => {
            // check_session read the identity from this very certificate.
            shared.metrics.handshake_failed(HandshakeFailure::Refused);
            return ConnectionEnd::BeforeRequest(FailedBefore::Refused);
        }
    };
    ConnectionEnd::Poll(serve_poll(shared, Connection::server(stream), Some(session), peer).await)
}

/// A mutual TLS session: who the client is, and the certificate that says so (its
/// receipts are checked with its key, and status records which certificate it was).
struct Session {
    identity: ClientIdentity,
    certificate: rustls::pki_types::CertificateDer<'static>,
    /// Its serial (hex) and notAfter.
    seen: CertificateSeen,
}

impl Session {
    /// The session of `identity`, read from the end-entity certificate of `peer`.
    fn of(
        identity: ClientIdentity,
        peer: Option<&[rustls::pki_types::CertificateDer<'static>]>,
    ) -> Option<Session> {
        let certificate = peer?.first()?.clone();
        let (serial, not_after) = fts_trust::certificate_serial_and_expiry(&certificate).ok()?;
        let seen = CertificateSeen { serial, not_after: fts_proto::Published::from_unix_seconds(not_after) };
        Some(Session { identity, certificate, seen })
    }
}

/// `--crl-max-stale`: the changed CRL has failed to load for `stale`, longer than
/// `max`, so the server fails closed. The request is read first (closing with it
/// unread could reset the connection and lose the frame), then answered with an
/// `internal` error frame that says why (PROTOCOL.md section 3.4 lets a client treat
/// it as a failed poll); the client is authenticated by now, and the message holds no
/// path.
async fn refuse_while_crl_stale<S>(shared: &Shared, mut conn: Connection<S>, stale: Duration, max: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = timeout(shared.settings.request_timeout, conn.read_request()).await;
    let message = "the server cannot confirm revocation: its changed CRL has failed to load for too long \
                   (--crl-max-stale); polls are served again once it loads";
    // With the server's usual advice as `retry-after`: a failed poll would otherwise
    // bring the whole fleet back at its shortest backoff, against a server that is
    // failing closed.
    let mut frame = error_frame(ErrorCode::Internal, message);
    frame.retry_after = Some(shared.settings.poll_after.as_secs().max(1));
    send_error(&shared.metrics, &mut conn, frame).await;
    let _ = timeout(SHUTDOWN_TIMEOUT, conn.shutdown()).await;
    shared.handshake_log.refused_while_crl_stale(stale, max);
}

/// Reads the request of `who` (`None`: a plaintext client, whose id is only claimed)
/// and answers it within the poll deadline; logs and counts how the poll ended.
async fn serve_poll<S>(
    shared: &Shared,
    mut conn: Connection<S>,
    who: Option<Session>,
    peer: SocketAddr,
) -> PollReport
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut report = PollReport { client: None, files: 0, bytes: 0, receipts: None, end: PollEnd::Served };
    let deadline = started + shared.settings.poll_deadline;
    report.end = match timeout_at(deadline, answer(shared, &mut conn, who, &mut report)).await {
        Ok(Ok(end) | Err(end)) => end,
        Err(_) => PollEnd::Deadline,
    };
    let _ = timeout(SHUTDOWN_TIMEOUT, conn.shutdown()).await;

    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let client = report.client.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
    if let Some(receipts) = report.receipts {
        // Not a poll: counted in fts_receipts_*, logged on its own line.
        match &report.end {
            PollEnd::Served => tracing::debug!(client_id = %client, %peer, receipts, duration_ms, "receipts"),
            end => {
                tracing::warn!(client_id = %client, %peer, receipts, duration_ms, result = %end, error = %end.reason(), "receipts")
            }
        }
        return report;
    }
    shared.metrics.poll_finished(report.end.is_answered(), started.elapsed().as_secs_f64());
    let (files, bytes, end) = (report.files, report.bytes, &report.end);
    match end {
        PollEnd::Served => {
            tracing::info!(client_id = %client, %peer, files, bytes, duration_ms, result = %end, "poll");
        }
        _ => tracing::warn!(
            client_id = %client, %peer, files, bytes, duration_ms, result = %end, error = %end.reason(), "poll"
        ),
    }
    report
}

/// Reads the request and sends the whole answer. `Ok` is a poll answered (completely,
/// or up to a blob that vanished); `Err` says why the poll failed (an error frame, if
/// one applies, was already sent).
async fn answer<S>(
    shared: &Shared,
    conn: &mut Connection<S>,
    who: Option<Session>,
    report: &mut PollReport,
) -> Result<PollEnd, PollEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = match timeout(shared.settings.request_timeout, conn.read_client_request()).await {
        Err(_) => return Err(PollEnd::NoRequest),
        Ok(Err(ReadError::Proto(e))) => {
            send_error(&shared.metrics, conn, ErrorFrame::from_error(&e)).await;
            if matches!(e, ProtoError::HeaderTooLarge { .. }) {
                conn.drain(DRAIN_AFTER_ERROR).await;
            }
            return Err(PollEnd::BadRequest(e));
        }
        Ok(Err(ReadError::Closed)) => return Err(PollEnd::ClientClosed),
        Ok(Err(ReadError::Io(e))) => return Err(PollEnd::ReadFailed(e)),
        Ok(Ok(ClientRequest::Receipt(receipts))) => {
            return take_receipts(shared, conn, who, receipts, report).await;
        }
        Ok(Ok(ClientRequest::Poll(request))) => request,
    };

    let authenticated = who.is_some();
    let certificate = who.as_ref().map(|session| session.seen.clone());
    let identity = match who.map(|session| session.identity) {
        Some(identity) => {
            if request.client_id != identity.id {
                report.client = Some(identity.id.clone());
                let mismatch =
                    IdentityMismatch { requested: request.client_id.clone(), certificate: identity.id };
                let frame = error_frame(ErrorCode::IdentityMismatch, &mismatch.to_string());
                send_error(&shared.metrics, conn, frame).await;
                return Err(PollEnd::IdentityMismatch(mismatch));
            }
            identity
        }
        None => ClientIdentity::claimed(request.client_id.clone()),
    };
    let client = identity.id.clone();
    let targets = identity.targets();
    report.client = Some(client.clone());

    let _permit = match shared.limits.try_admit(&client) {
        Ok(permit) => permit,
        Err(busy) => {
            let mut frame = error_frame(ErrorCode::Busy, &busy.to_string());
            frame.retry_after = Some(BUSY_RETRY_AFTER_SECS);
            send_error(&shared.metrics, conn, frame).await;
            return Err(PollEnd::Busy(busy));
        }
    };

    record_status(shared, &client, authenticated, certificate, &targets, &request).await;

    // A held target gets nothing (PROTOCOL.md section 3.1.1): the client holds it at
    // an entry it cannot apply yet, and would refuse a frame for it.
    let wants: Vec<(Target, u64)> = targets
        .iter()
        .filter(|t| !request.held.contains_key(*t))
        .map(|t| (t.clone(), request.since(t)))
        .collect();
    let snapshot = shared.store.current().await;
    let heads: BTreeMap<Target, u64> = targets
        .iter()
        .map(|t| (t.clone(), snapshot.newest_seq(t)))
        .filter(|&(_, newest)| newest > 0)
        .collect();
    // The log (PROTOCOL.md section 7), for a client that asks for it: the answer
    // opens with the checkpoint and head proofs, and carries only entries the
    // checkpoint covers, each with its inclusion proof.
    if let Some(log) = snapshot.log() {
        shared.metrics.set_log(log.size(), log.newest_cosignature);
    }
    let served_log = match request.log_size {
        Some(_) => snapshot.log().cloned(),
        None => None,
    };
    if let (Some(log), Some(asked)) = (&served_log, request.log_size)
        && asked > log.size()
    {
        let message = format!(
            "this server's checkpoint covers {} leaves, the client has verified {asked}: it is behind (a replica still copying?)",
            log.size()
        );
        let mut frame = error_frame(ErrorCode::LogBehind, &message);
        frame.retry_after = Some(shared.settings.poll_after.as_secs().max(1));
        send_error(&shared.metrics, conn, frame).await;
        return Err(PollEnd::LogBehind { server: log.size(), client: asked });
    }
    let rules = ServeRules {
        log_size: served_log.as_ref().map(|log| log.size()),
        withdrawn: request.features.withdrawn,
        superseded: request.features.superseded,
        max_file_size: request.max_file_size.unwrap_or(u64::MAX),
        keys: request.keys.clone(),
    };
    let answer = choose_entries(shared, &snapshot, wants, rules).await?;
    drop(snapshot);
    for (target, seq) in &answer.stopped_at_withdrawal {
        tracing::warn!(client_id = %client, %target, seq = seq.get(), "a host that does not understand withdrawals waits before a withdrawn entry: upgrade its fts");
    }
    if let Some(log) = &served_log {
        let frame =
            log.frame(&targets, request.log_size.unwrap_or(0), request.rotation).map_err(PollEnd::Encode)?;
        timeout(shared.settings.request_timeout, conn.write_body_chunk(&frame))
            .await
            .map_err(|_| PollEnd::StoppedReading)?
            .map_err(PollEnd::SendFailed)?;
    }
    for blocked in &answer.blocked {
        tracing::warn!(
            target = %blocked.entry.statement.target,
            seq = blocked.entry.statement.seq.get(),
            problem = %ErrorChain(&blocked.problem),
            "an entry cannot be served yet: its target waits until its content is complete"
        );
    }

    // Admission under --max-send-rate, once per answer, before its first file frame.
    let _transfer = match admit_transfer(shared, &answer) {
        Ok(transfer) => transfer,
        Err(busy) => {
            let mut frame = error_frame(ErrorCode::Busy, &busy.to_string());
            frame.retry_after = Some(send_rate_retry_after(shared.settings.poll_after));
            send_error(&shared.metrics, conn, frame).await;
            return Err(PollEnd::Busy(busy));
        }
    };
    let egress = shared.egress.as_deref();
    let mut pacer = Pacer::new(shared.settings.min_send_rate);
    let more = answer.more;
    let mut end = PollEnd::Served;
    // Targets whose blob vanished in this answer: the rest of each waits.
    let mut stopped: Vec<Target> = Vec::new();
    // The newest entry sent per target, for status ("offered" until a receipt says more).
    let mut offered: BTreeMap<Target, u64> = BTreeMap::new();
    let mut note_offered = |entry: &Entry| {
        let seq = offered.entry(entry.statement.target.clone()).or_default();
        *seq = (*seq).max(entry.statement.seq.get());
    };
    for Outgoing { entry, how } in answer.items {
        let target = &entry.statement.target;
        if stopped.contains(target) {
            continue;
        }
        if let Sending::Superseded(by) = &how {
            let Some(log) = &served_log else { continue };
            match (in_log(log, &entry), in_log(log, by)) {
                (Some(proof), Some(by_proof)) => {
                    let frame = ServerFrame::Superseded(SupersededFrame {
                        entry: logged_header(&entry, proof),
                        by: logged_header(by, by_proof),
                    });
                    write_paced(conn, &frame.encode().map_err(PollEnd::Encode)?, &mut pacer, None).await?;
                    note_offered(&entry);
                }
                _ => {
                    tracing::warn!(%target, seq = entry.statement.seq.get(), "an entry or the one superseding it is not the log's leaf at its place: its target waits (the journal and log/leaves disagree)");
                    stopped.push(target.clone());
                }
            }
            continue;
        }
        if let Sending::Withdrawn(withdrawal) = how {
            // Only with a log (the rules): both leaves are proven in its checkpoint.
            let Some(log) = &served_log else { continue };
            match withdrawn_frame(log, &entry, &withdrawal) {
                Some(frame) => {
                    let frame = frame.encode().map_err(PollEnd::Encode)?;
                    write_paced(conn, &frame, &mut pacer, None).await?;
                    note_offered(&entry);
                }
                None => {
                    tracing::warn!(%target, seq = entry.statement.seq.get(), "a withdrawal or its entry is not the log's leaf at its place: its target waits (the journal and log/leaves disagree)");
                    stopped.push(target.clone());
                }
            }
            continue;
        }
        let offset = resume_offset(&request, &entry);
        // Opened from the newest snapshot, not the one the answer came from: a long
        // transfer then never keeps an old index alive. (After a switch to another
        // replica, an entry whose blob is not there yet stops its target, as below.)
        let blob = match BlobStream::open(shared.store.last(), entry.clone(), offset).await {
            Ok(blob) => blob,
            Err(PollEnd::BlobVanished(e)) => {
                // Nothing of this entry was sent: its target stops before it, staying
                // contiguous, and the client comes back for it; other targets go on.
                tracing::warn!(%target, seq = entry.statement.seq.get(), error = %ErrorChain(&e), "a blob vanished between query and send: its target waits");
                stopped.push(target.clone());
                end = PollEnd::BlobVanished(e);
                continue;
            }
            Err(other) => return Err(other),
        };
        let proof = match &served_log {
            Some(log) => match in_log(log, &entry) {
                Some(proof) => Some(proof),
                None => {
                    tracing::warn!(%target, seq = entry.statement.seq.get(), "an entry of the journal is not the log's leaf at its place: its target waits (the journal and log/leaves disagree)");
                    stopped.push(target.clone());
                    continue;
                }
            },
            None => None,
        };
        send_entry(conn, &entry, blob, offset, proof, &mut pacer, egress, &shared.metrics).await?;
        note_offered(&entry);
        report.files += 1;
        shared.metrics.file_sent();
        report.bytes += entry.statement.file_size - offset;
    }

    let done = ServerFrame::Done(Done { more, poll_after: shared.settings.poll_after.as_secs(), heads });
    timeout_at(pacer.write_deadline(), conn.send_frame(&done))
        .await
        .map_err(|_| PollEnd::StoppedReading)?
        .map_err(PollEnd::SendFailed)?;
    record_offered(shared, &client, offered);
    Ok(end)
}

/// Records, without waiting, what an answer sent: status shows it as offered until
/// the host's receipt or next poll says more. A failure is logged.
fn record_offered(shared: &Shared, client: &ClientId, offered: BTreeMap<Target, u64>) {
    if offered.is_empty() {
        return;
    }
    let status = Arc::clone(&shared.status);
    let client = client.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = status.record_offered(&client, &offered, SystemTime::now()) {
            tracing::warn!(client_id = %client, error = %ErrorChain(&e), "cannot record what was offered");
        }
    });
}

/// Answers a `receipt` request (docs/PROTOCOL.md section 9, [`crate::receipt_intake`]):
/// `receipts-stored` once the receipts that check are durable.
async fn take_receipts<S>(
    shared: &Shared,
    conn: &mut Connection<S>,
    who: Option<Session>,
    request: ReceiptRequest,
    report: &mut PollReport,
) -> Result<PollEnd, PollEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    report.client = Some(request.client_id.clone());
    report.receipts = Some(request.receipts.len());
    let Some(session) = who else {
        let e = ProtoError::BadRequest {
            detail: "receipts need mutual TLS: a plaintext client sends none".into(),
        };
        send_error(&shared.metrics, conn, ErrorFrame::from_error(&e)).await;
        return Err(PollEnd::BadRequest(e));
    };
    if request.client_id != session.identity.id {
        let mismatch =
            IdentityMismatch { requested: request.client_id.clone(), certificate: session.identity.id };
        send_error(&shared.metrics, conn, error_frame(ErrorCode::IdentityMismatch, &mismatch.to_string()))
            .await;
        return Err(PollEnd::IdentityMismatch(mismatch));
    }
    let sender = ReceiptSender {
        id: &session.identity.id,
        certificate: &session.certificate,
        serial: &session.seen.serial,
    };
    match shared.receipts.take(&sender, request).await {
        Ok(stored) => {
            let frame = ServerFrame::ReceiptsStored(ReceiptsStored { stored });
            timeout(shared.settings.request_timeout, conn.send_frame(&frame))
                .await
                .map_err(|_| PollEnd::StoppedReading)?
                .map_err(PollEnd::SendFailed)?;
            Ok(PollEnd::Served)
        }
        Err(Refused::Rate) => {
            let mut frame = error_frame(
                ErrorCode::Busy,
                &format!("more than {RECEIPTS_PER_MINUTE} receipts a minute from this host: send them later"),
            );
            frame.retry_after = Some(60);
            send_error(&shared.metrics, conn, frame).await;
            Err(PollEnd::ReceiptsNotStored("over the receipt rate".into()))
        }
        Err(Refused::Store(why)) => {
            let mut frame = error_frame(
                ErrorCode::Internal,
                "the server cannot store receipts now: send them again later",
            );
            frame.retry_after = Some(shared.settings.poll_after.as_secs().max(1));
            send_error(&shared.metrics, conn, frame).await;
            Err(PollEnd::ReceiptsNotStored(why))
        }
    }
}

/// The leaf index and inclusion proof of `entry` in the served checkpoint, when
/// the log's leaf at the entry's position is the entry's own.
fn in_log(log: &ServedLog, entry: &Entry) -> Option<(u64, Vec<LogHash>)> {
    leaf_in_log(log, entry.position, &entry.leaf())
}

/// The inclusion proof of `leaf` at `index` in the served checkpoint, when the log's
/// leaf there is `leaf`.
fn leaf_in_log(log: &ServedLog, index: u64, leaf: &[u8]) -> Option<(u64, Vec<LogHash>)> {
    if log.leaf(index)? != fts_log::merkle::leaf_hash(leaf) {
        return None;
    }
    Some((index, log.inclusion(index)?))
}

/// The header of `entry` without a body offset, with its leaf index and proof.
fn logged_header(entry: &Entry, (index, inclusion): (u64, Vec<LogHash>)) -> FileHeader {
    let mut header = FileHeader::new(entry.statement.clone(), entry.key_id, entry.signature);
    header.log_index = Some(index);
    header.inclusion = Some(inclusion);
    header
}

/// The `withdrawn` frame of `entry` (PROTOCOL.md section 8.1): its header with its
/// leaf's proof, and the withdrawal with its own; `None` when either leaf is not the
/// log's.
fn withdrawn_frame(log: &ServedLog, entry: &Entry, withdrawal: &WithdrawalEntry) -> Option<ServerFrame> {
    let header = logged_header(entry, in_log(log, entry)?);
    let (log_index, inclusion) = leaf_in_log(log, withdrawal.position, &withdrawal.leaf())?;
    Some(ServerFrame::Withdrawn(WithdrawnFrame {
        entry: header,
        withdrawal: Withdrawal {
            withdrawn: withdrawal.statement.withdrawn.clone(),
            reason: withdrawal.statement.reason.clone(),
            key_id: withdrawal.key_id,
            signature: withdrawal.signature,
            log_index,
            inclusion,
        },
    }))
}

/// An answer's place under `--max-send-rate` ([`crate::egress`]): taken once per
/// answer, only by one that has a file to send (a caught-up poll never needs one), and
/// held until the answer ends. `Ok(None)`: no cap, or nothing to send.
fn admit_transfer(
    shared: &Shared,
    answer: &Answer,
) -> Result<Option<(TransferPermit, ConnectionGuard)>, Busy> {
    let Some(egress) = &shared.egress else { return Ok(None) };
    if answer.whole_count() == 0 {
        return Ok(None);
    }
    match egress.admit() {
        Ok(permit) => Ok(Some((permit, shared.metrics.transfer_admitted()))),
        Err(busy) => {
            shared.metrics.send_rate_busy();
            Err(busy)
        }
    }
}

/// The `retry-after` of a `busy` for `--max-send-rate`: the server's `poll-after`, plus
/// up to as much again at random. A place frees only when a transfer ends, which for
/// the large files that fill the cap takes minutes, so coming back sooner would only
/// add handshakes to a server that is already at its cap; and the jitter spreads the
/// hosts refused together (a whole fleet, on a patch night) over an interval instead
/// of bringing them back in one burst. (The host adds its own `--jitter` on top.)
fn send_rate_retry_after(poll_after: Duration) -> u64 {
    let base = poll_after.as_secs().max(1);
    let mut bytes = [0u8; 8];
    // Without randomness the base alone is still a valid answer.
    let _ = getrandom::fill(&mut bytes);
    base + u64::from_le_bytes(bytes) % (base + 1)
}

/// The entries of one answer, from `snapshot`: nothing to do when the client is
/// caught up; else the query, with its blob checks, on one blocking thread.
async fn choose_entries(
    shared: &Shared,
    snapshot: &Arc<StoreSnapshot>,
    wants: Vec<(Target, u64)>,
    rules: ServeRules,
) -> Result<Answer, PollEnd> {
    if snapshot.is_caught_up(&wants) {
        return Ok(Answer::default());
    }
    let snapshot = Arc::clone(snapshot);
    let (max_files, max_bytes) = (shared.settings.poll_max_files.get(), shared.settings.poll_max_bytes);
    tokio::task::spawn_blocking(move || snapshot.answer_for(&wants, max_files, max_bytes, &rules))
        .await
        .map_err(PollEnd::Internal)
}

/// Where to start the body of `entry`: the offset the client asked to resume that
/// file at (PROTOCOL.md section 3.2.1), when it lies inside the file; else 0.
fn resume_offset(request: &Request, entry: &Entry) -> u64 {
    let statement = &entry.statement;
    request
        .resume
        .iter()
        .find(|r| r.file_hash == statement.file_hash && r.offset > 0 && r.offset < statement.file_size)
        .map_or(0, |r| r.offset)
}

/// A blob being read on a blocking thread into [`BLOB_BUFFERS`] reused buffers,
/// handed over a bounded channel, so reading the disk overlaps encrypting and sending,
/// with no copy between the read and the TLS layer and no thread hop per chunk.
struct BlobStream {
    full: mpsc::Receiver<io::Result<Vec<u8>>>,
    free: mpsc::Sender<Vec<u8>>,
}

impl BlobStream {
    /// Opens the blob of `entry` on the blocking thread that will read it, and waits
    /// only for the open: a blob that cannot be opened is known before a byte of its
    /// frame is sent.
    async fn open(snapshot: Arc<StoreSnapshot>, entry: Entry, offset: u64) -> Result<BlobStream, PollEnd> {
        let (opened_tx, opened_rx) = oneshot::channel::<Result<(), StoreError>>();
        let (full_tx, full) = mpsc::channel::<io::Result<Vec<u8>>>(BLOB_BUFFERS);
        let (free, free_rx) = mpsc::channel::<Vec<u8>>(BLOB_BUFFERS);
        for _ in 0..BLOB_BUFFERS {
            let _ = free.try_send(Vec::new());
        }
        tokio::task::spawn_blocking(move || {
            let opened = snapshot.open_blob(&entry);
            // The snapshot is not kept while the body streams: a newer one may replace it.
            drop(snapshot);
            match opened {
                Ok(blob) => {
                    if opened_tx.send(Ok(())).is_ok() {
                        read_blob(blob, offset, entry.statement.file_size, &full_tx, free_rx);
                    }
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                }
            }
        });
        match opened_rx.await {
            Ok(Ok(())) => Ok(BlobStream { full, free }),
            Ok(Err(e)) => Err(PollEnd::BlobVanished(e)),
            // The reading thread ended without a word: it panicked.
            Err(_) => Err(PollEnd::BlobUnreadable(io::Error::other("the blob reader stopped"))),
        }
    }
}

/// Writes one `file` frame: the header, then exactly `file-size` bytes from the blob,
/// or the last `file-size - offset` when it resumes a transfer (`offset` in the
/// header then says where they start), each chunk in its turn under `egress` when
/// there is a cap.
#[allow(clippy::too_many_arguments)]
async fn send_entry<S>(
    conn: &mut Connection<S>,
    entry: &Entry,
    mut blob: BlobStream,
    offset: u64,
    proof: Option<(u64, Vec<LogHash>)>,
    pacer: &mut Pacer,
    egress: Option<&Egress>,
    metrics: &Metrics,
) -> Result<(), PollEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut header = FileHeader::new(entry.statement.clone(), entry.key_id, entry.signature);
    header.offset = (offset > 0).then_some(offset);
    if let Some((index, inclusion)) = proof {
        header.log_index = Some(index);
        header.inclusion = Some(inclusion);
    }
    let body_len = header.body_len();
    let header = ServerFrame::File(header).encode().map_err(PollEnd::Encode)?;
    write_paced(conn, &header, pacer, None).await?;

    let mut remaining = body_len;
    while remaining > 0 {
        let chunk = match blob.full.recv().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return Err(PollEnd::BlobUnreadable(e)),
            // The blob shrank after it was opened: the frame cannot be completed, so
            // the connection is dropped and the client sees a truncated body.
            None => return Err(PollEnd::BlobShrank { hash: entry.statement.file_hash }),
        };
        write_paced(conn, &chunk, pacer, egress).await?;
        metrics.bytes_sent(chunk.len() as u64);
        remaining -= chunk.len() as u64;
        // Never full: at most BLOB_BUFFERS buffers exist.
        let _ = blob.free.try_send(chunk);
    }
    timeout_at(pacer.write_deadline(), conn.flush())
        .await
        .map_err(|_| PollEnd::StoppedReading)?
        .map_err(PollEnd::SendFailed)
}

/// The reading side of [`BlobStream`], on a blocking thread: fills buffers from
/// `free` with the next bytes of the blob from `offset` (never past `size`) and sends
/// them on. Stops at the end of the blob, at a read error (sent on), or when the
/// sender is gone.
fn read_blob(
    mut blob: std::fs::File,
    offset: u64,
    size: u64,
    full: &mpsc::Sender<io::Result<Vec<u8>>>,
    mut free: mpsc::Receiver<Vec<u8>>,
) {
    if offset > 0
        && let Err(e) = io::Seek::seek(&mut blob, io::SeekFrom::Start(offset))
    {
        let _ = full.blocking_send(Err(e));
        return;
    }
    let mut remaining = size.saturating_sub(offset);
    while remaining > 0 {
        let Some(mut buffer) = free.blocking_recv() else { return };
        buffer.resize(fts_fs::stream::chunk_len(remaining), 0);
        let filled = match fts_fs::stream::read_full(&mut blob, &mut buffer) {
            Ok(filled) => filled,
            Err(e) => {
                let _ = full.blocking_send(Err(e));
                return;
            }
        };
        if filled == 0 {
            return; // ended early: dropping `full` tells the sender
        }
        buffer.truncate(filled);
        remaining -= filled as u64;
        if full.blocking_send(Ok(buffer)).is_err() {
            return;
        }
    }
}

/// Writes `bytes` within the pacer's deadline. Under a cap (`egress`) the bytes first
/// wait their turn in the shared bucket; that wait is the server's, so the pacer is
/// excused it and the deadline is taken after it.
async fn write_paced<S>(
    conn: &mut Connection<S>,
    bytes: &[u8],
    pacer: &mut Pacer,
    egress: Option<&Egress>,
) -> Result<(), PollEnd>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(egress) = egress {
        pacer.excuse(egress.take(bytes.len() as u64).await);
    }
    timeout_at(pacer.write_deadline(), conn.write_body_chunk(bytes))
        .await
        .map_err(|_| PollEnd::SlowReader)?
        .map_err(PollEnd::SendFailed)?;
    pacer.sent(bytes.len() as u64);
    Ok(())
}

fn error_frame(code: ErrorCode, message: &str) -> ErrorFrame {
    ErrorFrame { code, message: message.to_owned(), retry_after: None }
}

async fn send_error<S>(metrics: &Metrics, conn: &mut Connection<S>, frame: ErrorFrame)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    metrics.error_sent(&frame.code);
    let _ = timeout(SHUTDOWN_TIMEOUT, conn.send_frame(&ServerFrame::Error(frame))).await;
}

/// Writes the last poll times noted in memory (and what the backend queued) every
/// `interval`, until aborted, and says how the backend's writes are going in `metrics`.
async fn flush_last_polls_every(status: Arc<dyn StatusBackend>, interval: Duration, metrics: Arc<Metrics>) {
    // tokio refuses a zero period; `fts serve` refuses it earlier, with a message.
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        flush_last_polls(Arc::clone(&status)).await;
        metrics.set_status_health(status.health());
    }
}

/// Writes the last poll times noted in memory, on a blocking thread (file I/O; nothing
/// is written when no time changed).
async fn flush_last_polls(status: Arc<dyn StatusBackend>) {
    match tokio::task::spawn_blocking(move || status.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %ErrorChain(&e), "cannot record the last poll times"),
        Err(e) => tracing::warn!(error = %ErrorChain(&e), "recording the last poll times failed"),
    }
}

/// Records the poll in the status folder: the client's `since` (for its own targets
/// only) and its reports. A poll that changes nothing but the time is only noted in
/// memory; any other is written to the client's file on a blocking thread (file I/O).
/// A failure is logged and does not stop the poll: delivery matters more than
/// bookkeeping.
async fn record_status(
    shared: &Shared,
    client: &ClientId,
    authenticated: bool,
    certificate: Option<CertificateSeen>,
    targets: &[Target],
    request: &Request,
) {
    let claims = PollClaims {
        since: targets.iter().map(|t| (t.clone(), request.since(t))).collect(),
        // Only the client's own targets: a held target it does not have says nothing.
        held: request
            .held
            .iter()
            .filter(|(target, _)| targets.contains(target))
            .map(|(target, seq)| (target.clone(), seq.get()))
            .collect(),
        alarms: request.alarms.clone(),
        understands_withdrawals: request.features.withdrawn,
        next_poll_within: request.next_poll_within,
        receipt_count: request.receipt_count,
        receipt_head: request.receipt_head,
        certificate,
        reboot_required: request.reboot_required,
        log_size: request.log_size,
    };
    let now = SystemTime::now();
    if shared.status.note_unchanged_poll(client, authenticated, &claims, &request.rejected, now) {
        return;
    }
    let reports: Vec<Report> = request.rejected.clone();
    let status = Arc::clone(&shared.status);
    let who = client.clone();
    let written = tokio::task::spawn_blocking(move || {
        status.record_poll(&who, authenticated, &claims, &reports, SystemTime::now())
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(client_id = %client, error = %ErrorChain(&e), "cannot record delivery status");
        }
        Err(e) => {
            tracing::warn!(client_id = %client, error = %ErrorChain(&e), "recording delivery status failed");
        }
    }
}
