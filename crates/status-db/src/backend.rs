//! [`PgStatus`]: delivery status in PostgreSQL, the [`StatusBackend`] for several
//! servers (and `fts status` reading all of them).
//!
//! How each part holds:
//! - **Polls never wait for the database.** A poll adds an update to the in-memory
//!   queue (or notes its time in the book when nothing else changed) and returns; the
//!   writer task writes the queue every [`PgOptions::batch_interval`] in one
//!   transaction (`SELECT ... FOR UPDATE` of the hosts concerned, in id order so that
//!   two servers never deadlock; the same merge the files use; one upsert), and the
//!   book's times at each [`StatusBackend::flush`] (`--status-interval`) in one
//!   update. A failed write puts its updates back, is logged (once a minute) and
//!   counted ([`StatusBackend::health`], the server's `fts_status_*` metrics), and is
//!   tried again.
//! - **A receipt acknowledged is stored.** [`StatusBackend::record_receipts`] commits
//!   the receipts (each once: `hash` is unique) and their certificates before it
//!   returns; when the database is down it fails, nothing is acknowledged, and the
//!   hosts keep the receipts and send them again. Only taking them into the hosts'
//!   status is queued.
//! - **Several servers.** Every server reads and writes the same rows under row locks,
//!   so a host may poll any of them; each server's own state (revocation, CRL) is a
//!   row of its own in `fts_servers`, and readers see the worst of those heard from
//!   recently ([`merge_servers`]).
//!
//! The trait is synchronous (the server calls it from blocking tasks, `fts status`
//! from its main thread); the driver is async, so the backend runs its own small tokio
//! runtime and each call waits for a task there.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use fts_proto::{ClientId, ErrorChain, Published, Report, Target};
use fts_status::last_polls::{fingerprint, last_poll_to_show};
use fts_status::receipts::{Forgotten, LogLine, ReceiptArrival, ReceiptLog, StoredReceipt, apply_receipt};
use fts_status::{BackendHealth, ClientStatus, PollClaims, STATUS_FORMAT, ServerStatus, StatusBackend};
use tokio_postgres::Client;

use crate::error::{DbError, Result};
use crate::queue::{PollBook, Queue, Update};
use crate::schema;
use crate::settings::{Connector, DbSettings};

/// Updates written per transaction at most.
const BATCH: usize = 5_000;
/// Servers not heard from for this long are left out of [`merge_servers`].
const SERVER_HEARD_WITHIN: Duration = Duration::from_secs(15 * 60);
/// Connections kept open for reuse.
const IDLE_CONNECTIONS: usize = 4;

/// How the backend batches and waits.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// How often the writer writes the queued updates.
    pub batch_interval: Duration,
    /// How long one database operation may take before it counts as failed.
    pub timeout: Duration,
    /// This server's name in `fts_servers` (readers: any).
    pub server_name: String,
    /// The schema this process knows ([`schema::SCHEMA`]; lower only in tests of an
    /// older server).
    pub known_schema: i32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            batch_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            server_name: "fts".into(),
            known_schema: schema::SCHEMA,
        }
    }
}

/// Delivery status in PostgreSQL.
pub struct PgStatus {
    /// Taken at drop, to be shut down without waiting (a drop may come on an async
    /// task of the server, where a runtime must not block).
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PgStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStatus").field("database", &self.shared.connector.shown()).finish()
    }
}

/// What the calls and the writer task share.
struct Shared {
    connector: Connector,
    options: PgOptions,
    idle: Mutex<Vec<Client>>,
    /// Set once a connection found the schema acceptable.
    schema_checked: AtomicBool,
    queue: Queue,
    book: PollBook,
    /// Held while updates are taken and written, so that a host's updates are written
    /// in the order they came (the writer and a flush never interleave).
    writing: tokio::sync::Mutex<()>,
    dropped: AtomicU64,
    write_errors: AtomicU64,
    failing: AtomicBool,
    /// When a failed write was last logged (once a minute is enough).
    last_error_logged: Mutex<Option<Instant>>,
    /// Whether this server wrote its row of `fts_servers` (then flushes keep it fresh).
    server_row: AtomicBool,
}

impl PgStatus {
    /// Opens the database for a server: checks the settings and the schema, and
    /// starts the writer. A database that cannot be reached now is not an error (the
    /// server must serve: status waits in memory, and the schema is checked at the
    /// first connection); a schema this fts does not work with is.
    pub fn open_for_serving(settings: &DbSettings, options: PgOptions) -> Result<PgStatus> {
        let status = PgStatus::open(settings, options)?;
        match status.run(check_schema(Arc::clone(&status.shared))) {
            Ok(()) => {}
            Err(e @ DbError::Schema(_)) => return Err(e),
            Err(e) => tracing::error!(
                database = %status.shared.connector.shown(),
                error = %ErrorChain(&e),
                "the status database cannot be reached: serving anyway, status waits in memory"
            ),
        }
        if let Some(runtime) = &status.runtime {
            runtime.spawn(write_queued_every(Arc::clone(&status.shared)));
        }
        Ok(status)
    }

