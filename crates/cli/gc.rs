//! `fts gc [--dry-run] [--keep N] [--store DIR]`, on the signing host: removes the
//! blob files that only superseded or withdrawn entries name, and those no entry
//! names that a crashed publish left over an hour ago ([`fts_store::gc`] decides and
//! removes, under the publish lock). Prints one line per blob removed, with the
//! entries that named it and why each no longer needs it, then a summary.
//! `--dry-run` prints the same list and removes nothing.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use fts_store::{Collected, CollectedBlob, GcReport, Reference, Store, Unneeded};

use crate::args::GcArgs;

pub fn run(args: &GcArgs) -> anyhow::Result<()> {
    let store = Store::open_existing(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    let report = store.gc(args.keep, args.dry_run, SystemTime::now())?;
    for skipped in &report.skipped {
        crate::stderr_line::warn(&format!(
            "left {}: it is {}, not a blob file (gc removes only regular files; look at how it got there)",
            skipped.path.display(),
            skipped.found
        ));
    }
    let verb = if report.dry_run { "would remove" } else { "removed" };
    for blob in &report.blobs {
        println!("{verb} {}", blob_line(blob));
    }
    println!("{}", summary(&report, verb));
    Ok(())
}

/// `<hash> (<size> bytes): web-01 seq 3 app.conf superseded by seq 5; ...`
fn blob_line(blob: &CollectedBlob) -> String {
    let why = match &blob.why {
        Collected::Unneeded(references) => references.iter().map(reference).collect::<Vec<_>>().join("; "),
        Collected::Unreferenced { age } => {
            format!("named by no entry (left by an interrupted publish, {} old)", age_text(*age))
        }
    };
    format!("{} ({} bytes): {why}", blob.hash, blob.size)
}

fn reference(r: &Reference) -> String {
    let why = match r.why {
        Unneeded::Withdrawn => "withdrawn".to_owned(),
        Unneeded::SupersededBy(seq) => format!("superseded by seq {seq}"),
    };
    format!("{} seq {} {} {why}", r.target, r.seq, r.file_name)
}

/// `removed N blobs, M bytes`, and how many of them no entry named.
fn summary(report: &GcReport, verb: &str) -> String {
    let count = report.blobs.len();
    let mut line = format!("{verb} {count} blob{}, {} bytes", plural(count), report.bytes());
    let (unreferenced, bytes) = report.unreferenced();
    if unreferenced > 0 {
        let _ = write!(
            line,
            " ({unreferenced} of them, {bytes} bytes, named by no entry: left by interrupted publishes)"
        );
    }
    line
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// An age in the largest whole unit: `3 h`, `2 d`.
fn age_text(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        s if s >= 86_400 => format!("{} d", s / 86_400),
        s if s >= 3_600 => format!("{} h", s / 3_600),
        s => format!("{} min", s / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_are_shown_in_their_largest_whole_unit() {
        assert_eq!(age_text(Duration::from_secs(3_600)), "1 h");
        assert_eq!(age_text(Duration::from_secs(3 * 86_400 + 5)), "3 d");
        assert_eq!(age_text(Duration::from_secs(120)), "2 min");
    }
}
