//! What a publish record says about where it came from, beside its signed entries:
//! the operator's [`Note`] (`fts publish --note`) and the [`Publisher`] (login name
//! and host name). Neither is signed and neither reaches a host: they are for the
//! people reading `fts log` on the signing host or a replica.
//!
//! They live in the publish record itself, as two optional fields (`note`,
//! `publisher`), rather than in a side file. The journal's reader has never refused
//! an unknown field (its record types have no `deny_unknown_fields`), so the previous
//! release reads a record with them exactly as one without, and replicas carry them
//! with the journal, under its checksum, written in the same single append (no second
//! file to keep in step, no new crash case). A record without them is byte for byte
//! what the previous release wrote.
//!
//! Reading is lenient on purpose: these fields never make a record invalid, whatever
//! they hold. The previous release ignores them, so if this one refused a record for
//! a malformed note, the two would disagree on a journal's valid prefix, and a server
//! of one release would serve entries the other stops at. A note of the wrong type is
//! read as no note; a string is kept as it is (and escaped when shown). Writing is
//! strict: [`Note::parse`] is the only way to make one.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The longest note, in bytes of UTF-8.
pub const MAX_NOTE_BYTES: usize = 1000;

/// The longest user or host name recorded, in bytes of UTF-8.
pub const MAX_PUBLISHER_NAME_BYTES: usize = 256;

/// One line of printable text an operator attaches to a publish (`--note`): at most
/// [`MAX_NOTE_BYTES`] bytes, no control character, no character that changes the
/// direction or visibility of the text around it. Made only by [`Note::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Note(String);

/// Why a note (or a publisher's name) is refused. The message says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// Nothing in it.
    #[error("is empty")]
    Empty,
    /// Over the length limit.
    #[error("has {len} bytes, more than the {max} allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character that is not printable text.
    #[error(
        "holds {what} (U+{code:04X}) at character {at}: only one line of printable text is allowed \
         (no newline, tab, escape or other control or formatting character)"
    )]
    NotPrintable {
        /// What kind of character, in words.
        what: &'static str,
        /// Its code point.
        code: u32,
        /// Its place, counting characters from 1.
        at: usize,
    },
}

impl Note {
    /// Checks `text` against the rules of a note.
    pub fn parse(text: &str) -> Result<Note, TextError> {
        check_text(text, MAX_NOTE_BYTES)?;
        Ok(Note(text.to_owned()))
    }

    /// The note's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Note {
    type Err = TextError;

    fn from_str(s: &str) -> Result<Self, TextError> {
        Note::parse(s)
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who published: the login name and the host name of the signing host, as the
/// publishing process saw them. Informational, like the note: whoever runs `fts
/// publish` chooses its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publisher {
    /// The login name.
    pub user: String,
    /// The host name, when it could be found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl Publisher {
    /// A publisher whose names are kept only if they are printable text of at most
    /// [`MAX_PUBLISHER_NAME_BYTES`] bytes; `None` without a usable user name.
    pub fn new(user: &str, host: Option<&str>) -> Option<Publisher> {
        let usable = |name: &str| check_text(name, MAX_PUBLISHER_NAME_BYTES).is_ok();
        usable(user)
            .then(|| Publisher { user: user.to_owned(), host: host.filter(|h| usable(h)).map(str::to_owned) })
    }
}

/// `user@host`, or `user` alone.
impl fmt::Display for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Some(host) => write!(f, "{}@{host}", self.user),
            None => f.write_str(&self.user),
        }
    }
}

/// What a publish record carries besides its entries. Empty by default: then the
/// record is written exactly as the previous release wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provenance {
    /// The operator's note. When read back from a journal, any string (shown escaped).
    pub note: Option<String>,
    /// Who published.
    pub publisher: Option<Publisher>,
}

impl Provenance {
    /// A provenance for a new publish.
    pub fn new(note: Option<Note>, publisher: Option<Publisher>) -> Provenance {
        Provenance { note: note.map(|n| n.0), publisher }
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.note.is_none() && self.publisher.is_none()
    }
}

/// Not empty, at most `max` bytes, and printable: no control character (C0, DEL, C1)
/// and none of the invisible characters that reorder or hide the text around them
/// (bidirectional overrides and isolates, zero-width characters, line and paragraph
/// separators): a note must read on a terminal as what it says.
fn check_text(text: &str, max: usize) -> Result<(), TextError> {
    if text.is_empty() {
        return Err(TextError::Empty);
    }
    if text.len() > max {
        return Err(TextError::TooLong { len: text.len(), max });
    }
    for (i, c) in text.chars().enumerate() {
        let what = if c.is_control() {
            Some("a control character")
        } else if is_invisible_format(c) {
            Some("an invisible formatting character")
        } else {
            None
        };
        if let Some(what) = what {
            return Err(TextError::NotPrintable { what, code: u32::from(c), at: i + 1 });
        }
    }
    Ok(())
}

/// Characters that change how the text around them is shown without being seen
/// themselves (Unicode format characters of the kinds used to disguise text), and
/// the line and paragraph separators.
fn is_invisible_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD | 0x061C | 0x180E | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x2069 | 0xFEFF
    )
}

/// Deserializes an optional field that must never fail its record: whatever does not
/// parse as `T` is read as absent (see the module docs).
pub(crate) fn lenient<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = serde_json::Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_one_line_of_printable_text_up_to_1000_bytes() {
        assert!(Note::parse("hotfix for CVE-2026-1234, ticket #42 (ünïcødé ok)").is_ok());
        assert!(Note::parse(&"x".repeat(MAX_NOTE_BYTES)).is_ok());
        assert_eq!(
            Note::parse(&"é".repeat(501)),
            Err(TextError::TooLong { len: 1002, max: 1000 }),
            "bytes, not characters"
        );
        assert_eq!(Note::parse(""), Err(TextError::Empty));
        for (bad, code, at) in [
            ("two\nlines", 0x0a, 4),
            ("tab\there", 0x09, 4),
            ("\x1b[31mred", 0x1b, 1),
            ("del\x7f", 0x7f, 4),
            ("c1\u{9b}", 0x9b, 3),
            ("abc\u{202e}fed", 0x202e, 4),
            ("zero\u{200b}width", 0x200b, 5),
            ("line\u{2028}sep", 0x2028, 5),
        ] {
            match Note::parse(bad) {
                Err(TextError::NotPrintable { code: c, at: a, .. }) => {
                    assert_eq!((c, a), (code, at), "{bad:?}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let err = Note::parse("a\nb").unwrap_err().to_string();
        assert!(err.contains("U+000A") && err.contains("one line of printable text"), "{err}");
    }

    #[test]
    fn a_publisher_keeps_only_printable_names() {
        assert_eq!(Publisher::new("alice", Some("signer")).unwrap().to_string(), "alice@signer");
        assert_eq!(Publisher::new("alice", Some("bad\nhost")).unwrap().to_string(), "alice");
        assert_eq!(Publisher::new("alice", None).unwrap().to_string(), "alice");
        assert_eq!(Publisher::new("", Some("signer")), None);
        assert_eq!(Publisher::new(&"u".repeat(MAX_PUBLISHER_NAME_BYTES + 1), None), None);
    }
}
