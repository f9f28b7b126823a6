//! fts-status: delivery status, the server's own record of what each host said.
//!
//! fts-store is the read-only signed store; everything the server writes about its
//! hosts lives here, in the status folder (`--status-dir`, outside the store):
//!
//! - [`dir`]: one file per client with its last poll, its `since`, holds, alarms and
//!   reported problems ([`StatusDir`], with `last_polls` for the times of unchanged
//!   polls, which only reach disk every few seconds);
//! - [`error`]: every way it fails ([`StatusError`]).
//!
//! Status is advisory: what the server shows of a host is what that host said, and
//! the server's to keep. Synchronous std code only; an async server calls it from
//! blocking tasks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dir;
pub mod error;
mod last_polls;

pub use dir::{
    ClientStatus, CrlReloadFailing, MAX_PROBLEMS, PollClaims, Problem, SERVER_STATUS_FILE, STATUS_FORMAT,
    ServerStatus, StatusDir,
};
pub use error::{BadStatusFile, Result, StatusError};
