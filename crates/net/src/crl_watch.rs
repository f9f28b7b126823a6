//! Keeps the server's CRL current: the CRL file is looked at every few seconds and on
//! SIGHUP, and a changed file is loaded into the running [`ClientAuth`], so new
//! handshakes and the post-handshake re-check of resumed sessions use it at once.
//!
//! The file is checked by path (its [`fts_fs::FileIdentity`]: device, inode, size,
//! modification time), never through an open descriptor or an inotify watch on the inode, so a CRL
//! replaced by rename (as `fts keygen crl`, editors and sync tools do) is seen.
//!
//! **A reload that fails is tried again at every look until it loads.** Whatever
//! went wrong (a file the server may not read, fixed later by `chmod` without touching
//! the four fields above; no descriptor left; a file caught mid-write; a CRL older than
//! the one in force, [`fts_trust::crl_floor`]), the last good CRL stays in force
//! meanwhile, and the failure is visible: [`CrlHealth`] (for `--crl-max-stale`, which
//! lets the server refuse polls once it has lasted too long), the metrics
//! `fts_crl_reload_failing` and `fts_crl_reload_failures_total`, an error in the log
//! when it starts and then at most once per [`LOG_EVERY`] (or when the error changes),
//! and [`CrlEvent::Failing`] for the server's status file. Never recording a failed
//! version as seen is what makes revocation updates impossible to lose silently.
//!
//! Each look runs on a blocking thread: reading, parsing and the status files it
//! writes are file I/O, and must not hold up an async worker.
//!
//! A CRL past its next-update time is still enforced, with a warning.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use fts_proto::ErrorChain;
use fts_trust::ClientAuth;
use fts_trust::crl::{Crl, load_crls};
use fts_trust::issued::rfc3339;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::{CrlReloadFailure, Metrics};
use crate::summary_log::SummaryLog;

/// While a reload keeps failing with the same error, it is logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// What identifies one version of the CRL file ([`CrlFileVersion::of`] its path:
/// `None` when it cannot be inspected). Read before the file itself, so that a change
/// in between is loaded again at the next look.
pub type CrlFileVersion = fts_fs::FileIdentity;

/// A CRL file that cannot be put in force, since when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadFailing {
    /// When the first attempt failed.
    pub since: SystemTime,
    /// The last attempt's error.
    pub error: String,
    /// What to do about it, when the error says.
    pub hint: Option<String>,
    /// Attempts that failed so far.
    pub attempts: u64,
    started: Instant,
}

/// Whether the CRL file on disk is the one in force; shared by the watcher (which
/// writes it), the server (`--crl-max-stale`) and the status it reports.
#[derive(Debug)]
pub struct CrlHealth {
    failing: Mutex<Option<ReloadFailing>>,
    /// When a failure that goes on is logged again.
    log: SummaryLog<1>,
}

impl Default for CrlHealth {
    fn default() -> Self {
        CrlHealth { failing: Mutex::new(None), log: SummaryLog::new(LOG_EVERY) }
    }
}

impl CrlHealth {
    /// The health of a CRL file that is in force (nothing failing yet).
    pub fn new() -> Arc<CrlHealth> {
        Arc::new(CrlHealth::default())
    }

    /// The current failure, if the changed CRL file cannot be put in force.
    pub fn failing(&self) -> Option<ReloadFailing> {
        self.lock().clone()
    }

