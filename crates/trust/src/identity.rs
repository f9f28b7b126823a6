//! The client identity a certificate carries (PROTOCOL.md section 4).
//!
//! Owns the rule, and nothing else: the id is the subject's single Common Name, the
//! groups are its Organization values that are valid group names, the certificate
//! must carry the clientAuth extended key usage and must not be a CA. The same
//! function serves the server (the peer's certificate) and the client (its own).
//!
//! It does **not** check the chain, validity dates or revocation: that is the TLS
//! verifier's job ([`crate::tls`]), which runs first. Calling this on a certificate
//! nobody verified proves nothing.
//!
//! O values that are not group names grant nothing. They are returned in
//! [`ClientIdentity::ignored_organizations`] rather than logged here, because this
//! runs on every connection: the caller logs them once (the server's
//! [`crate::tls::ClientAuth::check_session`] does).

use fts_proto::{ClientId, GroupName, Target};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::OID_X509_EXT_BASIC_CONSTRAINTS;
use x509_parser::prelude::FromDer;

use crate::error::IdentityError;

/// Who a certificate says its holder is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The client id: the certificate's one CN.
    pub id: ClientId,
    /// Sorted, without duplicates.
    pub groups: Vec<GroupName>,
    /// Subject O values that are not valid group names, for the log.
    pub ignored_organizations: Vec<String>,
}

impl ClientIdentity {
    /// The identity a client only claims (PROTOCOL.md section 1, without TLS): its id
    /// and no group, so it gets its own entries and `all`, never a group's.
    pub fn claimed(id: ClientId) -> ClientIdentity {
        ClientIdentity { id, groups: Vec::new(), ignored_organizations: Vec::new() }
    }

    /// The targets this client gets, and the only ones (PROTOCOL.md section 4): its id,
    /// `all`, and `group:G` for each of its groups. The server answers from these and
    /// the client accepts entries for nothing else, so both take them from here.
    pub fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::with_capacity(2 + self.groups.len());
        targets.push(Target::Client(self.id.clone()));
        targets.push(Target::All);
        targets.extend(self.groups.iter().cloned().map(Target::Group));
        targets
    }
}

/// Reads the identity of a client certificate (DER), applying every rule of
/// PROTOCOL.md section 4.
pub fn client_identity(cert_der: &[u8]) -> Result<ClientIdentity, IdentityError> {
    let (rest, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| IdentityError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(IdentityError::Malformed("trailing bytes after the certificate".into()));
    }

    // Not a CA. A basicConstraints extension that is present but unreadable is
    // refused too, rather than read as "not a CA".
    for ext in cert.extensions().iter().filter(|e| e.oid == OID_X509_EXT_BASIC_CONSTRAINTS) {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) if !bc.ca => {}
            ParsedExtension::BasicConstraints(_) => return Err(IdentityError::IsCa),
            _ => return Err(IdentityError::Malformed("unreadable basicConstraints extension".into())),
        }
    }

    // clientAuth must be listed explicitly; anyExtendedKeyUsage or no EKU at all is
    // not enough (a certificate made for something else must not become a client).
    let eku = cert.extended_key_usage().map_err(|e| IdentityError::Malformed(e.to_string()))?;
    if !eku.is_some_and(|eku| eku.value.client_auth) {
        return Err(IdentityError::NoClientAuth);
    }

    let subject = cert.subject();
    let common_names: Vec<_> = subject.iter_common_name().collect();
    let common_name = match common_names.as_slice() {
        [] => return Err(IdentityError::NoCommonName),
        [one] => one.as_str().map_err(|_| IdentityError::CommonNameNotText)?,
        several => return Err(IdentityError::SeveralCommonNames { count: several.len() }),
    };
    let id = ClientId::parse(common_name).map_err(IdentityError::InvalidClientId)?;

    let mut groups = Vec::new();
    let mut ignored_organizations = Vec::new();
    for org in subject.iter_organization() {
        match org.as_str().ok().map(GroupName::parse) {
            Some(Ok(group)) => groups.push(group),
            Some(Err(_)) => ignored_organizations.push(org.as_str().unwrap_or_default().to_owned()),
            None => ignored_organizations.push(String::from_utf8_lossy(org.as_slice()).into_owned()),
        }
    }
    groups.sort();
    groups.dedup();
    Ok(ClientIdentity { id, groups, ignored_organizations })
}

