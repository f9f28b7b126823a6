//! The log's text formats, syntax only: the checkpoint (C2SP tlog-checkpoint with
//! one `fts-heads` extension line), the signed note that carries it (C2SP
//! signed-note), the message a timestamp cosigner signs, and the bytes of a log leaf
//! that holds a signed statement. Signing and verifying these are fts-trust's
//! (`fts_trust::note`); the Merkle rules are fts-log's.
//!
//! ```text
//! fts.example/prod                                      origin
//! 42                                                    size of the log
//! 9rT0...base64 of 32 bytes...=                         root hash of the log
//! fts-heads 7 Fz8...base64 of 32 bytes...=              heads tree: leaf count, root
//!
//! — fts.example/prod AAAAAx...                          release key's signature
//! — fts-timestamp/4d06ee28107bfc40 BBBB...              timestamp cosignature
//! ```
//!
//! Parsing is strict (exactly one accepted spelling of every value), linear in the
//! input, bounded ([`MAX_NOTE_LEN`], [`MAX_SIGNATURE_LINES`]) and never panics: every
//! refusal is a [`NoteError`] that says which line and why, without quoting the input.
//!
//! fts notes are a strict subset of C2SP signed notes: the text may not contain an
//! empty line (C2SP allows it), so the one blank line is the separator.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::base64;
use crate::keys::{KeyId, Signature};
use crate::log::LogHash;
use crate::statement::Statement;
use crate::wire_int::MAX_WIRE_INT;

/// The longest note accepted, in bytes (text, blank line and signature lines).
pub const MAX_NOTE_LEN: usize = 8 * 1024;
/// The most signature lines a note may carry (C2SP signed-note: at least 16 must be
/// accepted).
pub const MAX_SIGNATURE_LINES: usize = 16;
/// The longest origin, in bytes.
pub const MAX_ORIGIN_LEN: usize = 255;
/// The keyword of the checkpoint's fourth line, the heads tree.
pub const HEADS_KEYWORD: &str = "fts-heads";
/// The first line of the message a timestamp cosigner signs (C2SP tlog-cosignature).
pub const COSIGNATURE_HEADER: &str = "cosignature/v1";
/// What starts every signature line: U+2014 (em dash) and a space.
pub const SIGNATURE_LINE_PREFIX: &str = "\u{2014} ";

