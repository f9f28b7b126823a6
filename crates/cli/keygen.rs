//! `fts keygen`: runs fts-trust with the options resolved in
//! [`crate::config::Keygen`], and prints what was written. All the cryptography and every file rule (0600 keys, no
//! overwrite without `--force`, the issued index) live in fts-trust.

use fts_trust::crl::CrlWritten;
use fts_trust::enrol::{self, CsrOptions, SignOptions};
use fts_trust::keygen::{
    self, CaOptions, ClientOptions, Issued, ServerOptions, SigningOptions, TimestampOptions,
};
use fts_trust::revocation::{self, CrlOptions, RevokeOptions};
use fts_trust::ticket_key::{self, TicketKeyOptions};

use crate::config::Keygen;

pub fn run(command: Keygen) -> anyhow::Result<()> {
    match command {
        Keygen::Ca(options) => ca(&options),
        Keygen::Server(options) => server(&options),
        Keygen::Client(options) => client(&options),
        Keygen::Signing(options) => signing(&options),
        Keygen::Timestamp(options) => timestamp(&options),
        Keygen::Csr(options) => csr(&options),
        Keygen::Sign(options) => sign(&options),
        Keygen::Revoke(options) => revoke(&options),
        Keygen::Crl(options) => crl(&options),
        Keygen::Rotate(args) => crate::rotate::run(&args),
        Keygen::TicketKey(options) => ticket_key(&options),
    }
}

fn ca(options: &CaOptions) -> anyhow::Result<()> {
    let issued = keygen::ca(options)?;
    print_issued("CA", &issued);
    Ok(())
}

fn server(options: &ServerOptions) -> anyhow::Result<()> {
    let issued = keygen::server(options)?;
    print_issued("server certificate", &issued);
    Ok(())
}

fn client(options: &ClientOptions) -> anyhow::Result<()> {
    let issued = keygen::client(options)?;
    print_issued("client certificate", &issued);
    Ok(())
}

fn signing(options: &SigningOptions) -> anyhow::Result<()> {
    let written = keygen::signing(options)?;

    println!(
        "wrote {} (private, keep it on the signing host) and {} (give it to every host)",
        written.key_path.display(),
        written.public_key_path.display()
    );
    println!("  key id {}", written.key_id);
    println!(
        "wrote {} (the next release key {}, committed to in {}): move it offline, apart from {}; `fts keygen rotate` uses it",
        written.next_key_path.display(),
        written.next_key_id,
        written.public_key_path.display(),
        written.key_path.display()
    );
    println!(
        "  log origin {} (in {}: it names the log whose checkpoints this key signs)",
        written.log_origin,
        written.origin_path.display()
    );
    Ok(())
}

fn timestamp(options: &TimestampOptions) -> anyhow::Result<()> {
    let written = keygen::timestamp(options)?;
    println!("wrote {} and {}", written.key_path.display(), written.public_key_path.display());
    println!("  timestamp key {}, key id {}", written.name, written.key_id);
    println!("  {}: private, only on the timestamp machine", written.key_path.display());
    println!(
        "  {}: give it to every host, as `fts poll --timestamp-key {}`",
        written.public_key_path.display(),
        written.public_key_path.display()
    );
    Ok(())
}

fn ticket_key(options: &TicketKeyOptions) -> anyhow::Result<()> {
    let written = ticket_key::ticket_key(options)?;
    let path = written.path.display();
    let sealing = written.keys.sealing().id;
    match written.rotated_from {
        None => println!("wrote {path} (private, like server.key): key {sealing} seals session tickets"),
        Some(before) => println!("rotated {path}: key {sealing} seals now, {before} only opens"),
    }
    println!(
        "  next: copy {path} to every server behind the load balancer (`fts serve --ticket-key {path}`) \
         and send each SIGHUP; rotate it daily with `fts keygen ticket-key --rotate`"
    );
    Ok(())
}

fn csr(options: &CsrOptions) -> anyhow::Result<()> {
    let written = enrol::csr(options)?;
    println!(
        "wrote {} (private, it stays on this host) and {}",
        written.key_path.display(),
        written.csr_path.display()
    );
    println!(
        "  next: copy {} to the CA host and run `fts keygen sign {}.csr [--group G]...` there; \
         bring the {}.crt it writes back beside the key",
        written.csr_path.display(),
        written.id,
        written.id
    );
    Ok(())
}

fn sign(options: &SignOptions) -> anyhow::Result<()> {
    let signed = enrol::sign(options)?;
    println!("wrote {}", signed.cert_path.display());
    let groups: Vec<&str> = signed.groups.iter().map(|g| g.as_str()).collect();
    println!(
        "  client certificate for {}, groups: {}, serial {}, valid from {} until {}",
        signed.id,
        if groups.is_empty() { "none".to_owned() } else { groups.join(", ") },
        signed.serial,
        signed.not_before.date(),
        signed.not_after.date()
    );
    println!(
        "  profile set by the signer: not a CA, clientAuth only, no SAN, CN = id, O = the --group flags"
    );
    if signed.ignored.is_empty() {
        println!("  the CSR asked for nothing beyond its CN and key");
    } else {
        println!("  the CSR asked for: {}; ignored", signed.ignored.join(", "));
    }
    if let Some(stale) = &signed.stale_key {
        println!(
            "  note: {} is from an earlier certificate and does not match this one; the host's own key does",
            stale.display()
        );
    }
    Ok(())
}

fn revoke(options: &RevokeOptions) -> anyhow::Result<()> {
    let summary = revocation::revoke(options)?;
    let list = |serials: &[fts_trust::Serial]| {
        serials.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    };
    if !summary.newly_revoked.is_empty() {
        println!(
            "revoked {} certificate(s) of {}: {}",
            summary.newly_revoked.len(),
            summary.id,
            list(&summary.newly_revoked)
        );
    }
    if !summary.already_revoked.is_empty() {
        println!("already revoked before: {}", list(&summary.already_revoked));
    }
    print_crl(&summary.crl);
    Ok(())
}

fn crl(options: &CrlOptions) -> anyhow::Result<()> {
    let written = revocation::renew_crl(options)?;
    print_crl(&written);
    Ok(())
}

fn print_crl(written: &CrlWritten) {
    let crl = &written.crl;
    println!(
        "wrote {}: crl number {}, {} revoked certificate(s), next update {}",
        written.path.display(),
        crl.number().map_or_else(|| "none".to_owned(), |n| n.to_string()),
        crl.revoked_serials().len(),
        crl.next_update().map_or_else(|| "none".to_owned(), fts_trust::issued::rfc3339)
    );
    println!("  give it to the server (it picks up a changed CRL within seconds); renew it before then");
}

fn print_issued(what: &str, issued: &Issued) {
    println!("wrote {} and {}", issued.cert_path.display(), issued.key_path.display());
    println!(
        "  {what} for {}, serial {}, valid until {}",
        issued.subject,
        issued.serial,
        issued.not_after.date()
    );
}
