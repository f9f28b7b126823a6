//! `fts log init` and `fts log verify`: the store's Merkle log, looked after on the
//! signing host. `init` builds the log over the whole journal (a store of a release
//! before the log) and signs its checkpoint, as every publish does after its record.
//! `verify` checks that the log is the journal's and that its checkpoint signs it,
//! and with `--against DIR` that it extends the log of another copy (the freshest
//! replica) and every checkpoint cosigned there: run it on a master store restored
//! from a backup before its first publish (docs/OPERATIONS.md).

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use fts_log::heads::HeadsTree;
use fts_log::merkle::{Tree, leaf_hash};
use fts_proto::checkpoint::Checkpoint;
use fts_store::log::{LEAVES, LOG, heads_of, leaf_kind, read_checkpoint, read_cosigned, read_leaves};
use fts_store::{Store, StoreReader};
use fts_trust::note::verify_checkpoint_any_origin;
use fts_trust::{SigningKey, TrustedKeys};

use crate::args::{LogInitArgs, LogVerifyArgs};

pub fn init(args: LogInitArgs) -> anyhow::Result<()> {
    let key = SigningKey::load(&args.signing_key)
        .with_context(|| "signing the log's checkpoint needs the release signing key")?;
    let has_log = read_checkpoint(&args.store)?.is_some();
    let origin = match (has_log, args.log_origin) {
        (true, given) => given,
        (false, given) => Some(crate::log_origin::resolve(&args.signing_key, given)?),
    };
    let store = Store::open_or_create(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?
        .with_log_origin(origin);
    let checkpoint = store.sign_log(&key)?;
    println!(
        "the log {} covers {} entries; its checkpoint is signed by key {}",
        checkpoint.origin,
        checkpoint.size,
        key.key_id()
    );
    Ok(())
}

pub fn verify(args: LogVerifyArgs) -> anyhow::Result<()> {
    let trust = if args.trust.is_empty() { vec![PathBuf::from("certs/signing.pub")] } else { args.trust };
    let trusted = TrustedKeys::load(&trust).context("loading the trusted signing keys (--trust)")?;
    let ours = LogCopy::read(&args.store, &trusted)?;
    println!(
        "{}: the log {} holds {} leaves, its journal's; its checkpoint covers {} and is signed by a trusted key",
        args.store.display(),
        ours.checkpoint.origin,
        ours.tree.len(),
        ours.checkpoint.size
    );
    let Some(against) = args.against else { return Ok(()) };
    let theirs =
        read_checkpoint(&against)?.with_context(|| format!("{} has no log/checkpoint", against.display()))?;
    verify_checkpoint_any_origin(&theirs.note, &trusted)
        .with_context(|| format!("the checkpoint of {} is not signed by a trusted key", against.display()))?;
    ours.check_extends(&theirs.checkpoint, &format!("the checkpoint of {}", against.display()))?;
    let mut cosigned = 0;
    for (name, stored) in read_cosigned(&against)? {
        if stored.checkpoint.origin == ours.checkpoint.origin {
            ours.check_extends(
                &stored.checkpoint,
                &format!("the checkpoint cosigned in {}/cosignatures/{name}", against.display()),
            )?;
            cosigned += 1;
        }
    }
    println!(
        "it extends the log of {} ({} leaves) and the {cosigned} checkpoint(s) cosigned there: safe to publish from",
        against.display(),
        theirs.checkpoint.size
    );
    Ok(())
}

/// A store's log, checked against its journal and its own checkpoint.
struct LogCopy {
    tree: Tree,
    checkpoint: Checkpoint,
}

impl LogCopy {
    fn read(store: &Path, trusted: &TrustedKeys) -> anyhow::Result<LogCopy> {
        let reader =
            StoreReader::open(store).with_context(|| format!("cannot open the store {}", store.display()))?;
        let snapshot = reader.current();
        let path = store.join(LOG).join(LEAVES);
        let file = File::open(&path)
            .with_context(|| format!("cannot open {} (run `fts log init`)", path.display()))?;
        let read = read_leaves(&mut BufReader::with_capacity(1 << 16, file), 0)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if read.leaves.len() as u64 > snapshot.leaf_count() {
            bail!(
                "{} holds {} leaves but the journal only {} records' worth",
                path.display(),
                read.leaves.len(),
                snapshot.leaf_count()
            );
        }
        let mut tree = Tree::new();
        let mut kinds = Vec::new();
        for (i, (leaf, journal)) in read.leaves.iter().zip(snapshot.leaves()).enumerate() {
            if *leaf != journal {
                bail!("leaf {i} of {} is not the journal's record {i}", path.display());
            }
            let kind = leaf_kind(leaf)
                .with_context(|| format!("leaf {i} of {} is not one fts writes", path.display()))?;
            tree.push(leaf_hash(leaf));
            kinds.push(kind);
        }
        let stored =
            read_checkpoint(store)?.with_context(|| format!("{} has no log/checkpoint", store.display()))?;
        verify_checkpoint_any_origin(&stored.note, trusted).with_context(|| {
            format!("the checkpoint of {} is not signed by a trusted key", store.display())
        })?;
        let checkpoint = stored.checkpoint;
        let copy = LogCopy { tree, checkpoint: checkpoint.clone() };
        copy.check_extends(&checkpoint, "its own checkpoint")?;
        let size = usize::try_from(checkpoint.size).unwrap_or(usize::MAX);
        let heads = HeadsTree::new(&heads_of(&kinds[..size.min(kinds.len())]));
        if heads.root() != checkpoint.heads_root || heads.count() != checkpoint.heads_count {
            bail!("the checkpoint's heads are not the heads of the leaves it covers");
        }
        Ok(copy)
    }

    fn check_extends(&self, older: &Checkpoint, what: &str) -> anyhow::Result<()> {
        Ok(fts_store::log::check_extends(&self.tree, older, what)?)
    }
}
