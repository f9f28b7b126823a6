//! The PROXY protocol header (HAProxy's preamble): how a load balancer in front of
//! `fts serve` says which client a connection is for. Version 2 (binary) is the one to
//! use; version 1 (one text line) is read too, because nginx's stream module sends
//! only that. Pure: bytes in, a header or a refusal out; no I/O (the server reads the
//! bytes, see `admission`).
//!
//! ```text
//! +-----------------------------+----------+----------+------------+-------------------+
//! | signature (12 bytes)        | ver|cmd  | fam|proto| length u16 | addresses, TLVs   |
//! | \r\n\r\n\0\r\nQUIT\n         | 0x2_     |          | big-endian | `length` bytes    |
//! +-----------------------------+----------+----------+------------+-------------------+
//!   PROXY, TCP over IPv4: source 4, destination 4, source port 2, destination port 2
//!   PROXY, TCP over IPv6: source 16, destination 16, source port 2, destination port 2
//! ```
//!
//! ```text
//! PROXY TCP4 203.0.113.7 10.0.0.2 40000 6543\r\n      (v1: at most 107 bytes)
//! ```
//!
//! What is accepted, and why:
//! - v2 `LOCAL` (a proxy's own health check): the connection is the proxy's, so its
//!   own address stands; the address block is skipped whatever its family;
//! - v2 `PROXY` and v1 `TCP4`/`TCP6`, for TCP over IPv4 or IPv6 only. Anything else
//!   (UNIX sockets, UDP, an unspecified family, v1 `UNKNOWN`) is refused, not served
//!   under the proxy's address: the per-source limits need a client address, and a
//!   proxy's own address is not limited;
//! - v2 TLVs after the addresses are skipped unread;
//! - the v2 address block is at most [`MAX_BLOCK_LEN`] bytes, checked before anything
//!   past the fixed part is read, and a v1 line at most [`V1_MAX_LEN`], so a header
//!   never costs more than that;
//! - v1 exactly as its grammar says: single spaces, addresses in their usual form,
//!   ports in plain decimal, CRLF.
//!
//! The header is only believed from a `--trusted-proxy` source: anyone else could
//! claim any address. That rule lives with the caller; this module only parses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The 12 bytes every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part: signature, version and command, family and protocol, length.
pub const FIXED_LEN: usize = 16;

/// The longest address block (addresses and TLVs) accepted. IPv6 addresses take 36
/// bytes; the rest is room for the TLVs load balancers add (AWS, GCP, Azure and
/// HAProxy's SSL TLVs stay well below it).
pub const MAX_BLOCK_LEN: usize = 2048;

/// The start of a text (v1) header.
pub const V1_PREFIX: &[u8] = b"PROXY ";

/// The longest v1 line, CRLF included (the specification's own bound).
pub const V1_MAX_LEN: usize = 107;

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The proxy speaks for itself (a health check): use the connection's own address.
    Local,
    /// The proxy relays a client: its address, and the address it connected to.
    Proxied {
        /// The client's address: the one limited per source and logged as `peer`.
        source: SocketAddr,
        /// The address the client connected to, on the proxy.
        destination: SocketAddr,
    },
}

/// Why bytes are not an acceptable PROXY v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    /// The bytes do not start with a PROXY signature.
    #[error("no PROXY protocol signature")]
    NoSignature,
    /// A v2 header of another version.
    #[error("PROXY protocol version {0} (only 2 is accepted)")]
    UnsupportedVersion(u8),
    /// A v2 command other than LOCAL and PROXY.
    #[error("unknown PROXY command {0:#x} (LOCAL or PROXY expected)")]
    UnknownCommand(u8),
    /// A v2 family and protocol other than TCP over IPv4 or IPv6.
    #[error("PROXY address family and protocol {0:#04x}: only TCP over IPv4 or IPv6 is accepted")]
    UnsupportedFamily(u8),
    /// A v2 address block longer than this side reads.
    #[error("PROXY address block of {length} bytes, above the limit of {MAX_BLOCK_LEN}")]
    TooLong {
        /// The length the header announces.
        length: usize,
    },
    /// A v2 address block too short for the addresses of its family.
    #[error("PROXY address block of {length} bytes, too short for its family (at least {needed})")]
    TooShort {
        /// The length the header announces.
        length: usize,
        /// The length its family needs.
        needed: usize,
    },
    /// A v1 line without its end within the specification's bound.
    #[error("PROXY v1 line without its CRLF within {V1_MAX_LEN} bytes")]
    V1TooLong,
    /// A v1 line that does not parse (the text says which part).
    #[error("PROXY v1 line is malformed: {0}")]
    V1Syntax(&'static str),
    /// A v1 `PROXY UNKNOWN` line, which names no client to limit.
    #[error("PROXY v1 UNKNOWN: the proxy does not say which client this is")]
    V1Unknown,
}

