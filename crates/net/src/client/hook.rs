//! The `--exec` hook: a program run after each install, with no shell, the installed
//! file's path as its last argument and the entry in `FTS_HOOK_*` variables, bounded
//! by `--exec-timeout`. Hooks may run twice for one install (a crash between the
//! install and the end of the hook reruns it at the next start), so they must be
//! idempotent.
//!
//! A hook says that a reboot is required for what it installed by exiting with
//! [`REBOOT_EXIT`] (10: success, reboot required) or by writing `reboot` to the file
//! `$FTS_HOOK_STATUS_FILE` names; the host reports it and status shows it.
//!
//! What the hook gets, and why:
//! - a minimal environment: `PATH` (fts's own, or a standard one when fts has none),
//!   `LANG` when fts has one, and the `FTS_HOOK_*` variables. Nothing else of fts's
//!   environment (its `FTS_*` configuration, proxies, credentials of the service
//!   manager) reaches a program that runs on every install;
//! - its own process group, so that `--exec-timeout` ends the hook and everything it
//!   started (a grandchild that sleeps, a pipeline): on timeout the whole group is
//!   killed with SIGKILL. A process that leaves the group on purpose (`setsid`) is
//!   not followed; under systemd the unit's cgroup still ends it with the service.
//!   Being in its own group, the hook does not get a terminal's Ctrl-C either: fts
//!   handles that by finishing the current poll, which waits for the hook.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fts_proto::ErrorChain;

use crate::client::state::PendingHook;

/// `PATH` for a hook when fts itself runs without one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A hook that exits with this succeeded and says a reboot is required.
pub const REBOOT_EXIT: i32 = 10;

/// What a hook that succeeded said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HookDone {
    /// A reboot is required (it exited [`REBOOT_EXIT`], or wrote `reboot` to
    /// `$FTS_HOOK_STATUS_FILE`).
    pub reboot_required: bool,
}

/// How long to wait for a killed hook to be reaped.
const REAP_LIMIT: Duration = Duration::from_secs(5);

/// How to run the hook.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The program (`--exec`), run without a shell.
    pub program: PathBuf,
    /// How long it may run (`--exec-timeout`).
    pub timeout: Duration,
}

impl Hook {
    /// Runs the hook for `entry`, installed at `path`, with `$FTS_HOOK_STATUS_FILE`
    /// naming `status_file` (a path in a folder of fts's own, removed before and
    /// after). `Err` says why it failed.
    pub async fn run(
        &self,
        entry: &PendingHook,
        path: &Path,
        status_file: &Path,
    ) -> Result<HookDone, HookError> {
        let _ = std::fs::remove_file(status_file);
        let mut command = tokio::process::Command::new(&self.program);
        command
            .arg(path)
            .env_clear()
            .envs(environment(entry, path))
            .env("FTS_HOOK_STATUS_FILE", status_file)
            .stdin(Stdio::null())
            // Its own process group (pgid = its pid), killed whole on timeout.
            .process_group(0)
            .kill_on_drop(true);
        let program = || self.program.clone();
        let mut child = command.spawn().map_err(|source| HookError::Start { program: program(), source })?;
        let result = self.wait(&mut child, program).await;
        // What it wrote there (a few bytes are enough: `reboot`).
        let wrote = fts_fs::read_bounded(status_file, 64).unwrap_or_default();
        let _ = std::fs::remove_file(status_file);
        result.map(|mut done| {
            done.reboot_required |= String::from_utf8_lossy(&wrote).trim() == "reboot";
            done
        })
    }

    async fn wait(
        &self,
        child: &mut tokio::process::Child,
        program: impl Fn() -> PathBuf,
    ) -> Result<HookDone, HookError> {
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(HookDone::default()),
            Ok(Ok(status)) if status.code() == Some(REBOOT_EXIT) => Ok(HookDone { reboot_required: true }),
            Ok(Ok(status)) => Err(HookError::Failed { program: program(), status }),
            Ok(Err(source)) => Err(HookError::Wait { program: program(), source }),
            Err(_) => {
                // The child is not reaped yet (its wait did not complete), so its pid is
                // still its group's id and cannot have been reused.
                kill_group(&self.program, child.id());
                let _ = child.start_kill();
                let _ = tokio::time::timeout(REAP_LIMIT, child.wait()).await;
                Err(HookError::Timeout { program: program(), timeout: self.timeout })
            }
        }
    }
}

/// Why a hook failed: the install is reported as `hook-failed`.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The program could not be started.
    #[error("cannot start {}", program.display())]
    Start {
        /// The hook's program.
        program: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the program failed.
    #[error("cannot wait for {}", program.display())]
    Wait {
        /// The hook's program.
        program: PathBuf,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The program exited unsuccessfully or was killed by a signal.
    #[error("{} {status}", program.display())]
    Failed {
        /// The hook's program.
        program: PathBuf,
        /// How it ended.
        status: std::process::ExitStatus,
    },
    /// The program ran past `--exec-timeout` and was killed with its process group.
    #[error("{} ran longer than {timeout:?} and was killed with its process group", program.display())]
    Timeout {
        /// The hook's program.
        program: PathBuf,
        /// `--exec-timeout`.
        timeout: Duration,
    },
}

/// Kills the process group led by the hook `pid` (its pgid is its pid:
/// `process_group(0)`).
fn kill_group(program: &Path, pid: Option<u32>) {
    let Some(group) = pid.and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw)
    else {
        return;
    };
    if let Err(e) = rustix::process::kill_process_group(group, rustix::process::Signal::KILL) {
        tracing::warn!(program = %program.display(), error = %ErrorChain(&e), "cannot kill the hook's process group");
    }
}

/// The hook's whole environment (see the module docs).
fn environment(entry: &PendingHook, path: &Path) -> Vec<(&'static str, OsString)> {
    let mut vars = vec![("PATH", std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()))];
    if let Some(lang) = std::env::var_os("LANG") {
        vars.push(("LANG", lang));
    }
    vars.extend([
        ("FTS_HOOK_FILE", path.as_os_str().to_owned()),
        ("FTS_HOOK_TARGET", entry.target.to_string().into()),
        ("FTS_HOOK_SEQ", entry.seq.to_string().into()),
        ("FTS_HOOK_FILE_HASH", entry.file_hash.to_string().into()),
        ("FTS_HOOK_PUBLISHED", entry.published.as_str().into()),
    ]);
    vars
}
