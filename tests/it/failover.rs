//! Failover in the host (issue 21, part 3): `fts poll --server A --server B ...` moves
//! on to the next server when one is down, refuses it (its certificate, or a server
//! whose certificate fails verification), or is behind what the host verified; it
//! remembers the server that answered in its state file and starts there next time.
//! Every server here is a real `fts serve` on 127.0.0.1, every poll a bounded
//! `--once` run; the servers are killed when their handle drops.

use std::net::SocketAddr;

use serde_json::Value;

use crate::common::one_host::{ID, fts, publish, sandbox};
use crate::common::server::ServeProcess;
use crate::common::{Run, Sandbox};

/// `fts serve` of `store` with its own status folder (`status-NAME`).
fn serve(sandbox: &Sandbox, name: &str, store: &str, extra: &[&str]) -> ServeProcess {
    let status = format!("status-{name}");
    let mut args = vec!["--store", store, "--status-dir", &status, "--poll-after", "1s"];
    args.extend(extra);
    ServeProcess::start(sandbox, &args)
}

/// `fts poll --once` as web-01 into `in/` with each of `servers`, in order.
fn poll(sandbox: &Sandbox, servers: &[SocketAddr], extra: &[&str]) -> Run {
    let servers: Vec<String> = servers.iter().map(ToString::to_string).collect();
    let mut args =
        vec!["poll", "--once", "--id", ID, "--dest", "in", "--min-interval", "1s", "--read-timeout", "10s"];
    for server in &servers {
        args.extend(["--server", server]);
    }
    args.extend(extra);
    fts(sandbox, &args)
}

fn state(sandbox: &Sandbox) -> Value {
    let bytes = std::fs::read(sandbox.join("in/.fts-state.json")).expect("the state file");
    serde_json::from_slice(&bytes).expect("the state is JSON")
}

fn remembered(sandbox: &Sandbox) -> Option<String> {
    state(sandbox)["failover"]["last-server"].as_str().map(str::to_owned)
}

fn installed(sandbox: &Sandbox, name: &str) -> Option<Vec<u8>> {
    std::fs::read(sandbox.join("in").join(name)).ok()
}

/// An address on which nothing listens (bound, then released).
fn nothing_listens() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("an address")
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

#[test]
fn a_host_fails_over_when_its_first_server_is_killed_and_remembers_the_second() {
    let sandbox = sandbox();
    publish(&sandbox, "one.conf", b"1\n");
    let mut a = serve(&sandbox, "a", "store", &[]);
    let b = serve(&sandbox, "b", "store", &[]);
    let (a_addr, b_addr) = (a.addr, b.addr);

    let run = poll(&sandbox, &[a_addr, b_addr], &["--metrics-file", "poll.prom"]);
    run.expect(0, "both up: the first answers");
    assert_eq!(installed(&sandbox, "one.conf").as_deref(), Some(&b"1\n"[..]));
    assert_eq!(remembered(&sandbox), Some(a_addr.to_string()));
    assert!(!run.stderr.contains("failing over"), "{run:?}");

    let _ = a.child.kill();
    let _ = a.child.wait();
    publish(&sandbox, "two.conf", b"2\n");
    let run = poll(&sandbox, &[a_addr, b_addr], &["--metrics-file", "poll.prom"]);
    run.expect(0, "the second server answers");
    assert_eq!(installed(&sandbox, "two.conf").as_deref(), Some(&b"2\n"[..]));
    assert!(
        run.stderr.contains("failing over")
            && run.stderr.contains(&a_addr.to_string())
            && run.stderr.contains("unreachable")
            && run.stderr.contains(&format!("trying {b_addr}")),
        "the failover is said, with the server, why and the next: {run:?}"
    );
    assert_eq!(remembered(&sandbox), Some(b_addr.to_string()), "the server that answered is remembered");
    let metrics = std::fs::read_to_string(sandbox.join("poll.prom")).expect("the metrics file");
    assert!(metrics.contains(&format!("fts_poll_server_info{{server=\"{b_addr}\"}} 1")), "{metrics}");
    assert!(metrics.contains(&format!("fts_poll_server_info{{server=\"{a_addr}\"}} 0")), "{metrics}");

    // The next poll starts with the remembered server: the dead one is not dialled.
    publish(&sandbox, "three.conf", b"3\n");
    let run = poll(&sandbox, &[a_addr, b_addr], &[]);
    run.expect(0, "the remembered server answers first");
    assert_eq!(installed(&sandbox, "three.conf").as_deref(), Some(&b"3\n"[..]));
    assert!(!run.stderr.contains("failing over"), "the remembered server was tried first: {run:?}");

    // A remembered server that is no longer given is ignored.
    let run = poll(&sandbox, &[b_addr], &[]);
    run.expect(0, "a single server, as before");
}

