//! The streaming receiver: a `file` frame's body goes into a temporary file in the
//! partial folder ([`PartialDir`], beside the destination, never in it), hashed as it
//! is written, and becomes a [`VerifiedFile`] only
//! when exactly the signed number of bytes arrived and their SHA-256 is the signed
//! hash. The installer takes nothing else, so no code path can install bytes that
//! were not checked.
//!
//! Bounds: never more than the frame's body length is read from the connection (the
//! next frame's bytes are never consumed as body); nothing is preallocated from the
//! claimed size; the free space is checked first and a full disk mid-way is a local
//! failure. Until the end the bytes are untrusted. On any failure a temporary file is
//! removed; a kept file ([`ReceiveInto::Kept`], a transfer that can be resumed) stays, and the
//! caller decides whether its prefix is worth keeping.
//!
//! A resumed transfer ([`ReceiveInto::Kept`] with a `start`) hashes the kept prefix again
//! from disk before it appends what arrives, so the hash compared at the end is
//! always that of the whole file, every byte of it read back or received now.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use fts_fs::stream::{DISK_BUFFERS, DiskWriter, chunk_len};
use fts_fs::{Dir, FsError, TempFile};
use fts_proto::FileHash;
use fts_proto::Statement;
use fts_trust::Verified;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::client::deadline::{Cut, PollClock};
use crate::client::partial::PartialDir;
use crate::connection::Connection;
pub use crate::error::ReceiveError;
use crate::error::{LocalFailure, TransportError};

/// A file whose every byte has been checked against a verified signed statement,
/// sitting in a temporary file in the partial folder. Only [`receive_file`] makes one;
/// dropping it without installing removes the temporary file.
#[derive(Debug)]
pub struct VerifiedFile {
    statement: Verified<Statement>,
    body: Body,
}

/// Where a verified body sits until it is installed.
#[derive(Debug)]
enum Body {
    Temp(TempFile),
    Kept { dir: Arc<Dir>, name: String },
}

/// Where [`receive_file`] puts a body.
#[derive(Debug, Clone)]
pub enum ReceiveInto {
    /// A new temporary file, removed on failure.
    Temp,
    /// The kept file `name` in the partial folder: its first `start` bytes are kept
    /// from an earlier, cut transfer and the frame's body follows them. Left in place
    /// on failure.
    Kept {
        /// Its name ([`PartialDir::kept_name`]).
        name: String,
        /// How many bytes of it are kept (the frame's `offset`).
        start: u64,
    },
}

impl VerifiedFile {
    /// The signed statement its bytes were checked against.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// Where it sits until it is installed.
    pub fn temp_path(&self) -> PathBuf {
        match &self.body {
            Body::Temp(temp) => temp.path(),
            Body::Kept { dir, name } => dir.join(name),
        }
    }

    /// Renames the file onto `<file-name>` in `dest` (`renameat` from the partial
    /// folder's handle to the destination's, one file system) and flushes the
    /// destination. Until the rename, the old file (if any) is untouched; after it,
    /// the new one is whole. A link planted under the name is replaced, not followed.
    pub fn install(self, dest: &Dir) -> Result<PathBuf, FsError> {
        let name = self.statement.file_name.as_str();
        match self.body {
            Body::Temp(temp) => temp.persist(dest, name)?,
            Body::Kept { dir, name: kept } => dir.rename_into(&kept, dest, name)?,
        }
        dest.sync()?;
        Ok(dest.join(name))
    }
}

/// Something that wants to know how a transfer goes (a progress bar).
pub trait Progress: Send {
    /// A body of the file `_statement` describes starts to arrive.
    fn start(&mut self, _statement: &Statement) {}
    /// `_bytes` more of it arrived.
    fn advance(&mut self, _bytes: u64) {}
    /// The whole body arrived (not called when it was cut short).
    fn finish(&mut self) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Receives the body of the entry `statement` from `conn` into the partial folder,
/// `into` a temp or a kept file (after its first `start` bytes).
///
/// Three stages over one pass of the bytes, in fts-fs's stream shape
/// ([`fts_fs::stream`]: [`DISK_BUFFERS`] reused buffers of
/// [`CHUNK`](fts_fs::stream::CHUNK) bytes, 512 KiB whatever the file's size): this
/// task reads (decrypts) into the buffers and hands them through a bounded channel to
/// a blocking thread that hashes them, which hands them on to another that writes
/// them, starting the disk's writeback as it goes, and gives them back to this task.
/// So decrypting, hashing and writing run at once on different cores, each buffer
/// passing through them in order. The hash is compared, and the file flushed, only
/// once exactly `file-size` bytes were read, hashed and written.
pub async fn receive_file<S>(
    conn: &mut Connection<S>,
    statement: Verified<Statement>,
    partial: &PartialDir,
    into: ReceiveInto,
    clock: &PollClock,
    progress: &mut dyn Progress,
) -> Result<VerifiedFile, ReceiveError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let local = |cause: LocalFailure| ReceiveError::Local { dir: partial.dir().path().to_owned(), cause };
    let start = match &into {
        ReceiveInto::Temp => 0,
        ReceiveInto::Kept { start, .. } => (*start).min(statement.file_size),
    };
    let expected = statement.file_size - start;
    check_free_space(partial.dir(), expected).map_err(local)?;

