//! What a TLS failure means, in words an operator can act on: the server's certificate
//! that does not match (which name, which CA, which date) and what to check, the alert
//! a server refused this host's certificate with, and a transport error without the
//! library's documentation links or `Debug` dumps.
//!
//! Every piece of text that came from the peer (the names its certificate presents)
//! goes through [`Printable`], so a certificate cannot write escape sequences to the
//! operator's terminal.

use std::io;

use fts_proto::Printable;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, InvalidMessage};

/// Why the server's certificate was not accepted, and what to do about it. `dialled`
/// is the HOST of `--server`.
pub fn server_certificate_problem(problem: &CertificateError, dialled: &ServerName<'_>) -> String {
    let dialled = dialled.to_str();
    let reissue = format!("dial a name it carries, or reissue it with `fts keygen server --name {dialled}`");
    match problem {
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names: Vec<String> = presented.iter().map(|name| presented_name(name)).collect();
            let names = match names.as_slice() {
                [] => "no name at all".to_owned(),
                [one] => one.clone(),
                [most @ .., last] => format!("{} and {last}", most.join(", ")),
            };
            format!("the server's certificate names {names}, not {dialled}: {reissue}")
        }
        CertificateError::NotValidForName => {
            format!("the server's certificate does not name {dialled}: {reissue}")
        }
        CertificateError::UnknownIssuer => {
            "the server's certificate was not issued by the CA this host trusts \
             (--ca): check that --ca is the ca.crt of the CA that issued the server's certificate"
                .to_owned()
        }
        CertificateError::BadSignature
        | CertificateError::UnsupportedSignatureAlgorithmContext { .. }
        | CertificateError::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
            "the server's certificate does not verify with the key of the CA this host trusts (--ca): \
             it was signed by another CA (perhaps one of the same name); check that --ca is the ca.crt \
             of the CA that issued the server's certificate"
                .to_owned()
        }
        CertificateError::ExpiredContext { not_after, .. } => format!(
            "the server's certificate expired on {}: renew it with `fts keygen server` (or check this \
             host's clock)",
            date(*not_after)
        ),
        CertificateError::Expired => {
            "the server's certificate has expired: renew it with `fts keygen server` (or check this host's \
             clock)"
                .to_owned()
        }
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the server's certificate is not valid before {}: check the clocks of this host and of the CA",
            date(*not_before)
        ),
        CertificateError::NotValidYet => {
            "the server's certificate is not valid yet: check the clocks of this host and of the CA"
                .to_owned()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's certificate does not allow server authentication (no serverAuth extended key \
             usage): reissue it with `fts keygen server`"
                .to_owned()
        }
        CertificateError::BadEncoding => {
            "the server's certificate is not a well-formed certificate".to_owned()
        }
        other => format!("the server's certificate is not acceptable: {}", Printable(&other.to_string())),
    }
}

/// A name as webpki lists it (`DnsName("a.example")`, `IpAddress(192.0.2.1)`), as the
/// operator would write it, escaped.
fn presented_name(name: &str) -> String {
    let plain = name
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| name.strip_prefix("IpAddress(").and_then(|rest| rest.strip_suffix(')')))
        .unwrap_or(name);
    Printable(plain).to_string()
}

fn date(t: UnixTime) -> String {
    let secs = i64::try_from(t.as_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|d| d.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("unix time {secs}"))
}

/// What a server's alert says about this host's certificate, after "the server refused
/// this host's certificate ...: HOST".
pub fn refusal_detail(alert: &AlertDescription) -> String {
    let said = match alert {
        AlertDescription::CertificateRevoked => "it is revoked",
        AlertDescription::CertificateExpired => "it has expired or is not valid yet",
        AlertDescription::UnknownCA | AlertDescription::DecryptError => {
            "it was not issued by the server's client CA"
        }
        AlertDescription::CertificateRequired => "none was presented",
        AlertDescription::BadCertificate
        | AlertDescription::UnsupportedCertificate
        | AlertDescription::CertificateUnknown
        | AlertDescription::AccessDenied => "it is not acceptable",
        other => return format!("says no with TLS alert {}", u8::from(*other)),
    };
    format!("says {said}")
}

