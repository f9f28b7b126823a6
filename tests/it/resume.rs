//! TLS session resumption across the polls of `fts poll`'s loop: the client keeps one
//! rustls config (and its session store) for the life of the process, so every poll
//! after the first resumes its session (half the handshake cost on the server, which
//! still re-checks the session's certificate against its CRLs). Real binaries, real
//! TLS on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::common::Sandbox;
use crate::common::server::ServeProcess;

#[test]
fn polls_after_the_first_resume_their_tls_session_in_loop_mode() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    std::fs::create_dir_all(sandbox.join("store")).unwrap();
    sandbox.publish("notice.txt", b"for every host", &["all"]);
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    let mut child = sandbox
        .poll_loop(server.addr, "web-01", &["--log-format", "json"])
        .env("RUST_LOG", "fts_net::client=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            if value["fields"]["message"] == "tls session established" {
                let _ = tx.send(value["fields"]["resumed"].as_bool());
            }
        }
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    while seen.len() < 3 && started.elapsed() < Duration::from_secs(30) {
        if let Ok(resumed) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(resumed);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, [Some(false), Some(true), Some(true)], "resumed, poll by poll");
}