    // A temp is removed again if anything below fails (`body` is dropped).
    let (body, file) = match &into {
        ReceiveInto::Temp => {
            let (temp, file) = partial.create_body().map_err(|e| local(e.into()))?;
            (Body::Temp(temp), file)
        }
        ReceiveInto::Kept { name, .. } => {
            let file = partial.open_kept(name).map_err(|e| local(e.into()))?;
            let path = partial.dir().join(name);
            let len = file.metadata().map_err(|e| local(LocalFailure::write(e)))?.len();
            if len < start {
                return Err(local(LocalFailure::KeptTooShort { path, len, start }));
            }
            fts_fs::truncate_durably(&file, start, &path).map_err(|e| local(e.into()))?;
            (Body::Kept { dir: Arc::clone(partial.shared_dir()), name: name.clone() }, file)
        }
    };

    progress.start(&statement);
    progress.advance(start);
    // Every buffer goes round: free -> this task -> hasher -> writer -> free. Each
    // channel has room for all of them, so no send waits; a stage waits only for its
    // next buffer, and the memory is the DISK_BUFFERS buffers, whatever the file's size.
    let (hash_tx, hash_rx) = mpsc::channel::<Vec<u8>>(DISK_BUFFERS);
    let (write_tx, write_rx) = mpsc::channel::<Vec<u8>>(DISK_BUFFERS);
    let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(DISK_BUFFERS);
    for _ in 0..DISK_BUFFERS {
        // Allocated on first use, and no larger than the body.
        let _ = free_tx.try_send(Vec::new());
    }
    // One handle for both threads: the hasher reads the kept prefix with positioned
    // reads, which leave the writer's position alone.
    let file = Arc::new(file);
    let hasher = tokio::task::spawn_blocking({
        let file = Arc::clone(&file);
        move || hash_body(&file, start, hash_rx, write_tx)
    });
    let writer = tokio::task::spawn_blocking(move || write_body(&file, start, write_rx, free_tx));
    let read = read_body(conn, expected, clock, progress, &hash_tx, &mut free_rx).await;
    drop(hash_tx);
    // Both threads are waited for, whatever happened, so that none still holds the
    // file when this returns.
    let (hashed, written) = (hasher.await, writer.await);
    let hashed = hashed.map_err(|e| local(LocalFailure::WriterFailed(e)))?;
    let written = written.map_err(|e| local(LocalFailure::WriterFailed(e)))?;
    let digest = match (read, hashed, written) {
        // The writer stopped first (disk full, I/O error): that is why the others did.
        (_, _, Err(cause)) => return Err(local(cause)),
        // The hasher stopped first (the kept prefix could not be read back).
        (_, Err(cause), Ok(_)) => return Err(local(cause)),
        (Err(ReadStop::StageGone), Ok(_), Ok(_)) => return Err(local(LocalFailure::WriterGone)),
        (Err(ReadStop::Failed(e)), Ok(_), Ok(_)) => return Err(e),
        (Ok(()), Ok(hashed), Ok(written)) => {
            // Each stage saw every byte the reader sent, and it sent exactly the body.
            if hashed.bytes != expected || written != expected {
                return Err(local(LocalFailure::WriterGone));
            }
            hashed.digest
        }
    };
    progress.finish();

    let actual = FileHash::from_digest(digest);
    if actual != statement.file_hash {
        return Err(ReceiveError::HashMismatch { expected: statement.file_hash, actual });
    }
    let flushed = tokio::task::spawn_blocking(move || body.sync().map(|()| body))
        .await
        .map_err(|e| local(LocalFailure::WriterFailed(e)))?;
    let body = flushed.map_err(|e| local(LocalFailure::Fs(e)))?;
    Ok(VerifiedFile { statement, body })
}

impl Body {
    /// Flushes the received file to disk, before it is renamed into place.
    fn sync(&self) -> Result<(), FsError> {
        match self {
            Body::Temp(temp) => temp.sync(),
            Body::Kept { dir, name } => fts_fs::sync_file(&dir.open_file(name)?, &dir.join(name)),
        }
    }
}

/// Why [`read_body`] stopped before the end.
enum ReadStop {
    Failed(ReceiveError),
    /// The hasher or the writer thread ended early: its result says why.
    StageGone,
}

