//! `fts poll --metrics-file FILE`: the host's own figures after each round, in the
//! Prometheus text format that node-exporter's textfile collector reads (name the file
//! `*.prom` in its `--collector.textfile.directory`).
//!
//! The file is replaced atomically ([`fts_fs::write_atomic`]: its temp beside it is a
//! dot-file, never `*.prom`), so the collector never reads half of it. Only gauges are written; none carries a
//! secret or a key path: the labels are the host's target names.
//!
//! A round that fails keeps the last success time of the previous file, so that
//! `time() - fts_poll_last_success_timestamp_seconds` stays meaningful across runs of
//! `fts poll --once` from a timer. For the same reason the count of certificate
//! refusals (`fts_poll_certificate_refusals_total`: the server refused this host's
//! certificate, revoked, expired or from another CA) goes on from the previous file's
//! value; it restarts from 0 only when the file is removed, which `rate()` and
//! `increase()` take as a counter reset.

use std::io;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use fts_proto::ErrorChain;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::client::Client;
use crate::client::PollError;
use crate::client::freshness::alarm;
use crate::client::poller::RoundResult;

/// The metric whose previous value survives a failed round.
const LAST_SUCCESS: &str = "fts_poll_last_success_timestamp_seconds";

/// The counter of certificate refusals, without the `_total` suffix the encoder adds.
const REFUSALS: &str = "fts_poll_certificate_refusals";

/// The largest existing metrics file read back (for the last success time).
const MAX_PREVIOUS: u64 = 1 << 20;

