//! What `fts serve` counts, in the Prometheus text format (`--metrics-listen`).
//!
//! One [`Metrics`] per server, shared as an `Arc` with every connection task; the
//! events are counted where they happen (handshake, error frame, each file sent, the
//! end of each poll). Counters and gauges are atomics, handles to labelled series are
//! made once at start, so the hot path takes no lock; the poll-duration histogram
//! takes the crate's short mutex once per poll.
//!
//! Nothing here carries a secret or a path: labels are only result names, error
//! codes, handshake-failure kinds and refusal reasons.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fts_proto::{ErrorChain, ErrorCode};
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the poll-duration buckets, in seconds: from a caught-up poll on a
/// LAN (milliseconds) to a large transfer (hours; the default deadline is 6 h).
const POLL_DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 1800.0, 7200.0];

/// Upper bounds of the receipt-store buckets, in seconds: a batch's fsync on a fast
/// disk to a busy one (a receipt is acknowledged only once durable).
const RECEIPT_STORE_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// Every code the server can send, so that each series exists (at 0) from the start.
const ERROR_CODES: [ErrorCode; 9] = [
    ErrorCode::BadFrame,
    ErrorCode::HeaderTooLarge,
    ErrorCode::BadJson,
    ErrorCode::BadRequest,
    ErrorCode::UnknownRequest,
    ErrorCode::UnsupportedProtocol,
    ErrorCode::IdentityMismatch,
    ErrorCode::Busy,
    ErrorCode::Internal,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabel {
    handshake: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Why a connection did not get as far as a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The TLS handshake failed for another reason than the client's certificate
    /// (not TLS, closed or reset midway, no common parameters ...).
    Error,
    /// The TLS handshake did not finish within `--handshake-timeout`.
    Timeout,
    /// The server refused the client: its certificate in a full handshake (revoked,
    /// expired, not from the client CA, none at all), or the session after the
    /// handshake (revoked since, identity rules, ALPN).
    Refused,
}

/// Why a CRL reload failed (the `reason` of `fts_crl_reload_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrlReloadFailure {
    /// The file could not be read (permissions, missing, out of descriptors, I/O).
    Read,
    /// It was read but is not a CRL set the verifier can use.
    Invalid,
    /// It is older than the CRL in force (a lower CRL number from the same CA).
    Older,
}

impl CrlReloadFailure {
    const ALL: [CrlReloadFailure; 3] =
        [CrlReloadFailure::Read, CrlReloadFailure::Invalid, CrlReloadFailure::Older];

    fn label(self) -> &'static str {
        match self {
            CrlReloadFailure::Read => "read",
            CrlReloadFailure::Invalid => "invalid",
            CrlReloadFailure::Older => "older",
        }
    }
}

impl HandshakeFailure {
    fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Error => "error",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Refused => "refused",
        }
    }
}

/// Why the admission checks closed a connection before its TLS handshake (the
/// `reason` of `fts_connections_refused_total`; see `admission`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionRefusal {
    /// The source already had `--max-handshakes-per-ip` connections before their
    /// handshake.
    PerIpHandshakes,
    /// The source opened connections faster than `--max-connection-rate-per-ip`.
    Rate,
    /// A PROXY header from a source that is not a `--trusted-proxy` (or with
    /// `--proxy-protocol` off).
    ProxyHeader,
    /// A trusted proxy's connection without a valid PROXY header (`--proxy-protocol`).
    ProxyHeaderInvalid,
    /// Nothing arrived within `--first-byte-timeout`.
    FirstByteTimeout,
    /// Connections before their handshake held their whole share of
    /// `--max-connections`, and the source is not one that authenticated lately (only
    /// those may use the reserve).
    BeforeHandshakeFull,
}

impl ConnectionRefusal {
    /// Every reason, so that each label is exported from the start (at zero).
    pub const ALL: [ConnectionRefusal; 6] = [
        ConnectionRefusal::PerIpHandshakes,
        ConnectionRefusal::Rate,
        ConnectionRefusal::ProxyHeader,
        ConnectionRefusal::ProxyHeaderInvalid,
        ConnectionRefusal::FirstByteTimeout,
        ConnectionRefusal::BeforeHandshakeFull,
    ];

