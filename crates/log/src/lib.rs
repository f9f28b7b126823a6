//! fts-log: the append-only log of published statements (docs/PROTOCOL.md section 7).
//!
//! Pure code, no I/O: RFC 6962 hashing, an in-memory tree that gives roots and
//! proofs at any size ([`merkle`]), and the heads tree, which commits to each
//! target's newest seq ([`heads`]).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod heads;
pub mod merkle;