/// What status keeps of a certificate: its serial, as lower-case hex of its raw
/// bytes (as [`crate::Crl::revoked_serials`] prints them), and its notAfter time in
/// Unix seconds (0 when before 1970).
pub fn certificate_serial_and_expiry(cert_der: &[u8]) -> Result<(String, u64), IdentityError> {
    let (_, cert) =
        X509Certificate::from_der(cert_der).map_err(|e| IdentityError::Malformed(e.to_string()))?;
    let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    Ok((hex::encode(cert.raw_serial()), not_after))
}

#[cfg(test)]
mod tests {
    use rcgen::{
        BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        PKCS_ECDSA_P256_SHA256,
    };

    use super::*;
    use crate::x509_subject::{SubjectAttribute, sign_with_subject};

    struct Cert {
        params: CertificateParams,
        subject: Vec<(SubjectAttribute, &'static str)>,
    }

    fn cert(cns: &[&'static str], orgs: &[&'static str]) -> Cert {
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let subject = cns
            .iter()
            .map(|cn| (SubjectAttribute::CommonName, *cn))
            .chain(orgs.iter().map(|o| (SubjectAttribute::Organization, *o)))
            .collect();
        Cert { params, subject }
    }

    impl Cert {
        fn der(&self) -> Vec<u8> {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let issuer_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let issuer = Issuer::new(CertificateParams::default(), issuer_key);
            sign_with_subject(&self.params, &self.subject, &key, &issuer).unwrap().to_vec()
        }
    }

    #[test]
    fn a_client_gets_its_id_all_and_its_groups_and_a_claimed_id_no_group() {
        let identity = client_identity(&cert(&["web-01"], &["web", "db"]).der()).unwrap();
        let names: Vec<String> = identity.targets().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["web-01", "all", "group:db", "group:web"]);
        let claimed = ClientIdentity::claimed(ClientId::parse("web-01").unwrap());
        let names: Vec<String> = claimed.targets().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["web-01", "all"]);
    }

    #[test]
    fn groups_are_the_organizations_that_are_group_names() {
        let identity = client_identity(&cert(&["web-01"], &["web", "Acme Inc.", "db", "web"]).der()).unwrap();
        assert_eq!(identity.id.as_str(), "web-01");
        let groups: Vec<&str> = identity.groups.iter().map(|g| g.as_str()).collect();
        assert_eq!(groups, ["db", "web"], "sorted and deduplicated");
        assert_eq!(identity.ignored_organizations, ["Acme Inc."]);
    }

    #[test]
    fn a_certificate_without_organizations_has_no_groups() {
        let identity = client_identity(&cert(&["web-01"], &[]).der()).unwrap();
        assert!(identity.groups.is_empty() && identity.ignored_organizations.is_empty());
    }

    #[test]
    fn a_ca_certificate_is_refused() {
        let mut c = cert(&["web-01"], &[]);
        c.params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        assert_eq!(client_identity(&c.der()), Err(IdentityError::IsCa));
        c.params.is_ca = IsCa::ExplicitNoCa;
        assert!(client_identity(&c.der()).is_ok(), "CA=false is fine");
    }

    #[test]
    fn a_certificate_without_client_auth_is_refused() {
        let mut c = cert(&["web-01"], &[]);
        for ekus in [vec![], vec![ExtendedKeyUsagePurpose::ServerAuth], vec![ExtendedKeyUsagePurpose::Any]] {
            c.params.extended_key_usages = ekus;
            assert_eq!(client_identity(&c.der()), Err(IdentityError::NoClientAuth));
        }
    }

    #[test]
    fn two_common_names_are_refused() {
        let c = cert(&["web-01", "web-02"], &[]);
        assert_eq!(client_identity(&c.der()), Err(IdentityError::SeveralCommonNames { count: 2 }));
    }

    #[test]
    fn a_missing_or_invalid_common_name_is_refused() {
        assert_eq!(client_identity(&cert(&[], &["web"]).der()), Err(IdentityError::NoCommonName));
        for bad in ["Bad Name", "all", "signing", ""] {
            let err = client_identity(&cert(&[bad], &[]).der()).unwrap_err();
            assert!(matches!(err, IdentityError::InvalidClientId(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(client_identity(b"not a certificate"), Err(IdentityError::Malformed(_))));
        let mut der = cert(&["web-01"], &[]).der();
        der.push(0);
        assert!(matches!(client_identity(&der), Err(IdentityError::Malformed(_))));
    }
}
