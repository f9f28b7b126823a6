//! Revocation that cannot silently stop (issue 15, items 1, 2, 4 and 9), from the
//! outside: the real `fts` binary, certificates from `fts keygen`, real TLS on
//! 127.0.0.1, real files.
//!
//! - a CRL reload that failed is retried at every look until it loads, also when the
//!   fixed file looks unchanged (same device, inode, size and modification time), and
//!   the failure shows in the metrics, `server.json` and `fts status`;
//! - peers holding the server at its descriptor limit cannot make a reload fail;
//! - the open-file limit is raised and `--max-connections` fitted into it;
//! - `--crl-max-stale` fails closed;
//! - an older CRL is refused, also across a restart, unless `--accept-older-crl`;
//! - `ca.crl` is written 0644 whatever the umask, and the docs copy it readable to
//!   the path the unit reads;
//! - failed handshakes are summarized, and a refused certificate of the client CA is
//!   one warning a minute naming it; another CA's is unverified, at debug.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::raw_client::{RawClient, Received, client_config};
use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_success, stderr};
use fts_proto::{ErrorCode, ServerFrame};
use serde_json::{Value, json};

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[]), ("web-02", &[])]);
    std::fs::create_dir_all(sandbox.join("store")).unwrap();
    std::fs::create_dir_all(sandbox.join("srv")).unwrap();
    sandbox
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// The server's copy of the CRL (`--crl srv/ca.crl`), apart from the CA's.
fn served_crl(sandbox: &Sandbox) -> PathBuf {
    sandbox.join("srv/ca.crl")
}

/// Copies the CA's `ca.crl` to the server's path the way `install`/`rsync
/// --delay-updates` do: a temporary file renamed into place.
fn install_crl(sandbox: &Sandbox, bytes: &[u8]) {
    let tmp = sandbox.join("srv/.ca.crl.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, served_crl(sandbox)).unwrap();
}

fn ca_crl(sandbox: &Sandbox) -> Vec<u8> {
    std::fs::read(sandbox.join("certs/ca.crl")).unwrap()
}

/// Whether a poll as `id` is served, in a fresh TLS session (a full handshake).
fn served(server: &ServeProcess, sandbox: &Sandbox, id: &str) -> bool {
    poll_once(server, sandbox, id).is_some_and(|r| matches!(r[..], [Received::Frame(ServerFrame::Done(_))]))
}

/// One poll as `id` in a fresh TLS session: what came back, `None` when refused.
fn poll_once(server: &ServeProcess, sandbox: &Sandbox, id: &str) -> Option<Vec<Received>> {
    let config = client_config(&sandbox.join("certs"), id);
    runtime().block_on(async {
        let mut client = RawClient::connect(server.addr, config).await.ok()?;
        client.send_poll(id, json!({})).await.ok()?;
        match client.receive_all().await {
            Ok(received) if !matches!(received[..], [Received::Closed]) => Some(received),
            _ => None,
        }
    })
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or("")
}

/// The value of `series` on a metrics page, which must have it.
fn metric(text: &str, series: &str) -> u64 {
    crate::common::metrics::sample(text, series).unwrap_or_else(|| panic!("no {series} in\n{text}")) as u64
}

fn server_json(sandbox: &Sandbox) -> Value {
    serde_json::from_slice(&std::fs::read(sandbox.join("status/server.json")).unwrap()).unwrap()
}

/// (dev, ino, len, mtime): what the server's watcher compares.
fn version(path: &Path) -> (u64, u64, u64, std::time::SystemTime) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.dev(), meta.ino(), meta.len(), meta.modified().unwrap())
}

/// Overwrites `path` in place (same inode) with `bytes`.
fn write_in_place(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
    file.sync_all().unwrap();
}

/// `pem` with every base64 character replaced: the same length, no longer a CRL.
fn unparsable_same_length(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(pem.to_vec()).unwrap();
    text.lines()
        .map(|l| if l.starts_with("-----") { l.to_owned() } else { "*".repeat(l.len()) })
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
        .into_iter()
        .chain(text.ends_with('\n').then_some(b'\n'))
        .collect()
}

