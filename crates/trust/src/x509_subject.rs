//! Certificates whose subject repeats an attribute type: one O per group
//! (PROTOCOL.md section 4), which rcgen 0.14 cannot write by itself.
//!
//! rcgen's `DistinguishedName` holds one value per attribute type (rustls/rcgen#81),
//! so a second O would replace the first. [`sign_with_subject`] therefore writes each
//! attribute under a placeholder type of its own whose DER encoding has exactly the
//! length of the real one, swaps the real OIDs in inside the subject of the
//! to-be-signed bytes only (lengths unchanged, so the DER stays valid), and has the
//! issuer sign those bytes again. Callers check that the result reads back as asked
//! (`client_identity`); the tests here and in `tests/` verify it with rustls, webpki
//! and openssl. Private to the crate: a future rcgen that fixes #81 lets it go.

use rcgen::{CertificateParams, DistinguishedName, DnType, Issuer};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::Error;

/// A subject attribute that may appear several times in one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubjectAttribute {
    /// CN, 2.5.4.3
    CommonName,
    /// O, 2.5.4.10: one per group
    Organization,
}

impl SubjectAttribute {
    /// The last byte of the attribute's OID `2.5.4.x` (DER `06 03 55 04 x`).
    fn oid_last_byte(self) -> u8 {
        match self {
            SubjectAttribute::CommonName => 3,
            SubjectAttribute::Organization => 10,
        }
    }
}

/// Placeholder attribute types `2.5.99.i`: unassigned, and DER-encoded in exactly as
/// many bytes (`06 03 55 63 i`) as the real `2.5.4.x` they stand for.
const PLACEHOLDER_ARC: u8 = 99;
const MAX_SUBJECT_ATTRIBUTES: usize = 128;

/// Signs `params` for `subject_key` by `issuer`, with `attributes` (in order) as the
/// subject in place of `params.distinguished_name`, where an attribute type may
/// appear several times (see the module docs for how).
pub(crate) fn sign_with_subject(
    params: &CertificateParams,
    attributes: &[(SubjectAttribute, &str)],
    subject_key: &impl rcgen::PublicKeyData,
    issuer: &Issuer<'_, impl rcgen::SigningKey>,
) -> Result<CertificateDer<'static>, Error> {
    if attributes.len() > MAX_SUBJECT_ATTRIBUTES {
        return Err(Error::CertificateEncoding(format!(
            "at most {MAX_SUBJECT_ATTRIBUTES} subject attributes"
        )));
    }
    let mut params = params.clone();
    params.distinguished_name = DistinguishedName::new();
    for (i, (_, value)) in attributes.iter().enumerate() {
        let placeholder = DnType::CustomDnType(vec![2, 5, u64::from(PLACEHOLDER_ARC), i as u64]);
        params.distinguished_name.push(placeholder, *value);
    }
    let draft = params.signed_by(subject_key, issuer)?;
    let der = draft.der().as_ref();
    let bad = |what: &str| Error::CertificateEncoding(format!("cannot rewrite the subject: {what}"));

    let (_, parsed) = X509Certificate::from_der(der).map_err(|_| bad("rcgen output does not parse"))?;
    let tbs = parsed.tbs_certificate.as_ref();
    let subject = parsed.tbs_certificate.subject.as_raw();
    // Both slices borrow from `der`: their distance is the subject's place in the TBS.
    let start =
        (subject.as_ptr() as usize).checked_sub(tbs.as_ptr() as usize).ok_or_else(|| bad("layout"))?;
    let mut new_tbs = tbs.to_vec();
    let region = new_tbs.get_mut(start..start + subject.len()).ok_or_else(|| bad("layout"))?;
    let mut replaced = 0;
    for (i, (attribute, _)) in attributes.iter().enumerate() {
        let placeholder = [0x06, 0x03, 0x55, PLACEHOLDER_ARC, i as u8];
        let at =
            region.windows(5).position(|w| w == placeholder).ok_or_else(|| bad("placeholder not found"))?;
        region[at + 3] = 0x04;
        region[at + 4] = attribute.oid_last_byte();
        replaced += 1;
    }
    if replaced != attributes.len() {
        return Err(bad("placeholder count"));
    }

    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let outer_header = tlv_header_len(der).ok_or_else(|| bad("outer header"))?;
    let alg_start = outer_header + tbs.len();
    let alg_len = der.get(alg_start..).and_then(tlv_total_len).ok_or_else(|| bad("signature algorithm"))?;
    let algorithm = &der[alg_start..alg_start + alg_len];
    let signature = issuer.key().sign(&new_tbs)?;

    let mut bit_string = vec![0u8]; // no unused bits
    bit_string.extend_from_slice(&signature);
    let mut body = new_tbs;
    body.extend_from_slice(algorithm);
    push_tlv(&mut body, 0x03, &bit_string);
    let mut cert = Vec::with_capacity(body.len() + 4);
    push_tlv(&mut cert, 0x30, &body);
    Ok(CertificateDer::from(cert))
}

