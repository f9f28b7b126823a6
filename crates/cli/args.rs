//! The raw command line, as clap sees it (ripgrep's "low args"): every flag with its
//! default, each value already parsed into its type (ids, targets, groups, file
//! names, durations, sizes, limits of at least one), and nothing derived from other
//! flags yet. [`crate::config`] layers the config file in before the one parse
//! ([`crate::config::parse_layered`]) and resolves these into each command's settings;
//! the command modules read only those.
//!
//! Keep flag names as they are: users, scripts, config files (keys named like the long
//! flags) and `FTS_*` environment variables all depend on them. Every flag is long
//! only: the config layering looks for `--NAME` on the command line.

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use fts_net::admission::IpNet;
use fts_proto::{ClientId, FileName, GroupName, Origin, Target};
use fts_store::Note;

use crate::units::{
    PositiveDuration, Rate, Size, parse_at_least_one, parse_duration, parse_max_rate, parse_percent,
    parse_rate, parse_size,
};

#[derive(Debug, Parser)]
#[command(
    name = "fts",
    version,
    about = "Signed file distribution to fleets of hosts that pull over mutual TLS",
    long_about = "Signed file distribution to fleets of hosts that pull over mutual TLS.\n\n\
        Every flag can also be set by an environment variable FTS_<FLAG> (upper case, dashes \
        as underscores) or in the TOML file named by --config, in the section of its command \
        ([keygen], [publish], [serve], [poll], [status], [log], [verify-installed]) with keys \
        named like the long flags; verify-installed also takes state and trust from [poll]. \
        The global flags (--log-format) may also stand at the top of the file, before any \
        section, for every command. Durations and sizes in the file are strings with a unit \
        (interval = \"5s\", max-file-size = \"1GiB\"). Precedence: flag, then environment, \
        then config file, then default.",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Read settings from this TOML file (no file is read unless named)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log line format
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Provision credentials: CA, server and client certificates, signing keys, CRLs
    #[command(subcommand)]
    Keygen(KeygenCommand),
    /// Sign a file for one or more targets and add it to the store
    Publish(PublishArgs),
    /// Serve the store to hosts over mutual TLS
    Serve(ServeArgs),
    /// Fetch, verify and install what was published for this host
    Poll(PollArgs),
    /// Show what each host has applied and the problems it reported
    Status(StatusArgs),
    /// Look after the PostgreSQL status database that several servers share
    /// (`--status-db`)
    #[command(subcommand)]
    StatusDb(StatusDbCommand),
    /// List the store's entries in publish order, with their notes and publishers;
    /// `fts log init` and `fts log verify` look after the store's Merkle log
    Log(LogArgs),
    /// Withdraw a published entry: hosts that have not installed it never will (on the
    /// signing host; a signed log leaf)
    Withdraw(WithdrawArgs),
    /// Remove the blobs only superseded or withdrawn entries name, and those crashed
    /// publishes left over an hour ago (on the signing host; the journal and the log
    /// keep every statement)
    Gc(GcArgs),
    /// Run the timestamp signer: cosign the store's newest checkpoint within seconds of
    /// its appearing, and again every --every (on a machine of its own)
    Timestamp(TimestampArgs),
    /// On a host: check an installed file against the signed statement recorded when it
    /// was installed (exit 0: it is that file, 3: it is not)
    VerifyInstalled(VerifyInstalledArgs),
    /// Print a shell completion script (e.g. `fts completions bash > /etc/bash_completion.d/fts`)
    Completions(CompletionsArgs),
}

#[derive(Debug, Subcommand)]
pub enum StatusDbCommand {
    /// Create the tables, or bring them to this fts's schema, in one transaction under
    /// an advisory lock (run once per upgrade, after every server is upgraded)
    Migrate(StatusDbMigrateArgs),
    /// Copy a status folder (hosts, receipt log, certificates) into a migrated database
    /// that knows no host yet: from one server with files to several with PostgreSQL
    Import(StatusDbImportArgs),
}

#[derive(Debug, Args)]
pub struct StatusDbImportArgs {
    /// The status folder to copy (as `fts serve --status-dir` left it)
    #[arg(long, value_name = "DIR", default_value = "status")]
    pub status_dir: PathBuf,

    #[command(flatten)]
    pub db: StatusDbArgs,
}