#[test]
fn a_host_fails_over_from_a_server_it_cannot_verify_and_one_that_refuses_its_certificate() {
    let sandbox = sandbox();
    fts(&sandbox, &["keygen", "ca", "--dir", "other"]).expect(0, "another CA");
    fts(&sandbox, &["keygen", "server", "--dir", "other", "--name", "127.0.0.1"]).expect(0, "its server");
    publish(&sandbox, "one.conf", b"1\n");
    // A server whose certificate this host cannot verify (another CA).
    let unverified =
        serve(&sandbox, "unverified", "store", &["--cert", "other/server.crt", "--key", "other/server.key"]);
    // A server that does not know this host's CA: it refuses the host's certificate.
    let refusing = serve(&sandbox, "refusing", "store", &["--client-ca", "other/ca.crt"]);
    let good = serve(&sandbox, "good", "store", &[]);

    let run = poll(&sandbox, &[unverified.addr, refusing.addr, good.addr], &[]);
    run.expect(0, "the third server answers");
    assert_eq!(installed(&sandbox, "one.conf").as_deref(), Some(&b"1\n"[..]));
    assert!(run.stderr.contains("the TLS handshake failed"), "{run:?}");
    assert!(run.stderr.contains("it refused this host's certificate"), "{run:?}");
    assert_eq!(remembered(&sandbox), Some(good.addr.to_string()));
    // Only the good one answered: the certificate refusal is not recorded as this
    // host's (a --once run would otherwise stop dialling).
    assert!(state(&sandbox).get("certificate-refused").is_none(), "{:#}", state(&sandbox));
}

#[test]
fn a_host_fails_over_from_a_server_whose_log_is_behind_what_it_verified() {
    let sandbox = sandbox();
    publish(&sandbox, "one.conf", b"1\n");
    copy_dir(&sandbox.join("store"), &sandbox.join("lagging"));
    publish(&sandbox, "two.conf", b"2\n");
    let current = serve(&sandbox, "current", "store", &[]);
    poll(&sandbox, &[current.addr], &[]).expect(0, "the host learns the log of 2 from the current store");
    assert!(state(&sandbox).get("failover").is_none(), "a single server writes nothing new");

    publish(&sandbox, "three.conf", b"3\n");
    let lagging = serve(&sandbox, "lagging", "lagging", &[]);
    let run = poll(&sandbox, &[lagging.addr, current.addr], &[]);
    run.expect(0, "the lagging replica is skipped");
    assert!(run.stderr.contains("log-behind") && run.stderr.contains("failing over"), "{run:?}");
    assert_eq!(installed(&sandbox, "three.conf").as_deref(), Some(&b"3\n"[..]));
    assert_eq!(remembered(&sandbox), Some(current.addr.to_string()));
}

#[test]
fn when_no_server_answers_the_poll_fails_naming_each() {
    let sandbox = sandbox();
    let (a, b) = (nothing_listens(), nothing_listens());
    let run = poll(&sandbox, &[a, b], &[]);
    run.expect(1, "nothing answers");
    let reason = run.reason_lines().join("\n");
    assert!(
        reason.contains("no server answered")
            && reason.contains(&a.to_string())
            && reason.contains(&b.to_string()),
        "{run:?}"
    );
}

