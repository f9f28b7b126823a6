//! How `fts poll` behaves when a server is hostile, refuses it or says little, and what
//! the operator then reads: the real `fts` binary against the real `fts serve`, the
//! scripted hostile server (real TLS on 127.0.0.1 with the sandbox's certificates) or a
//! plaintext listener that closes without a word.
//!
//! - a poll ends by its deadline (`--poll-timeout`) between files, and a file that
//!   trickles below the minimum receive rate is abandoned;
//! - text from the server reaches stderr with its control characters escaped;
//! - a revoked host is told so in one line, also after a resumed session, and backs off;
//! - a close without an answer is said as such (plaintext and TLS);
//! - TLS mismatches are said in words, with what to check;
//! - hooks get a minimal environment, die with their process group at the timeout, and
//!   run once per name with the hash of what is installed;
//! - `--log-format json` makes every line on stderr JSON;
//! - `--reset-state` never throws away a state file it merely cannot read.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::hostile_server::{Answer, End, HostileServer, done_frame};
use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_code, expect_success, run, stderr, stdout};
use fts_proto::Statement;
use fts_proto::{
    ClientId, ErrorCode, ErrorFrame, FileHash, FileHeader, FileName, Published, ServerFrame, Target,
};
use fts_trust::SigningKey;
use serde_json::Value;
use sha2::{Digest, Sha256};

const ID: &str = "web-01";

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[(ID, &["web"]), ("web-02", &[])]);
    std::fs::create_dir_all(sandbox.join("store")).unwrap();
    sandbox
}

/// `fts poll --once` as web-01 into `in/` against `addr`, with more flags.
fn poll_once(sandbox: &Sandbox, addr: impl ToString, extra: &[&str]) -> Command {
    let addr = addr.to_string();
    let mut args = vec!["poll", "--once", "--server", &addr, "--id", ID, "--dest", "in"];
    args.extend_from_slice(extra);
    let mut cmd = sandbox.fts(args);
    cmd.env("RUST_LOG", "info");
    cmd
}

#[derive(Debug)]
struct Run {
    /// None: killed at the limit (it did not end by itself).
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `cmd`, killing it (by its own pid) if it has not ended after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start fts");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    Run { code, stdout: out.join().unwrap(), stderr: err.join().unwrap(), elapsed }
}

/// A `file` frame for web-01, signed with the sandbox's real release key, then `body`.
fn signed_file(sandbox: &Sandbox, seq: u64, name: &str, body: &[u8]) -> Vec<u8> {
    let key = SigningKey::load(&sandbox.join("certs/signing.key")).unwrap();
    let statement = Statement {
        target: Target::Client(ClientId::parse(ID).unwrap()),
        seq: fts_proto::Seq::new(seq).unwrap(),
        file_name: FileName::parse(name).unwrap(),
        file_size: body.len() as u64,
        file_hash: FileHash::from_digest(Sha256::digest(body).into()),
        published: Published::from_unix_seconds(1_800_000_000 + seq),
    };
    let signature = key.sign(&statement);
    let mut bytes = ServerFrame::File(FileHeader::new(statement, key.key_id(), signature)).encode().unwrap();
    bytes.extend_from_slice(body);
    bytes
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The names in `dir`, dot-files included, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Every line on stderr, each parsed as JSON (panics on one that is not).
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{text}"))
        })
        .collect()
}

// ---------------------------------------------------------------------------------
// Item 7: the poll deadline
// ---------------------------------------------------------------------------------

#[test]
fn the_poll_deadline_ends_a_poll_between_files_when_the_server_sends_them_slowly() {
    let sandbox = sandbox();
    let server = HostileServer::start_in(&sandbox.join("certs"));
    let mut steps = vec![(Duration::ZERO, signed_file(&sandbox, 1, "part-1.txt", b"the first part\n"))];
    for seq in 2..=6 {
        let body = format!("part {seq}\n");
        steps.push((
            Duration::from_secs(3),
            signed_file(&sandbox, seq, &format!("part-{seq}.txt"), body.as_bytes()),
        ));
    }
    steps.push((Duration::from_secs(3), done_frame()));
    server.push_paced(steps, End::CloseNotify);

    // Through its environment variable, which an fts without the flag ignores.
    let mut cmd = poll_once(&sandbox, server.addr, &[]);
    cmd.env("FTS_POLL_TIMEOUT", "2s");
    let run = run_bounded(cmd, Duration::from_secs(60));
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("ran past --poll-timeout (2s) and was ended between two files"), "{run:#?}");
    assert!(run.stdout.is_empty(), "no summary of a poll that failed: {run:#?}");
    // All six frames would have taken 18 s: it ended at the deadline, long before.
    assert!(run.elapsed < Duration::from_secs(14), "{run:#?}");
    assert_eq!(std::fs::read(sandbox.join("in/part-1.txt")).unwrap(), b"the first part\n");
    assert!(!sandbox.join("in/part-2.txt").exists(), "no file starts after the deadline");
}

