//! Issue 21, part 5: a fleet on one machine (`scripts/fleet.sh` provisions, starts the
//! servers and runs this; docs/PERFORMANCE.md, "Issue 21", has the figures).
//!
//!     fleet --servers IP:PORT[,IP:PORT] --certs DIR [--hosts 50000] [--groups 8]
//!           [--interval 54] [--jitter 10] [--duration 300]
//!           [--server-pids PID[,PID]] [--metrics IP:PORT[,IP:PORT]]
//!           [--patch FILE --fts PATH] [--patch-timeout 300] [--db-url URL] [--ramp 200]
//!           [--spread pinned|rotate]
//!
//! `--hosts` hosts, each with its own client id (`host-00001` ...), group
//! (`web-(n % groups)`, an O value of its certificate), P-256 certificate made here by
//! rcgen under the CA in `--certs` (`ca.crt`, `ca.key` of `fts keygen ca`; keys stay in
//! memory), rustls session store, and source address: host n connects from 127.0.x.y
//! (the (n+1)-th address of 127.0.0.0/16), so the server's per-address limits see one
//! host per address, as in a fleet without NAT. Host n is pinned to server n % servers
//! (a balancer with source affinity), or with `--spread rotate` sends its k-th poll to
//! server (n + k) % servers (a balancer without affinity: the servers resume each
//! other's sessions only with a shared `--ticket-key`). Each host polls as `fts poll --interval I
//! --jitter J%` does: the first poll at a random moment within the first interval, then
//! every max(I, the server's poll-after) plus a random 0 to J % of it; a `busy` answer
//! is retried after its `retry-after`. An answer that delivered anything is followed by
//! a signed receipt on a connection of its own. The measured window is `--duration`
//! seconds that start one interval after the last first poll (the first polls, with
//! their full handshakes, first status files, first receipts and certificates stored,
//! are the warm-up, reported apart). Then the patch night: `fts publish FILE --to all` (run in
//! the current folder, its default store and key) and the time until 99 % of the hosts'
//! receipts for it are acknowledged, by the hosts' count and by the servers'
//! `fts_receipts_stored_total`. Then every host stops (at most a minute for the polls
//! in flight). Every address used is in 127.0.0.0/8. Exits 1 when a target is missed.

mod host;

#[path = "../load/flags.rs"]
#[allow(dead_code, reason = "shared with the other bench tools")]
mod flags;
#[path = "../load/fleet_kit.rs"]
#[allow(dead_code, reason = "shared with fleet_status, which uses every piece")]
mod fleet_kit;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flags::Flags;
use fleet_kit::{host_id, issue_client, mib, mix, percentile, proc_status_kib, raise_open_files_limit};
use fts_proto::{KeyId, Target};
use host::{Host, PollEnd};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "usage: fleet --servers IP:PORT[,IP:PORT] --certs DIR [--hosts N] [--groups N] \
                     [--interval SECS] [--jitter PERCENT] [--duration SECS] [--server-pids PID,..] \
                     [--metrics IP:PORT,..] [--patch FILE --fts PATH] [--patch-timeout SECS] [--db-url URL]";

/// The targets of issue 21 on this machine.
const TARGET_POLLS_PER_SEC: f64 = 850.0;
const TARGET_P99_SECS: f64 = 1.0;
const TARGET_RSS_MIB: f64 = 200.0;
/// The share of hosts whose patch receipt is awaited.
const PATCH_SHARE: f64 = 0.99;

struct Args {
    servers: Vec<SocketAddr>,
    certs: PathBuf,
    hosts: u64,
    groups: u64,
    interval: f64,
    jitter: f64,
    duration: f64,
    server_pids: Vec<u32>,
    metrics: Vec<SocketAddr>,
    patch: Option<PathBuf>,
    fts: PathBuf,
    patch_timeout: f64,
    db_url: Option<String>,
    /// New hosts per second at the start (their first polls: full handshakes, status
    /// files and certificates written for the first time).
    ramp: f64,
    spread: Spread,
}

/// How hosts are spread over the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spread {
    /// Host n always polls server n % servers (a balancer with source affinity).
    Pinned,
    /// Host n's k-th poll goes to server (n + k) % servers (a balancer without
    /// affinity): every poll after the first lands on another server, which resumes
    /// the session only if the servers share a `--ticket-key`.
    Rotate,
}