    /// The reason's `reason` label in `fts_connections_refused_total`.
    pub fn label(self) -> &'static str {
        match self {
            ConnectionRefusal::PerIpHandshakes => "per-ip-handshakes",
            ConnectionRefusal::Rate => "rate",
            ConnectionRefusal::ProxyHeader => "proxy-header",
            ConnectionRefusal::ProxyHeaderInvalid => "proxy-header-invalid",
            ConnectionRefusal::FirstByteTimeout => "first-byte-timeout",
            ConnectionRefusal::BeforeHandshakeFull => "before-handshake-full",
        }
    }
}

/// A counter whose value lives elsewhere (the binary's log writer counts the lines it
/// dropped; this only reads the count at each scrape).
#[derive(Debug)]
struct SharedCounter(Arc<AtomicU64>);

impl TypedMetric for SharedCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for SharedCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0.load(Ordering::Relaxed), None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// The server's metrics. Cheap to update from any task.
pub struct Metrics {
    registry: Registry,
    polls_ok: Counter,
    polls_error: Counter,
    files_sent: Counter,
    bytes_sent: Counter,
    handshake_error: Counter,
    handshake_timeout: Counter,
    handshake_refused: Counter,
    sessions_full: Counter,
    sessions_resumed: Counter,
    errors: Family<CodeLabel, Counter>,
    active_connections: Gauge,
    crl_next_update: Gauge,
    crl_reload_failing: Gauge,
    crl_reload_failures: Family<ReasonLabel, Counter>,
    poll_duration: Histogram,
    send_rate_busy: Counter,
    max_send_rate: Gauge,
    send_rate_transfers: Gauge,
    /// One per [`ConnectionRefusal`], in the order of `ConnectionRefusal::ALL`.
    connections_refused: Vec<Counter>,
    log_size: Gauge,
    /// The newest cosignature time over the served checkpoint (Unix seconds, 0: none);
    /// `fts_cosignature_age_seconds` is computed from it when the page is encoded.
    cosignature_time: Arc<AtomicU64>,
    cosignature_age: Gauge,
    receipts_stored: Counter,
    receipts_refused: Family<ReasonLabel, Counter>,
    receipt_store_seconds: Histogram,
    release_hosts: Family<FileStateLabel, Gauge>,
    release_seconds_to_95: Family<FileLabel, Gauge>,
    release_published: Family<FileLabel, Gauge>,
    hosts: Family<StateLabel, Gauge>,
    hosts_silent: Gauge,
    hosts_with_alarms: Family<AlarmLabel, Gauge>,
    certificates_expiring: Family<WithinLabel, Gauge>,
    status_queued: Gauge,
    status_failing: Gauge,
    /// Totals kept by the status backend, read at each scrape.
    status_dropped: Arc<AtomicU64>,
    status_write_errors: Arc<AtomicU64>,
}