#[test]
fn the_poll_deadline_abandons_a_file_that_trickles_below_the_minimum_receive_rate() {
    let sandbox = sandbox();
    let server = HostileServer::start_in(&sandbox.join("certs"));
    let body = vec![b'x'; 4096];
    let frame = signed_file(&sandbox, 1, "slow.bin", &body);
    let header_len = frame.len() - body.len();
    // The header, then one body byte a second: under --read-timeout forever.
    let mut steps = vec![(Duration::ZERO, frame[..header_len].to_vec())];
    steps.extend(body.iter().map(|b| (Duration::from_secs(1), vec![*b])).take(400));
    server.push_paced(steps, End::Abrupt);

    // The deadline passes at 2 s; the transfer gets one 60 s window of grace to show
    // a rate of 16 KiB/s, then it is abandoned.
    // Through its environment variable, which an fts without the flag ignores.
    let mut cmd = poll_once(&sandbox, server.addr, &[]);
    cmd.env("FTS_POLL_TIMEOUT", "2s");
    let run = run_bounded(cmd, Duration::from_secs(150));
    assert_eq!(run.code, Some(1), "it ended by itself: {run:#?}");
    assert!(
        run.stderr.contains("ran past --poll-timeout (2s) while a file arrived slower than 16384 bytes/s"),
        "{run:#?}"
    );
    assert!(run.elapsed < Duration::from_secs(120), "{run:#?}");
    let left: Vec<String> = names_in(&sandbox.join("in"))
        .into_iter()
        .filter(|n| {
            ![".fts-lock", ".fts-state.json", ".fts-state.json.log", ".fts-partial"].contains(&n.as_str())
        })
        .chain(names_in(&sandbox.join("in/.fts-partial")))
        .collect();
    assert!(left.is_empty(), "nothing of the abandoned file is left: {left:?}");
}

// ---------------------------------------------------------------------------------
// Item 7: escape sequences from the server
// ---------------------------------------------------------------------------------

const HOSTILE_TEXT: &str =
    "\u{1b}[2K\r\u{1b}[1A\u{1b}[2Kfts poll: done, 0 file(s) installed\u{1b}]0;owned\u{7}";

fn assert_escaped(run: &Run) {
    for (name, byte) in [("ESC", 0x1b), ("CR", b'\r'), ("BEL", 0x07)] {
        assert!(!run.stderr.as_bytes().contains(&byte), "a raw {name} reached stderr: {run:#?}");
    }
    assert!(run.stderr.contains(r"\u{1b}[2K\u{d}\u{1b}[1A"), "the escapes are shown, escaped: {run:#?}");
}

#[test]
fn a_servers_error_message_with_escape_sequences_reaches_stderr_escaped() {
    let sandbox = sandbox();
    let server = HostileServer::start_in(&sandbox.join("certs"));
    let frame = ErrorFrame { code: ErrorCode::Internal, message: HOSTILE_TEXT.into(), retry_after: None };
    server.push(Answer::bytes(ServerFrame::Error(frame).encode().unwrap()));
    let run = run_bounded(poll_once(&sandbox, server.addr, &[]), Duration::from_secs(30));
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("the server refused the poll: internal: "), "{run:#?}");
    assert_escaped(&run);

    // An unknown code is the server's text too; and loop mode logs the same message.
    let frame = ErrorFrame {
        code: ErrorCode::parse(&format!("x{HOSTILE_TEXT}")),
        message: "m".into(),
        retry_after: None,
    };
    server.push(Answer::bytes(ServerFrame::Error(frame).encode().unwrap()));
    let mut cmd = sandbox.poll_loop(server.addr, ID, &[]);
    cmd.env("RUST_LOG", "info");
    let run = run_bounded(cmd, Duration::from_secs(4));
    assert!(run.stderr.contains("poll failed"), "{run:#?}");
    assert_escaped(&run);
}

