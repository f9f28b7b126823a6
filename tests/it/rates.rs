//! Rate limits, end to end with the real binaries on loopback: the host's cap on its
//! receive rate (`fts poll --max-rate`) and the server's cap on its total egress with
//! the admission of transfers under it (`fts serve --max-send-rate`). Each timing
//! assertion bounds one side only, the side a slow machine cannot break: a capped
//! transfer takes *at least* so long, a capped server sends *at most* so much.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_code, expect_success, stderr};

const MIB: u64 = 1 << 20;

/// A file whose bytes are not all alike (so a wrong offset would show in the hash).
fn patterned(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect()
}

fn poll_once(sandbox: &Sandbox, server: &ServeProcess, id: &str, extra: &[&str]) -> Command {
    let addr = server.addr.to_string();
    let dest = format!("hosts/{id}");
    let mut args = vec!["poll", "--once", "--server", &addr, "--id", id, "--dest", &dest];
    args.extend_from_slice(extra);
    sandbox.fts(args)
}

#[test]
fn a_host_at_max_rate_8mib_s_takes_at_least_4_5_s_for_40_mib() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    let body = patterned(40 * MIB as usize);
    sandbox.publish("big.bin", &body, &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);

    let started = Instant::now();
    expect_success(&mut poll_once(&sandbox, &server, "web-01", &["--max-rate", "8MiB/s"]));
    let elapsed = started.elapsed();
    eprintln!("40 MiB at --max-rate 8MiB/s: {elapsed:.2?}, {:.2} MiB/s", 40.0 / elapsed.as_secs_f64());
    // 40 MiB at 8 MiB/s is 5 s; the burst (410 KiB) and the last read buy at most 0.1 s.
    assert!(elapsed >= Duration::from_millis(4_500), "took only {elapsed:?}");
    assert!(std::fs::read(sandbox.join("hosts/web-01/big.bin")).unwrap() == body, "installed whole");
}

#[test]
fn a_max_rate_below_64kib_s_is_refused_with_the_reason() {
    let sandbox = Sandbox::new();
    let from_flag = expect_code(
        &mut sandbox.fts([
            "poll",
            "--once",
            "--server",
            "127.0.0.1:9",
            "--id",
            "web-01",
            "--max-rate",
            "10KiB/s",
        ]),
        2,
    );
    let from_env = expect_code(
        sandbox
            .fts(["poll", "--once", "--server", "127.0.0.1:9", "--id", "web-01"])
            .env("FTS_MAX_RATE", "10KiB/s"),
        2,
    );
    for out in [from_flag, from_env] {
        let text = stderr(&out);
        assert!(text.contains("--max-rate"), "{text}");
        assert!(text.contains("10KiB/s is below the lowest --max-rate, 64KiB/s"), "{text}");
        assert!(text.contains("slow reader") && text.contains("--min-send-rate"), "says why: {text}");
    }
    let zero = expect_code(
        &mut sandbox.fts(["poll", "--once", "--server", "127.0.0.1:9", "--id", "web-01", "--max-rate", "0"]),
        2,
    );
    assert!(stderr(&zero).contains("more than 0B/s"), "{}", stderr(&zero));

    let below =
        expect_code(&mut sandbox.fts(["serve", "--max-send-rate", "8KiB/s", "--min-send-rate", "16KiB"]), 2);
    let text = stderr(&below);
    assert!(text.contains("--max-send-rate 8KiB/s is below --min-send-rate 16KiB/s"), "{text}");
}

/// Figures of the test below: 1 MiB/s in all, 128 KiB/s each, so 8 transfers fit.
const HOSTS: usize = 20;
const MAX_SEND_RATE: u64 = MIB;
const MIN_SEND_RATE: u64 = 128 * 1024;
const FITS: usize = (MAX_SEND_RATE / MIN_SEND_RATE) as usize;
/// 5 MiB at 128 KiB/s takes 40 s: every admitted transfer outlasts the 30 s window.
const BIG: usize = 5 << 20;
const WINDOW: Duration = Duration::from_secs(30);

