//! [`StatusBackend`]: the one interface to delivery status. The server records polls,
//! what it offered, and receipts through it; `fts status` reads the views' input
//! through it. [`StatusDir`] (files, the embedded default) implements it; a database
//! implementation (fts-status-db, PostgreSQL) passes the same shared suite
//! (`crates/status/tests/suite/mod.rs`).

use std::collections::BTreeMap;
use std::time::SystemTime;

use fts_proto::{ClientId, Published, Report, Target};

use crate::dir::{ClientStatus, PollClaims, ServerStatus, StatusDir};
use crate::error::Result;
use crate::receipts::{ReceiptArrival, ReceiptLog};

/// Where delivery status lives.
pub trait StatusBackend: Send + Sync {
    /// Notes a poll that changes nothing but the time, in memory only (no I/O: an
    /// async task may call it); `false`: it needs [`record_poll`](Self::record_poll).
    fn note_unchanged_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> bool;
    /// Records one poll: what it claims and the problems it reports. A backend may
    /// queue it (then readers in the same process see it, and [`flush`](Self::flush)
    /// writes it).
    fn record_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> Result<()>;
    /// Records the newest entry per target an answer sent `client`.
    fn record_offered(
        &self,
        client: &ClientId,
        offered: &BTreeMap<Target, u64>,
        now: SystemTime,
    ) -> Result<()>;
    /// Stores checked receipts durably (leaving out those already stored); only then
    /// may they be acknowledged.
    fn record_receipts(&self, arrivals: &[ReceiptArrival]) -> Result<()>;
    /// Takes stored receipts into their hosts' status (after the acknowledgement; a
    /// backend that did it in [`record_receipts`](Self::record_receipts), in the same
    /// transaction, does nothing here).
    fn apply_receipts(&self, arrivals: &[ReceiptArrival]);
    /// Writes what [`note_unchanged_poll`](Self::note_unchanged_poll) kept in memory,
    /// and whatever the backend queued.
    fn flush(&self) -> Result<()>;
    /// Records what the server says about itself.
    fn write_server(&self, status: &ServerStatus) -> Result<()>;
    /// What the server last said about itself.
    fn read_server(&self) -> Option<ServerStatus>;
    /// Every client's status, sorted by id.
    fn clients(&self) -> Result<Vec<ClientStatus>>;
    /// Every client's status, as [`clients`](Self::clients) has it, handed to `each`
    /// at most `batch` at a time, in no particular order: what a view that need not
    /// hold the whole fleet at once uses (the server's fleet gauges, every 30 s, in a
    /// process that must stay small).
    fn clients_in_batches(&self, batch: usize, each: &mut dyn FnMut(Vec<ClientStatus>)) -> Result<()>;
    /// One client's status.
    fn client(&self, client: &ClientId) -> Result<Option<ClientStatus>>;
    /// Every stored receipt, in the order stored, with the forget markers.
    fn receipts(&self) -> Result<ReceiptLog>;
    /// A stored client certificate by serial (hex), DER.
    fn certificate(&self, serial: &str) -> Result<Option<Vec<u8>>>;
    /// Forgets a decommissioned host: its status goes; its receipts stay as
    /// evidence, but a host enrolled again under the id starts a new chain.
    fn forget(&self, client: &ClientId, now: Published) -> Result<bool>;
    /// How the backend's writes are going, for the server's metrics. The files write
    /// at once (an error is returned to the caller), so they report nothing queued.
    fn health(&self) -> BackendHealth {
        BackendHealth::default()
    }
}

/// How a backend that queues its writes is doing ([`StatusBackend::health`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackendHealth {
    /// Status updates waiting in memory to be written.
    pub queued: u64,
    /// Status updates dropped because the queue was full (the hosts' next changes
    /// are written again).
    pub dropped: u64,
    /// Writes that failed (each is retried).
    pub write_errors: u64,
    /// Whether the last write failed.
    pub failing: bool,
}

impl StatusBackend for StatusDir {
    fn note_unchanged_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> bool {
        StatusDir::note_unchanged_poll(self, client, authenticated, claims, reports, now)
    }

    fn record_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> Result<()> {
        StatusDir::record_poll(self, client, authenticated, claims, reports, now).map(|_| ())
    }

    fn record_offered(
        &self,
        client: &ClientId,
        offered: &BTreeMap<Target, u64>,
        now: SystemTime,
    ) -> Result<()> {
        StatusDir::record_offered(self, client, offered, now)
    }

    fn record_receipts(&self, arrivals: &[ReceiptArrival]) -> Result<()> {
        StatusDir::record_receipts(self, arrivals)
    }

    fn apply_receipts(&self, arrivals: &[ReceiptArrival]) {
        StatusDir::apply_receipts(self, arrivals);
    }

    fn flush(&self) -> Result<()> {
        self.flush_last_polls().map(|_| ())
    }

    fn write_server(&self, status: &ServerStatus) -> Result<()> {
        StatusDir::write_server(self, status)
    }

    fn read_server(&self) -> Option<ServerStatus> {
        StatusDir::read_server(self)
    }

    fn clients(&self) -> Result<Vec<ClientStatus>> {
        self.read_all()
    }

    fn clients_in_batches(&self, batch: usize, each: &mut dyn FnMut(Vec<ClientStatus>)) -> Result<()> {
        self.read_in_batches(batch, each)
    }

    fn client(&self, client: &ClientId) -> Result<Option<ClientStatus>> {
        self.read(client)
    }

    fn receipts(&self) -> Result<ReceiptLog> {
        self.read_receipts()
    }

    fn certificate(&self, serial: &str) -> Result<Option<Vec<u8>>> {
        StatusDir::certificate(self, serial)
    }

    fn forget(&self, client: &ClientId, now: Published) -> Result<bool> {
        StatusDir::forget(self, client, now)
    }
}
