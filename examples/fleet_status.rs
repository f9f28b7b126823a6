//! The bench of issue 20, "the fleet view at 50,000 hosts" (`scripts/bench-fleet.sh`
//! runs every part; docs/PERFORMANCE.md has the figures). Release builds only: the
//! figures are meant to be quoted.
//!
//!     fleet_status build    --dir DIR [--hosts 50000] [--receipt-share 60] [--entries 6]
//!     fleet_status views    --dir DIR [--runs 5] [--file web.conf] [--fts target/release/fts]
//!     fleet_status receipts [--hosts 1000] [--rounds 2] [--runs 1] [--connect-concurrency 50]
//!     fleet_status book     [--hosts 50000] [--step 10000]
//!     fleet_status polls    --server IP:PORT --server-pid PID [--hosts 50000] [--rounds 2]
//!                           [--concurrency 32] [--sources 64] [--since-all 100]
//!
//! `build`: a status folder as `fts serve` leaves it with `--hosts` hosts known, written
//! through fts-status's own calls (`StatusDir::record_poll` for every host,
//! `record_offered` for those sent something they have not confirmed,
//! `StatusDir::record_receipts` with receipts signed by each receipt-sending host's own
//! key, its certificate made in-process by rcgen under a CA of `fts keygen`), and a
//! store of 300 entries published and signed with fts-store and fts-trust: 20 packages
//! x 5 versions to `all` and 4 versions of `web.conf` to each of 50 groups. Host `n`
//! is `host-0000n`, in group `web-(n % 50)`, so its targets are its id, `all` and its
//! group. The mix (deterministic): 1 % lost, 2 % silent, 0.5 % held, 1 % failing (a hook
//! failed, said by a receipt), 10 % behind by 1 to 3 entries, 0.5 % revoked, 0.5 % with
//! a certificate expiring in 3 days, the rest current; `--receipt-share` % of the hosts
//! that are neither lost nor silent send receipts (two each, for their `--entries`
//! newest entries; the other hosts are of an older fts that only polls).
//!
//! `views`: times the library calls `fts status` makes (`StatusDir::read_all`, the
//! store's facts, `fleet::fleet`, `fleet::release`, the JSON encoding), then the real
//! `fts status` binary (summary and `--file`, text and `--json`, stdout to /dev/null),
//! medians of `--runs`, each against its target.
//!
//! `receipts`: the real server (`fts_net::server::Server`, mutual TLS, the default
//! limits but for the request and handshake timeouts) in this process, with
//! `--hosts` client certificates of one CA. Every host connects (TLS handshake done,
//! from its own 127.1.x.y address), then all send one `receipt` request at the same
//! moment; prints the acknowledgements, the receipt log's lines and hashes against
//! them, wall time, p50/p99 latency and how many `record_receipts` calls (one append
//! and one fdatasync each, plus two fsyncs per certificate seen for the first time)
//! the server made. `--rounds 2`: a second burst, certificates already stored;
//! `--runs N`: all of it N times over (a fresh CA, folder and server each), with the
//! medians.
//!
//! `book`: this process's VmRSS while a `StatusDir` learns `--hosts` hosts
//! (`record_poll`, as the first poll of each does), then their unchanged polls
//! (`note_unchanged_poll`), the flush of `last-polls.tsv`, and a model of the receipt
//! intake's per-minute rate map (the same type, one entry per host).
//!
//! `polls`: `--hosts` distinct client ids poll an `fts serve --plaintext` (the id is
//! only claimed) once per round, `--concurrency` at a time from `--sources` loopback
//! addresses; prints the server's VmRSS and VmHWM before, after each round, and after
//! its next flush. Every network address used is in 127.0.0.0/8.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flags::Flags;
use fleet_kit::{
    connect_from, host_id, issue_client, metric, mib, mix, percentile, proc_status_kib,
    raise_open_files_limit,
};
use fts_proto::{
    ClientId, EntryOutcome, EntryOutcomeKind, FileHash, FileName, Outcome, Published, Receipt,
    ReceiptRequest, RejectReason, Report, Request, Seq, ServerFrame, Target,
};
use fts_status::fleet::{self, StoreEntry, StoreFacts, ViewRules};
use fts_status::receipts::{ReceiptArrival, ReceiptLog};
use fts_status::{CertificateSeen, ClientStatus, PollClaims, ServerStatus, StatusBackend, StatusDir};
use fts_store::{Store, StoreReader};
use fts_trust::keygen::{self, CaOptions, CertificateAuthority, ServerOptions};
use rustls::pki_types::CertificateDer;

#[path = "load/flags.rs"]
#[allow(dead_code, reason = "shared with the other bench tools")]
mod flags;
#[path = "load/fleet_kit.rs"]
mod fleet_kit;

const USAGE: &str = "usage: fleet_status build|views|receipts|book|polls [flags] (see the file's docs)";

/// Packages published to `all`, and versions of each.
const ALL_NAMES: u64 = 20;
const ALL_VERSIONS: u64 = 5;
/// `web.conf` versions, each published to every group at once.
const GROUP_VERSIONS: u64 = 4;
const GROUPS: u64 = 50;
/// The newest seq of `all`, and of each group.
const NEWEST_ALL: u64 = ALL_NAMES * ALL_VERSIONS;
const NEWEST_GROUP: u64 = GROUP_VERSIONS;
/// The file `views` times `--file` with: the newest version is on all 50 groups, so
/// every host is concerned.
const DEFAULT_RELEASE: &str = "web.conf";

/// The targets of the issue.
const VIEW_TARGET_SECS: f64 = 2.0;
const RSS_TARGET_MIB: f64 = 200.0;

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let flags = Flags::from_env();
    let result = match flags.first() {
        Some("build") => build(&flags),
        Some("views") => views(&flags),
        Some("receipts") => runtime().and_then(|rt| rt.block_on(receipts(&flags))),
        Some("book") => book(&flags),
        Some("polls") => runtime().and_then(|rt| rt.block_on(polls(&flags))),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fleet_status: {e}");
            ExitCode::from(2)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------
// Shared helpers

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn group_of(n: u64) -> Target {
    format!("group:web-{}", n % GROUPS).parse().expect("a group target")
}

fn group_name_of(n: u64) -> String {
    format!("web-{}", n % GROUPS)
}

fn e<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// The median of `samples` (the lower middle one of an even count).
fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get((sorted.len().max(1) - 1) / 2).copied().unwrap_or(0.0)
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn make_ca(dir: &Path) -> Result<CertificateAuthority, String> {
    keygen::ca(&CaOptions { dir: dir.to_owned(), days: 365, force: false }).map_err(e("keygen ca"))?;
    CertificateAuthority::load(dir).map_err(e("load the CA"))
}

// ---------------------------------------------------------------------------------
// build

/// What a host is in the built fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Kind {
    Current,
    Behind,
    Held,
    Failing,
    Silent,
    Lost,
    Revoked,
    Expiring,
}

