//! `fts verify-installed FILE`: whether FILE is the file `fts poll` installed under its
//! name, checked against what the poll recorded in its state when it installed it:
//! the signed statement (target, seq, name, size, SHA-256, published time), the key
//! id and the signature. For a root installer that must not take the `fts` user's
//! word for it: that user can write the destination and the state file, but cannot
//! sign a statement, so a changed file, or a changed file with a changed record,
//! fails here.
//!
//! Checks, in order, each failure a one-line reason on stderr and exit 3
//! ([`crate::exit::MISMATCH`]): the name is one fts installs and the state records it
//! as installed; FILE is a regular file (opened without following a link); its size
//! and SHA-256 are the record's; the record's signature verifies over the statement
//! with a trusted key (`--trust`). A record written before records kept signatures
//! (an older fts) cannot pass: only its hash is checked, and that is said. Exit 1 when
//! the check cannot be made at all (FILE, the state or a key cannot be read).
//!
//! What it does not prove: that FILE is the newest publication of its name. The state
//! says which one was installed, and its owner could put back an older genuine one
//! with its genuine record; compare the seq and time printed with `fts log`.

use std::fs::File;
use std::path::Path;

use anyhow::Context;
use fts_fs::{Dir, FileKind, FsError};
use fts_net::client::state::{Installed, State};
use fts_proto::{FileHash, FileName, KeyId, NameError};
use fts_trust::{TrustedKeys, VerifyError};
use sha2::{Digest, Sha256};

use crate::config::VerifyInstalled;
use crate::{exit, stderr_line};

/// Why FILE is not (provably) the file that was installed.
#[derive(Debug, thiserror::Error)]
enum Mismatch {
    #[error("fts never installs a file of this name")]
    NotAName(#[source] NameError),
    #[error("no file of this name is recorded as installed in {state}")]
    NotRecorded { state: String },
    #[error("it is a symbolic link: fts installs regular files only, and does not follow it")]
    Link,
    #[error("it is {found}, not a regular file")]
    NotAFile { found: FileKind },
    #[error("it has {found} bytes, the file installed had {recorded}: it changed since it was installed")]
    Size { found: u64, recorded: u64 },
    #[error("its SHA-256 is {found}, the file installed had {recorded}: it changed since it was installed")]
    Hash { found: FileHash, recorded: FileHash },
    #[error(
        "its SHA-256 matches the record in {state}, but the record predates signed records (an older fts \
         installed the file), so its signature cannot be checked; it can be once fts installs a new \
         publication of the file"
    )]
    Unsigned { state: String },
    #[error("the record in {state} names key {key_id}, which is not among the trusted keys (--trust)")]
    UntrustedKey { state: String, key_id: KeyId },
    #[error(
        "the signature recorded in {state} does not verify with trusted key {key_id}: the record was \
         changed after the install"
    )]
    BadSignature { state: String, key_id: KeyId },
}

pub fn run(args: VerifyInstalled) -> anyhow::Result<u8> {
    match verify(&args)? {
        Ok(installed) => {
            println!(
                "{}: genuine: {} bytes, {}, {} seq {}, published {}, signed by trusted key {}",
                args.file.display(),
                installed.file_size.unwrap_or_default(),
                installed.file_hash,
                installed.target,
                installed.seq,
                installed.published,
                installed.key_id.map(|k| k.to_string()).unwrap_or_default()
            );
            Ok(exit::SUCCESS)
        }
        Err(mismatch) => {
            let reason = fts_proto::ErrorChain(&mismatch);
            stderr_line::warn(&format!("{} is not the file fts installed: {reason}", args.file.display()));
            Ok(exit::MISMATCH)
        }
    }
}

/// The record FILE matches, or why it does not; an error when the check cannot be made.
fn verify(args: &VerifyInstalled) -> anyhow::Result<Result<Installed, Mismatch>> {
    let file_path = &args.file;
    let own = file_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match FileName::parse(&own) {
        Ok(name) => name,
        Err(e) => return Ok(Err(Mismatch::NotAName(e))),
    };
    let state_name = args.state.display().to_string();
    let state = load_state(&args.state)?;
    let Some(installed) = state.installed.get(&name) else {
        return Ok(Err(Mismatch::NotRecorded { state: state_name }));
    };

    let dir = Dir::open(fts_fs::parent_dir(file_path))
        .with_context(|| format!("cannot open the folder of {}", file_path.display()))?;
    let file = match dir.open_file(name.as_str()) {
        Ok(file) => file,
        Err(FsError::SymbolicLink { .. }) => return Ok(Err(Mismatch::Link)),
        Err(FsError::WrongKind { found, .. }) => return Ok(Err(Mismatch::NotAFile { found })),
        Err(e) => return Err(anyhow::Error::new(e)),
    };
    let (found_hash, found_size) = hash(file, file_path)?;
    if let Some(recorded) = installed.file_size.filter(|&size| size != found_size) {
        return Ok(Err(Mismatch::Size { found: found_size, recorded }));
    }
    if found_hash != installed.file_hash {
        return Ok(Err(Mismatch::Hash { found: found_hash, recorded: installed.file_hash }));
    }
    Ok(check_signature(installed, &name, &args.trusted, state_name).map(|()| installed.clone()))
}

/// The signature the record keeps, over the statement it rebuilds, by a trusted key.
fn check_signature(
    installed: &Installed,
    name: &FileName,
    trusted: &TrustedKeys,
    state: String,
) -> Result<(), Mismatch> {
    let Some((statement, key_id, signature)) = installed.statement(name) else {
        return Err(Mismatch::Unsigned { state });
    };
    match trusted.verify(statement, &key_id, &signature) {
        Ok(_) => Ok(()),
        // Without the log's positions, a retired key is not trusted here.
        Err(VerifyError::UntrustedKey { key_id } | VerifyError::RetiredKey { key_id, .. }) => {
            Err(Mismatch::UntrustedKey { state, key_id })
        }
        Err(VerifyError::BadSignature { key_id }) => Err(Mismatch::BadSignature { state, key_id }),
    }
}

/// The host's state; a missing one is an error here (for `fts poll` it is a fresh
/// host): there is nothing to check against.
fn load_state(path: &Path) -> anyhow::Result<State> {
    let name = path.file_name().unwrap_or_default();
    let dir = Dir::open(fts_fs::parent_dir(path))
        .with_context(|| format!("cannot open the folder of the state file {}", path.display()))?;
    match dir.stat(name) {
        Ok(_) => {}
        Err(e) if e.is_not_found() => anyhow::bail!(
            "there is no state file {}: name the state of the `fts poll` that installed the file with \
             --state (by default .fts-state.json beside the file)",
            path.display()
        ),
        Err(e) => return Err(anyhow::Error::new(e)),
    }
    State::load_in(&dir, name).context("cannot read the host's state")
}

/// The SHA-256 of the whole file, and its length, read once.
fn hash(mut file: File, path: &Path) -> anyhow::Result<(FileHash, u64)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; fts_fs::stream::CHUNK];
    let mut size = 0u64;
    loop {
        match fts_fs::stream::read_full(&mut file, &mut buffer) {
            Ok(0) => return Ok((FileHash::from_digest(hasher.finalize().into()), size)),
            Ok(n) => {
                hasher.update(&buffer[..n]);
                size += n as u64;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", path.display()))),
        }
    }
}
