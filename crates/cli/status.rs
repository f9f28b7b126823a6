//! `fts status`: the fleet view. A summary (hosts current, behind, held, failing,
//! silent, revoked), then the hosts that need attention; `--file NAME` for one
//! release, `--host ID` for one host, `--behind` and `--silent` to select, `--all` for
//! every host, `--verify` for the receipts ([`crate::status_verify`]), `--forget ID`
//! for a host that is gone. `--json` for every view, with the time of every fact.
//!
//! Exit 0 when nothing in the selection needs attention, 3 when something does (more
//! hosts than `--max-attention`; for `--file`, any host without the release; for
//! `--host`, that host), 1 when status cannot be read. Revoked and lost hosts never
//! count. The states and their rules are fts-status's (`fleet`).
//!
//! The server's own warnings (revocation off, a CRL past its next-update time, a
//! changed CRL it cannot load, a log whose newest cosignature is older than half of
//! `--max-age`, entries a host has seen in the log that this server's store lacks) go
//! to stderr in both forms, and with `--json` also into the JSON.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use fts_proto::{ClientId, Published, Target};
use fts_status::fleet::{self, FleetView, HostState, HostView, ReleaseView, StoreFacts, ViewRules};
use fts_status::{ServerStatus, StatusBackend, StatusDir};
use fts_status_db::{PgOptions, PgStatus};
use fts_store::StoreReader;
use serde::Serialize;

use crate::args::StatusArgs;
use crate::exit;

/// What the default view's `--json` prints.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct JsonFleet<'a> {
    /// What the server last said about itself (`null`: it never did).
    server: Option<&'a ServerStatus>,
    warnings: &'a [Warning],
    summary: &'a std::collections::BTreeMap<&'static str, usize>,
    needing_attention: usize,
    max_attention: usize,
    /// The hosts selected (every host but the lost ones unless `--lost`).
    clients: Vec<JsonHost<'a>>,
}

/// A host as `--json` prints it: the view, plus its last poll.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct JsonHost<'a> {
    #[serde(flatten)]
    view: &'a HostView,
    last_poll: Published,
    understands_withdrawals: bool,
}

/// One thing about the server an operator should act on.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Warning {
    /// `revocation-off`, `crl-overdue`, `crl-reload-failing`, `no-log`,
    /// `not-cosigned`, `cosignature-old` or `not-on-this-server`.
    pub kind: &'static str,
    /// What to know, in words.
    pub message: String,
}