    /// Opens the database for reading (`fts status`): it must answer, with a schema
    /// this fts works with.
    pub fn open_for_reading(settings: &DbSettings, options: PgOptions) -> Result<PgStatus> {
        let status = PgStatus::open(settings, options)?;
        status.run(check_schema(Arc::clone(&status.shared)))?;
        Ok(status)
    }

    fn open(settings: &DbSettings, options: PgOptions) -> Result<PgStatus> {
        let connector = Connector::new(settings)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("fts-status-db")
            .enable_all()
            .build()
            .map_err(|e| DbError::Setting(format!("cannot start the status database's runtime: {e}")))?;
        let shared = Arc::new(Shared {
            connector,
            options,
            idle: Mutex::new(Vec::new()),
            schema_checked: AtomicBool::new(false),
            queue: Queue::default(),
            book: PollBook::new(),
            writing: tokio::sync::Mutex::new(()),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            last_error_logged: Mutex::new(None),
            server_row: AtomicBool::new(false),
        });
        Ok(PgStatus { runtime: Some(runtime), shared })
    }

    /// Where it connects, for messages.
    pub fn shown(&self) -> &str {
        self.shared.connector.shown()
    }

    /// Runs `task` on the backend's runtime and waits for it (from any thread that is
    /// not one of that runtime's).
    fn run<T: Send + 'static>(&self, task: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
        let Some(runtime) = &self.runtime else { return Err(DbError::Stopped) };
        let (done, result) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = done.send(task.await);
        });
        result.recv().map_err(|_| DbError::Stopped)?
    }

    /// Runs a database task under the timeout, with a connection of the pool.
    fn with_connection<T, F>(&self, what: &'static str, task: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client) -> std::pin::Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>
            + Send
            + 'static,
    {
        let shared = Arc::clone(&self.shared);
        self.run(async move {
            let timeout = shared.options.timeout;
            let work = async {
                let mut client = shared.connection().await?;
                let result = task(&mut client).await;
                shared.give_back(client);
                result
            };
            tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| DbError::Timeout { what, after: timeout })?
        })
    }

    /// Writes every queued update now (reads in this process see them after).
    fn write_all_queued(&self) -> Result<()> {
        let shared = Arc::clone(&self.shared);
        self.run(async move {
            while write_some(&shared).await? {}
            Ok(())
        })
    }
}

/// What [`PgStatus::import`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    /// Hosts.
    pub hosts: usize,
    /// Receipt log lines (receipts and forget markers).
    pub lines: usize,
    /// Certificates.
    pub certificates: usize,
}

/// Stores certificates ($1 names, $2 DER), each once.
const INSERT_CERTIFICATES: &str = "INSERT INTO fts_certificates (name, der) \
    SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (name) DO NOTHING";
/// Appends receipt log lines ($1 client ids, $2 receipt hashes or NULL, $3 lines) in
/// their order, each receipt once; returns the hashes of those that were new.
const INSERT_RECEIPTS: &str = "INSERT INTO fts_receipts (client_id, hash, line) \
    SELECT id, hash, line::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) \
    WITH ORDINALITY AS t(id, hash, line, n) ORDER BY n ON CONFLICT (hash) DO NOTHING RETURNING hash";

/// Rows per statement of an import.
const IMPORT_BATCH: usize = 5_000;

impl PgStatus {
    /// Copies a status folder's content (`fts status-db import`): every host's status,
    /// the receipt log in its order, and the certificates it names (`certificate`
    /// reads one by name), into a database that holds no host yet. One transaction:
    /// all of it or nothing.
    pub fn import(
        &self,
        clients: Vec<ClientStatus>,
        log: Vec<LogLine>,
        certificate: &dyn Fn(&str) -> fts_status::Result<Option<Vec<u8>>>,
    ) -> fts_status::Result<Imported> {
        let mut names: Vec<String> = log
            .iter()
            .filter_map(|line| match line {
                LogLine::Receipt(stored) => Some(stored.certificate.clone()),
                LogLine::Forget(_) => None,
            })
            .collect();
        names.sort();
        names.dedup();
        let mut certificates = Vec::with_capacity(names.len());
        for name in names {
            if let Some(der) = certificate(&name)? {
                certificates.push((name, der));
            }
        }
        let mut hosts = Vec::with_capacity(clients.len());
        for status in &clients {
            hosts.push((
                status.client_id.to_string(),
                to_json("a host's status", status)?,
                seconds(&status.last_poll),
            ));
        }
        let mut lines = Vec::with_capacity(log.len());
        for line in &log {
            let (id, hash) = match line {
                LogLine::Receipt(stored) => (stored.client_id.to_string(), Some(stored.hash.to_string())),
                LogLine::Forget(forgotten) => (forgotten.client_id.to_string(), None),
            };
            lines.push((id, hash, to_json("a receipt log line", line)?));
        }
        let counts = Imported { hosts: hosts.len(), lines: lines.len(), certificates: certificates.len() };
        let timeout = self.shared.options.timeout * 30;
        let shared = Arc::clone(&self.shared);
        self.run(async move {
            let work = async {
                let mut client = shared.connection().await?;
                let imported = import_rows(&mut client, &hosts, &lines, &certificates).await;
                shared.give_back(client);
                imported
            };
            tokio::time::timeout(timeout, work)
                .await
                .map_err(|_| DbError::Timeout { what: "import", after: timeout })?
        })?;
        Ok(counts)
    }
}