/// The fleet view's figures, as [`Metrics::set_fleet`] takes them
/// ([`crate::fleet_metrics`]).
#[derive(Debug, Default)]
pub struct FleetFigures {
    /// Hosts per fleet state.
    pub hosts: Vec<(&'static str, usize)>,
    /// Silent hosts.
    pub silent: usize,
    /// Hosts per raised alarm.
    pub alarms: std::collections::BTreeMap<String, usize>,
    /// Hosts whose certificate expires within 7 days.
    pub expiring: usize,
    /// The newest releases.
    pub releases: Vec<ReleaseFigures>,
}

/// One release's figures.
#[derive(Debug)]
pub struct ReleaseFigures {
    /// Its file name.
    pub file: String,
    /// When it was published (Unix seconds).
    pub published: u64,
    /// Hosts per state (`installed`, `offered`, `held`, `failed`, `pending`, ...).
    pub states: Vec<(&'static str, usize)>,
    /// Seconds from publish to 95 % installed, once reached.
    pub seconds_to_95: Option<u64>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileStateLabel {
    file: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabel {
    file: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlarmLabel {
    alarm: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WithinLabel {
    within: &'static str,
}

/// Why the server refused a host's receipt (`fts_receipts_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptRefusal {
    /// Its signature, bytes or identity did not check.
    Invalid,
    /// The host sent receipts faster than 60 a minute.
    Rate,
    /// The status folder could not store it (the host keeps it and sends it again).
    Store,
}

impl ReceiptRefusal {
    fn label(self) -> &'static str {
        match self {
            ReceiptRefusal::Invalid => "invalid",
            ReceiptRefusal::Rate => "rate",
            ReceiptRefusal::Store => "store",
        }
    }
    const ALL: [ReceiptRefusal; 3] = [ReceiptRefusal::Invalid, ReceiptRefusal::Rate, ReceiptRefusal::Store];
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Metrics whose `fts_log_lines_dropped_total` stays 0.
    pub fn new() -> Metrics {
        Self::with_log_lines_dropped(Arc::default())
    }

    /// Metrics whose `fts_log_lines_dropped_total` reads `log_lines_dropped`, the count
    /// kept by the process's log writer.
    pub fn with_log_lines_dropped(log_lines_dropped: Arc<AtomicU64>) -> Metrics {
        let mut registry = Registry::default();

        let polls = Family::<ResultLabel, Counter>::default();
        registry.register("fts_polls", "Polls answered, by how they ended (ok or error)", polls.clone());
        let polls_ok = polls.get_or_create_owned(&ResultLabel { result: "ok" });
        let polls_error = polls.get_or_create_owned(&ResultLabel { result: "error" });

        let files_sent = Counter::default();
        registry.register("fts_files_sent", "Files sent whole to hosts", files_sent.clone());
        let bytes_sent = Counter::default();
        registry.register("fts_bytes_sent", "File body bytes sent to hosts", bytes_sent.clone());

        let handshakes = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "fts_handshake_failures",
            "Connections that failed before a request: the client refused (its certificate in the \
             handshake, or its session after it), a timeout, or another TLS error",
            handshakes.clone(),
        );
        let handshake = |failure: HandshakeFailure| {
            handshakes.get_or_create_owned(&ReasonLabel { reason: failure.label() })
        };
        let (handshake_error, handshake_timeout, handshake_refused) = (
            handshake(HandshakeFailure::Error),
            handshake(HandshakeFailure::Timeout),
            handshake(HandshakeFailure::Refused),
        );

        let sessions = Family::<HandshakeLabel, Counter>::default();
        registry.register(
            "fts_tls_sessions",
            "TLS sessions accepted, by handshake: full, or resumed from a session ticket (which \
             replicas sharing a --ticket-key resume from each other)",
            sessions.clone(),
        );
        let (sessions_full, sessions_resumed) = (
            sessions.get_or_create_owned(&HandshakeLabel { handshake: "full" }),
            sessions.get_or_create_owned(&HandshakeLabel { handshake: "resumed" }),
        );

        let errors = Family::<CodeLabel, Counter>::default();
        registry.register("fts_errors", "Protocol error frames sent, by code", errors.clone());
        for code in &ERROR_CODES {
            errors.get_or_create_owned(&CodeLabel { code: code.as_str().to_owned() });
        }

        let active_connections = Gauge::default();
        registry.register(
            "fts_active_connections",
            "Connections open now (handshaking, polling or closing)",
            active_connections.clone(),
        );
        let crl_next_update = Gauge::default();
        registry.register(
            "fts_crl_next_update_seconds",
            "Unix time of the loaded CRL's next update (the earliest, with several); 0 when \
             revocation is off",
            crl_next_update.clone(),
        );
        let crl_reload_failing = Gauge::default();
        registry.register(
            "fts_crl_reload_failing",
            "1 while the CRL file has changed but cannot be put in force (the previous CRL is \
             still enforced and the file is tried again every few seconds), else 0",
            crl_reload_failing.clone(),
        );
        let crl_reload_failures = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "fts_crl_reload_failures",
            "Attempts to load a changed CRL that failed: unreadable (read), not a usable CRL \
             (invalid), or a lower CRL number than the one in force (older)",
            crl_reload_failures.clone(),
        );
        for failure in CrlReloadFailure::ALL {
            crl_reload_failures.get_or_create_owned(&ReasonLabel { reason: failure.label() });
        }
        let poll_duration = Histogram::new(POLL_DURATION_BUCKETS);
        registry.register(
            "fts_poll_duration_seconds",
            "Time from the end of the handshake to the end of the poll",
            poll_duration.clone(),
        );

        let send_rate_busy = Counter::default();
        registry.register(
            "fts_send_rate_busy",
            "Polls answered busy because a new transfer would not fit in --max-send-rate (also \
             counted in fts_errors_total{code=\"busy\"})",
            send_rate_busy.clone(),
        );
        let max_send_rate = Gauge::default();
        registry.register(
            "fts_max_send_rate_bytes_per_second",
            "The cap on the server's total body bytes per second (--max-send-rate); 0 when there is none",
            max_send_rate.clone(),
        );
        let send_rate_transfers = Gauge::default();
        registry.register(
            "fts_send_rate_transfers",
            "Answers sending files under --max-send-rate now (each admitted while it fits)",
            send_rate_transfers.clone(),
        );

        let refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "fts_connections_refused",
            "Connections closed before their TLS handshake by the admission checks, by reason",
            refused.clone(),
        );
        let connections_refused = ConnectionRefusal::ALL
            .iter()
            .map(|reason| refused.get_or_create_owned(&ReasonLabel { reason: reason.label() }))
            .collect();
        registry.register(
            "fts_log_lines_dropped",
            "Log lines dropped because the log output did not keep up (the server never waits \
             for its log)",
            SharedCounter(log_lines_dropped),
        );

        let log_size = Gauge::default();
        registry.register(
            "fts_log_size",
            "Leaves of the log checkpoint this server serves (0: the store has no log yet)",
            log_size.clone(),
        );
        let cosignature_age = Gauge::default();
        registry.register(
            "fts_cosignature_age_seconds",
            "Age of the newest cosignature over the checkpoint served; with none, counted from              1970, so that any alert on it fires. Hosts raise `stale` past their --max-age",
            cosignature_age.clone(),
        );
        let receipts_stored = Counter::default();
        registry.register(
            "fts_receipts_stored",
            "Host receipts stored durably and acknowledged",
            receipts_stored.clone(),
        );
        let receipts_refused = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "fts_receipts_refused",
            "Host receipts not stored: invalid (signature, bytes or identity), rate (over 60 a \
             minute per host) or store (the status folder failed; the host sends it again)",
            receipts_refused.clone(),
        );
        for reason in ReceiptRefusal::ALL {
            receipts_refused.get_or_create_owned(&ReasonLabel { reason: reason.label() });
        }
        let receipt_store_seconds = Histogram::new(RECEIPT_STORE_BUCKETS);
        registry.register(
            "fts_receipt_store_seconds",
            "Time from a receipt's arrival until it is durable (batched with the others arriving)",
            receipt_store_seconds.clone(),
        );
        let release_hosts = Family::<FileStateLabel, Gauge>::default();
        registry.register(
            "fts_release_hosts",
            "Per release (the newest version of a file name; the 20 newest names), hosts that \
             should have it by state: installed, offered, pending, held, failed, silent, \
             withdrawn, superseded",
            release_hosts.clone(),
        );
        let release_seconds_to_95 = Family::<FileLabel, Gauge>::default();
        registry.register(
            "fts_release_seconds_to_95",
            "Seconds from a release's publish until 95 % of its hosts had installed it (absent until then)",
            release_seconds_to_95.clone(),
        );
        let release_published = Family::<FileLabel, Gauge>::default();
        registry.register(
            "fts_release_published_seconds",
            "Unix time a release was published",
            release_published.clone(),
        );
        let hosts = Family::<StateLabel, Gauge>::default();
        registry.register(
            "fts_hosts",
            "Hosts by fleet state: current, behind, held, failing, silent, revoked, lost",
            hosts.clone(),
        );
        let hosts_silent = Gauge::default();
        registry.register(
            "fts_hosts_silent",
            "Hosts not heard from for three times the poll interval they promised",
            hosts_silent.clone(),
        );
        let hosts_with_alarms = Family::<AlarmLabel, Gauge>::default();
        registry.register(
            "fts_hosts_with_alarms",
            "Hosts with each log alarm raised (stale, withheld, fork, clock, behind)",
            hosts_with_alarms.clone(),
        );
        let certificates_expiring = Family::<WithinLabel, Gauge>::default();
        registry.register(
            "fts_certificates_expiring",
            "Hosts whose client certificate expires within 7 days (not revoked)",
            certificates_expiring.clone(),
        );
        let status_queued = Gauge::default();
        registry.register(
            "fts_status_queued",
            "Status updates waiting in memory for the status database (it is slow or down; \
             polls go on, and receipts are acknowledged only once stored)",
            status_queued.clone(),
        );
        let status_failing = Gauge::default();
        registry.register(
            "fts_status_write_failing",
            "1 while writes to the status database fail (retried), else 0",
            status_failing.clone(),
        );
        let status_dropped = Arc::new(AtomicU64::new(0));
        registry.register(
            "fts_status_dropped",
            "Status updates dropped because the queue for the status database was full (each \
             host's next change is written again)",
            SharedCounter(Arc::clone(&status_dropped)),
        );
        let status_write_errors = Arc::new(AtomicU64::new(0));
        registry.register(
            "fts_status_write_errors",
            "Failed writes to the status database (each is retried)",
            SharedCounter(Arc::clone(&status_write_errors)),
        );
        Metrics {
            status_queued,
            status_failing,
            status_dropped,
            status_write_errors,
            release_hosts,
            release_seconds_to_95,
            release_published,
            hosts,
            hosts_silent,
            hosts_with_alarms,
            certificates_expiring,
            receipts_stored,
            receipts_refused,
            receipt_store_seconds,
            registry,
            polls_ok,
            polls_error,
            files_sent,
            bytes_sent,
            handshake_error,
            handshake_timeout,
            handshake_refused,
            sessions_full,
            sessions_resumed,
            errors,
            active_connections,
            crl_next_update,
            crl_reload_failing,
            crl_reload_failures,
            poll_duration,
            send_rate_busy,
            max_send_rate,
            send_rate_transfers,
            connections_refused,
            log_size,
            cosignature_time: Arc::new(AtomicU64::new(0)),
            cosignature_age,
        }
    }

