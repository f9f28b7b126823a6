//! A hostile fts server for tests: it speaks the wire format over real TLS on
//! 127.0.0.1 with a certificate the test chooses (the sandbox's real `server.crt`, or
//! one from another CA or for another name), records every request it reads, and
//! answers each connection with the next scripted [`Answer`]: arbitrary bytes, then a
//! clean or an abrupt close, or with a paced answer ([`HostileServer::push_paced`]):
//! pieces of bytes, each after a pause, to play a server that trickles. When the script
//! is empty it answers `done` alone.
//!
//! It checks nothing on its own: tests assert what the client did and sent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fts_proto::{Done, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How a connection ends once the answer's bytes are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// A TLS close_notify, then the server waits for the client to close.
    CloseNotify,
    /// The TCP connection is dropped without a close_notify.
    Abrupt,
}

/// One connection's scripted answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub bytes: Vec<u8>,
    pub end: End,
}

impl Answer {
    /// `bytes`, then a clean close.
    pub fn bytes(bytes: Vec<u8>) -> Answer {
        Answer { bytes, end: End::CloseNotify }
    }
}

/// The frame bytes of a `done` frame saying nothing more is waiting.
pub fn done_frame() -> Vec<u8> {
    ServerFrame::Done(Done { more: false, poll_after: 60, ..Done::default() }).encode().expect("encode done")
}

/// A running hostile server; stopped when dropped.
pub struct HostileServer {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<serde_json::Value>>>,
    answers: Arc<Mutex<VecDeque<Script>>>,
    handshakes_failed: Arc<Mutex<usize>>,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Bounds on each step of a connection, so the server never holds a test up.
const STEP_LIMIT: Duration = Duration::from_secs(10);

impl HostileServer {
    /// Listens on an ephemeral loopback port with `cert`/`key` as the server identity and
    /// client certificates verified against `client_ca` (mutual TLS, ALPN `fts/1`).
    pub fn start(cert: &Path, key: &Path, client_ca: &Path) -> HostileServer {
        let chain = fts_trust::pem::load_certificates(cert).expect("server certificate");
        let key = fts_trust::pem::load_private_key(key).expect("server key");
        let client_auth = fts_trust::ClientAuth::from_files(client_ca, None).expect("client CA");
        let config = fts_trust::server_config(chain, key, client_auth).expect("server TLS config");
        let acceptor = TlsAcceptor::from(config);

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime for the hostile server");
        let listener =
            runtime.block_on(TcpListener::bind("127.0.0.1:0")).expect("bind an ephemeral loopback port");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(VecDeque::new()));
        let handshakes_failed = Arc::new(Mutex::new(0));
        {
            let requests = Arc::clone(&requests);
            let answers = Arc::clone(&answers);
            let handshakes_failed = Arc::clone(&handshakes_failed);
            runtime.spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    let requests = Arc::clone(&requests);
                    let answers = Arc::clone(&answers);
                    let handshakes_failed = Arc::clone(&handshakes_failed);
                    tokio::spawn(async move {
                        let tls = match tokio::time::timeout(STEP_LIMIT, acceptor.accept(tcp)).await {
                            Ok(Ok(tls)) => tls,
                            _ => {
                                *handshakes_failed.lock().unwrap() += 1;
                                return;
                            }
                        };
                        serve_one(tls, &requests, &answers).await;
                    });
                }
            });
        }
        HostileServer { addr, requests, answers, handshakes_failed, runtime: Some(runtime) }
    }

    /// With the sandbox's real credentials: `certs/server.crt`, `certs/server.key`, and
    /// `certs/ca.crt` as the client CA.
    pub fn start_in(certs: &Path) -> HostileServer {
        Self::start(&certs.join("server.crt"), &certs.join("server.key"), &certs.join("ca.crt"))
    }

    /// Queues the answer for the next connection that sends a request.
    pub fn push(&self, answer: Answer) {
        self.answers
            .lock()
            .unwrap()
            .push_back(Script { steps: vec![(Duration::ZERO, answer.bytes)], end: answer.end });
    }

    /// Queues a paced answer: each piece of bytes is written (and flushed) after its
    /// pause, then the connection ends as `end` says.
    pub fn push_paced(&self, steps: Vec<(Duration, Vec<u8>)>, end: End) {
        self.answers.lock().unwrap().push_back(Script { steps, end });
    }

    /// Every request read so far, as JSON, in order.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        self.requests.lock().unwrap().clone()
    }

    /// How many TLS handshakes did not complete.
    pub fn handshakes_failed(&self) -> usize {
        *self.handshakes_failed.lock().unwrap()
    }

    /// Answers not yet used.
    pub fn pending_answers(&self) -> usize {
        self.answers.lock().unwrap().len()
    }
}

/// One connection's answer: pieces of bytes, each after a pause, then the end.
#[derive(Debug, Clone)]
struct Script {
    steps: Vec<(Duration, Vec<u8>)>,
    end: End,
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

async fn serve_one(
    mut tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    requests: &Mutex<Vec<serde_json::Value>>,
    answers: &Mutex<VecDeque<Script>>,
) {
    let read_request = async {
        let mut prefix = [0u8; 2];
        tls.read_exact(&mut prefix).await?;
        let mut header = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        tls.read_exact(&mut header).await?;
        Ok::<_, std::io::Error>(header)
    };
    let header = match tokio::time::timeout(STEP_LIMIT, read_request).await {
        Ok(Ok(header)) => header,
        _ => return,
    };
    let json: serde_json::Value = serde_json::from_slice(&header)
        .unwrap_or_else(|e| serde_json::json!({"unparsable-request": e.to_string()}));
    if json["request-type"] == "receipt" {
        // Like a server older than receipts: the host's reports then ride in its polls,
        // and the scripted answers stay for the polls they were written for.
        let refusal = fts_proto::ServerFrame::Error(fts_proto::ErrorFrame {
            code: fts_proto::ErrorCode::UnknownRequest,
            message: "unknown request type".into(),
            retry_after: None,
        });
        let _ = tls.write_all(&refusal.encode().unwrap()).await;
        let _ = tokio::time::timeout(STEP_LIMIT, tls.shutdown()).await;
        return;
    }
    requests.lock().unwrap().push(json);

    let answer = answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Script { steps: vec![(Duration::ZERO, done_frame())], end: End::CloseNotify });
    for (pause, bytes) in &answer.steps {
        tokio::time::sleep(*pause).await;
        // The client may stop reading and close at any point: write errors are expected.
        let written = tokio::time::timeout(STEP_LIMIT, async {
            tls.write_all(bytes).await?;
            tls.flush().await
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
    match answer.end {
        End::Abrupt => drop(tls),
        End::CloseNotify => {
            let _ = tokio::time::timeout(STEP_LIMIT, tls.shutdown()).await;
            // Wait for the client to close, so that nothing it has not read yet is
            // lost to a reset.
            let mut scratch = [0u8; 4096];
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Ok(n) = tls.read(&mut scratch).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
    }
}
