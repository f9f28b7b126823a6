//! `fts publish`: the file name on the hosts (`--as`, or the file's own name),
//! where the targets are checked against (the CA folder, by default the one of
//! `--signing-key`), and whether it only says what it would do (`--dry-run`).

use std::path::{Path, PathBuf};

use fts_proto::{FileName, Target};
use fts_store::Note;

use crate::UsageError;
use crate::args::PublishArgs;

/// What `fts publish` is to do.
pub struct Publish {
    pub file: PathBuf,
    pub file_name: FileName,
    pub targets: Vec<Target>,
    pub store: PathBuf,
    pub signing_key: PathBuf,
    /// `None` with `--allow-unknown-target`.
    pub target_check: Option<TargetLists>,
    /// `--dry-run`: check and say, sign and write nothing.
    pub dry_run: bool,
    /// `--note`, already checked (one printable line, bounded).
    pub note: Option<Note>,
    /// `--log-origin`: the log's name for a store without a log yet.
    pub log_origin: Option<fts_proto::checkpoint::Origin>,
}

/// Where the targets a host can have are listed.
pub struct TargetLists {
    /// The CA folder whose issued index lists the client ids and groups.
    pub ca_dir: PathBuf,
    /// `--known-targets`: more targets, one per line.
    pub known_targets: Option<PathBuf>,
}

impl Publish {
    pub fn resolve(args: PublishArgs) -> Result<Self, UsageError> {
        let file_name = match args.name {
            Some(name) => name,
            None => own_name(&args.file)?,
        };
        let target_check = (!args.allow_unknown_target).then(|| TargetLists {
            ca_dir: args.ca_dir.unwrap_or_else(|| parent_dir(&args.signing_key)),
            known_targets: args.known_targets,
        });
        Ok(Publish {
            file: args.file,
            file_name,
            targets: args.targets,
            store: args.store,
            signing_key: args.signing_key,
            target_check,
            dry_run: args.dry_run,
            note: args.note,
            log_origin: args.log_origin,
        })
    }
}

/// The file's own name, which must be a valid file name on the hosts.
fn own_name(file: &Path) -> Result<FileName, UsageError> {
    let own = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    FileName::parse(&own)
        .map_err(|e| UsageError::because("the file's own name (choose another with --as NAME)", e))
}

/// The folder holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_folder_defaults_to_the_folder_of_the_signing_key() {
        assert_eq!(parent_dir(Path::new("offline/signing.key")), PathBuf::from("offline"));
        assert_eq!(parent_dir(Path::new("signing.key")), PathBuf::from("."));
    }

    #[test]
    fn the_file_name_defaults_to_the_files_own_name() {
        assert_eq!(own_name(Path::new("dir/fix.sh")).unwrap().as_str(), "fix.sh");
        assert!(own_name(Path::new("/")).unwrap_err().to_string().contains("--as NAME"));
    }
}