/// `fts ARGS` run through `sh` after `shell` (say `ulimit -n 128`), in the sandbox.
fn fts_after(sandbox: &Sandbox, shell: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!("{shell} && exec \"$0\" \"$@\"")).arg(env!("CARGO_BIN_EXE_fts"));
    cmd.args(args).current_dir(sandbox.path());
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FTS_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// `fts serve` (JSON logs, an ephemeral loopback port) after `shell`.
fn serve_after(sandbox: &Sandbox, shell: &str, extra: &[&str]) -> Command {
    let mut args = vec!["--log-format", "json", "serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut cmd = fts_after(sandbox, shell, &args);
    cmd.env("RUST_LOG", "info");
    cmd
}

/// Runs `cmd` for at most `limit`: its exit code (`None`: killed at the limit) and
/// stderr.
fn run_bounded(cmd: &mut Command, limit: Duration) -> (Option<i32>, String) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    });
    let start = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, reader.join().unwrap())
}

/// The (soft, hard) open-file limits of process `pid`.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    // "Max open files  SOFT  HARD  files", each a number or "unlimited".
    let limit = |word: &str| word.parse().unwrap_or(u64::MAX);
    let words: Vec<&str> = line.split_whitespace().collect();
    (limit(words[3]), limit(words[4]))
}

fn open_files_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_failed_crl_reload_is_retried_until_it_loads_even_when_the_fixed_file_looks_unchanged() {
    let sandbox = sandbox();
    expect_success(&mut sandbox.fts(["keygen", "crl"]));
    install_crl(&sandbox, &ca_crl(&sandbox));
    let server = ServeProcess::start(&sandbox, &["--crl", "srv/ca.crl", "--metrics-listen", "127.0.0.1:0"]);
    assert!(served(&server, &sandbox, "web-01"));

    // The CA revokes web-01; what reaches the server first cannot be loaded (here an
    // unparsable file of the right length; in the field, a 0600 copy the server's user
    // cannot read, or a read failing with EMFILE).
    expect_success(&mut sandbox.fts(["keygen", "revoke", "web-01"]));
    let good = ca_crl(&sandbox);
    let path = served_crl(&sandbox);
    write_in_place(&path, &unparsable_same_length(&good));
    let broken = version(&path);
    server.wait_for_log(Duration::from_secs(15), |l| {
        message(l).starts_with("cannot put the changed CRL in force") && l["level"] == "ERROR"
    });

    // Visible while it fails: metrics, server.json, fts status (text and JSON).
    let text = server.metrics();
    assert_eq!(metric(&text, "fts_crl_reload_failing"), 1);
    assert!(metric(&text, "fts_crl_reload_failures_total{reason=\"invalid\"}") >= 1);
    let failing = &server_json(&sandbox)["crl-reload-failing"];
    assert!(failing["error"].as_str().is_some_and(|e| e.contains("ca.crl")), "{failing}");
    let out = expect_success(&mut sandbox.fts(["status"]));
    assert!(stderr(&out).contains("cannot load its changed CRL"), "{}", stderr(&out));
    let out = expect_success(&mut sandbox.fts(["status", "--json"]));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(crl_warnings(&status), ["crl-reload-failing"], "{status}");
    assert_eq!(status["server"]["crl-number"], 1, "the CRL in force: {status}");

    // Fixed with none of (dev, ino, len, mtime) changed, as a chmod would fix a
    // permission error: only a retry can notice.
    write_in_place(&path, &good);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(broken.3).unwrap();
    assert_eq!(version(&path), broken, "the fixed file must look unchanged to the watcher");
    server
        .wait_for_log(Duration::from_secs(15), |l| message(l) == "reloaded" && l["fields"]["number"] == "2");
    assert!(!served(&server, &sandbox, "web-01"), "revoked");
    assert!(served(&server, &sandbox, "web-02"));

    assert_eq!(metric(&server.metrics(), "fts_crl_reload_failing"), 0);
    assert!(server_json(&sandbox).get("crl-reload-failing").is_none());
    let out = expect_success(&mut sandbox.fts(["status", "--json"]));
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(crl_warnings(&status).is_empty(), "{status}");
    assert!(!stderr(&out).contains("CRL"), "{}", stderr(&out));
}