/// Appends a DER TLV with a definite length.
fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
}

/// (header length, content length) of the DER TLV at the start of `der`.
fn tlv_lengths(der: &[u8]) -> Option<(usize, usize)> {
    let first = *der.get(1)?;
    if first < 0x80 {
        return Some((2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let len = der.get(2..2 + n)?.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Some((2 + n, len))
}

fn tlv_header_len(der: &[u8]) -> Option<usize> {
    tlv_lengths(der).map(|(header, _)| header)
}

fn tlv_total_len(der: &[u8]) -> Option<usize> {
    tlv_lengths(der).map(|(header, content)| header + content)
}

#[cfg(test)]
mod tests {
    use rcgen::{CertifiedIssuer, KeyPair, PKCS_ECDSA_P256_SHA256};
    use x509_parser::prelude::{FromDer, X509Certificate};

    use super::*;

    fn issuer() -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        CertifiedIssuer::self_signed(params, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap()).unwrap()
    }

    /// The subject's attributes as (OID, value), in order.
    fn subject_of(der: &[u8]) -> Vec<(String, String)> {
        let (_, cert) = X509Certificate::from_der(der).unwrap();
        cert.subject()
            .iter_attributes()
            .map(|a| (a.attr_type().to_id_string(), a.as_str().unwrap().to_owned()))
            .collect()
    }

    #[test]
    fn an_attribute_type_may_repeat_and_the_issuer_signature_still_verifies() {
        let ca = issuer();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let attributes = [
            (SubjectAttribute::CommonName, "web-01"),
            (SubjectAttribute::Organization, "db"),
            (SubjectAttribute::Organization, "web"),
        ];
        let der = sign_with_subject(&CertificateParams::default(), &attributes, &key, &ca).unwrap();
        assert_eq!(
            subject_of(&der),
            [("2.5.4.3", "web-01"), ("2.5.4.10", "db"), ("2.5.4.10", "web")]
                .map(|(oid, v)| (oid.to_owned(), v.to_owned()))
        );
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let (_, ca_cert) = X509Certificate::from_der(ca.der()).unwrap();
        cert.verify_signature(Some(ca_cert.public_key()))
            .expect("the rewritten TBS is what the issuer signed");
    }

    #[test]
    fn long_subjects_keep_valid_der_lengths() {
        let ca = issuer();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let long = "g".repeat(60);
        let mut attributes = vec![(SubjectAttribute::CommonName, "web-01")];
        attributes.extend(std::iter::repeat_n((SubjectAttribute::Organization, long.as_str()), 40));
        let der = sign_with_subject(&CertificateParams::default(), &attributes, &key, &ca).unwrap();
        assert!(der.len() > 2048, "a subject longer than a one-byte DER length");
        assert_eq!(subject_of(&der).len(), 41);
    }

    #[test]
    fn too_many_attributes_are_refused() {
        let ca = issuer();
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let attributes = vec![(SubjectAttribute::Organization, "g"); MAX_SUBJECT_ATTRIBUTES + 1];
        let err = sign_with_subject(&CertificateParams::default(), &attributes, &key, &ca).unwrap_err();
        assert!(err.to_string().contains("subject attributes"), "{err}");
    }

    #[test]
    fn der_lengths_are_written_in_their_shortest_form() {
        for (len, header) in [
            (0usize, vec![0x04, 0x00]),
            (127, vec![0x04, 0x7f]),
            (128, vec![0x04, 0x81, 0x80]),
            (300, vec![0x04, 0x82, 0x01, 0x2c]),
        ] {
            let mut out = Vec::new();
            push_tlv(&mut out, 0x04, &vec![0; len]);
            assert_eq!(out[..header.len()], header[..], "{len}");
            assert_eq!(tlv_total_len(&out), Some(out.len()));
        }
    }
}
