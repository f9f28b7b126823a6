//! The in-process harness of the fts-net tests: a [`World`] of generated credentials
//! (made by fts-trust's keygen functions, as `fts keygen` makes them), a store with
//! entries published and signed by a generated key (fts-store, as `fts publish` does),
//! the real [`Server`] started on 127.0.0.1:0 ([`World::start`]) or fed one stream
//! ([`Server::serve_connection`]), and the real [`Client`] polling it.
//!
//! Only the public API of the crates is used: what a test does here, an embedder
//! could do. Over 127.0.0.1 tests run on the wall clock; the timing tests drive
//! `serve_connection` over `tokio::io::duplex` on paused time instead.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fts_net::client::{Client, ClientSettings, ClientTransport};
use fts_net::metrics::Metrics;
use fts_net::server::{Server, ServerSettings, Transport};
use fts_proto::{ClientId, FileName, GroupName, Target};
use fts_status::StatusDir;
use fts_store::{Entry, Store, StoreReader};
use fts_trust::keygen::{self, CaOptions, ClientOptions, ServerOptions, SigningOptions};
use fts_trust::pem::{load_certificates, load_private_key};
use fts_trust::{ClientAuth, SigningKey, TrustedKeys};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The peer address `serve_connection` is told for streams that have none.
pub const PIPE_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

/// One test's credentials, store and status folder, in a temporary folder.
pub struct World {
    pub dir: tempfile::TempDir,
    signing: SigningKey,
}

impl World {
    /// A CA, a server certificate for `localhost` and `127.0.0.1`, a signing key, and
    /// one client certificate per `(id, groups)`, all in `certs/`; an empty store.
    pub fn new(clients: &[(&str, &[&str])]) -> World {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let certs = dir.path().join("certs");
        keygen::ca(&CaOptions { dir: certs.clone(), days: 30, force: false }).expect("keygen ca");
        keygen::server(&ServerOptions {
            dir: certs.clone(),
            names: vec!["localhost".into(), "127.0.0.1".into()],
            days: 30,
            force: false,
        })
        .expect("keygen server");
        let written = keygen::signing(&SigningOptions { dir: certs.clone(), log_origin: None, force: false })
            .expect("keygen signing");
        let signing = SigningKey::load(&written.key_path).expect("the signing key just written");
        let world = World { dir, signing };
        for (id, groups) in clients {
            world.issue_client(&certs, id, groups);
        }
        Store::open_or_create(world.store_dir()).expect("create the store");
        world
    }

