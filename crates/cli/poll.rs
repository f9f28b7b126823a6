//! `fts poll`: resolves the flags into client settings (credentials, trusted keys, the
//! host's targets read from its own certificate), then polls once (`--once`, with the
//! exit codes of PRODUCT.md) or in a loop until SIGTERM/SIGINT.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use fts_net::client::hook::Hook;
use fts_net::client::metrics_file;
use fts_net::client::poller::{RoundResult, Schedule, Stop, round, run_loop};
use fts_net::client::receive::{NoProgress, Progress};
use fts_net::client::{Client, ClientSettings, ClientTransport, PollError};
use fts_proto::{ClientId, ErrorChain, Published, Report};
use fts_trust::pem::{load_certificates, load_private_key};
use fts_trust::{ClientIdentity, Statement, TrustedKeys, client_identity};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::PollArgs;
use crate::{UsageError, exit, stderr_line};

/// The most frames accepted in one answer (PRODUCT.md).
const MAX_FRAMES: usize = 10_000;

/// Files at least this large get a progress bar on a terminal.
const PROGRESS_MIN_SIZE: u64 = 8 << 20;

pub fn run(args: PollArgs) -> anyhow::Result<u8> {
    let once = args.once;
    let reset_state = args.reset_state;
    let metrics_file = args.metrics_file.clone();
    let schedule = Schedule {
        interval: args.interval,
        jitter_percent: args.jitter,
        min_interval: args.min_interval,
        max_interval: args.max_interval,
    };
    let settings = resolve(args)?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut client = Client::open(settings, reset_state)?;
        let mut progress: Box<dyn Progress> =
            if std::io::stdout().is_terminal() { Box::new(Bar::default()) } else { Box::new(NoProgress) };
        let stop = Arc::new(Stop::default());
        spawn_signal_handler(Arc::clone(&stop))?;
        client.stop_with(Arc::clone(&stop));

        if once {
            let result = match client.recent_certificate_refusal(schedule.max_interval) {
                // A timer starts this run: back off across runs as the loop does.
                Some(refused) => RoundResult::Failed(PollError::RefusedRecently {
                    at: refused.at.clone(),
                    again_after: Published::from_unix_seconds(
                        refused.at.unix_seconds().saturating_add(schedule.max_interval.as_secs()),
                    ),
                }),
                None => round(&mut client, progress.as_mut(), &stop).await,
            };
            if let Some(path) = &metrics_file {
                write_metrics(path, &client, &result);
            }
            return Ok(once_exit(&result));
        }
        let on_round = |client: &Client, result: &RoundResult| {
            log_round(result);
            if let Some(path) = &metrics_file {
                write_metrics(path, client, result);
            }
        };
        run_loop(&mut client, schedule, stop, progress.as_mut(), on_round).await;
        Ok(exit::SUCCESS)
    })
}