/// Why a note, a checkpoint text or an origin was refused. Every variant is a leaf;
/// line numbers count from 1, from the first line of the note (or of the text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is longer than [`MAX_NOTE_LEN`].
    #[error("the note is {len} bytes long: at most {MAX_NOTE_LEN} are accepted")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A carriage return: notes end their lines with `\n` alone.
    #[error("line {line} contains a carriage return: lines end with a newline alone")]
    CarriageReturn {
        /// The line it is on.
        line: usize,
    },
    /// An ASCII control character other than newline (below 0x20, or 0x7F).
    #[error("line {line} contains the control character 0x{byte:02x}")]
    ControlCharacter {
        /// The line it is on.
        line: usize,
        /// The character.
        byte: u8,
    },
    /// The note does not end with a newline.
    #[error("the note does not end with a newline")]
    NoFinalNewline,
    /// The note starts with the blank line: it has no text.
    #[error("the note has no text before its blank line")]
    EmptyText,
    /// No blank line separates the text from the signatures.
    #[error("the note has no blank line between its text and its signature lines")]
    NoBlankLine,
    /// A second empty line: the text may not contain one, and neither may the
    /// signature lines.
    #[error("line {line} is a second empty line: the text of an fts note has no empty line")]
    ExtraBlankLine {
        /// The line.
        line: usize,
    },
    /// Nothing follows the blank line.
    #[error("the note has no signature line")]
    NoSignatures,
    /// More than [`MAX_SIGNATURE_LINES`] signature lines.
    #[error("the note has more than {MAX_SIGNATURE_LINES} signature lines")]
    TooManySignatures,
    /// A signature line that is not `— <name> <base64>`.
    #[error("signature line {line} is malformed: {why}")]
    MalformedSignatureLine {
        /// The line.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// A key name that is empty or holds a space or a plus sign.
    #[error("the key name of signature line {line} {why}")]
    BadKeyName {
        /// The line.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// The signature of a line is not canonical standard base64.
    #[error("the signature of line {line} is not canonical standard base64 (with padding)")]
    BadBase64 {
        /// The line.
        line: usize,
    },
    /// The signature of a line is shorter than its 4-byte key hint.
    #[error("the signature of line {line} is {len} bytes: at least 4 (the key hint) are needed")]
    SignatureTooShort {
        /// The line.
        line: usize,
        /// How many bytes it has.
        len: usize,
    },
    /// A checkpoint text that is not exactly four lines.
    #[error("a checkpoint text has exactly 4 lines, each ended by a newline: {why}")]
    CheckpointLines {
        /// What was found instead.
        why: &'static str,
    },
    /// One line of a checkpoint text is wrong.
    #[error("checkpoint line {line} ({what}) {why}")]
    CheckpointLine {
        /// The line, 1 to 4.
        line: usize,
        /// What the line holds.
        what: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An origin that breaks the origin rules.
    #[error("invalid log origin: {why}")]
    BadOrigin {
        /// Which rule it breaks.
        why: &'static str,
    },
}

/// The log's name, the first line of each checkpoint and its release key's note key
/// name: 1 to 255 bytes of printable ASCII (0x21 to 0x7E: no space) without `+`,
/// with at least one `/`, not starting with `fts-` (so no statement, head leaf or
/// timestamp key name can be read as a checkpoint origin).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin(String);

impl Origin {
    /// Checks the origin rules.
    pub fn parse(text: &str) -> Result<Origin, NoteError> {
        let bad = |why| Err(NoteError::BadOrigin { why });
        if text.is_empty() {
            return bad("it is empty");
        }
        if text.len() > MAX_ORIGIN_LEN {
            return bad("it is longer than 255 bytes");
        }
        if !text.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return bad("only printable ASCII without spaces (0x21 to 0x7E) is allowed");
        }
        if text.contains('+') {
            return bad("it contains `+`, which a note key name may not");
        }
        if !text.contains('/') {
            return bad("it must contain `/` (like example.com/log)");
        }
        if text.starts_with("fts-") {
            return bad("it may not start with `fts-` (reserved for fts's own lines and keys)");
        }
        Ok(Origin(text.to_owned()))
    }

    /// The origin as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Origin {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, NoteError> {
        Origin::parse(s)
    }
}

impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Origin::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A checkpoint of the log: its size and root hash, and the size and root of the
/// heads tree (each target's newest seq) at that size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The log's name.
    pub origin: Origin,
    /// How many leaves the log has (at most 2^53 - 1).
    pub size: u64,
    /// The log's Merkle root at `size`.
    pub root: LogHash,
    /// How many leaves the heads tree has (at most 2^53 - 1).
    pub heads_count: u64,
    /// The heads tree's Merkle root.
    pub heads_root: LogHash,
}

impl Checkpoint {
    /// The note text, exactly
    /// `"{origin}\n{size}\n{base64 root}\nfts-heads {heads_count} {base64 heads_root}\n"`.
    pub fn text(&self) -> String {
        format!("{}{HEADS_KEYWORD} {} {}\n", self.cosigned_text(), self.heads_count, self.heads_root)
    }

