//! A raw protocol client for tests: it speaks the wire format byte by byte over real
//! TLS, so tests can send anything, malformed frames included. It is not a second
//! product client: it checks nothing on its own; tests assert what they expect.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fts_proto::{FileHeader, ServerFrame};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A client TLS config from the sandbox's `certs/` for client `id` (with the `fts/1`
/// ALPN and the CA as the only root). Keep it to resume sessions across connections.
pub fn client_config(certs: &Path, id: &str) -> Arc<ClientConfig> {
    let roots = fts_trust::pem::load_certificates(&certs.join("ca.crt")).expect("ca.crt");
    let chain = fts_trust::pem::load_certificates(&certs.join(format!("{id}.crt"))).expect("client cert");
    let key = fts_trust::pem::load_private_key(&certs.join(format!("{id}.key"))).expect("client key");
    fts_trust::client_config(roots, chain, key).expect("client config")
}

pub struct RawClient {
    pub stream: TlsStream<TcpStream>,
}

/// What the server sent back, frame by frame.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one at a time, in a test
pub enum Received {
    File(FileHeader, Vec<u8>),
    Frame(ServerFrame),
    /// The connection ended (cleanly or not) before a frame began.
    Closed,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<RawClient> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("127.0.0.1").expect("a server name").to_owned();
        let stream = TlsConnector::from(config).connect(name, tcp).await?;
        Ok(RawClient { stream })
    }

    pub fn resumed(&self) -> bool {
        self.stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// Sends raw bytes and flushes.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Sends a JSON value as one frame.
    pub async fn send_json(&mut self, header: &serde_json::Value) -> std::io::Result<()> {
        let json = serde_json::to_vec(header).expect("json");
        let mut frame = (json.len() as u16).to_be_bytes().to_vec();
        frame.extend_from_slice(&json);
        self.send(&frame).await
    }

    /// Sends a well-formed poll request for `id` with the given `since`.
    pub async fn send_poll(&mut self, id: &str, since: serde_json::Value) -> std::io::Result<()> {
        self.send_json(&serde_json::json!({
            "request-type": "poll", "protocol": 1, "client-id": id, "since": since
        }))
        .await
    }

    /// Reads the next frame (and a file's body), within 20 s.
    pub async fn receive(&mut self) -> std::io::Result<Received> {
        tokio::time::timeout(Duration::from_secs(20), self.receive_inner())
            .await
            .map_err(|_| std::io::Error::other("no frame within 20 s"))?
    }

    async fn receive_inner(&mut self) -> std::io::Result<Received> {
        let mut prefix = [0u8; 2];
        match self.stream.read_exact(&mut prefix).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(Received::Closed),
            Err(e) => return Err(e),
        }
        let mut header = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        self.stream.read_exact(&mut header).await?;
        let frame = ServerFrame::decode(&header).map_err(std::io::Error::other)?;
        match frame {
            ServerFrame::File(file) => {
                let mut body = vec![0u8; usize::try_from(file.file_size).expect("test files are small")];
                self.stream.read_exact(&mut body).await?;
                Ok(Received::File(file, body))
            }
            other => Ok(Received::Frame(other)),
        }
    }

    /// Reads only the next frame's header (a `file` frame's body is left unread).
    pub async fn receive_header(&mut self) -> std::io::Result<ServerFrame> {
        let mut prefix = [0u8; 2];
        self.stream.read_exact(&mut prefix).await?;
        let mut header = vec![0u8; usize::from(u16::from_be_bytes(prefix))];
        self.stream.read_exact(&mut header).await?;
        ServerFrame::decode(&header).map_err(std::io::Error::other)
    }

    /// Reads and discards `n` bytes (a body left unread by `receive_header`).
    pub async fn skip(&mut self, n: u64) -> std::io::Result<()> {
        let copied = tokio::io::copy(&mut (&mut self.stream).take(n), &mut tokio::io::sink()).await?;
        if copied == n { Ok(()) } else { Err(std::io::ErrorKind::UnexpectedEof.into()) }
    }

    /// Reads frames until `done`, `error` or the end; returns them all.
    pub async fn receive_all(&mut self) -> std::io::Result<Vec<Received>> {
        let mut all = Vec::new();
        loop {
            let item = self.receive().await?;
            let last = !matches!(item, Received::File(..));
            all.push(item);
            if last {
                return Ok(all);
            }
        }
    }
}
