//! `fts keygen`: turns the flags into fts-trust's option structs, runs it, and prints
//! what was written. All the cryptography and every file rule (0600 keys, no
//! overwrite without `--force`, the issued index) live in fts-trust.

use fts_proto::{ClientId, GroupName};
use fts_trust::crl::CrlWritten;
use fts_trust::enrol::{self, CsrOptions, SignOptions};
use fts_trust::keygen::{self, CaOptions, ClientOptions, Issued, ServerOptions, SigningOptions};
use fts_trust::revocation::{self, CrlOptions, RevokeOptions};

use crate::UsageError;
use crate::args::{
    KeygenCaArgs, KeygenClientArgs, KeygenCommand, KeygenCrlArgs, KeygenCsrArgs, KeygenRevokeArgs,
    KeygenServerArgs, KeygenSignArgs, KeygenSigningArgs,
};

pub fn run(command: KeygenCommand) -> anyhow::Result<()> {
    match command {
        KeygenCommand::Ca(args) => ca(args),
        KeygenCommand::Server(args) => server(args),
        KeygenCommand::Client(args) => client(args),
        KeygenCommand::Signing(args) => signing(args),
        KeygenCommand::Csr(args) => csr(args),
        KeygenCommand::Sign(args) => sign(args),
        KeygenCommand::Revoke(args) => revoke(args),
        KeygenCommand::Crl(args) => crl(args),
    }
}

fn parse_groups(groups: &[String]) -> Result<Vec<GroupName>, UsageError> {
    groups.iter().map(|g| GroupName::parse(g).map_err(|e| UsageError(format!("--group: {e}")))).collect()
}

fn ca(args: KeygenCaArgs) -> anyhow::Result<()> {
    let issued = keygen::ca(&CaOptions { dir: args.dir.dir, days: args.days, force: args.dir.force })?;
    print_issued("CA", &issued);
    Ok(())
}

fn server(args: KeygenServerArgs) -> anyhow::Result<()> {
    if args.names.is_empty() {
        return Err(UsageError(
            "`fts keygen server` needs at least one --name: each DNS name or IP address clients dial".into(),
        )
        .into());
    }
    let issued = keygen::server(&ServerOptions {
        dir: args.dir.dir,
        names: args.names,
        days: args.days,
        force: args.dir.force,
    })?;
    print_issued("server certificate", &issued);
    Ok(())
}

fn client(args: KeygenClientArgs) -> anyhow::Result<()> {
    let id = args
        .id
        .ok_or_else(|| UsageError("`fts keygen client` needs --id ID, the host's client id".into()))?;
    let id = ClientId::parse(&id).map_err(|e| UsageError(format!("--id: {e}")))?;
    let groups = parse_groups(&args.groups)?;
    let issued = keygen::client(&ClientOptions {
        dir: args.dir.dir,
        id,
        groups,
        days: args.days,
        force: args.dir.force,
    })?;
    print_issued("client certificate", &issued);
    Ok(())
}

fn signing(args: KeygenSigningArgs) -> anyhow::Result<()> {
    let written = keygen::signing(&SigningOptions { dir: args.dir.dir, force: args.dir.force })?;
    println!(
        "wrote {} (private, keep it on the signing host) and {} (give it to every host)",
        written.key_path.display(),
        written.public_key_path.display()
    );
    println!("  key id {}", written.key_id);
    Ok(())
}

fn csr(args: KeygenCsrArgs) -> anyhow::Result<()> {
    let id =
        args.id.ok_or_else(|| UsageError("`fts keygen csr` needs --id ID, this host's client id".into()))?;
    let id = ClientId::parse(&id).map_err(|e| UsageError(format!("--id: {e}")))?;
    let written = enrol::csr(&CsrOptions { dir: args.dir.dir, id, force: args.dir.force })?;
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

fn sign(args: KeygenSignArgs) -> anyhow::Result<()> {
    let groups = parse_groups(&args.groups)?;
    let signed = enrol::sign(&SignOptions {
        dir: args.dir.dir,
        csr: args.csr,
        groups,
        days: args.days,
        force: args.dir.force,
    })?;
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

fn revoke(args: KeygenRevokeArgs) -> anyhow::Result<()> {
    let id = ClientId::parse(&args.id).map_err(|e| UsageError(format!("ID: {e}")))?;
    let summary = revocation::revoke(&RevokeOptions { dir: args.crl.dir, id, crl_days: args.crl.crl_days })?;
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

fn crl(args: KeygenCrlArgs) -> anyhow::Result<()> {
    let written = revocation::renew_crl(&CrlOptions { dir: args.crl.dir, crl_days: args.crl.crl_days })?;
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