    /// How long the changed CRL file has failed to load (monotonic clock).
    pub fn failing_for(&self) -> Option<Duration> {
        self.lock().as_ref().map(|f| f.started.elapsed())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<ReloadFailing>> {
        self.failing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a failed attempt; says whether it is to be logged (the first one, a new
    /// error, or [`LOG_EVERY`] after the last line).
    fn failed(&self, error: String, hint: Option<String>, now: Instant) -> (ReloadFailing, bool) {
        let mut failing = self.lock();
        let (state, new) = match failing.take() {
            None => {
                (ReloadFailing { since: SystemTime::now(), error, hint, attempts: 1, started: now }, true)
            }
            Some(mut state) => {
                let new = state.error != error;
                state.attempts += 1;
                state.error = error;
                state.hint = hint;
                (state, new)
            }
        };
        let log = self.log.note(0, now, new).is_some();
        *failing = Some(state.clone());
        (state, log)
    }

    /// Notes a CRL put in force; returns the failure it ends, if any.
    fn loaded(&self) -> Option<ReloadFailing> {
        self.lock().take()
    }
}

/// What the watcher tells the server about (to keep its status file current).
#[derive(Debug)]
pub enum CrlEvent<'a> {
    /// These CRLs are in force now.
    Loaded(&'a [Crl]),
    /// The changed file cannot be put in force (sent when it is logged).
    Failing(&'a ReloadFailing),
}

/// What [`watch_crl`] works with.
pub struct CrlWatch {
    /// The CRL file (`--crl`).
    pub path: PathBuf,
    /// The server's client certificate check, whose CRLs a reload replaces.
    pub client_auth: Arc<ClientAuth>,
    /// How often the file is looked at.
    pub every: Duration,
    /// Notified on SIGHUP: load the file now, changed or not.
    pub reload: Arc<Notify>,
    /// Where the watch says whether the file on disk is in force.
    pub health: Arc<CrlHealth>,
    /// Where reloads and their failures are counted.
    pub metrics: Arc<Metrics>,
    /// The version of the file whose CRLs are in force when the watch starts (taken
    /// before they were read): a change made since is loaded at the first look.
    pub in_force: Option<CrlFileVersion>,
}

/// Watches the CRL file and reloads it when it changes, when `reload` is notified
/// (SIGHUP), and at every look while the last attempt failed. `on_event` hears of
/// every CRL set put in force and of failures as they are logged; it runs on a
/// blocking thread. Runs until dropped.
pub async fn watch_crl(watch: CrlWatch, on_event: impl Fn(CrlEvent<'_>) + Send + Sync + 'static) {
    let reload = Arc::clone(&watch.reload);
    let every = watch.every;
    let in_force = Mutex::new(watch.in_force);
    let watcher = Arc::new(Watcher { in_force, watch, on_event });
    loop {
        let forced = tokio::select! {
            () = tokio::time::sleep(every) => false,
            () = reload.notified() => true,
        };
        let watcher = Arc::clone(&watcher);
        if let Err(e) = tokio::task::spawn_blocking(move || watcher.look(forced)).await {
            tracing::error!(error = %ErrorChain(&e), "the CRL check failed unexpectedly: trying again at the next look");
        }
    }
}

struct Watcher<F> {
    watch: CrlWatch,
    /// The version of the file whose CRLs are in force.
    in_force: Mutex<Option<CrlFileVersion>>,
    on_event: F,
}

impl<F: Fn(CrlEvent<'_>)> Watcher<F> {
    fn look(&self, forced: bool) {
        let watch = &self.watch;
        let mut in_force = self.in_force.lock().unwrap_or_else(PoisonError::into_inner);
        let on_disk = CrlFileVersion::of(&watch.path);
        if !forced && *in_force == on_disk && watch.health.failing_for().is_none() {
            return;
        }
        // The version is read before the file, so a change in between is loaded again
        // at the next look.
        let attempt = load_crls(&watch.path)
            .and_then(|crls| watch.client_auth.replace_crls(crls.clone()).map(|()| crls));
        match attempt {
            Ok(crls) => {
                *in_force = on_disk;
                let ended = watch.health.loaded();
                watch.metrics.set_crl_reload_failing(false);
                watch.metrics.set_crl_next_update(earliest_next_update(&crls));
                log_loaded(&watch.path, &crls, if forced { "reloaded on SIGHUP" } else { "reloaded" });
                if let Some(ended) = ended {
                    tracing::info!(
                        crl = %watch.path.display(),
                        failed_attempts = ended.attempts,
                        failing_since = %rfc3339(OffsetDateTime::from(ended.since)),
                        "the CRL file loads again: its CRL is in force"
                    );
                }
                (self.on_event)(CrlEvent::Loaded(&crls));
            }
            Err(e) => {
                watch.metrics.crl_reload_failed(failure_kind(&e));
                watch.metrics.set_crl_reload_failing(true);
                let error = ErrorChain(&e).to_string();
                let (state, log) = watch.health.failed(error, hint(&watch.path, &e), Instant::now());
                if log {
                    tracing::error!(
                        crl = %watch.path.display(),
                        error = %state.error,
                        hint = state.hint.as_deref().unwrap_or("-"),
                        failing_since = %rfc3339(OffsetDateTime::from(state.since)),
                        failed_attempts = state.attempts,
                        "cannot put the changed CRL in force: the previous CRL stays enforced, and the \
                         file is tried again every few seconds"
                    );
                    (self.on_event)(CrlEvent::Failing(&state));
                }
            }
        }
    }
}

fn failure_kind(e: &fts_trust::Error) -> CrlReloadFailure {
    match e {
        fts_trust::Error::Read { .. } => CrlReloadFailure::Read,
        fts_trust::Error::OlderCrl { .. } => CrlReloadFailure::Older,
        _ => CrlReloadFailure::Invalid,
    }
}

/// What the operator can do about `e`, when it says.
fn hint(path: &Path, e: &fts_trust::Error) -> Option<String> {
    let fts_trust::Error::Read { source, .. } = e else { return None };
    match (source.kind(), source.raw_os_error()) {
        (std::io::ErrorKind::PermissionDenied, _) => {
            let who = rustix::process::geteuid().as_raw();
            let file = std::fs::metadata(path).map_or_else(
                |_| "it".to_owned(),
                |m| format!("it is mode {:04o}, owner uid {},", m.permissions().mode() & 0o7777, m.uid()),
            );
            Some(format!(
                "{file} and this server runs as uid {who}: make it readable (chmod 0644; copy it with \
                 `install -m 0644` or `rsync --chmod=F0644`)"
            ))
        }
        (std::io::ErrorKind::NotFound, _) => Some(
            "the file is gone: put the current ca.crl back (the CRL loaded before stays in force)".into(),
        ),
        // EMFILE, ENFILE
        (_, Some(24 | 23)) => Some(
            "out of file descriptors: it is tried again at every look; check the open-file limit and \
             --max-connections"
                .into(),
        ),
        _ => None,
    }
}

/// The earliest next-update time of `crls`, as unix seconds (what the metric shows).
pub fn earliest_next_update(crls: &[Crl]) -> Option<i64> {
    crls.iter().filter_map(Crl::next_update).map(time::OffsetDateTime::unix_timestamp).min()
}

/// Logs what a loaded CRL says, and warns when it is overdue.
pub fn log_loaded(path: &Path, crls: &[Crl], what: &str) {
    let now = time::OffsetDateTime::now_utc();
    for crl in crls {
        let next_update = crl.next_update_text();
        tracing::info!(
            crl = %path.display(),
            issuer = crl.issuer(),
            number = crl.number().map_or_else(|| "none".to_owned(), |n| n.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_logged_at_once_then_once_a_minute_or_when_it_changes() {
        let health = CrlHealth::default();
        let start = Instant::now();
        let (state, log) = health.failed("denied".into(), None, start);
        assert!(log && state.attempts == 1);
        assert!(!health.failed("denied".into(), None, start + Duration::from_secs(2)).1);
        assert!(health.failed("not a crl".into(), None, start + Duration::from_secs(4)).1, "a new error");
        assert!(!health.failed("not a crl".into(), None, start + Duration::from_secs(30)).1);
        let (state, log) = health.failed("not a crl".into(), None, start + Duration::from_secs(65));
        assert!(log && state.attempts == 5);
        assert!(health.failing_for().is_some());
        assert_eq!(health.loaded().map(|s| s.attempts), Some(5));
        assert!(health.failing().is_none() && health.failing_for().is_none());
    }
}
