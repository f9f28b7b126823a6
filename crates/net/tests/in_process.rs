//! The server started in-process ([`fts_net::server::Server::run`] on 127.0.0.1:0)
//! with generated credentials, polled by the real [`fts_net::client::Client`]: what a
//! poll installs and records, who is refused, and the limit of polls per client id.
//! Wall-clock tests (real sockets); the timeouts are tested on paused time in
//! `paused_time.rs`.

mod harness;

use std::time::Duration;

use fts_net::client::receive::NoProgress;
use fts_net::error::PollError;
use fts_net::server::ServerSettings;
use fts_proto::{ErrorCode, Request, ServerFrame, Target};

use harness::{World, client_id, pattern};

const WEB_01: (&str, &[&str]) = ("web-01", &["web"]);
const WEB_02: (&str, &[&str]) = ("web-02", &[]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_installs_a_published_file_and_the_server_records_its_status() {
    let world = World::new(&[WEB_01, WEB_02]);
    let body = pattern(100_000);
    world.publish("patch.bin", &body, &["all"]);
    world.publish("only-02.bin", b"not for web-01", &["web-02"]);
    let server = world.start(world.tls(), ServerSettings::default()).await;

    let mut client = world.client("web-01", server.addr);
    let outcome = client.poll_once(&mut NoProgress).await.expect("the poll succeeds");
    assert_eq!(outcome.installed, vec![world.dest("web-01").join("patch.bin")]);
    assert!(!outcome.more);
    assert_eq!(std::fs::read(world.dest("web-01").join("patch.bin")).unwrap(), body);
    assert!(!world.dest("web-01").join("only-02.bin").exists(), "another client's file is not sent");
    assert_eq!(client.state().since(&Target::All), 1);

    // The status was written before the answer went out: the request's `since`.
    let status = world.status_of("web-01").expect("a status file for web-01");
    assert!(status.authenticated, "a mutual-TLS poll is recorded as authenticated");
    assert_eq!(status.since.get(&Target::All), Some(&0));
    assert_eq!(status.since.get(&Target::Client(client_id("web-01"))), Some(&0));

    // A second poll is caught up; stopping writes its time (only noted in memory).
    let again = client.poll_once(&mut NoProgress).await.expect("the second poll");
    assert!(again.installed.is_empty());
    server.stop().await;
    let status = world.status_of("web-01").expect("a status file for web-01");
    assert_eq!(status.since.get(&Target::All), Some(&1), "the last since is flushed at stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_client_certificate_is_refused() {
    let world = World::new(&[WEB_01, WEB_02]);
    world.publish("patch.bin", b"data", &["all"]);
    world.revoke("web-01");
    let server = world.start(world.tls(), ServerSettings::default()).await;

    let error = world.client("web-01", server.addr).poll_once(&mut NoProgress).await.expect_err("refused");
    assert!(error.is_certificate_refusal(), "{error:?}");
    assert!(!world.dest("web-01").join("patch.bin").exists());
    assert!(world.status_of("web-01").is_none(), "a refused host leaves no status");

    // Another host of the same CA is served.
    let outcome = world.client("web-02", server.addr).poll_once(&mut NoProgress).await.expect("served");
    assert_eq!(outcome.installed.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_unknown_ca_is_refused() {
    let world = World::new(&[WEB_01]);
    world.publish("patch.bin", b"data", &["all"]);
    let server = world.start(world.tls(), ServerSettings::default()).await;

    let error = world.stranger("web-01", server.addr).poll_once(&mut NoProgress).await.expect_err("refused");
    assert!(error.is_certificate_refusal(), "{error:?}");
    assert!(world.status_of("web-01").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_naming_another_client_is_an_identity_mismatch() {
    let world = World::new(&[WEB_01, WEB_02]);
    world.publish("secret.bin", b"web-02's", &["web-02"]);
    let server = world.start(world.tls(), ServerSettings::default()).await;

    // web-01's certificate, asking as web-02.
    let error = world.client_as("web-02", "web-01", server.addr).poll_once(&mut NoProgress).await;
    match error {
        Err(PollError::Refused(frame)) => assert_eq!(frame.code, ErrorCode::IdentityMismatch),
        other => panic!("expected identity-mismatch, got {other:?}"),
    }
    assert!(!world.dest("web-02").join("secret.bin").exists());
    assert!(world.status_of("web-02").is_none(), "nothing is recorded for the id claimed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_gets_at_most_two_polls_at_once() {
    let world = World::new(&[WEB_01, WEB_02]);
    // Larger than what loopback buffers: a poll that stops reading stays in its body.
    world.publish("large.bin", &pattern(32 << 20), &["all"]);
    let server = world.start(world.tls(), ServerSettings::default()).await;

    let mut running = Vec::new();
    for _ in 0..2 {
        let mut held = world.raw_tls("web-01", server.addr).await;
        held.send_request(&Request::new(client_id("web-01"))).await.unwrap();
        let frame = held.read_server_frame().await.unwrap();
        assert!(matches!(frame, ServerFrame::File(_)), "{frame:?}");
        running.push(held);
    }
    match world.client("web-01", server.addr).poll_once(&mut NoProgress).await {
        Err(e @ PollError::Refused(_)) => {
            let PollError::Refused(frame) = &e else { unreachable!() };
            assert_eq!(frame.code, ErrorCode::Busy);
            assert!(e.retry_after().is_some_and(|s| s > 0), "busy carries retry-after");
        }
        other => panic!("expected busy, got {other:?}"),
    }

    // Another client id is not affected (caught up: nothing to send).
    let mut web02 = Request::new(client_id("web-02"));
    web02.since.insert(Target::All, 1);
    let mut other = world.raw_tls("web-02", server.addr).await;
    other.send_request(&web02).await.unwrap();
    assert!(matches!(other.read_server_frame().await.unwrap(), ServerFrame::Done(_)));

    // When one poll ends, the client id may poll again.
    drop(running.pop());
    let mut caught_up = Request::new(client_id("web-01"));
    caught_up.since.insert(Target::All, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut again = world.raw_tls("web-01", server.addr).await;
        again.send_request(&caught_up).await.unwrap();
        match again.read_server_frame().await.unwrap() {
            ServerFrame::Done(_) => break,
            // The server may not have seen the close yet.
            ServerFrame::Error(e) if e.code == ErrorCode::Busy && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("expected done, got {other:?}"),
        }
    }
}
