//! fts-net: the tokio I/O of fts.
//!
//! - [`connection`]: frames over any byte stream, limits checked before allocation;
//! - [`limits`]: admission of polls (server-wide and per client id);
//! - [`pacing`]: the minimum send rate that cuts off clients that stop reading.
#![forbid(unsafe_code)]

pub mod connection;
pub mod limits;
pub mod pacing;

pub use connection::{Connection, ReadError};
