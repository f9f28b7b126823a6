//! `fts serve`: with the settings resolved in [`crate::config::Serve`] (the limits
//! fitted into the open-file limit there), loads the TLS credentials and the CRL, opens
//! the store read-only, and runs the fts-net server until SIGINT or SIGTERM. SIGHUP
//! reloads the CRL at once; a changed CRL file is picked up anyway, and one that fails
//! to load is tried again until it loads ([`fts_net::crl_watch`]). SIGHUP also reloads
//! `--ticket-key` (a file that fails to load leaves the keys in use).
//!
//! The highest CRL number in force per CA is kept in the status folder
//! ([`CRL_STATE_FILE`]), so that an older CRL is refused across restarts too
//! ([`fts_trust::crl_floor`]); `server.json` beside it says how current the CRL is
//! and whether a reload is failing, for `fts status`.
//!
//! It never loads the signing key: nothing here reads `--signing-key` or
//! `signing.key`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use fts_net::admission::AdmissionSettings;
use fts_net::crl_watch::{
    CrlEvent, CrlFileVersion, CrlWatch, ReloadFailing, earliest_next_update, log_loaded, watch_crl,
};
use fts_net::metrics::Metrics;
use fts_net::metrics_http::serve_metrics;
use fts_net::server::{Server, Transport};
use fts_proto::{ErrorChain, Published};
use fts_status::{CrlReloadFailing, ServerStatus, StatusBackend, StatusDir};
use fts_status_db::{PgOptions, PgStatus};
use fts_store::StoreReader;
use fts_trust::crl::{CRL_FILE, Crl, load_crls};
use fts_trust::crl_floor::{CRL_STATE_FILE, CrlFloor};
use fts_trust::pem::{load_certificates, load_private_key};
use fts_trust::ticket_key::TicketKeys;
use fts_trust::{ClientAuth, OlderCrls};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;

use crate::config::{Serve, TlsFiles};
use crate::malloc_arenas::{Arenas, bound_for_server};

/// How often the CRL file is looked at for changes (and retried while it fails).
const CRL_CHECK_INTERVAL: Duration = Duration::from_secs(2);

pub fn run(serve: Serve) -> anyhow::Result<()> {
    let Serve {
        listen,
        store: store_path,
        status_dir,
        status_db,
        status_interval,
        tls,
        settings,
        metrics,
        metrics_listen,
    } = serve;
    // Before any thread starts: the runtime's and the status database's.
    match bound_for_server() {
        Arenas::Bounded(arenas) => tracing::debug!(arenas, "malloc arenas bounded"),
        Arenas::SetByOperator => {
            tracing::info!("malloc arenas as the environment sets them (MALLOC_ARENA_MAX or GLIBC_TUNABLES)")
        }
        Arenas::Unchanged => tracing::debug!("malloc arenas left to the C library"),
    }
    let crl_health = Arc::clone(&settings.crl_health);
    let store = StoreReader::open(&store_path).with_context(|| {
        format!(
            "cannot open the store {} (publish with `fts publish` first, or set --store)",
            store_path.display()
        )
    })?;
    let (status, status_shown) = open_status(&status_dir, status_db.as_ref(), listen, status_interval)?;
    // The same backend takes `server.json`'s content (the CRL's state, which `fts
    // status` warns about).
    let server_status = Arc::clone(&status);

    // Each file being sent holds one blocking thread that reads its blob, for as long
    // as its client takes to read it. Room for one per active poll, plus some for the
    // status writes, so slow readers can never starve the blocking work of others.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(settings.max_active_polls.get().saturating_add(64))
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let reload = Arc::new(Notify::new());
        let mut ticket_keys = None;
        let transport = if let Some(tls) = &tls {
            let TlsLoaded { transport, client_auth, crl, tickets } = tls_transport(tls, &status_dir, &metrics)?;
            ticket_keys = tickets;
            record_crl_state(server_status.as_ref(), crl.as_ref().map(|loaded| loaded.crls.as_slice()), None);
            match crl {
                Some(LoadedCrl { path, version, .. }) => {
                    let watch = CrlWatch {
                        path,
                        in_force: version,
                        client_auth: Arc::clone(&client_auth),
                        every: CRL_CHECK_INTERVAL,
                        reload: Arc::clone(&reload),
                        health: crl_health,
                        metrics: Arc::clone(&metrics),
                    };
                    let (server_status, floor_path) = (Arc::clone(&server_status), status_dir.join(CRL_STATE_FILE));
                    tokio::spawn(watch_crl(watch, move |event| match event {
                        CrlEvent::Loaded(crls) => {
                            record_crl_state(server_status.as_ref(), Some(crls), None);
                            save_crl_floor(&client_auth.crl_floor(), &floor_path);
                        }
                        CrlEvent::Failing(failing) => {
                            record_crl_state(server_status.as_ref(), Some(&client_auth.crls()), Some(failing));
                        }
                    }));
                }
                None if settings.crl_max_stale.is_some() => {
                    tracing::warn!("--crl-max-stale has no effect: no CRL is configured");
                }
                None => {}
            }
            transport
        } else {
            tracing::warn!("serving WITHOUT TLS (--plaintext): client ids are not authenticated");
            record_crl_state(server_status.as_ref(), None, None);
            Transport::Plaintext
        };

        // Bound before the server, so that a busy or wrong address stops the start.
        if let Some(metrics_addr) = metrics_listen {
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

        let admission = settings.admission.clone();
        let server = Server::bind(listen, transport, settings, store, status, Arc::clone(&metrics))
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = server.local_addr().context("cannot read the listening address")?;
        tracing::info!(%addr, store = %store_path.display(), status = %status_shown, "listening");
        log_trusted_proxies(&admission);

        let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
        let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
        let mut sighup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
        let shutdown = async move {
            loop {
                tokio::select! {
                    _ = sigint.recv() => break,
                    _ = sigterm.recv() => break,
                    _ = sighup.recv() => {
                        reload.notify_one();
                        if let Some(keys) = &ticket_keys {
                            // A file read: off the runtime's workers.
                            let keys = Arc::clone(keys);
                            drop(tokio::task::spawn_blocking(move || reload_ticket_keys(&keys)));
                        }
                    }
                }
            }
            tracing::info!("shutdown requested: no new connections");
        };
        server.run(shutdown).await;
        anyhow::Ok(())
    })
}

