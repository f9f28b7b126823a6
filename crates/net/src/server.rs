//! The server: accept, handshake, check the session, read one request, answer it from
//! the store, close. PROTOCOL.md sections 1 to 3 are the contract.
//!
//! Each connection is its own task, so a slow or idle client never delays another:
//! every phase has its own bound (first-byte timeout, handshake timeout, request
//! timeout, the minimum send rate per write, an overall deadline per poll), and
//! before its handshake a connection also counts against its source's limits
//! ([`crate::admission`]). Memory per connection is the
//! TLS state, one request header (at most 16 KiB) and, while a body is sent,
//! `BLOB_BUFFERS` buffers of [`BODY_CHUNK`] bytes; bodies stream from their blob and are never held
//! whole.
//!
//! Security properties that hold here, and why:
//! - the server never holds a signing key: it forwards the signature made at publish
//!   time, so nothing it does can make a host install unsigned bytes;
//! - a client can never act as another: under TLS the targets come from the session's
//!   certificate ([`fts_trust::ClientAuth::check_session`], run after every handshake,
//!   resumed or not, before a byte of the request is read), and a request naming
//!   another id gets `identity-mismatch`;
//! - the store is only read: entries and blobs come through [`StoreReader`], and the
//!   only thing written is delivery status, in its own folder.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use fts_proto::{
    ClientId, Done, ErrorCode, ErrorFrame, FileHeader, ProtoError, Report, Request, ServerFrame, Target,
};
use fts_store::{Entry, StatusDir, StoreReader};
use fts_trust::{ClientAuth, ClientIdentity};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsAcceptor;

use crate::admission::{Admission, AdmissionSettings, BeforeHandshake, ConnectionSlots};
use crate::connection::{Connection, ReadError};
use crate::crl_watch::CrlHealth;
use crate::handshake_log::{FailedBefore, HandshakeLog, classify_handshake_error, describe_handshake_error};
use crate::limits::PollLimits;
use crate::metrics::{HandshakeFailure, Metrics};
use crate::pacing::{MinSendRate, Pacer};

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

/// Everything `fts serve` can tune. Defaults are those of PRODUCT.md.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Most connections open at once; those before their handshake get at most 90 %
    /// of it (see `admission`).
    pub max_connections: usize,
    pub max_active_polls: usize,
    pub max_polls_per_client: usize,
    pub handshake_timeout: Duration,
    pub request_timeout: Duration,
    pub min_send_rate: MinSendRate,
    pub poll_deadline: Duration,
    pub poll_max_files: usize,
    pub poll_max_bytes: u64,
    /// The `poll-after` advice of every `done` frame.
    pub poll_after: Duration,
    /// How long transfers in flight may take to finish after shutdown begins.
    pub grace: Duration,
    /// How often the last poll times of polls that changed nothing else are written
    /// to the status folder (also written when the server stops).
    pub status_flush_interval: Duration,
    /// Where the server counts what it does (`--metrics-listen` serves it).
    pub metrics: Arc<Metrics>,
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
        ServerSettings {
            max_connections: 10_000,
            max_active_polls: 2_000,
            max_polls_per_client: 2,
            handshake_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            min_send_rate: MinSendRate { bytes_per_second: 16 * 1024, window: Duration::from_secs(60) },
            poll_deadline: Duration::from_secs(6 * 3600),
            poll_max_files: 100,
            poll_max_bytes: 64 << 30,
            poll_after: Duration::from_secs(60),
            grace: Duration::from_secs(30),
            status_flush_interval: Duration::from_secs(5),
            metrics: Arc::new(Metrics::new()),
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
    Tls { acceptor: TlsAcceptor, client_auth: Arc<ClientAuth> },
    /// No TLS (PROTOCOL.md section 1): the id is only claimed, so only that id and
    /// `all` are served and the client's status is marked unauthenticated.
    Plaintext,
}

