//! `fts log --keys`: the store's release keys and which log leaves each may sign
//! (docs/PROTOCOL.md section 8.3): every key but the newest was retired by a rotation
//! and signs only leaves below it; the newest signs from its rotation on. Read from
//! the journal's rotation records, without a lock.

use anyhow::Context;
use fts_log::key_id_of;
use fts_proto::KeyId;
use fts_store::StoreReader;
use serde::Serialize;

use crate::args::LogArgs;

/// One key, as `--json` prints it.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct KeyRow {
    key_id: KeyId,
    /// The first leaf it may sign.
    from_leaf: u64,
    /// The leaf of the rotation that retired it (it signs only leaves below), or
    /// `null` for the active key.
    below_leaf: Option<u64>,
    /// How it was retired: `planned` (signed by both keys) or `recovery`.
    retired_by: Option<&'static str>,
}

pub fn run(args: &LogArgs) -> anyhow::Result<()> {
    let reader = StoreReader::open(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    let snapshot = reader.current();
    let mut rows = Vec::new();
    let mut from = 0;
    for (index, rotation) in snapshot.rotations() {
        let kind = if rotation.signatures.len() > 1 { "planned" } else { "recovery" };
        rows.push(KeyRow {
            key_id: key_id_of(&rotation.statement.retired),
            from_leaf: from,
            below_leaf: Some(*index),
            retired_by: Some(kind),
        });
        from = *index;
    }
    let active = match snapshot.rotations().last() {
        Some((_, rotation)) => Some(key_id_of(&rotation.statement.key)),
        None => snapshot.entries().last().map(|e| e.key_id),
    };
    if let Some(key_id) = active {
        rows.push(KeyRow { key_id, from_leaf: from, below_leaf: None, retired_by: None });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no key has signed anything in {} yet", args.store.display());
    }
    for (number, row) in rows.iter().enumerate() {
        match (row.below_leaf, row.retired_by) {
            (Some(below), Some(kind)) => println!(
                "key {} signs leaves {} to {} (retired at leaf {below} by rotation {}, {kind})",
                row.key_id,
                row.from_leaf,
                below.saturating_sub(1),
                number + 1
            ),
            _ => println!("key {} signs from leaf {} on (active)", row.key_id, row.from_leaf),
        }
    }
    Ok(())
}
