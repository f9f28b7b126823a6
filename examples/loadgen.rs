//! The load tool of `scripts/bench.sh`: the same client certificate and the same
//! rustls client (fts-trust's `client_config`, ring, TLS 1.3) against `fts serve` and
//! against nginx, so that the servers' CPU per connection can be compared.
//!
//!     loadgen fts  --server IP:PORT --certs DIR --id ID [--connections N] [--concurrency C] [--resume] [--log-size N]
//!     loadgen http --server IP:PORT --certs DIR --id ID --connections N --path /empty [--resume]
//!     loadgen idle-fts|idle-http --server IP:PORT --certs DIR --id ID --connections N --hold SECS
//!
//! `fts`: N empty polls (request, `done`, close), each over its own connection and a
//! full mutual-TLS handshake, or a resumed one with `--resume` (one ClientConfig and
//! its session store shared by every connection, as `fts poll` shares it across polls
//! in loop mode). With `--log-size N` the request carries `log-size` N, as every
//! `fts poll` of issue 18 sends (a host that has verified N leaves), and the answer may
//! start with a `log` frame (a server before issue 18 ignores the field and sends a lone
//! `done`); the figures count the answers that had one. `http`: N HTTP/1.1 GETs of `--path` with `Connection: close`.
//! `idle-*`: N connections with the handshake done, held open for `--hold` seconds
//! (prints `ready` once all are open). Prints one line of figures; exits non-zero if a
//! connection failed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flags::Flags;
use fts_proto::{ClientId, Request, ServerFrame};
use rustls::client::Resumption;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[path = "load/flags.rs"]
mod flags;

struct Args {
    mode: String,
    server: SocketAddr,
    certs: PathBuf,
    id: String,
    connections: usize,
    concurrency: usize,
    resume: bool,
    log_size: Option<u64>,
    path: String,
    hold: Duration,
}

const USAGE: &str = "usage: loadgen fts|http|idle-fts|idle-http --server IP:PORT --certs DIR --id ID \
                     [--connections N] [--concurrency C] [--resume] [--log-size N] [--path /empty] [--hold SECS]";

fn parse_args() -> Result<Args, String> {
    let flags = Flags::from_env();
    let mode = flags.first().unwrap_or_default().to_owned();
    if !["fts", "http", "idle-fts", "idle-http"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?}"));
    }
    Ok(Args {
        mode,
        server: flags.parsed("--server")?.ok_or("--server IP:PORT is required")?,
        certs: flags.required("--certs")?.into(),
        id: flags.required("--id")?,
        connections: flags.parsed_or("--connections", 1000)?,
        concurrency: flags.parsed_or("--concurrency", 4)?,
        resume: flags.switch("--resume"),
        log_size: flags.parsed("--log-size")?,
        path: flags.value("--path").unwrap_or_else(|| "/empty".into()),
        hold: Duration::from_secs(flags.parsed_or("--hold", 10)?),
    })
}

