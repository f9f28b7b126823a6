//! PEM files: reading certificates and TLS private keys with the path in every
//! error, and writing PEM blocks.
//!
//! Parsing goes through rustls-pki-types' `PemObject` (the maintained successor of
//! rustls-pemfile). Files are read whole with a size bound first, so a wrong path
//! (a device, a huge file) fails fast. A file that holds no block of the expected
//! kind is an error, never an empty list: an empty CA file must not mean "trust
//! nothing, silently", nor an empty certificate file "present nothing".

use std::path::Path;

use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::Error;
use crate::files::{MAX_CREDENTIAL_FILE, read_bounded};

/// Every `CERTIFICATE` block of a PEM file, in order (leaf first for a chain). At
/// least one is required.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = read_bounded(path, MAX_CREDENTIAL_FILE)?;
    all_blocks(&bytes, path, "CERTIFICATE")
}

/// The one private key of a PEM file (`PRIVATE KEY`, `EC PRIVATE KEY` or
/// `RSA PRIVATE KEY`), for a TLS certificate. A file with several keys is refused
/// rather than guessed at.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = read_bounded(path, MAX_CREDENTIAL_FILE)?;
    exactly_one_block(&bytes, path, "PRIVATE KEY")
}

/// All blocks of type `T` in `bytes`, at least one. `label` names the expected PEM
/// label in the error.
pub(crate) fn all_blocks<T: PemObject>(bytes: &[u8], path: &Path, label: &str) -> Result<Vec<T>, Error> {
    let blocks = T::pem_slice_iter(bytes)
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| Error::bad_file_because(path, "not valid PEM", e))?;
    if blocks.is_empty() {
        return Err(Error::bad_file(path, format!("no PEM `{label}` block found")));
    }
    Ok(blocks)
}

/// The single block of type `T` in `bytes`.
pub(crate) fn exactly_one_block<T: PemObject>(bytes: &[u8], path: &Path, label: &str) -> Result<T, Error> {
    let mut blocks = all_blocks::<T>(bytes, path, label)?;
    if blocks.len() > 1 {
        return Err(Error::bad_file(
            path,
            format!("{} PEM `{label}` blocks found: exactly one is allowed", blocks.len()),
        ));
    }
    blocks.pop().ok_or_else(|| Error::bad_file(path, format!("no PEM `{label}` block found")))
}

/// One PEM block: standard base64 in lines of 64 characters, `\n` line ends.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.crt");
        std::fs::write(&path, "").unwrap();
        let err = load_certificates(&path).unwrap_err().to_string();
        assert!(err.contains("empty.crt") && err.contains("CERTIFICATE"), "{err}");
        let missing = dir.path().join("missing.crt");
        let err = load_certificates(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.crt"), "{err}");
    }

    #[test]
    fn encoded_blocks_parse_back() {
        let der = (0u8..=200).collect::<Vec<u8>>();
        let pem = encode("CERTIFICATE", &der);
        assert!(pem.lines().all(|l| l.len() <= 64));
        let back: Vec<CertificateDer<'static>> =
            all_blocks(pem.as_bytes(), Path::new("x"), "CERTIFICATE").unwrap();
        assert_eq!(back[0].as_ref(), der.as_slice());
    }
}
