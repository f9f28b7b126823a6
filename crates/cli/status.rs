//! `fts status`: for every client the server has heard from, its last poll, each of
//! its targets' applied seq against the newest published, and the problems it
//! reported. A table for people, `--json` for scripts.
//!
//! The server's own warnings (revocation off, a CRL past its next-update time, a
//! changed CRL it cannot load, a log whose newest cosignature is older than half of
//! `--max-age`, so the operator learns before the hosts do) go to stderr in both
//! forms, and with `--json` also into the JSON, so a script sees them:
//! `{"server": ..., "warnings": [...], "clients": [...]}`. A host's raised alarms
//! (`stale`, `withheld`, `fork`, `clock`, `behind`) are shown under it.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fts_proto::Target;
use fts_status::{ClientStatus, ServerStatus, StatusDir};
use fts_store::StoreReader;
use serde::Serialize;

use crate::args::StatusArgs;

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClientReport<'a> {
    client_id: &'a str,
    last_poll: &'a str,
    authenticated: bool,
    targets: Vec<TargetReport>,
    /// The log alarms the host had raised at its last poll, with when each was first
    /// raised.
    alarms: &'a std::collections::BTreeMap<fts_proto::AlarmName, fts_proto::Published>,
    problems: &'a [fts_status::Problem],
}

/// What `--json` prints.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct JsonReport<'a> {
    /// What the server last said about itself (`null`: it never did).
    server: Option<&'a ServerStatus>,
    warnings: &'a [Warning],
    clients: &'a [ClientReport<'a>],
}

/// One thing about the server an operator should act on.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Warning {
    /// `revocation-off`, `crl-overdue`, `crl-reload-failing`, `no-log`,
    /// `not-cosigned` or `cosignature-old`.
    kind: &'static str,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct TargetReport {
    target: String,
    applied: u64,
    newest: u64,
    /// The entry the host holds this target at (it cannot apply it yet), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    held_at: Option<u64>,
    /// The withdrawn entry a host that does not understand withdrawals waits before.
    #[serde(skip_serializing_if = "Option::is_none")]
    waits_at_withdrawal: Option<u64>,
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let store = StoreReader::open(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    let status_dir = StatusDir::open(&args.status_dir);
    check_status_dir(&args.status_dir, &status_dir)?;
    let clients = status_dir
        .read_all()
        .with_context(|| format!("cannot read the status folder {}", args.status_dir.display()))?;
    let server = status_dir.read_server();
    let mut warnings = server.as_ref().map(server_warnings).unwrap_or_default();
    warnings.extend(log_warnings(&store, args.max_age));
    for warning in &warnings {
        let label = if warning.kind == "revocation-off" { "note" } else { "warning" };
        eprintln!("{label}: {}", warning.message);
    }
    let reports: Vec<ClientReport> = clients.iter().map(|c| report(c, &store)).collect();

    let mut out = std::io::stdout().lock();
    if args.json {
        let json = JsonReport { server: server.as_ref(), warnings: &warnings, clients: &reports };
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(());
    }
    if reports.is_empty() {
        writeln!(out, "no client has polled yet (status folder {})", args.status_dir.display())?;
        return Ok(());
    }
    writeln!(out, "{:<24} {:<21} {:<28} {:>9}  STATE", "CLIENT", "LAST POLL", "TARGET", "APPLIED")?;
    for client in &reports {
        let who = if client.authenticated {
            client.client_id.to_owned()
        } else {
            format!("{} (unauth)", client.client_id)
        };
        for (i, target) in client.targets.iter().enumerate() {
            let (name, poll) = if i == 0 { (who.as_str(), client.last_poll) } else { ("", "") };
            let state = match target.held_at {
                // Why is in the problems below (the report that held it).
                Some(seq) => {
                    format!("held at seq {seq}, {} behind", target.newest.saturating_sub(target.applied))
                }
                None if target.waits_at_withdrawal.is_some() => format!(
                    "waits before withdrawn seq {}: upgrade its fts (it does not understand withdrawals)",
                    target.waits_at_withdrawal.unwrap_or(0)
                ),
                None if target.applied >= target.newest => "up to date".to_owned(),
                None => format!("{} behind", target.newest - target.applied),
            };
            writeln!(
                out,
                "{name:<24} {poll:<21} {:<28} {:>9}  {state}",
                target.target,
                format!("{}/{}", target.applied, target.newest)
            )?;
        }
        for (alarm, since) in client.alarms {
            writeln!(out, "{:<24} alarm: {alarm} (raised {since})", "")?;
        }
        for problem in client.problems {
            writeln!(
                out,
                "{:<24} problem: {} seq {}: {} (reported {}x, last {})",
                "", problem.target, problem.seq, problem.reason, problem.count, problem.last_seen
            )?;
        }
    }
    writeln!(out, "(APPLIED is what each host reported in its last request: applied / newest published)")?;
    Ok(())
}

