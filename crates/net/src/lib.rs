//! fts-net: the tokio I/O of fts.
//!
//! - [`admission`]: what a source may hold before its handshake (per-source limits,
//!   the first-byte timeout, trusted proxies and their PROXY headers);
//! - [`proxy_protocol`]: the PROXY v2 header a trusted load balancer sends first;
//! - [`connection`]: frames over any byte stream, limits checked before allocation;
//! - [`limits`]: admission of polls (server-wide and per client id);
//! - [`pacing`]: the minimum send rate that cuts off clients that stop reading;
//! - [`egress`]: the cap on the server's total send rate (`--max-send-rate`) and the
//!   admission of transfers under it;
//! - [`bucket`]: the token bucket of that cap and of the host's `--max-rate`;
//! - [`server`]: the mutual-TLS server of `fts serve`;
//! - [`receipt_intake`]: the host receipts it takes: checked, stored in batches,
//!   acknowledged once durable;
//! - [`crl_watch`]: reloads a changed CRL into the running server, and retries one
//!   that fails until it loads;
//! - [`handshake_log`]: what is logged about connections that fail before a request;
//! - [`summary_log`]: the rate limit of every log line that others can cause;
//! - [`store_view`]: the store as polls read it, an immutable snapshot kept current by
//!   one refresher on a blocking thread;
//! - [`error`]: the crate's errors, and how a poll ended ([`PollEnd`]);
//! - [`metrics`] and [`metrics_http`]: what the server counts, and `/metrics`;
//! - [`fleet_metrics`]: the fleet view's gauges (hosts per release and state),
//!   computed from the status every so often;
//! - [`client`]: the host side of `fts poll`, which verifies before it installs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod bucket;
pub mod client;
pub mod connection;
pub mod crl_watch;
pub mod egress;
pub mod error;
pub mod fleet_metrics;
pub mod handshake_log;
pub mod limits;
pub mod metrics;
pub mod metrics_http;
pub mod pacing;
pub mod proxy_protocol;
pub mod receipt_intake;
pub mod server;
pub mod store_view;
pub mod summary_log;

pub use connection::{Connection, ReadError};
pub use error::{PollEnd, PollError};
