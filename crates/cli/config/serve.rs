//! `fts serve`: the flags as [`ServerSettings`], with `--max-connections` and
//! `--max-active-polls` fitted into the open-file limit ([`crate::fd_limit`]), the CRL
//! found beside the client CA when not named, and the checks that span flags
//! (plaintext beyond loopback). Loading the credentials is the command's: it happens
//! where the CRL watcher takes over ([`crate::serve`]).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fts_net::admission::AdmissionSettings;
use fts_net::crl_watch::CrlHealth;
use fts_net::metrics::Metrics;
use fts_net::pacing::MinSendRate;
use fts_net::server::ServerSettings;
use fts_trust::OlderCrls;
use fts_trust::crl::CRL_FILE;

use crate::UsageError;
use crate::args::ServeArgs;
use crate::fd_limit::{self, Wanted};
use crate::units::Rate;

/// The defaults of `--max-connections` and `--max-active-polls`, before they are
/// fitted into the open-file limit.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
const DEFAULT_MAX_ACTIVE_POLLS: usize = 2_000;

/// What `fts serve` is to run.
pub struct Serve {
    pub listen: SocketAddr,
    /// The store, opened read-only.
    pub store: PathBuf,
    pub status_dir: PathBuf,
    /// `--status-db`: status in PostgreSQL (else in `status_dir`).
    pub status_db: Option<fts_status_db::DbSettings>,
    /// `--status-interval`: how often the times of unchanged polls are written.
    pub status_interval: std::time::Duration,
    /// `None`: `--plaintext`.
    pub tls: Option<TlsFiles>,
    pub settings: ServerSettings,
    /// The server's counters, shared with the CRL watcher and `--metrics-listen`.
    pub metrics: Arc<Metrics>,
    pub metrics_listen: Option<SocketAddr>,
}

/// The server's credentials and revocation list.
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
    /// `--crl`, else `ca.crl` beside `--client-ca` when it exists; `None`: revocation
    /// is off.
    pub crl: Option<PathBuf>,
    pub older_crls: OlderCrls,
    /// `--ticket-key`: the keys shared by the replicas; `None`: a key of this process.
    pub ticket_key: Option<PathBuf>,
}

impl Serve {
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        if args.plaintext && !args.listen.ip().is_loopback() && !args.allow_insecure_remote {
            return Err(UsageError::new(format!(
                "--plaintext on {} would serve without TLS beyond this machine: use TLS, a loopback \
                 address, or add --allow-insecure-remote for a trusted segment",
                args.listen
            ))
            .into());
        }
        if let Some(max) = args.max_send_rate
            && max.bytes_per_second() < args.min_send_rate.bytes()
        {
            return Err(UsageError::new(format!(
                "--max-send-rate {max} is below --min-send-rate {}: no transfer could ever be admitted, \
                 since each must keep the minimum send rate; raise --max-send-rate or lower --min-send-rate",
                Rate::from_bytes_per_second(args.min_send_rate.bytes()),
            ))
            .into());
        }
        let limits = fit_open_file_limit(&args)?;
        let settings = ServerSettings {
            max_connections: at_least_one("--max-connections", limits.max_connections)?,
            max_active_polls: at_least_one("--max-active-polls", limits.max_active_polls)?,
            max_polls_per_client: args.max_polls_per_client,
            handshake_timeout: args.handshake_timeout,
            request_timeout: args.request_timeout,
            min_send_rate: MinSendRate {
                bytes_per_second: args.min_send_rate.bytes(),
                window: args.min_send_rate_window,
            },
            max_send_rate: args.max_send_rate.map(Rate::bytes_per_second),
            poll_deadline: args.poll_deadline,
            poll_max_files: args.poll_max_files,
            poll_max_bytes: args.poll_max_bytes.bytes(),
            poll_after: args.poll_after,
            grace: args.grace,
            status_flush_interval: args.status_interval,
            // Computed from every host's status: only when someone reads them.
            fleet_metrics_interval: args.metrics_listen.map(|_| args.fleet_metrics_interval),
            admission: AdmissionSettings {
                max_handshakes_per_source: args.max_handshakes_per_ip,
                connection_rate_per_source: args.max_connection_rate_per_ip,
                first_byte_timeout: args.first_byte_timeout,
                trusted_proxies: args.trusted_proxies,
                proxy_protocol: args.proxy_protocol,
            },
            crl_max_stale: args.crl_max_stale,
            crl_health: CrlHealth::new(),
        };
        let tls = (!args.plaintext).then(|| TlsFiles {
            crl: args.crl.or_else(|| default_crl(&args.client_ca)),
            cert: args.cert,
            key: args.key,
            client_ca: args.client_ca,
            older_crls: if args.accept_older_crl { OlderCrls::AcceptOnce } else { OlderCrls::Refuse },
            ticket_key: args.ticket_key,
        });
        Ok(Serve {
            listen: args.listen,
            store: args.store,
            status_dir: args.status_dir,
            status_db: args.db.settings(),
            status_interval: args.status_interval,
            tls,
            settings,
            metrics: Arc::new(Metrics::with_log_lines_dropped(crate::log_writer::lines_dropped())),
            metrics_listen: args.metrics_listen,
        })
    }
}

/// Fits `--max-connections` and `--max-active-polls` into the open-file limit, after
/// raising the soft limit to the hard one ([`crate::fd_limit`]).
fn fit_open_file_limit(args: &ServeArgs) -> anyhow::Result<fd_limit::Fitted> {
    let wanted = |value: Option<std::num::NonZeroUsize>, default| Wanted {
        value: value.map_or(default, |n| n.get()),
        explicit: value.is_some(),
    };
    let connections = wanted(args.max_connections, DEFAULT_MAX_CONNECTIONS);
    let polls = wanted(args.max_active_polls, DEFAULT_MAX_ACTIVE_POLLS);
    let limit = fd_limit::raise_soft_limit();
    let fitted = fd_limit::fit(limit, connections, polls).map_err(UsageError::new)?;
    if (fitted.max_connections, fitted.max_active_polls) != (connections.value, polls.value) {
        tracing::warn!(
            open_file_limit = limit.unwrap_or(u64::MAX),
            max_connections = fitted.max_connections,
            max_active_polls = fitted.max_active_polls,
            "lowered the default --max-connections / --max-active-polls to fit the open-file limit \
             (RLIMIT_NOFILE hard limit): raise it to serve more at once (LimitNOFILE= in the unit, \
             ulimit -Hn), or set both flags"
        );
    }
    Ok(fitted)
}

/// A limit the open-file limit fitted, which must still let one connection in.
fn at_least_one(flag: &str, value: usize) -> Result<NonZeroUsize, UsageError> {
    NonZeroUsize::new(value).ok_or_else(|| {
        UsageError::new(format!("{flag} would be 0 to fit the open-file limit: raise it (ulimit -Hn)"))
    })
}

/// `ca.crl` beside the client CA, when it exists.
fn default_crl(client_ca: &Path) -> Option<PathBuf> {
    let path = client_ca.parent().unwrap_or(Path::new(".")).join(CRL_FILE);
    path.exists().then_some(path)
}