    /// The strict inverse of [`Checkpoint::text`]: exactly those four lines, each
    /// ended by `\n`; decimals without leading zeros (0 is `0`) of at most 2^53 - 1;
    /// canonical base64 of 32 bytes.
    pub fn parse_text(text: &str) -> Result<Checkpoint, NoteError> {
        let Some(body) = text.strip_suffix('\n') else {
            return Err(NoteError::CheckpointLines { why: "the text does not end with a newline" });
        };
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root), Some(heads), None) =
            (lines.next(), lines.next(), lines.next(), lines.next(), lines.next())
        else {
            let found = if body.split('\n').count() < 4 { "fewer lines" } else { "more lines" };
            return Err(NoteError::CheckpointLines { why: found });
        };
        let origin = Origin::parse(origin).map_err(|e| match e {
            NoteError::BadOrigin { why } => NoteError::CheckpointLine { line: 1, what: "origin", why },
            other => other,
        })?;
        let size = decimal(size).map_err(|why| NoteError::CheckpointLine { line: 2, what: "size", why })?;
        let root = hash(root).map_err(|why| NoteError::CheckpointLine { line: 3, what: "root hash", why })?;
        let heads_line = |why| NoteError::CheckpointLine { line: 4, what: "heads", why };
        let Some(rest) = heads.strip_prefix(HEADS_KEYWORD).and_then(|r| r.strip_prefix(' ')) else {
            return Err(heads_line("does not start with `fts-heads `"));
        };
        let Some((count, heads_root)) = rest.split_once(' ') else {
            return Err(heads_line("is not `fts-heads <count> <base64 root>`"));
        };
        let heads_count = decimal(count).map_err(|_| {
            heads_line("has a count that is not a decimal from 0 to 2^53 - 1 without leading zeros")
        })?;
        let heads_root = hash(heads_root)
            .map_err(|_| heads_line("has a root that is not the canonical base64 of 32 bytes"))?;
        Ok(Checkpoint { origin, size, root, heads_count, heads_root })
    }

    /// The first three lines only (origin, size, root), each ended by `\n`: what a
    /// timestamp cosigner vouches for (it signs the whole text).
    pub fn cosigned_text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, self.root)
    }
}

/// A decimal of at most 2^53 - 1 without sign or leading zeros.
fn decimal(text: &str) -> Result<u64, &'static str> {
    const WHY: &str = "is not a decimal from 0 to 2^53 - 1 without leading zeros";
    let b = text.as_bytes();
    if b.is_empty() || b.len() > 16 || !b.iter().all(u8::is_ascii_digit) || (b.len() > 1 && b[0] == b'0') {
        return Err(WHY);
    }
    let value = b.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    if value > MAX_WIRE_INT {
        return Err(WHY);
    }
    Ok(value)
}

fn hash(text: &str) -> Result<LogHash, &'static str> {
    LogHash::parse(text).ok_or("is not the canonical base64 of 32 bytes")
}

/// A C2SP signed note: a text of non-empty lines each ended by `\n`, one blank line,
/// then 1 to [`MAX_SIGNATURE_LINES`] signature lines
/// `— {name} {base64(4-byte key hint || signature bytes)}\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The signed text, with its final newline (not the blank line).
    pub text: String,
    /// The signature lines, in the note's order.
    pub signatures: Vec<NoteSignature>,
}

/// One signature line of a note. Which key made it is known only from the name and
/// the key hint together; what `signature` holds depends on the key's algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name: non-empty, without spaces or `+`.
    pub name: String,
    /// The first 4 bytes of the decoded signature: the key's hint (C2SP key ID).
    pub key_hint: [u8; 4],
    /// The rest of the decoded signature.
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// The line `— {name} {base64(key_hint || signature)}`, *without* its trailing
    /// newline.
    pub fn line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_hint);
        bytes.extend_from_slice(&self.signature);
        format!("{SIGNATURE_LINE_PREFIX}{} {}", self.name, base64::encode(&bytes))
    }

    /// Reads one signature line (without its newline); `line` is its number, for
    /// errors.
    fn parse(text: &str, line: usize) -> Result<NoteSignature, NoteError> {
        let malformed = |why| NoteError::MalformedSignatureLine { line, why };
        let rest = text
            .strip_prefix(SIGNATURE_LINE_PREFIX)
            .ok_or_else(|| malformed("it does not start with an em dash (U+2014) and a space"))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| malformed("it has no space between the key name and the signature"))?;
        check_key_name(name, line)?;
        if encoded.contains(' ') {
            return Err(malformed("it has more than two spaces (a key name has none)"));
        }
        let bytes = base64::decode(encoded).ok_or(NoteError::BadBase64 { line })?;
        let (hint, signature) =
            bytes.split_first_chunk::<4>().ok_or(NoteError::SignatureTooShort { line, len: bytes.len() })?;
        Ok(NoteSignature { name: name.to_owned(), key_hint: *hint, signature: signature.to_vec() })
    }
}