impl Args {
    /// The server of host n's k-th poll.
    fn server_for(&self, n: u64, k: u64) -> SocketAddr {
        let count = self.servers.len() as u64;
        let index = match self.spread {
            Spread::Pinned => n % count,
            Spread::Rotate => n.wrapping_add(k) % count,
        };
        self.servers[index as usize]
    }
}

fn list<T: std::str::FromStr>(flags: &Flags, name: &str) -> Result<Vec<T>, String> {
    let Some(value) = flags.value(name) else { return Ok(Vec::new()) };
    value
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format!("{name} cannot take {s:?}")))
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let flags = Flags::from_env();
    let servers: Vec<SocketAddr> = list(&flags, "--servers")?;
    let metrics: Vec<SocketAddr> = list(&flags, "--metrics")?;
    if servers.is_empty() {
        return Err("--servers is required".into());
    }
    if servers.iter().chain(&metrics).any(|a| !a.ip().is_loopback() || !a.is_ipv4()) {
        return Err("every address must be in 127.0.0.0/8".into());
    }
    let hosts = flags.parsed_or("--hosts", 50_000)?;
    if !(1..=65_533).contains(&hosts) {
        return Err("--hosts: 1 to 65,533 (one source address each in 127.0.0.0/16)".into());
    }
    Ok(Args {
        servers,
        certs: flags.required("--certs")?.into(),
        hosts,
        groups: flags.parsed_or::<u64>("--groups", 8)?.max(1),
        interval: flags.parsed_or("--interval", 54.0)?,
        jitter: flags.parsed_or::<f64>("--jitter", 10.0)? / 100.0,
        duration: flags.parsed_or("--duration", 300.0)?,
        server_pids: list(&flags, "--server-pids")?,
        metrics,
        patch: flags.value("--patch").map(PathBuf::from),
        fts: flags.value("--fts").unwrap_or_else(|| "fts".into()).into(),
        patch_timeout: flags.parsed_or("--patch-timeout", 300.0)?,
        db_url: flags.value("--db-url"),
        ramp: flags.parsed_or::<f64>("--ramp", 200.0)?.max(1.0),
        spread: match flags.value("--spread").as_deref() {
            None | Some("pinned") => Spread::Pinned,
            Some("rotate") => Spread::Rotate,
            Some(other) => return Err(format!("--spread: pinned or rotate, not {other:?}")),
        },
    })
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Host n's source: the (n+1)-th address of 127.0.0.0/16 (127.0.0.1 is the servers').
fn source_of(n: u64) -> Ipv4Addr {
    let k = n + 1;
    Ipv4Addr::new(127, 0, (k >> 8) as u8, (k & 0xff) as u8)
}

/// A uniform number in [0, 1) from host n's k-th draw.
fn uniform(n: u64, k: u64) -> f64 {
    (mix(n.wrapping_mul(0x1_0000_0001) ^ k) >> 11) as f64 / (1u64 << 53) as f64
}

/// User + system CPU of a process, in seconds.
fn cpu_secs(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `GET /metrics` of a server's `--metrics-listen`.
async fn scrape(addr: SocketAddr) -> Result<String, String> {
    let fetch = async {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tcp.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).await.map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&answer).into_owned();
        Ok::<_, String>(text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default())
    };
    tokio::time::timeout(Duration::from_secs(10), fetch).await.map_err(|_| "timed out".to_owned())?
}

/// The sum of every sample of metric `name` (any labels) in `text`; a `name` with
/// labels (`name{label="value"}`) is that one series.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            let bare = key.split('{').next()?;
            (key == name || bare == name).then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Metric sums over every server.
async fn metrics_sum(addrs: &[SocketAddr], names: &[&str]) -> Option<Vec<f64>> {
    let mut sums = vec![0.0; names.len()];
    for addr in addrs {
        let text = scrape(*addr).await.ok()?;
        for (sum, name) in sums.iter_mut().zip(names) {
            *sum += metric_sum(&text, name);
        }
    }
    Some(sums)
}