// ---------------------------------------------------------------------------------
// Item 9: a revoked host, resumed or not
// ---------------------------------------------------------------------------------

/// A process of this test, killed (by its own handle) when the test ends, also when
/// an assertion fails first.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// JSON log lines of a running `fts poll`, collected as they come.
struct Lines(Arc<Mutex<Vec<Value>>>);

impl Lines {
    fn collect(child: &mut std::process::Child) -> Lines {
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                collected.lock().unwrap().push(value);
            }
        });
        Lines(lines)
    }

    fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }

    fn with_message(&self, message: &str) -> Vec<Value> {
        self.all().into_iter().filter(|l| l["fields"]["message"] == message).collect()
    }

    fn wait_for(&self, message: &str, limit: Duration) -> Value {
        let started = Instant::now();
        loop {
            if let Some(line) = self.with_message(message).into_iter().next() {
                return line;
            }
            assert!(started.elapsed() < limit, "no {message:?} line within {limit:?}: {:#?}", self.all());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_revoked_host_in_loop_mode_is_told_in_one_line_after_a_resumed_session_and_backs_off() {
    let sandbox = sandbox();
    expect_success(&mut sandbox.fts(["keygen", "crl"]));
    let server = ServeProcess::start(&sandbox, &["--poll-after", "1s"]);
    std::fs::create_dir_all(sandbox.join("prom")).unwrap();
    let mut child = Running(
        sandbox
            .poll_loop(
                server.addr,
                ID,
                &["--max-interval", "1h", "--log-format", "json", "--metrics-file", "prom/poll.prom"],
            )
            .env("RUST_LOG", "info,fts_net::client=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = Lines::collect(&mut child.0);
    // Two rounds complete: the second resumed the session of the first.
    let started = Instant::now();
    while lines.with_message("poll round complete").len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the host never polled twice: {:#?}",
            lines.all()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        lines.with_message("tls session established").iter().any(|l| l["fields"]["resumed"] == true),
        "{:#?}",
        lines.all()
    );

    expect_success(&mut sandbox.fts(["keygen", "revoke", ID]));
    server.wait_for_log(Duration::from_secs(10), |l| l["fields"]["message"] == "reloaded");
    let failed = lines.wait_for("poll failed", Duration::from_secs(30));
    let error = failed["fields"]["error"].as_str().unwrap_or_default().to_owned();

    assert!(
        error.starts_with(
            "the server refused this host's certificate (revoked, expired or from another CA): "
        ) && error.ends_with("says it is revoked"),
        "{error}"
    );
    for dump in ["close_notify", "https://", "CertificateRevoked", "{"] {
        assert!(!error.contains(dump), "{dump} in {error}");
    }
    // The resumed session was closed without a word; a full handshake got the alert.
    let retried = lines.all().iter().any(|l| {
        l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("trying once more at once with a full handshake"))
    });
    assert!(retried, "{:#?}", lines.all());

    // Backed off to --max-interval: one failure, not one a second.
    std::thread::sleep(Duration::from_secs(5));
    drop(child);
    assert_eq!(lines.with_message("poll failed").len(), 1, "{:#?}", lines.all());
    let wait = lines
        .with_message("next poll")
        .last()
        .and_then(|l| l["fields"]["wait"].as_str().map(str::to_owned))
        .unwrap_or_default();
    assert_eq!(wait, "3600s", "{:#?}", lines.all());
    let prom = std::fs::read_to_string(sandbox.join("prom/poll.prom")).unwrap();
    assert!(prom.contains("\nfts_poll_certificate_refusals_total 1\n"), "{prom}");
    assert!(prom.contains("\nfts_poll_last_round_certificate_refused 1\n"), "{prom}");
}

#[test]
fn a_revoked_host_polling_once_gets_one_line_and_backs_off_across_runs_until_max_interval() {
    let sandbox = sandbox();
    expect_success(&mut sandbox.fts(["keygen", "crl"]));
    let server = ServeProcess::start(&sandbox, &["--metrics-listen", "127.0.0.1:0"]);
    let refused_at_server = || server.metric("fts_handshake_failures_total{reason=\"refused\"}");
    let once = |max_interval: &str| {
        poll_once(
            &sandbox,
            server.addr,
            &["--metrics-file", "poll.prom", "--min-interval", "1s", "--max-interval", max_interval],
        )
    };
    expect_success(&mut once("1h"));
    expect_success(&mut sandbox.fts(["keygen", "revoke", ID]));
    server.wait_for_log(Duration::from_secs(10), |l| l["fields"]["message"] == "reloaded");

    let out = expect_code(&mut once("1h"), 1);
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with(
            "fts: error: the server refused this host's certificate (revoked, expired or from another CA)"
        ) && err.trim_end().ends_with("says it is revoked"),
        "{err}"
    );
    let prom = std::fs::read_to_string(sandbox.join("poll.prom")).unwrap();
    assert!(prom.contains("\nfts_poll_certificate_refusals_total 1\n"), "{prom}");
    let knocks = refused_at_server();
    assert!(knocks >= 1.0, "the server counted the refusal");

    // The timer starts the next run at once: it does not dial with the same certificate.
    let out = expect_code(&mut once("1h"), 1);
    let err = stderr(&out);
    assert!(err.contains("not dialling again with it before") && err.contains("--max-interval"), "{err}");
    assert_eq!(refused_at_server(), knocks, "the server heard nothing from the skipped run");
    let prom = std::fs::read_to_string(sandbox.join("poll.prom")).unwrap();
    assert!(
        prom.contains("\nfts_poll_certificate_refusals_total 1\n"),
        "a skipped run is no refusal: {prom}"
    );
    assert!(prom.contains("\nfts_poll_last_round_certificate_refused 1\n"), "but still refused: {prom}");

    // Once --max-interval has passed, it knocks again.
    std::thread::sleep(Duration::from_millis(2100));
    let out = expect_code(&mut once("2s"), 1);
    assert!(stderr(&out).trim_end().ends_with("says it is revoked"), "{}", stderr(&out));
    let prom = std::fs::read_to_string(sandbox.join("poll.prom")).unwrap();
    assert!(prom.contains("\nfts_poll_certificate_refusals_total 2\n"), "{prom}");

    // A new certificate for the same id is tried at once.
    expect_success(&mut sandbox.fts(["keygen", "client", "--id", ID, "--force"]));
    let out = run(&mut once("1h"));
    assert!(!stderr(&out).contains("not dialling again"), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------
// Item 11: a close without an answer
// ---------------------------------------------------------------------------------

#[test]
fn a_plaintext_server_that_closes_without_answering_is_not_called_a_certificate_refusal() {
    let sandbox = sandbox();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let closer = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Reads the request whole (so the close is a clean FIN), then says nothing.
        let mut prefix = [0u8; 2];
        tcp.read_exact(&mut prefix).unwrap();
        let mut header = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        tcp.read_exact(&mut header).unwrap();
    });
    let out = expect_code(&mut poll_once(&sandbox, addr, &["--plaintext"]), 1);
    closer.join().unwrap();
    let err = stderr(&out);
    assert!(err.contains("the server closed the connection without answering"), "{err}");
    assert!(!err.contains("certificate") && !err.contains("authentication"), "{err}");
}

#[test]
fn a_tls_server_that_closes_without_answering_after_a_full_handshake_says_so() {
    let sandbox = sandbox();
    let server = HostileServer::start_in(&sandbox.join("certs"));
    server.push(Answer::bytes(Vec::new()));
    let run = run_bounded(poll_once(&sandbox, server.addr, &[]), Duration::from_secs(30));
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("the server closed the connection without answering"), "{run:#?}");
    assert!(!run.stderr.contains("refused this host's certificate"), "no alert, no refusal: {run:#?}");
}

// ---------------------------------------------------------------------------------
// Item 12: TLS mismatches in words
// ---------------------------------------------------------------------------------

/// A second CA folder `dir` (another CA, but of the same name as the sandbox's).
fn other_ca(sandbox: &Sandbox, dir: &str) {
    expect_success(&mut sandbox.fts(["keygen", "ca", "--dir", dir]));
}

#[test]
fn a_server_certificate_for_another_name_says_which_name_and_how_to_fix_it() {
    let sandbox = sandbox();
    // The same CA, a server certificate that names only fts.example.net.
    std::fs::create_dir_all(sandbox.join("named")).unwrap();
    for file in ["ca.crt", "ca.key"] {
        std::fs::copy(sandbox.join("certs").join(file), sandbox.join("named").join(file)).unwrap();
    }
    expect_success(&mut sandbox.fts(["keygen", "server", "--dir", "named", "--name", "fts.example.net"]));
    let server = HostileServer::start(
        &sandbox.join("named/server.crt"),
        &sandbox.join("named/server.key"),
        &sandbox.join("certs/ca.crt"),
    );
    let out = expect_code(&mut poll_once(&sandbox, server.addr, &[]), 1);
    let err = stderr(&out);
    assert!(
        err.contains(
            "the server's certificate names fts.example.net, not 127.0.0.1: dial a name it carries, or reissue it \
             with `fts keygen server --name 127.0.0.1`"
        ),
        "{err}"
    );
    assert!(!err.contains("NotValidForNameContext") && !err.contains('{'), "{err}");
}

#[test]
fn a_server_certificate_from_another_ca_says_to_check_ca() {
    let sandbox = sandbox();
    other_ca(&sandbox, "other");
    expect_success(&mut sandbox.fts(["keygen", "server", "--dir", "other", "--name", "127.0.0.1"]));
    let server = HostileServer::start(
        &sandbox.join("other/server.crt"),
        &sandbox.join("other/server.key"),
        &sandbox.join("certs/ca.crt"),
    );
    let out = expect_code(&mut poll_once(&sandbox, server.addr, &[]), 1);
    let err = stderr(&out);
    assert!(
        err.contains("the CA this host trusts (--ca)") && err.contains("check that --ca is the ca.crt"),
        "{err}"
    );
    assert!(!err.contains("BadSignature") && !err.contains("UnknownIssuer"), "{err}");
}

#[test]
fn a_host_certificate_from_another_ca_is_a_refusal_in_words() {
    let sandbox = sandbox();
    other_ca(&sandbox, "other");
    expect_success(&mut sandbox.fts(["keygen", "client", "--dir", "other", "--id", ID]));
    let server = ServeProcess::start(&sandbox, &[]);
    let out = expect_code(
        &mut poll_once(&sandbox, server.addr, &["--cert", "other/web-01.crt", "--key", "other/web-01.key"]),
        1,
    );
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "fts: error: the server refused this host's certificate (revoked, expired or from another CA)"
        ) && err.contains("says it was not issued by the server's client CA"),
        "{err}"
    );
    assert!(!err.contains("DecryptError") && !err.contains("alert"), "{err}");
}