#[test]
fn peers_holding_every_connection_cannot_make_a_crl_reload_fail_for_lack_of_descriptors() {
    let sandbox = sandbox();
    expect_success(&mut sandbox.fts(["keygen", "crl"]));
    install_crl(&sandbox, &ca_crl(&sandbox));
    // Soft and hard limit 128; the defaults (10,000 connections) cannot fit.
    let server = ServeProcess::start_command(&mut serve_after(
        &sandbox,
        "ulimit -n 128",
        &["--crl", "srv/ca.crl", "--handshake-timeout", "60s"],
    ));

    // Unauthenticated peers open more connections than the server has descriptors and
    // hold them, sending nothing (150: more than the limit, and few enough that the
    // rest fit in the listen queue, so that connecting never waits).
    let pid = server.child.id();
    let attackers: Vec<std::net::TcpStream> =
        (0..150).map(|_| std::net::TcpStream::connect(server.addr).unwrap()).collect();
    let (mut last, mut stable_since) = (open_files_of(pid), Instant::now());
    let start = Instant::now();
    while stable_since.elapsed() < Duration::from_millis(1500) && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
        let now = open_files_of(pid);
        if now != last {
            (last, stable_since) = (now, Instant::now());
        }
    }
    assert!(last >= 40, "the server holds the peers' connections: {last} descriptors");

    // Meanwhile the CA revokes web-01 and the new CRL lands: it must load now.
    expect_success(&mut sandbox.fts(["keygen", "revoke", "web-01"]));
    install_crl(&sandbox, &ca_crl(&sandbox));
    server
        .wait_for_log(Duration::from_secs(20), |l| message(l) == "reloaded" && l["fields"]["number"] == "2");
    assert!(
        !server.logs().iter().any(|l| message(l).starts_with("cannot put the changed CRL")),
        "no failure"
    );

    drop(attackers);
    assert!(!served(&server, &sandbox, "web-01"), "revoked");
    assert!(served(&server, &sandbox, "web-02"));
    // How: the defaults were lowered to leave descriptors free.
    let lowered =
        server.logs().into_iter().find(|l| message(l).starts_with("lowered the default --max-connections"));
    let lowered = lowered.expect("the default --max-connections was lowered to fit");
    assert!(lowered["fields"]["max_connections"].as_u64().is_some_and(|c| c < 128), "{lowered}");
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_and_an_explicit_max_connections_must_fit() {
    let sandbox = sandbox();
    // A hard limit of at most 4096 (lowering it needs no privilege), too low for the
    // defaults, and a soft limit of 256 below it.
    let hard = open_file_limits(std::process::id()).1.min(4096);
    let shell = format!("ulimit -S -n 256 && ulimit -H -n {hard}");
    let server = ServeProcess::start_command(&mut serve_after(&sandbox, &shell, &[]));
    assert_eq!(open_file_limits(server.child.id()), (hard, hard), "the soft limit is raised to the hard one");
    let lowered = server.wait_for_log(Duration::from_secs(5), |l| {
        message(l).starts_with("lowered the default --max-connections")
    });
    let fitted = lowered["fields"]["max_connections"].as_u64().unwrap()
        + 2 * lowered["fields"]["max_active_polls"].as_u64().unwrap();
    assert!(fitted <= hard - 64, "room is kept for CRL reloads: {lowered}");
    drop(server);

    let (code, err) = run_bounded(
        &mut serve_after(&sandbox, "ulimit -n 256", &["--max-connections", "10000"]),
        Duration::from_secs(20),
    );
    assert_eq!(code, Some(2), "a usage error: {err}");
    for needed in ["--max-connections 10000", "at most 256", "lower it to", "LimitNOFILE"] {
        assert!(err.contains(needed), "{needed:?} missing: {err}");
    }
}