/// `value` as JSON text.
fn to_json(what: &'static str, value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(|source| DbError::Encode { what, source })
}

async fn import_rows(
    client: &mut Client,
    hosts: &[(String, String, i64)],
    lines: &[(String, Option<String>, String)],
    certificates: &[(String, Vec<u8>)],
) -> Result<()> {
    let what = "import the status folder";
    let transaction = client.transaction().await.map_err(DbError::postgres(what))?;
    let existing: i64 = transaction
        .query_one("SELECT count(*) FROM fts_hosts", &[])
        .await
        .map_err(DbError::postgres(what))?
        .get(0);
    if existing > 0 {
        return Err(DbError::Setting(format!(
            "the status database already knows {existing} hosts: import into a new database only"
        )));
    }
    for part in certificates.chunks(IMPORT_BATCH) {
        let (names, ders): (Vec<&str>, Vec<&[u8]>) =
            part.iter().map(|(n, d)| (n.as_str(), d.as_slice())).unzip();
        transaction.execute(INSERT_CERTIFICATES, &[&names, &ders]).await.map_err(DbError::postgres(what))?;
    }
    for part in lines.chunks(IMPORT_BATCH) {
        let ids: Vec<&str> = part.iter().map(|(id, _, _)| id.as_str()).collect();
        let hashes: Vec<Option<&str>> = part.iter().map(|(_, hash, _)| hash.as_deref()).collect();
        let texts: Vec<&str> = part.iter().map(|(_, _, line)| line.as_str()).collect();
        transaction
            .execute(INSERT_RECEIPTS, &[&ids, &hashes, &texts])
            .await
            .map_err(DbError::postgres(what))?;
    }
    for part in hosts.chunks(IMPORT_BATCH) {
        let ids: Vec<&str> = part.iter().map(|(id, _, _)| id.as_str()).collect();
        let texts: Vec<&str> = part.iter().map(|(_, status, _)| status.as_str()).collect();
        let times: Vec<i64> = part.iter().map(|(_, _, at)| *at).collect();
        transaction
            .execute(
                "INSERT INTO fts_hosts (client_id, status, last_contact) \
                 SELECT id, status::jsonb, at FROM unnest($1::text[], $2::text[], $3::int8[]) AS t(id, status, at)",
                &[&ids, &texts, &times],
            )
            .await
            .map_err(DbError::postgres(what))?;
    }
    transaction.commit().await.map_err(DbError::postgres(what))
}

impl Shared {
    /// A connection: an idle one, or a new one (whose schema is checked if no
    /// connection has been yet).
    async fn connection(&self) -> Result<Client> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        if let Some(client) = idle.filter(|c| !c.is_closed()) {
            return Ok(client);
        }
        let client = self.connector.connect().await?;
        if !self.schema_checked.load(Ordering::Acquire) {
            schema::check(&client, self.options.known_schema).await?;
            self.schema_checked.store(true, Ordering::Release);
        }
        Ok(client)
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_CONNECTIONS {
            idle.push(client);
        }
    }

    fn queue(&self, update: Update) {
        if let Some(client) = self.queue.push(update) {
            self.lost_update(&client);
        }
    }

    /// A host's update was dropped (the queue was full): counted, logged, and its next
    /// poll written whole.
    fn lost_update(&self, client: &ClientId) {
        self.book.forget(client);
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        if self.may_log_error() {
            tracing::error!(
                dropped,
                "the status queue is full (the status database is down or slow): dropping the oldest \
                 status updates; each host's next change is written again"
            );
        }
    }

    /// Whether a failure may be logged now (once a minute).
    fn may_log_error(&self) -> bool {
        let mut last = self.last_error_logged.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < Duration::from_secs(60)) {
            return false;
        }
        *last = Some(now);
        true
    }

    fn write_failed(&self, e: &DbError) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        let was_failing = self.failing.swap(true, Ordering::AcqRel);
        if !was_failing || self.may_log_error() {
            tracing::error!(
                database = %self.connector.shown(),
                queued = self.queue.len(),
                error = %ErrorChain(e),
                "cannot write delivery status: it waits in memory and is written when the database is back"
            );
        }
    }

    fn write_succeeded(&self) {
        if self.failing.swap(false, Ordering::AcqRel) {
            tracing::info!(database = %self.connector.shown(), "the status database is back: status written");
        }
    }
}

async fn check_schema(shared: Arc<Shared>) -> Result<()> {
    let timeout = shared.options.timeout;
    let work = async {
        let client = shared.connection().await?;
        shared.give_back(client);
        Ok(())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| DbError::Timeout { what: "connect to the status database", after: timeout })?
}

/// The writer: the queue every batch interval, backing off while writes fail.
async fn write_queued_every(shared: Arc<Shared>) {
    let mut wait = shared.options.batch_interval;
    loop {
        tokio::time::sleep(wait).await;
        wait = shared.options.batch_interval;
        loop {
            match write_some(&shared).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(_) => {
                    // Logged and counted by `write_some`; try again later, not at once.
                    wait = (shared.options.batch_interval * 5).min(Duration::from_secs(5));
                    break;
                }
            }
        }
    }
}