/// What the fixed first bytes of a header say comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderStart {
    /// A v2 header: read exactly `block_len` more bytes, then call [`parse_block`].
    V2 {
        /// The length of the address block that follows.
        block_len: usize,
    },
    /// A v1 line: read on up to its CRLF (at most [`V1_MAX_LEN`] in all), then call
    /// [`parse_v1`]. Only [`V1_PREFIX`] of `fixed` need be read to tell: the shortest
    /// v1 line, `PROXY UNKNOWN\r\n`, is shorter than [`FIXED_LEN`].
    V1,
}

/// How a stream's first bytes compare with a PROXY header's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preamble {
    /// The bytes begin a PROXY header (v2 signature, or a v1 `PROXY `).
    Proxy,
    /// The bytes cannot begin a PROXY header.
    Other,
    /// Every byte so far matches a PROXY header's start, but too few to tell.
    NeedMore,
}

/// Classifies the first bytes of a stream. A TLS ClientHello starts with 0x16, so a
/// TLS client is told apart at its first byte; a plaintext request at its third.
pub fn classify_preamble(first: &[u8]) -> Preamble {
    let mut undecided = false;
    for prefix in [&SIGNATURE[..], V1_PREFIX] {
        let n = first.len().min(prefix.len());
        if first[..n] == prefix[..n] {
            if n == prefix.len() {
                return Preamble::Proxy;
            }
            undecided = true;
        }
    }
    if undecided && !first.is_empty() { Preamble::NeedMore } else { Preamble::Other }
}

/// Reads the first [`FIXED_LEN`] bytes of a header: says whether a v1 line or a v2
/// header follows, and for v2 checks the fixed part and returns the length of the
/// address block (at most [`MAX_BLOCK_LEN`]).
pub fn parse_start(fixed: &[u8; FIXED_LEN]) -> Result<HeaderStart, ProxyHeaderError> {
    if fixed.starts_with(V1_PREFIX) {
        return Ok(HeaderStart::V1);
    }
    parse_fixed(fixed).map(|block_len| HeaderStart::V2 { block_len })
}

/// Checks the fixed 16 bytes of a v2 header and returns the length of the address
/// block that follows (at most [`MAX_BLOCK_LEN`]).
pub fn parse_fixed(fixed: &[u8; FIXED_LEN]) -> Result<usize, ProxyHeaderError> {
    if fixed[..SIGNATURE.len()] != SIGNATURE {
        return Err(ProxyHeaderError::NoSignature);
    }
    let version = fixed[12] >> 4;
    if version != 2 {
        return Err(ProxyHeaderError::UnsupportedVersion(version));
    }
    let command = fixed[12] & 0x0f;
    if command > 1 {
        return Err(ProxyHeaderError::UnknownCommand(command));
    }
    let length = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if length > MAX_BLOCK_LEN {
        return Err(ProxyHeaderError::TooLong { length });
    }
    Ok(length)
}

