//! Keeps the server's CRL current: the CRL file is looked at every few seconds and on
//! SIGHUP, and a changed file is loaded into the running [`ClientAuth`], so new
//! handshakes and the post-handshake re-check of resumed sessions use it at once.
//!
//! The file is checked by path (its metadata: device, inode, size, modification
//! time), never through an open descriptor or an inotify watch on the inode, so a CRL
//! replaced by rename (as `fts keygen crl`, editors and sync tools do) is seen. A
//! reload that fails keeps the last good CRL and says so; a CRL past its next-update
//! time is still enforced, with a warning.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fts_trust::ClientAuth;
use fts_trust::crl::{Crl, load_crls};
use tokio::sync::Notify;

/// What identifies one version of the CRL file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileVersion {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
}

fn version_of(path: &std::path::Path) -> Option<FileVersion> {
    let meta = std::fs::metadata(path).ok()?;
    Some(FileVersion { dev: meta.dev(), ino: meta.ino(), len: meta.len(), mtime: meta.modified().ok() })
}

/// Watches `path` and reloads it into `client_auth` when it changes or when `reload`
/// is notified (SIGHUP); `on_loaded` hears of every CRL put in force (to keep the
/// metrics and the server's status current). Runs until dropped.
pub async fn watch_crl(
    path: PathBuf,
    client_auth: Arc<ClientAuth>,
    every: Duration,
    reload: Arc<Notify>,
    on_loaded: impl Fn(&[Crl]) + Send + 'static,
) {
    let mut seen = version_of(&path);
    loop {
        let forced = tokio::select! {
            () = tokio::time::sleep(every) => false,
            () = reload.notified() => true,
        };
        let now = version_of(&path);
        if !forced && now == seen {
            continue;
        }
        // A file caught mid-write fails to parse: it keeps the old CRL and is tried
        // again at the next look, because `seen` is only updated on success.
        match load_crls(&path) {
            Ok(crls) => match client_auth.replace_crls(crls.clone()) {
                Ok(()) => {
                    seen = now;
                    on_loaded(&crls);
                    log_loaded(&path, &crls, if forced { "reloaded on SIGHUP" } else { "reloaded" });
                }
                Err(e) => {
                    tracing::error!(crl = %path.display(), error = %e, "cannot use the new CRL: keeping the last good one")
                }
            },
            Err(e) => {
                if forced || now.is_none() {
                    tracing::error!(crl = %path.display(), error = %e, "cannot reload the CRL: keeping the last good one");
                } else {
                    tracing::warn!(crl = %path.display(), error = %e, "cannot reload the changed CRL yet: keeping the last good one");
                }
                seen = now;
            }
        }
    }
}

/// The earliest next-update time of `crls`, as unix seconds (what the metric shows).
pub fn earliest_next_update(crls: &[Crl]) -> Option<i64> {
    crls.iter().filter_map(Crl::next_update).map(time::OffsetDateTime::unix_timestamp).min()
}

/// Logs what a loaded CRL says, and warns when it is overdue.
pub fn log_loaded(path: &std::path::Path, crls: &[Crl], what: &str) {
    let now = time::OffsetDateTime::now_utc();
    for crl in crls {
        let next_update = crl.next_update().map_or_else(|| "none".to_owned(), |t| t.to_string());
        tracing::info!(
            crl = %path.display(),
            issuer = crl.issuer(),
            number = crl.number().unwrap_or(0),
            revoked = crl.revoked_serials().len(),
            %next_update,
            "{what}"
        );
        if crl.is_past_next_update(now) {
            tracing::warn!(
                crl = %path.display(),
                %next_update,
                "the CRL is past its next-update time: still enforced, but renew it (`fts keygen crl`)"
            );
        }
    }
}