fn check_key_name(name: &str, line: usize) -> Result<(), NoteError> {
    let bad = |why| Err(NoteError::BadKeyName { line, why });
    if name.is_empty() {
        return bad("is empty");
    }
    if name.chars().any(char::is_whitespace) {
        return bad("contains a space");
    }
    if name.contains('+') {
        return bad("contains `+`");
    }
    Ok(())
}

impl Note {
    /// Reads a signed note strictly: at most [`MAX_NOTE_LEN`] bytes, no control
    /// character but newline (no CR), every line ended by `\n`, a non-empty text
    /// without empty lines, one blank line, then 1 to [`MAX_SIGNATURE_LINES`] well
    /// formed signature lines. The text is not interpreted (see
    /// [`Checkpoint::parse_text`]).
    pub fn parse(note: &str) -> Result<Note, NoteError> {
        if note.len() > MAX_NOTE_LEN {
            return Err(NoteError::TooLong { len: note.len() });
        }
        let mut line = 1;
        for b in note.bytes() {
            match b {
                b'\n' => line += 1,
                b'\r' => return Err(NoteError::CarriageReturn { line }),
                0..0x20 | 0x7f => return Err(NoteError::ControlCharacter { line, byte: b }),
                _ => {}
            }
        }
        if note.starts_with('\n') {
            return Err(NoteError::EmptyText);
        }
        let Some(blank) = note.find("\n\n") else {
            return Err(if note.ends_with('\n') {
                NoteError::NoBlankLine
            } else {
                NoteError::NoFinalNewline
            });
        };
        let text = &note[..=blank];
        let signatures_part = &note[blank + 2..];
        if signatures_part.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let Some(signatures_part) = signatures_part.strip_suffix('\n') else {
            return Err(NoteError::NoFinalNewline);
        };
        // The number of the first signature line: the text's lines, then the blank one.
        let first = text.bytes().filter(|&b| b == b'\n').count() + 2;
        let mut signatures = Vec::new();
        for (i, sig_line) in signatures_part.split('\n').enumerate() {
            let number = first + i;
            if sig_line.is_empty() {
                return Err(NoteError::ExtraBlankLine { line: number });
            }
            if signatures.len() == MAX_SIGNATURE_LINES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(NoteSignature::parse(sig_line, number)?);
        }
        Ok(Note { text: text.to_owned(), signatures })
    }

    /// The note as text: the text, a blank line, each signature line and a newline.
    /// For a note that [`Note::parse`] returned, exactly the input.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 1 + self.signatures.len() * 100);
        out.push_str(&self.text);
        out.push('\n');
        for signature in &self.signatures {
            out.push_str(&signature.line());
            out.push('\n');
        }
        out
    }
}

/// The message a timestamp cosigner signs (C2SP tlog-cosignature v1, Ed25519):
/// `cosignature/v1\ntime {time}\n` followed by the whole checkpoint text, its
/// `fts-heads` line included. What the cosigner vouches for is the first three lines
/// ([`Checkpoint::cosigned_text`]: the log is append-only and this is its newest
/// head at that time); the heads line is the release key's word alone. Signing the
/// whole text binds a cosignature to one exact checkpoint text and keeps it a
/// standard cosignature that any C2SP verifier checks.
pub fn cosignature_message(time: u64, checkpoint: &Checkpoint) -> Vec<u8> {
    format!("{COSIGNATURE_HEADER}\ntime {time}\n{}", checkpoint.text()).into_bytes()
}