/// `pg_stat_database.xact_commit` summed over the databases (psql, no extension).
fn db_commits(url: &str) -> Option<f64> {
    let out = std::process::Command::new("psql")
        .args([url, "-Atc", "select sum(xact_commit) from pg_stat_database"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// How one poll went, by when it started.
#[derive(Clone, Copy)]
struct Record {
    started: f32,
    took: f32,
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ok,
    Busy,
    Failed,
}

#[derive(Default)]
struct Stats {
    polls: Vec<Record>,
    errors: Vec<String>,
    error_count: usize,
    receipts_ok: usize,
    receipts_failed: usize,
    receipt_errors: Vec<String>,
    /// Seconds from t0 at which each host's patch receipt was acknowledged.
    patch_acks: Vec<f64>,
}

/// The figures at one moment, for the deltas of a window.
struct Snapshot {
    at: Instant,
    server_cpu: Vec<f64>,
    server_rss: Vec<u64>,
    own_cpu: f64,
    metrics: Option<Vec<f64>>,
    db: Option<f64>,
}

const METRICS: [&str; 5] = [
    "fts_connections_refused_total",
    "fts_receipts_stored_total",
    "fts_errors_total",
    "fts_tls_sessions_total{handshake=\"full\"}",
    "fts_tls_sessions_total{handshake=\"resumed\"}",
];

async fn snapshot(args: &Args, ticks: f64) -> Snapshot {
    let db = match &args.db_url {
        Some(url) => {
            let url = url.clone();
            tokio::task::spawn_blocking(move || db_commits(&url)).await.ok().flatten()
        }
        None => None,
    };
    Snapshot {
        at: Instant::now(),
        server_cpu: args.server_pids.iter().map(|p| cpu_secs(&p.to_string(), ticks).unwrap_or(0.0)).collect(),
        server_rss: args
            .server_pids
            .iter()
            .map(|p| proc_status_kib(&p.to_string(), "VmRSS").unwrap_or(0))
            .collect(),
        own_cpu: cpu_secs("self", ticks).unwrap_or(0.0),
        metrics: metrics_sum(&args.metrics, &METRICS).await,
        db,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// One host's life: polls until `stop`, each recorded in `stats`.
#[allow(clippy::too_many_arguments)]
async fn live(
    n: u64,
    mut host: Host,
    args: Arc<Args>,
    keys: Arc<Vec<KeyId>>,
    t0: tokio::time::Instant,
    stats: Arc<Mutex<Stats>>,
    patch_name: Option<String>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut polls = 0u64;
    let mut next = t0 + Duration::from_secs_f64(uniform(n, 0) * ramp_secs(&args));
    let mut draw = 1;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let started = t0.elapsed().as_secs_f32();
        let server = args.server_for(n, polls);
        polls += 1;
        let end = host.poll(server, &keys, args.interval as u64).await;
        let wait = match end {
            PollEnd::Done { took, delivered, poll_after, .. } => {
                let record = Record { started, took: took.as_secs_f32(), kind: Kind::Ok };
                stats.lock().unwrap_or_else(|p| p.into_inner()).polls.push(record);
                if !delivered.is_empty() {
                    let patch = patch_name
                        .as_deref()
                        .is_some_and(|name| delivered.iter().any(|(_, _, f, _)| f.as_str() == name));
                    let sent = host.send_receipt(server, &delivered).await;
                    let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
                    match sent {
                        Ok(()) => {
                            stats.receipts_ok += 1;
                            if patch {
                                stats.patch_acks.push(t0.elapsed().as_secs_f64());
                            }
                        }
                        Err(e) => {
                            stats.receipts_failed += 1;
                            if stats.receipt_errors.len() < 10 {
                                stats.receipt_errors.push(format!("{}: {e}", host.id));
                            }
                        }
                    }
                }
                args.interval.max(poll_after as f64)
            }
            PollEnd::Busy { retry_after } => {
                let record = Record { started, took: 0.0, kind: Kind::Busy };
                stats.lock().unwrap_or_else(|p| p.into_inner()).polls.push(record);
                retry_after.max(1) as f64
            }
            PollEnd::Failed(e) => {
                let mut stats = stats.lock().unwrap_or_else(|p| p.into_inner());
                stats.polls.push(Record { started, took: 0.0, kind: Kind::Failed });
                stats.error_count += 1;
                if stats.errors.len() < 10 {
                    stats.errors.push(format!("{} at {started:.1} s: {e}", host.id));
                }
                args.interval
            }
        };
        let jitter = uniform(n, draw) * args.jitter * wait;
        draw += 1;
        next = tokio::time::Instant::now() + Duration::from_secs_f64(wait + jitter);
    }
}

/// How long the first polls are spread over: the interval, or longer when the hosts
/// would come faster than `--ramp` a second.
fn ramp_secs(args: &Args) -> f64 {
    args.interval.max(args.hosts as f64 / args.ramp)
}

/// The polls that started within [from, to) seconds of t0.
struct Window {
    ok: Vec<f64>,
    busy: usize,
    failed: usize,
}

fn window(stats: &Stats, from: f64, to: f64) -> Window {
    let mut w = Window { ok: Vec::new(), busy: 0, failed: 0 };
    for r in stats.polls.iter().filter(|r| (from..to).contains(&(r.started as f64))) {
        match r.kind {
            Kind::Ok => w.ok.push(r.took as f64),
            Kind::Busy => w.busy += 1,
            Kind::Failed => w.failed += 1,
        }
    }
    w.ok.sort_by(f64::total_cmp);
    w
}

fn print_window(name: &str, w: &Window, secs: f64) {
    println!(
        "{name}: polls ok {} ({:.0}/s over {secs:.0} s), busy {}, failed otherwise {}; latency p50 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms",
        w.ok.len(),
        w.ok.len() as f64 / secs,
        w.busy,
        w.failed,
        percentile(&w.ok, 50.0) * 1000.0,
        percentile(&w.ok, 99.0) * 1000.0,
        w.ok.last().copied().unwrap_or(0.0) * 1000.0
    );
}

async fn run(args: Args) -> Result<bool, String> {
    let args = Arc::new(args);
    let files = raise_open_files_limit();
    let ticks: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let ca =
        fts_trust::keygen::CertificateAuthority::load(&args.certs).map_err(|e| format!("the CA: {e}"))?;
    let roots =
        fts_trust::pem::load_certificates(&args.certs.join("ca.crt")).map_err(|e| format!("ca.crt: {e}"))?;
    let keys: Vec<KeyId> = fts_trust::TrustedKeys::load(&[args.certs.join("signing.pub")])
        .map_err(|e| format!("signing.pub: {e}"))?
        .key_ids()
        .collect();
    let keys = Arc::new(keys);

    let made = Instant::now();
    let cpu_before = cpu_secs("self", ticks).unwrap_or(0.0);
    let mut hosts = Vec::with_capacity(args.hosts as usize);
    for n in 1..=args.hosts {
        let id = host_id(n);
        let group = format!("web-{}", n % args.groups);
        let (cert, key) = issue_client(&ca, &id, &group)?;
        let target: Target = format!("group:{group}").parse().map_err(|e| format!("{group}: {e:?}"))?;
        hosts.push(Host::new(id, target, source_of(n), roots.clone(), cert, key)?);
    }
    println!(
        "fleet: {} hosts made (certificate, key, TLS config, session store each) in {:.1} s ({:.1} s CPU); \
         simulator VmRSS {:.0} MiB; open-file limit {files}; {} server(s); CLK_TCK {ticks}",
        args.hosts,
        made.elapsed().as_secs_f64(),
        cpu_secs("self", ticks).unwrap_or(0.0) - cpu_before,
        mib(proc_status_kib("self", "VmRSS").unwrap_or(0)),
        args.servers.len()
    );

    let offered_interval = args.interval * (1.0 + args.jitter / 2.0);
    // Every host has made its first poll and the two after it: the first delivers,
    // the second says the new since, log size and receipt count (a durable status
    // write each, before the answer), the third is the first that changes nothing.
    let warm = ramp_secs(&args) + 2.0 * args.interval * (1.0 + args.jitter) + 1.0;
    println!(
        "fleet: interval {:.0} s + 0 to {:.0} % jitter (mean {offered_interval:.1} s): offered {:.0} polls/s; \
         warm-up {warm:.0} s (first polls spread over {:.0} s, at most {:.0} new hosts/s, then two intervals), then the window of {:.0} s{}",
        args.interval,
        args.jitter * 100.0,
        args.hosts as f64 / offered_interval,
        ramp_secs(&args),
        args.ramp,
        args.duration,
        if args.patch.is_some() { ", then the patch night" } else { "" }
    );

    let patch_name =
        args.patch.as_ref().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let stats = Arc::new(Mutex::new(Stats::default()));
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let t0 = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, host) in hosts.into_iter().enumerate() {
        let n = i as u64 + 1;
        let fut = live(
            n,
            host,
            Arc::clone(&args),
            Arc::clone(&keys),
            t0,
            Arc::clone(&stats),
            patch_name.clone(),
            stop.clone(),
        );
        tasks.spawn(fut);
    }

    let mut ok = true;
    // Warm-up.
    let w0 = snapshot(&args, ticks).await;
    tokio::time::sleep_until(t0 + Duration::from_secs_f64(warm)).await;
    let s0 = snapshot(&args, ticks).await;
    {
        let stats = stats.lock().unwrap_or_else(|p| p.into_inner());
        print_window(
            "warm-up (first polls: full handshakes, first deliveries)",
            &window(&stats, 0.0, warm),
            warm,
        );
        println!(
            "warm-up: receipts acknowledged {}, failed {}; server CPU {:.1} s, simulator CPU {:.1} s",
            stats.receipts_ok,
            stats.receipts_failed,
            s0.server_cpu.iter().sum::<f64>() - w0.server_cpu.iter().sum::<f64>(),
            s0.own_cpu - w0.own_cpu
        );
    }

    // The measured window.
    tokio::time::sleep_until(t0 + Duration::from_secs_f64(warm + args.duration)).await;
    let s1 = snapshot(&args, ticks).await;
    let secs = s1.at.duration_since(s0.at).as_secs_f64();
    {
        let stats = stats.lock().unwrap_or_else(|p| p.into_inner());
        let w = window(&stats, warm, warm + args.duration);
        println!();
        print_window("steady window", &w, args.duration);
        let rate = w.ok.len() as f64 / args.duration;
        let p99 = percentile(&w.ok, 99.0);
        let failed = w.busy + w.failed;
        println!(
            "  polls/s sustained {rate:.0} (target >= {TARGET_POLLS_PER_SEC}) {}",
            verdict(rate >= TARGET_POLLS_PER_SEC)
        );
        println!(
            "  failed polls {failed} (busy {}, other {}) (target 0) {}",
            w.busy,
            w.failed,
            verdict(failed == 0)
        );
        println!("  p99 {:.1} ms (target < 1 s) {}", p99 * 1000.0, verdict(p99 < TARGET_P99_SECS));
        ok &= rate >= TARGET_POLLS_PER_SEC && failed == 0 && p99 < TARGET_P99_SECS;
        if let (Some(a), Some(b)) = (&s0.metrics, &s1.metrics) {
            let refused = b[0] - a[0];
            println!(
                "  connections refused by the per-address limits (fts_connections_refused_total, all reasons) {refused:.0} \
                 (expected 0) {}; error frames sent {:.0}; receipts stored {:.0}",
                verdict(refused == 0.0),
                b[2] - a[2],
                b[1] - a[1]
            );
            ok &= refused == 0.0;
            let (full, resumed) = (b[3] - a[3], b[4] - a[4]);
            println!(
                "  TLS sessions: {resumed:.0} resumed, {full:.0} full handshakes ({:.1} % resumed; {})",
                100.0 * resumed / (full + resumed).max(1.0),
                match args.spread {
                    Spread::Pinned => "each host pinned to one server",
                    Spread::Rotate => "each poll to the next server, as a balancer without affinity",
                }
            );
        }
        for (i, pid) in args.server_pids.iter().enumerate() {
            let cpu = s1.server_cpu[i] - s0.server_cpu[i];
            let rss_before = s0.server_rss[i];
            let rss = proc_status_kib(&pid.to_string(), "VmRSS").unwrap_or(0);
            let hwm = proc_status_kib(&pid.to_string(), "VmHWM").unwrap_or(0);
            println!(
                "  server {pid}: CPU {cpu:.1} s in {secs:.0} s ({:.1} % of one core, {:.0} polls per core-second); \
                 VmRSS {:.1} MiB at the window's start, {:.1} MiB at its end, VmHWM {:.1} MiB since the start \
                 (target < {TARGET_RSS_MIB} MiB) {}",
                100.0 * cpu / secs,
                w.ok.len() as f64 / args.server_pids.len() as f64 / cpu.max(1e-9),
                mib(rss_before),
                mib(rss),
                mib(hwm),
                verdict(mib(hwm) < TARGET_RSS_MIB)
            );
            ok &= mib(hwm) < TARGET_RSS_MIB;
        }
        let own = s1.own_cpu - s0.own_cpu;
        println!(
            "  simulator: CPU {own:.1} s ({:.1} % of one core), VmRSS {:.0} MiB; load average {}",
            100.0 * own / secs,
            mib(proc_status_kib("self", "VmRSS").unwrap_or(0)),
            load_average()
        );
        if let (Some(a), Some(b)) = (s0.db, s1.db) {
            println!(
                "  database: {:.0} transactions committed/s (pg_stat_database.xact_commit, all databases, \
                 psql's own included)",
                (b - a) / secs
            );
        }
        println!("  receipts acknowledged {}, failed {}", stats.receipts_ok, stats.receipts_failed);
    }

    // The patch night.
    if let Some(patch) = &args.patch {
        let stored_before = metrics_sum(&args.metrics, &METRICS).await.map(|m| m[1]);
        let started = Instant::now();
        let out = tokio::process::Command::new(&args.fts)
            .arg("publish")
            .arg(patch)
            .args(["--to", "all"])
            .output()
            .await
            .map_err(|e| format!("fts publish: {e}"))?;
        let published = t0.elapsed().as_secs_f64();
        println!(
            "\npatch night: fts publish {} --to all took {:.2} s ({})",
            patch.display(),
            started.elapsed().as_secs_f64(),
            if out.status.success() {
                "ok".into()
            } else {
                String::from_utf8_lossy(&out.stderr).into_owned()
            }
        );
        let want = (args.hosts as f64 * PATCH_SHARE).ceil() as usize;
        let deadline = Instant::now() + Duration::from_secs_f64(args.patch_timeout);
        let mut server_99: Option<f64> = None;
        let p0 = snapshot(&args, ticks).await;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let acked = stats.lock().unwrap_or_else(|p| p.into_inner()).patch_acks.len();
            if server_99.is_none()
                && let (Some(before), Some(now)) =
                    (stored_before, metrics_sum(&args.metrics, &METRICS).await.map(|m| m[1]))
                && now - before >= want as f64
            {
                server_99 = Some(t0.elapsed().as_secs_f64() - published);
            }
            if (acked >= want && (server_99.is_some() || args.metrics.is_empty()))
                || Instant::now() > deadline
            {
                break;
            }
        }
        let p1 = snapshot(&args, ticks).await;
        let stats = stats.lock().unwrap_or_else(|p| p.into_inner());
        let mut acks = stats.patch_acks.clone();
        acks.sort_by(f64::total_cmp);
        let host_99 = acks.get(want.saturating_sub(1)).map(|t| t - published);
        let pw = window(&stats, published as f32 as f64, t0.elapsed().as_secs_f64());
        print_window("patch night polls", &pw, p1.at.duration_since(p0.at).as_secs_f64());
        println!(
            "  patch receipts acknowledged {} of {} hosts; 99 % ({want}) acknowledged {} after the publish returned \
             (the hosts' count); the servers' fts_receipts_stored_total reached +{want} {}",
            acks.len(),
            args.hosts,
            host_99.map_or("never (timeout)".into(), |t| format!("{t:.1} s")),
            server_99.map_or("never (or no --metrics)".into(), |t| format!("{t:.1} s after it"))
        );
        ok &= host_99.is_some();
        let secs = p1.at.duration_since(p0.at).as_secs_f64();
        for (i, pid) in args.server_pids.iter().enumerate() {
            println!(
                "  server {pid}: CPU {:.1} s in {secs:.0} s; VmHWM {:.1} MiB",
                p1.server_cpu[i] - p0.server_cpu[i],
                mib(proc_status_kib(&pid.to_string(), "VmHWM").unwrap_or(0))
            );
        }
        println!(
            "  simulator CPU {:.1} s; load average {}; receipt failures so far {}",
            p1.own_cpu - p0.own_cpu,
            load_average(),
            stats.receipts_failed
        );
    }

    let _ = stop_tx.send(true);
    let ended =
        tokio::time::timeout(Duration::from_secs(70), async { while tasks.join_next().await.is_some() {} });
    if ended.await.is_err() {
        tasks.abort_all();
    }
    let stats = stats.lock().unwrap_or_else(|p| p.into_inner());
    println!("\nfleet: {} polls in all, {} failed", stats.polls.len(), stats.error_count);
    for e in stats.errors.iter().chain(&stats.receipt_errors) {
        println!("  failure: {e}");
    }
    Ok(ok)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("fleet: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("fleet: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fleet: {e}");
            ExitCode::from(2)
        }
    }
}
