//! The full load run (see `scripts/load.sh`, which provisions the credentials, starts
//! `fts serve` and runs this): N hosts polling one server concurrently through the
//! real client, M polls each, while idle TCP connections are held open; prints the
//! figures and exits non-zero when a poll failed, an idle connection was not closed by
//! the server, or (given `--server-pid`) the server's peak memory reached the bound.
//!
//!     load --server 127.0.0.1:PORT --certs DIR --work DIR --ids PREFIX --clients 200 \
//!          --polls 5 --idle 300 --idle-limit 60 [--server-pid PID] [--max-rss-mib 200]

mod driver;
#[allow(dead_code, reason = "shared with loadgen, which uses every method")]
mod flags;

use std::sync::Arc;
use std::time::Duration;

use flags::Flags;

const USAGE: &str = "usage: load --server IP:PORT --certs DIR --work DIR [--ids PREFIX] [--clients N] \
                     [--polls N] [--idle N] [--idle-limit SECS] [--server-pid PID] [--max-rss-mib N]";

/// What the command line asks for: the run, the server's pid and its memory bound.
fn parse_args() -> Result<(driver::LoadConfig, Option<u32>, u64), String> {
    let flags = Flags::from_env();
    let prefix = flags.value("--ids").unwrap_or_else(|| "host-".into());
    let clients: u64 = flags.parsed_or("--clients", 200)?;
    let config = driver::LoadConfig {
        server: flags.parsed("--server")?.ok_or("--server IP:PORT is required")?,
        certs: flags.required("--certs")?.into(),
        work: flags.required("--work")?.into(),
        ids: (1..=clients).map(|n| format!("{prefix}{n}")).collect(),
        polls_per_client: flags.parsed_or("--polls", 5)?,
        idle_connections: flags.parsed_or("--idle", 300)?,
        idle_limit: Duration::from_secs(flags.parsed_or("--idle-limit", 60)?),
    };
    let max_rss = flags.parsed_or::<u64>("--max-rss-mib", 200)? << 20;
    Ok((config, flags.parsed("--server-pid")?, max_rss))
}

fn main() -> std::process::ExitCode {
    let (config, server_pid, max_rss) = match parse_args() {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("load: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("load: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
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
