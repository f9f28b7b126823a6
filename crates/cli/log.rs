//! `fts log [--store DIR] [--target T] [--json]`: the store's entries in publish
//! order, each with its target, seq, file name, size, hash, publish time, key id, and
//! the note and publisher of its publish. A table for people, `--json` (one array of
//! objects, kebab-case keys) for scripts.
//!
//! The store is only read ([`fts_store::History`]: no lock, nothing created), so this
//! runs on the signing host while it publishes, or on a server's replica. Only the
//! journal's valid prefix is shown: what the server serves. Notes and publishers are
//! unsigned text from the store, shown with control characters escaped.

use std::io::Write;
use std::path::Path;

use fts_proto::{FileHash, FileName, KeyId, Printable, Published, Target};
use fts_store::{DamageKind, Entry, History, Provenance, Publisher, StoreError};
use serde::Serialize;

use crate::args::LogArgs;

/// One entry, as `--json` prints it.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Row<'a> {
    /// Place in the store's publish order, from 0.
    position: u64,
    target: &'a Target,
    seq: u64,
    file_name: &'a FileName,
    file_size: u64,
    file_hash: &'a FileHash,
    published: &'a Published,
    key_id: &'a KeyId,
    /// `null` when the publish had none.
    note: Option<&'a str>,
    /// `{"user": ..., "host": ...}`, `null` for publishes made before fts recorded it.
    publisher: Option<&'a Publisher>,
    /// `{"at": ..., "reason": ...}` when the entry was withdrawn (`fts withdraw`),
    /// `null` otherwise.
    withdrawn: Option<Withdrawn<'a>>,
}

/// A withdrawal, as `--json` prints it.
#[derive(Serialize)]
struct Withdrawn<'a> {
    at: &'a Published,
    reason: &'a str,
}

impl<'a> Row<'a> {
    fn new(entry: &'a Entry, provenance: Option<&'a Provenance>, history: &'a History) -> Self {
        let statement = &entry.statement;
        Row {
            position: entry.position,
            target: &statement.target,
            seq: statement.seq.get(),
            file_name: &statement.file_name,
            file_size: statement.file_size,
            file_hash: &statement.file_hash,
            published: &statement.published,
            key_id: &entry.key_id,
            note: provenance.and_then(|p| p.note.as_deref()),
            publisher: provenance.and_then(|p| p.publisher.as_ref()),
            withdrawn: history
                .withdrawal(&statement.target, statement.seq)
                .map(|w| Withdrawn { at: &w.statement.withdrawn, reason: w.statement.reason.as_str() }),
        }
    }
}

pub fn run(args: LogArgs) -> anyhow::Result<()> {
    let history = read(&args.store)?;
    if let Some(damage) = history.damage().filter(|d| d.kind != DamageKind::Incomplete) {
        // A record still being appended is no news; damage is: what follows is not served.
        crate::stderr_line::warn(&format!(
            "warning: the journal of {} holds {damage}: the entries after it are not shown, and not served",
            args.store.display()
        ));
    }
    let rows: Vec<Row> = history
        .entries()
        .filter(|(entry, _)| args.target.as_ref().is_none_or(|t| *t == entry.statement.target))
        .map(|(entry, provenance)| Row::new(entry, provenance, &history))
        .collect();
    if let Some(target) = args.target.as_ref().filter(|_| rows.is_empty() && !history.is_empty()) {
        // Said on stderr, so that stdout stays what a script expects: no rows.
        crate::stderr_line::warn(&format!(
            "no entries for target {target} in the store {}",
            args.store.display()
        ));
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    if history.is_empty() {
        writeln!(out, "the store {} has no entries yet", args.store.display())?;
    } else if !rows.is_empty() {
        table(&mut out, &rows)?;
    }
    Ok(())
}

/// The store's history, or what is wrong with `--store`.
fn read(store: &Path) -> anyhow::Result<History> {
    match History::read(store) {
        Ok(history) => Ok(history),
        Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            anyhow::bail!("there is no store {}: name the store folder with --store", store.display())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot read the store {}", store.display()))),
    }
}

/// The text table: one line per entry, and after the entries of one publish its note
/// on a line of its own (a note is up to 1000 bytes; in a column it would push every
/// other one off the screen). Hashes are cut to 16 hex digits; `--json` has them whole.
fn table(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            [
                row.published.to_string(),
                row.target.to_string(),
                row.seq.to_string(),
                row.file_name.to_string(),
                row.file_size.to_string(),
                row.file_hash.hex().chars().take(16).collect(),
                row.key_id.to_string(),
                row.publisher.map_or_else(|| "-".to_owned(), |p| Printable(&p.to_string()).to_string()),
            ]
        })
        .collect();
    let header = ["PUBLISHED", "TARGET", "SEQ", "FILE", "SIZE", "SHA-256", "KEY ID", "PUBLISHER"];
    let mut widths = header.map(str::len);
    for line in &cells {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let print = |out: &mut dyn Write, line: [&str; 8]| -> std::io::Result<()> {
        let mut text = String::new();
        for (i, (cell, width)) in line.iter().zip(widths).enumerate() {
            let numeric = matches!(i, 2 | 4);
            let cell = if numeric { format!("{cell:>width$}") } else { format!("{cell:<width$}") };
            text.push_str(&cell);
            text.push_str("  ");
        }
        writeln!(out, "{}", text.trim_end())
    };
    print(out, header)?;
    for (i, (row, line)) in rows.iter().zip(&cells).enumerate() {
        print(out, line.each_ref().map(String::as_str))?;
        // The entries of one publish are consecutive and share their `published` time,
        // which no two publishes share (it moves forward by at least a second).
        let last_of_its_publish = rows.get(i + 1).is_none_or(|next| next.published != row.published);
        if let Some(note) = row.note.filter(|_| last_of_its_publish) {
            writeln!(out, "{:width$}  note: {}", "", Printable(note), width = widths[0])?;
        }
        if let Some(w) = &row.withdrawn {
            let why = if w.reason.is_empty() { String::new() } else { format!(": {}", Printable(w.reason)) };
            writeln!(out, "{:width$}  WITHDRAWN at {}{why}", "", w.at, width = widths[0])?;
        }
    }
    writeln!(out, "(SHA-256: the first 16 hex digits; --json prints every field whole)")
}