#[derive(Debug, Args)]
pub struct StatusDbMigrateArgs {
    #[command(flatten)]
    pub db: StatusDbArgs,
}

/// The PostgreSQL status database, for `fts serve`, `fts status` and `fts status-db`.
#[derive(Debug, Clone, Args)]
pub struct StatusDbArgs {
    /// Keep delivery status in PostgreSQL instead of --status-dir, so that several
    /// servers share one fleet view: postgresql://USER@HOST:PORT/DATABASE (a socket:
    /// postgresql://USER@%2Frun%2Fpostgresql/DATABASE). No password in it; TLS is
    /// required unless it is a Unix socket or a loopback address
    #[arg(long, value_name = "URL")]
    pub status_db: Option<String>,

    /// The status database's password, alone in a file only this user can read
    #[arg(long, value_name = "FILE", requires = "status_db")]
    pub status_db_password_file: Option<PathBuf>,

    /// The CA certificate(s) (PEM) the status database's TLS certificate must chain to
    #[arg(long, value_name = "FILE", requires = "status_db")]
    pub status_db_ca: Option<PathBuf>,
}

impl StatusDbArgs {
    /// The database settings, when --status-db is given.
    pub fn settings(&self) -> Option<fts_status_db::DbSettings> {
        Some(fts_status_db::DbSettings {
            url: self.status_db.clone()?,
            password_file: self.status_db_password_file.clone(),
            ca_file: self.status_db_ca.clone(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum KeygenCommand {
    /// Create the CA that signs client and server certificates (ca.crt, ca.key)
    Ca(KeygenCaArgs),
    /// Create the server's certificate and key (server.crt, server.key)
    Server(KeygenServerArgs),
    /// Create a client certificate and key (<ID>.crt, <ID>.key) for a host
    Client(KeygenClientArgs),
    /// Create the release signing key pair and its log's name (signing.key, signing.pub,
    /// log-origin)
    Signing(KeygenSigningArgs),
    /// Create the timestamp signer's key pair (timestamp.key, timestamp.pub), which
    /// cosigns the log's checkpoints
    Timestamp(KeygenTimestampArgs),
    /// On a host: create its key and a certificate signing request (<ID>.key, <ID>.csr)
    Csr(KeygenCsrArgs),
    /// On the CA host: issue a client certificate (<ID>.crt) for a CSR, with the
    /// signer's own profile; everything else the CSR asks for is ignored
    Sign(KeygenSignArgs),
    /// Revoke every certificate ever issued for a client id and write a new ca.crl
    Revoke(KeygenRevokeArgs),
    /// Re-sign ca.crl with a fresh next-update time (run it from a timer)
    Crl(KeygenCrlArgs),
    /// Rotate the release key to the pre-committed next key (next.key), in the store's
    /// log: hosts follow without a new signing.pub
    Rotate(KeygenRotateArgs),
    /// Create the keys that seal TLS session tickets (ticket.key), to give every server
    /// behind one load balancer as `fts serve --ticket-key`; --rotate rotates them
    TicketKey(KeygenTicketKeyArgs),
}

#[derive(Debug, Args)]
pub struct KeygenTicketKeyArgs {
    #[command(flatten)]
    pub dir: KeygenDir,

    /// Rotate the existing ticket.key in place (the next key seals, the sealing key
    /// only opens, the one before is dropped): then copy it to every server and send
    /// each SIGHUP. With --force: even within 12 hours of the last rotation
    #[arg(long)]
    pub rotate: bool,
}

#[derive(Debug, Args)]
pub struct KeygenRotateArgs {
    /// The folder of signing.key, signing.pub and (unless --next-key) next.key
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub dir: PathBuf,

    /// The next key, where it is kept offline [default: DIR/next.key]
    #[arg(long, value_name = "FILE")]
    pub next_key: Option<PathBuf>,

    /// The store folder
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// The current key is stolen or lost: sign the rotation with the next key alone
    #[arg(long)]
    pub recovery: bool,
}

#[derive(Debug, Args)]
pub struct KeygenDir {
    /// Folder the credentials are read from and written to
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub dir: PathBuf,

    /// Overwrite existing files
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct KeygenCaArgs {
    #[command(flatten)]
    pub dir: KeygenDir,

    /// Validity of the CA certificate, in days
    #[arg(long, value_name = "DAYS", default_value_t = 3650)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct KeygenServerArgs {
    #[command(flatten)]
    pub dir: KeygenDir,

    /// A DNS name or IP address clients dial (repeatable, at least one); each becomes a
    /// SAN
    #[arg(long = "name", value_name = "NAME", required = true)]
    pub names: Vec<String>,

    /// Validity of the certificate, in days
    #[arg(long, value_name = "DAYS", default_value_t = 397)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct KeygenClientArgs {
    #[command(flatten)]
    pub dir: KeygenDir,

    /// The host's client id (the certificate's CN)
    #[arg(long, value_name = "ID", required = true)]
    pub id: ClientId,

    /// A group the host belongs to (repeatable); each becomes an O value
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<GroupName>,

    /// Validity of the certificate, in days
    #[arg(long, value_name = "DAYS", default_value_t = 397)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct KeygenSigningArgs {
    #[command(flatten)]
    pub dir: KeygenDir,

    /// The name of the log whose checkpoints the key signs, written to log-origin:
    /// printable ASCII without spaces or `+`, with a `/`, not starting with `fts-`
    /// [default: fts.local/ and 16 random hex digits]
    #[arg(long, value_name = "ORIGIN")]
    pub log_origin: Option<Origin>,
}

#[derive(Debug, Args)]
pub struct KeygenTimestampArgs {
    #[command(flatten)]
    pub dir: KeygenDir,
}

#[derive(Debug, Args)]
pub struct KeygenCsrArgs {
    #[command(flatten)]
    pub dir: KeygenDir,

    /// The host's client id (the CSR's CN)
    #[arg(long, value_name = "ID", required = true)]
    pub id: ClientId,
}

#[derive(Debug, Args)]
pub struct KeygenSignArgs {
    #[command(flatten)]
    pub dir: KeygenDir,

    /// The certificate signing request (PEM), as `fts keygen csr` wrote it
    #[arg(value_name = "FILE.csr")]
    pub csr: PathBuf,

    /// A group the host belongs to (repeatable); each becomes an O value. Groups the
    /// CSR asks for are ignored
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<GroupName>,

    /// Validity of the certificate, in days
    #[arg(long, value_name = "DAYS", default_value_t = 397)]
    pub days: u32,
}

/// The CA folder and the CRL's lifetime, for `revoke` and `crl` (which never need
/// `--force`: ca.crl is always replaced).
#[derive(Debug, Args)]
pub struct KeygenCrlDir {
    /// Folder of the CA, its issued index, revoked list and ca.crl
    #[arg(long, value_name = "DIR", default_value = "certs")]
    pub dir: PathBuf,

    /// Days until the CRL's next-update time; renew it before then with `fts keygen crl`
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub crl_days: u32,
}

#[derive(Debug, Args)]
pub struct KeygenRevokeArgs {
    #[command(flatten)]
    pub crl: KeygenCrlDir,

    /// The client id whose certificates are all revoked
    #[arg(value_name = "ID")]
    pub id: ClientId,
}

#[derive(Debug, Args)]
pub struct KeygenCrlArgs {
    #[command(flatten)]
    pub crl: KeygenCrlDir,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The file to publish
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Who receives it: a client id, `all`, or `group:NAME` (repeatable, at least one)
    #[arg(long = "to", value_name = "TARGET", required = true)]
    pub targets: Vec<Target>,

    /// The file name on the hosts (default: the file's own name)
    #[arg(long = "as", value_name = "NAME")]
    pub name: Option<FileName>,

    /// The store folder
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// The release signing key
    #[arg(long, value_name = "FILE", default_value = "certs/signing.key")]
    pub signing_key: PathBuf,

    /// The CA folder whose issued.tsv lists the client ids and groups a target may
    /// name (default: the folder of --signing-key)
    #[arg(long, value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,

    /// More targets that reach hosts, one per line (for certificates made outside fts)
    #[arg(long, value_name = "FILE")]
    pub known_targets: Option<PathBuf>,

    /// Publish to a target that no issued certificate has (it reaches no host yet)
    #[arg(long)]
    pub allow_unknown_target: bool,

    /// Say what would be published where (each target's seq, the file's size and hash,
    /// the key id) after every check a publish makes, without signing or writing anything
    #[arg(long)]
    pub dry_run: bool,

    /// A note kept in the store with the entries, beside the user and host that
    /// published (not signed, never sent to hosts; `fts log` shows it): one line of
    /// printable text, at most 1000 bytes
    #[arg(long, value_name = "TEXT")]
    pub note: Option<Note>,

    /// The log's name, for a store that has no log yet (default: the log-origin file
    /// beside the signing key, made if missing); a store with a log keeps its own
    #[arg(long, value_name = "ORIGIN")]
    pub log_origin: Option<fts_proto::checkpoint::Origin>,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    /// The target of the entry to withdraw
    #[arg(long, value_name = "TARGET")]
    pub target: Target,

    /// Its seq (`fts log --target TARGET` lists them)
    #[arg(long, value_name = "N")]
    pub seq: fts_proto::Seq,

    /// Why, signed with the withdrawal and reported by hosts: one line, at most 200 bytes
    #[arg(long, value_name = "TEXT", default_value = "", value_parser = parse_withdraw_reason)]
    pub reason: fts_proto::WithdrawReason,

    /// Also publish the newest earlier version of the same file name on that target
    /// again, as a new entry, so that no host is left with neither version
    #[arg(long)]
    pub restore_previous: bool,

    /// The store folder
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// The release signing key
    #[arg(long, value_name = "FILE", default_value = "certs/signing.key")]
    pub signing_key: PathBuf,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Keep the content of this many newest versions of each file on each target that
    /// are not withdrawn (1: only what is current)
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_at_least_one::<NonZeroUsize>)]
    pub keep: NonZeroUsize,

    /// List the blobs that would be removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,

    /// The store folder
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,
}

fn parse_withdraw_reason(text: &str) -> Result<fts_proto::WithdrawReason, String> {
    fts_proto::WithdrawReason::parse(text)
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:6543")]
    pub listen: SocketAddr,

    /// The store folder (opened read-only)
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// Folder where delivery status is written (outside the store); with --status-db
    /// it keeps only this server's own state (the CRL numbers in force)
    #[arg(long, value_name = "DIR", default_value = "status")]
    pub status_dir: PathBuf,

    #[command(flatten)]
    pub db: StatusDbArgs,

    /// How often the last poll times of polls that changed nothing else are written to
    /// the status folder (any other change is written at once)
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = PositiveDuration)]
    pub status_interval: Duration,

    /// How often the fleet gauges of /metrics (hosts per release and state, silent
    /// hosts, alarms) are computed from every host's status (with --metrics-listen)
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = PositiveDuration)]
    pub fleet_metrics_interval: Duration,

