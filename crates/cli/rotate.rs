//! `fts keygen rotate`, on the signing host (docs/OPERATIONS.md "Rotating the release
//! key", docs/PROTOCOL.md section 8.3): makes the pre-committed next key the release
//! key, in the store's log, without touching a host. The rotation leaf reveals
//! `next.key`'s public key (the commitment every host holds), is signed by it and, in
//! a planned rotation, by the current key too; `--recovery` (the current key stolen
//! or lost) signs with the next key alone. A new next key is made and committed to.
//!
//! Order, so that a crash never loses the key the fleet is committed to: the new next
//! key is written first (`next.key.new`, reused if a run died after it), then the
//! store rotates, then the files move into place (`signing.key` becomes the rotated
//! key, the old one is kept as `signing.key.retired-<n>` unless it was stolen,
//! `next.key` the new next key, `signing.pub` the new trust file).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use fts_proto::RotationSignature;
use fts_store::Store;
use fts_trust::keygen::{NEXT_KEY_FILE, SIGNING_KEY_FILE, SIGNING_PUB_FILE, write_trust_file};
use fts_trust::{NextKey, PublicKey, SigningKey, TrustedKeys, commitment};

use crate::args::KeygenRotateArgs;

pub fn run(args: &KeygenRotateArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let pub_path = dir.join(SIGNING_PUB_FILE);
    let trust = TrustedKeys::load(&[&pub_path])
        .with_context(|| format!("cannot read the trust file {}", pub_path.display()))?;
    let current = PublicKey::load(&pub_path)?;
    let held = trust.next_key(&current.key_id()).with_context(|| {
        format!("{} holds no fts-next-key commitment: this key was made before rotation existed, so hosts cannot follow a rotation from it (give them a new signing.pub instead)", pub_path.display())
    })?;
    let next_path = args.next_key.clone().unwrap_or_else(|| dir.join(NEXT_KEY_FILE));
    let next = SigningKey::load(&next_path)
        .with_context(|| format!("rotating needs the next key {} (kept offline)", next_path.display()))?;
    if commitment(&next.public_key()) != held.next {
        bail!(
            "{} is not the key {} commits to: hosts would refuse this rotation",
            next_path.display(),
            pub_path.display()
        );
    }
    let signing_path = dir.join(SIGNING_KEY_FILE);
    let old = if args.recovery {
        None
    } else {
        let old = SigningKey::load(&signing_path).with_context(
            || "a planned rotation is signed by the current key too (after a theft or loss, use --recovery)",
        )?;
        if old.key_id() != current.key_id() {
            bail!("{} is not the key of {}", signing_path.display(), pub_path.display());
        }
        Some(old)
    };

    // The key after the next one, durable before anything commits to it. One left by
    // a run that died before the store rotated is reused; one left after the files
    // moved (it is then today's next key, or the current one) never is: the fleet
    // would be committed to a key the thief of the release key also holds.
    let after_path = with_suffix(&next_path, ".new");
    let reusable = |key: &SigningKey| key.key_id() != next.key_id() && key.key_id() != current.key_id();
    let after = match after_path.exists() {
        true => match SigningKey::load(&after_path) {
            Ok(key) if reusable(&key) => key,
            Ok(_) => {
                std::fs::remove_file(&after_path)
                    .with_context(|| format!("cannot remove the stale {}", after_path.display()))?;
                fresh_key(&after_path)?
            }
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "{} is left by an earlier run but unreadable: move it away",
                    after_path.display()
                )));
            }
        },
        false => fresh_key(&after_path)?,
    };
    let store = Store::open_or_create(&args.store)
        .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    let rotation = store.rotate(
        current.raw(),
        next.public_key().raw(),
        commitment(&after.public_key()),
        &next,
        |statement| {
            let mut signatures =
                vec![RotationSignature { key_id: next.key_id(), signature: next.sign_rotation(statement) }];
            if let Some(old) = &old {
                signatures.push(RotationSignature {
                    key_id: old.key_id(),
                    signature: old.sign_rotation(statement),
                });
            }
            signatures
        },
        SystemTime::now(),
    )?;
    let number = rotation.statement.number;
    // The store has rotated: a failure from here on leaves the files to finish by hand.
    let finish = || {
        format!(
            "the store rotated to key {} (rotation {number}), but moving the key files failed: put {} in place of {}, {} as {}, and rewrite {} (`fts log --keys` shows the rotation)",
            next.key_id(),
            next_path.display(),
            signing_path.display(),
            after_path.display(),
            next_path.display(),
            pub_path.display()
        )
    };

    if let Some(old) = &old {
        old.save(&with_suffix(&signing_path, &format!(".retired-{number}")), true).with_context(finish)?;
    }
    next.save(&signing_path, true).with_context(finish)?;
    after.save(&next_path, true).with_context(finish)?;
    std::fs::remove_file(&after_path).with_context(finish)?;
    write_trust_file(
        &pub_path,
        &next.public_key(),
        &NextKey { next: commitment(&after.public_key()), rotation: number },
        true,
    )
    .with_context(finish)?;

    let kind = if old.is_some() {
        "planned (signed by both keys)"
    } else {
        "recovery (signed by the next key alone)"
    };
    println!("rotated the release key: rotation {number}, {kind}");
    println!("  retired key {} signs only what the log holds below this rotation", current.key_id());
    println!("  release key now {} ({})", next.key_id(), signing_path.display());
    println!(
        "  new next key {} in {}: move it offline, apart from {}",
        after.key_id(),
        next_path.display(),
        signing_path.display()
    );
    println!(
        "  {} is the trust file for hosts enrolled from now on; hosts that have the old one follow the rotation by themselves",
        pub_path.display()
    );
    Ok(())
}

/// A new key, saved at `path` (0600) before it is used.
fn fresh_key(path: &Path) -> anyhow::Result<SigningKey> {
    let key = SigningKey::generate()?;
    key.save(path, true)?;
    Ok(key)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