/// A TLS alert that ends a handshake before this host's certificate was even sent.
pub fn handshake_alert(alert: &AlertDescription) -> String {
    match alert {
        AlertDescription::NoApplicationProtocol => {
            "the server does not speak the fts protocol (no ALPN fts/1): is it an fts server?".to_owned()
        }
        AlertDescription::ProtocolVersion | AlertDescription::HandshakeFailure => {
            "the server and this host share no TLS version or cipher (fts needs TLS 1.3)".to_owned()
        }
        other => format!("the server ended the handshake with TLS alert {}", u8::from(*other)),
    }
}

/// The rustls error inside an I/O error, if any.
pub fn tls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

/// A rustls error that is not about a certificate, in words where it helps.
pub fn other_tls_error(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType) => {
            "the server does not answer in TLS (is it a plaintext server? then poll it with --plaintext)"
                .to_owned()
        }
        other => Printable(&other.to_string()).to_string(),
    }
}

/// An I/O error as one line: an unclean TLS close is said in words (rustls' message
/// carries a documentation link), a TLS alert by its meaning.
pub fn io_reason(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return "the connection closed in the middle (without a TLS close_notify)".to_owned();
    }
    match tls_error(e) {
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the server ended the connection with TLS alert {}", u8::from(*alert))
        }
        Some(other) => other_tls_error(other),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(host: &str) -> ServerName<'static> {
        ServerName::try_from(host.to_owned()).unwrap()
    }

    #[test]
    fn a_name_mismatch_says_which_names_and_how_to_fix_it() {
        let problem = CertificateError::NotValidForNameContext {
            expected: name("127.0.0.1"),
            presented: vec!["DnsName(\"fts.example.net\")".into()],
        };
        assert_eq!(
            server_certificate_problem(&problem, &name("127.0.0.1")),
            "the server's certificate names fts.example.net, not 127.0.0.1: dial a name it carries, or \
             reissue it with `fts keygen server --name 127.0.0.1`"
        );
        let several = CertificateError::NotValidForNameContext {
            expected: name("a.example"),
            presented: vec![
                "DnsName(\"b.example\")".into(),
                "IpAddress(192.0.2.1)".into(),
                "DnsName(\"c\")".into(),
            ],
        };
        let text = server_certificate_problem(&several, &name("a.example"));
        assert!(
            text.starts_with("the server's certificate names b.example, 192.0.2.1 and c, not a.example"),
            "{text}"
        );
    }

    #[test]
    fn a_presented_name_cannot_write_escape_sequences() {
        let problem = CertificateError::NotValidForNameContext {
            expected: name("a.example"),
            presented: vec!["DnsName(\"evil\u{1b}[2K.example\")".into()],
        };
        let text = server_certificate_problem(&problem, &name("a.example"));
        assert!(!text.contains('\u{1b}') && text.contains(r"evil\u{1b}[2K.example"), "{text}");
    }

    #[test]
    fn no_message_is_a_debug_dump() {
        let problems = [
            CertificateError::UnknownIssuer,
            CertificateError::BadSignature,
            CertificateError::Expired,
            CertificateError::ExpiredContext {
                time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(2_000_000_000)),
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_761_675_421)),
            },
            CertificateError::InvalidPurpose,
            CertificateError::NotValidYet,
        ];
        for problem in problems {
            let text = server_certificate_problem(&problem, &name("localhost"));
            assert!(
                !text.contains('{') && !text.contains("BadSignature") && !text.contains("UnknownIssuer"),
                "{text}"
            );
        }
        let expired = server_certificate_problem(
            &CertificateError::ExpiredContext {
                time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(2_000_000_000)),
                not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_761_675_421)),
            },
            &name("localhost"),
        );
        assert!(expired.contains("expired on 2025-10-28T18:17:01Z"), "{expired}");
    }

    #[test]
    fn an_unclean_close_is_said_without_a_documentation_link() {
        let eof = io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "peer closed connection without sending TLS close_notify: https://docs.rs/rustls/latest/",
        );
        let text = io_reason(&eof);
        assert!(!text.contains("https://"), "{text}");
    }

    #[test]
    fn refusal_alerts_are_said_in_words() {
        assert_eq!(refusal_detail(&AlertDescription::CertificateRevoked), "says it is revoked");
        assert_eq!(
            refusal_detail(&AlertDescription::DecryptError),
            "says it was not issued by the server's client CA"
        );
    }
}