/// The status backend: PostgreSQL with `--status-db` (this server's row there named
/// after the machine and port), else the status folder, brought up to its receipt
/// log. Also says where, for the log.
fn open_status(
    status_dir: &Path,
    status_db: Option<&fts_status_db::DbSettings>,
    listen: std::net::SocketAddr,
    status_interval: Duration,
) -> anyhow::Result<(Arc<dyn StatusBackend>, String)> {
    if let Some(settings) = status_db {
        // The CRL numbers in force stay in this server's own folder.
        std::fs::create_dir_all(status_dir)
            .with_context(|| format!("cannot create the status folder {}", status_dir.display()))?;
        let options = PgOptions {
            server_name: format!("{}:{}", machine_name(), listen.port()),
            // Unchanged polls are written every --status-interval; changes within it too.
            batch_interval: status_interval.min(Duration::from_secs(1)),
            ..PgOptions::default()
        };
        let status = PgStatus::open_for_serving(settings, options)
            .with_context(|| format!("cannot use the status database {}", settings.shown_url()))?;
        let shown = format!("postgresql {}", status.shown());
        return Ok((Arc::new(status), shown));
    }
    let status = StatusDir::open_or_create(status_dir)
        .with_context(|| format!("cannot open the status folder {}", status_dir.display()))?;
    match status.recover_receipts() {
        Ok(0) => {}
        Ok(n) => tracing::info!(receipts = n, "brought the client status files up to the receipt log"),
        Err(e) => tracing::warn!(error = %ErrorChain(&e), "cannot read the receipt log back"),
    }
    Ok((Arc::new(status), status_dir.display().to_string()))
}

/// This machine's host name (for its server's row in the status database).
fn machine_name() -> String {
    fts_fs::read_bounded(Path::new("/proc/sys/kernel/hostname"), 256)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "fts-server".to_owned())
}

/// Says who is trusted as a proxy, and warns when that is everyone.
fn log_trusted_proxies(admission: &AdmissionSettings) {
    if admission.trusted_proxies.is_empty() {
        return;
    }
    let proxies = admission.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
    tracing::info!(
        trusted_proxies = %proxies,
        proxy_protocol = admission.proxy_protocol,
        "connections from trusted proxies are not limited per source"
    );
    if admission.trusted_proxies.iter().any(|net| net.prefix_len() == 0) {
        tracing::warn!(
            trusted_proxies = %proxies,
            "--trusted-proxy covers every address: no source is limited{}",
            if admission.proxy_protocol { " and anyone can claim any client address" } else { "" }
        );
    }
}

/// Writes the revocation state to `server.json` in the status folder. `None`: no CRL.
fn record_crl_state(status: &dyn StatusBackend, crls: Option<&[Crl]>, failing: Option<&ReloadFailing>) {
    let crls = crls.unwrap_or_default();
    let next_update = crls.iter().filter_map(Crl::next_update).min().map(|t| published(t.unix_timestamp()));
    let server = ServerStatus {
        format: fts_status::STATUS_FORMAT,
        updated: published(unix_now()),
        revocation: !crls.is_empty(),
        crl_next_update: next_update,
        crl_number: crls.iter().filter_map(Crl::number).max(),
        revoked_serials: crls
            .iter()
            .flat_map(|c| c.revoked_serials().iter().map(|s| s.to_string()))
            .collect(),
        crl_reload_failing: failing.map(|f| CrlReloadFailing {
            since: published(
                f.since
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0)),
            ),
            error: f.error.clone(),
            hint: f.hint.clone(),
        }),
    };
    if let Err(e) = status.write_server(&server) {
        tracing::warn!(error = %ErrorChain(&e), "cannot record the server's revocation state for `fts status`");
    }
}

