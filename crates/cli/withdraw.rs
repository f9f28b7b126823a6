//! `fts withdraw --target T --seq N [--reason TEXT] [--restore-previous]`, on the
//! signing host: signs a withdrawal of one published entry into the store's log
//! (docs/PROTOCOL.md section 8.1, docs/OPERATIONS.md "Withdrawing a bad patch").
//! Hosts that have not installed it never will; hosts that have keep the file and
//! report it (`--exec-withdrawn` is theirs). `--restore-previous` also publishes the
//! newest earlier version of the same file name on that target again, as a new
//! entry, so that no host is left with neither.

use std::time::SystemTime;

use anyhow::Context;
use fts_store::Store;
use fts_trust::SigningKey;

use crate::args::WithdrawArgs;

pub fn run(args: WithdrawArgs) -> anyhow::Result<()> {
    let key = SigningKey::load(&args.signing_key)
        .with_context(|| "a withdrawal is signed with the release signing key (on the signing host)")?;
    if fts_store::log::read_checkpoint(&args.store)?.is_none() {
        anyhow::bail!(
            "{} has no log yet: run `fts log init` first (a withdrawal is a log leaf, which hosts check against the checkpoint)",
            args.store.display()
        );
    }
    let store = Store::open_or_create(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    let done = store.withdraw(
        &args.target,
        args.seq,
        args.reason.clone(),
        args.restore_previous,
        &key,
        SystemTime::now(),
    )?;
    let entry = &done.withdrawn.statement;
    println!(
        "withdrew {} seq {} ({}, {}, published {}) at {}, signed by key {}",
        entry.target,
        entry.seq,
        entry.file_name,
        entry.file_hash,
        entry.published,
        done.withdrawal.statement.withdrawn,
        key.key_id()
    );
    if !args.reason.as_str().is_empty() {
        println!("  reason: {}", fts_proto::printable(args.reason.as_str()));
    }
    println!("  hosts that have not installed it skip it; hosts that have keep the file and report it");
    match &done.restored {
        Some(restored) => println!(
            "  restored the previous version: {} seq {} is {} ({}), published again at {}",
            restored.statement.target,
            restored.statement.seq,
            restored.statement.file_name,
            restored.statement.file_hash,
            restored.statement.published
        ),
        None => println!(
            "  no earlier version was published again (--restore-previous does): hosts that had it installed keep it, others have neither"
        ),
    }
    Ok(())
}
