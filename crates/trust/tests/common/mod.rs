//! Test support: a PKI made per test with fts keygen in a temporary folder, real TLS
//! connections over loopback, and openssl when it is installed.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fts_proto::{ClientId, GroupName};
use fts_trust::keygen::{self, CaOptions, ClientOptions, Issued, ServerOptions};
use fts_trust::pem::{load_certificates, load_private_key};
use fts_trust::{ClientAuth, ClientIdentity, SessionRefused};
use rustls::{ClientConfig, HandshakeKind, ServerConfig};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A CA, a server certificate for `localhost` and `127.0.0.1`, and clients, all made
/// by fts keygen in a fresh temporary folder.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        keygen::ca(&CaOptions { dir: dir.path().to_owned(), days: 30, force: false }).unwrap();
        keygen::server(&ServerOptions {
            dir: dir.path().to_owned(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
            days: 30,
            force: false,
        })
        .unwrap();
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn client(&self, id: &str, groups: &[&str]) -> Issued {
        keygen::client(&ClientOptions {
            dir: self.dir.path().to_owned(),
            id: ClientId::parse(id).unwrap(),
            groups: groups.iter().map(|g| GroupName::parse(g).unwrap()).collect(),
            days: 30,
            force: false,
        })
        .unwrap()
    }

    pub fn client_auth(&self) -> Arc<ClientAuth> {
        ClientAuth::new(load_certificates(&self.path("ca.crt")).unwrap(), Vec::new()).unwrap()
    }

    pub fn server_config(&self, client_auth: &Arc<ClientAuth>) -> Arc<ServerConfig> {
        fts_trust::server_config(
            load_certificates(&self.path("server.crt")).unwrap(),
            load_private_key(&self.path("server.key")).unwrap(),
            client_auth.clone(),
        )
        .unwrap()
    }

    /// The client config of `cert`/`key` (file names in the folder), trusting this CA.
    pub fn client_config_with(&self, cert: &Path, key: &Path) -> Arc<ClientConfig> {
        fts_trust::client_config(
            load_certificates(&self.path("ca.crt")).unwrap(),
            load_certificates(cert).unwrap(),
            load_private_key(key).unwrap(),
        )
        .unwrap()
    }

    pub fn client_config(&self, id: &str) -> Arc<ClientConfig> {
        self.client_config_with(&self.path(&format!("{id}.crt")), &self.path(&format!("{id}.key")))
    }
}

/// What the server saw on one connection.
#[derive(Debug)]
pub enum ServerSaw {
    /// The TLS handshake itself failed.
    HandshakeFailed(String),
    /// The handshake completed but `check_session` refused the session.
    Refused(SessionRefused, Option<HandshakeKind>),
    /// Accepted: the identity, the kind of handshake, and the byte echoed back.
    Accepted(ClientIdentity, Option<HandshakeKind>, u8),
}

/// One connection end to end: the server accepts, runs `check_session`, echoes one
/// byte; the client dials `server_name`, sends 42 and reads the echo.
pub async fn connect_once(
    server: Arc<ServerConfig>,
    client_auth: Arc<ClientAuth>,
    client: Arc<ClientConfig>,
    server_name: &str,
) -> (ServerSaw, Result<u8, String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_side = async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = match TlsAcceptor::from(server).accept(tcp).await {
            Ok(tls) => tls,
            Err(e) => return ServerSaw::HandshakeFailed(e.to_string()),
        };
        let conn = tls.get_ref().1;
        let kind = conn.handshake_kind();
        match client_auth.check_session(conn) {
            // Closed without reading a byte or sending a frame.
            Err(refused) => ServerSaw::Refused(refused, kind),
            Ok(identity) => {
                let mut byte = [0u8; 1];
                tls.read_exact(&mut byte).await.unwrap();
                tls.write_all(&byte).await.unwrap();
                tls.shutdown().await.unwrap();
                ServerSaw::Accepted(identity, kind, byte[0])
            }
        }
    };
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let client_side = async move {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client).connect(name, tcp).await.map_err(|e| e.to_string())?;
        tls.write_all(&[42]).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        // TLS 1.3: a refused client certificate shows up here, at the first read.
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        let mut rest = Vec::new();
        let _ = tls.read_to_end(&mut rest).await;
        Ok(byte[0])
    };
    tokio::time::timeout(Duration::from_secs(20), async { tokio::join!(server_side, client_side) })
        .await
        .expect("connection timed out")
}