/// The state every connection task shares.
struct Shared {
    transport: Transport,
    settings: ServerSettings,
    /// The checks before TLS: per-source limits, the first byte, PROXY headers.
    admission: Admission,
    limits: PollLimits,
    /// Behind a mutex because a refresh needs `&mut`; held only for a refresh and one
    /// in-memory query, never across an await.
    store: Mutex<StoreReader>,
    /// Unchanged polls are noted in memory on the connection's task; everything that
    /// writes a file runs on a blocking thread.
    status: Arc<StatusDir>,
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
    /// folder created by the caller.
    pub async fn bind(
        addr: SocketAddr,
        transport: Transport,
        settings: ServerSettings,
        store: StoreReader,
        status: StatusDir,
    ) -> io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        let limits = PollLimits::new(settings.max_active_polls, settings.max_polls_per_client);
        let admission = Admission::new(settings.admission.clone(), settings.max_connections);
        let shared = Arc::new(Shared {
            transport,
            settings,
            admission,
            limits,
            store: Mutex::new(store),
            status: Arc::new(status),
            handshake_log: HandshakeLog::default(),
        });
        Ok(Server { listener, shared })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets connections in
    /// flight finish within the grace period, and drops the rest.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let slots = ConnectionSlots::new(self.shared.settings.max_connections);
        let flusher = tokio::spawn(flush_last_polls_every(
            Arc::clone(&self.shared.status),
            self.shared.settings.status_flush_interval,
        ));
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
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let accepted = Instant::now();
            while tasks.try_join_next().is_some() {}
            // Over its limits, a source's connection is closed here, before it costs a
            // task (counted and logged at a bounded rate inside).
            let Ok(early) = self.shared.admission.at_accept(peer, early, &self.shared.settings.metrics)
            else {
                continue;
            };
            let shared = Arc::clone(&self.shared);
            let open = shared.settings.metrics.connection_opened();
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
        flush_last_polls(Arc::clone(&self.shared.status)).await;
        tracing::info!("server stopped");
    }
}

/// Who is on the other end, as far as the server can tell.
enum Peer {
    Authenticated(ClientIdentity),
    Unauthenticated,
}

/// Serves one connection from `tcp_peer`, accepted at `accepted`. `early` holds its
/// slots before the handshake, given back as soon as the handshake is over.
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
    let opened = shared
        .admission
        .open(&mut tcp, tcp_peer, &mut early, first_byte_deadline, &shared.settings.metrics)
        .await;
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
    match &shared.transport {
        Transport::Plaintext => {
            drop(early);
            serve_poll(shared, Connection::server(tcp), Peer::Unauthenticated, peer).await;
        }
        Transport::Tls { acceptor, client_auth } => {
            // The span gives the peer's address to what the certificate verifier logs.
            let handshake = tracing::info_span!("handshake", %peer);
            let handshaking = timeout_at(handshake_deadline, acceptor.accept(tcp));
            let stream = match tracing::Instrument::instrument(handshaking, handshake.clone()).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    // A certificate refused here was logged by the verifier (at warn when
                    // the client CA issued it): this is the port-scan-proof part.
                    let kind = classify_handshake_error(&e);
                    shared.settings.metrics.handshake_failed(kind.metric());
                    let detail = describe_handshake_error(&e);
                    shared.handshake_log.failed(kind, peer, &format_args!("tls handshake failed: {detail}"));
                    return;
                }
                Err(_) => {
                    shared.settings.metrics.handshake_failed(HandshakeFailure::Timeout);
                    shared.handshake_log.failed(FailedBefore::Timeout, peer, &"tls handshake timed out");
                    return;
                }
            };
            // Past the handshake: its slots before the handshake go to the next one.
            drop(early);
            let resumed = stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            tracing::debug!(%peer, resumed, "tls session established");
            // Resumed or not, the session's certificate is checked against the CRLs again.
            let identity = match handshake.in_scope(|| client_auth.check_session(stream.get_ref().1)) {
                Ok(identity) => identity,
                Err(refused) => {
                    // Closed without a frame: the peer learns nothing about why.
                    shared.settings.metrics.handshake_failed(HandshakeFailure::Refused);
                    shared.handshake_log.failed(
                        FailedBefore::Refused,
                        peer,
                        &format_args!("connection refused after the handshake: {refused}"),
                    );
                    return;
                }
            };
            // A host: its source may use the reserve of connection slots from now on.
            shared.admission.authenticated(tcp_peer);
            if let Some(max) = shared.settings.crl_max_stale
                && let Some(stale) = shared.settings.crl_health.failing_for().filter(|stale| *stale > max)
            {
                refuse_while_crl_stale(shared, Connection::server(stream), stale, max).await;
                return;
            }
            serve_poll(shared, Connection::server(stream), Peer::Authenticated(identity), peer).await;
        }
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
    send_error(&shared.settings.metrics, &mut conn, frame).await;
    let _ = timeout(SHUTDOWN_TIMEOUT, conn.shutdown()).await;
    shared.handshake_log.refused_while_crl_stale(stale, max);
}

/// How one poll ended, for its log line.
struct Outcome {
    client: Option<ClientId>,
    files: u64,
    bytes: u64,
    result: Result<(), String>,
}

