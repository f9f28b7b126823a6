//! fts-net: the tokio I/O of fts.
//!
//! - [`connection`]: frames over any byte stream, limits checked before allocation.
#![forbid(unsafe_code)]

pub mod connection;

pub use connection::{Connection, ReadError};