#[test]
fn with_crl_max_stale_polls_are_refused_once_a_changed_crl_has_failed_to_load_for_too_long() {
    let sandbox = sandbox();
    expect_success(&mut sandbox.fts(["keygen", "crl"]));
    let good = ca_crl(&sandbox);
    install_crl(&sandbox, &good);
    let server = ServeProcess::start(&sandbox, &["--crl", "srv/ca.crl", "--crl-max-stale", "1s"]);
    assert!(served(&server, &sandbox, "web-01"));

    install_crl(&sandbox, &unparsable_same_length(&good));
    server.wait_for_log(Duration::from_secs(15), |l| {
        message(l).starts_with("cannot put the changed CRL in force")
    });
    std::thread::sleep(Duration::from_secs(2));
    let answer = poll_once(&server, &sandbox, "web-02").expect("an answer, not a closed connection");
    match &answer[..] {
        [Received::Frame(ServerFrame::Error(e))] => {
            assert_eq!(e.code, ErrorCode::Internal);
            assert!(e.message.contains("--crl-max-stale"), "{}", e.message);
        }
        other => panic!("expected an internal error frame, got {other:?}"),
    }
    server.wait_for_log(Duration::from_secs(5), |l| message(l).starts_with("refusing polls"));

    install_crl(&sandbox, &good);
    server.wait_for_log(Duration::from_secs(15), |l| message(l) == "reloaded");
    assert!(served(&server, &sandbox, "web-02"), "served again once the CRL loads");
}

#[test]
fn an_older_crl_is_refused_also_after_a_restart_unless_accepted_once_on_purpose() {
    let sandbox = sandbox();
    expect_success(&mut sandbox.fts(["keygen", "crl"]));
    let older = ca_crl(&sandbox); // number 1, revokes nothing
    expect_success(&mut sandbox.fts(["keygen", "revoke", "web-01"]));
    install_crl(&sandbox, &ca_crl(&sandbox)); // number 2
    let mut server =
        ServeProcess::start(&sandbox, &["--crl", "srv/ca.crl", "--metrics-listen", "127.0.0.1:0"]);
    assert!(!served(&server, &sandbox, "web-01"));

    // A stale copy arrives (an old sync source, a restored backup): validly signed by
    // the same CA, and it would un-revoke web-01.
    install_crl(&sandbox, &older);
    let refused = server.wait_for_log(Duration::from_secs(15), |l| {
        message(l).starts_with("cannot put the changed CRL in force")
            && l["fields"]["error"].as_str().is_some_and(|e| e.contains("lower than number 2"))
    });
    assert_eq!(refused["level"], "ERROR");
    assert!(metric(&server.metrics(), "fts_crl_reload_failures_total{reason=\"older\"}") >= 1);
    assert!(!served(&server, &sandbox, "web-01"), "still revoked");
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(20));

    // The highest number in force is kept beside server.json, written for the restart.
    let state: Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("status/server.state")).unwrap()).unwrap();
    assert_eq!(state["crl-numbers"][0]["crl-number"], 2, "{state}");
    let (code, err) =
        run_bounded(&mut serve_after(&sandbox, "true", &["--crl", "srv/ca.crl"]), Duration::from_secs(20));
    assert_eq!(code, Some(1), "refuses to start on the older CRL: {err}");
    assert!(err.contains("lower than number 2") && err.contains("--accept-older-crl"), "{err}");

    // A deliberate rollback: accepted once, and its number is the new floor.
    let server = ServeProcess::start(&sandbox, &["--crl", "srv/ca.crl", "--accept-older-crl"]);
    assert!(served(&server, &sandbox, "web-01"), "the rollback is in force");
    server.wait_for_log(Duration::from_secs(5), |l| message(l).starts_with("accepting an older CRL once"));
    let state: Value =
        serde_json::from_slice(&std::fs::read(sandbox.join("status/server.state")).unwrap()).unwrap();
    assert_eq!(state["crl-numbers"][0]["crl-number"], 1, "{state}");
    // The status of clients is untouched by it, and no client file is taken for it.
    let out = expect_success(&mut sandbox.fts(["status"]));
    assert!(!stderr(&out).contains("skipping"), "{}", stderr(&out));
}