#[test]
fn max_send_rate_holds_within_10_percent_over_30_s_with_20_hosts_and_refuses_beyond_the_fit() {
    let sandbox = Sandbox::new();
    let ids: Vec<String> = (1..=HOSTS).map(|n| format!("host-{n:02}")).collect();
    let clients: Vec<(&str, &[&str])> = ids.iter().map(|id| (id.as_str(), &[][..])).collect();
    sandbox.provision(&clients);
    let body = patterned(BIG);
    sandbox.publish("patch.bin", &body, &["all"]);
    let server = ServeProcess::start(
        &sandbox,
        &[
            "--max-send-rate",
            "1MiB/s",
            "--min-send-rate",
            "128KiB",
            "--metrics-listen",
            "127.0.0.1:0",
            "--poll-after",
            "5s",
        ],
    );
    let metrics = server.metrics_addr();
    assert_eq!(server.metric("fts_max_send_rate_bytes_per_second"), MAX_SEND_RATE as f64);

    let hosts: Vec<Child> = ids
        .iter()
        .map(|id| {
            poll_once(&sandbox, &server, id, &[])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start fts poll")
        })
        .collect();

    // The window opens once the fit is full.
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.metric("fts_send_rate_transfers") < FITS as f64 {
        assert!(Instant::now() < deadline, "{FITS} transfers never got going: {:#?}", server.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let before_scrape = Instant::now();
    let sent_at_start = bytes_sent(metrics);
    std::thread::sleep(WINDOW);
    let sent_at_end = bytes_sent(metrics);
    let window = before_scrape.elapsed();
    let sent = sent_at_end - sent_at_start;
    let rate = sent / window.as_secs_f64();
    eprintln!(
        "--max-send-rate 1MiB/s, {FITS} transfers: {sent:.0} bytes in {window:.2?} = {:.3} MiB/s ({:.1} % of the cap)",
        rate / MIB as f64,
        100.0 * rate / MAX_SEND_RATE as f64
    );
    // The span between the two scrapes is at most `window`: the bound is never too tight.
    assert!(
        sent <= 1.10 * MAX_SEND_RATE as f64 * window.as_secs_f64(),
        "sent {sent} bytes in {window:?}, over 110 % of the cap"
    );
    assert!(sent > 0.0, "the admitted transfers went on");
    assert_eq!(server.metric("fts_send_rate_transfers"), FITS as f64, "all still going");

    let outputs: Vec<(String, Output)> = ids
        .iter()
        .cloned()
        .zip(hosts.into_iter().map(|h| h.wait_with_output().expect("wait for fts poll")))
        .collect();
    let (installed, refused): (Vec<_>, Vec<_>) = outputs.iter().partition(|(_, out)| out.status.success());
    assert_eq!(installed.len(), FITS, "{outputs:#?}");
    for (id, _) in &installed {
        assert!(std::fs::read(sandbox.join(format!("hosts/{id}/patch.bin"))).unwrap() == body, "{id}");
    }
    for (id, out) in &refused {
        let text = stderr(out);
        assert_eq!(out.status.code(), Some(1), "{id}: {text}");
        assert!(
            text.contains(
                "the server refused the poll: busy: the server is at its limit of transfers for its \
                           --max-send-rate (retry after "
            ),
            "{id}: {text}"
        );
        assert!(!sandbox.join(format!("hosts/{id}/patch.bin")).exists());
    }
    assert_eq!(server.metric("fts_send_rate_busy_total"), (HOSTS - FITS) as f64);
    assert_eq!(server.metric("fts_errors_total{code=\"busy\"}"), (HOSTS - FITS) as f64);
    // busy, with a retry-after of poll-after (5 s) plus up to as much again; and
    // nothing but `ok` and `busy`: no host was cut off as a slow reader.
    let _ = server.wait_for_log(Duration::from_secs(20), |_| poll_results(&server).len() == HOSTS);
    let results = poll_results(&server);
    assert_eq!(results.iter().filter(|r| *r == "ok").count(), FITS, "{results:?}");
    assert_eq!(results.iter().filter(|r| *r == "busy").count(), HOSTS - FITS, "{results:?}");
    for (id, out) in &refused {
        let text = stderr(out);
        let secs: u64 = text
            .split("(retry after ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{id}: no retry-after in {text}"));
        assert!((5..=10).contains(&secs), "{id}: retry after {secs} s");
    }

    // Busy is for now only: with the transfers ended, a refused host gets the file.
    let (late, _) = refused[0];
    expect_success(&mut poll_once(&sandbox, &server, late, &[]));
    assert!(std::fs::read(sandbox.join(format!("hosts/{late}/patch.bin"))).unwrap() == body);
}

/// The `result` of every poll the server logged.
fn poll_results(server: &ServeProcess) -> Vec<String> {
    server
        .logs()
        .iter()
        .filter(|l| l["fields"]["message"] == "poll")
        .map(|l| l["fields"]["result"].as_str().unwrap_or("?").to_owned())
        .collect()
}

/// `fts_bytes_sent_total` now.
fn bytes_sent(metrics: std::net::SocketAddr) -> f64 {
    let page = crate::common::metrics::scrape(metrics).expect("scrape /metrics");
    crate::common::metrics::sample(&page, "fts_bytes_sent_total").expect("fts_bytes_sent_total")
}
