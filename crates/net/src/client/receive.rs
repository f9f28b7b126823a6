//! The streaming receiver: a `file` frame's body goes into a temporary file in the
//! partial folder ([`PartialDir`], beside the destination, never in it), hashed as it
//! is written, and becomes a [`VerifiedFile`] only
//! when exactly the signed number of bytes arrived and their SHA-256 is the signed
//! hash. The installer takes nothing else, so no code path can install bytes that
//! were not checked.
//!
//! Bounds: never more than `file-size` bytes are read from the connection (the next
//! frame's bytes are never consumed as body); nothing is preallocated from the claimed
//! size; the free space is checked first and a full disk mid-way is a local failure.
//! Until the end the bytes are untrusted, and on any failure the temporary file is
//! removed.

use std::fs::File;
use std::path::PathBuf;

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
    temp: TempFile,
}

impl VerifiedFile {
    /// The signed statement its bytes were checked against.
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    /// Where it sits until it is installed.
    pub fn temp_path(&self) -> PathBuf {
        self.temp.path()
    }

    /// Renames the file onto `<file-name>` in `dest` (`renameat` from the partial
    /// folder's handle to the destination's, one file system) and flushes the
    /// destination. Until the rename, the old file (if any) is untouched; after it,
    /// the new one is whole. A link planted under the name is replaced, not followed.
    pub fn install(self, dest: &Dir) -> Result<PathBuf, FsError> {
        let name = self.statement.file_name.as_str();
        self.temp.persist(dest, name)?;
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

/// Receives the body of the entry `statement` from `conn` into the partial folder.
///
/// Two stages over one pass of the bytes, in fts-fs's stream shape
/// ([`fts_fs::stream`]: [`DISK_BUFFERS`] reused buffers of
/// [`CHUNK`](fts_fs::stream::CHUNK) bytes, 512 KiB
/// whatever the file's size): this task reads (decrypts) into the buffers and hands
/// them through a bounded channel to a blocking thread that hashes and writes them,
/// starting the disk's writeback as it goes. The hash is compared, and the file
/// flushed, only once exactly `file-size` bytes were read and written.
pub async fn receive_file<S>(
    conn: &mut Connection<S>,
    statement: Verified<Statement>,
    partial: &PartialDir,
    clock: &PollClock,
    progress: &mut dyn Progress,
) -> Result<VerifiedFile, ReceiveError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let expected = statement.file_size;
    let local = |cause: LocalFailure| ReceiveError::Local { dir: partial.dir().path().to_owned(), cause };
    check_free_space(partial.dir(), expected).map_err(local)?;

    // Removed again if anything below fails: `temp` is dropped.
    let (temp, file) = partial.create_body().map_err(|e| local(e.into()))?;

    progress.start(&statement);
    let (full_tx, full_rx) = mpsc::channel::<Vec<u8>>(DISK_BUFFERS);
    let (free_tx, mut free_rx) = mpsc::channel::<Vec<u8>>(DISK_BUFFERS);
    for _ in 0..DISK_BUFFERS {
        // Allocated on first use, and no larger than the body.
        let _ = free_tx.try_send(Vec::new());
    }
    let writer = tokio::task::spawn_blocking(move || write_body(file, full_rx, free_tx));
    let read = read_body(conn, expected, clock, progress, &full_tx, &mut free_rx).await;
    drop(full_tx);
    let written = writer.await.map_err(|e| local(LocalFailure::WriterFailed(e)))?;
    let digest = match (read, written) {
        // The writer stopped first (disk full, I/O error): that is why the read stopped.
        (_, Err(cause)) => return Err(local(cause)),
        (Err(ReadStop::WriterGone), Ok(_)) => return Err(local(LocalFailure::WriterGone)),
        (Err(ReadStop::Failed(e)), Ok(_)) => return Err(e),
        (Ok(()), Ok(done)) => done,
    };
    progress.finish();

    let actual = FileHash::from_digest(digest);
    if actual != statement.file_hash {
        return Err(ReceiveError::HashMismatch { expected: statement.file_hash, actual });
    }
    let flushed = tokio::task::spawn_blocking(move || temp.sync().map(|()| temp))
        .await
        .map_err(|e| local(LocalFailure::WriterFailed(e)))?;
    let temp = flushed.map_err(|e| local(LocalFailure::Fs(e)))?;
    Ok(VerifiedFile { statement, temp })
}

/// Why [`read_body`] stopped before the end.
enum ReadStop {
    Failed(ReceiveError),
    /// The writer thread ended early: its result says why.
    WriterGone,
}

/// Reads exactly `expected` body bytes into buffers taken from `free` and sends them,
/// full, to the writer. Never reads past the body. Each read is bounded by `clock`:
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
        let Some(mut buffer) = free.recv().await else { return Err(ReadStop::WriterGone) };
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
            return Err(ReadStop::WriterGone);
        }
    }
    Ok(())
}

/// The writer thread: hashes and writes each buffer in order (a [`DiskWriter`], which
/// starts writeback as it goes), and returns the buffers for reuse. Ends when the
/// reader drops its sender; returns the SHA-256 of everything written. The temp keeps
/// its own handle, so `file` is closed here.
fn write_body(
    file: File,
    mut full: mpsc::Receiver<Vec<u8>>,
    free: mpsc::Sender<Vec<u8>>,
) -> Result<[u8; 32], LocalFailure> {
    let mut hasher = Sha256::new();
    let mut disk = DiskWriter::new(&file);
    while let Some(buffer) = full.blocking_recv() {
        hasher.update(&buffer);
        disk.write(&buffer).map_err(LocalFailure::write)?;
        // Never full: at most DISK_BUFFERS buffers exist.
        let _ = free.try_send(buffer);
    }
    Ok(hasher.finalize().into())
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