    /// The fleet view's gauges, replaced whole (a release or alarm gone is gone).
    pub fn set_fleet(&self, figures: &FleetFigures) {
        let int = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.hosts.clear();
        for (state, n) in &figures.hosts {
            self.hosts.get_or_create(&StateLabel { state }).set(int(*n));
        }
        self.hosts_silent.set(int(figures.silent));
        self.hosts_with_alarms.clear();
        for (alarm, n) in &figures.alarms {
            self.hosts_with_alarms.get_or_create(&AlarmLabel { alarm: alarm.clone() }).set(int(*n));
        }
        self.certificates_expiring.get_or_create(&WithinLabel { within: "7d" }).set(int(figures.expiring));
        self.release_hosts.clear();
        self.release_seconds_to_95.clear();
        self.release_published.clear();
        for release in &figures.releases {
            let file = || FileLabel { file: release.file.clone() };
            for (state, n) in &release.states {
                let label = FileStateLabel { file: release.file.clone(), state };
                self.release_hosts.get_or_create(&label).set(int(*n));
            }
            self.release_published.get_or_create(&file()).set(i64::try_from(release.published).unwrap_or(0));
            if let Some(seconds) = release.seconds_to_95 {
                self.release_seconds_to_95
                    .get_or_create(&file())
                    .set(i64::try_from(seconds).unwrap_or(i64::MAX));
            }
        }
    }

