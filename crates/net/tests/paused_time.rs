//! The server's timeouts on paused tokio time: [`Server::serve_connection`] over
//! `tokio::io::duplex` on a current-thread runtime, so each test takes no wall-clock
//! time and asserts both how the connection ended and when (in virtual time).
//!
//! Paused time advances by itself only while every task waits and no blocking task
//! runs: nothing here waits on a real socket, and each file is smaller than the blob
//! reader's buffers ([`BLOB_READ_AHEAD`]), so its reading thread has finished before
//! the body stalls. (For the same reason the real client, whose disk writer is a
//! blocking thread, does not receive bodies here.) The arithmetic of the minimum rate
//! over many writes is tested beside the pacer (`src/pacing.rs`). The shutdown grace of [`Server::run`] needs a real listener: its
//! connection is made on the wall clock, then time is paused.

mod harness;

use std::time::Duration;

use fts_net::handshake_log::FailedBefore;
use fts_net::pacing::MinSendRate;
use fts_net::server::{ConnectionEnd, Server, ServerSettings};
use fts_net::{Connection, PollEnd};
use fts_proto::{Request, ServerFrame};
use tokio::io::{DuplexStream, duplex};
use tokio::time::Instant;

use harness::{PIPE_PEER, World, client_id, pattern};

/// Less than the four 64 KiB buffers the blob reader fills ahead of the sender.
const BLOB_READ_AHEAD: usize = 200 * 1024;

/// A pipe far smaller than a body: a client that stops reading stalls the server.
const PIPE: usize = 4096;

const WEB_01: (&str, &[&str]) = ("web-01", &[]);

/// The end of a poll, or a panic that says what ended instead.
fn poll_end(end: ConnectionEnd) -> PollEnd {
    match end {
        ConnectionEnd::Poll(report) => report.end,
        other => panic!("expected a poll, got {other:?}"),
    }
}

/// `elapsed` is `expected`, to the millisecond the timer wheel rounds up to.
fn assert_took(elapsed: Duration, expected: Duration) {
    assert!(
        elapsed >= expected && elapsed <= expected + Duration::from_millis(2),
        "took {elapsed:?}, expected {expected:?}"
    );
}

/// Serves `server_end` while `client` runs; the client may not finish first.
async fn serve_while(
    server: &Server,
    server_end: DuplexStream,
    client: impl std::future::Future<Output = ()>,
) -> ConnectionEnd {
    tokio::select! {
        end = server.serve_connection(server_end, PIPE_PEER) => end,
        () = client => panic!("the client ended before the server"),
    }
}