/// Parses a whole header: the fixed part (already checked by [`parse_fixed`] or not)
/// and its address block of exactly the length the fixed part gave.
pub fn parse_block(fixed: &[u8; FIXED_LEN], block: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    let length = parse_fixed(fixed)?;
    // Only the announced length counts; fewer bytes than announced is a short header.
    let block =
        block.get(..length).ok_or(ProxyHeaderError::TooShort { length: block.len(), needed: length })?;
    if fixed[12] & 0x0f == 0 {
        return Ok(ProxyHeader::Local);
    }
    match fixed[13] {
        // TCP over IPv4
        0x11 => {
            let a = take::<12>(block)?;
            let source = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let destination = Ipv4Addr::new(a[4], a[5], a[6], a[7]);
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(IpAddr::V4(source), u16::from_be_bytes([a[8], a[9]])),
                destination: SocketAddr::new(IpAddr::V4(destination), u16::from_be_bytes([a[10], a[11]])),
            })
        }
        // TCP over IPv6
        0x21 => {
            let a = take::<36>(block)?;
            let mut source = [0u8; 16];
            let mut destination = [0u8; 16];
            source.copy_from_slice(&a[..16]);
            destination.copy_from_slice(&a[16..32]);
            Ok(ProxyHeader::Proxied {
                source: SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(source)),
                    u16::from_be_bytes([a[32], a[33]]),
                ),
                destination: SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::from(destination)),
                    u16::from_be_bytes([a[34], a[35]]),
                ),
            })
        }
        other => Err(ProxyHeaderError::UnsupportedFamily(other)),
    }
}

