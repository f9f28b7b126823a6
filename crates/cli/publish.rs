//! `fts publish FILE --to TARGET...`: checks the names and that every target reaches
//! a host, loads the signing key, and hands the file to the store, which hashes it
//! while copying, numbers it per target under the store lock, signs each statement and
//! appends them all in one record.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fts_proto::{FileName, Target};
use fts_store::Store;
use fts_trust::SigningKey;
use fts_trust::issued::{INDEX_FILE, KnownTargets, TargetCheck};

use crate::UsageError;
use crate::args::PublishArgs;

pub fn run(args: PublishArgs) -> anyhow::Result<()> {
    if args.targets.is_empty() {
        return Err(UsageError(
            "say who receives the file with --to TARGET (a client id, `all`, or `group:NAME`; repeatable)"
                .into(),
        )
        .into());
    }
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t).map_err(|e| UsageError(format!("--to: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let file_name = file_name(&args.file, args.name.as_deref())?;
    if !args.allow_unknown_target {
        check_targets(&args, &targets)?;
    }

    let key = SigningKey::load(&args.signing_key)
        .with_context(|| "publishing needs the release signing key (make one with `fts keygen signing`)")?;
    let store = Store::open_or_create(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    let entries = store.publish(&args.file, &file_name, &targets, &key)?;

    let first = entries.first().map(|e| &e.statement);
    if let Some(statement) = first {
        println!(
            "published {} ({} bytes, {}) at {}, signed by key {}",
            statement.file_name,
            statement.file_size,
            statement.file_hash,
            statement.published,
            key.key_id()
        );
    }
    for entry in &entries {
        println!("  {} seq {}", entry.statement.target, entry.statement.seq);
    }
    Ok(())
}

/// Refuses a target that no issued certificate (and no line of `--known-targets`)
/// has: it would be signed and stored for good, and reach nobody, or whichever host is
/// enrolled under that name one day. A group on an index that predates the groups
/// field cannot be checked: a warning.
fn check_targets(args: &PublishArgs, targets: &[Target]) -> anyhow::Result<()> {
    let ca_dir = args.ca_dir.clone().unwrap_or_else(|| parent_dir(&args.signing_key));
    let index = ca_dir.join(INDEX_FILE);
    let mut known = KnownTargets::from_index(&ca_dir)?;
    if let Some(list) = &args.known_targets {
        known.add_list(list)?;
    }
    for target in targets {
        match known.check(target) {
            TargetCheck::Known => {}
            TargetCheck::Unverifiable => crate::stderr_line::warn(&format!(
                "warning: --to {target}: {} lists some client certificates without their groups \
                 (issued before fts recorded them), so whether a host is in this group cannot be checked",
                index.display()
            )),
            TargetCheck::Unknown { suggestion } => {
                let meant = suggestion.map(|s| format!("did you mean {s}? ")).unwrap_or_default();
                let source = if index.exists() {
                    format!("no certificate in {} has it", index.display())
                } else {
                    format!("there is no index of issued certificates at {} (set --ca-dir)", index.display())
                };
                return Err(UsageError(format!(
                    "--to {target} reaches no host: {source}. {meant}List targets of certificates made \
                     outside fts in --known-targets FILE, or publish anyway with --allow-unknown-target"
                ))
                .into());
            }
        }
    }
    Ok(())
}

/// The folder holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `--as NAME`, or the file's own name; either must be a valid file name.
fn file_name(file: &Path, name: Option<&str>) -> Result<FileName, UsageError> {
    let (name, flag) = match name {
        Some(name) => (name.to_owned(), "--as"),
        None => {
            let own = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            (own, "the file's own name (choose another with --as NAME)")
        }
    };
    FileName::parse(&name).map_err(|e| UsageError(format!("{flag}: {e}")))
}
