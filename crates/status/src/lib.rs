//! fts-status: delivery status, the server's own record of what each host said.
//!
//! fts-store is the read-only signed store; everything the server writes about its
//! hosts lives here, in the status folder (`--status-dir`, outside the store):
//!
//! - [`dir`]: one file per client with its last poll, its `since`, holds, alarms and
//!   reported problems ([`StatusDir`], with `last_polls` for the times of unchanged
//!   polls, which only reach disk every few seconds);
//! - [`receipts`]: the signed receipts the hosts sent, appended to one file per
//!   day, and the client certificates that check them;
//! - [`backend`]: [`StatusBackend`], the one interface the server and `fts status`
//!   use, which the files implement (and a database can);
//! - [`fleet`]: the views (per host, per release, the fleet summary), computed from
//!   the statuses and the store's entries;
//! - [`error`]: every way it fails ([`StatusError`]).
//!
//! Status is advisory: what the server shows of a host is what that host said, and
//! the server's to keep. Synchronous std code only; an async server calls it from
//! blocking tasks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod dir;
pub mod error;
pub mod fleet;
pub mod last_polls;
pub mod receipts;

pub use backend::{BackendHealth, StatusBackend};
pub use dir::{
    CertificateSeen, ClientStatus, CrlReloadFailing, EntryState, MAX_PROBLEMS, Offered, PollClaims, Problem,
    ReceiptBook, SERVER_STATUS_FILE, STATUS_FORMAT, ServerStatus, StatusDir, apply_offered, apply_poll,
};
pub use error::{BadStatusFile, Result, StatusError};
