//! Where the status database is and how to reach it safely: [`DbSettings`] (the
//! `--status-db` URL, `--status-db-password-file`, `--status-db-ca`) made into a
//! [`Connector`], which opens connections.
//!
//! The rules, checked before anything connects:
//! - the password never stands in the URL (a URL shows in `ps`, unit files and logs):
//!   it comes from the password file, whose permissions must keep others out;
//! - TLS is required unless every host of the URL is a Unix socket or a loopback
//!   address: status names every host of the fleet and what it runs, and a receipt
//!   acknowledged over a connection someone can tamper with is evidence lost. TLS is
//!   rustls with ring, verifying the server against `--status-db-ca` (no system
//!   roots: a database's certificate is the operator's own). On loopback or a socket
//!   the URL may still ask for TLS with `sslmode=require`.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{DbError, Result};

/// How long a connection attempt may take when the URL does not say.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A password file larger than this is not one.
const MAX_PASSWORD_FILE: u64 = 4096;
/// A CA file larger than this is not one.
const MAX_CA_FILE: u64 = 1 << 20;

/// The status database as the command line names it.
#[derive(Debug, Clone)]
pub struct DbSettings {
    /// `--status-db`: a PostgreSQL URL (`postgresql://user@host:port/db`, or with
    /// `?host=/run/postgresql` for a Unix socket), without a password.
    pub url: String,
    /// `--status-db-password-file`: the password, alone in a file (a final newline is
    /// not part of it).
    pub password_file: Option<PathBuf>,
    /// `--status-db-ca`: the CA certificates (PEM) the database's certificate must
    /// chain to, for TLS.
    pub ca_file: Option<PathBuf>,
}

impl DbSettings {
    /// The URL for messages: a password in it (refused, but an operator may have put
    /// one there) shows as `***`.
    pub fn shown_url(&self) -> String {
        let url = &self.url;
        let Some(scheme_end) = url.find("://").map(|at| at + 3) else { return url.clone() };
        let authority_end = url[scheme_end..].find(['/', '?']).map_or(url.len(), |at| scheme_end + at);
        let authority = &url[scheme_end..authority_end];
        let Some(at) = authority.rfind('@') else { return url.clone() };
        let Some(colon) = authority[..at].find(':') else { return url.clone() };
        format!("{}{}:***{}", &url[..scheme_end], &authority[..colon], &url[scheme_end + at..])
    }
}

/// Opens connections to the status database as [`DbSettings`] say.
pub struct Connector {
    config: Config,
    tls: Option<MakeRustlsConnect>,
    /// Where it connects, for messages (no password).
    shown: String,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector").field("database", &self.shown).field("tls", &self.tls.is_some()).finish()
    }
}

impl Connector {
    /// Checks `settings` against the rules of the module and reads their files.
    pub fn new(settings: &DbSettings) -> Result<Connector> {
        let mut config: Config = settings.url.parse().map_err(|e| {
            DbError::Setting(format!(
                "--status-db is not a PostgreSQL URL ({e}); write it as postgresql://USER@HOST:PORT/DATABASE"
            ))
        })?;
        if config.get_password().is_some() {
            return Err(DbError::Setting(
                "--status-db carries a password: a URL shows in ps, unit files and logs; put the password \
                 alone in a file only fts can read and name it with --status-db-password-file"
                    .into(),
            ));
        }
        if config.get_hosts().is_empty() {
            return Err(DbError::Setting(
                "--status-db names no host: give HOST:PORT, or ?host=/path/of/the/socket/folder".into(),
            ));
        }
        if let Some(path) = &settings.password_file {
            config.password(read_password(path)?);
        }
        let local = is_local(&config);
        let wants_tls = config.get_ssl_mode() == SslMode::Require;
        let tls = if local && !wants_tls {
            config.ssl_mode(SslMode::Disable);
            None
        } else {
            let Some(ca) = &settings.ca_file else {
                let why = if local {
                    "the URL asks for TLS (sslmode=require)"
                } else {
                    "the database is not on a Unix socket or a loopback address, so TLS is required"
                };
                return Err(DbError::Setting(format!(
                    "{why}: name the CA certificate that issued the database's certificate with --status-db-ca FILE"
                )));
            };
            config.ssl_mode(SslMode::Require);
            Some(MakeRustlsConnect::new(tls_config(ca)?))
        };
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("fts");
        }
        let shown = shown(&config);
        Ok(Connector { config, tls, shown })
    }

    /// Where it connects (hosts, port, database; no password), for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Opens a connection; its driver task runs on the current tokio runtime until
    /// the connection closes.
    pub async fn connect(&self) -> Result<Client> {
        let what = "connect to the status database";
        let client = match &self.tls {
            None => {
                let (client, connection) =
                    self.config.connect(NoTls).await.map_err(DbError::postgres(what))?;
                tokio::spawn(drive(connection));
                client
            }
            Some(tls) => {
                let (client, connection) =
                    self.config.connect(tls.clone()).await.map_err(DbError::postgres(what))?;
                tokio::spawn(drive(connection));
                client
            }
        };
        Ok(client)
    }
}

/// Runs a connection until it closes; an error is the next query's to report.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %fts_proto::ErrorChain(&e), "a status database connection closed");
    }
}