    /// Receipts stored durably, `seconds` after they arrived.
    pub fn receipts_stored(&self, count: usize, seconds: f64) {
        self.receipts_stored.inc_by(count as u64);
        self.receipt_store_seconds.observe(seconds);
    }

    /// Receipts refused.
    pub fn receipts_refused(&self, reason: ReceiptRefusal, count: usize) {
        self.receipts_refused.get_or_create(&ReasonLabel { reason: reason.label() }).inc_by(count as u64);
    }

    /// The log checkpoint served: its size and the newest cosignature time over it.
    pub fn set_log(&self, size: u64, newest_cosignature: Option<u64>) {
        self.log_size.set(i64::try_from(size).unwrap_or(i64::MAX));
        self.cosignature_time.store(newest_cosignature.unwrap_or(0), Ordering::Relaxed);
    }

    /// The admission checks closed a connection before its handshake.
    pub fn connection_refused(&self, reason: ConnectionRefusal) {
        let index = ConnectionRefusal::ALL.iter().position(|r| *r == reason);
        if let Some(counter) = index.and_then(|i| self.connections_refused.get(i)) {
            counter.inc();
        }
    }

    /// A poll ended, well or not, after `seconds`.
    pub fn poll_finished(&self, ok: bool, seconds: f64) {
        if ok { &self.polls_ok } else { &self.polls_error }.inc();
        self.poll_duration.observe(seconds);
    }

