//! `fts publish FILE --to TARGET...`: checks that every target reaches a host (the
//! names were parsed by clap, the rest resolved in [`crate::config::Publish`]), loads
//! the signing key, and hands the file to the store, which hashes it while copying,
//! numbers it per target under the store lock, signs each statement and appends them
//! all in one record, with the `--note` and the publisher ([`crate::publisher`]).
//!
//! `--dry-run` makes the same checks in the same order (targets, key, store, file,
//! journal: [`fts_store::Preview`]) and prints what the publish would make, without
//! signing or writing anything.

use std::time::SystemTime;

use anyhow::Context;
use fts_proto::Target;
use fts_store::{Preview, Provenance, Store};
use fts_trust::SigningKey;
use fts_trust::issued::{INDEX_FILE, KnownTargets, TargetCheck};

use crate::UsageError;
use crate::config::{Publish, TargetLists};

pub fn run(args: Publish) -> anyhow::Result<()> {
    if let Some(check) = &args.target_check {
        check_targets(check, &args.targets)?;
    }

    let key = SigningKey::load(&args.signing_key)
        .with_context(|| "publishing needs the release signing key (make one with `fts keygen signing`)")?;
    let provenance = Provenance::new(args.note.clone(), crate::publisher::current());
    if args.dry_run {
        return dry_run(&args, &key, &provenance);
    }
    // The first checkpoint names the log; a store with one keeps its own origin.
    let origin = match (fts_store::log::read_checkpoint(&args.store)?, &args.log_origin) {
        (Some(_), None) => None,
        (_, given) => Some(crate::log_origin::resolve(&args.signing_key, given.clone())?),
    };
    let store = Store::open_or_create(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?
        .with_log_origin(origin);
    let entries = store.publish_with(
        &args.file,
        &args.file_name,
        &args.targets,
        &key,
        &provenance,
        SystemTime::now(),
    )?;

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
    if let Some(note) = &args.note {
        println!("  note: {note}");
    }
    Ok(())
}

/// `--dry-run`: what the publish would make, in the words of its own output, or the
/// error it would fail with.
fn dry_run(args: &Publish, key: &SigningKey, provenance: &Provenance) -> anyhow::Result<()> {
    let store = &args.store;
    let preview = Preview::of(
        store,
        &args.file,
        &args.file_name,
        &args.targets,
        key.key_id(),
        provenance,
        SystemTime::now(),
    )
    .with_context(|| format!("dry run: a publish into the store {} would fail", store.display()))?;
    println!(
        "would publish {} ({} bytes, {}) into the store {} at {} (if published now), signed by key {}",
        preview.file_name,
        preview.file_size,
        preview.file_hash,
        store.display(),
        preview.published,
        key.key_id()
    );
    for (target, seq) in &preview.entries {
        println!("  {target} seq {seq}");
    }
    if let Some(note) = &args.note {
        println!("  note: {note}");
    }
    if let Some(publisher) = &provenance.publisher {
        println!("  publisher: {publisher}");
    }
    if preview.creates_store {
        println!("  (the store does not exist yet: the publish would create it)");
    }
    if let Some(damage) = &preview.torn_tail {
        println!("  (the journal ends in {damage}: the publish would truncate it first)");
    }
    println!("dry run: nothing was signed or written");
    Ok(())
}

/// Refuses a target that no issued certificate (and no line of `--known-targets`)
/// has: it would be signed and stored for good, and reach nobody, or whichever host is
/// enrolled under that name one day. A group on an index that predates the groups
/// field cannot be checked: a warning.
fn check_targets(check: &TargetLists, targets: &[Target]) -> anyhow::Result<()> {
    let index = check.ca_dir.join(INDEX_FILE);
    let mut known = KnownTargets::from_index(&check.ca_dir)?;
    if let Some(list) = &check.known_targets {
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
                return Err(UsageError::new(format!(
                    "--to {target} reaches no host: {source}. {meant}List targets of certificates made \
                     outside fts in --known-targets FILE, or publish anyway with --allow-unknown-target"
                ))
                .into());
            }
        }
    }
    Ok(())
}