async fn serve_poll<S>(shared: &Shared, mut conn: Connection<S>, who: Peer, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut outcome = Outcome { client: None, files: 0, bytes: 0, result: Ok(()) };
    let deadline = started + shared.settings.poll_deadline;
    match timeout_at(deadline, answer(shared, &mut conn, who, &mut outcome)).await {
        Ok(Ok(())) => {}
        Ok(Err(problem)) => outcome.result = Err(problem),
        Err(_) => outcome.result = Err("the poll deadline passed".into()),
    }
    let _ = timeout(SHUTDOWN_TIMEOUT, conn.shutdown()).await;

    shared.settings.metrics.poll_finished(outcome.result.is_ok(), started.elapsed().as_secs_f64());
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let client = outcome.client.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
    match &outcome.result {
        Ok(()) => tracing::info!(
            client_id = %client, %peer, files = outcome.files, bytes = outcome.bytes, duration_ms, result = "ok", "poll"
        ),
        Err(problem) => tracing::warn!(
            client_id = %client, %peer, files = outcome.files, bytes = outcome.bytes, duration_ms, result = %problem, "poll"
        ),
    }
}

/// Reads the request and sends the whole answer. An `Err` is the reason the poll
/// failed, for the log line (an error frame, if one applies, was already sent).
async fn answer<S>(
    shared: &Shared,
    conn: &mut Connection<S>,
    who: Peer,
    outcome: &mut Outcome,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let request = match timeout(shared.settings.request_timeout, conn.read_request()).await {
        Err(_) => return Err("no request within the request timeout".into()),
        Ok(Err(ReadError::Proto(e))) => {
            send_error(&shared.settings.metrics, conn, ErrorFrame::from_error(&e)).await;
            if matches!(e, ProtoError::HeaderTooLarge { .. }) {
                conn.drain(DRAIN_AFTER_ERROR).await;
            }
            return Err(format!("{}: {e}", e.code()));
        }
        Ok(Err(e)) => return Err(format!("reading the request: {e}")),
        Ok(Ok(request)) => request,
    };

    let (client, targets, authenticated) = match who {
        Peer::Authenticated(identity) => {
            if request.client_id != identity.id {
                outcome.client = Some(identity.id.clone());
                let message = format!(
                    "the request names client {} but the certificate is for {}",
                    request.client_id, identity.id
                );
                send_error(
                    &shared.settings.metrics,
                    conn,
                    error_frame(ErrorCode::IdentityMismatch, &message),
                )
                .await;
                return Err(format!("identity-mismatch: {message}"));
            }
            let mut targets = vec![Target::Client(identity.id.clone()), Target::All];
            targets.extend(identity.groups.into_iter().map(Target::Group));
            (identity.id, targets, true)
        }
        Peer::Unauthenticated => {
            let id = request.client_id.clone();
            (id.clone(), vec![Target::Client(id), Target::All], false)
        }
    };
    outcome.client = Some(client.clone());

    let _permit = match shared.limits.try_admit(&client) {
        Ok(permit) => permit,
        Err(busy) => {
            let mut frame = error_frame(ErrorCode::Busy, &busy.to_string());
            frame.retry_after = Some(BUSY_RETRY_AFTER_SECS);
            send_error(&shared.settings.metrics, conn, frame).await;
            return Err(format!("busy: {busy}"));
        }
    };

    record_status(shared, &client, authenticated, &targets, &request).await;

    let wants: Vec<(Target, u64)> = targets.iter().map(|t| (t.clone(), request.since(t))).collect();
    let answer = {
        let mut store = shared.store.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = store.refresh() {
            // The index keeps what it had; serving it is still correct, only late.
            tracing::warn!(error = %e, "cannot refresh the store index: serving what is already indexed");
        }
        store.entries_for(&wants, shared.settings.poll_max_files, shared.settings.poll_max_bytes)
    };
    if let Some(blocked) = &answer.blocked {
        tracing::warn!(
            target = %blocked.entry.statement.target,
            seq = blocked.entry.statement.seq,
            problem = %blocked.problem,
            "an entry cannot be served yet: its target waits until its content is complete"
        );
    }

    let mut pacer = Pacer::new(shared.settings.min_send_rate);
    let mut more = answer.more;
    for entry in &answer.entries {
        let blob = {
            let store = shared.store.lock().unwrap_or_else(PoisonError::into_inner);
            store.open_blob(entry)
        };
        let blob = match blob {
            Ok(blob) => blob,
            Err(e) => {
                // Nothing of this entry was sent: stop before it, keeping every target
                // contiguous, and let the client come back.
                tracing::warn!(error = %e, "a blob vanished between query and send: ending the answer early");
                more = false;
                break;
            }
        };
        send_entry(conn, entry, blob, &mut pacer, &shared.settings.metrics).await?;
        outcome.files += 1;
        shared.settings.metrics.file_sent();
        outcome.bytes += entry.statement.file_size;
    }

    let done = ServerFrame::Done(Done { more, poll_after: shared.settings.poll_after.as_secs() });
    timeout_at(pacer.write_deadline(), conn.send_frame(&done))
        .await
        .map_err(|_| "the client stopped reading".to_owned())?
        .map_err(|e| format!("sending done: {e}"))?;
    Ok(())
}

