//! The `--exec` hook: a program run after each install, with no shell, the installed
//! file's path as its last argument and the entry in `FTS_HOOK_*` variables, bounded
//! by `--exec-timeout`. Hooks may run twice for one install (a crash between the
//! install and the end of the hook reruns it at the next start), so they must be
//! idempotent.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::client::state::PendingHook;

/// How to run the hook.
#[derive(Debug, Clone)]
pub struct Hook {
    pub program: PathBuf,
    pub timeout: Duration,
}

impl Hook {
    /// Runs the hook for `entry`, installed at `path`. `Err` says why it failed.
    pub async fn run(&self, entry: &PendingHook, path: &Path) -> Result<(), String> {
        let mut child = tokio::process::Command::new(&self.program)
            .arg(path)
            .env("FTS_HOOK_FILE", path)
            .env("FTS_HOOK_TARGET", entry.target.to_string())
            .env("FTS_HOOK_SEQ", entry.seq.to_string())
            .env("FTS_HOOK_FILE_HASH", entry.file_hash.to_string())
            .env("FTS_HOOK_PUBLISHED", entry.published.as_str())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.program.display()))?;
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("{} {status}", self.program.display())),
            Ok(Err(e)) => Err(format!("cannot wait for {}: {e}", self.program.display())),
            Err(_) => {
                let _ = child.kill().await;
                Err(format!("{} ran longer than {:?} and was killed", self.program.display(), self.timeout))
            }
        }
    }
}