/// How the file is written: durably, replacing the last one, mode 0644 whatever the
/// umask (the collector must read it; the figures are not secret).
const METRICS_WRITE: fts_fs::WriteOptions = fts_fs::WriteOptions {
    label: "metrics",
    mode: fts_fs::FileMode::Exact(0o644),
    durable: true,
    overwrite: true,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabel {
    target: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlarmLabel {
    alarm: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeldLabel {
    target: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeadLabel {
    head: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g = Gauge::<i64>::default();
    g.set(value);
    registry.register(name, help, g);
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What an earlier metrics file recorded that the next one carries on.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Previous {
    /// The last success time (unix seconds), if any.
    pub success: Option<i64>,
    /// Certificate refusals counted so far.
    pub refusals: u64,
}

/// The file's text for `client` after `result`, at `now`, carrying on from `previous`.
pub fn render(client: &Client, result: &RoundResult, now: SystemTime, previous: Previous) -> String {
    let previous_success = previous.success;
    let state = client.state();
    let mut registry = Registry::default();

    let (outcome, installed, problems) = match result {
        RoundResult::Completed { installed, reported, .. } if reported.is_empty() => ("ok", *installed, 0),
        RoundResult::Completed { installed, reported, .. } => ("reported", *installed, reported.len()),
        RoundResult::Failed(_) => ("failed", 0, 0),
    };
    let last_success = if outcome == "failed" { previous_success.unwrap_or(0) } else { unix_seconds(now) };

    gauge(
        &mut registry,
        "fts_poll_last_round_timestamp_seconds",
        "Unix time at which the last round of polls ended",
        unix_seconds(now),
    );
    gauge(
        &mut registry,
        LAST_SUCCESS,
        "Unix time at which a round last completed (problems reported or not); 0 if never",
        last_success,
    );
    let results = Family::<ResultLabel, Gauge>::default();
    for name in ["ok", "reported", "failed"] {
        results.get_or_create(&ResultLabel { result: name }).set(i64::from(name == outcome));
    }
    registry.register(
        "fts_poll_last_round_result",
        "1 for how the last round ended: ok, reported (completed with problems) or failed",
        results,
    );
    let refused = matches!(result, RoundResult::Failed(e) if e.is_certificate_refusal());
    let refusals = Counter::<u64>::default();
    refusals.inc_by(previous.refusals.saturating_add(u64::from(refused)));
    registry.register(
        REFUSALS,
        "Rounds in which the server refused this host's certificate (revoked, expired or from another CA)",
        refusals,
    );
    // A `--once` run that did not dial because of a recent refusal is still refused.
    let still_refused = refused || matches!(result, RoundResult::Failed(PollError::RefusedRecently { .. }));
    gauge(
        &mut registry,
        "fts_poll_last_round_certificate_refused",
        "1 if the last round failed because the server refused this host's certificate",
        i64::from(still_refused),
    );
    gauge(
        &mut registry,
        "fts_poll_last_round_installed_files",
        "Files installed in the last round",
        count(installed),
    );
    gauge(
        &mut registry,
        "fts_poll_last_round_problems",
        "Problems found in the last round (refused, too large, hook failed ...)",
        count(problems),
    );

    let applied = Family::<TargetLabel, Gauge>::default();
    for target in &client.settings().targets {
        let seq = i64::try_from(state.since(target)).unwrap_or(i64::MAX);
        applied.get_or_create(&TargetLabel { target: target.to_string() }).set(seq);
    }
    registry.register(
        "fts_poll_applied_seq",
        "Sequence number of the last entry applied, per target",
        applied,
    );
    let held = Family::<HeldLabel, Gauge>::default();
    let behind = Family::<TargetLabel, Gauge>::default();
    for (target, hold) in &state.held {
        let label = HeldLabel { target: target.to_string(), reason: hold.reason.to_string() };
        held.get_or_create(&label).set(i64::try_from(hold.seq.get()).unwrap_or(i64::MAX));
        if let Some(n) = hold.waiting_behind() {
            behind
                .get_or_create(&TargetLabel { target: target.to_string() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    registry.register(
        "fts_poll_held_seq",
        "Per held target (an entry that cannot be applied yet; the reason is a label), the seq it is held at",
        held,
    );
    registry.register(
        "fts_poll_held_waiting_entries",
        "Per held target, how many later entries wait behind the held one (as the server last said)",
        behind,
    );
    let (retrying, given_up) = state.hooks_pending.iter().fold((0, 0), |(r, g), hook| match hook {
        hook if hook.given_up => (r, g + 1),
        hook if hook.failures > 0 => (r + 1, g),
        _ => (r, g),
    });
    gauge(
        &mut registry,
        "fts_poll_hooks_retrying",
        "Hooks that failed and run again later (--hook-retries)",
        retrying,
    );
    gauge(
        &mut registry,
        "fts_poll_hooks_given_up",
        "Hooks that failed at every attempt and are not run again by themselves (fts poll --rerun-hook)",
        given_up,
    );
    gauge(
        &mut registry,
        "fts_receipts_made",
        "The number of this host's newest receipt in its current chain: `fts status --verify` finds a stored chain shorter than this",
        i64::try_from(state.receipts.count).unwrap_or(i64::MAX),
    );
    gauge(
        &mut registry,
        "fts_receipts_unsent",
        "Receipts made and not yet acknowledged by the server (kept in the state, sent again)",
        count(state.receipts.unsent.len()),
    );
    if let Some(head) = &state.receipts.head {
        let heads = Family::<HeadLabel, Gauge>::default();
        heads.get_or_create(&HeadLabel { head: head.to_string() }).set(1);
        registry.register("fts_receipt_head_info", "The hash of this host's newest receipt (value 1)", heads);
    }
    gauge(
        &mut registry,
        "fts_poll_reboot_required",
        "1 while a reboot is required for what this host installed (a hook said so, or the --reboot-required-file exists), else 0",
        i64::from(state.reboot_required.is_some()),
    );
    gauge(
        &mut registry,
        "fts_poll_pending_problems",
        "Problems recorded but not yet delivered to the server",
        count(state.reports.len()),
    );
    gauge(
        &mut registry,
        "fts_poll_pending_hooks",
        "Hooks (--exec) still to run for installed files",
        count(state.hooks_pending.len()),
    );
    gauge(
        &mut registry,
        "fts_poll_installed_files",
        "Files installed in the destination",
        count(state.installed.len()),
    );

    // With several `--server`s: which one answered the last round (1), and the others (0).
    if client.servers().count() > 1 {
        let servers = Family::<ServerLabel, Gauge>::default();
        let answered = client.answered_server();
        for server in client.servers() {
            servers
                .get_or_create(&ServerLabel { server: server.to_owned() })
                .set(i64::from(answered == Some(server)));
        }
        registry.register(
            "fts_poll_server_info",
            "With several --server: 1 for the server that answered the last poll, 0 for the others",
            servers,
        );
    }

    log_figures(&mut registry, client, now);

    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry) {
        tracing::warn!(error = %ErrorChain(&e), "cannot encode the poll metrics");
    }
    text
}

/// The log's figures (docs/PROTOCOL.md section 7.5): each alarm 0 or 1 (every known
/// alarm is written, so that an alert on `== 1` sees a clear one too), the size of the
/// recorded checkpoint, whether freshness is on, and the age of the newest
/// cosignature verified.
fn log_figures(registry: &mut Registry, client: &Client, now: SystemTime) {
    let log = client.log_state();
    let alarms = Family::<AlarmLabel, Gauge>::default();
    for name in [alarm::STALE, alarm::WITHHELD, alarm::FORK, alarm::CLOCK, alarm::BEHIND] {
        let raised = log.alarms.keys().any(|a| a.as_str() == name);
        alarms.get_or_create(&AlarmLabel { alarm: name.to_owned() }).set(i64::from(raised));
    }
    for name in log.alarms.keys() {
        alarms.get_or_create(&AlarmLabel { alarm: name.to_string() }).set(1);
    }
    registry.register(
        "fts_poll_alarm",
        "Per log alarm, 1 while it is raised (fts poll --once exits 4)",
        alarms,
    );
    gauge(
        registry,
        "fts_poll_log_size",
        "Leaves of the newest log checkpoint this host verified (0: none yet)",
        count_u64(log.size),
    );
    let freshness = !client.settings().log.timestamp_keys.is_empty();
    gauge(
        registry,
        "fts_poll_freshness_enabled",
        "1 when a --timestamp-key is configured (without one a freeze of this host is not noticed)",
        i64::from(freshness),
    );
    if let Some(attested) = log.attested {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        gauge(
            registry,
            "fts_poll_cosignature_age_seconds",
            "Age of the newest cosignature this host verified (it raises `stale` past --max-age)",
            count_u64(now.saturating_sub(attested)),
        );
    }
}

fn count_u64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What an existing metrics file at `path` recorded (nothing if there is none).
pub fn previous(path: &Path) -> Previous {
    let Some(text) = fts_fs::read_bounded(path, MAX_PREVIOUS).ok().and_then(|b| String::from_utf8(b).ok())
    else {
        return Previous::default();
    };
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ').map(str::trim).map(str::to_owned))
    };
    Previous {
        success: value(LAST_SUCCESS).and_then(|v| v.parse().ok()).filter(|&t: &i64| t > 0),
        refusals: value(&format!("{REFUSALS}_total")).and_then(|v| v.parse().ok()).unwrap_or(0),
    }
}

/// Writes the figures for `client` after `result` to `path`, atomically.
pub fn write(path: &Path, client: &Client, result: &RoundResult, now: SystemTime) -> io::Result<()> {
    let text = render(client, result, now, previous(path));
    if path.file_name().is_none() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "the metrics file path has no file name"));
    }
    fts_fs::write_atomic(path, text.as_bytes(), &METRICS_WRITE).map_err(fts_fs::FsError::into_io)
}
