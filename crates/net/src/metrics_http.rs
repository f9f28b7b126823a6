//! The `--metrics-listen` endpoint: plain HTTP/1.1, one request per connection,
//! `GET /metrics` (or `HEAD`) answered with [`Metrics::encode`], any other path 404.
//!
//! Deliberately small and bounded, because it is reachable by whoever can reach the
//! address: at most [`MAX_CONNECTIONS`] at once (more wait in the kernel's backlog),
//! a request head of at most [`MAX_REQUEST`] bytes read within [`REQUEST_TIMEOUT`],
//! the answer written within [`WRITE_TIMEOUT`], then the connection is closed. It
//! serves nothing but the counters: no secret, no path, no state can be changed.
//! Who may scrape is the operator's choice of address (loopback, a management
//! network) and firewall: there is no TLS or authentication here.

use std::sync::Arc;
use std::time::Duration;

use fts_proto::ErrorChain;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::metrics::{CONTENT_TYPE, Metrics};

/// Scrapes served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// The largest request head read (request line and headers).
pub const MAX_REQUEST: usize = 4096;
/// Time allowed to send the request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed to write the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long, and how much, unread input is drained before closing.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { return };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = Arc::clone(&metrics);
        tokio::spawn(async move {
            answer(stream, &metrics).await;
            drop(permit);
        });
    }
}

/// What a request head asks for.
#[derive(Debug, PartialEq, Eq)]
enum Asked {
    Metrics { head_only: bool },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

fn parse_head(head: &[u8]) -> Asked {
    let Some(line) = head.split(|&b| b == b'\n').next() else { return Asked::BadRequest };
    let Ok(line) = std::str::from_utf8(line) else { return Asked::BadRequest };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Asked::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Asked::BadRequest;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    if path != "/metrics" {
        return Asked::NotFound;
    }
    match method {
        "GET" => Asked::Metrics { head_only: false },
        "HEAD" => Asked::Metrics { head_only: true },
        _ => Asked::MethodNotAllowed,
    }
}

/// Reads until the end of the request head, at most [`MAX_REQUEST`] bytes; `None`
/// when the head is too large or the peer closed first.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return (!head.is_empty()).then_some(head);
        }
        head.extend_from_slice(&chunk[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Some(head);
        }
        if head.len() > MAX_REQUEST {
            return None;
        }
    }
}

async fn answer(mut stream: TcpStream, metrics: &Metrics) {
    let asked = match timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(Some(head)) => parse_head(&head),
        Ok(None) => Asked::BadRequest,
        // A scraper that sends nothing in time gets nothing.
        Err(_) => return,
    };
    let (status, content_type, body, head_only) = match asked {
        Asked::Metrics { head_only } => ("200 OK", CONTENT_TYPE, metrics.encode(), head_only),
        Asked::NotFound => {
            ("404 Not Found", "text/plain; charset=utf-8", "not found: try /metrics\n".into(), false)
        }
        Asked::MethodNotAllowed => {
            ("405 Method Not Allowed", "text/plain; charset=utf-8", "use GET\n".into(), false)
        }
        Asked::BadRequest => ("400 Bad Request", "text/plain; charset=utf-8", "bad request\n".into(), false),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        response.push_str("Allow: GET, HEAD\r\n");
    }
    response.push_str("\r\n");
    if !head_only {
        response.push_str(&body);
    }
    let _ = timeout(WRITE_TIMEOUT, async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    // A lingering close: what the client sent beyond the head is read and dropped
    // (bounded), so that closing with unread input does not reset the connection
    // before the client has read the answer.
    let _ = timeout(LINGER, async {
        let mut sink = [0u8; 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_get_or_head_of_metrics_is_served() {
        assert_eq!(
            parse_head(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Asked::Metrics { head_only: false }
        );
        assert_eq!(parse_head(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Asked::Metrics { head_only: false });
        assert_eq!(parse_head(b"HEAD /metrics HTTP/1.1\r\n\r\n"), Asked::Metrics { head_only: true });
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n\r\n"), Asked::NotFound);
        assert_eq!(parse_head(b"GET /metrics/../x HTTP/1.1\r\n\r\n"), Asked::NotFound);
        assert_eq!(parse_head(b"POST /metrics HTTP/1.1\r\n\r\n"), Asked::MethodNotAllowed);
        assert_eq!(parse_head(b"GET /metrics\r\n\r\n"), Asked::BadRequest);
        assert_eq!(parse_head(b"\x16\x03\x01garbage"), Asked::BadRequest);
        assert_eq!(parse_head(b"GET /metrics SSH-2.0\r\n\r\n"), Asked::BadRequest);
    }

    #[tokio::test]
    async fn a_scrape_gets_the_metrics_and_an_oversized_request_a_400() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        metrics.file_sent();
        let server = tokio::spawn(serve_metrics(listener, Arc::clone(&metrics)));

        let fetch = |request: Vec<u8>| async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.write_all(&request).await.unwrap();
            let mut answer = String::new();
            timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await.unwrap().unwrap();
            answer
        };
        let answer = fetch(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec()).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.contains("\nfts_files_sent_total 1\n"), "{answer}");
        let answer = fetch(b"GET /other HTTP/1.1\r\n\r\n".to_vec()).await;
        assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
        let mut huge = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', MAX_REQUEST * 2));
        let answer = fetch(huge).await;
        assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
        server.abort();
    }
}