struct Plan {
    n: u64,
    id: ClientId,
    group: Target,
    kind: Kind,
    since_all: u64,
    since_group: u64,
    last_poll: u64,
    receipts: bool,
    withdrawals: bool,
}

fn plan(n: u64, receipt_share: u64, now: u64) -> Plan {
    let r = mix(n) % 1000;
    let kind = match r {
        0..10 => Kind::Lost,
        10..30 => Kind::Silent,
        30..35 => Kind::Held,
        35..45 => Kind::Failing,
        45..145 => Kind::Behind,
        145..150 => Kind::Revoked,
        150..155 => Kind::Expiring,
        _ => Kind::Current,
    };
    let spread = mix(n ^ 0xABCD);
    let (since_all, since_group) = match kind {
        Kind::Behind => (NEWEST_ALL - 1 - spread % 3, NEWEST_GROUP - (spread >> 8) % 2),
        Kind::Held => (NEWEST_ALL - 1, NEWEST_GROUP),
        Kind::Silent => (NEWEST_ALL - spread % 4, NEWEST_GROUP),
        Kind::Lost => (60, 1),
        _ => (NEWEST_ALL, NEWEST_GROUP),
    };
    let last_poll = match kind {
        Kind::Lost => now - 40 * 86_400 - spread % 86_400,
        Kind::Silent => now - 7_200 - spread % 28_800,
        _ => now - spread % 60,
    };
    // Failing hosts are those whose receipts said so: they all send receipts.
    let receipts = kind == Kind::Failing
        || (!matches!(kind, Kind::Lost | Kind::Silent) && mix(n ^ 0x5EED) % 100 < receipt_share);
    let withdrawals = mix(n ^ 0x77) % 100 >= 5;
    Plan {
        n,
        id: host_id(n),
        group: group_of(n),
        kind,
        since_all,
        since_group,
        last_poll,
        receipts,
        withdrawals,
    }
}

/// One published entry, as the receipts name it.
#[derive(Clone)]
struct PublishedEntry {
    name: FileName,
    hash: FileHash,
    published: u64,
}