#[test]
fn a_key_that_is_not_the_certificates_names_both_files_for_poll_and_serve() {
    let sandbox = sandbox();
    let out = expect_code(
        &mut poll_once(&sandbox, "127.0.0.1:1", &["--cert", "certs/web-01.crt", "--key", "certs/web-02.key"]),
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains("cannot use --cert certs/web-01.crt with --key certs/web-02.key: the private key does not belong to the certificate"),
        "{err}"
    );
    assert!(!err.contains("KeyMismatch"), "{err}");

    let out = expect_code(
        &mut sandbox.fts([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--cert",
            "certs/server.crt",
            "--key",
            "certs/web-01.key",
        ]),
        1,
    );
    let err = stderr(&out);
    assert!(
        err.contains(
            "cannot use --cert certs/server.crt with --key certs/web-01.key: the private key does not belong"
        ),
        "{err}"
    );
    assert!(!err.contains("KeyMismatch"), "{err}");
}

// ---------------------------------------------------------------------------------
// Item 12: --log-format json on stderr
// ---------------------------------------------------------------------------------

#[test]
fn with_log_format_json_every_line_on_stderr_is_json() {
    let sandbox = sandbox();
    // A failed --once poll (nothing listens on the port).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = expect_code(
        &mut sandbox.fts([
            "--log-format",
            "json",
            "poll",
            "--once",
            "--server",
            &closed.to_string(),
            "--id",
            ID,
            "--dest",
            "in",
        ]),
        1,
    );
    let lines = json_lines(&stderr(&out));
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{lines:#?}");
    assert!(last["fields"]["message"].as_str().unwrap().starts_with("cannot connect to"), "{lines:#?}");

    // A --once poll that reported a problem: stdout keeps its plain summary.
    let server = ServeProcess::start(&sandbox, &[]);
    sandbox.publish("big.bin", &[7u8; 100], &[ID]);
    let addr = server.addr.to_string();
    let out = expect_code(
        &mut sandbox.fts([
            "--log-format",
            "json",
            "poll",
            "--once",
            "--server",
            &addr,
            "--id",
            ID,
            "--dest",
            "in",
            "--max-file-size",
            "10B",
        ]),
        3,
    );
    assert_eq!(
        stdout(&out),
        "fts poll: done, 0 file(s) installed, 1 problem(s) reported, held: web-01 at seq 1 (too-large)\n"
    );
    let lines = json_lines(&stderr(&out));
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("1 problem(s) reported: web-01 seq 1: too-large"))),
        "{lines:#?}"
    );

    // A fatal error printed by main, even with RUST_LOG filtering everything out.
    let out = expect_code(
        sandbox
            .fts([
                "--log-format",
                "json",
                "poll",
                "--once",
                "--server",
                &addr,
                "--id",
                ID,
                "--trust",
                "missing.pub",
            ])
            .env("RUST_LOG", "off"),
        1,
    );
    let lines = json_lines(&stderr(&out));
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["level"], "ERROR");
    assert!(lines[0]["fields"]["message"].as_str().unwrap().contains("missing.pub"), "{lines:#?}");

    // A usage error.
    let out = expect_code(&mut sandbox.fts(["--log-format", "json", "poll", "--no-such-flag"]), 2);
    let lines = json_lines(&stderr(&out));
    assert!(lines[0]["fields"]["message"].as_str().unwrap().contains("--no-such-flag"), "{lines:#?}");
}