/// A plaintext client that sends its request, reads the first frame header and then
/// stops reading, holding the pipe open.
async fn request_then_stall(client_end: DuplexStream) {
    let mut conn = Connection::client(client_end);
    conn.send_request(&Request::new(client_id("web-01"))).await.unwrap();
    let frame = conn.read_server_frame().await.unwrap();
    assert!(matches!(frame, ServerFrame::File(_)), "{frame:?}");
    std::future::pending::<()>().await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_starts_its_handshake_ends_at_the_handshake_timeout() {
    let world = World::new(&[WEB_01]);
    let settings = ServerSettings { handshake_timeout: Duration::from_secs(7), ..ServerSettings::default() };
    let server = world.bind(world.tls(), settings).await;
    let (_client_end, server_end) = duplex(PIPE);
    let started = Instant::now();
    let end = server.serve_connection(server_end, PIPE_PEER).await;
    assert!(matches!(end, ConnectionEnd::BeforeRequest(FailedBefore::Timeout)), "{end:?}");
    assert_took(started.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn a_handshake_that_stalls_midway_ends_at_the_handshake_timeout() {
    let world = World::new(&[WEB_01]);
    let settings = ServerSettings { handshake_timeout: Duration::from_secs(7), ..ServerSettings::default() };
    let server = world.bind(world.tls(), settings).await;
    let (mut client_end, server_end) = duplex(PIPE);
    // The start of a TLS record (a ClientHello), and then nothing.
    tokio::io::AsyncWriteExt::write_all(&mut client_end, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    let end = server.serve_connection(server_end, PIPE_PEER).await;
    assert!(matches!(end, ConnectionEnd::BeforeRequest(FailedBefore::Timeout)), "{end:?}");
    assert_took(started.elapsed(), Duration::from_secs(7));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_sends_no_request_after_its_handshake_ends_at_the_request_timeout() {
    let world = World::new(&[WEB_01]);
    let settings = ServerSettings { request_timeout: Duration::from_secs(4), ..ServerSettings::default() };
    let server = world.bind(world.tls(), settings).await;
    let (client_end, server_end) = duplex(64 * 1024);
    let handshake_done = std::cell::Cell::new(None);
    let client = async {
        let name = fts_trust::tls::server_name("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(world.client_config("web-01"))
            .connect(name, client_end)
            .await
            .expect("the handshake");
        handshake_done.set(Some(Instant::now()));
        let _held = tls;
        std::future::pending::<()>().await;
    };
    let started = Instant::now();
    let end = poll_end(serve_while(&server, server_end, client).await);
    assert!(matches!(end, PollEnd::NoRequest), "{end:?}");
    assert_eq!(end.to_string(), "no-request");
    let handshake = handshake_done.get().expect("the client finished its handshake");
    assert_took(handshake - started, Duration::ZERO);
    // The request timeout, then at most the close's own bound (a close_notify the
    // client does not read).
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(4) && elapsed <= Duration::from_secs(4 + 5), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_plaintext_client_that_sends_no_request_ends_exactly_at_the_request_timeout() {
    let world = World::new(&[WEB_01]);
    let settings = ServerSettings { request_timeout: Duration::from_secs(4), ..ServerSettings::default() };
    let server = world.bind(fts_net::server::Transport::Plaintext, settings).await;
    let (_client_end, server_end) = duplex(PIPE);
    let started = Instant::now();
    let end = poll_end(server.serve_connection(server_end, PIPE_PEER).await);
    assert!(matches!(end, PollEnd::NoRequest), "{end:?}");
    assert_took(started.elapsed(), Duration::from_secs(4));
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_cut_at_the_pacers_deadline() {
    let world = World::new(&[WEB_01]);
    world.publish("patch.bin", &pattern(BLOB_READ_AHEAD), &["all"]);
    let rate = MinSendRate { bytes_per_second: 1 << 20, window: Duration::from_secs(3) };
    let settings = ServerSettings { min_send_rate: rate, ..ServerSettings::default() };
    let server = world.bind(fts_net::server::Transport::Plaintext, settings).await;
    let (client_end, server_end) = duplex(PIPE);
    let started = Instant::now();
    let end = poll_end(serve_while(&server, server_end, request_then_stall(client_end)).await);
    assert!(matches!(end, PollEnd::SlowReader), "{end:?}");
    assert!(end.reason().to_string().contains("slower than the minimum send rate"), "{}", end.reason());
    // The header and the first bytes of the body paid for well under a millisecond at
    // 1 MiB/s: the write that stalled was given one window.
    assert_took(started.elapsed(), Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_poll_past_its_deadline_is_ended_at_the_deadline() {
    let world = World::new(&[WEB_01]);
    world.publish("patch.bin", &pattern(BLOB_READ_AHEAD), &["all"]);
    // A window longer than the deadline: only the deadline can end this poll.
    let rate = MinSendRate { bytes_per_second: 1, window: Duration::from_secs(3600) };
    let settings = ServerSettings {
        min_send_rate: rate,
        poll_deadline: Duration::from_secs(2),
        ..ServerSettings::default()
    };
    let server = world.bind(fts_net::server::Transport::Plaintext, settings).await;
    let (client_end, server_end) = duplex(PIPE);
    let started = Instant::now();
    let end = poll_end(serve_while(&server, server_end, request_then_stall(client_end)).await);
    assert!(matches!(end, PollEnd::Deadline), "{end:?}");
    assert_eq!(end.reason().to_string(), "the poll deadline passed");
    assert_took(started.elapsed(), Duration::from_secs(2));
}

/// `Server::run`'s grace: a connection still open when shutdown begins is given
/// `grace`, then closed. Its handshake runs on the wall clock over 127.0.0.1; time is
/// paused only once it waits for its request, with every other timeout far away.
#[tokio::test]
async fn shutdown_closes_a_connection_still_open_when_its_grace_ends() {
    let world = World::new(&[WEB_01]);
    let hour = Duration::from_secs(3600);
    let settings = ServerSettings {
        grace: Duration::from_secs(30),
        handshake_timeout: hour,
        request_timeout: hour,
        ..ServerSettings::default()
    };
    let server = world.bind(world.tls(), settings).await;
    let addr = server.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let mut idle = world.raw_tls("web-01", addr).await;

    tokio::time::pause();
    let started = Instant::now();
    stop.send(()).unwrap();
    running.await.unwrap();
    assert_took(started.elapsed(), Duration::from_secs(30));
    tokio::time::resume();
    // The connection was closed by the server, not left open.
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read_server_frame()).await;
    assert!(matches!(read, Ok(Err(_))), "the server closed the connection: {read:?}");
}