/// Keeps the CRL numbers in force for the next start. A failure does not stop the
/// server (the CRL in force is the newer one), but a restart could then accept an
/// older CRL, so it is an error in the log.
fn save_crl_floor(floor: &CrlFloor, path: &Path) {
    if let Err(e) = floor.save(path) {
        tracing::error!(
            error = %ErrorChain(&e),
            "cannot record the CRL numbers in force: after a restart an older CRL could be accepted"
        );
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

fn published(unix: i64) -> Published {
    Published::from_unix_seconds(u64::try_from(unix).unwrap_or(0))
}

/// Loads the server's certificate and key, the client CA and the CRL, and logs
/// whether revocation is on. Returns the CRL file to watch, when there is one.
fn tls_transport(tls: &TlsFiles, status_dir: &Path, metrics: &Metrics) -> anyhow::Result<TlsLoaded> {
    let chain = load_certificates(&tls.cert)?;
    let key = load_private_key(&tls.key)?;
    let roots = load_certificates(&tls.client_ca)?;
    let crl_path = tls.crl.clone();
    // The version before the content: a CRL replaced while it is read is loaded again
    // by the watcher's first look.
    let version = crl_path.as_deref().and_then(CrlFileVersion::of);
    let crls = match &crl_path {
        // Configured (or present by default) but unreadable: refuse to start rather
        // than serve revoked hosts.
        Some(path) => load_crls(path)?,
        None => Vec::new(),
    };
    metrics.set_crl_next_update(earliest_next_update(&crls));
    // The CRL numbers a previous run had in force: the CRL loaded now may not be older.
    let floor_path = status_dir.join(CRL_STATE_FILE);
    let floor = CrlFloor::load(&floor_path)?;
    if tls.older_crls == OlderCrls::AcceptOnce {
        tracing::warn!(
            "--accept-older-crl: the first CRL older than the one in force will be accepted, once; \
             remove the flag afterwards"
        );
    }
    let client_auth =
        ClientAuth::with_crl_floor(roots, crls.clone(), floor, tls.older_crls).with_context(|| {
            format!(
                "cannot put the CRL in force (the CRL numbers in force before are in {})",
                floor_path.display()
            )
        })?;
    if crl_path.is_some() {
        client_auth
            .crl_floor()
            .save(&floor_path)
            .with_context(|| "cannot record the CRL numbers in force in the status folder".to_owned())?;
    }
    let tickets = match &tls.ticket_key {
        Some(path) => Some(
            TicketKeys::load(path)
                .with_context(|| format!("cannot use the ticket keys {} (--ticket-key)", path.display()))?,
        ),
        None => None,
    };
    let config = match &tickets {
        Some(keys) => {
            log_ticket_keys(keys, "loaded");
            fts_trust::server_config_with_tickets(chain, key, Arc::clone(&client_auth), keys.clone())
        }
        None => fts_trust::server_config(chain, key, Arc::clone(&client_auth)),
    }
    .map_err(|e| crate::config::key_mismatch_names_files(e, &tls.cert, &tls.key))?;
    match &crl_path {
        Some(path) => log_loaded(path, &crls, "revocation is ON"),
        None => tracing::warn!(
            client_ca = %tls.client_ca.display(),
            "revocation is OFF: no CRL configured (--crl) and no {CRL_FILE} beside the client CA"
        ),
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let crl = crl_path.map(|path| LoadedCrl { path, crls, version });
    let transport = Transport::Tls { acceptor, client_auth: Arc::clone(&client_auth) };
    Ok(TlsLoaded { transport, client_auth, crl, tickets })
}

/// What [`tls_transport`] loaded, and what is reloaded while the server runs.
struct TlsLoaded {
    transport: Transport,
    client_auth: Arc<ClientAuth>,
    crl: Option<LoadedCrl>,
    /// `--ticket-key`, reloaded on SIGHUP.
    tickets: Option<Arc<TicketKeys>>,
}

/// SIGHUP: the ticket keys read again. A file that fails to load leaves the keys in
/// use (tickets keep opening), with an error in the log.
fn reload_ticket_keys(keys: &TicketKeys) {
    match keys.reload() {
        Ok(_) => log_ticket_keys(keys, "reloaded on SIGHUP"),
        Err(e) => tracing::error!(
            file = %keys.path().display(),
            error = %ErrorChain(&e),
            "cannot reload the ticket keys: the keys loaded before stay in use"
        ),
    }
}

fn log_ticket_keys(keys: &TicketKeys, what: &str) {
    let current = keys.current();
    let opening: Vec<String> = current.keys().iter().map(|k| k.id.to_string()).collect();
    tracing::info!(
        file = %keys.path().display(),
        sealing = %current.sealing().id,
        opening = %opening.join(","),
        "ticket keys {what}: session tickets resume at every server with this file"
    );
}

/// The CRL file loaded at start: what the watcher keeps current.
struct LoadedCrl {
    path: PathBuf,
    crls: Vec<Crl>,
    version: Option<CrlFileVersion>,
}