pub fn run(args: StatusArgs) -> anyhow::Result<u8> {
    let (status, source) = open_status(&args)?;
    let status = status.as_ref();
    if let Some(id) = &args.forget {
        return forget(status, id);
    }
    let store = StoreReader::open(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    if args.verify {
        return crate::status_verify::run(status, &args.ca, args.json);
    }
    let clients = status.clients().with_context(|| format!("cannot read the {source}"))?;
    let server = status.read_server();
    let facts = store_facts(&store);
    let rules = ViewRules {
        now: unix_now(),
        lost_after: args.lost_after.as_secs(),
        revoked_serials: server
            .as_ref()
            .map(|s| s.revoked_serials.iter().cloned().collect())
            .unwrap_or_default(),
    };
    let mut warnings = server.as_ref().map(server_warnings).unwrap_or_default();
    warnings.extend(log_warnings(&store, args.max_age));
    // Entries a host has seen in the log that this server's store lacks: its replica
    // is behind, and what it lacks reaches no host from here. Needs attention.
    let (log_size, newest_log_seen) =
        (facts.log_size(), clients.iter().filter_map(|c| c.log_size).max().unwrap_or(0));
    let behind_replica = newest_log_seen > log_size && log_size > 0;
    if behind_replica {
        warnings.push(Warning {
            kind: "not-on-this-server",
            message: format!(
                "a host has verified a log of {newest_log_seen} leaves, this server's store has {log_size}: {} leaves are not on this server (is its replica behind?)",
                newest_log_seen - log_size
            ),
        });
    }
    for warning in &warnings {
        let label = if warning.kind == "revocation-off" { "note" } else { "warning" };
        eprintln!("{label}: {}", warning.message);
    }

    // Buffered: the JSON of 50,000 hosts is tens of MiB, and a locked stdout flushes
    // at every line.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if let Some(name) = &args.file {
        let Some(release) = fleet::release(name, &clients, &facts, &rules) else {
            anyhow::bail!("the store has no file named {name} (`fts log` lists what was published)");
        };
        let waiting = release.hosts - done_count(&release);
        if args.json {
            #[derive(Serialize)]
            struct JsonRelease<'a> {
                #[serde(flatten)]
                release: &'a ReleaseView,
                warnings: &'a [Warning],
            }
            serde_json::to_writer_pretty(&mut out, &JsonRelease { release: &release, warnings: &warnings })?;
            writeln!(out)?;
        } else {
            print_release(&mut out, &release)?;
        }
        return Ok(if waiting > 0 || behind_replica { exit::REPORTED } else { exit::SUCCESS });
    }
    if let Some(id) = &args.host {
        let Some(client) = clients.iter().find(|c| c.client_id == *id) else {
            anyhow::bail!("no host {id} has polled this server ({source})");
        };
        let host = fleet::host(client, &facts, &rules);
        let receipts = crate::status_verify::receipts_of(status, id)?;
        if args.json {
            #[derive(Serialize)]
            #[serde(rename_all = "kebab-case")]
            struct JsonOne<'a> {
                #[serde(flatten)]
                host: JsonHost<'a>,
                receipt_log: &'a [crate::status_verify::ReceiptLine],
                warnings: &'a [Warning],
            }
            let one = JsonOne {
                host: JsonHost {
                    view: &host,
                    last_poll: client.last_poll.clone(),
                    understands_withdrawals: client.understands_withdrawals,
                },
                receipt_log: &receipts,
                warnings: &warnings,
            };
            serde_json::to_writer_pretty(&mut out, &one)?;
            writeln!(out)?;
        } else {
            print_host(&mut out, &host, client, &store, true)?;
            if !receipts.is_empty() {
                writeln!(out, "  receipts (newest last):")?;
                for line in receipts.iter().rev().take(20).rev() {
                    writeln!(
                        out,
                        "    #{} made {} received {}: {}",
                        line.number,
                        line.made,
                        line.received,
                        line.outcomes.join(", ")
                    )?;
                }
            }
        }
        return Ok(if host.needs_attention { exit::REPORTED } else { exit::SUCCESS });
    }

    let view = fleet::fleet(&clients, &facts, &rules);
    let selected: Vec<&HostView> = view
        .hosts
        .iter()
        .filter(|h| args.lost || h.state != HostState::Lost)
        .filter(|h| {
            !args.behind || matches!(h.state, HostState::Behind | HostState::Held | HostState::Failing)
        })
        .filter(|h| !args.silent || h.state == HostState::Silent)
        .collect();
    let attention = selected.iter().filter(|h| h.needs_attention).count();
    let code = if attention > args.max_attention || behind_replica { exit::REPORTED } else { exit::SUCCESS };
    let by_id: std::collections::HashMap<&ClientId, &fts_status::ClientStatus> =
        clients.iter().map(|c| (&c.client_id, c)).collect();
    if args.json {
        let json = JsonFleet {
            server: server.as_ref(),
            warnings: &warnings,
            summary: &view.summary,
            needing_attention: attention,
            max_attention: args.max_attention,
            clients: selected
                .iter()
                .filter_map(|h| {
                    let client = by_id.get(&h.client_id)?;
                    Some(JsonHost {
                        view: h,
                        last_poll: client.last_poll.clone(),
                        understands_withdrawals: client.understands_withdrawals,
                    })
                })
                .collect(),
        };
        serde_json::to_writer_pretty(&mut out, &json)?;
        writeln!(out)?;
        return Ok(code);
    }
    if clients.is_empty() {
        writeln!(out, "no client has polled yet ({source})")?;
        return Ok(code);
    }
    print_summary(&mut out, &view, attention, args.max_attention)?;
    let shown: Vec<&&HostView> =
        selected.iter().filter(|h| args.all || args.behind || args.silent || h.needs_attention).collect();
    for host in shown {
        let Some(client) = by_id.get(&host.client_id) else { continue };
        print_host(&mut out, host, client, &store, false)?;
    }
    writeln!(out, "(APPLIED: applied / newest published, by the host's last poll or a later receipt)")?;
    Ok(code)
}

