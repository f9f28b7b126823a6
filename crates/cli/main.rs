//! The `fts` binary. `main` only parses (flags, environment, config file: [`config`]),
//! sets up logging, resolves the command's settings ([`config`]) and dispatches to one
//! module per command, prints `fts: error: ...` (a JSON line with `--log-format json`,
//! [`stderr_line`]) and picks the exit code ([`exit`]).
// One `unsafe` call in all of fts: `mallopt` in [`malloc_arenas`], allowed there alone.
#![deny(unsafe_code)]

mod args;
mod completions;
mod config;
mod fd_limit;
mod gc;
mod keygen;
mod log;
mod log_admin;
mod log_keys;
mod log_origin;
mod log_writer;
mod malloc_arenas;
mod poll;
mod publish;
mod publisher;
mod rotate;
mod serve;
mod status;
mod status_db;
mod status_verify;
mod stderr_line;
mod timestamp;
mod units;
mod verify_installed;
mod withdraw;

use std::process::ExitCode;

use args::{Cli, Command, LogAction, LogFormat, StatusDbCommand};
use fts_proto::ErrorChain;

/// Exit statuses, as scripts and systemd units rely on them (docs/OPERATIONS.md).
mod exit {
    /// Done, nothing to report.
    pub const SUCCESS: u8 = 0;
    /// The command failed (connection, TLS, a file that could not be read ...).
    pub const FAILURE: u8 = 1;
    /// The command line, environment or config file is wrong.
    pub const USAGE: u8 = 2;
    /// `poll --once` completed, but something about an entry was reported.
    pub const REPORTED: u8 = 3;
    /// `verify-installed`: the file is not (provably) the one fts installed.
    pub const MISMATCH: u8 = 3;
    /// `poll --once`: a log alarm is raised (stale, withheld, fork, clock, behind).
    pub const ALARM: u8 = 4;
}

/// A mistake in how fts was called, as opposed to a failure while running: exit 2.
/// The message says what is wrong with the call; a lower error that found it (a name
/// that breaks the rules) is its source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct UsageError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl UsageError {
    /// A usage error found by fts's own checks.
    pub fn new(message: impl Into<String>) -> Self {
        UsageError { message: message.into(), source: None }
    }

    /// A usage error found by a lower check, whose error is the cause.
    pub fn because(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        UsageError { message: message.into(), source: Some(Box::new(source)) }
    }
}

fn main() -> ExitCode {
    let cli = match config::parse_layered(std::env::args_os()) {
        Ok(cli) => cli,
        Err(failure) => return parse_failure(*failure),
    };
    stderr_line::set_format(cli.log_format);
    // The long-running commands narrate at `info`; the one-shot ones print their
    // result on stdout and log only what goes wrong.
    let default_level = match cli.command {
        Command::Serve(_) | Command::Poll(_) => "info",
        _ => "warn",
    };
    // Lives until main returns: dropping it writes what is still queued.
    let _log = init_logging(cli.log_format, default_level);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::from(exit::SUCCESS), // `fts status | head`
        Err(err) => {
            stderr_line::error(&one_line(&err));
            if err.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(exit::USAGE)
            } else {
                ExitCode::from(exit::FAILURE)
            }
        }
    }
}

/// Resolves the command's settings ([`config`]), then runs it.
fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Keygen(command) => keygen::run(config::Keygen::resolve(command))?,
        Command::Publish(args) => publish::run(config::Publish::resolve(args)?)?,
        Command::Withdraw(args) => withdraw::run(args)?,
        Command::Gc(args) => gc::run(&args)?,
        Command::Serve(args) => serve::run(config::Serve::resolve(args)?)?,
        Command::Status(args) => return status::run(args),
        Command::StatusDb(StatusDbCommand::Migrate(args)) => status_db::migrate(&args)?,
        Command::StatusDb(StatusDbCommand::Import(args)) => status_db::import(&args)?,
        Command::Log(args) => match args.action {
            None if args.keys => log_keys::run(&args)?,
            None => log::run(args)?,
            Some(LogAction::Init(args)) => log_admin::init(args)?,
            Some(LogAction::Verify(args)) => log_admin::verify(args)?,
        },
        Command::Timestamp(args) => timestamp::run(&config::Timestamp::resolve(args)?)?,
        Command::Completions(args) => completions::run(&args)?,
        Command::Poll(args) => return poll::run(config::Poll::resolve(args)?),
        Command::VerifyInstalled(args) => {
            return verify_installed::run(config::VerifyInstalled::resolve(args)?);
        }
    }
    Ok(exit::SUCCESS)
}

