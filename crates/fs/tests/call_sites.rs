//! Only fts-fs writes files durably. Every rename, flush, link, exclusive creation,
//! whole-file write and writeback hint outside this crate is a durable write made by
//! hand, with its own crash argument, temp names and cleanup: this test lists those
//! call sites in the sources of every other crate, the binary (`crates/cli`) and the
//! examples, and fails on any that is not in [`ALLOWED`].
//!
//! The sources are scanned as text: comments and string literals are blanked, and so
//! is every item under `#[cfg(test)]` (tests may write their fixtures however they
//! like). A new call site fails the test with its file and line; the fix is to use
//! fts-fs (`Dir::write_atomic`, `TempFile`, `append_durably`, `stream::DiskWriter`),
//! or, if it truly cannot, to add it to [`ALLOWED`] with the reason.

use std::path::{Path, PathBuf};

/// What a durable write made by hand calls: std's and rustix's spellings.
const NEEDLES: &[&str] = &[
    "fs::rename(",
    "sync_all",
    "sync_data",
    "create_new",
    "fs::write(",
    "hard_link",
    "renameat",
    "linkat",
    "fsync",
    "fdatasync",
    "fadvise",
    "OFlags::EXCL",
];

/// Call sites allowed outside fts-fs: (path from the workspace root, needle, why).
/// Empty: every durable write goes through fts-fs.
const ALLOWED: &[(&str, &str, &str)] = &[];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The source folders scanned: every crate's `src` but this one's, the binary's
/// sources and the examples.
fn scanned_folders(root: &Path) -> Vec<PathBuf> {
    let mut folders = vec![root.join("crates/cli"), root.join("examples")];
    for entry in std::fs::read_dir(root.join("crates")).expect("list crates/") {
        let crate_dir = entry.expect("list crates/").path();
        if crate_dir.file_name().is_some_and(|n| n != "fs" && n != "cli") && crate_dir.join("src").is_dir() {
            folders.push(crate_dir.join("src"));
        }
    }
    folders
}

fn rust_files(folder: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(folder) else { return };
    for entry in entries {
        let path = entry.expect("list a source folder").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `source` with comments and the contents of string and char literals replaced by
/// spaces (newlines kept, so lines keep their numbers).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let ident_before = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && !ident_before && matches!(next, Some('"' | '#')) {
            // A raw string r"..." or r#"..."#; otherwise (r#ident) just code.
            let mut j = i + 1;
            while chars.get(j) == Some(&'#') {
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            out.push('r');
            for _ in 0..=hashes {
                out.push(' ');
            }
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime.
            let end = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&j| chars[j] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// `code` (from [`code_only`]) with every item under `#[cfg(test)]` blanked.
fn without_test_items(code: &str) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + marker.len() <= chars.len() {
        if chars[i..i + marker.len()] != marker[..] {
            i += 1;
            continue;
        }
        // The item ends at a `;` before any brace, or where its braces close.
        let mut j = i + marker.len();
        let mut depth = 0usize;
        while j < chars.len() {
            match chars[j] {
                ';' if depth == 0 => break,
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            j += 1;
        }
        let end = (j + 1).min(chars.len());
        for c in &mut chars[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = j;
    }
    chars.into_iter().collect()
}

/// Every (path, line number, needle) of a call site in `source`.
fn call_sites(path: &str, source: &str) -> Vec<(String, usize, &'static str)> {
    let code = without_test_items(&code_only(source));
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        for needle in NEEDLES {
            if line.contains(needle) {
                found.push((path.to_owned(), n + 1, *needle));
            }
        }
    }
    found
}

#[test]
fn no_code_outside_fts_fs_writes_files_durably_by_hand() {
    let root = workspace_root();
    let mut files = Vec::new();
    for folder in scanned_folders(&root) {
        rust_files(&folder, &mut files);
    }
    assert!(files.len() > 50, "the scan found the sources: {} files", files.len());
    let mut unexpected = Vec::new();
    let mut allowed_seen = vec![false; ALLOWED.len()];
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read a source file");
        let relative = file.strip_prefix(&root).unwrap_or(file).to_string_lossy().into_owned();
        for (path, line, needle) in call_sites(&relative, &source) {
            match ALLOWED.iter().position(|(p, n, _)| *p == path && *n == needle) {
                Some(k) => allowed_seen[k] = true,
                None => unexpected.push(format!("{path}:{line}: {needle}")),
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "durable writes by hand outside fts-fs (use fts_fs::Dir::write_atomic, TempFile, \
         append_durably or stream::DiskWriter, or justify an entry in ALLOWED):\n{}",
        unexpected.join("\n")
    );
    for ((path, needle, _), seen) in ALLOWED.iter().zip(allowed_seen) {
        assert!(seen, "ALLOWED lists {path} ({needle}), which no longer calls it: remove the entry");
    }
}

#[test]
fn the_scan_sees_calls_in_code_and_not_in_comments_strings_or_tests() {
    let source = r##"
//! Docs may say fs::rename( and sync_all.
fn real(file: &File) {
    file.sync_all().unwrap(); // a flush by hand
    let text = "sync_data in a string"; let raw = r#"fs::write("x")"#;
    let c = '"'; let lifetime: &'static str = "";
    std::fs::rename(a, b);
}
/* block: hard_link */
#[cfg(test)]
mod tests {
    fn fixture() { std::fs::write("f", "{").unwrap(); if x { create_new } }
}
#[cfg(test)]
use std::fs::hard_link;
fn after() { OpenOptions::new().create_new(true); }
"##;
    let found: Vec<_> =
        call_sites("x.rs", source).into_iter().map(|(_, line, needle)| (line, needle)).collect();
    assert_eq!(found, [(4, "sync_all"), (7, "fs::rename("), (16, "create_new")]);
}

#[test]
fn fts_fs_itself_is_seen_by_the_scan() {
    // The needles are spelled as this crate's own code calls them.
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates/fs/src"), &mut files);
    let mut needles: Vec<&str> = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).unwrap();
        needles.extend(call_sites("fs", &source).into_iter().map(|(_, _, needle)| needle));
    }
    for needle in ["renameat", "linkat", "fsync", "fdatasync", "fadvise", "OFlags::EXCL"] {
        assert!(needles.contains(&needle), "{needle} not found in fts-fs");
    }
}