/// Whether every host the config names is a Unix socket or a loopback address.
fn is_local(config: &Config) -> bool {
    let addresses_local = config.get_hostaddrs().iter().all(IpAddr::is_loopback);
    let hosts_local = config.get_hosts().iter().all(|host| match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    });
    // With `hostaddr`, the addresses are where it connects; the names only check TLS.
    if config.get_hostaddrs().is_empty() { hosts_local } else { addresses_local }
}

/// The password in `path`, which only its owner may read.
fn read_password(path: &Path) -> Result<String> {
    let file_error = |source| DbError::File { path: path.to_path_buf(), source };
    let bytes = fts_fs::read_bounded(path, MAX_PASSWORD_FILE).map_err(file_error)?;
    let mode = std::fs::metadata(path).map(|m| m.mode()).unwrap_or(0);
    if mode & 0o044 != 0 {
        return Err(DbError::Setting(format!(
            "the password file {} can be read by others (mode {:o}): chmod 600 it",
            path.display(),
            mode & 0o777
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| DbError::Setting(format!("the password file {} is not UTF-8 text", path.display())))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() || password.contains('\n') {
        return Err(DbError::Setting(format!(
            "the password file {} must hold the password alone, on one line",
            path.display()
        )));
    }
    Ok(password.to_owned())
}

/// A rustls client config (ring, TLS 1.2 and 1.3) trusting only the CAs in `ca`.
fn tls_config(ca: &Path) -> Result<rustls::ClientConfig> {
    let bytes = fts_fs::read_bounded(ca, MAX_CA_FILE)
        .map_err(|source| DbError::File { path: ca.to_path_buf(), source })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let cert = cert.map_err(|e| {
            DbError::Setting(format!("--status-db-ca {}: not PEM certificates ({e})", ca.display()))
        })?;
        roots.add(cert).map_err(|e| {
            DbError::Setting(format!(
                "--status-db-ca {}: a certificate rustls cannot use ({e})",
                ca.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(DbError::Setting(format!("--status-db-ca {} holds no certificate", ca.display())));
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| DbError::Setting(format!("TLS to the status database: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(config)
}

/// `user@host,host:port/database`, for messages.
fn shown(config: &Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{}:{}/{}",
        config.get_user().unwrap_or("-"),
        hosts.join(","),
        port,
        config.get_dbname().unwrap_or("-")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> DbSettings {
        DbSettings { url: url.into(), password_file: None, ca_file: None }
    }

    fn refused(url: &str) -> String {
        match Connector::new(&settings(url)) {
            Ok(_) => panic!("{url} was taken"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn loopback_and_sockets_go_without_tls() {
        for url in [
            "postgresql://fts@127.0.0.1:5432/fts",
            "postgresql://fts@localhost/fts",
            "postgresql://fts@[::1]:5433/fts",
            "postgresql://fts@%2Frun%2Fpostgresql/fts",
            "host=/tmp/pg user=fts dbname=fts",
        ] {
            let connector = Connector::new(&settings(url)).unwrap();
            assert!(connector.tls.is_none(), "{url}");
        }
    }

    #[test]
    fn a_remote_database_needs_tls_and_its_ca() {
        let message = refused("postgresql://fts@db.example.org/fts");
        assert!(message.contains("TLS is required") && message.contains("--status-db-ca"), "{message}");
        let message = refused("postgresql://fts@10.0.0.5/fts");
        assert!(message.contains("TLS is required"), "{message}");
        // A loopback hostaddr does not make a remote name local, nor the other way.
        let message = refused("host=db.example.org hostaddr=10.0.0.5 user=fts");
        assert!(message.contains("TLS is required"), "{message}");
        let message = refused("postgresql://fts@127.0.0.1/fts?sslmode=require");
        assert!(message.contains("sslmode=require"), "{message}");
    }

    #[test]
    fn a_password_in_the_url_never_shows() {
        assert_eq!(
            settings("postgresql://fts:hunter2@db:5432/fts").shown_url(),
            "postgresql://fts:***@db:5432/fts"
        );
        assert_eq!(
            settings("postgresql://fts@db/fts?x=a:b@c").shown_url(),
            "postgresql://fts@db/fts?x=a:b@c"
        );
        assert_eq!(settings("postgresql://db/fts").shown_url(), "postgresql://db/fts");
    }

    #[test]
    fn a_password_in_the_url_is_refused() {
        let message = refused("postgresql://fts:hunter2@127.0.0.1/fts");
        assert!(message.contains("--status-db-password-file"), "{message}");
        assert!(!message.contains("hunter2"), "the password is not repeated: {message}");
        assert!(refused("not a url at all").contains("not a PostgreSQL URL"));
    }

    #[test]
    fn the_password_file_must_be_private_and_one_line() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        let write = |text: &str, mode: u32| {
            let mut file = std::fs::File::create(&path).unwrap();
            std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        write("s3cret\n", 0o600);
        assert_eq!(read_password(&path).unwrap(), "s3cret");
        write("s3cret\n", 0o644);
        assert!(read_password(&path).unwrap_err().to_string().contains("chmod 600"));
        write("", 0o600);
        assert!(read_password(&path).unwrap_err().to_string().contains("alone, on one line"));
        write("one\ntwo\n", 0o600);
        assert!(read_password(&path).unwrap_err().to_string().contains("alone, on one line"));
        assert!(read_password(&dir.path().join("missing")).is_err());
    }
}