/// Refuses a folder `fts serve` never wrote to (a typo, the wrong working folder): an
/// empty fleet is not an answer a monitoring script should get for it. `fts serve`
/// writes `server.json` when it starts, before any client polls.
fn check_status_dir(path: &std::path::Path, status_dir: &StatusDir) -> anyhow::Result<()> {
    if !path.is_dir() {
        anyhow::bail!(
            "there is no status folder {}: name the folder `fts serve --status-dir` writes to",
            path.display()
        );
    }
    let server_json = status_dir.dir().join(fts_status::SERVER_STATUS_FILE);
    match std::fs::metadata(&server_json) {
        Ok(meta) if meta.is_file() => Ok(()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(anyhow::Error::new(e).context(format!(
            "cannot read {} (run fts status as a user who may read the server's status folder)",
            server_json.display()
        ))),
        _ => anyhow::bail!(
            "{} is not a status folder of fts serve (it has no {}): name the folder `fts serve \
             --status-dir` writes to; the server writes it when it starts",
            path.display(),
            fts_status::SERVER_STATUS_FILE
        ),
    }
}

/// What the server's own status calls for: revocation off, a CRL past its
/// next-update time, a changed CRL that the server cannot load.
fn server_warnings(server: &ServerStatus) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if let Some(failing) = &server.crl_reload_failing {
        let hint = failing.hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default();
        warnings.push(Warning {
            kind: "crl-reload-failing",
            message: format!(
                "the server cannot load its changed CRL, since {} (as of {}): {}{hint}. It still \
                 enforces its previous CRL, so hosts revoked since may still be served; it tries \
                 again every few seconds",
                failing.since, server.updated, failing.error
            ),
        });
    }
    if !server.revocation {
        warnings.push(Warning {
            kind: "revocation-off",
            message: format!("revocation is off on the server (no CRL), as of {}", server.updated),
        });
        return warnings;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if let Some(next_update) = server.crl_next_update.as_ref().filter(|t| t.unix_seconds() < now) {
        warnings.push(Warning {
            kind: "crl-overdue",
            message: format!(
                "the server's CRL is past its next-update time ({next_update}): it is still \
                 enforced, but renew it with `fts keygen crl` and copy ca.crl to the server"
            ),
        });
    }
    warnings
}

/// One client's targets: those it reported a `since` for, plus `all`, each against
/// the newest seq in the store.
fn report<'a>(client: &'a ClientStatus, store: &StoreReader) -> ClientReport<'a> {
    let mut targets: Vec<&Target> = client.since.keys().collect();
    if !targets.contains(&&Target::All) {
        targets.push(&Target::All);
    }
    targets.sort();
    ClientReport {
        client_id: client.client_id.as_str(),
        last_poll: client.last_poll.as_str(),
        authenticated: client.authenticated,
        targets: targets
            .into_iter()
            .map(|t| TargetReport {
                target: t.to_string(),
                applied: client.since.get(t).copied().unwrap_or(0),
                newest: store.newest_seq(t),
                held_at: client.held.get(t).copied(),
                // A host that does not understand withdrawals stops before one.
                waits_at_withdrawal: (!client.understands_withdrawals)
                    .then(|| first_withdrawn_after(store, t, client.since.get(t).copied().unwrap_or(0)))
                    .flatten(),
            })
            .collect(),
        alarms: &client.alarms,
        problems: &client.problems,
    }
}

/// The first withdrawn seq of `target` after `since`, if any.
fn first_withdrawn_after(store: &StoreReader, target: &Target, since: u64) -> Option<u64> {
    let snapshot = store.snapshot();
    snapshot
        .withdrawals()
        .iter()
        .filter(|w| w.statement.target == *target && w.statement.seq.get() > since)
        .map(|w| w.statement.seq.get())
        .min()
}

/// What the store's log calls for: none yet, no cosignature over the checkpoint it
/// serves, or a newest cosignature older than half of `max_age` (the hosts raise
/// `stale` at `max_age`: this comes first).
fn log_warnings(store: &StoreReader, max_age: std::time::Duration) -> Vec<Warning> {
    let snapshot = store.snapshot();
    let Some(log) = snapshot.log() else {
        if snapshot.is_empty() {
            return Vec::new(); // nothing published yet: nothing to prove
        }
        return vec![Warning {
            kind: "no-log",
            message: "the store has no log yet: hosts cannot check what they are sent against one (publish, or run `fts log init` on the signing host)".into(),
        }];
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    match log.newest_cosignature {
        None => vec![Warning {
            kind: "not-cosigned",
            message: format!(
                "the checkpoint of {} leaves the store serves has no cosignature: is `fts timestamp` running, and its cosignatures/ folder copied to the servers?",
                log.size()
            ),
        }],
        Some(time) if now.saturating_sub(time) > max_age.as_secs() / 2 => vec![Warning {
            kind: "cosignature-old",
            message: format!(
                "the newest cosignature of the log is {} s old, more than half of --max-age ({} s): hosts will raise `stale` at {} s; is `fts timestamp` running, and its folder copied here?",
                now.saturating_sub(time),
                max_age.as_secs() / 2,
                max_age.as_secs()
            ),
        }],
        Some(_) => Vec::new(),
    }
}
