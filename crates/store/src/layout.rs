//! Where things live inside a store folder. The one place that spells the names, so
//! the publisher, the reader and docs/STORE.md agree.
//!
//! ```text
//! <store>/journal                  append-only records (see the journal module)
//! <store>/lock                     the publish lock (flock, exclusive)
//! <store>/blobs/<2 hex>/<64 hex>   content-addressed files, mode 0444
//! <store>/tmp/                     temporaries of publishers, never synced to replicas
//! ```

use std::path::{Path, PathBuf};

use fts_proto::FileHash;

pub(crate) const JOURNAL: &str = "journal";
pub(crate) const LOCK: &str = "lock";
pub(crate) const BLOBS: &str = "blobs";
pub(crate) const TMP: &str = "tmp";

/// The names a store folder may hold before its journal exists (an interrupted
/// creation), so that creating the store there again is safe.
pub(crate) const OWN_NAMES: [&str; 4] = [JOURNAL, LOCK, BLOBS, TMP];

/// The shard folder and the file name of the blob of `hash` in `blobs/`.
pub(crate) fn blob_names(hash: &FileHash) -> (String, String) {
    let hex = hash.hex();
    (hex[..2].to_owned(), hex)
}

/// The hash a blob file is named for, when `name` in the shard folder `shard` is a
/// blob's name (64 lower-case hex digits, the first two being `shard`); `None` for
/// anything else (a sync tool's temp, a stray file), which is not a blob.
pub(crate) fn hash_of_blob_name(shard: &str, name: &str) -> Option<FileHash> {
    let hash = FileHash::parse(&format!("sha256:{name}")).ok()?;
    (name.starts_with(shard) && shard.len() == 2).then_some(hash)
}

/// `<store>/blobs/<first 2 hex digits>/<64 hex digits>`.
pub fn blob_path(store_dir: &Path, hash: &FileHash) -> PathBuf {
    let hex = hash.hex();
    store_dir.join(BLOBS).join(&hex[..2]).join(hex)
}