/// `--forget ID`.
fn forget(status: &dyn StatusBackend, id: &ClientId) -> anyhow::Result<u8> {
    let had = status
        .forget(id, Published::from_unix_seconds(unix_now()))
        .with_context(|| format!("cannot forget {id}"))?;
    if had {
        println!(
            "forgot {id}: its status is gone; its receipts stay in the log as evidence, and a host enrolled again as {id} starts a new chain"
        );
    } else {
        println!("{id} had no status here; marked forgotten in the receipt log all the same");
    }
    Ok(exit::SUCCESS)
}

/// Hosts of a release that need nothing more: installed, withdrawn or superseded.
fn done_count(release: &ReleaseView) -> usize {
    ["installed", "withdrawn", "superseded"].iter().map(|s| release.counts.get(s).copied().unwrap_or(0)).sum()
}

fn print_summary(
    out: &mut impl Write,
    view: &FleetView,
    attention: usize,
    max: usize,
) -> std::io::Result<()> {
    let total: usize = view.summary.values().sum();
    let lost = view.summary.get("lost").copied().unwrap_or(0);
    let parts: Vec<String> = HostState::ALL
        .iter()
        .filter(|s| **s != HostState::Lost)
        .map(|s| format!("{} {}", view.summary.get(s.as_str()).copied().unwrap_or(0), s.as_str()))
        .collect();
    let lost = if lost > 0 { format!(" ({lost} lost, hidden: --lost shows them)") } else { String::new() };
    writeln!(
        out,
        "fleet: {} hosts: {}{lost}",
        total - view.summary.get("lost").copied().unwrap_or(0),
        parts.join(", ")
    )?;
    writeln!(out, "needs attention: {attention} (--max-attention {max})")?;
    Ok(())
}

/// One host: a line with its state and last contact, its targets, then what else
/// needs attention.
fn print_host(
    out: &mut impl Write,
    host: &HostView,
    client: &fts_status::ClientStatus,
    store: &StoreReader,
    full: bool,
) -> std::io::Result<()> {
    let unauth = if host.authenticated { "" } else { ", unauthenticated" };
    writeln!(
        out,
        "\n{} ({}{unauth}, last contact {}, {} ago)",
        host.client_id,
        host.state.as_str(),
        host.last_contact,
        fleet::words(host.last_contact_age)
    )?;
    for target in &host.targets {
        let waits = (!client.understands_withdrawals)
            .then(|| first_withdrawn_after(store, &target.target, target.applied))
            .flatten();
        let state = match (target.held_at, waits) {
            // Why is in the lines below (the report that held it).
            (Some(seq), _) => {
                format!("held at seq {seq}, {} behind", target.newest.saturating_sub(target.applied))
            }
            (None, Some(seq)) => {
                format!(
                    "waits before withdrawn seq {seq}: upgrade its fts (it does not understand withdrawals)"
                )
            }
            (None, None) if target.applied >= target.newest => "up to date".to_owned(),
            (None, None) => {
                let offered = target.offered.map(|s| format!(", sent up to seq {s}")).unwrap_or_default();
                format!("{} behind{offered}", target.newest - target.applied)
            }
        };
        writeln!(
            out,
            "  {:<28} {:>9}  {state}",
            target.target.to_string(),
            format!("{}/{}", target.applied, target.newest)
        )?;
    }
    for attention in &host.attention {
        if matches!(attention.kind, "held" | "behind") {
            continue; // the target rows say it
        }
        writeln!(out, "  {}: {}", attention.kind, attention.message)?;
    }
    for problem in &host.problems {
        writeln!(
            out,
            "  problem: {} seq {}: {} (reported {}x, last {})",
            problem.target, problem.seq, problem.reason, problem.count, problem.last_seen
        )?;
    }
    if full {
        for entry in &host.entries {
            let name = entry.file_name.as_ref().map_or("-", |n| n.as_str());
            let detail = entry.detail.as_deref().map(|d| format!(" {d}")).unwrap_or_default();
            writeln!(
                out,
                "  entry {} seq {} {name}: {}{detail} (at {})",
                entry.target, entry.seq, entry.outcome, entry.at
            )?;
        }
        if let Some(book) = &host.receipts {
            let head = book.stored_head.as_ref().map_or("none".to_owned(), |h| h.to_string());
            let declared = book.declared.map_or("-".to_owned(), |n| n.to_string());
            writeln!(
                out,
                "  receipt chain: {} stored (head {head}), {declared} declared at its last poll, {} restart(s), {} dropped",
                book.stored, book.restarts, book.dropped
            )?;
        }
        if let Some(days) = host.certificate_days_left {
            writeln!(out, "  certificate: {days} days left")?;
        }
    }
    Ok(())
}

