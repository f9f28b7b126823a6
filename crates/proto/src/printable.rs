//! [`Printable`]: text that came from a peer (a server's error message, a CSR's
//! fields, a certificate's claimed name), made safe to print on a terminal or write
//! to a log line.
//!
//! Every C0 control character (U+0000 to U+001F), DEL (U+007F) and every C1 control
//! character (U+0080 to U+009F) is written as a `\u{..}` escape, and so is a
//! backslash (as `\\`), so that an escape in the output always means the peer sent
//! it. Everything else, including non-ASCII letters, passes through. A peer can then
//! neither move the cursor, erase a line, retitle a terminal nor forge a log line
//! with an embedded newline.
//!
//! ```
//! use fts_proto::Printable;
//! let hostile = "ok\x1b[2K\r\nfts poll: done";
//! assert_eq!(Printable(hostile).to_string(), r"ok\u{1b}[2K\u{d}\u{a}fts poll: done");
//! ```

use std::fmt::{self, Write};

/// Displays the wrapped text with control characters escaped (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                c if is_control(c) => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Whether `c` is a C0 or C1 control character or DEL.
fn is_control(c: char) -> bool {
    matches!(u32::from(c), 0x00..=0x1f | 0x7f..=0x9f)
}

/// `text` with its control characters escaped, as an owned string (for a value kept
/// in an error or a log field).
pub fn printable(text: &str) -> String {
    Printable(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_and_letters_pass_through() {
        assert_eq!(printable("web-01: ünïcødé ok"), "web-01: ünïcødé ok");
    }

    #[test]
    fn every_control_character_and_backslash_is_escaped() {
        assert_eq!(printable("a\x00b\x07c\x7fd\u{9b}e"), r"a\u{0}b\u{7}c\u{7f}d\u{9b}e");
        assert_eq!(printable(r"a\u{1b}"), r"a\\u{1b}", "a literal escape cannot pass for one");
        assert_eq!(printable("\x1b]0;owned\x07"), r"\u{1b}]0;owned\u{7}");
    }

    proptest::proptest! {
        #[test]
        fn the_output_never_holds_a_control_character(text in ".*") {
            let out = printable(&text);
            proptest::prop_assert!(!out.chars().any(is_control), "{out:?}");
        }
    }
}
