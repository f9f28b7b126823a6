//! fts-store: the durable state of fts.
//!
//! - content-addressed **blobs**: every published file once, named by its SHA-256;
//! - the **journal**: one append-only file of checksummed records, one record per
//!   publish holding its signed entries for every target. It gives atomic
//!   multi-target publishes, per-target sequence numbers and the global publish order
//!   in one place, and its torn tail is never served;
//! - the **publish lock**, so concurrent publishers never share a sequence number.
//!
//! The server opens the store read-only (even a replica synced by rsync): delivery
//! status and host receipts, which it writes, live in fts-status.
//!
//! Modules: [`publish`] (the signing host's [`Store`]), [`preview`] (what a publish
//! would do, for `fts publish --dry-run`), [`gc`] (`fts gc`: the blobs no entry needs
//! any more, removed under the lock), [`reader`] (the server's [`StoreReader`]),
//! [`history`] (the journal with its notes, for `fts log`), [`provenance`] (the
//! unsigned note and publisher of a record), [`journal`] (the record format and the
//! index), [`entry`]
//! ([`Entry`]), [`layout`] (file names), [`error`] ([`StoreError`], with its typed
//! cause [`NotAStore`]). The on-disk format, the crash-safety
//! argument and replication are described in `docs/STORE.md`.
//!
//! Not here: signing keys and signature checks (fts-trust), the network (fts-net).
//! Synchronous std code only; an async server calls it from blocking tasks.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod entry;
pub mod error;
pub mod gc;
pub mod history;
pub mod journal;
pub mod layout;
pub mod log;
pub mod preview;
pub mod provenance;
pub mod publish;
pub mod reader;
pub mod served_log;

pub use entry::{Entry, WithdrawalEntry};
pub use error::{NotAStore, Result, StoreError};
pub use gc::{Collected, CollectedBlob, GcReport, Reference, Skipped, UNREFERENCED_MIN_AGE, Unneeded};
pub use history::History;
pub use journal::{DamageKind, FORMAT_VERSION, JournalDamage, MAX_RECORD_LEN};
pub use layout::blob_path;
pub use preview::Preview;
pub use provenance::{Note, Provenance, Publisher};
pub use publish::{Store, Withdrawn};
pub use reader::{
    Answer, BlobProblem, BlockedEntry, MAX_BODILESS, Outgoing, Refresh, Sending, ServeRules, StoreReader,
    StoreSnapshot,
};