    /// A file was sent whole.
    pub fn file_sent(&self) {
        self.files_sent.inc();
    }

    /// Body bytes went out.
    pub fn bytes_sent(&self, bytes: u64) {
        self.bytes_sent.inc_by(bytes);
    }

    /// A poll was answered `busy`: its transfer would not fit in `--max-send-rate`.
    pub fn send_rate_busy(&self) {
        self.send_rate_busy.inc();
    }

    /// The cap of `--max-send-rate` in bytes per second (`None` shows 0).
    pub fn set_max_send_rate(&self, bytes_per_second: Option<u64>) {
        self.max_send_rate.set(bytes_per_second.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)));
    }

    /// Counts an answer as sending under `--max-send-rate` until the guard is dropped.
    pub fn transfer_admitted(&self) -> ConnectionGuard {
        self.send_rate_transfers.inc();
        ConnectionGuard { gauge: self.send_rate_transfers.clone() }
    }

    /// A TLS handshake failed, counted by how.
    pub fn handshake_failed(&self, failure: HandshakeFailure) {
        match failure {
            HandshakeFailure::Error => &self.handshake_error,
            HandshakeFailure::Timeout => &self.handshake_timeout,
            HandshakeFailure::Refused => &self.handshake_refused,
        }
        .inc();
    }

    /// A TLS session passed every check, after a full handshake or a resumed one.
    pub fn session_accepted(&self, resumed: bool) {
        if resumed { &self.sessions_resumed } else { &self.sessions_full }.inc();
    }

    /// An error frame with `code` was sent.
    pub fn error_sent(&self, code: &ErrorCode) {
        // The series of every known code exists already: this takes the family's
        // read lock only, and only on an error path.
        self.errors.get_or_create(&CodeLabel { code: code.as_str().to_owned() }).inc();
    }

    /// Counts a connection as open until the returned guard is dropped (also when
    /// its task is cancelled).
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.active_connections.inc();
        ConnectionGuard { gauge: self.active_connections.clone() }
    }

    /// The next-update time of the CRL in force, as unix seconds; `None` (revocation
    /// off, or a CRL without one) shows 0.
    pub fn set_crl_next_update(&self, unix_seconds: Option<i64>) {
        self.crl_next_update.set(unix_seconds.unwrap_or(0));
    }

    /// Whether the changed CRL file cannot be put in force now.
    pub fn set_crl_reload_failing(&self, failing: bool) {
        self.crl_reload_failing.set(i64::from(failing));
    }

    /// One attempt to load the changed CRL failed.
    pub fn crl_reload_failed(&self, failure: CrlReloadFailure) {
        self.crl_reload_failures.get_or_create(&ReasonLabel { reason: failure.label() }).inc();
    }

    /// How the status backend's writes are going ([`fts_status::StatusBackend::health`]).
    pub fn set_status_health(&self, health: fts_status::BackendHealth) {
        self.status_queued.set(i64::try_from(health.queued).unwrap_or(i64::MAX));
        self.status_failing.set(i64::from(health.failing));
        self.status_dropped.store(health.dropped, Ordering::Relaxed);
        self.status_write_errors.store(health.write_errors, Ordering::Relaxed);
    }

    /// Everything, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let age = now.saturating_sub(self.cosignature_time.load(Ordering::Relaxed));
        self.cosignature_age.set(i64::try_from(age).unwrap_or(i64::MAX));
        let mut text = String::new();
        // Writing into a String cannot fail; an encoder error would only drop lines.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry) {
            tracing::warn!(error = %ErrorChain(&e), "cannot encode the metrics");
        }
        text
    }
}

