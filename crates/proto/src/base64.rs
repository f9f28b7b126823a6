//! Strict, canonical standard base64 (RFC 4648 section 4, padding required, unused
//! bits zero), so each byte string has exactly one accepted spelling. Hand-written
//! to keep fts-proto free of dependencies; used for signatures, log hashes and the
//! note signature lines of the log.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The base64 of `bytes`, padded.
pub fn encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let v = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            s.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
        for _ in chunk.len()..3 {
            s.push('=');
        }
    }
    s
}

/// The bytes of canonical base64 text, or `None` for anything else: a character
/// outside the alphabet, missing or extra padding, non-zero unused bits.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let pad = b.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return None;
    }
    let data = &b[..b.len() - pad];
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &c in data {
        acc = (acc << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Whatever is left over are padding bits, which must be zero; and a group of
    // four characters with padding must have been needed (no "AAAA====").
    if acc != 0 || (pad > 0 && bits == 0) {
        return None;
    }
    Some(out)
}

/// Exactly `N` bytes of canonical base64, or `None`.
pub fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    decode(text)?.try_into().ok()
}

fn value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length() {
        for n in 0..70usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(decode(&encode(&bytes)).as_deref(), Some(&bytes[..]), "length {n}");
        }
    }

    #[test]
    fn refuses_non_canonical_spellings() {
        assert_eq!(encode(b"f"), "Zg==");
        for bad in ["Zh==", "Zg=", "Zg", "Zg===", "Z===", "Zg==Zg==", "Zm9v\n", "Zm-v", "AA==="] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        assert_eq!(decode_fixed::<2>("Zm9v"), None);
        assert_eq!(decode_fixed::<3>("Zm9v"), Some(*b"foo"));
    }
}
