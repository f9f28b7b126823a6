//! Operations from the outside: the Prometheus metrics of `fts serve` scraped over
//! HTTP after real polls, the node-exporter file of `fts poll`, JSON logs, shell
//! completions, and the systemd units. Real binaries, loopback only, bounded waits.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::raw_client::{RawClient, Received, client_config};
use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_code, expect_success, run, stderr, stdout};
use fts_proto::{ErrorCode, ServerFrame};

const WEB_01: (&str, &[&str]) = ("web-01", &["web"]);

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[WEB_01]);
    std::fs::create_dir_all(sandbox.join("store")).unwrap();
    sandbox
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// `GET path` over plain HTTP/1.1; the whole answer (status line, headers, body).
fn http_get(addr: SocketAddr, path: &str) -> String {
    crate::common::metrics::http_get(addr, path).expect("read the metrics answer")
}

/// The samples of a Prometheus text page: `name{labels}` -> value.
fn samples(page: &str) -> BTreeMap<String, f64> {
    let body = page.split_once("\r\n\r\n").map_or(page, |(_, body)| body);
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample line: {l:?}"));
            (name.to_owned(), value.parse::<f64>().unwrap_or_else(|_| panic!("not a number: {l:?}")))
        })
        .collect()
}

/// Scrapes until `ready` holds (the server counts a poll just after the client has
/// its answer), at most 10 s; returns the last page.
fn scrape_until(
    addr: SocketAddr,
    ready: impl Fn(&BTreeMap<String, f64>) -> bool,
) -> (String, BTreeMap<String, f64>) {
    let start = Instant::now();
    loop {
        let page = http_get(addr, "/metrics");
        let values = samples(&page);
        if ready(&values) || start.elapsed() > Duration::from_secs(10) {
            return (page, values);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn metrics_addr(server: &ServeProcess) -> SocketAddr {
    let line = server
        .wait_for_log(Duration::from_secs(10), |l| l["fields"]["message"] == "serving metrics at /metrics");
    line["fields"]["addr"].as_str().expect("the metrics address").parse().expect("a socket address")
}

fn poll_once(sandbox: &Sandbox, server: SocketAddr, extra: &[&str]) -> Output {
    let addr = server.to_string();
    let mut args = vec!["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"];
    args.extend_from_slice(extra);
    run(&mut sandbox.fts(&args))
}

#[test]
fn metrics_scraped_after_real_polls_count_polls_files_bytes_errors_and_handshake_failures() {
    let sandbox = sandbox();
    sandbox.publish("patch.bin", &[7u8; 3000], &["all"]);
    sandbox.publish("notice.txt", b"hello hosts", &["group:web"]);
    let server = ServeProcess::start(&sandbox, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = metrics_addr(&server);

    let page = http_get(metrics, "/metrics");
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("Content-Type: text/plain; version=0.0.4"), "{page}");
    let before = samples(&page);
    assert_eq!(before["fts_polls_total{result=\"ok\"}"], 0.0);
    assert_eq!(before["fts_crl_next_update_seconds"], 0.0, "revocation is off: no CRL");

    // Two real polls: the first gets both files, the second nothing.
    for _ in 0..2 {
        let out = poll_once(&sandbox, server.addr, &[]);
        assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    }
    // A malformed request, then a plain TCP connection that sends garbage.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client =
            RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-01")).await.unwrap();
        client.send(&[0, 5, b'{', b'"', b'a', b'"', b':']).await.unwrap();
        let received = client.receive_all().await.unwrap();
        assert!(
            matches!(&received[..], [Received::Frame(ServerFrame::Error(e))] if e.code == ErrorCode::BadJson),
            "{received:?}"
        );
    });
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(b"GET / HTTP/1.0\r\n\r\nthis is not TLS").unwrap();
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.read(&mut [0u8; 64]);
    drop(tcp);

    let (page, values) = scrape_until(metrics, |v| {
        v.get("fts_polls_total{result=\"ok\"}") >= Some(&2.0)
            && v.get("fts_polls_total{result=\"error\"}") >= Some(&1.0)
            && v.get("fts_handshake_failures_total{reason=\"error\"}") >= Some(&1.0)
            && v.get("fts_active_connections") == Some(&0.0)
    });
    let value = |name: &str| *values.get(name).unwrap_or_else(|| panic!("no {name} in\n{page}"));
    assert_eq!(value("fts_polls_total{result=\"ok\"}"), 2.0, "{page}");
    assert_eq!(value("fts_polls_total{result=\"error\"}"), 1.0, "{page}");
    assert_eq!(value("fts_files_sent_total"), 2.0, "both files, once");
    assert_eq!(value("fts_bytes_sent_total"), 3000.0 + 11.0, "the bodies' bytes");
    assert_eq!(value("fts_errors_total{code=\"bad-json\"}"), 1.0, "{page}");
    assert_eq!(value("fts_errors_total{code=\"busy\"}"), 0.0, "{page}");
    assert!(value("fts_handshake_failures_total{reason=\"error\"}") >= 1.0, "{page}");
    assert_eq!(value("fts_active_connections"), 0.0, "{page}");
    assert_eq!(value("fts_poll_duration_seconds_count"), 3.0, "{page}");
    assert_eq!(value("fts_poll_duration_seconds_bucket{le=\"+Inf\"}"), 3.0, "{page}");
    for needle in ["certs/", ".key", "PRIVATE", "signing"] {
        assert!(!page.contains(needle), "the metrics mention {needle:?}:\n{page}");
    }

    let other = http_get(metrics, "/");
    assert!(other.starts_with("HTTP/1.1 404 "), "{other}");
}

#[test]
fn the_crl_next_update_time_is_exported_when_revocation_is_on() {
    let sandbox = sandbox();
    expect_success(&mut sandbox.fts(["keygen", "crl", "--crl-days", "30"]));
    let server = ServeProcess::start(&sandbox, &["--metrics-listen", "127.0.0.1:0"]);
    let (page, values) = scrape_until(metrics_addr(&server), |_| true);
    let next = values.get("fts_crl_next_update_seconds").copied().unwrap_or_else(|| panic!("{page}"));
    let expected = now_unix() + 30 * 86_400;
    assert!((next as i64 - expected).abs() < 3600, "next update {next}, expected about {expected}");
}

/// The samples of a node-exporter textfile.
fn textfile(path: &Path) -> BTreeMap<String, f64> {
    samples(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

#[test]
fn the_poll_metrics_file_has_the_last_success_applied_seqs_and_counts_and_survives_a_failed_round() {
    let sandbox = sandbox();
    sandbox.publish("a.bin", b"first", &["all"]);
    sandbox.publish("b.bin", b"second", &["all"]);
    sandbox.publish("c.bin", b"for the group", &["group:web"]);
    let mut server = ServeProcess::start(&sandbox, &[]);
    std::fs::create_dir_all(sandbox.join("prom")).unwrap();
    let file = sandbox.join("prom/fts-poll.prom");

    let out = poll_once(&sandbox, server.addr, &["--metrics-file", "prom/fts-poll.prom"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("# TYPE fts_poll_applied_seq gauge\n"), "{text}");
    let values = textfile(&file);
    assert_eq!(values["fts_poll_applied_seq{target=\"all\"}"], 2.0, "{text}");
    assert_eq!(values["fts_poll_applied_seq{target=\"group:web\"}"], 1.0, "{text}");
    assert_eq!(values["fts_poll_applied_seq{target=\"web-01\"}"], 0.0, "{text}");
    assert_eq!(values["fts_poll_installed_files"], 3.0, "{text}");
    assert_eq!(values["fts_poll_last_round_installed_files"], 3.0, "{text}");
    assert_eq!(values["fts_poll_last_round_result{result=\"ok\"}"], 1.0, "{text}");
    assert_eq!(values["fts_poll_last_round_result{result=\"failed\"}"], 0.0, "{text}");
    assert_eq!(values["fts_poll_pending_problems"], 0.0, "{text}");
    let success = values["fts_poll_last_success_timestamp_seconds"];
    assert!((success as i64 - now_unix()).abs() < 120, "{text}");

    // The server goes away: the round fails, the last success stays on record.
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(20));
    let out = poll_once(&sandbox, server.addr, &["--metrics-file", "prom/fts-poll.prom"]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let values = textfile(&file);
    assert_eq!(values["fts_poll_last_round_result{result=\"failed\"}"], 1.0);
    assert_eq!(values["fts_poll_last_round_result{result=\"ok\"}"], 0.0);
    assert_eq!(values["fts_poll_last_success_timestamp_seconds"], success, "kept from the last success");
    assert_eq!(values["fts_poll_applied_seq{target=\"all\"}"], 2.0);

    let names: Vec<String> = std::fs::read_dir(sandbox.join("prom"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["fts-poll.prom"], "no temporary file left beside it");
}

/// `fts --log-format json serve` with its stderr to a file; stopped with SIGTERM
/// (and waited for) when dropped.
struct JsonServe {
    child: Child,
    log: std::path::PathBuf,
    addr: SocketAddr,
}

impl JsonServe {
    fn start(sandbox: &Sandbox, rust_log: &str) -> JsonServe {
        let log = sandbox.join(format!("serve-{rust_log}.log"));
        let stderr = std::fs::File::create(&log).unwrap();
        let mut serve = JsonServe {
            child: sandbox
                .fts(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
                .env("RUST_LOG", rust_log)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start fts serve"),
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&serve.log).unwrap_or_default();
            for line in text.lines() {
                if let Ok(value) = serde_json::from_str::<serde_json::Value>(line)
                    && value["fields"]["message"] == "listening"
                    && let Some(addr) = value["fields"]["addr"].as_str()
                {
                    serve.addr = addr.parse().unwrap();
                    return serve;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(20), "fts serve did not log `listening`:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits (at most 20 s) for the exit.
    fn stop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let start = Instant::now();
        while matches!(self.child.try_wait(), Ok(None)) {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.wait();
    }
}

impl Drop for JsonServe {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Every line is a JSON object with a level and a message; returns them.
fn json_lines(what: &str, text: &str) -> Vec<serde_json::Value> {
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {l}")))
        .collect();
    for line in &lines {
        assert!(line.is_object(), "{what}: not an object: {line}");
        assert!(line["level"].is_string(), "{what}: no level: {line}");
        assert!(line["fields"]["message"].is_string(), "{what}: no message: {line}");
    }
    lines
}

/// The base64 lines of every private key in `certs/`.
fn private_key_lines(sandbox: &Sandbox) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(sandbox.join("certs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "key") {
            let text = std::fs::read_to_string(&path).unwrap();
            lines
                .extend(text.lines().filter(|l| !l.starts_with("-----") && l.len() >= 16).map(str::to_owned));
        }
    }
    assert!(!lines.is_empty());
    lines
}

#[test]
fn json_logs_of_serve_and_poll_are_one_object_per_line_with_a_level_and_a_message_and_no_secret() {
    let sandbox = sandbox();
    sandbox.publish("a.bin", b"contents", &["all"]);
    let mut serve = JsonServe::start(&sandbox, "info");
    let addr_text = serve.addr.to_string();
    let log = serve.log.clone();
    let out = expect_success(
        sandbox
            .fts([
                "--log-format",
                "json",
                "poll",
                "--once",
                "--server",
                &addr_text,
                "--id",
                "web-01",
                "--dest",
                "in",
            ])
            .env("RUST_LOG", "info"),
    );
    let poll_lines = json_lines("poll", &stderr(&out));
    assert!(
        poll_lines.iter().any(|l| l["fields"]["message"] == "installed" && l["level"] == "INFO"),
        "{poll_lines:#?}"
    );
    // The server logs the poll line after the client has its answer.
    let start = Instant::now();
    let serve_text = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains("\"message\":\"poll\"") || start.elapsed() > Duration::from_secs(10) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    serve.stop();
    let serve_text = std::fs::read_to_string(&log).unwrap_or(serve_text);
    let serve_lines = json_lines("serve", &serve_text);
    let poll_line = serve_lines
        .iter()
        .find(|l| l["fields"]["message"] == "poll")
        .unwrap_or_else(|| panic!("no poll line: {serve_lines:#?}"));
    assert_eq!(poll_line["fields"]["client_id"], "web-01");
    assert_eq!(poll_line["fields"]["files"], 1);
    assert!(serve_lines.iter().any(|l| l["fields"]["message"] == "server stopped"), "{serve_text}");

    let everything = format!("{serve_text}{}", stderr(&out));
    for secret in private_key_lines(&sandbox) {
        assert!(!everything.contains(&secret), "a private key line is in the logs");
    }
    assert!(!everything.contains("PRIVATE KEY"), "{everything}");
}

#[test]
fn rust_log_filters_the_log_lines() {
    let sandbox = sandbox();
    sandbox.publish("a.bin", b"contents", &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr.to_string();
    let args =
        ["--log-format", "json", "poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"];

    let quiet = expect_success(sandbox.fts(args).env("RUST_LOG", "warn"));
    assert_eq!(stderr(&quiet), "", "nothing at warn or above happened");
    std::fs::remove_dir_all(sandbox.join("in")).unwrap();
    let chatty = expect_success(sandbox.fts(args).env("RUST_LOG", "warn,fts_net=info"));
    let lines = json_lines("poll", &stderr(&chatty));
    assert!(lines.iter().any(|l| l["fields"]["message"] == "installed"), "{lines:#?}");
}

#[test]
fn every_shell_completion_script_generates_and_knows_publish_and_server() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = expect_success(&mut sandbox.fts(["completions", shell]));
        let script = stdout(&out);
        assert!(script.contains("publish"), "{shell}: no publish:\n{script}");
        assert!(script.contains("server"), "{shell}: no --server:\n{script}");
        assert!(script.contains("metrics-listen"), "{shell}: no --metrics-listen");
    }
    let out = expect_code(&mut sandbox.fts(["completions", "tcsh"]), 2);
    assert!(stderr(&out).contains("bash"), "{}", stderr(&out));
}

#[test]
fn bash_completion_script_loads_in_bash() {
    let sandbox = Sandbox::new();
    let out = expect_success(&mut sandbox.fts(["completions", "bash"]));
    std::fs::write(sandbox.join("fts.bash"), out.stdout).unwrap();
    let Ok(check) = std::process::Command::new("bash")
        .args(["-c", "source ./fts.bash && complete -p fts"])
        .current_dir(sandbox.path())
        .output()
    else {
        eprintln!("skipped: no bash");
        return;
    };
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    assert!(String::from_utf8_lossy(&check.stdout).contains("fts"));
}

const UNITS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/systemd");

fn unit_files() -> Vec<std::path::PathBuf> {
    let mut units: Vec<_> = std::fs::read_dir(UNITS_DIR)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "service" || e == "timer"))
        .collect();
    units.sort();
    units
}

#[test]
fn every_service_unit_is_sandboxed_and_runs_as_a_dedicated_user() {
    let services: Vec<_> =
        unit_files().into_iter().filter(|p| p.extension().is_some_and(|e| e == "service")).collect();
    let names: Vec<_> =
        services.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in [
        "fts-serve.service",
        "fts-poll.service",
        "fts-poll-once.service",
        "fts-crl.service",
        "fts-timestamp.service",
        "fts-replicate.service",
        "fts-cosignatures.service",
    ] {
        assert!(names.iter().any(|n| n == expected), "no {expected} in {names:?}");
    }
    for path in &services {
        let text = std::fs::read_to_string(path).unwrap();
        for directive in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "PrivateTmp=yes",
            "ProtectHome=yes",
            "PrivateDevices=yes",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "MemoryDenyWriteExecute=yes",
            "RestrictNamespaces=yes",
            "ReadWritePaths=/var/lib/",
            "User=fts",
        ] {
            assert!(text.contains(directive), "{}: no {directive:?}", path.display());
        }
        assert!(!text.contains("User=root"), "{}", path.display());
    }
    let serve = std::fs::read_to_string(Path::new(UNITS_DIR).join("fts-serve.service")).unwrap();
    assert!(serve.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    let timer = std::fs::read_to_string(Path::new(UNITS_DIR).join("fts-poll.timer")).unwrap();
    assert!(timer.contains("Unit=fts-poll-once.service"), "the timer starts the --once service");
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    if std::process::Command::new("systemd-analyze").arg("--version").output().is_err() {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // The units name /usr/local/bin/fts; verify checks that the program exists, so a
    // copy names the binary under test instead.
    let dir = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for unit in unit_files() {
        let text = std::fs::read_to_string(&unit).unwrap();
        assert!(text.contains("/usr/local/bin/fts") || unit.extension().is_some_and(|e| e == "timer"));
        let copy = dir.path().join(unit.file_name().unwrap());
        let replicate = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fts-replicate");
        let text = text
            .replace("/usr/local/bin/fts-replicate", replicate)
            .replace("/usr/local/bin/fts", env!("CARGO_BIN_EXE_fts"));
        std::fs::write(&copy, text).unwrap();
        copies.push(copy);
    }
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&copies)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify failed:\n{text}");
    // Unknown or misspelt directives are only warnings: none is allowed either.
    for line in BufReader::new(text.as_bytes()).lines().map_while(Result::ok) {
        assert!(!line.contains("Unknown") && !line.contains("ignoring"), "{line}");
    }
}

#[test]
fn the_fleet_gauges_count_hosts_per_release_and_state() {
    let sandbox = sandbox();
    sandbox.publish("patch.bin", &[7u8; 3000], &["all"]);
    let server =
        ServeProcess::start(&sandbox, &["--metrics-listen", "127.0.0.1:0", "--fleet-metrics-interval", "1s"]);
    let metrics = metrics_addr(&server);
    let out = poll_once(&sandbox, server.addr, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", crate::common::stderr(&out));
    let installed = r#"fts_release_hosts{file="patch.bin",state="installed"}"#;
    let (page, values) = scrape_until(metrics, |v| v.get(installed) == Some(&1.0));
    assert_eq!(values.get(installed), Some(&1.0), "{page}");
    assert_eq!(values.get(r#"fts_hosts{state="current"}"#), Some(&1.0), "{page}");
    assert_eq!(values.get("fts_hosts_silent"), Some(&0.0), "{page}");
    assert!(values.contains_key(r#"fts_release_seconds_to_95{file="patch.bin"}"#), "{page}");
    assert!(values.get("fts_receipts_stored_total").is_some_and(|n| *n >= 1.0), "{page}");
}
