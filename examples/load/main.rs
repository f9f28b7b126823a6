//! The full load run (see `scripts/load.sh`, which provisions the credentials, starts
//! `fts serve` and runs this): N hosts polling one server concurrently through the
//! real client, M polls each, while idle TCP connections are held open; prints the
//! figures and exits non-zero when a poll failed, an idle connection was not closed by
//! the server, or (given `--server-pid`) the server's peak memory reached the bound.
//!
//!     load --server 127.0.0.1:PORT --certs DIR --work DIR --ids PREFIX --clients 200 \
//!          --polls 5 --idle 300 --idle-limit 60 [--server-pid PID] [--max-rss-mib 200]

mod driver;

use std::sync::Arc;
use std::time::Duration;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let number = |name: &str, default: u64| {
        flag(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} takes a number")))
    };
    let server = flag("--server").expect("--server ADDR").parse().expect("--server is IP:PORT");
    let prefix = flag("--ids").unwrap_or_else(|| "host-".into());
    let clients = number("--clients", 200);
    let config = driver::LoadConfig {
        server,
        certs: flag("--certs").expect("--certs DIR").into(),
        work: flag("--work").expect("--work DIR").into(),
        ids: (1..=clients).map(|n| format!("{prefix}{n}")).collect(),
        polls_per_client: number("--polls", 5) as usize,
        idle_connections: number("--idle", 300) as usize,
        idle_limit: Duration::from_secs(number("--idle-limit", 60)),
    };
    let server_pid = flag("--server-pid").map(|p| p.parse::<u32>().expect("--server-pid is a pid"));
    let max_rss = number("--max-rss-mib", 200) << 20;

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let report = runtime.block_on(driver::run(Arc::new(config)));
    println!("{}", report.summary());
    for failure in report.failures.iter().take(10) {
        println!("  failure: {failure}");
    }
    let mut ok = report.failures.is_empty() && report.idle_closed_by_server == report.idle_opened;
    if let Some(pid) = server_pid {
        match driver::peak_rss(pid) {
            Some(rss) => {
                println!(
                    "server peak RSS (VmHWM) {:.1} MiB (bound {} MiB)",
                    rss as f64 / 1048576.0,
                    max_rss >> 20
                );
                ok &= rss < max_rss;
            }
            None => {
                println!("cannot read the server's VmHWM");
                ok = false;
            }
        }
    }
    println!("verdict: {}", if ok { "PASS" } else { "FAIL" });
    if ok { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}