#[test]
fn random_order_polls_without_failing_while_both_servers_are_up() {
    let sandbox = sandbox();
    publish(&sandbox, "one.conf", b"1\n");
    let a = serve(&sandbox, "a", "store", &[]);
    let b = serve(&sandbox, "b", "store", &[]);
    for n in 0..4 {
        let run = poll(&sandbox, &[a.addr, b.addr], &["--server-order", "random"]);
        run.expect(0, &format!("poll {n}"));
        assert!(!run.stderr.contains("failing over"), "{run:?}");
    }
    let last = remembered(&sandbox).expect("a server is remembered");
    assert!([a.addr.to_string(), b.addr.to_string()].contains(&last), "{last}");
}

#[test]
fn bad_server_lists_are_refused_with_a_clear_message() {
    let sandbox = sandbox();
    let a = nothing_listens();
    let run = poll(&sandbox, &[a, a], &[]);
    run.expect(2, "the same server twice");
    assert!(run.stderr.contains(&format!("--server {a} is given twice")), "{run:?}");
    let run = poll(&sandbox, &[a], &["--server-order", "bogus"]);
    run.expect(2, "an unknown order");
    assert!(run.stderr.contains("bogus") && run.stderr.contains("in-order"), "{run:?}");
}

/// Waits up to 30 s for `done`, checking every 100 ms.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_host_moved_to_a_server_with_the_same_ticket_key_resumes_and_to_another_makes_a_full_handshake() {
    let sandbox = sandbox();
    fts(&sandbox, &["keygen", "ticket-key", "--dir", "certs"]).expect(0, "the shared ticket key");
    fts(&sandbox, &["keygen", "ticket-key", "--dir", "other"]).expect(0, "another ticket key");
    publish(&sandbox, "one.conf", b"1\n");
    let with_key = |name: &str, key: &str| {
        serve(&sandbox, name, "store", &["--ticket-key", key, "--metrics-listen", "127.0.0.1:0"])
    };
    let mut a = with_key("a", "certs/ticket.key");
    let mut b = with_key("b", "certs/ticket.key");
    let c = with_key("c", "other/ticket.key");
    let sessions = |server: &ServeProcess, handshake: &str| {
        server.metric(&format!("fts_tls_sessions_total{{handshake=\"{handshake}\"}}"))
    };

    // One `fts poll` process, polling every second: it keeps its sessions in memory.
    let servers = [a.addr, b.addr, c.addr].map(|addr| addr.to_string());
    let mut args = vec!["poll", "--id", ID, "--dest", "in", "--interval", "1s", "--min-interval", "1s"];
    args.extend(["--jitter", "0%", "--read-timeout", "10s"]);
    for server in &servers {
        args.extend(["--server", server]);
    }
    let mut host = sandbox.fts(&args);
    host.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let host = KillOnDrop(host.spawn().expect("start fts poll"));

    wait_until("a resumed session at the first server", || sessions(&a, "resumed") >= 1.0);
    assert_eq!(sessions(&a, "full"), 1.0, "one full handshake, then resumed sessions");
    let _ = a.child.kill();
    let _ = a.child.wait();

    wait_until("the host at the second server", || sessions(&b, "resumed") + sessions(&b, "full") >= 1.0);
    assert_eq!(sessions(&b, "full"), 0.0, "the second server resumed the first one's session");
    assert!(sessions(&b, "resumed") >= 1.0);
    let _ = b.child.kill();
    let _ = b.child.wait();

    wait_until("a poll answered by the third server", || c.metric("fts_polls_total{result=\"ok\"}") >= 1.0);
    assert!(sessions(&c, "full") >= 1.0, "another ticket key: a full handshake, and the poll goes on");
    drop(host);
    assert_eq!(installed(&sandbox, "one.conf").as_deref(), Some(&b"1\n"[..]));
}

/// A child process killed (and reaped) when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
