//! A real PostgreSQL for tests, on loopback only.
//!
//! - [`database`]: a fresh, empty database of its own for one test, in the throwaway
//!   cluster `scripts/with-postgres.sh` started (it exports `FTS_TEST_POSTGRES`, the
//!   cluster's URL without a database, and `FTS_TEST_POSTGRES_PASSWORD_FILE`);
//!   dropped when the test ends.
//! - [`Cluster`]: a cluster of the test's own (a temp folder, a free loopback port),
//!   for tests that stop and start the database; stopped when dropped.
//!
//! Without PostgreSQL a test skips, saying so, unless `FTS_REQUIRE_POSTGRES` is set
//! (CI sets it): then it fails, so that CI never passes by skipping.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The env var naming the shared test cluster (`postgresql://USER@127.0.0.1:PORT`).
pub const CLUSTER_ENV: &str = "FTS_TEST_POSTGRES";
/// The env var naming its password file.
pub const PASSWORD_FILE_ENV: &str = "FTS_TEST_POSTGRES_PASSWORD_FILE";
/// Set under CI: a test that needs PostgreSQL fails instead of skipping.
pub const REQUIRE_ENV: &str = "FTS_REQUIRE_POSTGRES";
/// The superuser the clusters are made with.
const USER: &str = "fts";

/// Says why a test skips, or fails when PostgreSQL is required; `None` either way.
fn unavailable(test: &str, why: &str) -> Option<std::convert::Infallible> {
    if std::env::var_os(REQUIRE_ENV).is_some() {
        panic!("{test}: {REQUIRE_ENV} is set and {why}");
    }
    eprintln!("skipping {test}: {why} (run the tests under scripts/with-postgres.sh)");
    None
}

/// One test's database in the shared cluster.
#[derive(Debug)]
pub struct TestDb {
    /// Its URL (no password).
    pub url: String,
    /// The password file.
    pub password_file: PathBuf,
    cluster: String,
    name: String,
}

/// A fresh database for `test`, or `None` (said) when there is no test cluster.
pub fn database(test: &str) -> Option<TestDb> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let (Some(cluster), Some(password_file)) =
        (std::env::var(CLUSTER_ENV).ok(), std::env::var_os(PASSWORD_FILE_ENV).map(PathBuf::from))
    else {
        unavailable(test, &format!("{CLUSTER_ENV} is not set"))?;
        return None;
    };
    let name = format!("fts_t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let admin = format!("{cluster}/postgres");
    run_psql(&admin, &password_file, &format!("CREATE DATABASE {name}"));
    Some(TestDb { url: format!("{cluster}/{name}"), password_file, cluster, name })
}

impl TestDb {
    /// Runs `sql` in the database; returns what psql printed (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        run_psql(&self.url, &self.password_file, sql)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let admin = format!("{}/postgres", self.cluster);
        let _ = psql_command(
            &admin,
            &self.password_file,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .output();
    }
}

fn psql_command(url: &str, password_file: &Path, sql: &str) -> Command {
    let mut command = Command::new("psql");
    command.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql]);
    // psql reads the password from PGPASSWORD; the file stays the one place it is kept.
    let password = std::fs::read_to_string(password_file).unwrap_or_default();
    command.env("PGPASSWORD", password.trim_end());
    command
}

