//! Reading a server's `/metrics` (`--metrics-listen`): one bounded HTTP GET, the value
//! of one sample, and a wait for a sample to reach a value. [`super::server::ServeProcess`]
//! uses them for its own endpoint; tests of other processes call them with an address.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// `GET path` over plain HTTP/1.1, every step bounded; the whole answer (status line,
/// headers, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// The Prometheus text at `/metrics` of `addr`.
pub fn scrape(addr: SocketAddr) -> std::io::Result<String> {
    http_get(addr, "/metrics")
}

/// The value of one sample (`name{labels}`) on a metrics page.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Scrapes until `sample(series)` is at least `min`, for at most 10 s; returns the last
/// value (-1 when it never appeared).
pub fn wait_for_sample(addr: SocketAddr, series: &str, min: f64) -> f64 {
    let started = Instant::now();
    loop {
        let value = scrape(addr).ok().and_then(|page| sample(&page, series)).unwrap_or(-1.0);
        if value >= min || started.elapsed() > Duration::from_secs(10) {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
