//! The log's origin on the signing host: `--log-origin`, else the `log-origin` file
//! that `fts keygen signing` writes beside the key. A key made before the log (no
//! such file) gets one made now, `fts.local/<16 random hex>`, written beside it so
//! that every later publish and `fts log init` names the log the same. Once the
//! store has a checkpoint its origin is the log's for ever (the store refuses
//! another).

use std::path::{Path, PathBuf};

use anyhow::Context;
use fts_fs::{FileMode, WriteOptions};
use fts_proto::checkpoint::Origin;

/// The file beside the signing key.
pub const LOG_ORIGIN_FILE: &str = "log-origin";

/// The origin to sign a store's first checkpoint with.
pub fn resolve(signing_key: &Path, given: Option<Origin>) -> anyhow::Result<Origin> {
    if let Some(origin) = given {
        return Ok(origin);
    }
    let path = beside(signing_key);
    match std::fs::read_to_string(&path) {
        Ok(text) => Origin::parse(text.trim_end_matches('\n'))
            .with_context(|| format!("{} does not hold a log origin", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let origin = fts_trust::keygen::random_origin().context("cannot name the log")?;
            let options = WriteOptions {
                label: "origin",
                mode: FileMode::Exact(0o644),
                durable: true,
                overwrite: false,
            };
            fts_fs::write_atomic(&path, format!("{origin}\n").as_bytes(), &options)
                .with_context(|| format!("cannot write the log origin to {}", path.display()))?;
            tracing::info!(origin = %origin, file = %path.display(), "named the log (no log-origin beside the signing key)");
            Ok(origin)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn beside(signing_key: &Path) -> PathBuf {
    fts_fs::parent_dir(signing_key).join(LOG_ORIGIN_FILE)
}