    /// Serve over mutual TLS. It is the default, so this flag changes nothing: it is
    /// there to say so in a unit file or script, and it refuses --plaintext
    #[arg(long, conflicts_with = "plaintext")]
    pub tls: bool,

    /// Serve without TLS (lab use only; see docs/PROTOCOL.md section 1)
    #[arg(long)]
    pub plaintext: bool,

    /// With --plaintext, allow a non-loopback listen address
    #[arg(long, requires = "plaintext")]
    pub allow_insecure_remote: bool,

    /// The server's certificate chain
    #[arg(long, value_name = "FILE", default_value = "certs/server.crt")]
    pub cert: PathBuf,

    /// The server's private key
    #[arg(long, value_name = "FILE", default_value = "certs/server.key")]
    pub key: PathBuf,

    /// CA certificate(s) that client certificates must chain to
    #[arg(long, value_name = "FILE", default_value = "certs/ca.crt")]
    pub client_ca: PathBuf,

    /// Certificate revocation list (default: ca.crl beside --client-ca, when present)
    #[arg(long, value_name = "FILE")]
    pub crl: Option<PathBuf>,

    /// Refuse polls (with an `internal` error) once a changed CRL has failed to load for
    /// longer than this, rather than keep serving with the previous CRL. Off unless given
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, conflicts_with = "plaintext")]
    pub crl_max_stale: Option<Duration>,

    /// Accept the CRL loaded at start even if its CRL number is lower than the one in
    /// force from the same CA (a deliberate rollback); later reloads are held to the
    /// rule again. Put the older ca.crl in place first; remove the flag afterwards
    #[arg(long, conflicts_with = "plaintext")]
    pub accept_older_crl: bool,

    /// Seal TLS session tickets with the keys of FILE (`fts keygen ticket-key`): the
    /// same file on every server behind one load balancer lets a host the balancer
    /// moves still resume its session. SIGHUP reloads it. Without it, tickets are
    /// sealed with a random key of this process
    #[arg(long, value_name = "FILE", conflicts_with = "plaintext")]
    pub ticket_key: Option<PathBuf>,

    /// How long transfers in flight may take to finish after SIGINT/SIGTERM
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Most connections open at once. Connections before their TLS handshake get at
    /// most 90 % of them: the rest is kept for sources that completed a handshake in
    /// the last two hours [default:
    /// 10000, lowered to fit the open-file limit; a value given that does not fit is
    /// refused]
    #[arg(long, value_name = "N", value_parser = parse_at_least_one::<NonZeroUsize>)]
    pub max_connections: Option<NonZeroUsize>,

    /// Most connections before their TLS handshake from one source (an IPv4 address or
    /// an IPv6 /64); more are closed at once. --trusted-proxy sources are not limited
    #[arg(long, value_name = "N", default_value = "64", value_parser = parse_at_least_one::<NonZeroU32>)]
    pub max_handshakes_per_ip: NonZeroU32,

    /// Most new connections per second from one source, with bursts of as many; more
    /// are closed at once. The default leaves room for 50,000 hosts behind one NAT
    /// polling every minute. --trusted-proxy sources are not limited
    #[arg(long, value_name = "N", default_value = "2000", value_parser = parse_at_least_one::<NonZeroU32>)]
    pub max_connection_rate_per_ip: NonZeroU32,

    /// Time a new connection has to send its first byte (at most --handshake-timeout)
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = PositiveDuration)]
    pub first_byte_timeout: Duration,

    /// A load balancer or NAT gateway, as an address or CIDR network (repeatable, or
    /// comma-separated): its connections are not limited per source. With
    /// --proxy-protocol, the client address comes from its PROXY header
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// Read a PROXY protocol header (v2, or the v1 line of nginx) at the start of every
    /// connection from a --trusted-proxy (refused without one); its client address is
    /// then the one limited, logged and recorded. A PROXY header from any other source
    /// is refused
    #[arg(long, requires = "trusted_proxies")]
    pub proxy_protocol: bool,

    /// Most polls served at once; beyond it clients get `busy` [default: 2000, lowered
    /// to fit the open-file limit; a value given that does not fit is refused]
    #[arg(long, value_name = "N", value_parser = parse_at_least_one::<NonZeroUsize>)]
    pub max_active_polls: Option<NonZeroUsize>,

    /// Most polls served at once for one client id; beyond it `busy`
    #[arg(long, value_name = "N", default_value = "2", value_parser = parse_at_least_one::<NonZeroUsize>)]
    pub max_polls_per_client: NonZeroUsize,

    /// Time allowed from accept to the end of the TLS handshake (a PROXY header and the
    /// first byte included)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Time allowed for the client to send its request
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Slowest accepted average send rate, in bytes per second
    #[arg(long, value_name = "SIZE", default_value = "16KiB", value_parser = parse_size)]
    pub min_send_rate: Size,

    /// Window over which the send rate is averaged
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub min_send_rate_window: Duration,

    /// Most body bytes sent per second in all, across every connection (e.g. 1GiB/s).
    /// An answer with files is admitted only while every transfer keeps
    /// --min-send-rate: (transfers + 1) x --min-send-rate <= this; else the poll gets
    /// `busy` with a retry-after. At least --min-send-rate. Off unless given
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub max_send_rate: Option<Rate>,

    /// Longest a single poll may take
    #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = parse_duration)]
    pub poll_deadline: Duration,

    /// Most files sent in one poll (at least one entry always goes through)
    #[arg(long, value_name = "N", default_value = "100", value_parser = parse_at_least_one::<NonZeroUsize>)]
    pub poll_max_files: NonZeroUsize,

    /// Most bytes sent in one poll (at least one entry always goes through)
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = parse_size)]
    pub poll_max_bytes: Size,

    /// The poll interval advised to clients (`poll-after`)
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub poll_after: Duration,

    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP, no authentication:
    /// pick a loopback or management address). Off unless given
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct PollArgs {
    /// The server to poll, as HOST:PORT; HOST is checked against its certificate.
    /// Repeatable: the host fails over to the next when one cannot be reached, refuses
    /// it, is behind what it verified, or is stale; it starts with the last that answered
    #[arg(long, value_name = "HOST:PORT", required = true)]
    pub server: Vec<ServerAddress>,

    /// The order several --server are tried in after the last that answered:
    /// in-order (as given) or random
    #[arg(long, value_name = "ORDER", value_enum, default_value = "in-order")]
    pub server_order: ServerOrderArg,

    /// This host's client id
    #[arg(long, value_name = "ID", required = true)]
    pub id: ClientId,

    /// This host's certificate (default: certs/ID.crt)
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,

    /// This host's private key (default: certs/ID.key)
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,

    /// CA certificate the server's certificate must chain to
    #[arg(long, value_name = "FILE", default_value = "certs/ca.crt")]
    pub ca: PathBuf,

    /// A trusted release signing public key (repeatable; default certs/signing.pub)
    #[arg(long = "trust", value_name = "FILE")]
    pub trust: Vec<PathBuf>,

    /// Folder files are installed into: created 0750 if missing; refused unless owned
    /// by this user and writable by no one else (its parents too)
    #[arg(long, value_name = "DIR", default_value = "incoming")]
    pub dest: PathBuf,

    /// State file (default: DEST/.fts-state.json)
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Start from empty state when the state file's content is damaged (a state file
    /// that cannot be read at all, e.g. for its permissions, is never thrown away)
    #[arg(long)]
    pub reset_state: bool,

    /// Poll once, then exit (0: nothing to report, 3: something reported, 1: failed)
    #[arg(long)]
    pub once: bool,

    /// Time between polls. The host waits the later of this and the server's
    /// poll-after advice (the server can slow it down, never speed it up), within
    /// --min-interval and --max-interval
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Random jitter added to each interval
    #[arg(long, value_name = "PERCENT", default_value = "10%", value_parser = parse_percent)]
    pub jitter: u8,

    /// Shortest wait between polls, whatever --interval or the server say (also where
    /// the backoff after a failure starts)
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub min_interval: Duration,

    /// Longest wait between polls, whatever the server advises (also caps the backoff;
    /// a host whose certificate the server refused waits this long at once)
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub max_interval: Duration,

    /// A read that makes no progress for this long ends the poll
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub read_timeout: Duration,

    /// Deadline of a poll (with the repeats that follow the server's `more`): once it
    /// has passed, the poll ends between two files and no new file starts. The file
    /// arriving then goes on while it arrives at 16 KiB/s or faster (averaged over
    /// 60 s, the server's own minimum send rate); slower, it is abandoned
    #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = parse_duration)]
    pub poll_timeout: Duration,

    /// Largest file accepted; larger ones are refused as `too-large`
    #[arg(long, value_name = "SIZE", default_value = "64GiB", value_parser = parse_size)]
    pub max_file_size: Size,

    /// Most file body bytes received per second (e.g. 8MiB/s, 500KiB/s). At least
    /// 64KiB/s: four times a server's minimum send rate, below which it would cut this
    /// host off as a slow reader. Off unless given
    #[arg(long, value_name = "RATE", value_parser = parse_max_rate)]
    pub max_rate: Option<Rate>,

    /// Program run after each install (no shell; the file's path is its last argument).
    /// Exit 10, or `reboot` written to the file $FTS_HOOK_STATUS_FILE names, says a
    /// reboot is required
    #[arg(long, value_name = "PROGRAM")]
    pub exec: Option<PathBuf>,

    /// The file whose existence says a reboot is required (reported, shown in status
    /// until the host has booted again); empty: none
    #[arg(long, value_name = "FILE", default_value = "/run/reboot-required")]
    pub reboot_required_file: PathBuf,

    /// Program run once for an installed file whose entry its publisher withdrew (like
    /// --exec; the file stays installed unless this program removes it)
    #[arg(long, value_name = "PROGRAM")]
    pub exec_withdrawn: Option<PathBuf>,

    /// Longest a hook may run
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub exec_timeout: Duration,

    /// How many times a failed hook runs again, at later polls with a backoff that
    /// starts at --min-interval and doubles (each failure is reported with its
    /// attempt number; after the last, the hook is reported as given up)
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub hook_retries: u32,

    /// Hold a target while the hook of its last install fails: nothing more of that
    /// target installs until the hook succeeds (for files that must not be installed
    /// over a half-installed previous one)
    #[arg(long)]
    pub hold_on_hook_failure: bool,

    /// Run the hook of the installed file NAME now (its failure is reported at the
    /// next poll), then exit: 0 when it succeeded, 3 when it failed. Does not poll
    #[arg(long, value_name = "NAME")]
    pub rerun_hook: Option<fts_proto::FileName>,

    /// The received part of a cut transfer is kept, to resume it, only while this
    /// share of the destination's file system stays free
    #[arg(long, value_name = "PERCENT", default_value = "5%", value_parser = parse_percent)]
    pub min_free: u8,

    /// The log's name to pin (from `log-origin` beside the release key); without it
    /// the first checkpoint's is pinned
    #[arg(long, value_name = "ORIGIN")]
    pub log_origin: Option<fts_proto::checkpoint::Origin>,

    /// A checkpoint to start from (a copy of the store's log/checkpoint), so that the
    /// very first answer is already checked against it
    #[arg(long, value_name = "FILE")]
    pub log_checkpoint: Option<PathBuf>,

    /// A timestamp signer's public key (timestamp.pub; repeatable): one fresh
    /// cosignature from any of them makes an answer fresh. Without it freshness is off
    #[arg(long = "timestamp-key", value_name = "FILE")]
    pub timestamp_key: Vec<PathBuf>,

    /// Raise `stale` when no cosignature newer than this has reached this host
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub max_age: Duration,

    /// Raise `withheld` when a target stays behind its verified head this long
    /// (default: --max-age)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub withheld_after: Option<Duration>,

    /// A cosignature dated further ahead of this host's clock is not used (and raises
    /// `clock`)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub max_skew: Duration,

    /// Start the log state again (the old one is kept as evidence); --reset-state
    /// keeps it
    #[arg(long)]
    pub reset_log_state: bool,

    /// Talk to a plaintext server (lab use only)
    #[arg(long)]
    pub plaintext: bool,

    /// After each round, write this host's figures to FILE in the node-exporter
    /// textfile format (written atomically: a temporary file, then a rename)
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
}

