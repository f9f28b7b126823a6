//! Whether this host needs a reboot for what it installed, so that status shows it:
//! a hook said so (exit 10, or `reboot` written to `$FTS_HOOK_STATUS_FILE`), or the
//! distribution's flag file exists (`--reboot-required-file`, default
//! `/run/reboot-required`, which Debian's and Ubuntu's packages create).
//!
//! The mark is kept in the state with the boot it was raised in
//! (`/proc/sys/kernel/random/boot_id`); it ends once the host has booted again and the
//! flag file is gone. Each poll carries `reboot-required` while the mark stands, and
//! the receipt of the answer that raised it says `reboot-required` at once.

use std::path::PathBuf;

use fts_proto::{Outcome, Published};
use serde::{Deserialize, Serialize};

use crate::client::{Client, unix_now};

/// Where Linux says which boot this is.
const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";
/// The file a hook writes `reboot` to; in the partial folder, which is fts's own.
const HOOK_STATUS_FILE: &str = ".fts-hook-status";

/// A reboot this host needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RebootRequired {
    /// When it was first noticed.
    pub since: Published,
    /// The boot it was noticed in (empty when Linux did not say).
    pub boot_id: String,
    /// Who said so: `the hook`, or the flag file's path.
    pub by: String,
}

impl Client {
    /// The file `$FTS_HOOK_STATUS_FILE` names.
    pub(crate) fn hook_status_file(&self) -> PathBuf {
        self.partial.dir().path().join(HOOK_STATUS_FILE)
    }

    /// Marks a reboot required (once; the next receipt says it).
    pub(crate) fn note_reboot_required(&mut self, by: &str) {
        if self.state.reboot_required.is_some() {
            return;
        }
        self.state.reboot_required = Some(RebootRequired {
            since: Published::from_unix_seconds(unix_now()),
            boot_id: boot_id(),
            by: by.to_owned(),
        });
        self.outcomes.host(Outcome::RebootRequired);
    }

    /// Before each receipt: ends a mark the host has rebooted past (and whose flag
    /// file is gone), and raises one for a flag file that exists.
    pub(crate) fn check_reboot(&mut self) {
        let flagged = self.settings.reboot_required_file.as_ref().filter(|path| path.exists()).cloned();
        if let Some(mark) = &self.state.reboot_required {
            let booted_since = !mark.boot_id.is_empty() && mark.boot_id != boot_id();
            if booted_since && flagged.is_none() {
                tracing::info!(since = %mark.since, "the host has rebooted: no reboot required any more");
                self.state.reboot_required = None;
            }
        }
        if let Some(path) = flagged {
            self.note_reboot_required(&path.display().to_string());
        }
    }
}

/// This boot's id, or empty when Linux does not say.
fn boot_id() -> String {
    fts_fs::read_bounded(std::path::Path::new(BOOT_ID), 64)
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default()
}
