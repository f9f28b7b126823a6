//! `fts publish FILE --to TARGET...`: checks the names, loads the signing key, and
//! hands the file to the store, which hashes it while copying, numbers it per target
//! under the store lock, signs each statement and appends them all in one record.

use std::path::Path;

use anyhow::Context;
use fts_proto::{FileName, Target};
use fts_store::Store;
use fts_trust::SigningKey;

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
