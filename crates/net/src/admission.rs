//! Admission of connections, before TLS: what one source (or many) may hold of the
//! server before it has proved who it is. The limits of polls (after the request)
//! are in `limits`.
//!
//! A connection that has not finished its handshake is unauthenticated and cheap to
//! make, so everything it can take is bounded:
//! - **connection slots**: `--max-connections` in all, of which connections before
//!   their handshake may hold at most 90 %. The slot in all is taken before `accept`,
//!   so at the limit new connections wait in the kernel's backlog, not in memory here.
//!   The last [`RESERVED_PERCENT`] are for hosts: once connections before their
//!   handshake hold their 90 %, a new connection is admitted only from a source that
//!   completed a handshake within [`KNOWN_FOR`] (a bounded table, [`KnownSources`]),
//!   and every other is closed at once instead of waiting in the backlog. So a flood
//!   of idle connections from many addresses cannot keep the fleet's own hosts out;
//! - **per source**: at most `--max-handshakes-per-ip` connections before their
//!   handshake, and new connections at most `--max-connection-rate-per-ip` per second
//!   (a token bucket, bursts of as many). A source is an IPv4 address or an IPv6 /64
//!   (one host usually holds a whole /64). A connection beyond either is closed at once;
//! - **the first byte**: a connection that sends nothing within `--first-byte-timeout`
//!   (3 s, and never longer than the handshake timeout) is closed.
//!
//! Sources in `--trusted-proxy` are not limited per source: a load balancer or NAT
//! gateway speaks for many hosts. With `--proxy-protocol` their connections must start
//! with a PROXY header ([`crate::proxy_protocol`]; v2, or the v1 line nginx sends), and
//! the client address it gives
//! is then the source that is limited, logged and recorded as the peer. A PROXY header
//! from any other source is refused: anyone could claim any address in one.
//!
//! The table of sources is bounded: an entry is kept only while its source has a
//! connection before its handshake or its bucket is not yet full again; idle entries
//! are swept every [`SWEEP_INTERVAL`], and when the table is full (a flood from very
//! many addresses) entries without a connection are dropped, which only forgets their
//! rate history. Entries with a connection are bounded by the slots before the
//! handshake, so the table never holds more than those plus [`MAX_IDLE_SOURCES`].
//!
//! Refusals are counted (`fts_connections_refused_total{reason}`) and logged at debug
//! one by one, with a summary at info at most once a [`SUMMARY_INTERVAL`]: a flood of
//! refusals must not become a flood of log lines.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, timeout_at};

use crate::metrics::{ConnectionRefusal, Metrics};
use crate::proxy_protocol::{self, FIXED_LEN, HeaderStart, Preamble, ProxyHeader, ProxyHeaderError};
use crate::summary_log::SummaryLog;

/// The share of `--max-connections` that connections before their handshake can never
/// take, so that hosts already authenticated always find room.
pub const RESERVED_PERCENT: usize = 10;

/// How long a source that completed a handshake may use the reserve.
pub const KNOWN_FOR: Duration = Duration::from_secs(2 * 3600);

/// The most sources remembered as having completed a handshake.
pub const MAX_KNOWN_SOURCES: usize = 65_536;

/// How often entries of idle sources are removed from the table.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// Entries kept for sources without a connection before their handshake (their rate
/// history), beyond those with one.
pub const MAX_IDLE_SOURCES: usize = 65_536;

/// The longest between two summaries of refusals at info.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);

/// How long to wait between looks at a stream whose first bytes might begin a PROXY
/// header but are too few to tell (only a client that sends a byte at a time).
const PREAMBLE_RETRY: Duration = Duration::from_millis(20);

/// What `fts serve` can tune about admission. The defaults are those of the `fts serve`
/// flags, listed in docs/OPERATIONS.md section 13.
#[derive(Debug, Clone)]
pub struct AdmissionSettings {
    /// Most connections before their handshake from one source.
    pub max_handshakes_per_source: NonZeroU32,
    /// Most new connections per second from one source (bursts of as many).
    pub connection_rate_per_source: NonZeroU32,
    /// How long a new connection may take to send its first byte.
    pub first_byte_timeout: Duration,
    /// Sources not limited per source (load balancers, NAT gateways).
    pub trusted_proxies: Vec<IpNet>,
    /// Whether trusted proxies send a PROXY header first.
    pub proxy_protocol: bool,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        AdmissionSettings {
            max_handshakes_per_source: NonZeroU32::new(64).unwrap_or(NonZeroU32::MIN),
            // 50,000 hosts behind one NAT polling each minute make about 833 a second.
            connection_rate_per_source: NonZeroU32::new(2_000).unwrap_or(NonZeroU32::MIN),
            first_byte_timeout: Duration::from_secs(3),
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
        }
    }
}