/// Writes one batch of the queue; says whether there was one. A failure puts it back.
async fn write_some(shared: &Shared) -> Result<bool> {
    let _one_writer = shared.writing.lock().await;
    write_batch_locked(shared).await
}

/// [`write_some`], for a caller that holds the writers' lock.
async fn write_batch_locked(shared: &Shared) -> Result<bool> {
    let batch = shared.queue.take(BATCH);
    if batch.is_empty() {
        return Ok(false);
    }
    write_taken(shared, batch).await.map(|()| true)
}

/// Writes updates taken from the queue, or puts them back; the caller holds the
/// writers' lock.
async fn write_taken(shared: &Shared, batch: Vec<Update>) -> Result<()> {
    let timeout = shared.options.timeout;
    let writing = async {
        let mut client = shared.connection().await?;
        let result = write_batch(&mut client, &batch).await;
        shared.give_back(client);
        result
    };
    // Under the timeout here, not around the call: the batch is put back either way.
    let written = tokio::time::timeout(timeout, writing)
        .await
        .unwrap_or(Err(DbError::Timeout { what: "write delivery status", after: timeout }));
    match written {
        Ok(()) => {
            shared.write_succeeded();
            Ok(())
        }
        Err(e) => {
            shared.write_failed(&e);
            for client in shared.queue.put_back(batch) {
                shared.lost_update(&client);
            }
            Err(e)
        }
    }
}