/// Writes one `file` frame: the header, then exactly `file-size` bytes from the blob.
///
/// A blocking thread reads the blob into [`BLOB_BUFFERS`] reused buffers and hands
/// them over a bounded channel, so reading the disk overlaps encrypting and sending,
/// with no copy between the read and the TLS layer and no thread hop per chunk.
async fn send_entry<S>(
    conn: &mut Connection<S>,
    entry: &Entry,
    blob: std::fs::File,
    pacer: &mut Pacer,
    metrics: &Metrics,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let header = ServerFrame::File(FileHeader::new(entry.statement.clone(), entry.key_id, entry.signature));
    let header = header.encode().map_err(|e| format!("encoding a file header: {e}"))?;
    write_paced(conn, &header, pacer).await?;

    let size = entry.statement.file_size;
    if size > 0 {
        let (full_tx, mut full_rx) = mpsc::channel::<io::Result<Vec<u8>>>(BLOB_BUFFERS);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>(BLOB_BUFFERS);
        for _ in 0..BLOB_BUFFERS {
            let _ = free_tx.try_send(Vec::new());
        }
        tokio::task::spawn_blocking(move || read_blob(blob, size, &full_tx, free_rx));
        let mut remaining = size;
        while remaining > 0 {
            let chunk = match full_rx.recv().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Err(format!("reading a blob: {e}")),
                // The blob shrank after it was opened: the frame cannot be completed, so
                // the connection is dropped and the client sees a truncated body.
                None => return Err(format!("blob {} ended early", entry.statement.file_hash)),
            };
            write_paced(conn, &chunk, pacer).await?;
            metrics.bytes_sent(chunk.len() as u64);
            remaining -= chunk.len() as u64;
            // Never full: at most BLOB_BUFFERS buffers exist.
            let _ = free_tx.try_send(chunk);
        }
    }
    timeout_at(pacer.write_deadline(), conn.flush())
        .await
        .map_err(|_| "the client stopped reading".to_owned())?
        .map_err(|e| format!("sending: {e}"))
}

/// The reading side of [`send_entry`], on a blocking thread: fills buffers from `free`
/// with the next bytes of the blob (never more than `size` in all) and sends them on.
/// Stops at the end of the blob, at a read error (sent on), or when the sender is gone.
fn read_blob(
    mut blob: std::fs::File,
    size: u64,
    full: &mpsc::Sender<io::Result<Vec<u8>>>,
    mut free: mpsc::Receiver<Vec<u8>>,
) {
    let mut remaining = size;
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

async fn write_paced<S>(conn: &mut Connection<S>, bytes: &[u8], pacer: &mut Pacer) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    timeout_at(pacer.write_deadline(), conn.write_body_chunk(bytes))
        .await
        .map_err(|_| "the client read slower than the minimum send rate".to_owned())?
        .map_err(|e| format!("sending: {e}"))?;
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

/// Writes the last poll times noted in memory every `interval`, until aborted.
async fn flush_last_polls_every(status: Arc<StatusDir>, interval: Duration) {
    // tokio refuses a zero period; `fts serve` refuses it earlier, with a message.
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        flush_last_polls(Arc::clone(&status)).await;
    }
}

/// Writes the last poll times noted in memory, on a blocking thread (file I/O; nothing
/// is written when no time changed).
async fn flush_last_polls(status: Arc<StatusDir>) {
    match tokio::task::spawn_blocking(move || status.flush_last_polls()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot record the last poll times"),
        Err(e) => tracing::warn!(error = %e, "recording the last poll times failed"),
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
    targets: &[Target],
    request: &Request,
) {
    let since = targets.iter().map(|t| (t.clone(), request.since(t))).collect();
    if shared.status.note_unchanged_poll(client, authenticated, &since, &request.rejected, SystemTime::now())
    {
        return;
    }
    let reports: Vec<Report> = request.rejected.clone();
    let status = Arc::clone(&shared.status);
    let who = client.clone();
    let written = tokio::task::spawn_blocking(move || {
        status.record_poll(&who, authenticated, &since, &reports, SystemTime::now())
    })
    .await;
    match written {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(client_id = %client, error = %e, "cannot record delivery status"),
        Err(e) => tracing::warn!(client_id = %client, error = %e, "recording delivery status failed"),
    }
}