// ---------------------------------------------------------------------------------
// Item 7: hooks
// ---------------------------------------------------------------------------------

#[test]
fn the_hooks_environment_holds_only_path_lang_and_the_fts_hook_variables() {
    let sandbox = sandbox();
    sandbox.publish("app.conf", b"setting = 1\n", &[ID]);
    let server = ServeProcess::start(&sandbox, &[]);
    // /proc/$$/environ is the environment the hook was started with, before the shell
    // adds PWD and the like.
    write_script(&sandbox.join("hook.sh"), "#!/bin/sh\ntr '\\000' '\\n' < /proc/$$/environ > hook.env\n");
    expect_success(
        poll_once(&sandbox, server.addr, &["--exec", "./hook.sh"])
            .env("FTS_READ_TIMEOUT", "61s")
            .env("FTS_EXEC_TIMEOUT", "1m")
            .env("SECRET_TOKEN", "do-not-leak")
            .env("http_proxy", "http://proxy.invalid:3128")
            .env("LANG", "C.UTF-8")
            .env("PATH", "/usr/bin:/bin"),
    );
    let env = std::fs::read_to_string(sandbox.join("hook.env")).unwrap();
    let mut names: Vec<&str> = env.lines().filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "FTS_HOOK_FILE",
            "FTS_HOOK_FILE_HASH",
            "FTS_HOOK_PUBLISHED",
            "FTS_HOOK_SEQ",
            "FTS_HOOK_STATUS_FILE",
            "FTS_HOOK_TARGET",
            "LANG",
            "PATH",
        ],
        "{env}"
    );
    assert!(env.contains("PATH=/usr/bin:/bin\n") && env.contains("LANG=C.UTF-8\n"), "{env}");
    assert!(env.contains(&format!("FTS_HOOK_FILE_HASH=sha256:{}\n", sha256_hex(b"setting = 1\n"))), "{env}");
}

