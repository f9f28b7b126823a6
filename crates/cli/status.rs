//! `fts status`: for every client the server has heard from, its last poll, each of
//! its targets' applied seq against the newest published, and the problems it
//! reported. A table for people, `--json` for scripts.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fts_proto::Target;
use fts_store::{ClientStatus, ServerStatus, StatusDir, StoreReader};
use serde::Serialize;

use crate::args::StatusArgs;

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct ClientReport<'a> {
    client_id: &'a str,
    last_poll: &'a str,
    authenticated: bool,
    targets: Vec<TargetReport>,
    problems: &'a [fts_store::Problem],
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct TargetReport {
    target: String,
    applied: u64,
    newest: u64,
}

pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let store = StoreReader::open(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    let status_dir = StatusDir::open(&args.status_dir);
    check_status_dir(&args.status_dir, &status_dir)?;
    let clients = status_dir
        .read_all()
        .with_context(|| format!("cannot read the status folder {}", args.status_dir.display()))?;
    warn_about_revocation(status_dir.read_server());
    let reports: Vec<ClientReport> = clients.iter().map(|c| report(c, &store)).collect();

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &reports)?;
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
            let state = if target.applied >= target.newest {
                "up to date".to_owned()
            } else {
                format!("{} behind", target.newest - target.applied)
            };
            writeln!(
                out,
                "{name:<24} {poll:<21} {:<28} {:>9}  {state}",
                target.target,
                format!("{}/{}", target.applied, target.newest)
            )?;
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
    if !status_dir.has_server_status() {
        anyhow::bail!(
            "{} is not a status folder of fts serve (it has no {}): name the folder `fts serve \
             --status-dir` writes to; the server writes it when it starts",
            path.display(),
            fts_store::status::SERVER_STATUS_FILE
        );
    }
    Ok(())
}

/// Says on stderr (never in the table or the JSON that scripts read) when the
/// server's revocation is off or its CRL is past its next-update time.
fn warn_about_revocation(server: Option<ServerStatus>) {
    let Some(server) = server else { return };
    if !server.revocation {
        eprintln!("note: revocation is off on the server (no CRL), as of {}", server.updated);
        return;
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if let Some(next_update) = server.crl_next_update.filter(|t| t.unix_seconds() < now) {
        eprintln!(
            "warning: the server's CRL is past its next-update time ({next_update}): it is still \
             enforced, but renew it with `fts keygen crl` and copy ca.crl to the server"
        );
    }
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
            })
            .collect(),
        problems: &client.problems,
    }
}