/// Decrements its gauge when dropped (`fts_active_connections`, or
/// `fts_send_rate_transfers`).
pub struct ConnectionGuard {
    gauge: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_there_from_the_start_and_counts() {
        let metrics = Metrics::new();
        let text = metrics.encode();
        for line in [
            "fts_polls_total{result=\"ok\"} 0",
            "fts_polls_total{result=\"error\"} 0",
            "fts_files_sent_total 0",
            "fts_bytes_sent_total 0",
            "fts_handshake_failures_total{reason=\"error\"} 0",
            "fts_tls_sessions_total{handshake=\"full\"} 0",
            "fts_tls_sessions_total{handshake=\"resumed\"} 0",
            "fts_errors_total{code=\"bad-json\"} 0",
            "fts_errors_total{code=\"busy\"} 0",
            "fts_active_connections 0",
            "fts_crl_next_update_seconds 0",
            "fts_crl_reload_failing 0",
            "fts_crl_reload_failures_total{reason=\"read\"} 0",
            "fts_crl_reload_failures_total{reason=\"older\"} 0",
            "fts_poll_duration_seconds_count 0",
            "fts_connections_refused_total{reason=\"per-ip-handshakes\"} 0",
            "fts_connections_refused_total{reason=\"first-byte-timeout\"} 0",
            "fts_log_lines_dropped_total 0",
            "fts_send_rate_busy_total 0",
            "fts_max_send_rate_bytes_per_second 0",
            "fts_send_rate_transfers 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }

        metrics.poll_finished(true, 0.2);
        metrics.poll_finished(false, 3.0);
        metrics.file_sent();
        metrics.bytes_sent(1234);
        metrics.error_sent(&ErrorCode::BadJson);
        metrics.handshake_failed(HandshakeFailure::Timeout);
        metrics.set_crl_next_update(Some(1_900_000_000));
        metrics.set_crl_reload_failing(true);
        metrics.crl_reload_failed(CrlReloadFailure::Older);
        metrics.send_rate_busy();
        metrics.set_max_send_rate(Some(8 << 20));
        let transfer = metrics.transfer_admitted();
        let guard = metrics.connection_opened();
        let text = metrics.encode();
        drop(guard);
        drop(transfer);
        for line in [
            "fts_polls_total{result=\"ok\"} 1",
            "fts_polls_total{result=\"error\"} 1",
            "fts_files_sent_total 1",
            "fts_bytes_sent_total 1234",
            "fts_handshake_failures_total{reason=\"timeout\"} 1",
            "fts_errors_total{code=\"bad-json\"} 1",
            "fts_active_connections 1",
            "fts_crl_next_update_seconds 1900000000",
            "fts_crl_reload_failing 1",
            "fts_crl_reload_failures_total{reason=\"older\"} 1",
            "fts_poll_duration_seconds_count 2",
            "fts_poll_duration_seconds_bucket{le=\"0.25\"} 1",
            "fts_send_rate_busy_total 1",
            "fts_max_send_rate_bytes_per_second 8388608",
            "fts_send_rate_transfers 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        assert!(metrics.encode().lines().any(|l| l == "fts_active_connections 0"), "the guard decrements");
    }

    #[test]
    fn refusals_count_by_reason_and_dropped_log_lines_are_read_from_the_writer() {
        let dropped = Arc::new(AtomicU64::new(0));
        let metrics = Metrics::with_log_lines_dropped(Arc::clone(&dropped));
        metrics.connection_refused(ConnectionRefusal::Rate);
        metrics.connection_refused(ConnectionRefusal::Rate);
        metrics.connection_refused(ConnectionRefusal::ProxyHeader);
        dropped.store(17, Ordering::Relaxed);
        let text = metrics.encode();
        for line in [
            "fts_connections_refused_total{reason=\"rate\"} 2",
            "fts_connections_refused_total{reason=\"proxy-header\"} 1",
            "fts_connections_refused_total{reason=\"per-ip-handshakes\"} 0",
            "fts_log_lines_dropped_total 17",
            "# TYPE fts_log_lines_dropped_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }
}