/// Writes `batch` in one transaction: the hosts' rows locked in id order, the updates
/// merged in the order they came, the rows written back in one statement.
async fn write_batch(client: &mut Client, batch: &[Update]) -> Result<()> {
    let what = "write delivery status";
    let mut ids: Vec<&str> = batch.iter().map(|u| u.client().as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let transaction = client.transaction().await.map_err(DbError::postgres(what))?;
    let rows = transaction
        .query(
            "SELECT client_id, status::text FROM fts_hosts WHERE client_id = ANY($1) \
             ORDER BY client_id FOR UPDATE",
            &[&ids],
        )
        .await
        .map_err(DbError::postgres(what))?;
    let mut statuses: HashMap<ClientId, ClientStatus> = HashMap::with_capacity(ids.len());
    for row in rows {
        let (id, text): (String, String) = (row.get(0), row.get(1));
        if let Some(status) = parse_status(&id, &text) {
            statuses.insert(status.client_id.clone(), status);
        }
    }
    let mut changed: std::collections::BTreeSet<ClientId> = std::collections::BTreeSet::new();
    for update in batch {
        match update {
            Update::Poll { client, authenticated, claims, reports, at } => {
                let previous = statuses.remove(client);
                let (status, _) =
                    fts_status::apply_poll(previous, client, *authenticated, claims, reports, at.clone());
                statuses.insert(client.clone(), status);
            }
            Update::Offered { client, offered, at } => {
                let Some(status) = statuses.get_mut(client) else { continue };
                fts_status::apply_offered(status, offered, at);
            }
        }
        changed.insert(update.client().clone());
    }
    let (mut ids, mut texts, mut times) = (Vec::new(), Vec::new(), Vec::new());
    for client in &changed {
        let Some(status) = statuses.get(client) else { continue };
        let text = serde_json::to_string(status)
            .map_err(|source| DbError::Encode { what: "a host's status", source })?;
        ids.push(client.as_str());
        texts.push(text);
        times.push(seconds(&status.last_poll));
    }
    transaction
        .execute(
            "INSERT INTO fts_hosts (client_id, status, last_contact) \
             SELECT id, status::jsonb, at FROM unnest($1::text[], $2::text[], $3::int8[]) AS t(id, status, at) \
             ON CONFLICT (client_id) DO UPDATE SET status = EXCLUDED.status, \
             last_contact = GREATEST(fts_hosts.last_contact, EXCLUDED.last_contact)",
            &[&ids, &texts, &times],
        )
        .await
        .map_err(DbError::postgres(what))?;
    transaction.commit().await.map_err(DbError::postgres(what))
}

/// Stores receipts and their certificates (each once), and takes those not stored
/// before into their hosts' status, in one transaction.
async fn store_receipts(
    client: &mut Client,
    names: &[String],
    ders: &[Vec<u8>],
    ids: &[String],
    hashes: &[String],
    lines: &[String],
    arrivals: &[ReceiptArrival],
) -> Result<()> {
    let what = "store receipts";
    let transaction = client.transaction().await.map_err(DbError::postgres(what))?;
    transaction.execute(INSERT_CERTIFICATES, &[&names, &ders]).await.map_err(DbError::postgres(what))?;
    let inserted = transaction
        .query(INSERT_RECEIPTS, &[&ids, &hashes, &lines])
        .await
        .map_err(DbError::postgres(what))?;
    let new: std::collections::HashSet<String> = inserted.into_iter().map(|row| row.get(0)).collect();
    let fresh: Vec<&ReceiptArrival> = arrivals.iter().filter(|a| new.contains(&a.hash.to_string())).collect();
    if !fresh.is_empty() {
        let mut hosts: Vec<&str> = fresh.iter().map(|a| a.client_id.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let rows = transaction
            .query(
                "SELECT client_id, status::text FROM fts_hosts WHERE client_id = ANY($1) \
                 ORDER BY client_id FOR UPDATE",
                &[&hosts],
            )
            .await
            .map_err(DbError::postgres(what))?;
        let mut statuses: BTreeMap<String, ClientStatus> = BTreeMap::new();
        for row in rows {
            let (id, text): (String, String) = (row.get(0), row.get(1));
            if let Some(status) = parse_status(&id, &text) {
                statuses.insert(id, status);
            }
        }
        for arrival in fresh {
            // A host without a row yet (its poll was not written) gets it from the log
            // at `fts status --verify`; its next poll writes the row.
            if let Some(status) = statuses.get_mut(arrival.client_id.as_str()) {
                apply_receipt(status, &arrival.receipt, &arrival.hash, &arrival.received);
            }
        }
        let (mut ids, mut texts) = (Vec::new(), Vec::new());
        for (id, status) in &statuses {
            ids.push(id.as_str());
            texts.push(
                serde_json::to_string(status)
                    .map_err(|source| DbError::Encode { what: "a host's status", source })?,
            );
        }
        transaction
            .execute(
                "UPDATE fts_hosts SET status = t.status::jsonb FROM unnest($1::text[], $2::text[]) AS t(id, status) \
                 WHERE client_id = t.id",
                &[&ids, &texts],
            )
            .await
            .map_err(DbError::postgres(what))?;
    }
    transaction.commit().await.map_err(DbError::postgres(what))
}

/// Rows parsed per task of [`read_all_hosts`].
const PARSE_CHUNK: usize = 2_000;

/// Every host's status, parsed on blocking threads while the rows still arrive: at
/// 50,000 hosts the database's text and the parsing are most of `fts status`'s time,
/// and this way they overlap, each on a core.
async fn read_all_hosts(client: &Client, now: u64) -> Result<Vec<ClientStatus>> {
    use futures_util::TryStreamExt;
    let what = "read the hosts' status";
    let rows = client
        .query_raw(
            "SELECT client_id, status::text, last_contact FROM fts_hosts",
            std::iter::empty::<String>(),
        )
        .await
        .map_err(DbError::postgres(what))?;
    let mut rows = std::pin::pin!(rows);
    let mut parsers = Vec::new();
    let mut chunk: Vec<(String, String, i64)> = Vec::with_capacity(PARSE_CHUNK);
    let parse = |part: Vec<(String, String, i64)>| {
        tokio::task::spawn_blocking(move || {
            part.iter()
                .filter_map(|(id, text, contact)| {
                    parse_status(id, text).map(|s| shown_status(s, *contact, now))
                })
                .collect::<Vec<_>>()
        })
    };
    while let Some(row) = rows.try_next().await.map_err(DbError::postgres(what))? {
        chunk.push((row.get(0), row.get(1), row.get(2)));
        if chunk.len() == PARSE_CHUNK {
            parsers.push(parse(std::mem::replace(&mut chunk, Vec::with_capacity(PARSE_CHUNK))));
        }
    }
    parsers.push(parse(chunk));
    let mut all = Vec::new();
    for parser in parsers {
        match parser.await {
            Ok(part) => all.extend(part),
            // A bug (parsing never panics on input): said, not hidden.
            Err(e) => {
                tracing::error!(error = %e, "a status parser failed: some hosts are missing from this view")
            }
        }
    }
    Ok(all)
}

/// A host's row, or `None` (logged) when it is not a status of that host.
fn parse_status(id: &str, text: &str) -> Option<ClientStatus> {
    match serde_json::from_str::<ClientStatus>(text) {
        Ok(status) if status.client_id.as_str() == id && status.format == STATUS_FORMAT => Some(status),
        Ok(_) => {
            tracing::warn!(client_id = id, "skipping a status row of another host or format");
            None
        }
        Err(e) => {
            tracing::warn!(client_id = id, error = %e, "skipping a damaged status row: rewritten at the host's next poll");
            None
        }
    }
}

fn seconds(time: &Published) -> i64 {
    i64::try_from(time.unix_seconds()).unwrap_or(i64::MAX)
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The status to show of a row: its last poll is the later of its own and the
/// batched time of unchanged polls.
fn shown_status(mut status: ClientStatus, last_contact: i64, now: u64) -> ClientStatus {
    let contact = Published::from_unix_seconds(u64::try_from(last_contact).unwrap_or(0));
    status.last_poll = last_poll_to_show(status.last_poll, Some(contact), now);
    status
}

/// What several servers say about themselves, as one: the worst of each (revocation
/// off if off anywhere, the earliest CRL next-update, the lowest CRL number, any
/// failing reload, named by its server), and every serial any of them revokes.
pub fn merge_servers(servers: Vec<(String, ServerStatus)>) -> Option<ServerStatus> {
    let several = servers.len() > 1;
    let mut merged: Option<ServerStatus> = None;
    for (name, status) in servers {
        let Some(all) = merged.as_mut() else {
            let mut first = status;
            if several && let Some(failing) = first.crl_reload_failing.as_mut() {
                failing.error = format!("{name}: {}", failing.error);
            }
            merged = Some(first);
            continue;
        };
        all.updated = all.updated.clone().min(status.updated);
        all.revocation &= status.revocation;
        all.crl_next_update = match (all.crl_next_update.take(), status.crl_next_update) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        all.crl_number = match (all.crl_number, status.crl_number) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if all.crl_reload_failing.is_none()
            && let Some(mut failing) = status.crl_reload_failing
        {
            failing.error = format!("{name}: {}", failing.error);
            all.crl_reload_failing = Some(failing);
        }
        all.revoked_serials.extend(status.revoked_serials);
    }
    if let Some(all) = merged.as_mut() {
        all.revoked_serials.sort();
        all.revoked_serials.dedup();
    }
    merged
}

impl StatusBackend for PgStatus {
    fn note_unchanged_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> bool {
        reports.is_empty()
            && self.shared.book.note_if_unchanged(
                client,
                fingerprint(authenticated, claims),
                unix_seconds(now),
            )
    }

    fn record_poll(
        &self,
        client: &ClientId,
        authenticated: bool,
        claims: &PollClaims,
        reports: &[Report],
        now: SystemTime,
    ) -> fts_status::Result<()> {
        let secs = unix_seconds(now);
        self.shared.book.queued(client, fingerprint(authenticated, claims), secs);
        self.shared.queue(Update::Poll {
            client: client.clone(),
            authenticated,
            claims: Box::new(claims.clone()),
            reports: reports.to_vec(),
            at: Published::from_unix_seconds(secs),
        });
        Ok(())
    }

    fn record_offered(
        &self,
        client: &ClientId,
        offered: &BTreeMap<Target, u64>,
        now: SystemTime,
    ) -> fts_status::Result<()> {
        self.shared.queue(Update::Offered {
            client: client.clone(),
            offered: offered.clone(),
            at: Published::from_unix_seconds(unix_seconds(now)),
        });
        Ok(())
    }

    fn record_receipts(&self, arrivals: &[ReceiptArrival]) -> fts_status::Result<()> {
        if arrivals.is_empty() {
            return Ok(());
        }
        let mut names = Vec::new();
        let mut ders: Vec<Vec<u8>> = Vec::new();
        let (mut ids, mut hashes, mut lines) = (Vec::new(), Vec::new(), Vec::new());
        for arrival in arrivals {
            let name = fts_status::receipts::certificate_name(&arrival.certificate);
            if !names.contains(&name) {
                names.push(name.clone());
                ders.push(arrival.certificate.clone());
            }
            let line = LogLine::Receipt(StoredReceipt::of(arrival, name));
            ids.push(arrival.client_id.to_string());
            hashes.push(arrival.hash.to_string());
            lines.push(
                serde_json::to_string(&line)
                    .map_err(|source| DbError::Encode { what: "a receipt", source })?,
            );
        }
        let arrived: Vec<ReceiptArrival> = arrivals.to_vec();
        let shared = Arc::clone(&self.shared);
        self.run(async move {
            // These hosts' queued updates first (a host's first poll makes its row),
            // under the writers' lock, so that every update of a host is written in
            // order; the rest of the queue waits for the writer (a backlog after an
            // outage must not hold up an acknowledgement).
            let _one_writer = shared.writing.lock().await;
            let hosts: std::collections::HashSet<&ClientId> = arrived.iter().map(|a| &a.client_id).collect();
            let theirs = shared.queue.take_of(&hosts);
            if !theirs.is_empty()
                && let Err(e) = write_taken(&shared, theirs).await
            {
                tracing::debug!(error = %ErrorChain(&e), "the hosts' updates were not written before their receipts");
            }
            let timeout = shared.options.timeout;
            let storing = async {
                let mut client = shared.connection().await?;
                let stored =
                    store_receipts(&mut client, &names, &ders, &ids, &hashes, &lines, &arrived).await;
                shared.give_back(client);
                stored
            };
            tokio::time::timeout(timeout, storing)
                .await
                .map_err(|_| DbError::Timeout { what: "store receipts", after: timeout })?
        })?;
        Ok(())
    }

    /// Nothing to do: [`record_receipts`](StatusBackend::record_receipts) took them
    /// into their hosts' status in the transaction that stored them, so a server
    /// killed after the acknowledgement loses nothing of them.
    fn apply_receipts(&self, _arrivals: &[ReceiptArrival]) {}

    fn flush(&self) -> fts_status::Result<()> {
        self.write_all_queued()?;
        let times = self.shared.book.take_dirty();
        let heartbeat =
            self.shared.server_row.load(Ordering::Acquire).then(|| self.shared.options.server_name.clone());
        if times.is_empty() && heartbeat.is_none() {
            return Ok(());
        }
        let ids: Vec<String> = times.iter().map(|(id, _)| id.to_string()).collect();
        let at: Vec<i64> = times.iter().map(|(_, secs)| i64::try_from(*secs).unwrap_or(i64::MAX)).collect();
        let written = self.with_connection("write the times of unchanged polls", move |client| {
            Box::pin(async move {
                let what = "write the times of unchanged polls";
                let mut found = std::collections::HashSet::new();
                if !ids.is_empty() {
                    let rows = client
                        .query(
                            "UPDATE fts_hosts SET last_contact = GREATEST(last_contact, t.at) \
                             FROM unnest($1::text[], $2::int8[]) AS t(id, at) WHERE client_id = t.id \
                             RETURNING client_id",
                            &[&ids, &at],
                        )
                        .await
                        .map_err(DbError::postgres(what))?;
                    found.extend(rows.into_iter().map(|row| row.get::<_, String>(0)));
                }
                if let Some(name) = heartbeat {
                    client
                        .execute("UPDATE fts_servers SET seen = now() WHERE name = $1", &[&name])
                        .await
                        .map_err(DbError::postgres("say this server is up"))?;
                }
                Ok(found)
            })
        });
        let found = match written {
            Ok(found) => found,
            Err(e) => {
                self.shared.book.restore_dirty(&times);
                self.shared.write_failed(&e);
                return Err(e.into());
            }
        };
        // A host whose row is gone (`fts status --forget` while it still polls) is
        // written whole at its next poll, as a first poll is.
        for (client, _) in times.iter().filter(|(client, _)| !found.contains(client.as_str())) {
            self.shared.book.forget(client);
        }
        Ok(())
    }

    fn write_server(&self, status: &ServerStatus) -> fts_status::Result<()> {
        let text = serde_json::to_string(status)
            .map_err(|source| DbError::Encode { what: "the server status", source })?;
        let name = self.shared.options.server_name.clone();
        self.with_connection("record this server's status", move |client| {
            Box::pin(async move {
                client
                    .execute(
                        "INSERT INTO fts_servers (name, status, seen) VALUES ($1, $2::text::jsonb, now()) \
                         ON CONFLICT (name) DO UPDATE SET status = EXCLUDED.status, seen = now()",
                        &[&name, &text],
                    )
                    .await
                    .map_err(DbError::postgres("record this server's status"))?;
                Ok(())
            })
        })?;
        self.shared.server_row.store(true, Ordering::Release);
        Ok(())
    }

    fn read_server(&self) -> Option<ServerStatus> {
        let heard_within = SERVER_HEARD_WITHIN.as_secs_f64();
        let rows = self.with_connection("read the servers' status", move |client| {
            Box::pin(async move {
                let rows = client
                    .query(
                        "SELECT name, status::text, extract(epoch FROM now() - seen)::float8 FROM fts_servers \
                         ORDER BY seen DESC",
                        &[],
                    )
                    .await
                    .map_err(DbError::postgres("read the servers' status"))?;
                Ok(rows
                    .into_iter()
                    .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, f64>(2)))
                    .collect::<Vec<_>>())
            })
        });
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %ErrorChain(&e), "cannot read what the servers say about themselves");
                return None;
            }
        };
        let parsed: Vec<(String, ServerStatus, f64)> = rows
            .into_iter()
            .filter_map(|(name, text, age)| match serde_json::from_str::<ServerStatus>(&text) {
                Ok(status) if status.format == STATUS_FORMAT => Some((name, status, age)),
                _ => {
                    tracing::warn!(server = %name, "skipping a damaged server status row");
                    None
                }
            })
            .collect();
        // The servers heard from recently; when none is, the one heard from last.
        let recent: Vec<(String, ServerStatus)> = parsed
            .iter()
            .filter(|(_, _, age)| *age <= heard_within)
            .map(|(n, s, _)| (n.clone(), s.clone()))
            .collect();
        if recent.is_empty() {
            return parsed.into_iter().next().map(|(_, status, _)| status);
        }
        merge_servers(recent)
    }

    fn clients(&self) -> fts_status::Result<Vec<ClientStatus>> {
        self.write_all_queued()?;
        let now = unix_seconds(SystemTime::now());
        let mut all = self.with_connection("read the hosts' status", move |client| {
            Box::pin(async move { read_all_hosts(client, now).await })
        })?;
        all.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(all)
    }

    fn clients_in_batches(
        &self,
        batch: usize,
        each: &mut dyn FnMut(Vec<ClientStatus>),
    ) -> fts_status::Result<()> {
        self.write_all_queued()?;
        let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        // Keyset pagination on the primary key: one short query per batch, each
        // batch parsed here before the next is read.
        let mut after = String::new();
        loop {
            let from = std::mem::take(&mut after);
            let rows = self.with_connection("read the hosts' status", move |client| {
                Box::pin(async move {
                    let rows = client
                        .query(
                            "SELECT client_id, status::text, last_contact FROM fts_hosts \
                             WHERE client_id > $1 ORDER BY client_id LIMIT $2",
                            &[&from, &limit],
                        )
                        .await
                        .map_err(DbError::postgres("read the hosts' status"))?;
                    Ok(rows
                        .into_iter()
                        .map(|row| (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, i64>(2)))
                        .collect::<Vec<_>>())
                })
            })?;
            let Some((last, _, _)) = rows.last() else { return Ok(()) };
            after = last.clone();
            let more = i64::try_from(rows.len()).is_ok_and(|n| n == limit);
            let now = unix_seconds(SystemTime::now());
            each(
                rows.iter()
                    .filter_map(|(id, text, contact)| {
                        parse_status(id, text).map(|s| shown_status(s, *contact, now))
                    })
                    .collect(),
            );
            if !more {
                return Ok(());
            }
        }
    }

    fn client(&self, client: &ClientId) -> fts_status::Result<Option<ClientStatus>> {
        self.write_all_queued()?;
        let id = client.to_string();
        let row = self.with_connection("read a host's status", move |client| {
            Box::pin(async move {
                let row = client
                    .query_opt(
                        "SELECT client_id, status::text, last_contact FROM fts_hosts WHERE client_id = $1",
                        &[&id],
                    )
                    .await
                    .map_err(DbError::postgres("read a host's status"))?;
                Ok(row.map(|row| (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, i64>(2))))
            })
        })?;
        let now = unix_seconds(SystemTime::now());
        Ok(row
            .and_then(|(id, text, contact)| parse_status(&id, &text).map(|s| shown_status(s, contact, now))))
    }

    fn receipts(&self) -> fts_status::Result<ReceiptLog> {
        let rows = self.with_connection("read the receipts", |client| {
            Box::pin(async move {
                let rows = client
                    .query("SELECT position, line::text FROM fts_receipts ORDER BY position", &[])
                    .await
                    .map_err(DbError::postgres("read the receipts"))?;
                Ok(rows
                    .into_iter()
                    .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)))
                    .collect::<Vec<_>>())
            })
        })?;
        let mut log = ReceiptLog::default();
        for (position, text) in rows {
            match serde_json::from_str::<LogLine>(&text) {
                Ok(line) => log.lines.push(line),
                Err(e) => log.damaged.push(format!("fts_receipts position {position}: {e}")),
            }
        }
        Ok(log)
    }

    fn certificate(&self, name: &str) -> fts_status::Result<Option<Vec<u8>>> {
        if !fts_status::receipts::is_certificate_name(name) {
            return Ok(None);
        }
        let name = name.to_owned();
        let der = self.with_connection("read a certificate", move |client| {
            Box::pin(async move {
                let row = client
                    .query_opt("SELECT der FROM fts_certificates WHERE name = $1", &[&name])
                    .await
                    .map_err(DbError::postgres("read a certificate"))?;
                Ok(row.map(|row| row.get::<_, Vec<u8>>(0)))
            })
        })?;
        Ok(der)
    }

    fn forget(&self, client: &ClientId, now: Published) -> fts_status::Result<bool> {
        self.write_all_queued()?;
        self.shared.book.forget(client);
        let line = LogLine::Forget(Forgotten { client_id: client.clone(), at: now });
        let line = serde_json::to_string(&line)
            .map_err(|source| DbError::Encode { what: "a forget marker", source })?;
        let id = client.to_string();
        let removed = self.with_connection("forget a host", move |client| {
            Box::pin(async move {
                let what = "forget a host";
                let transaction = client.transaction().await.map_err(DbError::postgres(what))?;
                transaction
                    .execute(
                        "INSERT INTO fts_receipts (client_id, hash, line) VALUES ($1, NULL, $2::text::jsonb)",
                        &[&id, &line],
                    )
                    .await
                    .map_err(DbError::postgres(what))?;
                let removed = transaction
                    .execute("DELETE FROM fts_hosts WHERE client_id = $1", &[&id])
                    .await
                    .map_err(DbError::postgres(what))?;
                transaction.commit().await.map_err(DbError::postgres(what))?;
                Ok(removed > 0)
            })
        })?;
        Ok(removed)
    }

    fn health(&self) -> BackendHealth {
        BackendHealth {
            queued: self.shared.queue.len() as u64,
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            write_errors: self.shared.write_errors.load(Ordering::Relaxed),
            failing: self.shared.failing.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PgStatus {
    /// Writes what is queued before the runtime stops (a server that stops cleanly
    /// leaves nothing in memory); a failure is logged.
    fn drop(&mut self) {
        if self.shared.queue.len() > 0 || !self.shared.book.is_clean() {
            self.flush_at_stop();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PgStatus {
    fn flush_at_stop(&self) {
        if let Err(e) = StatusBackend::flush(self) {
            tracing::error!(error = %ErrorChain(&e), "status updates not written at stop");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(revocation: bool, number: Option<u64>, serials: &[&str], failing: bool) -> ServerStatus {
        ServerStatus {
            format: STATUS_FORMAT,
            updated: Published::from_unix_seconds(1_795_626_000),
            revocation,
            crl_next_update: None,
            crl_number: number,
            crl_reload_failing: failing.then(|| fts_status::CrlReloadFailing {
                since: Published::from_unix_seconds(1_795_626_000),
                error: "ca.crl: bad signature".into(),
                hint: None,
            }),
            revoked_serials: serials.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn several_servers_show_as_their_worst() {
        let merged = merge_servers(vec![
            ("a".into(), server(true, Some(5), &["0a"], false)),
            ("b".into(), server(true, Some(4), &["0b", "0a"], true)),
        ])
        .unwrap();
        assert!(merged.revocation);
        assert_eq!(merged.crl_number, Some(4), "the laggard's CRL");
        assert_eq!(merged.revoked_serials, ["0a", "0b"]);
        assert_eq!(
            merged.crl_reload_failing.unwrap().error,
            "b: ca.crl: bad signature",
            "named by its server"
        );
        let off = merge_servers(vec![
            ("a".into(), server(true, Some(5), &[], false)),
            ("b".into(), server(false, None, &[], false)),
        ])
        .unwrap();
        assert!(!off.revocation, "off on one server is off");
        assert!(merge_servers(Vec::new()).is_none());
    }
}