/// Reads exactly `expected` body bytes into buffers taken from `free` and sends them,
/// full, to the hasher. Never reads past the body. Each read is bounded by `clock`:
/// the read timeout, and past the poll deadline the minimum receive rate.
async fn read_body<S>(
    conn: &mut Connection<S>,
    expected: u64,
    clock: &PollClock,
    progress: &mut dyn Progress,
    full: &mpsc::Sender<Vec<u8>>,
    free: &mut mpsc::Receiver<Vec<u8>>,
) -> Result<(), ReadStop>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut received: u64 = 0;
    let mut transfer = clock.transfer();
    while received < expected {
        let Some(mut buffer) = free.recv().await else { return Err(ReadStop::StageGone) };
        let want = chunk_len(expected - received);
        buffer.resize(want, 0);
        let mut filled = 0;
        while filled < want {
            let (by, cut) = transfer.read_deadline();
            let n = match tokio::time::timeout_at(by, conn.read_body_chunk(&mut buffer[filled..])).await {
                Err(_) => {
                    return Err(ReadStop::Failed(match cut {
                        Cut::NoProgress => ReceiveError::Timeout,
                        Cut::PollDeadline => ReceiveError::BelowMinimumRate { received, expected },
                    }));
                }
                Ok(Ok(0)) => {
                    return Err(ReadStop::Failed(ReceiveError::Truncated {
                        received,
                        expected,
                        cause: TransportError::Closed,
                    }));
                }
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    return Err(ReadStop::Failed(ReceiveError::Truncated {
                        received,
                        expected,
                        // Said in words: rustls' unclean-close message carries a link.
                        cause: TransportError::Io(e),
                    }));
                }
            };
            filled += n;
            received += n as u64;
            transfer.received(n as u64);
            transfer.throttle(n as u64).await;
            progress.advance(n as u64);
        }
        if full.send(buffer).await.is_err() {
            return Err(ReadStop::StageGone);
        }
    }
    Ok(())
}

/// What the hasher saw: the SHA-256 of the whole file, and how many bytes it hashed
/// after the kept prefix.
struct Hashed {
    digest: [u8; 32],
    bytes: u64,
}

/// The hashing thread: hashes the file's first `start` bytes (a kept prefix) again
/// from disk, before any byte that arrives, then each buffer in order, handing it on
/// to the writer. Ends when the reader drops its sender. The writer writes nothing
/// until the prefix is hashed (it gets no buffer before), so the prefix read back is
/// the one the appended bytes follow.
fn hash_body(
    file: &File,
    start: u64,
    mut full: mpsc::Receiver<Vec<u8>>,
    hashed: mpsc::Sender<Vec<u8>>,
) -> Result<Hashed, LocalFailure> {
    let mut hasher = Sha256::new();
    if start > 0 {
        hash_prefix(file, start, &mut hasher).map_err(LocalFailure::write)?;
    }
    let mut bytes = 0;
    while let Some(buffer) = full.blocking_recv() {
        hasher.update(&buffer);
        bytes += buffer.len() as u64;
        if hashed.blocking_send(buffer).is_err() {
            // The writer stopped: its result says why.
            return Err(LocalFailure::WriterGone);
        }
    }
    Ok(Hashed { digest: hasher.finalize().into(), bytes })
}

/// The writer thread: writes each hashed buffer in order after the file's first
/// `start` bytes (a [`DiskWriter`], which starts writeback as it goes), and returns
/// the buffers for reuse. Ends when the hasher drops its sender; returns how many
/// bytes it wrote. The temp keeps its own handle, so this one is closed after.
fn write_body(
    file: &File,
    start: u64,
    mut hashed: mpsc::Receiver<Vec<u8>>,
    free: mpsc::Sender<Vec<u8>>,
) -> Result<u64, LocalFailure> {
    use std::io::{Seek, SeekFrom};
    let mut handle = file;
    handle.seek(SeekFrom::Start(start)).map_err(LocalFailure::write)?;
    let mut disk = DiskWriter::at(file, start);
    while let Some(buffer) = hashed.blocking_recv() {
        disk.write(&buffer).map_err(LocalFailure::write)?;
        // Never full: at most DISK_BUFFERS buffers exist.
        let _ = free.try_send(buffer);
    }
    Ok(disk.written())
}

/// Feeds the first `len` bytes of `file` to `hasher`, with positioned reads (the
/// handle's position is the writer's).
fn hash_prefix(file: &File, len: u64, hasher: &mut Sha256) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut buffer = vec![0u8; fts_fs::stream::CHUNK];
    let mut at = 0;
    while at < len {
        let want = chunk_len(len - at);
        let n = match file.read_at(&mut buffer[..want], at) {
            Ok(0) => {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the kept prefix shrank"));
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buffer[..n]);
        at += n as u64;
    }
    Ok(())
}

/// Refuses a file that cannot fit. A disk that fills up mid-way is still caught by the
/// writes; this only avoids starting a transfer that cannot end.
fn check_free_space(dir: &Dir, size: u64) -> Result<(), LocalFailure> {
    let available = dir.available_space()?;
    if available < size {
        return Err(LocalFailure::NoSpace { needed: size, available });
    }
    Ok(())
}