/// Whether `pid` is a live process (a zombie is dead).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
    }
}

#[test]
fn a_hook_that_leaves_a_sleeping_grandchild_is_killed_with_its_group_at_the_timeout() {
    let sandbox = sandbox();
    sandbox.publish("app.conf", b"setting = 2\n", &[ID]);
    let server = ServeProcess::start(&sandbox, &[]);
    write_script(&sandbox.join("hook.sh"), "#!/bin/sh\nsleep 300 &\necho $! > grandchild.pid\nsleep 300\n");
    let run = run_bounded(
        poll_once(&sandbox, server.addr, &["--exec", "./hook.sh", "--exec-timeout", "2s"]),
        Duration::from_secs(60),
    );
    let grandchild: u32 =
        std::fs::read_to_string(sandbox.join("grandchild.pid")).unwrap().trim().parse().unwrap();
    // Give the kernel a moment to tear it down, then look.
    let started = Instant::now();
    while alive(grandchild) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survived = alive(grandchild);
    if survived {
        // Our own leftover, by its pid.
        let _ = Command::new("kill").args(["-KILL", &grandchild.to_string()]).status();
    }
    assert_eq!(run.code, Some(3), "the hook failed and is reported: {run:#?}");
    assert!(run.stderr.contains("was killed with its process group"), "{run:#?}");
    assert!(!survived, "the hook's grandchild outlived --exec-timeout");
}

