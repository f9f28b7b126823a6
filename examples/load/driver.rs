//! The load driver shared by `examples/load` (the full run of `scripts/load.sh`) and
//! `tests/it/load.rs` (a reduced run in the suite): many hosts polling one server at once
//! through the real verifying client (`fts_net::client::Client`, the code of
//! `fts poll`), while idle TCP connections that never start a handshake are held open.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fts_net::client::receive::NoProgress;
use fts_net::client::{Client, ClientSettings, ClientTransport};
use fts_proto::{ClientId, Target};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// What to run.
pub struct LoadConfig {
    pub server: SocketAddr,
    /// A folder holding `ca.crt`, `signing.pub` and `<id>.crt`/`<id>.key` for each id.
    pub certs: PathBuf,
    /// Where each host gets its destination folder.
    pub work: PathBuf,
    pub ids: Vec<String>,
    pub polls_per_client: usize,
    pub idle_connections: usize,
    /// How long an idle connection is watched for the server to close it.
    pub idle_limit: Duration,
}

/// What happened.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub polls_ok: usize,
    /// One line per failed poll.
    pub failures: Vec<String>,
    /// The duration of every successful poll (connect to `done`), sorted.
    pub durations: Vec<Duration>,
    pub files_installed: usize,
    pub idle_opened: usize,
    pub idle_closed_by_server: usize,
    /// The longest an idle connection stayed open before the server closed it.
    pub idle_longest: Duration,
    pub elapsed: Duration,
}

impl LoadReport {
    /// The `p`-th percentile (0-100) of poll durations.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.durations.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * (self.durations.len() - 1) as f64).round() as usize;
        self.durations[rank.min(self.durations.len() - 1)]
    }

    pub fn summary(&self) -> String {
        format!(
            "polls ok {}, failed {}; poll duration p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; files installed {}; \
             idle connections {} opened, {} closed by the server (the last after {:.1} s); wall time {:.1} s",
            self.polls_ok,
            self.failures.len(),
            ms(self.percentile(50.0)),
            ms(self.percentile(99.0)),
            ms(self.durations.last().copied().unwrap_or_default()),
            self.files_installed,
            self.idle_opened,
            self.idle_closed_by_server,
            self.idle_longest.as_secs_f64(),
            self.elapsed.as_secs_f64()
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A host's client, as `fts poll` would build it from its flags.
fn client_for(config: &LoadConfig, id: &str) -> Result<Client, String> {
    let certs = &config.certs;
    let err = |e: &dyn std::fmt::Display| format!("{id}: {e}");
    let trusted = fts_trust::TrustedKeys::load(&[certs.join("signing.pub")]).map_err(|e| err(&e))?;
    let chain = fts_trust::pem::load_certificates(&certs.join(format!("{id}.crt"))).map_err(|e| err(&e))?;
    let certificate = chain[0].clone();
    let tls = fts_trust::client_config(
        fts_trust::pem::load_certificates(&certs.join("ca.crt")).map_err(|e| err(&e))?,
        chain,
        fts_trust::pem::load_private_key(&certs.join(format!("{id}.key"))).map_err(|e| err(&e))?,
    )
    .map_err(|e| err(&e))?;
    let server_name = fts_trust::tls::server_name(&config.server.ip().to_string()).map_err(|e| err(&e))?;
    let client_id = ClientId::parse(id).map_err(|e| err(&e))?;
    let dest = config.work.join(id);
    let settings = ClientSettings {
        receipt_signer: None,
        next_poll_within: 60,
        reboot_required_file: None,
        failover: Default::default(),
        server: config.server.to_string(),
        transport: ClientTransport::tls(tls, server_name, &certificate),
        id: client_id.clone(),
        targets: vec![Target::Client(client_id), Target::All],
        trusted,
        state_path: dest.join(".fts-state.json"),
        dest,
        max_file_size: 1 << 30,
        read_timeout: Duration::from_secs(60),
        poll_timeout: Duration::from_secs(6 * 3600),
        max_frames: 10_000,
        hook: None,
        exec_withdrawn: None,
        hook_retries: 5,
        hold_on_hook_failure: false,
        retry_base: std::time::Duration::from_secs(10),
        min_free_percent: 5,
        max_rate: None,
        log: fts_net::client::freshness::LogSettings::default(),
    };
    Client::open(settings, false).map_err(|e| err(&e))
}

/// One host: `polls` polls in a row. Returns the durations of those that succeeded,
/// the files installed, and a line per failure.
async fn host(config: &LoadConfig, id: &str) -> (Vec<Duration>, usize, Vec<String>) {
    let mut client = match client_for(config, id) {
        Ok(client) => client,
        Err(e) => return (Vec::new(), 0, vec![e; config.polls_per_client]),
    };
    let (mut durations, mut installed, mut failures) = (Vec::new(), 0, Vec::new());
    for n in 0..config.polls_per_client {
        let started = Instant::now();
        match client.poll_once(&mut NoProgress).await {
            Ok(outcome) if outcome.reported.is_empty() => {
                durations.push(started.elapsed());
                installed += outcome.installed.len();
            }
            Ok(outcome) => failures.push(format!("{id} poll {n}: reported {:?}", outcome.reported)),
            Err(e) => failures.push(format!("{id} poll {n}: {e}")),
        }
    }
    (durations, installed, failures)
}

/// Holds one idle connection until the server closes it or `limit` passes; returns how
/// long it stayed open if the server closed it.
async fn idle(mut stream: TcpStream, limit: Duration) -> Option<Duration> {
    let opened = Instant::now();
    let mut buf = [0u8; 64];
    loop {
        match tokio::time::timeout_at((opened + limit).into(), stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(opened.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Runs the load: opens the idle connections first, then starts every host at once.
pub async fn run(config: std::sync::Arc<LoadConfig>) -> LoadReport {
    let started = Instant::now();
    let mut report = LoadReport::default();
    let mut idle_tasks = tokio::task::JoinSet::new();
    for _ in 0..config.idle_connections {
        match TcpStream::connect(config.server).await {
            Ok(stream) => {
                report.idle_opened += 1;
                idle_tasks.spawn(idle(stream, config.idle_limit));
            }
            Err(e) => report.failures.push(format!("idle connection: {e}")),
        }
    }

    let mut hosts = tokio::task::JoinSet::new();
    for id in config.ids.clone() {
        let config = std::sync::Arc::clone(&config);
        hosts.spawn(async move { host(&config, &id).await });
    }
    while let Some(joined) = hosts.join_next().await {
        match joined {
            Ok((durations, installed, failures)) => {
                report.polls_ok += durations.len();
                report.durations.extend(durations);
                report.files_installed += installed;
                report.failures.extend(failures);
            }
            Err(e) => report.failures.push(format!("a host task failed: {e}")),
        }
    }
    report.durations.sort();

    while let Some(joined) = idle_tasks.join_next().await {
        if let Ok(Some(open_for)) = joined {
            report.idle_closed_by_server += 1;
            report.idle_longest = report.idle_longest.max(open_for);
        }
    }
    report.elapsed = started.elapsed();
    report
}

/// The server's peak resident memory (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