#[test]
fn ca_crl_is_written_readable_by_everyone_whatever_the_umask() {
    let sandbox = sandbox();
    for args in [&["keygen", "crl"][..], &["keygen", "revoke", "web-01"]] {
        let (code, err) = run_bounded(&mut fts_after(&sandbox, "umask 077", args), Duration::from_secs(60));
        assert_eq!(code, Some(0), "{args:?}: {err}");
        let mode = std::fs::metadata(sandbox.join("certs/ca.crl")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{args:?} wrote ca.crl {mode:o}");
    }
}

/// Every line of `text` that copies `ca.crl` somewhere (rsync, install, cp, scp).
fn crl_copies(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| {
            l.contains("ca.crl")
                && ["rsync ", "install ", "cp ", "scp "].iter().any(|tool| l.contains(tool))
                && !l.contains("ca.crt")
        })
        .collect()
}

#[test]
fn the_documented_crl_copy_lands_where_the_unit_reads_it_and_stays_readable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let unit = std::fs::read_to_string(root.join("scripts/systemd/fts-serve.service")).unwrap();
    let flag = |name: &str| unit.split_whitespace().skip_while(|w| *w != name).nth(1).map(str::to_owned);
    // The CRL the unit reads: --crl, or ca.crl beside --client-ca.
    let crl = flag("--crl").unwrap_or_else(|| {
        let ca = flag("--client-ca").expect("the unit names --client-ca");
        format!("{}/ca.crl", Path::new(&ca).parent().unwrap().display())
    });
    let mut copies = 0;
    for doc in ["docs/PKI.md", "docs/OPERATIONS.md", "scripts/systemd/README.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for line in crl_copies(&text) {
            copies += 1;
            assert!(line.contains(&crl), "{doc}: a CRL copy that misses the unit's {crl}: {line}");
            assert!(
                line.contains("--chmod=F0644") || line.contains("-m 0644"),
                "{doc}: a CRL copy that may keep a mode the server cannot read: {line}"
            );
        }
    }
    assert!(copies >= 3, "the docs show how to copy the CRL");
}

#[test]
fn failed_handshakes_are_summarized_rather_than_logged_one_by_one() {
    let sandbox = sandbox();
    let server = ServeProcess::start(&sandbox, &["--metrics-listen", "127.0.0.1:0"]);
    // Each sends something that is not TLS (a connection closed before its first byte
    // never reaches the handshake: the admission checks drop it uncounted).
    for i in 0..25 {
        let mut tcp = std::net::TcpStream::connect(server.addr).unwrap();
        let junk: &[u8] = if i % 5 == 0 { b"GET / HTTP/1.0\r\n\r\n" } else { b"\x00\x01junk" };
        let _ = tcp.write_all(junk);
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(15)
        && metric(&server.metrics(), "fts_handshake_failures_total{reason=\"error\"}") < 25
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&server.metrics(), "fts_handshake_failures_total{reason=\"error\"}"), 25);
    let loud: Vec<Value> = server
        .logs()
        .into_iter()
        .filter(|l| l["level"] != "DEBUG" && l["fields"]["peer"].is_string())
        .collect();
    assert!(loud.is_empty(), "no line per connection at info or above: {loud:#?}");
    let summaries: Vec<Value> = server
        .logs()
        .into_iter()
        .filter(|l| message(l).starts_with("connections failed before a request") && l["level"] == "INFO")
        .collect();
    assert_eq!(summaries.len(), 1, "one summary now, the next in a minute: {summaries:#?}");
}

