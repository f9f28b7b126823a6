//! `fts timestamp`: the key, the trusted release keys (`--trust`, default
//! `certs/signing.pub`), and the signer's state file (default
//! `timestamp-state.json` beside the key).

use std::path::PathBuf;

use anyhow::Context;
use fts_trust::TrustedKeys;
use fts_trust::note::TimestampKey;

use crate::args::TimestampArgs;
use crate::timestamp::Timestamp;

impl Timestamp {
    pub fn resolve(args: TimestampArgs) -> anyhow::Result<Timestamp> {
        let key = TimestampKey::load(&args.key)
            .with_context(|| "the timestamp signer needs its key (make one with `fts keygen timestamp`)")?;
        let trust = if args.trust.is_empty() { vec![PathBuf::from("certs/signing.pub")] } else { args.trust };
        let trusted = TrustedKeys::load(&trust).context("loading the trusted signing keys (--trust)")?;
        let state = args.state.unwrap_or_else(|| fts_fs::parent_dir(&args.key).join("timestamp-state.json"));
        Ok(Timestamp { store: args.store, key, trusted, state, every: args.every, once: args.once })
    }
}
