//! `fts serve` from the outside: the real binary, real certificates from `fts keygen`,
//! real TLS on 127.0.0.1, and a raw protocol client that can also misbehave.

use std::time::Duration;

use crate::common::raw_client::{RawClient, Received, client_config};
use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_code, stderr};
use fts_proto::{Done, ErrorCode, ServerFrame};
use fts_trust::TrustedKeys;
use serde_json::json;
use sha2::{Digest, Sha256};

const WEB_01: (&str, &[&str]) = ("web-01", &["web"]);
const WEB_02: (&str, &[&str]) = ("web-02", &[]);

fn sandbox_with_clients() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[WEB_01, WEB_02]);
    std::fs::create_dir_all(sandbox.join("store")).unwrap();
    sandbox
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// The code of an `error` frame, or a panic saying what came instead.
fn error_code(received: &[Received]) -> (ErrorCode, Option<u64>) {
    match received {
        [Received::Frame(ServerFrame::Error(e))] => (e.code.clone(), e.retry_after),
        other => panic!("expected one error frame, got {other:?}"),
    }
}

#[test]
fn published_files_arrive_signed_whole_and_in_publish_order() {
    let sandbox = sandbox_with_clients();
    sandbox.publish("own.bin", b"for web-01 only", &["web-01"]);
    sandbox.publish("every.bin", b"for everyone", &["all"]);
    sandbox.publish("other.bin", b"for web-02", &["web-02"]);
    sandbox.publish("group.bin", b"for the web group", &["group:web"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let trusted = TrustedKeys::load(&[sandbox.join("certs/signing.pub")]).unwrap();

    runtime().block_on(async {
        let config = client_config(&sandbox.join("certs"), "web-01");
        let mut client = RawClient::connect(server.addr, config.clone()).await.unwrap();
        client.send_poll("web-01", json!({})).await.unwrap();
        let received = client.receive_all().await.unwrap();

        let mut names = Vec::new();
        for item in &received[..received.len() - 1] {
            let Received::File(header, body) = item else { panic!("expected files: {received:?}") };
            let verified = trusted.verify(header.statement(), &header.key_id, &header.signature).unwrap();
            assert_eq!(body.len() as u64, verified.file_size);
            let hash = format!("sha256:{}", hex::encode(Sha256::digest(body)));
            assert_eq!(hash, verified.file_hash.to_string(), "the body is the signed content");
            names.push((verified.target.to_string(), verified.seq.get(), verified.file_name.to_string()));
        }
        assert_eq!(
            names,
            [
                ("web-01".to_owned(), 1, "own.bin".to_owned()),
                ("all".to_owned(), 1, "every.bin".to_owned()),
                ("group:web".to_owned(), 1, "group.bin".to_owned()),
            ],
            "own, all and group entries, in publish order, nothing for web-02"
        );
        assert!(
            matches!(
                received.last(),
                Some(Received::Frame(ServerFrame::Done(Done { more: false, poll_after: 60, .. })))
            ),
            "{received:?}"
        );

        // Caught up: the next poll is a `done` frame alone.
        let mut client = RawClient::connect(server.addr, config).await.unwrap();
        client.send_poll("web-01", json!({"web-01": 1, "all": 1, "group:web": 1})).await.unwrap();
        let received = client.receive_all().await.unwrap();
        assert!(matches!(received[..], [Received::Frame(ServerFrame::Done(_))]), "{received:?}");
    });
}

#[test]
fn entries_published_while_the_server_runs_are_served_at_the_next_poll() {
    let sandbox = sandbox_with_clients();
    let server = ServeProcess::start(&sandbox, &[]);
    let config = client_config(&sandbox.join("certs"), "web-02");
    let rt = runtime();
    let poll = |since: serde_json::Value| {
        rt.block_on(async {
            let mut client = RawClient::connect(server.addr, config.clone()).await.unwrap();
            client.send_poll("web-02", since).await.unwrap();
            client.receive_all().await.unwrap()
        })
    };
    assert_eq!(poll(json!({})).len(), 1, "nothing published yet");
    sandbox.publish("late.bin", b"published later", &["all"]);
    let received = poll(json!({}));
    assert!(
        matches!(&received[0], Received::File(h, _) if h.file_name.as_str() == "late.bin"),
        "{received:?}"
    );
}

#[test]
fn the_poll_budget_always_lets_one_entry_through_and_says_more() {
    let sandbox = sandbox_with_clients();
    for i in 0..3 {
        sandbox.publish(&format!("f{i}.bin"), &vec![b'x'; 1000], &["all"]);
    }
    let server = ServeProcess::start(&sandbox, &["--poll-max-bytes", "10", "--poll-max-files", "2"]);
    runtime().block_on(async {
        let mut client =
            RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-01")).await.unwrap();
        client.send_poll("web-01", json!({})).await.unwrap();
        let received = client.receive_all().await.unwrap();
        assert_eq!(received.len(), 2, "one file larger than the byte budget, then done: {received:?}");
        assert!(matches!(received[1], Received::Frame(ServerFrame::Done(Done { more: true, .. }))));
    });
}

/// Each malformed request gets the error code PROTOCOL.md section 2 classifies it as.
#[test]
fn malformed_requests_get_their_specific_error_codes() {
    let sandbox = sandbox_with_clients();
    let server = ServeProcess::start(&sandbox, &[]);
    let config = client_config(&sandbox.join("certs"), "web-01");
    let valid = |extra: serde_json::Value| {
        let mut request = json!({"request-type": "poll", "protocol": 1, "client-id": "web-01"});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        request
    };
    let frame = |json: &[u8]| {
        let mut bytes = (json.len() as u16).to_be_bytes().to_vec();
        bytes.extend_from_slice(json);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        ("a header length below 2", vec![0, 1, b'{'], ErrorCode::BadFrame),
        ("a header longer than 16 KiB", 20_000u16.to_be_bytes().to_vec(), ErrorCode::HeaderTooLarge),
        (
            "duplicate keys",
            frame(br#"{"request-type":"poll","protocol":1,"client-id":"web-01","protocol":1}"#),
            ErrorCode::BadJson,
        ),
        ("not an object", frame(b"[1,2,3]"), ErrorCode::BadJson),
        ("not json", frame(b"hello world"), ErrorCode::BadJson),
        ("a byte-order mark", frame("\u{feff}{}".as_bytes()), ErrorCode::BadJson),
        ("no client id", frame(br#"{"request-type":"poll","protocol":1}"#), ErrorCode::BadRequest),
        (
            "a bad target in since",
            frame(valid(json!({"since": {"../x": 1}})).to_string().as_bytes()),
            ErrorCode::BadRequest,
        ),
        (
            "a fractional seq",
            frame(valid(json!({"since": {"all": 1.5}})).to_string().as_bytes()),
            ErrorCode::BadRequest,
        ),
        (
            "another request type",
            frame(valid(json!({"request-type": "fetch"})).to_string().as_bytes()),
            ErrorCode::UnknownRequest,
        ),
        (
            "another protocol",
            frame(valid(json!({"protocol": 2})).to_string().as_bytes()),
            ErrorCode::UnsupportedProtocol,
        ),
    ];
    runtime().block_on(async {
        for (what, bytes, expected) in cases {
            let mut client = RawClient::connect(server.addr, config.clone()).await.unwrap();
            client.send(&bytes).await.unwrap();
            let received = client.receive_all().await.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(error_code(&received).0, expected, "{what}");
        }

        // A connection that ends inside a frame.
        let mut client = RawClient::connect(server.addr, config.clone()).await.unwrap();
        client.send(&[0, 50, b'{']).await.unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut client.stream).await.unwrap();
        let received = client.receive_all().await.unwrap();
        assert_eq!(error_code(&received).0, ErrorCode::BadFrame, "a truncated frame");
    });
    // The server lives on and still serves.
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l["fields"]["result"].as_str().is_some_and(|r| r.starts_with("bad-json")))
    );
}

#[test]
fn a_client_without_alpn_is_closed_without_a_frame() {
    let sandbox = sandbox_with_clients();
    sandbox.publish("file.bin", b"data", &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    runtime().block_on(async {
        let mut config = (*client_config(&sandbox.join("certs"), "web-01")).clone();
        config.alpn_protocols.clear();
        let mut client = RawClient::connect(server.addr, std::sync::Arc::new(config)).await.unwrap();
        let _ = client.send_poll("web-01", json!({})).await;
        let received = client.receive().await;
        assert!(
            matches!(received, Ok(Received::Closed) | Err(_)),
            "no frame may reach a client refused after the handshake: {received:?}"
        );
    });
    // Refused after the handshake: at debug, counted in the summary of failed
    // connections (the first one is summarized at once).
    server.wait_for_log(Duration::from_secs(5), |l| {
        l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("connections failed before a request"))
            && l["fields"]["refused"] == 1
    });
}

#[test]
fn a_client_revoked_while_the_server_runs_is_refused_within_seconds_even_resuming() {
    let sandbox = sandbox_with_clients();
    let certs = sandbox.join("certs");
    crate::common::expect_success(&mut sandbox.fts(["keygen", "crl"]));
    let server = ServeProcess::start(&sandbox, &[]);
    server.wait_for_log(Duration::from_secs(5), |l| l["fields"]["message"] == "revocation is ON");
    let web01 = client_config(&certs, "web-01");
    let web02 = client_config(&certs, "web-02");

    runtime().block_on(async {
        let mut client = RawClient::connect(server.addr, web01.clone()).await.unwrap();
        client.send_poll("web-01", json!({})).await.unwrap();
        assert!(matches!(client.receive_all().await.unwrap()[..], [Received::Frame(ServerFrame::Done(_))]));

        crate::common::expect_success(&mut sandbox.fts(["keygen", "revoke", "web-01"]));
        server.wait_for_log(Duration::from_secs(10), |l| l["fields"]["message"] == "reloaded");

        // The session ticket from the first poll is offered again: the handshake is a
        // resumption, and the server must still refuse it.
        let mut resumed = 0;
        for _ in 0..3 {
            // An attempt may also be refused during a full handshake (Err).
            if let Ok(mut client) = RawClient::connect(server.addr, web01.clone()).await {
                resumed += usize::from(client.resumed());
                let _ = client.send_poll("web-01", json!({})).await;
                let received = client.receive().await;
                assert!(
                    matches!(received, Ok(Received::Closed) | Err(_)),
                    "revoked but served: {received:?}"
                );
            }
        }
        assert!(resumed > 0, "at least one attempt resumed its session");

        // Others are unaffected.
        let mut client = RawClient::connect(server.addr, web02).await.unwrap();
        client.send_poll("web-02", json!({})).await.unwrap();
        assert!(matches!(client.receive_all().await.unwrap()[..], [Received::Frame(ServerFrame::Done(_))]));
    });
    assert!(
        server
            .logs()
            .iter()
            .any(|l| l["fields"]["reason"] == "revoked" && l["fields"]["client_id"] == "web-01")
    );
}

/// A 32 MiB file: far more than the loopback socket buffers hold, so a client that
/// does not read keeps its poll running.
fn publish_large(sandbox: &Sandbox, target: &str) {
    let data: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    sandbox.publish("large.bin", &data, &[target]);
}

#[test]
fn fifty_idle_connections_do_not_stop_a_real_poll() {
    let sandbox = sandbox_with_clients();
    sandbox.publish("file.bin", b"data", &["all"]);
    let server = ServeProcess::start(&sandbox, &["--handshake-timeout", "30s"]);
    runtime().block_on(async {
        let mut idle = Vec::new();
        for _ in 0..50 {
            idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
        }
        // And some that finished the handshake but never send a request.
        for _ in 0..5 {
            idle.push_tls(
                RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-02"))
                    .await
                    .unwrap(),
            );
        }
        let started = std::time::Instant::now();
        let mut client =
            RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-01")).await.unwrap();
        client.send_poll("web-01", json!({})).await.unwrap();
        let received = client.receive_all().await.unwrap();
        assert_eq!(received.len(), 2, "{received:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "the poll was not held up by idle connections");
    });
}

/// Lets a test hold TLS clients beside raw TCP streams.
trait HoldTls {
    fn push_tls(&mut self, client: RawClient);
}

impl HoldTls for Vec<tokio::net::TcpStream> {
    fn push_tls(&mut self, client: RawClient) {
        let (tcp, _) = client.stream.into_inner();
        self.push(tcp);
    }
}

#[test]
fn sigterm_lets_a_transfer_in_flight_finish_and_refuses_new_connections() {
    let sandbox = sandbox_with_clients();
    publish_large(&sandbox, "all");
    let mut server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr;
    let web01 = client_config(&sandbox.join("certs"), "web-01");
    runtime().block_on(async {
        let mut client = RawClient::connect(addr, web01.clone()).await.unwrap();
        client.send_poll("web-01", json!({})).await.unwrap();
        let ServerFrame::File(header) = client.receive_header().await.unwrap() else {
            panic!("expected a file")
        };

        server.signal("TERM");
        server.wait_for_log(Duration::from_secs(5), |l| {
            l["fields"]["message"] == "shutdown requested: no new connections"
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "no new connections after SIGTERM");

        client.skip(header.file_size).await.expect("the whole body arrives");
        let rest = client.receive_all().await.unwrap();
        assert!(matches!(rest[..], [Received::Frame(ServerFrame::Done(_))]), "{rest:?}");
    });
    let status = server.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}

#[test]
fn the_server_records_each_clients_since_and_reports_for_status() {
    let sandbox = sandbox_with_clients();
    sandbox.publish("a.bin", b"a", &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    runtime().block_on(async {
        let mut client =
            RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-01")).await.unwrap();
        client
            .send_json(&json!({
                "request-type": "poll", "protocol": 1, "client-id": "web-01",
                "since": {"all": 1, "web-01": 0},
                "rejected": [{"target": "all", "seq": 1, "reason": "hook-failed"}]
            }))
            .await
            .unwrap();
        client.receive_all().await.unwrap();
    });
    // Its hook failed on the entry it is at: it needs attention (exit 3).
    let out = crate::common::expect_code(&mut sandbox.fts(["status", "--json"]), 3);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let web01 = &status["clients"].as_array().unwrap()[0];
    assert_eq!(web01["client-id"], "web-01");
    assert_eq!(web01["authenticated"], true);
    let all = web01["targets"].as_array().unwrap().iter().find(|t| t["target"] == "all").unwrap();
    assert_eq!((all["applied"].as_u64(), all["newest"].as_u64()), (Some(1), Some(1)));
    assert_eq!(web01["problems"][0]["reason"], "hook-failed");
    let table = crate::common::stdout(&crate::common::expect_code(&mut sandbox.fts(["status"]), 3));
    assert!(table.contains("web-01") && table.contains("hook-failed"), "{table}");
}

/// One whole poll as web-01 with `since`.
fn poll_as_web01(sandbox: &Sandbox, server: &ServeProcess, since: serde_json::Value) {
    runtime().block_on(async {
        let mut client =
            RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-01")).await.unwrap();
        client.send_poll("web-01", since).await.unwrap();
        client.receive_all().await.unwrap();
    })
}

/// The `last-poll` time `fts status --json` shows for web-01.
fn last_poll_shown(sandbox: &Sandbox) -> String {
    // Current (exit 0) or behind (3), as web-01 claimed.
    let out = crate::common::run(&mut sandbox.fts(["status", "--json"]));
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    status["clients"][0]["last-poll"].as_str().expect("a last-poll time").to_owned()
}

#[test]
fn a_poll_that_changes_nothing_reaches_status_at_the_next_flush_or_at_stop() {
    let sandbox = sandbox_with_clients();
    sandbox.publish("a.bin", b"a", &["all"]);
    let server = ServeProcess::start(&sandbox, &["--status-interval", "1s"]);
    let poll = |since| poll_as_web01(&sandbox, &server, since);
    poll(json!({"all": 1}));
    let client_file = sandbox.join("status/web-01.json");
    let written = std::fs::read(&client_file).unwrap();
    let first = last_poll_shown(&sandbox);

    // Time moves on by at least one second (status times are whole seconds).
    std::thread::sleep(Duration::from_millis(1100));
    poll(json!({"all": 1}));
    assert_eq!(std::fs::read(&client_file).unwrap(), written, "an unchanged poll does not rewrite the file");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while last_poll_shown(&sandbox) == first {
        assert!(std::time::Instant::now() < deadline, "the flush every --status-interval never came");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(last_poll_shown(&sandbox) > first);

    // A change is in the file at once.
    poll(json!({"all": 0}));
    let out = crate::common::expect_code(&mut sandbox.fts(["status", "--json"]), 3);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let all =
        status["clients"][0]["targets"].as_array().unwrap().iter().find(|t| t["target"] == "all").unwrap();
    assert_eq!(all["applied"].as_u64(), Some(0));
    drop(server);

    // A server that stops writes the times it holds, however long its interval.
    let mut server = ServeProcess::start(&sandbox, &["--status-interval", "1h"]);
    poll_as_web01(&sandbox, &server, json!({"all": 1}));
    let before = last_poll_shown(&sandbox);
    std::thread::sleep(Duration::from_millis(1100));
    poll_as_web01(&sandbox, &server, json!({"all": 1}));
    assert_eq!(last_poll_shown(&sandbox), before, "held in memory for an hour");
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).success());
    assert!(last_poll_shown(&sandbox) > before, "written when the server stopped");
}

#[test]
fn plaintext_on_a_remote_address_needs_allow_insecure_remote() {
    let sandbox = sandbox_with_clients();
    let out = expect_code(&mut sandbox.fts(["serve", "--plaintext", "--listen", "0.0.0.0:0"]), 2);
    assert!(stderr(&out).contains("--allow-insecure-remote"), "{}", stderr(&out));
}

#[test]
fn a_missing_store_folder_is_an_error_that_says_what_to_do() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[WEB_01]);
    let out = expect_code(&mut sandbox.fts(["serve", "--listen", "127.0.0.1:0"]), 1);
    assert!(stderr(&out).contains("fts publish"), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches("No such file").count(), 1, "each cause once: {}", stderr(&out));
}

#[test]
fn an_unreadable_crl_at_start_is_an_error() {
    let sandbox = sandbox_with_clients();
    std::fs::write(sandbox.join("certs/ca.crl"), "not a crl").unwrap();
    let out = expect_code(&mut sandbox.fts(["serve", "--listen", "127.0.0.1:0"]), 1);
    assert!(stderr(&out).contains("ca.crl"), "{}", stderr(&out));
}

#[test]
fn a_client_that_stops_reading_is_cut_off_by_the_minimum_send_rate() {
    let sandbox = sandbox_with_clients();
    publish_large(&sandbox, "all");
    let server = ServeProcess::start(&sandbox, &["--min-send-rate", "1MiB", "--min-send-rate-window", "1s"]);
    runtime().block_on(async {
        let mut stalled =
            RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-01")).await.unwrap();
        stalled.send_poll("web-01", json!({})).await.unwrap();
        assert!(matches!(stalled.receive_header().await.unwrap(), ServerFrame::File(_)));
        // Read nothing more: the server must give up on this client by itself.
        server.wait_for_log(Duration::from_secs(20), |l| {
            l["fields"]["result"] == "slow-reader"
                && l["fields"]["error"]
                    .as_str()
                    .is_some_and(|r| r.contains("slower than the minimum send rate"))
        });
        // And the slot is free again for a reader that keeps up.
        let mut reader =
            RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-01")).await.unwrap();
        reader.send_poll("web-01", json!({"all": 1})).await.unwrap();
        assert!(matches!(reader.receive_all().await.unwrap()[..], [Received::Frame(ServerFrame::Done(_))]));
    });
}

#[test]
fn a_poll_past_its_deadline_is_ended() {
    let sandbox = sandbox_with_clients();
    publish_large(&sandbox, "all");
    let server = ServeProcess::start(&sandbox, &["--poll-deadline", "2s"]);
    runtime().block_on(async {
        let mut slow =
            RawClient::connect(server.addr, client_config(&sandbox.join("certs"), "web-01")).await.unwrap();
        slow.send_poll("web-01", json!({})).await.unwrap();
        assert!(matches!(slow.receive_header().await.unwrap(), ServerFrame::File(_)));
        server.wait_for_log(Duration::from_secs(20), |l| {
            l["fields"]["result"] == "deadline" && l["fields"]["error"] == "the poll deadline passed"
        });
    });
}

#[test]
fn status_says_whether_the_servers_revocation_is_on_and_warns_when_its_crl_is_overdue() {
    let sandbox = sandbox_with_clients();
    let mut server = ServeProcess::start(&sandbox, &[]);
    let out = crate::common::expect_success(&mut sandbox.fts(["status"]));
    assert!(stderr(&out).contains("revocation is off"), "{}", stderr(&out));
    server.signal("TERM");
    server.wait_exit(Duration::from_secs(20));

    crate::common::expect_success(&mut sandbox.fts(["keygen", "crl"]));
    let _server = ServeProcess::start(&sandbox, &[]);
    let out = crate::common::expect_success(&mut sandbox.fts(["status"]));
    assert!(
        !stderr(&out).contains("revocation is off") && !stderr(&out).contains("warning"),
        "{}",
        stderr(&out)
    );
    let recorded = fts_status::StatusDir::open(sandbox.join("status")).read_server().expect("server.json");
    assert!(recorded.revocation && recorded.crl_number.is_some() && recorded.crl_next_update.is_some());

    // As the server records it once the CRL's next-update time has passed:
    let overdue = fts_status::ServerStatus {
        crl_next_update: Some(fts_proto::Published::parse("2020-01-01T00:00:00Z").unwrap()),
        ..recorded
    };
    fts_status::StatusDir::open(sandbox.join("status")).write_server(&overdue).unwrap();
    let out = crate::common::expect_success(&mut sandbox.fts(["status", "--json"]));
    assert!(stderr(&out).contains("past its next-update time"), "{}", stderr(&out));
    assert!(serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok(), "stdout stays clean JSON");
}

#[test]
fn a_broken_crl_keeps_the_last_good_one_and_sighup_reloads_at_once() {
    let sandbox = sandbox_with_clients();
    crate::common::expect_success(&mut sandbox.fts(["keygen", "revoke", "web-02"]));
    let server = ServeProcess::start(&sandbox, &[]);
    let certs = sandbox.join("certs");
    let good = std::fs::read(certs.join("ca.crl")).unwrap();

    // A damaged CRL file: the server says so and keeps enforcing the last good one.
    std::fs::write(certs.join("ca.crl"), "-----BEGIN X509 CRL-----\ngarbage\n-----END X509 CRL-----\n")
        .unwrap();
    server.wait_for_log(Duration::from_secs(10), |l| {
        l["fields"]["message"].as_str().is_some_and(|m| m.contains("the previous CRL stays enforced"))
    });
    runtime().block_on(async {
        let refused = RawClient::connect(server.addr, client_config(&certs, "web-02")).await;
        if let Ok(mut client) = refused {
            let _ = client.send_poll("web-02", json!({})).await;
            let received = client.receive().await;
            assert!(matches!(received, Ok(Received::Closed) | Err(_)), "still revoked: {received:?}");
        }
        let mut client = RawClient::connect(server.addr, client_config(&certs, "web-01")).await.unwrap();
        client.send_poll("web-01", json!({})).await.unwrap();
        assert!(matches!(client.receive_all().await.unwrap()[..], [Received::Frame(ServerFrame::Done(_))]));
    });

    // The good CRL back: picked up by the watcher; and SIGHUP reloads at once.
    std::fs::write(certs.join("ca.crl"), good).unwrap();
    server.wait_for_log(Duration::from_secs(10), |l| l["fields"]["message"] == "reloaded");
    server.signal("HUP");
    server.wait_for_log(Duration::from_secs(10), |l| l["fields"]["message"] == "reloaded on SIGHUP");
}

#[test]
fn sighup_reloads_the_ticket_keys_and_a_bad_file_leaves_the_keys_in_use() {
    let sandbox = sandbox_with_clients();
    sandbox.publish("a.conf", b"a\n", &["all"]);
    crate::common::expect_success(&mut sandbox.fts(["keygen", "ticket-key"]));
    let server = ServeProcess::start(&sandbox, &["--ticket-key", "certs/ticket.key"]);
    let sealing = |what: &'static str| {
        let line = server.wait_for_log(Duration::from_secs(10), |l| {
            l["fields"]["message"].as_str().is_some_and(|m| m.starts_with(&format!("ticket keys {what}")))
        });
        line["fields"]["sealing"].as_str().expect("the sealing key id").to_owned()
    };
    let loaded = sealing("loaded");

    crate::common::expect_success(&mut sandbox.fts(["keygen", "ticket-key", "--rotate"]));
    server.signal("HUP");
    let reloaded = sealing("reloaded on SIGHUP");
    assert_ne!(reloaded, loaded, "the next key seals after the rotation");

    std::fs::write(sandbox.join("certs/ticket.key"), "garbage\n").unwrap();
    server.signal("HUP");
    let failed = server.wait_for_log(Duration::from_secs(10), |l| {
        l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("cannot reload the ticket keys"))
    });
    assert_eq!(failed["level"], "ERROR", "{failed}");
    assert!(failed["fields"]["error"].as_str().unwrap_or("").contains("not a ticket key file"), "{failed}");
}
