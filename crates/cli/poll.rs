//! `fts poll`: with the client settings resolved in [`crate::config::Poll`]
//! (credentials, trusted keys, the host's targets read from its own certificate),
//! polls once (`--once`: exit 0 when nothing was reported, 3 when something about an
//! entry was, 1 when the poll failed) or in a loop until SIGTERM/SIGINT.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use fts_net::client::metrics_file;
use fts_net::client::poller::{RoundResult, Stop, round, run_loop};
use fts_net::client::receive::{NoProgress, Progress};
use fts_net::client::{Client, PollError};
use fts_proto::Statement;
use fts_proto::{ErrorChain, Published, Report};
use tokio::signal::unix::{SignalKind, signal};

use crate::config::Poll;
use crate::{exit, stderr_line};

/// Files at least this large get a progress bar on a terminal.
const PROGRESS_MIN_SIZE: u64 = 8 << 20;

pub fn run(poll: Poll) -> anyhow::Result<u8> {
    let Poll { settings, schedule, once, reset_state, reset_log_state, metrics_file, rerun_hook } = poll;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        if settings.log.timestamp_keys.is_empty() && !once {
            // Said once at start; a `--once` timer run says it in its metrics file.
            tracing::warn!("freshness is off: no --timestamp-key, so a server that keeps patches from this host is not noticed");
        }
        let mut client = Client::open_with(settings, reset_state, reset_log_state)?;
        let mut progress: Box<dyn Progress> =
            if std::io::stdout().is_terminal() { Box::new(Bar::default()) } else { Box::new(NoProgress) };
        let stop = Arc::new(Stop::default());
        spawn_signal_handler(Arc::clone(&stop))?;
        client.stop_with(Arc::clone(&stop));

        if let Some(name) = rerun_hook {
            let reported = client.rerun_hook(&name).await?;
            if reported.is_empty() {
                println!("fts poll: the hook of {name} succeeded");
                return Ok(exit::SUCCESS);
            }
            stderr_line::warn(&format!("the hook of {name} failed: {}", describe(&reported)));
            return Ok(exit::REPORTED);
        }

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
            return Ok(once_exit(&result, &client));
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

/// `--once`: 0 when nothing was reported, no target is held and no alarm is raised;
/// 3 when something about an entry was reported or a target is held; 4 when a log
/// alarm is raised; 1 when the poll failed. Precedence 1 > 4 > 3 > 0, and the
/// one-line reason on stderr lists all that apply (a JSON line with `--log-format
/// json`). The summary on stdout is the command's output and stays plain text in both
/// formats, like the output of `fts status`.
fn once_exit(result: &RoundResult, client: &Client) -> u8 {
    let held = describe_held(client);
    let alarms = describe_alarms(client);
    let mut reasons = Vec::new();
    let mut code = exit::SUCCESS;
    let mut summary = None;
    match result {
        RoundResult::Completed { installed, reported, .. } => {
            let mut line = format!("fts poll: done, {installed} file(s) installed");
            if !reported.is_empty() {
                line.push_str(&format!(", {} problem(s) reported", reported.len()));
                reasons.push(format!("{} problem(s) reported: {}", reported.len(), describe(reported)));
                code = exit::REPORTED;
            }
            if let Some(held) = &held {
                line.push_str(&format!(", held: {held}"));
                reasons.push(format!("held: {held}"));
                code = exit::REPORTED;
            }
            summary = Some(line);
        }
        RoundResult::Failed(e) => {
            reasons.push(ErrorChain(e).to_string());
            code = exit::FAILURE;
        }
    }
    if let Some(alarms) = &alarms {
        if let Some(line) = &mut summary {
            line.push_str(&format!(", alarms: {alarms}"));
        }
        reasons.insert(usize::from(code == exit::FAILURE), format!("alarms: {alarms}"));
        if code != exit::FAILURE {
            code = exit::ALARM;
        }
    }
    if let Some(line) = summary {
        println!("{line}");
    }
    match code {
        exit::SUCCESS => {}
        exit::FAILURE => stderr_line::error(&reasons.join("; ")),
        _ => stderr_line::warn(&reasons.join("; ")),
    }
    code
}

/// The raised log alarms in words: `stale (the newest cosignature ...); withheld (...)`.
fn describe_alarms(client: &Client) -> Option<String> {
    let alarms = &client.log_state().alarms;
    if alarms.is_empty() {
        return None;
    }
    Some(
        alarms
            .iter()
            .map(|(name, alarm)| format!("{name} ({})", alarm.detail))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// The held targets in words: `all at seq 4 (untrusted-key, 2 waiting behind)`.
fn describe_held(client: &Client) -> Option<String> {
    let held = &client.state().held;
    if held.is_empty() {
        return None;
    }
    let text = held
        .iter()
        .map(|(target, hold)| {
            let behind = match hold.waiting_behind() {
                Some(n) if n > 0 => format!(", {n} waiting behind"),
                _ => String::new(),
            };
            format!("{target} at seq {} ({}{behind})", hold.seq, hold.reason)
        })
        .collect::<Vec<_>>()
        .join("; ");
    Some(text)
}

fn describe(reports: &[Report]) -> String {
    let mut text = reports
        .iter()
        .take(5)
        .map(|r| match r.attempt {
            Some(attempt) => format!("{} seq {}: {} (attempt {attempt})", r.target, r.seq, r.reason),
            None => format!("{} seq {}: {}", r.target, r.seq, r.reason),
        })
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
