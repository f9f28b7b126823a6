//! The streaming receiver: a `file` frame's body goes into a temporary file in the
//! destination folder, hashed as it is written, and becomes a [`VerifiedFile`] only
//! when exactly the signed number of bytes arrived and their SHA-256 is the signed
//! hash. The installer takes nothing else, so no code path can install bytes that
//! were not checked.
//!
//! Bounds: never more than `file-size` bytes are read from the connection (the next
//! frame's bytes are never consumed as body); nothing is preallocated from the claimed
//! size; the free space is checked first and a full disk mid-way is a local failure.
//! Until the end the bytes are untrusted, and on any failure the temporary file is
//! removed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use fts_proto::FileHash;
use fts_trust::{Statement, Verified};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::client::state::{TEMP_PREFIX, random_suffix, sync_dir};
use crate::connection::Connection;

/// Why a body was not turned into a [`VerifiedFile`].
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The bytes arrived but are not what was signed: reported as `hash-mismatch`.
    #[error("the body's hash is {actual}, not the signed {expected}")]
    HashMismatch { expected: FileHash, actual: FileHash },
    /// The connection ended or failed mid-body: a failure of the poll.
    #[error("the body was cut short: {received} of {expected} bytes arrived ({reason})")]
    Truncated { received: u64, expected: u64, reason: String },
    /// No body byte arrived for the read timeout: a failure of the poll.
    #[error("no body bytes arrived for the read timeout")]
    Timeout,
    /// This host could not store the file (disk full, permissions, I/O): reported as
    /// `install-failed`.
    #[error("cannot store the file in {}: {reason}", dir.display())]
    Local { dir: PathBuf, reason: String },
}

/// A file whose every byte has been checked against a verified signed statement,
/// sitting in a temporary file in the destination folder. Only [`receive_file`] makes
/// one; dropping it without installing removes the temporary file.
#[derive(Debug)]
pub struct VerifiedFile {
    statement: Verified<Statement>,
    temp_path: PathBuf,
    installed: bool,
}

impl VerifiedFile {
    pub fn statement(&self) -> &Statement {
        &self.statement
    }

    pub fn temp_path(&self) -> &Path {
        &self.temp_path
    }

    /// Renames the file onto `dest/<file-name>` and flushes the folder. Until the
    /// rename, the old file (if any) is untouched; after it, the new one is whole.
    pub fn install(mut self, dest: &Path) -> std::io::Result<PathBuf> {
        let path = dest.join(self.statement.file_name.as_str());
        std::fs::rename(&self.temp_path, &path)?;
        self.installed = true;
        sync_dir(dest)?;
        Ok(path)
    }
}

impl Drop for VerifiedFile {
    fn drop(&mut self) {
        if !self.installed {
            let _ = std::fs::remove_file(&self.temp_path);
        }
    }
}

/// Something that wants to know how a transfer goes (a progress bar).
pub trait Progress: Send {
    fn start(&mut self, _statement: &Statement) {}
    fn advance(&mut self, _bytes: u64) {}
    fn finish(&mut self) {}
}

/// No progress display.
pub struct NoProgress;
impl Progress for NoProgress {}

/// Removes a temporary file unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Receives the body of the entry `statement` from `conn` into `dest`.
pub async fn receive_file<S>(
    conn: &mut Connection<S>,
    statement: Verified<Statement>,
    dest: &Path,
    buffer: &mut [u8],
    read_timeout: std::time::Duration,
    progress: &mut dyn Progress,
) -> Result<VerifiedFile, ReceiveError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let expected = statement.file_size;
    let local = |reason: String| ReceiveError::Local { dir: dest.to_owned(), reason };
    check_free_space(dest, expected).map_err(local)?;

    let temp_path = dest.join(format!("{TEMP_PREFIX}{}", random_suffix()));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&temp_path)
        .map_err(|e| local(format!("cannot create {}: {e}", temp_path.display())))?;
    let mut guard = TempGuard(Some(temp_path.clone()));
    // The umask may have narrowed the mode; installed files are 0644, never executable.
    file.set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(|e| local(e.to_string()))?;

    progress.start(&statement);
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while received < expected {
        let want = usize::try_from(expected - received).map_or(buffer.len(), |left| left.min(buffer.len()));
        let n = match tokio::time::timeout(read_timeout, conn.read_body_chunk(&mut buffer[..want])).await {
            Err(_) => return Err(ReceiveError::Timeout),
            Ok(Ok(0)) => {
                return Err(ReceiveError::Truncated {
                    received,
                    expected,
                    reason: "the connection closed".into(),
                });
            }
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(ReceiveError::Truncated { received, expected, reason: e.to_string() }),
        };
        hasher.update(&buffer[..n]);
        write_chunk(&mut file, &buffer[..n]).map_err(local)?;
        received += n as u64;
        progress.advance(n as u64);
    }
    progress.finish();

    let actual = FileHash::from_digest(hasher.finalize().into());
    if actual != statement.file_hash {
        return Err(ReceiveError::HashMismatch { expected: statement.file_hash, actual });
    }
    file.sync_all().map_err(|e| local(format!("cannot flush {}: {e}", temp_path.display())))?;
    drop(file);
    guard.0 = None;
    Ok(VerifiedFile { statement, temp_path, installed: false })
}

fn write_chunk(file: &mut File, bytes: &[u8]) -> Result<(), String> {
    // Writes are synchronous: the file is local and each chunk is small, and a
    // blocking write keeps the hashing and the writing in one simple loop.
    file.write_all(bytes).map_err(|e| match e.raw_os_error() {
        Some(28) => "the disk is full".to_owned(),
        _ => e.to_string(),
    })
}

/// Refuses a file that cannot fit. A disk that fills up mid-way is still caught by the
/// writes; this only avoids starting a transfer that cannot end.
fn check_free_space(dest: &Path, size: u64) -> Result<(), String> {
    let stat = rustix::fs::statvfs(dest).map_err(|e| format!("cannot read the free space: {e}"))?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    if available < size {
        return Err(format!("not enough free space: {size} bytes needed, {available} available"));
    }
    Ok(())
}
