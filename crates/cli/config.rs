//! The settings of each command, resolved from its flags: ripgrep's "high args" over
//! the "low args" of [`crate::args`].
//!
//! Two steps, each in one place:
//!
//! 1. [`parse_layered`] ([`layering`]): the command line, the `FTS_*` environment and
//!    the config file, layered (flag, then environment, then file, then default) and
//!    parsed once by clap into [`crate::args::Cli`]. Every value is typed there
//!    already; a wrong one is a usage error naming the flag (or the key and the file).
//! 2. One resolution per command, turning its raw flags into what the libraries take
//!    ([`fts_net::server::ServerSettings`], [`fts_net::client::ClientSettings`],
//!    fts-trust's keygen options...), with the defaults that depend on other flags
//!    (`certs/ID.crt` from `--id`, `ca.crl` beside `--client-ca`, the CA folder beside
//!    `--signing-key`, the state file beside the file `fts verify-installed` checks)
//!    and the checks that span several flags. [`Serve`], [`Poll`], [`Publish`],
//!    [`Keygen`], [`VerifyInstalled`]. `fts status`, `fts log` and `fts completions`
//!    take their flags as they are: nothing in them depends on another.
//!
//! The command modules (`serve.rs`, `poll.rs`, ...) only run what is resolved here.

use std::path::Path;

mod keygen;
mod layering;
mod poll;
mod publish;
mod serve;
mod timestamp;
mod verify_installed;

pub use crate::timestamp::Timestamp;
pub use keygen::Keygen;
pub use layering::{ConfigError, ParseFailure, command, parse_layered};
pub use poll::Poll;
pub use publish::{Publish, TargetLists};
pub use serve::{Serve, TlsFiles};
pub use verify_installed::VerifyInstalled;

/// A key that is not the certificate's, with both files named (`fts poll`'s `--cert` and
/// `--key`, `fts serve`'s).
pub fn key_mismatch_names_files(e: fts_trust::Error, cert: &Path, key: &Path) -> anyhow::Error {
    let mismatch = matches!(e, fts_trust::Error::KeyMismatch);
    let e = anyhow::Error::new(e);
    if mismatch {
        e.context(format!("cannot use --cert {} with --key {}", cert.display(), key.display()))
    } else {
        e
    }
}