#[test]
fn a_refused_certificate_of_the_client_ca_is_one_warning_a_minute_naming_it_and_counted_as_refused() {
    let sandbox = sandbox();
    let serial = std::fs::read_to_string(sandbox.join("certs/issued.tsv"))
        .unwrap()
        .lines()
        .find(|l| l.contains("\tweb-01\t"))
        .and_then(|l| l.split('\t').next().map(str::to_owned))
        .expect("web-01 in the index");
    expect_success(&mut sandbox.fts(["keygen", "revoke", "web-01"]));
    let server = ServeProcess::start(&sandbox, &["--metrics-listen", "127.0.0.1:0"]);
    for _ in 0..4 {
        assert!(!served(&server, &sandbox, "web-01"));
    }
    let text = server.metrics();
    assert_eq!(metric(&text, "fts_handshake_failures_total{reason=\"refused\"}"), 4, "{text}");
    assert_eq!(metric(&text, "fts_handshake_failures_total{reason=\"error\"}"), 0, "{text}");
    let warnings: Vec<Value> = server
        .logs()
        .into_iter()
        .filter(|l| l["level"] == "WARN" && message(l).starts_with("refused"))
        .collect();
    let [warning] = &warnings[..] else { panic!("one warning for four refusals: {warnings:#?}") };
    assert_eq!(message(warning), "refused a client certificate issued by the client CA");
    assert_eq!(warning["fields"]["client_id"], "web-01");
    assert_eq!(warning["fields"]["reason"], "revoked");
    assert_eq!(warning["fields"]["serial"].as_str(), Some(serial.as_str()), "{warning}");
    assert!(warning["span"]["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{warning}");
}

/// A self-signed client certificate, with `common_name`: from no CA the server trusts.
fn foreign_client_config(sandbox: &Sandbox, common_name: &str) -> Arc<rustls::ClientConfig> {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, common_name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).unwrap();
    let roots = fts_trust::pem::load_certificates(&sandbox.join("certs/ca.crt")).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    fts_trust::client_config(roots, vec![cert.der().clone()], key).unwrap()
}

#[test]
fn a_certificate_from_another_ca_is_logged_at_debug_with_its_claimed_name_escaped_and_unverified() {
    let sandbox = sandbox();
    let mut cmd = sandbox.fts(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"]);
    let server = ServeProcess::start_command(cmd.env("RUST_LOG", "info,fts_trust=debug,fts_net=debug"));
    let config = foreign_client_config(&sandbox, "web-01\u{1b}[2K");
    runtime().block_on(async {
        if let Ok(mut client) = RawClient::connect(server.addr, config).await {
            let _ = client.send_poll("web-01", json!({})).await;
            assert!(matches!(client.receive().await, Ok(Received::Closed) | Err(_)));
        }
    });
    let line = server.wait_for_log(Duration::from_secs(10), |l| {
        message(l).starts_with("refused a client certificate not issued by the client CA")
    });
    assert_eq!(line["level"], "DEBUG");
    assert!(message(&line).contains("unverified"), "{line}");
    assert_eq!(line["fields"]["claimed_name"], "web-01\\u{1b}[2K", "escaped: {line}");
    assert!(line["fields"].get("client_id").is_none() && line["fields"].get("serial").is_none(), "{line}");
    let loud: Vec<Value> = server
        .logs()
        .into_iter()
        .filter(|l| {
            l["level"] != "DEBUG" && (message(l).contains("refused") || l.to_string().contains("web-01"))
        })
        .collect();
    assert!(loud.is_empty(), "nothing about it louder than debug: {loud:#?}");
    let raw = server.logs().iter().map(Value::to_string).collect::<String>();
    assert!(!raw.contains("\\u001b"), "no raw escape character in any log line");
}

/// The kinds of the CRL warnings in `fts status --json` (the log's are another test's).
fn crl_warnings(status: &Value) -> Vec<&str> {
    let warnings = status["warnings"].as_array().map(Vec::as_slice).unwrap_or_default();
    warnings.iter().filter_map(|w| w["kind"].as_str()).filter(|kind| kind.starts_with("crl-")).collect()
}