/// Parses a v1 line, `PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT\r\n`, CRLF
/// included and nothing after it.
pub fn parse_v1(line: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
    use ProxyHeaderError::V1Syntax;
    if line.len() > V1_MAX_LEN {
        return Err(ProxyHeaderError::V1TooLong);
    }
    let text = line.strip_suffix(b"\r\n").ok_or(V1Syntax("it does not end with CRLF"))?;
    let text = std::str::from_utf8(text).map_err(|_| V1Syntax("it is not ASCII"))?;
    let rest = text.strip_prefix("PROXY ").ok_or(V1Syntax("it does not start with `PROXY `"))?;
    let fields: Vec<&str> = rest.split(' ').collect();
    let (family, fields) = fields.split_first().ok_or(V1Syntax("no protocol"))?;
    let v6 = match *family {
        "TCP4" => false,
        "TCP6" => true,
        "UNKNOWN" => return Err(ProxyHeaderError::V1Unknown),
        _ => return Err(V1Syntax("the protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let [source, destination, source_port, destination_port] = fields else {
        return Err(V1Syntax("it does not have two addresses and two ports, one space apart"));
    };
    let address = |text: &str| -> Result<IpAddr, ProxyHeaderError> {
        if v6 {
            text.parse::<Ipv6Addr>().map(IpAddr::V6).map_err(|_| V1Syntax("an address is not IPv6"))
        } else {
            text.parse::<Ipv4Addr>().map(IpAddr::V4).map_err(|_| V1Syntax("an address is not IPv4"))
        }
    };
    let port = |text: &str| -> Result<u16, ProxyHeaderError> {
        let plain = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        plain.then(|| text.parse().ok()).flatten().ok_or(V1Syntax("a port is not a number from 0 to 65535"))
    };
    Ok(ProxyHeader::Proxied {
        source: SocketAddr::new(address(source)?, port(source_port)?),
        destination: SocketAddr::new(address(destination)?, port(destination_port)?),
    })
}

/// The first `N` bytes of the block, or `TooShort`.
fn take<const N: usize>(block: &[u8]) -> Result<[u8; N], ProxyHeaderError> {
    block
        .get(..N)
        .and_then(|bytes| <[u8; N]>::try_from(bytes).ok())
        .ok_or(ProxyHeaderError::TooShort { length: block.len(), needed: N })
}

/// Encodes a `PROXY` header for TCP from `source` to `destination` (both of one
/// family), as a load balancer would send it. For tests and tools.
pub fn encode_proxied(source: SocketAddr, destination: SocketAddr) -> Option<Vec<u8>> {
    let mut out = SIGNATURE.to_vec();
    out.push(0x21);
    match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.extend_from_slice(&[0x11, 0, 12]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            out.extend_from_slice(&[0x21, 0, 36]);
            out.extend_from_slice(&s.octets());
            out.extend_from_slice(&d.octets());
        }
        _ => return None,
    }
    out.extend_from_slice(&source.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    Some(out)
}

/// Encodes a `LOCAL` header (no addresses), as a proxy's health check sends it.
pub fn encode_local() -> Vec<u8> {
    let mut out = SIGNATURE.to_vec();
    out.extend_from_slice(&[0x20, 0x00, 0, 0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Splits encoded bytes as the server reads them and parses them.
    fn parse(bytes: &[u8]) -> Result<ProxyHeader, ProxyHeaderError> {
        let fixed: [u8; FIXED_LEN] = bytes[..FIXED_LEN].try_into().unwrap();
        let length = parse_fixed(&fixed)?;
        parse_block(&fixed, &bytes[FIXED_LEN..FIXED_LEN + length])
    }

    #[test]
    fn a_tcp4_header_gives_the_client_and_the_address_it_dialled() {
        let source: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        let destination: SocketAddr = "10.0.0.2:6543".parse().unwrap();
        let bytes = encode_proxied(source, destination).unwrap();
        assert_eq!(bytes.len(), 28);
        assert_eq!(parse(&bytes), Ok(ProxyHeader::Proxied { source, destination }));
    }

    #[test]
    fn a_tcp6_header_gives_the_client_and_the_address_it_dialled() {
        let source: SocketAddr = "[2001:db8::7]:40000".parse().unwrap();
        let destination: SocketAddr = "[2001:db8::1]:6543".parse().unwrap();
        let bytes = encode_proxied(source, destination).unwrap();
        assert_eq!(bytes.len(), 52);
        assert_eq!(parse(&bytes), Ok(ProxyHeader::Proxied { source, destination }));
    }

    #[test]
    fn tlvs_after_the_addresses_are_skipped() {
        let source: SocketAddr = "198.51.100.1:1".parse().unwrap();
        let mut bytes = encode_proxied(source, "10.0.0.2:6543".parse().unwrap()).unwrap();
        let tlv = [0x04, 0x00, 0x03, b'a', b'b', b'c']; // PP2_TYPE_NOOP with 3 bytes
        bytes.extend_from_slice(&tlv);
        bytes[15] += tlv.len() as u8;
        assert!(matches!(parse(&bytes), Ok(ProxyHeader::Proxied { source: s, .. }) if s == source));
    }

    #[test]
    fn local_is_the_proxy_itself_whatever_its_address_block() {
        assert_eq!(parse(&encode_local()), Ok(ProxyHeader::Local));
        // LOCAL with an IPv4 block (some proxies send one): still the proxy itself.
        let mut bytes = encode_proxied("1.2.3.4:5".parse().unwrap(), "6.7.8.9:10".parse().unwrap()).unwrap();
        bytes[12] = 0x20;
        assert_eq!(parse(&bytes), Ok(ProxyHeader::Local));
    }

    #[test]
    fn malformed_headers_are_refused_each_with_its_reason() {
        let good = encode_proxied("1.2.3.4:5".parse().unwrap(), "6.7.8.9:10".parse().unwrap()).unwrap();
        let with = |at: usize, value: u8| {
            let mut bytes = good.clone();
            bytes[at] = value;
            bytes
        };
        let fixed = |bytes: &[u8]| -> [u8; FIXED_LEN] { bytes[..FIXED_LEN].try_into().unwrap() };

        assert_eq!(parse_fixed(&fixed(&with(0, b'X'))), Err(ProxyHeaderError::NoSignature));
        assert_eq!(parse_start(&fixed(&with(0, b'X'))), Err(ProxyHeaderError::NoSignature));
        assert_eq!(parse_start(&fixed(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n")), Ok(HeaderStart::V1));
        assert_eq!(parse_start(&fixed(&good)), Ok(HeaderStart::V2 { block_len: 12 }));
        assert_eq!(parse_fixed(&fixed(&with(12, 0x11))), Err(ProxyHeaderError::UnsupportedVersion(1)));
        assert_eq!(parse_fixed(&fixed(&with(12, 0x22))), Err(ProxyHeaderError::UnknownCommand(2)));
        assert_eq!(parse(&with(13, 0x12)), Err(ProxyHeaderError::UnsupportedFamily(0x12)), "UDP");
        assert_eq!(parse(&with(13, 0x31)), Err(ProxyHeaderError::UnsupportedFamily(0x31)), "UNIX");
        assert_eq!(parse(&with(13, 0x00)), Err(ProxyHeaderError::UnsupportedFamily(0)), "PROXY of nothing");
        // IPv6 announced with an IPv4-sized block.
        assert_eq!(parse(&with(13, 0x21)), Err(ProxyHeaderError::TooShort { length: 12, needed: 36 }));
        let mut long = fixed(&good);
        long[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(parse_fixed(&long), Err(ProxyHeaderError::TooLong { length: 65535 }));
        assert!(matches!(parse_block(&fixed(&good), &good[16..20]), Err(ProxyHeaderError::TooShort { .. })));
    }

    #[test]
    fn a_v1_line_as_nginx_sends_it_gives_the_client() {
        let header = parse_v1(b"PROXY TCP4 203.0.113.7 10.0.0.2 40000 6543\r\n").unwrap();
        assert_eq!(
            header,
            ProxyHeader::Proxied {
                source: "203.0.113.7:40000".parse().unwrap(),
                destination: "10.0.0.2:6543".parse().unwrap()
            }
        );
        let header = parse_v1(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n").unwrap();
        assert!(
            matches!(header, ProxyHeader::Proxied { source, .. } if source == "[2001:db8::7]:1".parse().unwrap())
        );
        let longest =
            format!("PROXY TCP6 {0} {0} 65535 65535\r\n", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        assert_eq!(longest.len(), V1_MAX_LEN - 3, "the bound is that of the same line with UNKNOWN");
        assert!(parse_v1(longest.as_bytes()).is_ok());
    }

    #[test]
    fn malformed_v1_lines_are_refused() {
        for line in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY \xff 1.2.3.4 5.6.7.8 1 2\r\n",
            b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert!(
                matches!(parse_v1(line), Err(ProxyHeaderError::V1Syntax(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(line),
                parse_v1(line)
            );
        }
        assert_eq!(parse_v1(b"PROXY UNKNOWN\r\n"), Err(ProxyHeaderError::V1Unknown));
        assert_eq!(parse_v1(&[b'P'; 108]), Err(ProxyHeaderError::V1TooLong));
    }

    #[test]
    fn the_first_bytes_tell_a_proxy_header_from_tls_and_requests() {
        let header = encode_local();
        assert_eq!(classify_preamble(&header[..1]), Preamble::NeedMore);
        assert_eq!(classify_preamble(&header[..11]), Preamble::NeedMore);
        assert_eq!(classify_preamble(&header[..12]), Preamble::Proxy);
        assert_eq!(classify_preamble(&header), Preamble::Proxy);
        assert_eq!(classify_preamble(b"PROXY TCP4 "), Preamble::Proxy);
        assert_eq!(classify_preamble(b"PRO"), Preamble::NeedMore);
        assert_eq!(classify_preamble(&[0x16, 0x03, 0x01]), Preamble::Other, "a TLS ClientHello");
        assert_eq!(classify_preamble(&[0x0d, 0x0a, b'{']), Preamble::Other, "a 3338-byte plaintext request");
        assert_eq!(classify_preamble(&[0x00, 0x40]), Preamble::Other);
        assert_eq!(classify_preamble(&[]), Preamble::Other);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = classify_preamble(&bytes);
            let mut fixed = [0u8; FIXED_LEN];
            let n = bytes.len().min(FIXED_LEN);
            fixed[..n].copy_from_slice(&bytes[..n]);
            let _ = parse_fixed(&fixed);
            let _ = parse_start(&fixed);
            let _ = parse_block(&fixed, &bytes[n..]);
            let _ = parse_v1(&bytes);
            let mut line = b"PROXY ".to_vec();
            line.extend_from_slice(&bytes);
            let _ = parse_v1(&line);
        }

        #[test]
        fn any_block_after_a_valid_signature_never_panics(
            ver_cmd in any::<u8>(), family in any::<u8>(), block in proptest::collection::vec(any::<u8>(), 0..80)
        ) {
            let mut fixed = [0u8; FIXED_LEN];
            fixed[..12].copy_from_slice(&SIGNATURE);
            fixed[12] = ver_cmd;
            fixed[13] = family;
            fixed[14..16].copy_from_slice(&(block.len() as u16).to_be_bytes());
            let _ = parse_block(&fixed, &block);
        }

        #[test]
        fn every_encoded_address_parses_back(a in any::<[u8; 4]>(), b in any::<[u8; 4]>(), p in any::<u16>(), q in any::<u16>()) {
            let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), p);
            let destination = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(b)), q);
            prop_assert_eq!(parse(&encode_proxied(source, destination).unwrap()), Ok(ProxyHeader::Proxied { source, destination }));
        }
    }
}