/// The log leaf of a signed statement: `statement.to_bytes()` followed by
/// `key-id {16 hex}\nsignature {base64 signature}\n`.
pub fn statement_leaf(statement: &Statement, key_id: &KeyId, signature: &Signature) -> Vec<u8> {
    let mut leaf = statement.to_bytes();
    leaf.extend_from_slice(format!("key-id {key_id}\nsignature {signature}\n").as_bytes());
    leaf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of C2SP tlog-checkpoint (and tlog-cosignature, with a witness).
    const C2SP_CHECKPOINT: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    const C2SP_WITNESS: &str = "\u{2014} witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: Origin::parse("fts.example/test").unwrap(),
            size: 3,
            root: LogHash([1; 32]),
            heads_count: 2,
            heads_root: LogHash([2; 32]),
        }
    }

    fn note_with(lines: &[&str]) -> String {
        let mut s = checkpoint().text();
        s.push('\n');
        for l in lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    const SIG: &str = "\u{2014} fts.example/test AAAAAAAA";

    #[test]
    fn the_c2sp_example_notes_parse_and_render_back() {
        let note = Note::parse(C2SP_CHECKPOINT).unwrap();
        assert_eq!(
            note.text,
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
        );
        assert_eq!(note.signatures.len(), 1);
        assert_eq!(note.signatures[0].name, "example.com/behind-the-sofa");
        assert_eq!(note.signatures[0].signature.len(), 64);
        assert_eq!(note.render(), C2SP_CHECKPOINT);

        let cosigned = format!("{C2SP_CHECKPOINT}{C2SP_WITNESS}");
        let note = Note::parse(&cosigned).unwrap();
        let witness = &note.signatures[1];
        assert_eq!(witness.name, "witness.example.com/w1");
        assert_eq!(witness.key_hint, [0x8d, 0x66, 0xcf, 0x3f]);
        assert_eq!(witness.signature.len(), 8 + 64, "timestamp and signature");
        assert_eq!(u64::from_be_bytes(witness.signature[..8].try_into().unwrap()), 1679315147);
        assert_eq!(note.render(), cosigned);

        // Its text has three lines: a note, but not an fts checkpoint.
        let err = Checkpoint::parse_text(&note.text).unwrap_err();
        assert_eq!(err, NoteError::CheckpointLines { why: "fewer lines" });
    }

    #[test]
    fn the_c2sp_cosignature_message_example() {
        let mut cp = checkpoint();
        cp.origin = Origin::parse("example.com/behind-the-sofa").unwrap();
        cp.size = 20852163;
        cp.root = LogHash::parse("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=").unwrap();
        // The C2SP example's three lines, then the extension line: the whole text.
        let mut want =
            b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
                .to_vec();
        want.extend_from_slice(format!("fts-heads {} {}\n", cp.heads_count, cp.heads_root).as_bytes());
        assert_eq!(cosignature_message(1679315147, &cp), want);
    }

    #[test]
    fn checkpoints_round_trip_through_their_text() {
        let cp = checkpoint();
        let text = cp.text();
        assert_eq!(
            text,
            "fts.example/test\n3\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\nfts-heads 2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\n"
        );
        assert_eq!(Checkpoint::parse_text(&text).unwrap(), cp);
        assert!(text.starts_with(&cp.cosigned_text()));
        assert_eq!(cp.cosigned_text().lines().count(), 3);
        for (size, heads) in [(0, 0), (MAX_WIRE_INT, MAX_WIRE_INT)] {
            let cp = Checkpoint { size, heads_count: heads, ..checkpoint() };
            assert_eq!(Checkpoint::parse_text(&cp.text()).unwrap(), cp);
        }
    }

    #[test]
    fn checkpoint_texts_have_one_spelling() {
        let good = checkpoint().text();
        let lines: Vec<&str> = good.lines().collect();
        let with = |i: usize, replacement: &str| {
            let mut l = lines.clone();
            l[i] = replacement;
            format!("{}\n", l.join("\n"))
        };
        let line =
            |n: usize| move |e: NoteError| matches!(e, NoteError::CheckpointLine { line, .. } if line == n);
        for (text, n) in [
            (with(0, "fts-x/y"), 1),
            (with(0, "no-slash"), 1),
            (with(0, ""), 1),
            (with(1, "03"), 2),
            (with(1, "-1"), 2),
            (with(1, "+3"), 2),
            (with(1, " 3"), 2),
            (with(1, ""), 2),
            (with(1, "9007199254740992"), 2),
            (with(1, "99999999999999999999"), 2),
            (with(2, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ=="), 3),
            (with(2, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF="), 3),
            (with(2, "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"), 3),
            (with(3, "fts-heads  2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="), 4),
            (with(3, "fts-heads 02 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="), 4),
            (with(3, "fts-heads 2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI= "), 4),
            (with(3, "fts-heads 2"), 4),
            (with(3, "fts-head 2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="), 4),
            (with(3, "fts-heads\t2 AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI="), 4),
        ] {
            let err = Checkpoint::parse_text(&text).unwrap_err();
            assert!(line(n)(err.clone()), "{text:?}: {err}");
        }
        assert_eq!(
            Checkpoint::parse_text(good.trim_end()).unwrap_err(),
            NoteError::CheckpointLines { why: "the text does not end with a newline" }
        );
        assert_eq!(
            Checkpoint::parse_text(&format!("{good}extra\n")).unwrap_err(),
            NoteError::CheckpointLines { why: "more lines" }
        );
        assert_eq!(
            Checkpoint::parse_text(&format!("{good}\n")).unwrap_err(),
            NoteError::CheckpointLines { why: "more lines" }
        );
        assert!(Checkpoint::parse_text("").is_err());
        assert!(Checkpoint::parse_text("\n").is_err());
    }

    #[test]
    fn origins_follow_their_rules() {
        for good in [
            "fts.example/test",
            "a/b",
            "example.com/behind-the-sofa",
            format!("a/{}", "x".repeat(253)).as_str(),
        ] {
            assert_eq!(Origin::parse(good).unwrap().as_str(), good);
        }
        for bad in [
            "",
            "no-slash",
            "fts-file-v1/x",
            "fts-timestamp/0011223344556677",
            "a b/c",
            "a/b\n",
            "a/\u{e9}",
            "a+b/c",
            "a/\x7f",
            format!("a/{}", "x".repeat(254)).as_str(),
        ] {
            assert!(matches!(Origin::parse(bad), Err(NoteError::BadOrigin { .. })), "{bad:?}");
        }
        let json = serde_json::to_string(&Origin::parse("a/b").unwrap()).unwrap();
        assert_eq!(json, "\"a/b\"");
        assert!(serde_json::from_str::<Origin>("\"ab\"").is_err());
        assert_eq!(serde_json::from_str::<Origin>(&json).unwrap().to_string(), "a/b");
    }

    #[test]
    fn notes_round_trip() {
        let note = Note {
            text: checkpoint().text(),
            signatures: vec![
                NoteSignature {
                    name: "fts.example/test".into(),
                    key_hint: [1, 2, 3, 4],
                    signature: vec![9; 64],
                },
                NoteSignature { name: "fts-timestamp/00".into(), key_hint: [5; 4], signature: vec![] },
            ],
        };
        let text = note.render();
        assert!(text.ends_with("\n\u{2014} fts-timestamp/00 BQUFBQ==\n"), "{text}");
        assert!(!note.signatures[0].line().ends_with('\n'));
        assert_eq!(Note::parse(&text).unwrap(), note);
        let sixteen = note_with(&[SIG; MAX_SIGNATURE_LINES]);
        assert_eq!(Note::parse(&sixteen).unwrap().signatures.len(), 16);
    }

    #[test]
    fn every_malformed_note_is_refused_with_its_reason() {
        use NoteError as E;
        let text = checkpoint().text();
        let too_long = note_with(&[&format!("\u{2014} a/b {}", "A".repeat(MAX_NOTE_LEN))]);
        let cases: Vec<(String, NoteError)> = vec![
            (too_long.clone(), E::TooLong { len: too_long.len() }),
            (note_with(&[SIG]).replace("3\n", "3\r\n"), E::CarriageReturn { line: 2 }),
            (note_with(&[&format!("{SIG}\t")]), E::ControlCharacter { line: 6, byte: 9 }),
            (note_with(&[SIG]).replace("3\n", "3\x7f\n"), E::ControlCharacter { line: 2, byte: 0x7f }),
            (note_with(&[SIG]).replace("3\n", "3\0\n"), E::ControlCharacter { line: 2, byte: 0 }),
            (format!("\n{SIG}\n"), E::EmptyText),
            (text.clone(), E::NoBlankLine),
            (format!("{text}{SIG}\n"), E::NoBlankLine),
            (text.trim_end().to_owned(), E::NoFinalNewline),
            (format!("{text}\n"), E::NoSignatures),
            (format!("{text}\n{SIG}"), E::NoFinalNewline),
            (format!("{text}\n{SIG}\n\n"), E::ExtraBlankLine { line: 7 }),
            (format!("{text}\n\n{SIG}\n"), E::ExtraBlankLine { line: 6 }),
            (
                format!("a\n\nb\n\n{SIG}\n"),
                E::MalformedSignatureLine {
                    line: 3,
                    why: "it does not start with an em dash (U+2014) and a space",
                },
            ),
            (note_with(&[SIG; MAX_SIGNATURE_LINES + 1]), E::TooManySignatures),
            (
                note_with(&["- fts.example/test AAAAAAAA"]),
                E::MalformedSignatureLine {
                    line: 6,
                    why: "it does not start with an em dash (U+2014) and a space",
                },
            ),
            (
                note_with(&["\u{2014}fts.example/test AAAAAAAA"]),
                E::MalformedSignatureLine {
                    line: 6,
                    why: "it does not start with an em dash (U+2014) and a space",
                },
            ),
            (
                note_with(&["\u{2014} fts.example/test"]),
                E::MalformedSignatureLine {
                    line: 6,
                    why: "it has no space between the key name and the signature",
                },
            ),
            (
                note_with(&["\u{2014} a b AAAAAAAA"]),
                E::MalformedSignatureLine {
                    line: 6,
                    why: "it has more than two spaces (a key name has none)",
                },
            ),
            (note_with(&["\u{2014}  AAAAAAAA"]), E::BadKeyName { line: 6, why: "is empty" }),
            (note_with(&["\u{2014} a\u{a0}b AAAAAAAA"]), E::BadKeyName { line: 6, why: "contains a space" }),
            (note_with(&["\u{2014} a+b AAAAAAAA"]), E::BadKeyName { line: 6, why: "contains `+`" }),
            (note_with(&["\u{2014} a/b AAAAAAB="]), E::BadBase64 { line: 6 }),
            (note_with(&["\u{2014} a/b AAAAAAA"]), E::BadBase64 { line: 6 }),
            (note_with(&["\u{2014} a/b AAAA-AAA"]), E::BadBase64 { line: 6 }),
            (note_with(&["\u{2014} a/b "]), E::SignatureTooShort { line: 6, len: 0 }),
            (note_with(&["\u{2014} a/b AAA="]), E::SignatureTooShort { line: 6, len: 2 }),
        ];
        for (note, want) in cases {
            let got = Note::parse(&note).unwrap_err();
            assert_eq!(got, want, "{note:?}");
            assert!(!got.to_string().is_empty());
        }
    }

    #[test]
    fn the_c2sp_signed_note_example_with_an_empty_text_line_is_refused() {
        let poem = "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned \u{e8} subito sera.\n\n\u{2014} quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n";
        let err = Note::parse(poem).unwrap_err();
        assert!(matches!(err, NoteError::MalformedSignatureLine { line: 4, .. }), "{err}");
    }

    #[test]
    fn the_statement_leaf_is_the_statement_then_key_id_and_signature() {
        use crate::names::{FileHash, FileName, Published, Target};
        let statement = Statement {
            target: Target::parse("web-01").unwrap(),
            seq: crate::Seq::new(1).unwrap(),
            file_name: FileName::parse("a.deb").unwrap(),
            file_size: 0,
            file_hash: FileHash::parse(&format!("sha256:{}", "0".repeat(64))).unwrap(),
            published: Published::parse("2026-11-25T17:00:00Z").unwrap(),
        };
        let key_id = KeyId::parse("4d06ee28107bfc40").unwrap();
        let signature = Signature::from_bytes([0; 64]);
        let leaf = statement_leaf(&statement, &key_id, &signature);
        let mut want = statement.to_bytes();
        want.extend_from_slice(b"key-id 4d06ee28107bfc40\nsignature ");
        want.extend_from_slice(signature.to_string().as_bytes());
        want.push(b'\n');
        assert_eq!(leaf, want);
        assert!(Note::parse(&String::from_utf8(leaf).unwrap()).is_err(), "a leaf is no note");
    }
}