/// The flags, checked and turned into the client's settings.
fn resolve(args: PollArgs) -> anyhow::Result<ClientSettings> {
    let server = args.server.ok_or_else(|| UsageError("--server HOST:PORT is required".into()))?;
    let id = args.id.ok_or_else(|| UsageError("--id ID (this host's client id) is required".into()))?;
    let id = ClientId::parse(&id).map_err(|e| UsageError(format!("--id: {e}")))?;
    let host = host_of(&server).ok_or_else(|| {
        UsageError(format!("--server {server:?} is not HOST:PORT (an IPv6 address goes in brackets)"))
    })?;
    if args.min_interval > args.max_interval {
        return Err(UsageError("--min-interval is longer than --max-interval".into()).into());
    }

    let trust = if args.trust.is_empty() { vec![PathBuf::from("certs/signing.pub")] } else { args.trust };
    let trusted = TrustedKeys::load(&trust).context("loading the trusted signing keys (--trust)")?;

    let (transport, targets) = if args.plaintext {
        (ClientTransport::Plaintext, ClientIdentity::claimed(id.clone()).targets())
    } else {
        let cert = args.cert.unwrap_or_else(|| PathBuf::from(format!("certs/{id}.crt")));
        let key = args.key.unwrap_or_else(|| PathBuf::from(format!("certs/{id}.key")));
        let chain = load_certificates(&cert)?;
        let identity = client_identity(&chain[0])
            .with_context(|| format!("{} is not a usable client certificate", cert.display()))?;
        if identity.id != id {
            return Err(UsageError(format!(
                "{} is the certificate of client {}, not of --id {id}",
                cert.display(),
                identity.id
            ))
            .into());
        }
        let certificate = chain[0].clone();
        let config = fts_trust::client_config(load_certificates(&args.ca)?, chain, load_private_key(&key)?)
            .map_err(|e| key_mismatch_names_files(e, &cert, &key))?;
        let server_name = fts_trust::tls::server_name(&host)?;
        (ClientTransport::tls(config, server_name, &certificate), identity.targets())
    };

    // Absolute, so that a hook gets a path it can use wherever it changes directory to.
    let dest = std::path::absolute(&args.dest)
        .with_context(|| format!("cannot resolve --dest {}", args.dest.display()))?;
    // Absolute too, so that an error about its folder names it whole.
    let state_path = match args.state {
        Some(state) => std::path::absolute(&state)
            .with_context(|| format!("cannot resolve --state {}", state.display()))?,
        None => dest.join(".fts-state.json"),
    };
    Ok(ClientSettings {
        server,
        transport,
        id,
        targets,
        trusted,
        dest,
        state_path,
        max_file_size: args.max_file_size,
        read_timeout: args.read_timeout,
        poll_timeout: args.poll_timeout,
        max_frames: MAX_FRAMES,
        hook: args.exec.map(|program| Hook { program, timeout: args.exec_timeout }),
    })
}

/// HOST of `HOST:PORT`, without the brackets of an IPv6 address.
fn host_of(server: &str) -> Option<String> {
    let (host, port) = server.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

fn spawn_signal_handler(stop: Arc<Stop>) -> anyhow::Result<()> {
    let mut sigterm = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = sigterm.recv() => {}
            _ = sigint.recv() => {}
        }
        tracing::info!("stop requested: finishing the current poll");
        stop.request();
    });
    Ok(())
}

/// `--once`: 0 when nothing was reported, 3 when something about an entry was, 1 when
/// the poll failed; every non-zero exit with a one-line reason on stderr (a JSON line
/// with `--log-format json`). The summary on stdout is the command's output and stays
/// plain text in both formats, like the output of `fts status`.
fn once_exit(result: &RoundResult) -> u8 {
    match result {
        RoundResult::Completed { installed, reported, .. } if reported.is_empty() => {
            println!("fts poll: done, {installed} file(s) installed");
            exit::SUCCESS
        }
        RoundResult::Completed { installed, reported, .. } => {
            println!("fts poll: done, {installed} file(s) installed");
            stderr_line::warn(&format!("{} problem(s) reported: {}", reported.len(), describe(reported)));
            exit::REPORTED
        }
        RoundResult::Failed(e) => {
            stderr_line::error(&ErrorChain(e).to_string());
            exit::FAILURE
        }
    }
}

fn describe(reports: &[Report]) -> String {
    let mut text = reports
        .iter()
        .take(5)
        .map(|r| format!("{} seq {}: {}", r.target, r.seq, r.reason))
        .collect::<Vec<_>>()
        .join("; ");
    if reports.len() > 5 {
        text.push_str(&format!("; and {} more", reports.len() - 5));
    }
    text
}

/// `--metrics-file`: a failure to write it is logged, and never stops polling.
fn write_metrics(path: &Path, client: &Client, result: &RoundResult) {
    if let Err(e) = metrics_file::write(path, client, result, std::time::SystemTime::now()) {
        tracing::warn!(metrics_file = %path.display(), error = %ErrorChain(&e), "cannot write the metrics file");
    }
}

fn log_round(result: &RoundResult) {
    match result {
        RoundResult::Completed { installed, reported, .. } => {
            tracing::info!(installed, reported = reported.len(), "poll round complete");
        }
        RoundResult::Failed(e) => tracing::warn!(error = %ErrorChain(e), "poll failed"),
    }
}

/// A progress bar for large files, shown only on a terminal.
#[derive(Default)]
struct Bar {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress for Bar {
    fn start(&mut self, statement: &Statement) {
        if statement.file_size < PROGRESS_MIN_SIZE {
            return;
        }
        let bar = indicatif::ProgressBar::new(statement.file_size);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(statement.file_name.to_string());
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
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
