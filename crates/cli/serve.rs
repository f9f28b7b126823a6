//! `fts serve`: resolves the flags into server settings, loads the TLS credentials and
//! the CRL, opens the store read-only, and runs the fts-net server until SIGINT or
//! SIGTERM. SIGHUP reloads the CRL at once; a changed CRL file is picked up anyway.
//!
//! It never loads the signing key: nothing here reads `--signing-key` or
//! `signing.key`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fts_net::crl_watch::{earliest_next_update, log_loaded, watch_crl};
use fts_net::metrics::Metrics;
use fts_net::metrics_http::serve_metrics;
use fts_net::pacing::MinSendRate;
use fts_net::server::{Server, ServerSettings, Transport};
use fts_proto::Published;
use fts_store::{ServerStatus, StatusDir, StoreReader};
use fts_trust::ClientAuth;
use fts_trust::crl::{CRL_FILE, Crl, load_crls};
use fts_trust::pem::{load_certificates, load_private_key};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use crate::UsageError;
use crate::args::ServeArgs;

/// How often the CRL file is looked at for changes.
const CRL_CHECK_INTERVAL: Duration = Duration::from_secs(2);

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.plaintext && !args.listen.ip().is_loopback() && !args.allow_insecure_remote {
        return Err(UsageError(format!(
            "--plaintext on {} would serve without TLS beyond this machine: use TLS, a loopback \
             address, or add --allow-insecure-remote for a trusted segment",
            args.listen
        ))
        .into());
    }
    let metrics = Arc::new(Metrics::new());
    let settings = ServerSettings {
        max_connections: args.max_connections,
        max_active_polls: args.max_active_polls,
        max_polls_per_client: args.max_polls_per_client,
        handshake_timeout: args.handshake_timeout,
        request_timeout: args.request_timeout,
        min_send_rate: MinSendRate {
            bytes_per_second: args.min_send_rate,
            window: args.min_send_rate_window,
        },
        poll_deadline: args.poll_deadline,
        poll_max_files: usize::try_from(args.poll_max_files).unwrap_or(usize::MAX),
        poll_max_bytes: args.poll_max_bytes,
        poll_after: args.poll_after,
        grace: args.grace,
        status_flush_interval: args.status_interval,
        metrics: Arc::clone(&metrics),
    };
    for (flag, value) in [
        ("--max-connections", args.max_connections),
        ("--max-active-polls", args.max_active_polls),
        ("--max-polls-per-client", args.max_polls_per_client),
        ("--poll-max-files", settings.poll_max_files),
    ] {
        if value == 0 {
            return Err(UsageError(format!("{flag} must be at least 1")).into());
        }
    }
    if args.status_interval.is_zero() {
        return Err(UsageError("--status-interval must be longer than 0s".to_owned()).into());
    }

    let store = StoreReader::open(&args.store).with_context(|| {
        format!(
            "cannot open the store {} (publish with `fts publish` first, or set --store)",
            args.store.display()
        )
    })?;
    let status = StatusDir::open_or_create(&args.status_dir)
        .with_context(|| format!("cannot open the status folder {}", args.status_dir.display()))?;
    // A second handle on the same folder for `server.json` (the CRL's state, which
    // `fts status` warns about); the server keeps the first for client files.
    let server_status = Arc::new(StatusDir::open(&args.status_dir));

    // Each file being sent holds one blocking thread that reads its blob, for as long
    // as its client takes to read it. Room for one per active poll, plus some for the
    // status writes, so slow readers can never starve the blocking work of others.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(args.max_active_polls.saturating_add(64))
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let reload = Arc::new(Notify::new());
        let transport = if args.plaintext {
            tracing::warn!("serving WITHOUT TLS (--plaintext): client ids are not authenticated");
            record_crl_state(&server_status, None);
            Transport::Plaintext
        } else {
            let (transport, client_auth, crl) = tls_transport(&args, &metrics)?;
            record_crl_state(&server_status, crl.as_ref().map(|(_, crls)| crls.as_slice()));
            if let Some((path, _)) = crl {
                let (metrics, server_status) = (Arc::clone(&metrics), Arc::clone(&server_status));
                let on_loaded = move |crls: &[Crl]| {
                    metrics.set_crl_next_update(earliest_next_update(crls));
                    record_crl_state(&server_status, Some(crls));
                };
                tokio::spawn(watch_crl(path, client_auth, CRL_CHECK_INTERVAL, Arc::clone(&reload), on_loaded));
            }
            transport
        };

        // Bound before the server, so that a busy or wrong address stops the start.
        if let Some(metrics_addr) = args.metrics_listen {
            let listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("cannot listen on {metrics_addr} for metrics (--metrics-listen)"))?;
            let addr = listener.local_addr().context("cannot read the metrics listening address")?;
            if !addr.ip().is_loopback() {
                tracing::info!(%addr, "metrics are plain HTTP without authentication: restrict who can reach this address");
            }
            tracing::info!(%addr, "serving metrics at /metrics");
            tokio::spawn(serve_metrics(listener, Arc::clone(&metrics)));
        }

        let server = Server::bind(args.listen, transport, settings, store, status)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = server.local_addr().context("cannot read the listening address")?;
        tracing::info!(%addr, store = %args.store.display(), status_dir = %args.status_dir.display(), "listening");

        let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let shutdown = async move {
            loop {
                tokio::select! {
                    _ = sigint.recv() => break,
                    _ = sigterm.recv() => break,
                    _ = sighup.recv() => reload.notify_one(),
                }
            }
            tracing::info!("shutdown requested: no new connections");
        };
        server.run(shutdown).await;
        anyhow::Ok(())
    })
}