fn run_psql(url: &str, password_file: &Path, sql: &str) -> String {
    let output =
        psql_command(url, password_file, sql).output().unwrap_or_else(|e| panic!("cannot run psql: {e}"));
    assert!(output.status.success(), "psql {sql:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A PostgreSQL cluster of one test's own, on 127.0.0.1 and a free port.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    tls: bool,
}

impl Cluster {
    /// Makes and starts a cluster, or `None` (said) when PostgreSQL is not installed.
    pub fn start(test: &str) -> Option<Cluster> {
        Cluster::make(test, false)
    }

    /// [`Cluster::start`], serving TLS too, with a certificate for 127.0.0.1 issued by
    /// a CA of its own ([`Cluster::tls_ca`]), both made by `openssl`.
    pub fn start_with_tls(test: &str) -> Option<Cluster> {
        Cluster::make(test, true)
    }

    /// The CA certificate that issued the cluster's TLS certificate, PEM.
    pub fn tls_ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn make(test: &str, tls: bool) -> Option<Cluster> {
        let Some(bin) = postgres_bin() else {
            unavailable(test, "PostgreSQL's initdb is not installed")?;
            return None;
        };
        // initdb refuses root: as root, the cluster belongs to the postgres user.
        let as_postgres = rustix_is_root();
        let dir =
            tempfile::Builder::new().prefix("fts-pg-").tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let password_file = dir.path().join("password");
        crate::write_private(&password_file, b"fts-test-password\n");
        let initdb_password = dir.path().join("initdb-password");
        crate::write_private(&initdb_password, b"fts-test-password\n");
        if as_postgres {
            for path in [dir.path(), &initdb_password] {
                let status = Command::new("chown").args(["postgres:postgres"]).arg(path).status();
                assert!(status.is_ok_and(|s| s.success()), "cannot chown {} to postgres", path.display());
            }
        }
        if tls {
            make_tls_files(dir.path());
            if as_postgres {
                let (key, cert) = (dir.path().join("server.key"), dir.path().join("server.crt"));
                let status = Command::new("chown").args(["postgres:postgres"]).arg(&key).arg(&cert).status();
                assert!(status.is_ok_and(|s| s.success()), "cannot chown the TLS files to postgres");
            }
        }
        let cluster = Cluster { dir, bin, port: free_port(), as_postgres, tls };
        let data = cluster.data();
        let mut initdb = cluster.command("initdb");
        initdb.arg("-D").arg(&data).args(["-U", USER, "--auth=scram-sha-256", "-E", "UTF8", "--locale=C"]);
        initdb.arg(format!("--pwfile={}", initdb_password.display()));
        check(initdb.output(), "initdb");
        cluster.start_again();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    /// Starts the cluster (again), waiting until it takes connections.
    pub fn start_again(&self) {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=50",
            self.port,
            self.dir.path().display()
        );
        if self.tls {
            let dir = self.dir.path().display();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key"
            ));
        }
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-o", &options, "start"]);
        check(pg_ctl.output(), "pg_ctl start");
    }

    /// Stops the cluster (fast: open connections are closed).
    pub fn stop(&self) {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data()).args(["-w", "-m", "fast", "stop"]);
        check(pg_ctl.output(), "pg_ctl stop");
    }

    /// The URL of its `postgres` database (no password).
    pub fn url(&self) -> String {
        format!("postgresql://{USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Its password file.
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl.arg("-D").arg(self.data()).args(["-w", "-m", "immediate", "stop"]);
        let _ = pg_ctl.output();
    }
}

/// A CA (`ca.crt`) and a server certificate for 127.0.0.1 it issued (`server.crt`,
/// `server.key`) in `dir`, by `openssl`.
fn make_tls_files(dir: &Path) {
    // `args` split at spaces; `subject` (with its spaces) after `-subj`.
    let openssl = |args: &str, subject: &str| {
        let mut command = Command::new("openssl");
        command.current_dir(dir).args(args.split(' '));
        if !subject.is_empty() {
            command.args(["-subj", subject]);
        }
        check(command.output(), &format!("openssl {args}"));
    };
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2";
    openssl(&format!("req -x509 {ec} -keyout ca.key -out ca.crt"), "/CN=fts test database CA");
    openssl(&format!("req {ec} -keyout server.key -out server.csr"), "/CN=127.0.0.1");
    crate::write_private(
        &dir.join("server.ext"),
        b"subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n",
    );
    openssl(
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt",
        "",
    );
}

fn check(output: std::io::Result<Output>, what: &str) {
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => panic!("cannot run {what}: {e}"),
    }
}

/// The folder of PostgreSQL's server programs (Debian: /usr/lib/postgresql/N/bin,
/// the newest N), or `FTS_POSTGRES_BIN`.
fn postgres_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("FTS_POSTGRES_BIN") {
        return Some(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn rustix_is_root() -> bool {
    // `id -u` rather than a libc call: the testkit stays free of unsafe code.
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