    fn issue_client(&self, certs: &Path, id: &str, groups: &[&str]) {
        keygen::client(&ClientOptions {
            dir: certs.to_owned(),
            id: client_id(id),
            groups: groups.iter().map(|g| GroupName::parse(g).expect("a group name")).collect(),
            days: 30,
            force: false,
        })
        .expect("keygen client");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn certs(&self) -> PathBuf {
        self.path().join("certs")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.path().join("store")
    }

    pub fn status_dir(&self) -> PathBuf {
        self.path().join("status")
    }

    /// Publishes `contents` as `name` to `targets` (`all`, `group:G`, an id), signed by
    /// the world's key.
    pub fn publish(&self, name: &str, contents: &[u8], targets: &[&str]) -> Vec<Entry> {
        let source = self.path().join("outbox").join(name);
        std::fs::create_dir_all(source.parent().expect("outbox")).expect("create outbox");
        std::fs::write(&source, contents).expect("write the file to publish");
        let targets: Vec<Target> = targets.iter().map(|t| t.parse().expect("a target")).collect();
        let store = Store::open_or_create(self.store_dir()).expect("open the store");
        store
            .publish(&source, &FileName::parse(name).expect("a file name"), &targets, &self.signing)
            .expect("publish")
    }

    /// Revokes every certificate of `id` and writes the CA's CRL (`certs/ca.crl`).
    pub fn revoke(&self, id: &str) {
        fts_trust::revocation::revoke(&fts_trust::revocation::RevokeOptions {
            dir: self.certs(),
            id: client_id(id),
            crl_days: 7,
        })
        .expect("revoke");
    }

    /// The client-certificate check of the server: the CA, and its CRL once one is
    /// written.
    pub fn client_auth(&self) -> Arc<ClientAuth> {
        let crl = self.certs().join(fts_trust::crl::CRL_FILE);
        let crl = crl.exists().then_some(crl);
        ClientAuth::from_files(&self.certs().join(keygen::CA_CERT_FILE), crl.as_deref()).expect("client auth")
    }

    /// Mutual TLS with the server's certificate, as `fts serve` sets it up.
    pub fn tls(&self) -> Transport {
        let certs = self.certs();
        let chain = load_certificates(&certs.join(keygen::SERVER_CERT_FILE)).expect("server.crt");
        let key = load_private_key(&certs.join(keygen::SERVER_KEY_FILE)).expect("server.key");
        let client_auth = self.client_auth();
        let config = fts_trust::server_config(chain, key, Arc::clone(&client_auth)).expect("server config");
        Transport::Tls { acceptor: TlsAcceptor::from(config), client_auth }
    }

    /// A bound server over this world's store and status folder (not running yet).
    pub async fn bind(&self, transport: Transport, settings: ServerSettings) -> Server {
        let store = StoreReader::open(self.store_dir()).expect("open the store read-only");
        let status = StatusDir::open_or_create(self.status_dir()).expect("the status folder");
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        Server::bind(addr, transport, settings, store, Arc::new(status), Arc::new(Metrics::new()))
            .await
            .expect("bind 127.0.0.1:0")
    }

    /// [`World::bind`], then [`Server::run`] on a task until the returned
    /// [`Running`] is stopped or dropped.
    pub async fn start(&self, transport: Transport, settings: ServerSettings) -> Running {
        let server = self.bind(transport, settings).await;
        let addr = server.local_addr().expect("the listening address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Running { addr, stop: Some(stop), task }
    }

    /// The TLS client configuration of `id` (its certificate and key from `certs/`).
    pub fn client_config(&self, id: &str) -> Arc<rustls::ClientConfig> {
        self.client_config_from(&self.certs(), id)
    }

    fn client_config_from(&self, certs: &Path, id: &str) -> Arc<rustls::ClientConfig> {
        let roots = load_certificates(&self.certs().join(keygen::CA_CERT_FILE)).expect("ca.crt");
        let chain = load_certificates(&certs.join(format!("{id}.crt"))).expect("the client certificate");
        let key = load_private_key(&certs.join(format!("{id}.key"))).expect("the client key");
        fts_trust::client_config(roots, chain, key).expect("client config")
    }

    /// The real client of `id` against `addr`, with its certificate, into `in-<id>/`.
    pub fn client(&self, id: &str, addr: SocketAddr) -> Client {
        self.client_as(id, id, addr)
    }

    /// [`World::client`] holding the certificate of `cert_id` but claiming `id`.
    pub fn client_as(&self, id: &str, cert_id: &str, addr: SocketAddr) -> Client {
        let config = self.client_config(cert_id);
        let cert = load_certificates(&self.certs().join(format!("{cert_id}.crt"))).expect("the certificate");
        let name = fts_trust::tls::server_name("localhost").expect("a server name");
        let transport = ClientTransport::tls(config, name, &cert[0]);
        self.client_over(id, transport, &format!("localhost:{}", addr.port()))
    }

    /// A client of `id` whose certificate comes from another CA (same names, other
    /// keys): the server has never heard of it.
    pub fn stranger(&self, id: &str, addr: SocketAddr) -> Client {
        let other = self.path().join("other-ca");
        keygen::ca(&CaOptions { dir: other.clone(), days: 30, force: false }).expect("keygen ca");
        self.issue_client(&other, id, &[]);
        let config = self.client_config_from(&other, id);
        let cert = load_certificates(&other.join(format!("{id}.crt"))).expect("the certificate");
        let name = fts_trust::tls::server_name("localhost").expect("a server name");
        self.client_over(
            id,
            ClientTransport::tls(config, name, &cert[0]),
            &format!("localhost:{}", addr.port()),
        )
    }

    /// A plaintext client of `id` (for `serve_connection` over a pipe).
    pub fn plaintext_client(&self, id: &str) -> Client {
        self.client_over(id, ClientTransport::Plaintext, "127.0.0.1:9")
    }

    fn client_over(&self, id: &str, transport: ClientTransport, server: &str) -> Client {
        let mut trusted = TrustedKeys::default();
        trusted.insert(self.signing.public_key(), Path::new("signing.pub")).expect("trust the key");
        let cid = client_id(id);
        let dest = self.dest(id);
        let settings = ClientSettings {
            receipt_signer: None,
            next_poll_within: 60,
            reboot_required_file: None,
            failover: Default::default(),
            server: server.to_owned(),
            transport,
            id: cid.clone(),
            targets: vec![Target::Client(cid), Target::All],
            trusted,
            state_path: dest.join(".fts-state.json"),
            dest,
            max_file_size: 1 << 30,
            read_timeout: Duration::from_secs(10),
            poll_timeout: Duration::from_secs(60),
            max_frames: 1000,
            hook: None,
            exec_withdrawn: None,
            hook_retries: 5,
            hold_on_hook_failure: false,
            retry_base: std::time::Duration::from_secs(10),
            min_free_percent: 5,
            max_rate: None,
            log: fts_net::client::freshness::LogSettings::default(),
        };
        Client::open(settings, false).expect("open the client")
    }

    /// Where the client of `id` installs.
    pub fn dest(&self, id: &str) -> PathBuf {
        self.path().join(format!("in-{id}"))
    }

    /// The delivery status the server wrote for `id`.
    pub fn status_of(&self, id: &str) -> Option<fts_status::ClientStatus> {
        StatusDir::open(self.status_dir()).read(&client_id(id)).expect("read the status")
    }

    /// A raw TLS connection as `id` to `addr`, past its handshake: for tests that hold
    /// a poll open or send what the real client never would.
    pub async fn raw_tls(
        &self,
        id: &str,
        addr: SocketAddr,
    ) -> fts_net::Connection<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = fts_trust::tls::server_name("localhost").expect("a server name");
        let tls = TlsConnector::from(self.client_config(id)).connect(name, tcp).await.expect("tls handshake");
        fts_net::Connection::client(tls)
    }
}

/// A server running on a task; [`Running::stop`] shuts it down (also on drop).
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Asks the server to stop and waits until `run` returned (after its grace).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("the server task");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn client_id(id: &str) -> ClientId {
    ClientId::parse(id).expect("a client id")
}

/// Bytes that do not repeat with a short period, so a misplaced chunk is seen.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
