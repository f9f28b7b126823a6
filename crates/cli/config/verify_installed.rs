//! `fts verify-installed FILE`: the host state to check it against (`--state`, else
//! `.fts-state.json` in the folder of FILE, which is where `fts poll` keeps it when its
//! own `--state` is not given: `<dest>/.fts-state.json`), and the trusted keys
//! (`--trust`, default `certs/signing.pub`, as for `fts poll`). With the poll's config
//! file, `state` and `trust` come from its `[poll]` section too (the layering borrows
//! them), so one file configures both.

use std::path::PathBuf;

use anyhow::Context;
use fts_trust::TrustedKeys;

use crate::args::VerifyInstalledArgs;

/// What `fts verify-installed` is to check.
pub struct VerifyInstalled {
    /// The file, made absolute (for messages that name it whole).
    pub file: PathBuf,
    /// The state file of the poll that installed it.
    pub state: PathBuf,
    pub trusted: TrustedKeys,
}

impl VerifyInstalled {
    pub fn resolve(args: VerifyInstalledArgs) -> anyhow::Result<Self> {
        let file = std::path::absolute(&args.file)
            .with_context(|| format!("cannot resolve {}", args.file.display()))?;
        let state = match args.state {
            Some(state) => std::path::absolute(&state)
                .with_context(|| format!("cannot resolve --state {}", state.display()))?,
            None => fts_fs::parent_dir(&file).join(".fts-state.json"),
        };
        let trust = if args.trust.is_empty() { vec![PathBuf::from("certs/signing.pub")] } else { args.trust };
        let trusted = TrustedKeys::load(&trust).context("loading the trusted signing keys (--trust)")?;
        Ok(VerifyInstalled { file, state, trusted })
    }
}