/// The connections before their handshake that `max_connections` allows: all but the
/// reserved share, and at least one.
pub fn before_handshake_limit(max_connections: usize) -> usize {
    let reserved = max_connections.saturating_mul(RESERVED_PERCENT).div_ceil(100);
    max_connections.saturating_sub(reserved).max(1)
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`; a bare address is a
/// network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    address: IpAddr,
    prefix: u8,
}

/// Why a `--trusted-proxy` value is not a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpNetError {
    /// The value is neither an address nor `ADDRESS/PREFIX` (it is quoted).
    #[error("`{0}` is not an IP address or a network like 10.0.0.0/8 or 2001:db8::/32")]
    Syntax(String),
    /// The prefix is longer than its address family has bits.
    #[error("prefix length /{prefix} is too long for {address} (at most /{max})")]
    PrefixTooLong {
        /// The network's address.
        address: IpAddr,
        /// The prefix length given.
        prefix: u8,
        /// The bits of the family: 32 or 128.
        max: u8,
    },
    /// The address has bits set past the prefix, which is likely a typo.
    #[error("{net} has bits set after its prefix: did you mean {expected}?")]
    HostBits {
        /// The value as given.
        net: String,
        /// The network with those bits cleared.
        expected: String,
    },
}

impl IpNet {
    /// The prefix length (0 is every address of its family).
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_v4(ip, self.prefix) == net,
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_v6(ip, self.prefix) == net,
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = IpNetError;

    fn from_str(text: &str) -> Result<IpNet, IpNetError> {
        let syntax = || IpNetError::Syntax(fts_proto::printable(text));
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => {
                let address: IpAddr = address.parse().map_err(|_| syntax())?;
                let prefix: u8 = prefix.parse().map_err(|_| syntax())?;
                (address, Some(prefix))
            }
            None => (text.parse().map_err(|_| syntax())?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(IpNetError::PrefixTooLong { address, prefix, max });
        }
        let masked = match address {
            IpAddr::V4(a) => IpAddr::V4(mask_v4(a, prefix)),
            IpAddr::V6(a) => IpAddr::V6(mask_v6(a, prefix)),
        };
        if masked != address {
            return Err(IpNetError::HostBits {
                net: text.to_owned(),
                expected: format!("{masked}/{prefix}"),
            });
        }
        // An IPv4-mapped network matches IPv4 sources (see `canonical`).
        let address = canonical(address);
        let prefix = if address.is_ipv4() && max == 128 { prefix.saturating_sub(96) } else { prefix };
        Ok(IpNet { address, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

fn mask_v4(ip: Ipv4Addr, prefix: u8) -> Ipv4Addr {
    let bits = u32::from(ip);
    Ipv4Addr::from(if prefix == 0 { 0 } else { bits & (u32::MAX << (32 - u32::from(prefix))) })
}

fn mask_v6(ip: Ipv6Addr, prefix: u8) -> Ipv6Addr {
    let bits = u128::from(ip);
    Ipv6Addr::from(if prefix == 0 { 0 } else { bits & (u128::MAX << (128 - u32::from(prefix))) })
}

/// An IPv4 client of a dual-stack listener shows as `::ffff:a.b.c.d`: it is the IPv4
/// address, for limits and for trust.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// What is limited together: one IPv4 address, or one IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum SourceKey {
    V4(u32),
    V6Prefix(u64),
}

impl SourceKey {
    fn of(ip: IpAddr) -> SourceKey {
        match canonical(ip) {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => SourceKey::V6Prefix((u128::from(v6) >> 64) as u64),
        }
    }
}

/// One source's state.
#[derive(Debug)]
struct Source {
    /// Its connections before their handshake now.
    handshakes: u32,
    /// The token bucket as a theoretical arrival time (GCRA): the bucket is full when
    /// this is not after now, and a connection conforms while it is at most
    /// `tolerance` ahead of now. Each conforming connection moves it one interval on.
    due: Instant,
}

#[derive(Debug)]
struct Table {
    sources: HashMap<SourceKey, Source>,
    next_sweep: Instant,
}

/// The per-source limits, shared by the accept loop and the connections that give
/// their handshake slot back.
#[derive(Debug)]
pub struct Sources {
    table: Mutex<Table>,
    max_handshakes: u32,
    /// One token's worth of time: a second divided by the rate.
    interval: Duration,
    /// How far ahead of now the bucket's time may run: the burst, less one.
    tolerance: Duration,
    /// Entries at which idle ones are dropped.
    capacity: usize,
}

impl Sources {
    /// Limits for `settings`, with room for `before_handshake` connections (the most
    /// that can count at once).
    pub fn new(settings: &AdmissionSettings, before_handshake: usize) -> Arc<Sources> {
        let rate = settings.connection_rate_per_source.get();
        let interval = Duration::from_secs(1) / rate;
        Arc::new(Sources {
            table: Mutex::new(Table { sources: HashMap::new(), next_sweep: Instant::now() + SWEEP_INTERVAL }),
            max_handshakes: settings.max_handshakes_per_source.get(),
            interval,
            tolerance: interval * (rate - 1),
            capacity: before_handshake.saturating_add(MAX_IDLE_SOURCES),
        })
    }

    /// Admits a new connection from `ip` at `now`: takes a token of its rate and one
    /// of its handshake places, given back when the returned slot is dropped.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<HandshakeSlot, ConnectionRefusal> {
        let key = SourceKey::of(ip);
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if now >= table.next_sweep {
            table.sources.retain(|_, source| !source.is_idle(now));
            table.next_sweep = now + SWEEP_INTERVAL;
        }
        if !table.sources.contains_key(&key) && table.sources.len() >= self.capacity {
            table.sources.retain(|_, source| !source.is_idle(now));
            if table.sources.len() >= self.capacity {
                // Sources with no connection now only lose their rate history.
                table.sources.retain(|_, source| source.handshakes > 0);
            }
        }
        let source = table.sources.entry(key).or_insert(Source { handshakes: 0, due: now });
        if source.due > now + self.tolerance {
            return Err(ConnectionRefusal::Rate);
        }
        source.due = source.due.max(now) + self.interval;
        if source.handshakes >= self.max_handshakes {
            return Err(ConnectionRefusal::PerIpHandshakes);
        }
        source.handshakes += 1;
        Ok(HandshakeSlot { sources: Arc::clone(self), key })
    }

    /// Sources in the table now.
    pub fn len(&self) -> usize {
        self.table.lock().unwrap_or_else(PoisonError::into_inner).sources.len()
    }

    /// Whether no source is in the table.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Source {
    fn is_idle(&self, now: Instant) -> bool {
        self.handshakes == 0 && self.due <= now
    }
}

/// One source's place for a connection before its handshake; given back when dropped.
#[derive(Debug)]
pub struct HandshakeSlot {
    sources: Arc<Sources>,
    key: SourceKey,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut table = self.sources.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(source) = table.sources.get_mut(&self.key) {
            source.handshakes = source.handshakes.saturating_sub(1);
        }
    }
}

/// What a connection holds until its handshake is over: its share of the slots
/// before the handshake (none when it came in on the reserve) and, for a limited
/// source, its source's place. Drop it when the handshake completes (or fails:
/// dropping happens anyway).
#[derive(Debug)]
pub struct BeforeHandshake {
    _permit: Option<OwnedSemaphorePermit>,
    slot: Option<HandshakeSlot>,
}

/// The connection slots: all connections, and those before their handshake.
#[derive(Debug)]
pub struct ConnectionSlots {
    any: Arc<Semaphore>,
    before_handshake: Arc<Semaphore>,
}

impl ConnectionSlots {
    /// Slots for `max_connections` connections, of which those before their
    /// handshake may hold all but the reserve ([`before_handshake_limit`]).
    pub fn new(max_connections: usize) -> ConnectionSlots {
        ConnectionSlots {
            any: Arc::new(Semaphore::new(max_connections)),
            before_handshake: Arc::new(Semaphore::new(before_handshake_limit(max_connections))),
        }
    }

    /// Waits for a slot in all, and takes a slot before the handshake if one is free
    /// (`None` in the first place: only the reserve is left, see
    /// [`Admission::at_accept`]). `None` once closed.
    pub async fn acquire(&self) -> Option<(Option<OwnedSemaphorePermit>, OwnedSemaphorePermit)> {
        let any = Arc::clone(&self.any).acquire_owned().await.ok()?;
        let early = Arc::clone(&self.before_handshake).try_acquire_owned().ok();
        Some((early, any))
    }
}

/// The sources that completed a handshake lately: the ones that may use the reserve.
/// Bounded: entries older than [`KNOWN_FOR`] are dropped when it is full, and if it is
/// still full, arbitrary ones (a host forgotten only waits for a free slot before its
/// handshake, as any other, until its next handshake).
#[derive(Debug, Default)]
pub struct KnownSources {
    seen: Mutex<HashMap<SourceKey, Instant>>,
}

impl KnownSources {
    /// `ip` completed a handshake at `now`.
    pub fn authenticated(&self, ip: IpAddr, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if seen.len() >= MAX_KNOWN_SOURCES && !seen.contains_key(&SourceKey::of(ip)) {
            seen.retain(|_, at| now.duration_since(*at) < KNOWN_FOR);
            if seen.len() >= MAX_KNOWN_SOURCES {
                let drop: Vec<SourceKey> = seen.keys().take(MAX_KNOWN_SOURCES / 2).copied().collect();
                for key in drop {
                    seen.remove(&key);
                }
            }
        }
        seen.insert(SourceKey::of(ip), now);
    }

    /// Whether `ip` completed a handshake within [`KNOWN_FOR`] of `now`.
    pub fn is_known(&self, ip: IpAddr, now: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.get(&SourceKey::of(ip)).is_some_and(|at| now.duration_since(*at) < KNOWN_FOR)
    }

    /// Sources remembered now.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no source is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The admission state of a server.
#[derive(Debug)]
pub struct Admission {
    settings: AdmissionSettings,
    sources: Arc<Sources>,
    known: KnownSources,
    log: RefusalSummary,
}

/// Who a connection is from, once its preamble is read.
#[derive(Debug, Clone, Copy)]
pub struct Opened {
    /// The client: from the PROXY header of a trusted proxy, else the TCP peer. The
    /// address for logs, limits and status.
    pub client: SocketAddr,
    /// The proxy it came through, if any.
    pub via: Option<SocketAddr>,
}

/// Why a connection ended before TLS.
#[derive(Debug)]
pub enum Closed {
    /// Refused by a check: counted and logged here.
    Refused,
    /// The peer closed (or reset) before sending anything: nothing to count.
    ByPeer,
}

impl Admission {
    /// The admission state of a server with `settings` that holds at most
    /// `max_connections` connections.
    pub fn new(settings: AdmissionSettings, max_connections: usize) -> Admission {
        let sources = Sources::new(&settings, before_handshake_limit(max_connections));
        Admission { settings, sources, known: KnownSources::default(), log: RefusalSummary::new() }
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &AdmissionSettings {
        &self.settings
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.settings.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// Right after accept, before any byte is read: the reserve (`early` is `None`
    /// when the slots before the handshake are all taken: only a source that
    /// authenticated lately may go on), then the per-source limits of a source that is
    /// not a trusted proxy. Trusted proxies pass the latter (their clients are limited
    /// once their PROXY header is read, in [`Admission::open`]).
    pub fn at_accept(
        &self,
        peer: SocketAddr,
        early: Option<OwnedSemaphorePermit>,
        metrics: &Metrics,
    ) -> Result<BeforeHandshake, Closed> {
        let now = Instant::now();
        if early.is_none() && !self.known.is_known(peer.ip(), now) {
            self.refuse(metrics, ConnectionRefusal::BeforeHandshakeFull, peer, None, None);
            return Err(Closed::Refused);
        }
        let mut before = BeforeHandshake { _permit: early, slot: None };
        if self.is_trusted(peer.ip()) {
            return Ok(before);
        }
        let slot = self.sources.admit(peer.ip(), now).map_err(|reason| {
            self.refuse(metrics, reason, peer, None, None);
            Closed::Refused
        })?;
        before.slot = Some(slot);
        Ok(before)
    }

    /// The connection from `tcp_peer` (the TCP peer: a proxy's clients share its
    /// address) completed its handshake: from now on its source may use the reserve.
    pub fn authenticated(&self, tcp_peer: SocketAddr) {
        self.known.authenticated(tcp_peer.ip(), Instant::now());
    }

    /// Reads what comes before TLS, by `first_byte_deadline`: from a trusted proxy
    /// with `--proxy-protocol`, its PROXY header (and then the limits of the client it
    /// names); from anyone, that the first byte arrives and does not begin a PROXY
    /// header that is not expected. Nothing past the PROXY header is consumed.
    pub async fn open(
        &self,
        tcp: &mut TcpStream,
        peer: SocketAddr,
        early: &mut BeforeHandshake,
        first_byte_deadline: Instant,
        metrics: &Metrics,
    ) -> Result<Opened, Closed> {
        let mut opened = Opened { client: peer, via: None };
        if self.settings.proxy_protocol && self.is_trusted(peer.ip()) {
            let header = match read_proxy_header(tcp, first_byte_deadline).await {
                Ok(header) => header,
                Err(ReadHeaderError::ByPeer) => return Err(Closed::ByPeer),
                Err(ReadHeaderError::Timeout) => {
                    self.refuse(
                        metrics,
                        ConnectionRefusal::ProxyHeaderInvalid,
                        peer,
                        None,
                        Some("no PROXY header"),
                    );
                    return Err(Closed::Refused);
                }
                Err(ReadHeaderError::Invalid(e)) => {
                    let detail = e.to_string();
                    self.refuse(metrics, ConnectionRefusal::ProxyHeaderInvalid, peer, None, Some(&detail));
                    return Err(Closed::Refused);
                }
            };
            if let ProxyHeader::Proxied { source, .. } = header {
                opened = Opened { client: source, via: Some(peer) };
                if !self.is_trusted(source.ip()) {
                    let slot = self.sources.admit(source.ip(), Instant::now()).map_err(|reason| {
                        self.refuse(metrics, reason, source, Some(peer), None);
                        Closed::Refused
                    })?;
                    early.slot = Some(slot);
                }
            }
        }
        match first_bytes(tcp, first_byte_deadline).await {
            FirstBytes::Data(Preamble::Proxy) => {
                self.refuse(metrics, ConnectionRefusal::ProxyHeader, opened.client, opened.via, None);
                Err(Closed::Refused)
            }
            FirstBytes::Data(_) => Ok(opened),
            FirstBytes::Timeout => {
                self.refuse(metrics, ConnectionRefusal::FirstByteTimeout, opened.client, opened.via, None);
                Err(Closed::Refused)
            }
            FirstBytes::Closed => Err(Closed::ByPeer),
        }
    }

    fn refuse(
        &self,
        metrics: &Metrics,
        reason: ConnectionRefusal,
        peer: SocketAddr,
        via: Option<SocketAddr>,
        detail: Option<&str>,
    ) {
        metrics.connection_refused(reason);
        let via = via.map(|v| v.to_string());
        tracing::debug!(%peer, via = via.as_deref(), reason = reason.label(), detail, "connection refused before the handshake");
        self.log.note(reason, peer, Instant::now());
    }
}

/// How a connection's first bytes came, or did not.
enum FirstBytes {
    Data(Preamble),
    Timeout,
    Closed,
}

/// Waits for the first bytes without consuming them (TLS reads them next).
async fn first_bytes(tcp: &TcpStream, deadline: Instant) -> FirstBytes {
    let mut buf = [0u8; proxy_protocol::SIGNATURE.len()];
    loop {
        match timeout_at(deadline, tcp.peek(&mut buf)).await {
            Err(_) => return FirstBytes::Timeout,
            Ok(Err(_)) | Ok(Ok(0)) => return FirstBytes::Closed,
            Ok(Ok(n)) => match proxy_protocol::classify_preamble(&buf[..n]) {
                Preamble::NeedMore if Instant::now() + PREAMBLE_RETRY < deadline => {
                    tokio::time::sleep(PREAMBLE_RETRY).await;
                }
                // Still undecided at the deadline: not a header anyone would send.
                Preamble::NeedMore => return FirstBytes::Data(Preamble::Other),
                preamble => return FirstBytes::Data(preamble),
            },
        }
    }
}

enum ReadHeaderError {
    ByPeer,
    Timeout,
    Invalid(ProxyHeaderError),
}

/// Reads exactly one PROXY header and nothing after it: for v2 the fixed part, then
/// the announced block; for v1 the line up to its CRLF, a byte at a time (at most
/// [`proxy_protocol::V1_MAX_LEN`] reads, once per connection of a trusted proxy).
async fn read_proxy_header(tcp: &mut TcpStream, deadline: Instant) -> Result<ProxyHeader, ReadHeaderError> {
    // The v1 prefix first: the shortest v1 line (`PROXY UNKNOWN\r\n`, 15 bytes) is
    // shorter than the fixed part of v2, and nothing past a header may be consumed.
    let mut fixed = [0u8; FIXED_LEN];
    let prefix_len = proxy_protocol::V1_PREFIX.len();
    read_exact_by(tcp, &mut fixed[..prefix_len], deadline).await?;
    if fixed[..prefix_len] != *proxy_protocol::V1_PREFIX {
        read_exact_by(tcp, &mut fixed[prefix_len..], deadline).await?;
    }
    match proxy_protocol::parse_start(&fixed).map_err(ReadHeaderError::Invalid)? {
        HeaderStart::V2 { block_len } => {
            let mut block = vec![0u8; block_len];
            read_exact_by(tcp, &mut block, deadline).await?;
            proxy_protocol::parse_block(&fixed, &block).map_err(ReadHeaderError::Invalid)
        }
        HeaderStart::V1 => {
            let mut line = fixed[..prefix_len].to_vec();
            while !line.ends_with(b"\r\n") {
                if line.len() >= proxy_protocol::V1_MAX_LEN {
                    return Err(ReadHeaderError::Invalid(ProxyHeaderError::V1TooLong));
                }
                let mut byte = [0u8; 1];
                read_exact_by(tcp, &mut byte, deadline).await?;
                line.push(byte[0]);
            }
            proxy_protocol::parse_v1(&line).map_err(ReadHeaderError::Invalid)
        }
    }
}

async fn read_exact_by(
    tcp: &mut TcpStream,
    buf: &mut [u8],
    deadline: Instant,
) -> Result<(), ReadHeaderError> {
    match timeout_at(deadline, tcp.read_exact(buf)).await {
        Err(_) => Err(ReadHeaderError::Timeout),
        Ok(Err(_)) => Err(ReadHeaderError::ByPeer),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Refusals at debug one by one, and a summary at info at most once a
/// [`SUMMARY_INTERVAL`] (the first refusal after a quiet interval at once).
#[derive(Debug)]
struct RefusalSummary {
    log: SummaryLog<{ ConnectionRefusal::ALL.len() }>,
}

impl RefusalSummary {
    fn new() -> RefusalSummary {
        RefusalSummary { log: SummaryLog::new(SUMMARY_INTERVAL) }
    }

    fn note(&self, reason: ConnectionRefusal, peer: SocketAddr, now: Instant) {
        let kind = ConnectionRefusal::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        let Some(summary) = self.log.count(kind, now) else { return };
        let summary = ConnectionRefusal::ALL
            .iter()
            .zip(summary.counts)
            .filter(|(_, n)| *n > 0)
            .map(|(reason, n)| format!("{}={n}", reason.label()))
            .collect::<Vec<_>>()
            .join(" ");
        tracing::info!(
            refused = %summary,
            last_peer = %peer,
            "connections refused before the handshake since the last summary (at most one such line a minute; \
             fts_connections_refused_total counts them all)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_handshakes: u32, rate: u32) -> AdmissionSettings {
        AdmissionSettings {
            max_handshakes_per_source: NonZeroU32::new(max_handshakes).unwrap(),
            connection_rate_per_source: NonZeroU32::new(rate).unwrap(),
            ..AdmissionSettings::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn connections_before_the_handshake_keep_a_tenth_free_for_authenticated_ones() {
        assert_eq!(before_handshake_limit(10_000), 9_000);
        assert_eq!(before_handshake_limit(1_000), 900);
        assert_eq!(before_handshake_limit(15), 13, "the reserve is rounded up");
        assert_eq!(before_handshake_limit(30), 27);
        assert_eq!(before_handshake_limit(2), 1);
        assert_eq!(before_handshake_limit(1), 1, "one connection can always start");
    }

    #[tokio::test]
    async fn the_slots_before_the_handshake_stop_at_their_share_and_the_rest_stays_acceptable() {
        let slots = ConnectionSlots::new(10);
        let mut held = Vec::new();
        for _ in 0..9 {
            let (early, any) = slots.acquire().await.unwrap();
            assert!(early.is_some());
            held.push((early, any));
        }
        // The tenth is accepted, on the reserve: no slot before the handshake.
        let (early, reserve) = slots.acquire().await.unwrap();
        assert!(early.is_none(), "only the reserve is left");
        let full = tokio::time::timeout(Duration::from_millis(50), slots.acquire()).await;
        assert!(full.is_err(), "at --max-connections new connections wait in the backlog");
        drop(reserve);
        // One past its handshake gives its early slot back and keeps its place in all.
        let (early, _any) = held.pop().unwrap();
        drop(early);
        let (early, _) = slots.acquire().await.unwrap();
        assert!(early.is_some());
    }

    #[test]
    fn only_a_source_that_authenticated_lately_may_use_the_reserve() {
        let admission = Admission::new(AdmissionSettings::default(), 10);
        let metrics = Metrics::new();
        let (host, stranger) = ("192.0.2.1:5000".parse().unwrap(), "192.0.2.2:5000".parse().unwrap());
        assert!(admission.at_accept(stranger, None, &metrics).is_err(), "a stranger is closed at once");
        assert!(admission.at_accept(host, None, &metrics).is_err());
        admission.authenticated(host);
        assert!(admission.at_accept(host, None, &metrics).is_ok(), "a known host gets the reserve");
        assert!(admission.at_accept(stranger, None, &metrics).is_err());
        let now = Instant::now();
        assert!(!admission.known.is_known(host.ip(), now + KNOWN_FOR), "only for a while");
    }

    #[tokio::test]
    async fn the_shortest_v1_line_is_read_without_a_byte_after_it() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut proxy = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut accepted, _) = listener.accept().await.unwrap();
        proxy.write_all(b"PROXY UNKNOWN\r\n\x16").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let result = read_proxy_header(&mut accepted, deadline).await;
        assert!(matches!(result, Err(ReadHeaderError::Invalid(ProxyHeaderError::V1Unknown))));
        let mut next = [0u8; 1];
        accepted.read_exact(&mut next).await.unwrap();
        assert_eq!(next, [0x16], "the byte after the line is left for TLS");
    }

    #[test]
    fn the_table_of_known_sources_stays_bounded() {
        let known = KnownSources::default();
        let now = Instant::now();
        for n in 0..(MAX_KNOWN_SOURCES as u32 + 10) {
            known.authenticated(IpAddr::V4(Ipv4Addr::from(n)), now);
        }
        assert!(known.len() <= MAX_KNOWN_SOURCES);
        assert!(known.is_known(IpAddr::V4(Ipv4Addr::from(MAX_KNOWN_SOURCES as u32 + 9)), now));
    }

    #[test]
    fn a_source_gets_at_most_its_handshakes_and_gets_them_back() {
        let sources = Sources::new(&settings(2, 1000), 100);
        let now = Instant::now();
        let a = sources.admit(ip("192.0.2.1"), now).unwrap();
        let _b = sources.admit(ip("192.0.2.1"), now).unwrap();
        assert_eq!(sources.admit(ip("192.0.2.1"), now).unwrap_err(), ConnectionRefusal::PerIpHandshakes);
        assert!(sources.admit(ip("192.0.2.2"), now).is_ok(), "another source is not affected");
        drop(a);
        assert!(sources.admit(ip("192.0.2.1"), now).is_ok(), "a finished handshake frees its place");
    }

    #[test]
    fn an_ipv6_slash_64_is_one_source_and_mapped_ipv4_is_ipv4() {
        let sources = Sources::new(&settings(1, 1000), 100);
        let now = Instant::now();
        let _a = sources.admit(ip("2001:db8:1:2::1"), now).unwrap();
        assert!(sources.admit(ip("2001:db8:1:2:ffff::9"), now).is_err(), "same /64");
        assert!(sources.admit(ip("2001:db8:1:3::1"), now).is_ok(), "another /64");
        let _v4 = sources.admit(ip("192.0.2.1"), now).unwrap();
        assert!(sources.admit(ip("::ffff:192.0.2.1"), now).is_err(), "mapped IPv4 is the same source");
    }

    #[test]
    fn the_rate_allows_a_burst_then_refills_at_the_rate() {
        let sources = Sources::new(&settings(1000, 10), 100);
        let start = Instant::now();
        let mut held = Vec::new();
        for i in 0..10 {
            held.push(sources.admit(ip("192.0.2.1"), start).unwrap_or_else(|e| panic!("{i}: {e:?}")));
        }
        assert_eq!(sources.admit(ip("192.0.2.1"), start).unwrap_err(), ConnectionRefusal::Rate);
        assert!(sources.admit(ip("192.0.2.9"), start).is_ok(), "another source has its own bucket");
        let later = start + Duration::from_millis(100);
        assert!(sources.admit(ip("192.0.2.1"), later).is_ok(), "one token a tenth of a second");
        assert_eq!(sources.admit(ip("192.0.2.1"), later).unwrap_err(), ConnectionRefusal::Rate);
        let refilled = start + Duration::from_secs(5);
        for _ in 0..10 {
            held.push(sources.admit(ip("192.0.2.1"), refilled).unwrap());
        }
    }

    #[test]
    fn the_default_rate_never_limits_a_nat_of_fifty_thousand_hosts_polling_each_minute() {
        let sources = Sources::new(&AdmissionSettings::default(), 9_000);
        // 50,000 polls a minute, evenly, for three minutes, each handshake over at once.
        let start = Instant::now();
        for i in 0..150_000u64 {
            let at = start + Duration::from_micros(i * 60_000_000 / 50_000);
            assert!(sources.admit(ip("198.51.100.1"), at).is_ok(), "poll {i} was refused");
        }
        // And a burst of 2,000 at once on top.
        let at = start + Duration::from_secs(200);
        for i in 0..2_000 {
            assert!(sources.admit(ip("198.51.100.1"), at).is_ok(), "burst connection {i} was refused");
        }
    }

    #[test]
    fn the_table_of_sources_stays_bounded_under_a_flood_of_addresses() {
        let sources = Sources::new(&settings(1, 2000), 10);
        let now = Instant::now();
        let held: Vec<_> =
            (0..10u32).map(|i| sources.admit(IpAddr::V4(Ipv4Addr::from(i)), now).unwrap()).collect();
        for i in 0..(3 * MAX_IDLE_SOURCES as u32) {
            let slot = sources.admit(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), now).unwrap();
            drop(slot);
            assert!(sources.len() <= 10 + MAX_IDLE_SOURCES, "{} entries", sources.len());
        }
        // Sources with a connection before their handshake are never forgotten.
        assert_eq!(
            sources.admit(IpAddr::V4(Ipv4Addr::from(0)), now).unwrap_err(),
            ConnectionRefusal::PerIpHandshakes,
            "its count survived the flood"
        );
        drop(held);
        // Idle entries go at the next sweep.
        let _ = sources.admit(ip("192.0.2.1"), now + SWEEP_INTERVAL + Duration::from_secs(1));
        assert_eq!(sources.len(), 1);
    }

    #[test]
    fn networks_parse_match_and_refuse_typos() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains(ip("10.255.0.1")));
        assert!(net.contains(ip("::ffff:10.1.2.3")), "mapped IPv4");
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(!net.contains(ip("2001:db8::1")));
        let one: IpNet = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        let mapped: IpNet = "::ffff:10.0.0.0/104".parse().unwrap();
        assert!(mapped.contains(ip("10.1.1.1")));
        assert_eq!(mapped.to_string(), "10.0.0.0/8");

        assert!(
            matches!("10.0.0.1/8".parse::<IpNet>(), Err(IpNetError::HostBits { expected, .. }) if expected == "10.0.0.0/8")
        );
        assert!(matches!("10.0.0.0/33".parse::<IpNet>(), Err(IpNetError::PrefixTooLong { .. })));
        assert!(matches!("example.com".parse::<IpNet>(), Err(IpNetError::Syntax(_))));
        assert!(matches!("10.0.0.0/x".parse::<IpNet>(), Err(IpNetError::Syntax(_))));
    }
}