/// Writes the revocation state to `server.json` in the status folder. `None`: no CRL.
fn record_crl_state(status: &StatusDir, crls: Option<&[Crl]>) {
    let crls = crls.unwrap_or_default();
    let next_update = crls.iter().filter_map(Crl::next_update).min().map(|t| published(t.unix_timestamp()));
    let server = ServerStatus {
        format: fts_store::status::STATUS_FORMAT,
        updated: Published::from_unix_seconds(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        ),
        revocation: !crls.is_empty(),
        crl_next_update: next_update,
        crl_number: crls.iter().filter_map(Crl::number).max(),
    };
    if let Err(e) = status.write_server(&server) {
        tracing::warn!(error = %e, "cannot record the server's revocation state for `fts status`");
    }
}

fn published(unix: i64) -> Published {
    Published::from_unix_seconds(u64::try_from(unix).unwrap_or(0))
}

/// Loads the server's certificate and key, the client CA and the CRL, and logs
/// whether revocation is on. Returns the CRL path to watch and what it held, when
/// there is one.
#[allow(clippy::type_complexity)]
fn tls_transport(
    args: &ServeArgs,
    metrics: &Metrics,
) -> anyhow::Result<(Transport, Arc<ClientAuth>, Option<(PathBuf, Vec<Crl>)>)> {
    let chain = load_certificates(&args.cert)?;
    let key = load_private_key(&args.key)?;
    let roots = load_certificates(&args.client_ca)?;
    let crl_path = match &args.crl {
        Some(path) => Some(path.clone()),
        None => default_crl(&args.client_ca),
    };
    let crls = match &crl_path {
        // Configured (or present by default) but unreadable: refuse to start rather
        // than serve revoked hosts.
        Some(path) => load_crls(path)?,
        None => Vec::new(),
    };
    metrics.set_crl_next_update(earliest_next_update(&crls));
    let client_auth = ClientAuth::new(roots, crls.clone())?;
    let config = fts_trust::server_config(chain, key, Arc::clone(&client_auth))
        .map_err(|e| key_mismatch_names_files(e, &args.cert, &args.key))?;
    match &crl_path {
        Some(path) => log_loaded(path, &crls, "revocation is ON"),
        None => tracing::warn!(
            client_ca = %args.client_ca.display(),
            "revocation is OFF: no CRL configured (--crl) and no {CRL_FILE} beside the client CA"
        ),
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let crl = crl_path.map(|path| (path, crls));
    Ok((Transport::Tls { acceptor, client_auth: Arc::clone(&client_auth) }, client_auth, crl))
}

/// `ca.crl` beside the client CA, when it exists.
fn default_crl(client_ca: &Path) -> Option<PathBuf> {
    let path = client_ca.parent().unwrap_or(Path::new(".")).join(CRL_FILE);
    path.exists().then_some(path)
}

/// A key that is not the certificate's, with both files named.
fn key_mismatch_names_files(e: fts_trust::Error, cert: &Path, key: &Path) -> anyhow::Error {
    let mismatch = matches!(e, fts_trust::Error::KeyMismatch);
    let e = anyhow::Error::new(e);
    if mismatch {
        e.context(format!("cannot use --cert {} with --key {}", cert.display(), key.display()))
    } else {
        e
    }
}