#[test]
fn a_name_installed_twice_in_one_poll_runs_its_hook_once_with_the_installed_hash() {
    let sandbox = sandbox();
    sandbox.publish("app.conf", b"version 1\n", &[ID]);
    sandbox.publish("app.conf", b"version 2, the one that stays\n", &[ID]);
    let server = ServeProcess::start(&sandbox, &[]);
    write_script(
        &sandbox.join("hook.sh"),
        "#!/bin/sh\necho \"$FTS_HOOK_SEQ $FTS_HOOK_FILE_HASH $(sha256sum < \"$1\" | cut -d' ' -f1)\" >> hook.log\n",
    );
    expect_success(&mut poll_once(&sandbox, server.addr, &["--exec", "./hook.sh"]));
    let log = std::fs::read_to_string(sandbox.join("hook.log")).unwrap();
    let v2 = sha256_hex(b"version 2, the one that stays\n");
    assert_eq!(log, format!("2 sha256:{v2} {v2}\n"), "one run, for what is installed");
}

// ---------------------------------------------------------------------------------
// Item 10: --interval is a floor under the server's advice
// ---------------------------------------------------------------------------------

#[test]
fn poll_help_says_how_the_interval_and_the_servers_advice_combine_and_what_the_deadline_does() {
    let sandbox = Sandbox::new();
    let help = stdout(&expect_success(&mut sandbox.fts(["poll", "--help"])));
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("The host waits the later of this and the server's poll-after advice (the server can slow it down, never speed it up)"),
        "{help}"
    );
    assert!(flat.contains("--poll-timeout <DURATION>") && flat.contains("16 KiB/s or faster"), "{help}");
    assert!(flat.contains("[default: 6h]"), "{help}");
}

// ---------------------------------------------------------------------------------
// Item 12: --reset-state and a state file it cannot read
// ---------------------------------------------------------------------------------

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

/// `--reset-state` on a state file the poll cannot open for its permissions. As root,
/// the mode alone would not stop the read (root bypasses it): fts then runs as nobody
/// (uid 65534, with `setpriv`) in a destination it owns, and the state file stays
/// root's, mode 0600, which is how the operator trial met it.
#[test]
fn reset_state_refuses_a_state_file_that_is_intact_but_unreadable() {
    use std::os::unix::fs::chown;
    let sandbox = Sandbox::new();
    sandbox.provision(&[(ID, &[])]);
    let dest = sandbox.join("in");
    std::fs::create_dir(&dest).unwrap();
    let state_path = dest.join(".fts-state.json");
    let mut state = fts_net::client::state::State::empty();
    state.since.insert(Target::Client(ClientId::parse(ID).unwrap()), 5);
    state.save(&state_path).unwrap();
    std::fs::set_permissions(&state_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = std::fs::read(&state_path).unwrap();
    std::fs::copy(sandbox.join("certs/signing.pub"), sandbox.join("signing.pub")).unwrap();
    std::fs::set_permissions(sandbox.join("signing.pub"), std::fs::Permissions::from_mode(0o644)).unwrap();

    let fts = env!("CARGO_BIN_EXE_fts");
    let poll_args = [
        "poll",
        "--once",
        "--plaintext",
        "--server",
        "127.0.0.1:1",
        "--id",
        ID,
        "--trust",
        "signing.pub",
        "--dest",
        "in",
        "--reset-state",
    ];
    let mut cmd = if is_root() {
        std::fs::set_permissions(sandbox.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        chown(&dest, Some(65534), Some(65534)).unwrap();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--", fts]).args(poll_args);
        cmd
    } else {
        std::fs::set_permissions(&state_path, std::fs::Permissions::from_mode(0o000)).unwrap();
        let mut cmd = Command::new(fts);
        cmd.args(poll_args);
        cmd
    };
    cmd.current_dir(sandbox.path()).env("RUST_LOG", "info");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FTS_") {
            cmd.env_remove(key);
        }
    }
    let out = run(&mut cmd);
    if !is_root() {
        std::fs::set_permissions(&state_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--reset-state replaces only a state file whose content is damaged")
            && err.contains("check its owner and mode, and the user fts runs as")
            && err.contains("Permission denied"),
        "{err}"
    );
    assert!(!err.contains("starting from empty state"), "{err}");
    assert_eq!(std::fs::read(&state_path).unwrap(), before, "the state file is left as it was");
}