fn tls_config(args: &Args, http: bool) -> Result<Arc<rustls::ClientConfig>, String> {
    let certs = &args.certs;
    let config = fts_trust::client_config(
        fts_trust::pem::load_certificates(&certs.join("ca.crt")).map_err(|e| e.to_string())?,
        fts_trust::pem::load_certificates(&certs.join(format!("{}.crt", args.id)))
            .map_err(|e| e.to_string())?,
        fts_trust::pem::load_private_key(&certs.join(format!("{}.key", args.id)))
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let mut config = Arc::unwrap_or_clone(config);
    if http {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    if !args.resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

async fn connect(
    server: SocketAddr,
    connector: &TlsConnector,
) -> Result<(TlsStream<TcpStream>, bool), String> {
    let tcp = TcpStream::connect(server).await.map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
    let tls = connector.connect(name, tcp).await.map_err(|e| format!("handshake: {e}"))?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok((tls, resumed))
}

/// One empty poll: the request, then everything up to the server's close; the answer
/// must be a lone `done` frame, or with `log_size` a `log` frame then `done`. Says
/// whether the handshake resumed and whether the answer had a `log` frame.
async fn fts_poll(
    server: SocketAddr,
    connector: &TlsConnector,
    id: &ClientId,
    log_size: Option<u64>,
) -> Result<(bool, bool), String> {
    let (mut tls, resumed) = connect(server, connector).await?;
    let mut request = Request::new(id.clone());
    request.log_size = log_size;
    let request = request.encode().map_err(|e| e.to_string())?;
    tls.write_all(&request).await.map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.map_err(|e| format!("read: {e}"))?;
    let _ = tls.shutdown().await;
    let frame = |at: usize| {
        let len = answer.get(at..at + 2).map(|p| usize::from(u16::from_be_bytes([p[0], p[1]])))?;
        Some((answer.get(at + 2..at + 2 + len).map(ServerFrame::decode)?, at + 2 + len))
    };
    let (mut first, mut end) = frame(0).ok_or("no answer")?;
    let logged = log_size.is_some() && matches!(first, Ok(ServerFrame::Log(_)));
    if logged {
        (first, end) = frame(end).ok_or("a log frame, then nothing")?;
    }
    match first {
        Ok(ServerFrame::Done(_)) if answer.len() == end => Ok((resumed, logged)),
        other => Err(format!("not a lone done frame (after the log frame, if any): {other:?}")),
    }
}

/// One HTTP/1.1 GET with `Connection: close`; the status must be 200.
async fn http_get(server: SocketAddr, connector: &TlsConnector, path: &str) -> Result<bool, String> {
    let (mut tls, resumed) = connect(server, connector).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", server.ip());
    tls.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    tls.flush().await.map_err(|e| format!("flush: {e}"))?;
    let mut answer = Vec::new();
    // nginx may close without close_notify after `Connection: close`: what was read counts.
    let _ = tls.read_to_end(&mut answer).await;
    let _ = tls.shutdown().await;
    if answer.starts_with(b"HTTP/1.1 200") { Ok(resumed) } else { Err("not a 200 answer".into()) }
}

fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(args) => Arc::new(args),
        Err(e) => {
            eprintln!("loadgen: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let http = args.mode.ends_with("http");
    let setup = ClientId::parse(&args.id)
        .map_err(|e| e.to_string())
        .and_then(|id| Ok((id, TlsConnector::from(tls_config(&args, http)?))));
    let (id, connector) = match setup {
        Ok(setup) => setup,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadgen: cannot start a runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let started = Instant::now();
        if args.mode.starts_with("idle") {
            let mut held = Vec::with_capacity(args.connections);
            for _ in 0..args.connections {
                match connect(args.server, &connector).await {
                    Ok((tls, _)) => held.push(tls),
                    Err(e) => {
                        eprintln!("loadgen: {e}");
                        return std::process::ExitCode::FAILURE;
                    }
                }
            }
            println!("ready: {} connections open in {:.2} s", held.len(), started.elapsed().as_secs_f64());
            tokio::time::sleep(args.hold).await;
            return std::process::ExitCode::SUCCESS;
        }

        let next = Arc::new(AtomicUsize::new(0));
        let resumed = Arc::new(AtomicUsize::new(0));
        let logged = Arc::new(AtomicUsize::new(0));
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..args.concurrency.max(1) {
            let (args, connector, id) = (Arc::clone(&args), connector.clone(), id.clone());
            let (next, resumed, logged) = (Arc::clone(&next), Arc::clone(&resumed), Arc::clone(&logged));
            workers.spawn(async move {
                let mut failures = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < args.connections {
                    let result = if http {
                        http_get(args.server, &connector, &args.path).await.map(|r| (r, false))
                    } else {
                        fts_poll(args.server, &connector, &id, args.log_size).await
                    };
                    match result {
                        Ok((was_resumed, had_log)) => {
                            resumed.fetch_add(usize::from(was_resumed), Ordering::Relaxed);
                            logged.fetch_add(usize::from(had_log), Ordering::Relaxed);
                        }
                        Err(e) => failures.push(e),
                    }
                }
                failures
            });
        }
        let mut failures = Vec::new();
        while let Some(done) = workers.join_next().await {
            match done {
                Ok(done) => failures.extend(done),
                Err(e) => failures.push(format!("a worker failed: {e}")),
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{} connections: ok {}, failed {}, resumed {}, log frames {}, {:.0}/s",
            args.mode,
            args.connections - failures.len(),
            failures.len(),
            resumed.load(Ordering::Relaxed),
            logged.load(Ordering::Relaxed),
            args.connections as f64 / elapsed
        );
        for failure in failures.iter().take(5) {
            eprintln!("loadgen: {failure}");
        }
        if failures.is_empty() { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
    })
}
