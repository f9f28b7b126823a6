//! Pieces shared by the fleet benches, `examples/fleet_status.rs` (issue 20) and
//! `examples/fleet` (issue 21), which include this file: host ids, certificates made
//! in-process under a CA of `fts keygen`, connections from a loopback source of the
//! host's own, and figures read from /proc and from `/metrics` text.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use fts_proto::ClientId;
use fts_trust::keygen::CertificateAuthority;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

fn e<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// A deterministic stream of numbers per host (splitmix64).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

pub fn host_id(n: u64) -> ClientId {
    ClientId::parse(&format!("host-{n:05}")).expect("a client id")
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A field of /proc/PID/status (`VmRSS`, `VmHWM`), in KiB.
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Raises the open-file soft limit to the hard limit (1,000 TLS connections on both
/// ends need more than a default 1,024).
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// A TCP connection to `server` from the loopback address `source` (port chosen by
/// the kernel): many hosts, each its own source, as the per-source limits see them.
pub async fn connect_from(source: Ipv4Addr, server: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    let tcp = socket.connect(server).await?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// A client certificate for `id` in `group`, signed by `ca` (as `fts keygen client`
/// makes one: ECDSA P-256, CN the id, O the group, clientAuth), with its key.
pub fn issue_client(
    ca: &CertificateAuthority,
    id: &ClientId,
    group: &str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(e("a key"))?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, id.as_str());
    params.distinguished_name.push(rcgen::DnType::OrganizationName, group);
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, ca.issuer()).map_err(e("a certificate"))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key))
}

/// The metric `name` (a counter or a histogram's `_count`/`_sum`) in `text`.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}