/// Prints why the command line, environment or config file could not be parsed, and
/// picks the exit code: clap's own (0 for `--help` and `--version`, 2 for usage
/// errors), 2 for a config file that is wrong.
fn parse_failure(failure: config::ParseFailure) -> ExitCode {
    let format = stderr_line::requested_format(&failure.argv);
    stderr_line::set_format(format);
    match failure.error {
        config::ConfigError::Clap(err) => {
            use clap::error::ErrorKind;
            let code = ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(exit::USAGE));
            if !err.use_stderr() {
                let _ = err.print();
            } else if format == LogFormat::Json {
                stderr_line::error(err.render().to_string().trim_end());
            } else if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = err.print();
            } else {
                // clap's `error: ...` (in colour on a terminal) as one of ours.
                eprint!("fts: ");
                let _ = err.print();
            }
            code
        }
        err => {
            stderr_line::error(&one_line(&anyhow::Error::new(err)));
            ExitCode::from(exit::USAGE)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, outermost first, `: ` between them
/// ([`ErrorChain`]): every error says its own part only, so nothing is repeated, and
/// two causes that happen to read the same are both printed.
fn one_line(err: &anyhow::Error) -> String {
    ErrorChain(err.as_ref()).to_string()
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `default_level`), as text or
/// one JSON object per line, through a bounded queue and a writer thread
/// ([`log_writer`]): logging never waits for stderr's reader, and lines that find
/// the queue full are dropped and counted. The guard flushes the queue when dropped.
fn init_logging(format: LogFormat, default_level: &str) -> Option<log_writer::LogGuard> {
    use std::io::IsTerminal;
    use std::os::fd::AsFd;
    use tracing_subscriber::fmt::writer::BoxMakeWriter;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let notice = |dropped: u64, total: u64| {
        tracing::warn!(dropped, total, "log lines were dropped: the log output did not keep up");
    };
    // The writer gets its own descriptor for stderr: a write that blocks there holds
    // no lock that `eprintln!` elsewhere needs.
    let sink: Box<dyn std::io::Write + Send> = match std::io::stderr().as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(std::fs::File::from(fd)),
        Err(_) => Box::new(std::io::stderr()),
    };
    let (writer, guard) = match log_writer::start(sink, log_writer::QUEUE_LINES, notice) {
        Some((queue, guard)) => (BoxMakeWriter::new(queue), Some(guard)),
        // No thread for the log: write in place, as a last resort.
        None => (BoxMakeWriter::new(std::io::stderr), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error that says only its own part, like every fts error.
    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        source: Option<std::io::Error>,
    }

    #[test]
    fn two_causes_that_read_the_same_are_both_printed() {
        // Before, a cause whose text was already on the line was dropped: here the
        // wrapper and the system error both say "timed out", and both happened.
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let err = anyhow::Error::new(Layer { text: "timed out", source: Some(io) })
            .context("cannot poll server.example:8443");
        assert_eq!(one_line(&err), "cannot poll server.example:8443: timed out: timed out");
    }

    #[test]
    fn each_cause_is_printed_once_outermost_first() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory (os error 2)");
        let err = anyhow::Error::new(Layer { text: "cannot read certs/signing.pub", source: Some(io) })
            .context("loading the trusted signing keys (--trust)");
        assert_eq!(
            one_line(&err),
            "loading the trusted signing keys (--trust): cannot read certs/signing.pub: No such file or \
             directory (os error 2)"
        );
        let usage = anyhow::Error::new(UsageError::new("--min-interval is longer than --max-interval"));
        assert_eq!(one_line(&usage), "--min-interval is longer than --max-interval");
    }
}