/// `--server-order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ServerOrderArg {
    /// As given on the command line (the default)
    InOrder,
    /// At random, drawn afresh at each poll
    Random,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_name = "SHELL", value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The store folder
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// The server's delivery status folder
    #[arg(long, value_name = "DIR", default_value = "status")]
    pub status_dir: PathBuf,

    #[command(flatten)]
    pub db: StatusDbArgs,

    /// The hosts' --max-age: warn when the log's newest cosignature is older than half
    /// of it
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
    pub max_age: Duration,

    /// Print JSON instead of a table (every view)
    #[arg(long)]
    pub json: bool,

    /// The release view of one file: hosts installed, offered, held, failed, silent,
    /// with their lists, and the time from publish to 50, 95 and 99 % installed
    #[arg(long, value_name = "NAME", conflicts_with_all = ["host", "forget"])]
    pub file: Option<FileName>,

    /// One host: its targets, entries and receipts
    #[arg(long, value_name = "ID", conflicts_with_all = ["file", "forget"])]
    pub host: Option<ClientId>,

    /// Every host, not only those that need attention
    #[arg(long)]
    pub all: bool,

    /// Only the hosts behind, held or failing
    #[arg(long)]
    pub behind: bool,

    /// Only the silent hosts (no contact for three times their own poll interval)
    #[arg(long)]
    pub silent: bool,

    /// Also the lost hosts (no contact for longer than --lost-after), hidden otherwise
    #[arg(long)]
    pub lost: bool,

    /// A host not heard from for this long is lost: hidden, and it needs no attention
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = parse_duration)]
    pub lost_after: Duration,

    /// Exit 3 when more hosts than this need attention (revoked and lost hosts do not
    /// count)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub max_attention: usize,

    /// Check every stored receipt: its signature against the host's certificate, its
    /// chain, and the count each host last declared (a dropped tail); exit 3 on any
    /// finding
    #[arg(long, conflicts_with_all = ["file", "forget"])]
    pub verify: bool,

    /// The client CA certificate: `--verify` checks that it issued each stored
    /// certificate (the status folder alone proves nothing)
    #[arg(long, value_name = "FILE", default_value = "certs/ca.crt")]
    pub ca: PathBuf,

    /// Forget a decommissioned host: its status goes (its receipts stay as evidence),
    /// and a host enrolled again under the id starts anew
    #[arg(long, value_name = "ID", conflicts_with_all = ["file", "host", "behind", "silent", "verify"])]
    pub forget: Option<ClientId>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LogArgs {
    #[command(subcommand)]
    pub action: Option<LogAction>,

    /// The store folder (only read)
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// Only the entries of this target (a client id, `all`, or `group:NAME`)
    #[arg(long, value_name = "TARGET")]
    pub target: Option<Target>,

    /// Print one JSON array of the entries instead of a table
    #[arg(long)]
    pub json: bool,

    /// List the release keys instead, and which log leaves each may sign (a rotation
    /// retires a key for the leaves after it)
    #[arg(long)]
    pub keys: bool,
}

