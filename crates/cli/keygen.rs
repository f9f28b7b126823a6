//! `fts keygen`: turns the flags into fts-trust's option structs, runs it, and prints
//! what was written. All the cryptography and every file rule (0600 keys, no
//! overwrite without `--force`, the issued index) live in fts-trust.

use fts_proto::{ClientId, GroupName};
use fts_trust::keygen::{self, CaOptions, ClientOptions, Issued, ServerOptions, SigningOptions};

use crate::UsageError;
use crate::args::{KeygenCaArgs, KeygenClientArgs, KeygenCommand, KeygenServerArgs, KeygenSigningArgs};

pub fn run(command: KeygenCommand) -> anyhow::Result<()> {
    match command {
        KeygenCommand::Ca(args) => ca(args),
        KeygenCommand::Server(args) => server(args),
        KeygenCommand::Client(args) => client(args),
        KeygenCommand::Signing(args) => signing(args),
    }
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
    let groups = args
        .groups
        .iter()
        .map(|g| GroupName::parse(g).map_err(|e| UsageError(format!("--group: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
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

fn print_issued(what: &str, issued: &Issued) {
    println!("wrote {} and {}", issued.cert_path.display(), issued.key_path.display());
    println!(
        "  {what} for {}, serial {}, valid until {}",
        issued.subject,
        issued.serial,
        issued.not_after.date()
    );
}