fn print_release(out: &mut impl Write, release: &ReleaseView) -> std::io::Result<()> {
    writeln!(out, "release {}:", release.file_name)?;
    for entry in &release.entries {
        let withdrawn = if entry.withdrawn { " WITHDRAWN" } else { "" };
        writeln!(
            out,
            "  {} seq {} {} published {}{withdrawn}",
            entry.target, entry.seq, entry.file_hash, entry.published
        )?;
    }
    let count = |s: &str| release.counts.get(s).copied().unwrap_or(0);
    writeln!(
        out,
        "hosts: {} should have it: {} installed, {} offered, {} pending, {} held, {} failed, {} silent, {} withdrawn, {} superseded",
        release.hosts,
        count("installed"),
        count("offered"),
        count("pending"),
        count("held"),
        count("failed"),
        count("silent"),
        count("withdrawn"),
        count("superseded")
    )?;
    let times: Vec<String> = release
        .seconds_to
        .iter()
        .map(|(p, t)| format!("{p} {}", t.map_or("not yet".to_owned(), fleet::words)))
        .collect();
    writeln!(out, "time from publish to installed: {}", times.join(", "))?;
    for (state, hosts) in &release.lists {
        let ids: Vec<&str> = hosts.iter().map(ClientId::as_str).collect();
        writeln!(out, "  {state}: {}", ids.join(" "))?;
    }
    Ok(())
}

/// The store's entries as the views need them.
pub fn store_facts(store: &StoreReader) -> StoreFacts {
    StoreFacts::of(&store.snapshot())
}

/// The status backend `fts status` reads: the database with `--status-db`, else the
/// status folder (refused when `fts serve` never wrote to it). Also says what it is,
/// for messages.
fn open_status(args: &StatusArgs) -> anyhow::Result<(Box<dyn StatusBackend>, String)> {
    if let Some(settings) = args.db.settings() {
        let status = PgStatus::open_for_reading(&settings, PgOptions::default())
            .with_context(|| format!("cannot read the status database {}", settings.shown_url()))?;
        let source = format!("status database {}", status.shown());
        return Ok((Box::new(status), source));
    }
    let status = StatusDir::open(&args.status_dir);
    check_status_dir(&args.status_dir, &status)?;
    Ok((Box::new(status), format!("status folder {}", args.status_dir.display())))
}

/// Refuses a folder `fts serve` never wrote to (a typo, the wrong working folder): an
/// empty fleet is not an answer a monitoring script should get for it. `fts serve`
/// writes `server.json` when it starts, before any client polls.
pub(crate) fn check_status_dir(path: &std::path::Path, status_dir: &StatusDir) -> anyhow::Result<()> {
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
    if let Some(next_update) = server.crl_next_update.as_ref().filter(|t| t.unix_seconds() < unix_now()) {
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
    let now = unix_now();
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

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