#[derive(Debug, Subcommand)]
pub enum LogAction {
    /// On the signing host: build the log over the whole journal (or bring it up to
    /// date) and sign its checkpoint; every publish does this too
    Init(LogInitArgs),
    /// Check the store's log: its leaves are its journal's, its checkpoint signs their
    /// root; with --against, that it extends the log of DIR (a replica) and the
    /// checkpoints cosigned there, before a restored store's first publish
    Verify(LogVerifyArgs),
}

#[derive(Debug, Args)]
pub struct LogInitArgs {
    /// The store folder
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// The release signing key
    #[arg(long, value_name = "FILE", default_value = "certs/signing.key")]
    pub signing_key: PathBuf,

    /// The log's name (default: the log-origin file beside the signing key, made if
    /// missing)
    #[arg(long, value_name = "ORIGIN")]
    pub log_origin: Option<fts_proto::checkpoint::Origin>,
}

#[derive(Debug, Args)]
pub struct LogVerifyArgs {
    /// The store folder (only read)
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// Another copy of the store (the freshest replica) whose log this one must extend
    #[arg(long, value_name = "DIR")]
    pub against: Option<PathBuf>,

    /// A trusted release signing public key (repeatable; default certs/signing.pub)
    #[arg(long = "trust", value_name = "FILE")]
    pub trust: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TimestampArgs {
    /// The store copy to read checkpoints and leaves from; cosignatures are written
    /// into its cosignatures/ folder
    #[arg(long, value_name = "DIR", default_value = "store")]
    pub store: PathBuf,

    /// The timestamp signer's key (made by `fts keygen timestamp`)
    #[arg(long, value_name = "FILE", default_value = "timestamp.key")]
    pub key: PathBuf,

    /// A trusted release signing public key (repeatable; default certs/signing.pub):
    /// only checkpoints it signed are cosigned
    #[arg(long = "trust", value_name = "FILE")]
    pub trust: Vec<PathBuf>,

    /// The signer's own state: the last size, root and time it cosigned (default:
    /// timestamp-state.json beside the key)
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Cosign the newest checkpoint again this often, so hosts see it is fresh
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub every: Duration,

    /// Cosign once and exit (0: cosigned; 1: refused, with why)
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct VerifyInstalledArgs {
    /// The installed file (a symbolic link is not followed: fts installs regular files)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// The state file of the `fts poll` that installed it (default: .fts-state.json in
    /// the folder of FILE, where `fts poll` keeps it by default)
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// A trusted release signing public key (repeatable; default certs/signing.pub)
    #[arg(long = "trust", value_name = "FILE")]
    pub trust: Vec<PathBuf>,
}

/// `--server HOST:PORT`, as given (what the client dials) and its HOST (what the
/// server's certificate is checked against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddress {
    /// `HOST:PORT` as given.
    pub address: String,
    /// HOST, without the brackets of an IPv6 address.
    pub host: String,
}

impl FromStr for ServerAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not HOST:PORT (an IPv6 address goes in brackets)");
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        port.parse::<u16>().map_err(|_| bad())?;
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if host.is_empty() {
            return Err(bad());
        }
        Ok(ServerAddress { address: s.to_owned(), host: host.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_address_is_host_and_port() {
        let parse = |s: &str| s.parse::<ServerAddress>().map(|a| a.host);
        assert_eq!(parse("fts.example.net:6543"), Ok("fts.example.net".to_owned()));
        assert_eq!(parse("10.0.0.5:6543"), Ok("10.0.0.5".to_owned()));
        assert_eq!(parse("[::1]:6543"), Ok("::1".to_owned()));
        for bad in ["fts.example.net", ":6543", "host:port", "host:65536", "[]:1"] {
            assert!(parse(bad).unwrap_err().contains("is not HOST:PORT"), "{bad}");
        }
    }
}