fn build(flags: &Flags) -> Result<bool, String> {
    let dir = PathBuf::from(flags.required("--dir")?);
    let hosts: u64 = flags.parsed_or("--hosts", 50_000)?;
    let receipt_share: u64 = flags.parsed_or("--receipt-share", 60)?;
    let entries: u64 = flags.parsed_or("--entries", 6)?.max(2);
    let started = Instant::now();
    std::fs::create_dir_all(&dir).map_err(e("create --dir"))?;
    let now = unix_now();

    // The store: 104 publishes, 300 entries, one an hour up to 2 hours ago.
    let store_dir = dir.join("store");
    let store = Store::open_or_create(&store_dir).map_err(e("create the store"))?;
    let signing = fts_trust::SigningKey::from_seed(&[20; 32]);
    let outbox = dir.join("outbox");
    std::fs::create_dir_all(&outbox).map_err(e("create the outbox"))?;
    let mut all_entries: BTreeMap<u64, PublishedEntry> = BTreeMap::new();
    let mut group_entries: BTreeMap<(Target, u64), PublishedEntry> = BTreeMap::new();
    let publishes = ALL_NAMES * ALL_VERSIONS + GROUP_VERSIONS;
    let groups: Vec<Target> = (0..GROUPS).map(group_of).collect();
    let mut k = 0;
    let mut publish =
        |name: &str, version: u64, targets: &[Target]| -> Result<Vec<fts_store::Entry>, String> {
            let source = outbox.join(format!("{name}.v{version}"));
            let contents = format!("{name} version {version}\n").repeat(64);
            let options = fts_fs::WriteOptions {
                label: "bench",
                mode: fts_fs::FileMode::LessUmask(0o644),
                durable: false,
                overwrite: true,
            };
            fts_fs::write_atomic(&source, contents.as_bytes(), &options).map_err(e("write"))?;
            let when = now - 7_200 - (publishes - k) * 3_600;
            k += 1;
            let file = FileName::parse(name).map_err(e("a file name"))?;
            store.publish_at(&source, &file, targets, &signing, at(when)).map_err(e("publish"))
        };
    for version in 0..ALL_VERSIONS {
        for p in 0..ALL_NAMES {
            for entry in publish(&format!("pkg-{p:02}.deb"), version, &[Target::All])? {
                let s = &entry.statement;
                all_entries.insert(
                    s.seq.get(),
                    PublishedEntry {
                        name: s.file_name.clone(),
                        hash: s.file_hash,
                        published: s.published.unix_seconds(),
                    },
                );
            }
        }
        if version < GROUP_VERSIONS {
            for entry in publish("web.conf", version, &groups)? {
                let s = &entry.statement;
                group_entries.insert(
                    (s.target.clone(), s.seq.get()),
                    PublishedEntry {
                        name: s.file_name.clone(),
                        hash: s.file_hash,
                        published: s.published.unix_seconds(),
                    },
                );
            }
        }
    }
    let reader = StoreReader::open(&store_dir).map_err(e("open the store"))?;
    let snapshot = reader.snapshot();
    let log_size = snapshot.log().map_or(0, |l| l.size());
    println!(
        "build: store of {} entries ({} publishes, log of {log_size} leaves) in {:.1} s",
        snapshot.entries().len(),
        publishes,
        started.elapsed().as_secs_f64()
    );

    // The hosts, in batches of 250: each batch's receipts stored in one call, as the
    // server's writer stores what arrived together.
    let ca = make_ca(&dir.join("certs"))?;
    let status_dir = dir.join("status");
    let status = StatusDir::open_or_create(&status_dir).map_err(e("the status folder"))?;
    let mut counts: BTreeMap<Kind, u64> = BTreeMap::new();
    let (mut receipt_hosts, mut receipts_stored, mut record_calls) = (0u64, 0u64, 0u64);
    let mut revoked_serials = Vec::new();
    let (mut t_polls, mut t_receipts, mut t_certs) = (0.0, 0.0, 0.0);
    let mut batch: Vec<ReceiptArrival> = Vec::new();
    let hosts_started = Instant::now();
    for n in 1..=hosts {
        let p = plan(n, receipt_share, now);
        *counts.entry(p.kind).or_default() += 1;
        let mut since = BTreeMap::new();
        since.insert(Target::Client(p.id.clone()), 0);
        since.insert(Target::All, p.since_all);
        since.insert(p.group.clone(), p.since_group);
        let not_after = if p.kind == Kind::Expiring { now + 3 * 86_400 } else { now + 300 * 86_400 };

        // Its certificate and receipts, if it sends them.
        let t0 = Instant::now();
        let (serial, arrivals) = if p.receipts {
            receipt_hosts += 1;
            let (cert, key) = issue_client(&ca, &p.id, &group_name_of(p.n))?;
            let (serial, _) = fts_trust::certificate_serial_and_expiry(&cert).map_err(e("serial"))?;
            let signer = fts_trust::ReceiptSigner::from_der(key).map_err(e("signer"))?;
            let arrivals =
                host_receipts(&p, entries, &all_entries, &group_entries, &signer, &cert, &serial, now)?;
            (serial, arrivals)
        } else {
            (hex::encode(&mix(n).to_be_bytes()[..]) + &hex::encode(mix(n + 1).to_be_bytes()), Vec::new())
        };
        t_certs += t0.elapsed().as_secs_f64();
        if p.kind == Kind::Revoked {
            revoked_serials.push(serial.clone());
        }

        let mut claims = PollClaims {
            since,
            understands_withdrawals: p.withdrawals,
            next_poll_within: Some(60),
            certificate: Some(CertificateSeen { serial, not_after: Published::from_unix_seconds(not_after) }),
            log_size: Some(if p.kind == Kind::Lost { log_size / 2 } else { log_size }),
            ..PollClaims::default()
        };
        if let Some(last) = arrivals.last() {
            claims.receipt_count = Some(last.receipt.number);
            claims.receipt_head = Some(last.hash);
        }
        let mut reports = Vec::new();
        if p.kind == Kind::Held {
            claims.held.insert(Target::All, NEWEST_ALL);
            if !p.receipts {
                reports.push(Report::new(Target::All, NEWEST_ALL, RejectReason::HashMismatch));
            }
        }
        let t0 = Instant::now();
        status.record_poll(&p.id, true, &claims, &reports, at(p.last_poll)).map_err(e("record_poll"))?;
        if p.kind == Kind::Behind {
            let offered = BTreeMap::from([(Target::All, NEWEST_ALL)]);
            status.record_offered(&p.id, &offered, at(p.last_poll)).map_err(e("record_offered"))?;
        }
        t_polls += t0.elapsed().as_secs_f64();
        batch.extend(arrivals);
        if batch.len() >= 500 || n == hosts {
            let t0 = Instant::now();
            status.record_receipts(&batch).map_err(e("record_receipts"))?;
            status.apply_receipts(&batch);
            t_receipts += t0.elapsed().as_secs_f64();
            receipts_stored += batch.len() as u64;
            record_calls += 1;
            batch.clear();
        }
        if n % 10_000 == 0 {
            println!("build: {n} hosts ({:.0} s)", hosts_started.elapsed().as_secs_f64());
        }
    }
    status.flush_last_polls().map_err(e("flush the last polls"))?;
    status
        .write_server(&ServerStatus {
            format: fts_status::STATUS_FORMAT,
            updated: Published::from_unix_seconds(now),
            revocation: true,
            crl_next_update: Some(Published::from_unix_seconds(now + 6 * 86_400)),
            crl_number: Some(3),
            crl_reload_failing: None,
            revoked_serials,
        })
        .map_err(e("server.json"))?;

    let (files, bytes) = folder_size(&status_dir);
    let (log_files, log_bytes) = folder_size(&status_dir.join("receipts"));
    let (cert_files, _) = folder_size(&status_dir.join("certificates"));
    println!("build: {hosts} hosts: {counts:?}");
    println!(
        "build: {receipt_hosts} hosts send receipts ({receipts_stored} receipts stored in {record_calls} record_receipts calls); \
         status folder: {files} files, {:.1} MiB (receipt log {log_files} file(s) {:.1} MiB, {cert_files} certificates)",
        bytes as f64 / 1048576.0,
        log_bytes as f64 / 1048576.0
    );
    println!(
        "build: record_poll+record_offered {t_polls:.1} s ({:.0} us a host), record_receipts {t_receipts:.1} s \
         ({:.0} us a receipt), certificates and signatures {t_certs:.1} s; total {:.1} s",
        t_polls * 1e6 / hosts as f64,
        t_receipts * 1e6 / receipts_stored.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
    Ok(true)
}

/// Every file under `dir` (not following links): count and bytes.
fn folder_size(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else { return (0, 0) };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            let (f, b) = folder_size(&entry.path());
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

/// A host's two receipts for its `entries` newest entries applied: installs of the
/// older half, then the rest with the hook of `web.conf` (failed, for a failing host),
/// as the server's checks would have passed them.
#[allow(clippy::too_many_arguments)]
fn host_receipts(
    p: &Plan,
    entries: u64,
    all: &BTreeMap<u64, PublishedEntry>,
    group: &BTreeMap<(Target, u64), PublishedEntry>,
    signer: &fts_trust::ReceiptSigner,
    cert: &CertificateDer<'static>,
    serial: &str,
    now: u64,
) -> Result<Vec<ReceiptArrival>, String> {
    let entry = |target: &Target, seq: u64, e: &PublishedEntry, kind: EntryOutcomeKind| {
        Outcome::Entry(EntryOutcome {
            target: target.clone(),
            seq: Seq::new(seq).expect("a seq"),
            file: Some((e.name.clone(), e.hash)),
            kind,
        })
    };
    let from = p.since_all.saturating_sub(entries - 1) + 1;
    let mut first: Vec<(Outcome, u64)> = Vec::new();
    let mut second: Vec<(Outcome, u64)> = Vec::new();
    for seq in from..=p.since_all {
        let published = &all[&seq];
        let outcome = entry(&Target::All, seq, published, EntryOutcomeKind::Installed);
        if seq < p.since_all {
            first.push((outcome, published.published))
        } else {
            second.push((outcome, published.published))
        }
    }
    let g = &group[&(p.group.clone(), p.since_group)];
    second.push((entry(&p.group, p.since_group, g, EntryOutcomeKind::Installed), g.published));
    let hook = if p.kind == Kind::Failing {
        EntryOutcomeKind::HookFailed { attempt: 5, allowed: 5 }
    } else {
        EntryOutcomeKind::HookOk { attempt: 1 }
    };
    second.push((entry(&p.group, p.since_group, g, hook), g.published));
    if first.is_empty() {
        first.push(second.remove(0));
    }
    let mut arrivals = Vec::new();
    let mut previous = None;
    for (number, outcomes) in [first, second].into_iter().enumerate() {
        // Made a few minutes after the newest entry it names, never after now.
        let made = (outcomes.iter().map(|(_, t)| *t).max().unwrap_or(now) + 60 + mix(p.n) % 600).min(now - 5);
        let receipt = Receipt {
            client_id: p.id.clone(),
            number: number as u64 + 1,
            previous,
            made: Published::from_unix_seconds(made),
            outcomes: outcomes.into_iter().map(|(o, _)| o).collect(),
        };
        let signed = signer.sign(&receipt).map_err(e("sign a receipt"))?;
        let hash = fts_trust::receipt_hash(&signed.bytes);
        previous = Some(hash);
        arrivals.push(ReceiptArrival {
            client_id: p.id.clone(),
            certificate: cert.to_vec(),
            serial: serial.to_owned(),
            signed,
            receipt,
            hash,
            received: Published::from_unix_seconds(made + 1),
        });
    }
    Ok(arrivals)
}

// ---------------------------------------------------------------------------------
// views

/// The store's entries as the views need them: what `fts status` does
/// (`crates/cli/status.rs`, `store_facts`), with fts-store's public API.
fn store_facts(store: &StoreReader) -> StoreFacts {
    let snapshot = store.snapshot();
    let withdrawn: HashSet<(Target, u64)> =
        snapshot.withdrawals().iter().map(|w| (w.statement.target.clone(), w.statement.seq.get())).collect();
    let entries = snapshot
        .entries()
        .iter()
        .map(|e| StoreEntry {
            target: e.statement.target.clone(),
            seq: e.statement.seq.get(),
            file_name: e.statement.file_name.clone(),
            file_hash: e.statement.file_hash,
            published: e.statement.published.unix_seconds(),
            withdrawn: withdrawn.contains(&(e.statement.target.clone(), e.statement.seq.get())),
        })
        .collect();
    StoreFacts::new(entries, snapshot.log().map_or(0, |l| l.size()))
}

/// Counts what is written, for the size of the JSON.
struct Counting(u64);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn views(flags: &Flags) -> Result<bool, String> {
    let dir = PathBuf::from(flags.required("--dir")?);
    let runs: usize = flags.parsed_or("--runs", 5)?;
    let release_name = FileName::parse(&flags.value("--file").unwrap_or_else(|| DEFAULT_RELEASE.into()))
        .map_err(e("--file"))?;
    let (store_dir, status_dir) = (dir.join("store"), dir.join("status"));
    let mut samples: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    let mut add = |what: &'static str, secs: f64| samples.entry(what).or_default().push(secs);
    let (mut clients_read, mut json_bytes, mut needing, mut release_hosts) = (0, 0, 0, 0);
    let mut summary = String::new();

    // The library calls alone, in this process.
    for _ in 0..runs {
        let t0 = Instant::now();
        let status = StatusDir::open(&status_dir);
        let clients = status.read_all().map_err(e("read_all"))?;
        add("lib read_all (every client file, last-polls.tsv)", t0.elapsed().as_secs_f64());
        clients_read = clients.len();

        let t0 = Instant::now();
        let store = StoreReader::open(&store_dir).map_err(e("open the store"))?;
        let facts = store_facts(&store);
        add("lib store open + facts", t0.elapsed().as_secs_f64());

        let server = status.read_server();
        let rules = ViewRules {
            now: unix_now(),
            lost_after: fleet::DEFAULT_LOST_AFTER,
            revoked_serials: server.map(|s| s.revoked_serials.into_iter().collect()).unwrap_or_default(),
        };
        let t0 = Instant::now();
        let view = fleet::fleet(&clients, &facts, &rules);
        add("lib fleet()", t0.elapsed().as_secs_f64());
        needing = view.needing_attention;
        summary = format!("{:?}", view.summary);

        let t0 = Instant::now();
        let mut out = Counting(0);
        serde_json::to_writer_pretty(&mut out, &view).map_err(e("json"))?;
        add("lib JSON of the fleet view (pretty)", t0.elapsed().as_secs_f64());
        json_bytes = out.0;

        // What the text summary does to print each host needing attention: a linear
        // search of the clients per host (crates/cli/status.rs, `run`).
        let t0 = Instant::now();
        let mut found = 0usize;
        for host in view.hosts.iter().filter(|h| h.needs_attention && h.state != fleet::HostState::Lost) {
            found += usize::from(clients.iter().any(|c| c.client_id == host.client_id));
        }
        add("cli text: linear find per host shown", t0.elapsed().as_secs_f64());
        assert!(found <= needing);
        // The same lookups through a map by id, as the `--json` path makes one.
        let t0 = Instant::now();
        let by_id: HashMap<&ClientId, &ClientStatus> = clients.iter().map(|c| (&c.client_id, c)).collect();
        let mut found_by_map = 0usize;
        for host in view.hosts.iter().filter(|h| h.needs_attention && h.state != fleet::HostState::Lost) {
            found_by_map += usize::from(by_id.contains_key(&host.client_id));
        }
        add("cli text: the same through a HashMap by id", t0.elapsed().as_secs_f64());
        assert_eq!(found, found_by_map);
        drop(by_id);

        // `fts status` writes its JSON to `stdout().lock()`, which is line-buffered:
        // one write(2) per line of pretty JSON. The same bytes to /dev/null through
        // a line buffer and through a BufWriter.
        let null = || std::fs::OpenOptions::new().write(true).open("/dev/null").map_err(e("/dev/null"));
        let t0 = Instant::now();
        let mut line_buffered = std::io::LineWriter::new(null()?);
        serde_json::to_writer_pretty(&mut line_buffered, &view).map_err(e("json"))?;
        line_buffered.flush().map_err(e("flush"))?;
        add("lib JSON of the fleet view, line-buffered to /dev/null", t0.elapsed().as_secs_f64());
        let t0 = Instant::now();
        let mut buffered = std::io::BufWriter::with_capacity(1 << 16, null()?);
        serde_json::to_writer_pretty(&mut buffered, &view).map_err(e("json"))?;
        buffered.flush().map_err(e("flush"))?;
        add("lib JSON of the fleet view, BufWriter to /dev/null", t0.elapsed().as_secs_f64());

        let t0 = Instant::now();
        let release = fleet::release(&release_name, &clients, &facts, &rules)
            .ok_or_else(|| format!("the store has no {release_name}"))?;
        add("lib release()", t0.elapsed().as_secs_f64());
        release_hosts = release.hosts;
        let t0 = Instant::now();
        drop((view, release, clients));
        add("lib drop of the statuses and views (freed at exit)", t0.elapsed().as_secs_f64());
    }
    let peak = proc_status_kib("self", "VmHWM").unwrap_or(0);
    println!(
        "views: {clients_read} client files read; fleet {summary}; {needing} need attention; \
         release {release_name}: {release_hosts} hosts; fleet JSON {:.1} MiB; peak RSS of these runs {:.0} MiB",
        json_bytes as f64 / 1048576.0,
        mib(peak)
    );

    // The real binary.
    let mut ok = true;
    if let Some(fts) = flags.value("--fts") {
        let base: Vec<String> = vec![
            "status".into(),
            "--store".into(),
            store_dir.display().to_string(),
            "--status-dir".into(),
            status_dir.display().to_string(),
        ];
        let file = release_name.to_string();
        let commands: [(&'static str, Vec<&str>); 4] = [
            ("fts status --json (summary)", vec!["--json"]),
            ("fts status (summary, text)", vec![]),
            ("fts status --file NAME --json", vec!["--file", &file, "--json"]),
            ("fts status --file NAME (text)", vec!["--file", &file]),
        ];
        let mut rss: BTreeMap<&str, u64> = BTreeMap::new();
        for _ in 0..runs {
            // Alternated, so that a change of the machine's load touches every one.
            for (label, extra) in &commands {
                let (secs, peak_kib, code) = run_timed(&fts, &base, extra)?;
                if !matches!(code, Some(0 | 3)) {
                    return Err(format!("{label} exited with {code:?}"));
                }
                samples.entry(label).or_default().push(secs);
                let max = rss.entry(label).or_default();
                *max = (*max).max(peak_kib);
            }
        }
        println!("\nviews: medians of {runs} runs ({} hosts known)", clients_read);
        for (label, _) in &commands {
            let m = median(&samples[label]);
            let pass = m < VIEW_TARGET_SECS;
            ok &= pass;
            println!(
                "  {label:<40} {m:>7.3} s   (target < {VIEW_TARGET_SECS} s) {}   peak RSS {:.0} MiB   runs {:?}",
                verdict(pass),
                mib(rss[label]),
                samples[label].iter().map(|s| (s * 1000.0).round() / 1000.0).collect::<Vec<_>>()
            );
        }
    }
    println!("\nviews: the library calls, medians of {runs} runs (where the time goes)");
    for (label, secs) in &samples {
        if label.starts_with("fts ") {
            continue;
        }
        println!("  {label:<56} {:>7.3} s", median(secs));
    }
    Ok(ok)
}

/// Runs `fts` with `base` and `extra` arguments, stdout to /dev/null; returns the wall
/// time, the peak RSS in KiB (from /usr/bin/time when there is one) and the exit code.
fn run_timed(fts: &str, base: &[String], extra: &[&str]) -> Result<(f64, u64, Option<i32>), String> {
    let time = Path::new("/usr/bin/time");
    let rss_file = std::env::temp_dir().join(format!("fleet-status-rss.{}", std::process::id()));
    let mut command = if time.exists() {
        let mut c = std::process::Command::new(time);
        c.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(fts);
        c
    } else {
        std::process::Command::new(fts)
    };
    command.args(base).args(extra).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let t0 = Instant::now();
    let status = command.status().map_err(e("run fts"))?;
    let secs = t0.elapsed().as_secs_f64();
    let peak = std::fs::read_to_string(&rss_file).ok().and_then(|s| s.trim().lines().last()?.parse().ok());
    let _ = std::fs::remove_file(&rss_file);
    Ok((secs, peak.unwrap_or(0), status.code()))
}

// ---------------------------------------------------------------------------------
// receipts

/// The status folder, with every `record_receipts` call counted and timed: one call is
/// one append and one fdatasync of the log (and a durable write of each certificate
/// not seen before).
struct Counted {
    inner: StatusDir,
    calls: AtomicU64,
    batches: Mutex<Vec<(usize, f64)>>,
}

impl StatusBackend for Counted {
    fn note_unchanged_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> bool {
        self.inner.note_unchanged_poll(client, authenticated, claims, reports, now)
    }
    fn record_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> fts_status::Result<()> {
        self.inner.record_poll(client, authenticated, claims, reports, now).map(|_| ())
    }
    fn record_offered(
        &self,
        client: &ClientId,
        offered: &BTreeMap<Target, u64>,
        now: SystemTime,
    ) -> fts_status::Result<()> {
        self.inner.record_offered(client, offered, now)
    }
    fn apply_receipts(&self, arrivals: &[ReceiptArrival]) {
        self.inner.apply_receipts(arrivals);
    }
    fn record_receipts(&self, arrivals: &[ReceiptArrival]) -> fts_status::Result<()> {
        let t0 = Instant::now();
        let result = self.inner.record_receipts(arrivals);
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.batches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((arrivals.len(), t0.elapsed().as_secs_f64()));
        result
    }
    fn flush(&self) -> fts_status::Result<()> {
        self.inner.flush_last_polls().map(|_| ())
    }
    fn write_server(&self, status: &ServerStatus) -> fts_status::Result<()> {
        self.inner.write_server(status)
    }
    fn read_server(&self) -> Option<ServerStatus> {
        self.inner.read_server()
    }
    fn clients(&self) -> fts_status::Result<Vec<ClientStatus>> {
        self.inner.read_all()
    }
    fn clients_in_batches(
        &self,
        batch: usize,
        each: &mut dyn FnMut(Vec<ClientStatus>),
    ) -> fts_status::Result<()> {
        self.inner.read_in_batches(batch, each)
    }
    fn client(&self, client: &ClientId) -> fts_status::Result<Option<ClientStatus>> {
        self.inner.read(client)
    }
    fn receipts(&self) -> fts_status::Result<ReceiptLog> {
        self.inner.read_receipts()
    }
    fn certificate(&self, serial: &str) -> fts_status::Result<Option<Vec<u8>>> {
        self.inner.certificate(serial)
    }
    fn forget(&self, client: &ClientId, now: Published) -> fts_status::Result<bool> {
        self.inner.forget(client, now)
    }
}

/// One simulated host of the receipt burst.
struct Sender {
    id: ClientId,
    source: Ipv4Addr,
    config: Arc<rustls::ClientConfig>,
    signer: fts_trust::ReceiptSigner,
    previous: Option<FileHash>,
}

/// The source address of host `i` (0-based): 127.1.x.y, one per host.
fn source_of(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8)
}

/// One round's figures, for the medians over runs.
#[derive(Default, Clone)]
struct RoundFigures {
    acked: usize,
    lost: usize,
    wall: f64,
    p50: f64,
    p99: f64,
    calls: u64,
    flushes: u64,
}

async fn receipts(flags: &Flags) -> Result<bool, String> {
    let hosts: usize = flags.parsed_or("--hosts", 1_000)?;
    let rounds: u64 = flags.parsed_or("--rounds", 2)?;
    let runs: usize = flags.parsed_or("--runs", 1)?.max(1);
    let connect_concurrency: usize = flags.parsed_or("--connect-concurrency", 50)?;
    let limit = raise_open_files_limit();
    if limit < (hosts as u64) * 2 + 100 {
        return Err(format!("the open-file limit is {limit}: {hosts} hosts need {}", hosts * 2 + 100));
    }
    let mut ok = true;
    let mut figures: Vec<Vec<RoundFigures>> = vec![Vec::new(); rounds as usize];
    for run in 1..=runs {
        println!("\nreceipts run {run} of {runs}: a fresh CA, {hosts} hosts, status folder and server");
        ok &= receipts_once(hosts, rounds, connect_concurrency, &mut figures).await?;
    }
    println!("\nreceipts: medians of {runs} runs of {hosts} hosts sending one receipt each at once");
    for (round, samples) in figures.iter().enumerate() {
        let m = |f: fn(&RoundFigures) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
        let lost: usize = samples.iter().map(|f| f.lost).sum();
        let acked: usize = samples.iter().map(|f| f.acked).sum();
        let pass = lost == 0 && acked == hosts * samples.len();
        println!(
            "  round {} ({}): acknowledged {acked} of {}, lost {lost} (target: none lost) {}; wall {:.3} s, \
             p50 {:.0} ms, p99 {:.0} ms; record_receipts calls {:.0}, fsyncs {:.0}; walls {:?}",
            round + 1,
            if round == 0 { "every certificate new to the server" } else { "certificates already stored" },
            hosts * samples.len(),
            verdict(pass),
            m(|f| f.wall),
            m(|f| f.p50) * 1000.0,
            m(|f| f.p99) * 1000.0,
            m(|f| f.calls as f64),
            m(|f| f.flushes as f64),
            samples.iter().map(|f| (f.wall * 1000.0).round() / 1000.0).collect::<Vec<_>>()
        );
    }
    Ok(ok)
}

async fn receipts_once(
    hosts: usize,
    rounds: u64,
    connect_concurrency: usize,
    figures: &mut [Vec<RoundFigures>],
) -> Result<bool, String> {
    let work = tempfile::tempdir().map_err(e("a temporary folder"))?;
    let certs = work.path().join("certs");
    let ca = make_ca(&certs)?;
    keygen::server(&ServerOptions {
        dir: certs.clone(),
        names: vec!["localhost".into(), "127.0.0.1".into()],
        days: 30,
        force: false,
    })
    .map_err(e("keygen server"))?;
    let roots = fts_trust::pem::load_certificates(&certs.join(keygen::CA_CERT_FILE)).map_err(e("ca.crt"))?;

    // The hosts: a certificate each, and the poll that made each known to the server.
    let t0 = Instant::now();
    let status = StatusDir::open_or_create(work.path().join("status")).map_err(e("the status folder"))?;
    let mut senders = Vec::with_capacity(hosts);
    for i in 0..hosts {
        let n = i as u64 + 1;
        let id = host_id(n);
        let (cert, key) = issue_client(&ca, &id, &group_name_of(n))?;
        let (serial, not_after) = fts_trust::certificate_serial_and_expiry(&cert).map_err(e("serial"))?;
        let signer = fts_trust::ReceiptSigner::from_der(key.clone_key()).map_err(e("signer"))?;
        let config = fts_trust::client_config(roots.clone(), vec![cert], key).map_err(e("client config"))?;
        let since = BTreeMap::from([(Target::Client(id.clone()), 0), (Target::All, 0), (group_of(n), 0)]);
        let claims = PollClaims {
            since,
            next_poll_within: Some(60),
            certificate: Some(CertificateSeen { serial, not_after: Published::from_unix_seconds(not_after) }),
            ..PollClaims::default()
        };
        status.record_poll(&id, true, &claims, &[], SystemTime::now()).map_err(e("record_poll"))?;
        senders.push(Sender { id, source: source_of(i), config, signer, previous: None });
    }
    println!(
        "receipts: {hosts} client certificates and their first polls in {:.1} s",
        t0.elapsed().as_secs_f64()
    );

    let backend = Arc::new(Counted { inner: status, calls: AtomicU64::new(0), batches: Mutex::default() });
    let store_dir = work.path().join("store");
    Store::open_or_create(&store_dir).map_err(e("create the store"))?;
    let store = StoreReader::open(&store_dir).map_err(e("open the store"))?;
    let chain =
        fts_trust::pem::load_certificates(&certs.join(keygen::SERVER_CERT_FILE)).map_err(e("server.crt"))?;
    let key =
        fts_trust::pem::load_private_key(&certs.join(keygen::SERVER_KEY_FILE)).map_err(e("server.key"))?;
    let client_auth = fts_trust::ClientAuth::from_files(&certs.join(keygen::CA_CERT_FILE), None)
        .map_err(e("client auth"))?;
    let config =
        fts_trust::server_config(chain, key, Arc::clone(&client_auth)).map_err(e("server config"))?;
    let transport =
        fts_net::server::Transport::Tls { acceptor: tokio_rustls::TlsAcceptor::from(config), client_auth };
    // The default limits, but the connections wait at the barrier longer than a host
    // would between its handshake and its request.
    let settings = fts_net::server::ServerSettings {
        request_timeout: Duration::from_secs(120),
        handshake_timeout: Duration::from_secs(60),
        ..Default::default()
    };
    let metrics = Arc::new(fts_net::metrics::Metrics::new());
    let addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let server = fts_net::server::Server::bind(
        addr,
        transport,
        settings,
        store,
        Arc::clone(&backend) as Arc<dyn StatusBackend>,
        Arc::clone(&metrics),
    )
    .await
    .map_err(e("bind"))?;
    let addr = server.local_addr().map_err(e("local address"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));

    let name = rustls::pki_types::ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    let item = (
        FileName::parse("pkg-00.deb").expect("a file name"),
        FileHash::from_digest(<sha2::Sha256 as sha2::Digest>::digest(b"pkg-00.deb").into()),
    );
    let mut ok = true;
    let mut acked_total = 0usize;
    let mut acked_hashes: HashSet<FileHash> = HashSet::new();
    for round in 1..=rounds {
        let certificates = backend.inner.dir().join("certificates");
        let certificates_before = folder_size(&certificates).0;
        let calls_before = backend.calls.load(Ordering::Relaxed);
        let batches_before = backend.batches.lock().unwrap_or_else(|p| p.into_inner()).len();
        let stored_before = metric(&metrics.encode(), "fts_receipts_stored_total");

        // Every host connects (handshake done), its receipt ready.
        let t0 = Instant::now();
        let gate = Arc::new(tokio::sync::Semaphore::new(connect_concurrency));
        let mut connecting = tokio::task::JoinSet::new();
        for (i, sender) in senders.iter_mut().enumerate() {
            let receipt = Receipt {
                client_id: sender.id.clone(),
                number: round,
                previous: sender.previous,
                made: Published::from_unix_seconds(unix_now()),
                outcomes: vec![Outcome::Entry(EntryOutcome {
                    target: Target::All,
                    seq: Seq::new(round).expect("a seq"),
                    file: Some(item.clone()),
                    kind: EntryOutcomeKind::Installed,
                })],
            };
            let signed = sender.signer.sign(&receipt).map_err(e("sign"))?;
            let hash = fts_trust::receipt_hash(&signed.bytes);
            sender.previous = Some(hash);
            let request = ReceiptRequest { client_id: sender.id.clone(), receipts: vec![signed] };
            let (source, config, name, gate) =
                (sender.source, Arc::clone(&sender.config), name.clone(), Arc::clone(&gate));
            connecting.spawn(async move {
                let _permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
                let tcp = connect_from(source, addr).await.map_err(e("connect"))?;
                let tls =
                    tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(e("tls"))?;
                Ok::<_, String>((i, fts_net::Connection::client(tls), request, hash))
            });
        }
        let mut ready = Vec::with_capacity(hosts);
        let mut failures: Vec<String> = Vec::new();
        while let Some(joined) = connecting.join_next().await {
            match joined {
                Ok(Ok(conn)) => ready.push(conn),
                Ok(Err(err)) => failures.push(err),
                Err(err) => failures.push(err.to_string()),
            }
        }
        let connected_in = t0.elapsed().as_secs_f64();

        // All at once: each task waits for the gate, sends, reads the answer.
        let (go, wait) = tokio::sync::watch::channel(false);
        let first_send = Arc::new(Mutex::new(None::<Instant>));
        let mut sending = tokio::task::JoinSet::new();
        for (_, mut conn, request, hash) in ready {
            let mut wait = wait.clone();
            let first_send = Arc::clone(&first_send);
            sending.spawn(async move {
                let _ = wait.wait_for(|go| *go).await;
                let sent = Instant::now();
                first_send.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(sent);
                conn.send_receipts(&request).await.map_err(e("send"))?;
                let frame = conn.read_server_frame().await;
                let acked = Instant::now();
                let _ = tokio::time::timeout(Duration::from_secs(5), conn.shutdown()).await;
                match frame {
                    Ok(ServerFrame::ReceiptsStored(stored)) if stored.stored.contains(&hash) => {
                        Ok((hash, acked.duration_since(sent).as_secs_f64(), acked))
                    }
                    Ok(other) => Err(format!("answered {other:?}")),
                    Err(err) => Err(format!("read: {err:?}")),
                }
            });
        }
        let burst = Instant::now();
        let _ = go.send(true);
        let mut latencies = Vec::new();
        let mut last_ack = burst;
        while let Some(joined) = sending.join_next().await {
            match joined {
                Ok(Ok((hash, latency, acked))) => {
                    acked_hashes.insert(hash);
                    latencies.push(latency);
                    last_ack = last_ack.max(acked);
                }
                Ok(Err(err)) => failures.push(err),
                Err(err) => failures.push(err.to_string()),
            }
        }
        let first = first_send.lock().unwrap_or_else(|p| p.into_inner()).unwrap_or(burst);
        let wall = last_ack.saturating_duration_since(first).as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        acked_total += latencies.len();

        // What is on disk: every line of the log, and every hash acknowledged in it.
        let log = backend.inner.read_receipts().map_err(e("read the receipt log"))?;
        let lines = count_log_lines(&backend.inner.dir().join("receipts"));
        let in_log: HashSet<FileHash> = log
            .lines
            .iter()
            .filter_map(|l| match l {
                fts_status::receipts::LogLine::Receipt(r) => Some(r.hash),
                fts_status::receipts::LogLine::Forget(_) => None,
            })
            .collect();
        let missing = acked_hashes.iter().filter(|h| !in_log.contains(h)).count();
        let calls = backend.calls.load(Ordering::Relaxed) - calls_before;
        let new_certificates = folder_size(&certificates).0 - certificates_before;
        let batches: Vec<(usize, f64)> =
            backend.batches.lock().unwrap_or_else(|p| p.into_inner())[batches_before..].to_vec();
        let text = metrics.encode();
        let stored_metric = metric(&text, "fts_receipts_stored_total") - stored_before;
        let round_ok =
            latencies.len() == hosts && lines == acked_total && missing == 0 && log.damaged.is_empty();
        ok &= round_ok;
        figures[round as usize - 1].push(RoundFigures {
            acked: latencies.len(),
            lost: missing + acked_total.saturating_sub(lines),
            wall,
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
            calls,
            flushes: calls + 2 * new_certificates,
        });
        println!(
            "\nreceipts round {round} ({}): {hosts} hosts connected (TLS done) in {connected_in:.1} s, then all sent at once",
            if round == 1 { "every certificate new to the server" } else { "certificates already stored" }
        );
        println!(
            "  acknowledged {} of {hosts}; receipt log lines {lines} (acknowledged so far {acked_total}), \
             acknowledged hashes missing from the log {missing}, damaged lines {}: {}",
            latencies.len(),
            log.damaged.len(),
            verdict(round_ok)
        );
        println!(
            "  wall time first send to last acknowledgement {:.3} s; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            wall,
            percentile(&latencies, 50.0) * 1000.0,
            percentile(&latencies, 99.0) * 1000.0,
            latencies.last().copied().unwrap_or(0.0) * 1000.0
        );
        println!(
            "  record_receipts calls (one append + one fdatasync of the log each) {calls}: receipts per call {:?}, seconds per call {:?}; \
             certificates stored for the first time {new_certificates} (a durable write each: 2 fsyncs); so {} fsyncs in all; \
             fts_receipts_stored_total +{stored_metric}",
            batches.iter().map(|b| b.0).collect::<Vec<_>>(),
            batches.iter().map(|b| (b.1 * 1000.0).round() / 1000.0).collect::<Vec<_>>(),
            calls + 2 * new_certificates
        );
        for failure in failures.iter().take(5) {
            println!("  failure: {failure}");
        }
        if !failures.is_empty() {
            println!("  failures: {}", failures.len());
        }
    }
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(40), running).await;
    Ok(ok)
}

fn count_log_lines(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut lines = 0;
    for entry in entries.flatten() {
        let mut text = Vec::new();
        if let Ok(mut file) = std::fs::File::open(entry.path()) {
            let _ = file.read_to_end(&mut text);
        }
        lines += text.iter().filter(|&&b| b == b'\n').count();
    }
    lines
}

// ---------------------------------------------------------------------------------
// book

fn book(flags: &Flags) -> Result<bool, String> {
    let hosts: u64 = flags.parsed_or("--hosts", 50_000)?;
    let step: u64 = flags.parsed_or("--step", 10_000)?.max(1);
    let work = tempfile::tempdir().map_err(e("a temporary folder"))?;
    let rss = || proc_status_kib("self", "VmRSS").unwrap_or(0);
    let status = StatusDir::open_or_create(work.path().join("status")).map_err(e("the status folder"))?;
    let claims_of = |n: u64| {
        let id = host_id(n);
        let since = BTreeMap::from([
            (Target::Client(id.clone()), 0),
            (Target::All, NEWEST_ALL),
            (group_of(n), NEWEST_GROUP),
        ]);
        let serial = hex::encode(mix(n).to_be_bytes()) + &hex::encode(mix(n + 1).to_be_bytes());
        let claims = PollClaims {
            since,
            understands_withdrawals: true,
            next_poll_within: Some(60),
            certificate: Some(CertificateSeen {
                serial,
                not_after: Published::from_unix_seconds(unix_now() + 86_400 * 300),
            }),
            log_size: Some(304),
            receipt_count: Some(2),
            ..PollClaims::default()
        };
        (id, claims)
    };
    // The claims are made outside the measured part: they are the request's, not the
    // book's. What is kept is what the book and the folder keep.
    let all: Vec<(ClientId, PollClaims)> = (1..=hosts).map(claims_of).collect();
    let start_rss = rss();
    println!("book: VmRSS before: {:.1} MiB ({} hosts' poll claims built)", mib(start_rss), hosts);
    let mut checkpoints = Vec::new();
    let t0 = Instant::now();
    for (i, (id, claims)) in all.iter().enumerate() {
        status.record_poll(id, true, claims, &[], SystemTime::now()).map_err(e("record_poll"))?;
        let n = i as u64 + 1;
        if n.is_multiple_of(step) || n == hosts {
            let now = rss();
            checkpoints.push((n, now));
            println!(
                "book: {n:>7} hosts known (record_poll): VmRSS {:.1} MiB, +{:.1} MiB ({:.0} bytes a host)",
                mib(now),
                mib(now - start_rss),
                (now - start_rss) as f64 * 1024.0 / n as f64
            );
        }
    }
    let record_secs = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let mut unchanged = 0;
    for (id, claims) in &all {
        unchanged += usize::from(status.note_unchanged_poll(id, true, claims, &[], SystemTime::now()));
    }
    let note_secs = t0.elapsed().as_secs_f64();
    let after_notes = rss();
    let t0 = Instant::now();
    status.flush_last_polls().map_err(e("flush"))?;
    let flush_secs = t0.elapsed().as_secs_f64();
    let after_flush = rss();
    println!(
        "book: record_poll {:.0} us a host; a second poll of each, unchanged: {unchanged} of {hosts} noted in memory only, \
         {:.2} us each, VmRSS {:.1} MiB; flush of last-polls.tsv ({hosts} lines, a listing of the folder) {:.0} ms, VmRSS {:.1} MiB",
        record_secs * 1e6 / hosts as f64,
        note_secs * 1e6 / hosts as f64,
        mib(after_notes),
        flush_secs * 1000.0,
        mib(after_flush)
    );

    // The receipt intake's per-minute rate map (crates/net/src/receipt_intake.rs,
    // `rates`): private there, so modelled with its exact type, one entry per host,
    // as when every host sent a receipt within one minute.
    let before_rates = rss();
    let mut rates: (u64, HashMap<ClientId, u32>) = (unix_now() / 60, HashMap::new());
    for (id, _) in &all {
        *rates.1.entry(id.clone()).or_insert(0) += 1;
    }
    let after_rates = rss();
    println!(
        "book: the receipt rate map with {} hosts in one minute (modelled): +{:.1} MiB",
        rates.1.len(),
        mib(after_rates.saturating_sub(before_rates))
    );
    drop(rates);
    let growth = after_flush.saturating_sub(start_rss);
    let per_host = growth as f64 * 1024.0 / hosts as f64;
    let scaled = if hosts == 50_000 {
        String::new()
    } else {
        format!(", so +{:.1} MiB at 50,000 hosts", per_host * 50_000.0 / 1048576.0)
    };
    let pass = mib(after_flush) < RSS_TARGET_MIB;
    println!(
        "book: {hosts} hosts known: VmRSS {:.1} MiB (the claims built up front included), of which the book and \
         its folder's handle +{:.1} MiB ({per_host:.0} bytes a host{scaled}); target < {RSS_TARGET_MIB} MiB {}",
        mib(after_flush),
        mib(growth),
        verdict(pass)
    );
    let _ = checkpoints;
    Ok(pass)
}

// ---------------------------------------------------------------------------------
// polls

async fn polls(flags: &Flags) -> Result<bool, String> {
    let server: SocketAddr = flags.parsed("--server")?.ok_or("--server IP:PORT is required")?;
    if !server.ip().is_loopback() {
        return Err("--server must be on 127.0.0.0/8".into());
    }
    let pid = flags.required("--server-pid")?;
    let hosts: u64 = flags.parsed_or("--hosts", 50_000)?;
    let rounds: u64 = flags.parsed_or("--rounds", 2)?;
    let concurrency: usize = flags.parsed_or("--concurrency", 32)?;
    let sources: u64 = flags.parsed_or("--sources", 64)?.clamp(1, 250);
    let since_all: u64 = flags.parsed_or("--since-all", NEWEST_ALL)?;
    raise_open_files_limit();
    let rss = |field| proc_status_kib(&pid, field).unwrap_or(0);
    let before = rss("VmRSS");
    println!("polls: fts serve (pid {pid}) VmRSS before any poll {:.1} MiB", mib(before));
    let mut ok = true;
    let mut last_rss = before;
    for round in 1..=rounds {
        let next = Arc::new(AtomicU64::new(1));
        let failed = Arc::new(AtomicUsize::new(0));
        let first_error = Arc::new(Mutex::new(None::<String>));
        let t0 = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..concurrency {
            let (next, failed, first_error) =
                (Arc::clone(&next), Arc::clone(&failed), Arc::clone(&first_error));
            workers.spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n > hosts {
                        break;
                    }
                    let source = Ipv4Addr::new(127, 2, 0, ((n + w as u64) % sources + 1) as u8);
                    if let Err(err) = plaintext_poll(server, source, &host_id(n), since_all).await {
                        failed.fetch_add(1, Ordering::Relaxed);
                        first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(err);
                    }
                }
            });
        }
        while workers.join_next().await.is_some() {}
        let secs = t0.elapsed().as_secs_f64();
        let failed = failed.load(Ordering::Relaxed);
        let now = rss("VmRSS");
        println!(
            "polls round {round} ({}): {hosts} polls in {secs:.1} s ({:.0}/s), failed {failed}{}; \
             server VmRSS {:.1} MiB ({:+.1} MiB), VmHWM {:.1} MiB",
            if round == 1 {
                "the first poll of each id: its status file written"
            } else {
                "unchanged polls: memory only"
            },
            hosts as f64 / secs,
            first_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|e| format!(" (first: {e})"))
                .unwrap_or_default(),
            mib(now),
            mib(now) - mib(last_rss),
            mib(rss("VmHWM"))
        );
        last_rss = now;
        ok &= failed == 0;
    }
    // The server writes last-polls.tsv every 5 s (--status-interval).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (now, peak) = (rss("VmRSS"), rss("VmHWM"));
    let pass = mib(peak) < RSS_TARGET_MIB;
    println!(
        "polls: after the next flush of last-polls.tsv: fts serve VmRSS {:.1} MiB ({:+.1} MiB over the start), \
         VmHWM {:.1} MiB, with {hosts} hosts known; target < {RSS_TARGET_MIB} MiB {}",
        mib(now),
        mib(now) - mib(before),
        mib(peak),
        verdict(pass)
    );
    Ok(ok && pass)
}

/// One plaintext poll of `id`, up to date on `all` (so the answer is a lone `done`).
async fn plaintext_poll(
    server: SocketAddr,
    source: Ipv4Addr,
    id: &ClientId,
    since_all: u64,
) -> Result<(), String> {
    let tcp = connect_from(source, server).await.map_err(e("connect"))?;
    let mut conn = fts_net::Connection::client(tcp);
    let mut request = Request::new(id.clone());
    request.since.insert(Target::All, since_all);
    request.next_poll_within = Some(60);
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        conn.send_request(&request).await.map_err(e("send"))?;
        conn.read_server_frame().await.map_err(|err| format!("read: {err:?}"))
    })
    .await
    .map_err(|_| "timed out".to_owned())??;
    let _ = conn.shutdown().await;
    match answer {
        ServerFrame::Done(_) => Ok(()),
        other => Err(format!("not a lone done: {other:?}")),
    }
}
