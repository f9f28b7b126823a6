//! fts-proto: the fts wire format and nothing else.
//!
//! Pure code (no I/O, no async runtime, no cryptography) so that it is fast, easy to
//! read against PROTOCOL.md, and fuzzable:
//!
//! - [`names`]: the names of section 4 as types that cannot hold an invalid value;
//! - [`keys`]: the `key-id` and `signature` fields, syntax only;
//! - [`statement`]: the bytes of the signed statement of section 5.
#![forbid(unsafe_code)]

pub mod keys;
pub mod names;
pub mod statement;

pub use keys::{KeyId, Signature};
pub use names::{ClientId, FileHash, FileName, GroupName, NameError, Published, Target};
pub use statement::{STATEMENT_TAG, Statement};
