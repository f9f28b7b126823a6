//! A real `fts serve` process for a test: started on an ephemeral loopback port,
//! its JSON log lines collected, killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Sandbox;

pub struct ServeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl ServeProcess {
    /// Starts `fts serve` in the sandbox with `extra` flags and waits until it listens.
    pub fn start(sandbox: &Sandbox, extra: &[&str]) -> ServeProcess {
        let mut args = vec!["--log-format", "json", "serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Self::start_command(sandbox.fts(&args).env("RUST_LOG", "info"))
    }

    /// Starts `cmd`, a `fts --log-format json serve --listen 127.0.0.1:0 ...` however
    /// wrapped (a shell that lowers a limit first, say), and waits until it listens.
    pub fn start_command(cmd: &mut std::process::Command) -> ServeProcess {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("start fts serve");
        let stderr = child.stderr.take().expect("piped stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let collected = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    eprintln!("serve (not json): {line}");
                    continue;
                };
                if value["fields"]["message"] == "listening"
                    && let Some(addr) = value["fields"]["addr"].as_str()
                {
                    let _ = addr_tx.send(addr.parse::<SocketAddr>().expect("a socket address"));
                }
                collected.lock().unwrap().push(value);
            }
        });
        let addr = match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("fts serve did not start listening ({status:?}); logs: {:#?}", logs.lock().unwrap());
            }
        };
        ServeProcess { child, addr, logs }
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<serde_json::Value> {
        self.logs.lock().unwrap().clone()
    }

    /// Waits up to `limit` for a log line that satisfies `pred`.
    pub fn wait_for_log(
        &self,
        limit: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            if let Some(line) = self.logs().into_iter().find(|l| pred(l)) {
                return line;
            }
            if start.elapsed() > limit {
                panic!("no matching log line within {limit:?}; logs: {:#?}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address of `/metrics` of a server started with `--metrics-listen 127.0.0.1:0`.
    pub fn metrics_addr(&self) -> SocketAddr {
        let line = self.wait_for_log(Duration::from_secs(10), |l| {
            l["fields"]["message"] == "serving metrics at /metrics"
        });
        line["fields"]["addr"].as_str().expect("an address").parse().expect("an address")
    }

    /// The Prometheus text at `/metrics` ([`ServeProcess::metrics_addr`]).
    pub fn metrics(&self) -> String {
        super::metrics::scrape(self.metrics_addr()).expect("read the metrics")
    }

    /// The value of one series (`name{labels}`) at `/metrics`, 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        super::metrics::sample(&self.metrics(), series).unwrap_or(0.0)
    }

    /// Sends a signal to the server process.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for fts serve") {
                return status;
            }
            if start.elapsed() > limit {
                panic!("fts serve did not exit within {limit:?}; logs: {:#?}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
