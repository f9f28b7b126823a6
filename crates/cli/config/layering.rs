//! Configuration layering: flag, then `FTS_*` environment variable, then the TOML file
//! named by `--config` (or `FTS_CONFIG`), then the default.
//!
//! clap stays the one place where flags are defined, and it parses once. It reads
//! flags and the environment itself; the config file is read *before* that parse:
//! `--config`/`FTS_CONFIG` and the command that runs are peeked from the command line
//! ([`config_path`], [`invoked_command`]), and every key of the file whose flag is
//! neither on the command line nor in the environment is appended as `--key=value`.
//! So a value from the file goes through exactly the parser, checks and conflicts of
//! the flag it stands for, a flag the file supplies satisfies clap's `required`, and
//! nothing is declared twice. A parse error caused by a value from the file names the
//! key and the file ([`ConfigError::Rejected`]).
//!
//! A config file has one table per command (`[keygen]`, `[publish]`, `[serve]`,
//! `[poll]`, `[status]`, ...), keys named like the long flags. A command may also take
//! some keys from another command's section when its own does not set them
//! ([`BORROWED`]: `fts verify-installed` reads `state` and `trust` from `[poll]`). The
//! global flags
//! (`--log-format`) may also stand at the top, before any section, for every command;
//! a key of the command's section wins over the same key at the top. An unknown section
//! or key is an error naming it and the file: a typo must not silently fall back to a
//! default. A bare TOML integer for a duration or a size is refused: `interval = 5`
//! could mean anything, `interval = "5s"` cannot.

use std::any::TypeId;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, CommandFactory, FromArgMatches};

use crate::args::Cli;
use crate::units::{Rate, Size};

/// Why the command line, environment and config file could not be turned into a
/// command. `Clap` carries clap's own errors (usage, `--help`, `--version`), which know
/// their exit code and how to print themselves; every other one is a usage error
/// (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML. `message` is toml's own description of the mistake
    /// (without its excerpt of the file, which the line and column replace): a leaf.
    #[error("config file {path} is not valid TOML: line {line}, column {column}: {message}")]
    Syntax { path: PathBuf, line: usize, column: usize, message: String },
    #[error("unknown section [{section}] in config file {path} (sections: {known})")]
    UnknownSection { path: PathBuf, section: String, known: String },
    #[error("`{name}` in config file {path} must be a section, [{name}], not a value")]
    NotASection { path: PathBuf, name: String },
    #[error("key `{key}` is outside any section of config file {path}: {hint}")]
    OutsideSection { path: PathBuf, key: String, hint: String },
    #[error("unknown key `{key}` {place} of config file {path}")]
    UnknownKey { path: PathBuf, place: Place, key: String },
    #[error("key `{key}` {place} of config file {path} must be {expected}")]
    BadValue { path: PathBuf, place: Place, key: String, expected: &'static str },
    #[error("key `{key}` {place} of config file {path} needs a unit: write {key} = \"{example}\" ({units})")]
    NeedsUnit { path: PathBuf, place: Place, key: String, example: String, units: &'static str },
    /// clap refused a value (or a combination) that came from the file. `message` is
    /// clap's first paragraph, reworded to name the key instead of the flag: a leaf.
    #[error("key `{key}` {place} of config file {path}: {message}")]
    Rejected { path: PathBuf, place: Place, key: String, message: String },
}

/// Where a key stands in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// Before any section (global flags only).
    Top,
    Section(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Top => f.write_str("at the top level"),
            Place::Section(name) => write!(f, "in [{name}]"),
        }
    }
}

/// A command line that could not be parsed, with the arguments as far as the config
/// file made them (they say which `--log-format` the error is to be printed in).
#[derive(Debug)]
pub struct ParseFailure {
    pub error: ConfigError,
    pub argv: Vec<OsString>,
}

/// The environment variable that can set a flag: `FTS_` + the long name in upper case
/// with dashes as underscores.
pub fn env_name(long: &str) -> String {
    format!("FTS_{}", long.to_ascii_uppercase().replace('-', "_"))
}

/// The clap command with an `FTS_*` environment variable on every long flag, all the
/// way down the subcommand tree.
pub fn command() -> clap::Command {
    with_env_vars(Cli::command())
}

fn with_env_vars(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| match arg.get_long().map(env_name) {
        Some(name) if !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version) => arg.env(name),
        _ => arg,
    })
    .mut_subcommands(with_env_vars)
}

/// Parses `argv` once, with the environment and the config file layered in.
pub fn parse_layered<I, T>(argv: I) -> Result<Cli, Box<ParseFailure>>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let cmd = command();
    let injected = match inject_config_file(&cmd, &mut argv) {
        Ok(injected) => injected,
        Err(error) => return Err(Box::new(ParseFailure { error, argv })),
    };
    match cmd.try_get_matches_from(&argv).and_then(|matches| Cli::from_arg_matches(&matches)) {
        Ok(cli) => Ok(cli),
        Err(err) => {
            let error = match injected.as_ref().and_then(|injected| injected.blame(&err)) {
                Some(from_file) => from_file,
                None => ConfigError::Clap(err),
            };
            Err(Box::new(ParseFailure { error, argv }))
        }
    }
}

/// Reads the config file, if one is named, and appends its arguments to `argv`.
fn inject_config_file(
    cmd: &clap::Command,
    argv: &mut Vec<OsString>,
) -> Result<Option<Injected>, ConfigError> {
    let Some(path) = config_path(argv) else { return Ok(None) };
    // No command (a mistake, or `--help`/`--version`): clap answers, no file is read.
    let Some(invoked) = invoked_command(cmd, argv) else { return Ok(None) };
    let file = ConfigFile::read(&path)?;
    match file.check(cmd).and_then(|()| file.arguments(cmd, &invoked, argv, Keys::All)) {
        Ok(injected) => {
            append(argv, &injected.args);
            Ok(Some(injected))
        }
        Err(err) => {
            // The file's `log-format`, for the message about the rest of it.
            if let Ok(globals) = file.arguments(cmd, &invoked, argv, Keys::Global) {
                append(argv, &globals.args);
            }
            Err(err)
        }
    }
}

/// Appends flags to `argv`, before a `--` separator if there is one: they must stay
/// flags.
fn append(argv: &mut Vec<OsString>, args: &[OsString]) {
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.splice(at..at, args.iter().cloned());
}

/// Keys a command takes from another command's section when its own section does not
/// set them: (command, section, keys). `fts verify-installed` checks what `fts poll`
/// installed, against that poll's state file with that poll's trusted keys, so the
/// poll's config file names them once for both; a `[verify-installed]` key still wins.
const BORROWED: &[(&str, &str, &[&str])] = &[("verify-installed", "poll", &["state", "trust"])];

/// Which keys of the file [`ConfigFile::arguments`] turns into flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keys {
    All,
    /// Those of the global flags only.
    Global,
}

/// The words of the command line before a `--` separator (the program name left out).
fn options(argv: &[OsString]) -> impl Iterator<Item = &OsStr> {
    argv.iter().skip(1).map(OsString::as_os_str).take_while(|w| *w != "--")
}

/// The value of `--config FILE` / `--config=FILE` (the last one), else `FTS_CONFIG`.
fn config_path(argv: &[OsString]) -> Option<PathBuf> {
    let mut words = options(argv);
    let mut found = None;
    while let Some(word) = words.next() {
        if word == "--config" {
            found = words.next().map(PathBuf::from);
        } else if let Some(value) = word.as_bytes().strip_prefix(b"--config=") {
            found = Some(PathBuf::from(OsStr::from_bytes(value)));
        }
    }
    found.or_else(|| std::env::var_os(env_name("config")).map(PathBuf::from))
}

/// The command that `argv` runs, from its section (`keygen`) down to the one that
/// runs (`keygen client`). Before a command name only the global options can come
/// (`--config FILE`, `--log-format json`); anything else, and a help flag anywhere,
/// means there is nothing to layer the file into.
fn invoked_command<'a>(root: &'a clap::Command, argv: &[OsString]) -> Option<Vec<&'a clap::Command>> {
    let mut path = Vec::new();
    let mut current = root;
    let mut words = options(argv);
    while let Some(word) = words.next() {
        let word = word.to_str()?;
        if let Some(flag) = word.strip_prefix("--") {
            let (name, inline_value) = flag.split_once('=').map_or((flag, false), |(name, _)| (name, true));
            let arg = global_arg(root, name)?;
            if !inline_value && arg.get_action().takes_values() {
                words.next();
            }
            continue;
        }
        if word.starts_with('-') {
            return None;
        }
        current = current.find_subcommand(word)?;
        path.push(current);
        if current.get_subcommands().next().is_none() {
            let mut rest = words;
            return (!rest.any(|w| w == "-h" || w == "--help")).then_some(path);
        }
    }
    None
}

/// A global flag (`--log-format`, `--config`) by its long name.
fn global_arg<'a>(root: &'a clap::Command, long: &str) -> Option<&'a Arg> {
    root.get_arguments().find(|a| a.is_global_set() && a.get_long() == Some(long))
}

/// A global flag that a config file may set: all but `--config` itself.
fn global_key<'a>(root: &'a clap::Command, key: &str) -> Option<&'a Arg> {
    global_arg(root, key).filter(|_| key != "config")
}

/// Whether `long` is a flag of `cmd` or of one of its subcommands.
fn has_long(cmd: &clap::Command, long: &str) -> bool {
    cmd.get_arguments().any(|a| a.get_long() == Some(long))
        || cmd.get_subcommands().any(|sub| has_long(sub, long))
}

/// Whether the flag `--long` is on the command line (every flag is long only).
fn on_command_line(argv: &[OsString], long: &str) -> bool {
    let flag = format!("--{long}");
    options(argv).any(|word| {
        let word = word.as_bytes();
        word == flag.as_bytes()
            || word.strip_prefix(flag.as_bytes()).is_some_and(|rest| rest.first() == Some(&b'='))
    })
}

/// For a flag whose value is a duration or a size, what a bare number would have
/// meant on the command line (its unit) and the units there are.
fn unit_needed(arg: &Arg) -> Option<(&'static str, &'static str)> {
    let kind = arg.get_value_parser().type_id();
    if kind == TypeId::of::<Duration>() {
        Some(("s", "a duration: ms, s, m, h or d"))
    } else if kind == TypeId::of::<Size>() {
        Some(("B", "a size: B, KiB, MiB, GiB, TiB, kB, MB, GB or TB"))
    } else if kind == TypeId::of::<Rate>() {
        Some(("B/s", "a rate: a size per second, B/s, KiB/s, MiB/s, GiB/s, kB/s, MB/s or GB/s"))
    } else {
        None
    }
}

/// A parsed config file.
struct ConfigFile {
    path: PathBuf,
    table: toml::Table,
}

impl ConfigFile {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let table = text.parse::<toml::Table>().map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |span| line_and_column(&text, span.start));
            ConfigError::Syntax { path: path.to_owned(), line, column, message: e.message().to_owned() }
        })?;
        Ok(ConfigFile { path: path.to_owned(), table })
    }

    /// Checks every section and key, not only those of the command that runs, so that
    /// a typo in a file shared by several commands shows up at the first run of any.
    fn check(&self, root: &clap::Command) -> Result<(), ConfigError> {
        let path = || self.path.clone();
        let sections = || root.get_subcommands().map(|c| format!("[{}]", c.get_name())).collect::<Vec<_>>();
        for (name, value) in &self.table {
            match (root.find_subcommand(name), value) {
                (Some(section), toml::Value::Table(keys)) => {
                    let known = |key: &str| global_key(root, key).is_some() || has_long(section, key);
                    if let Some(key) = keys.keys().find(|key| !known(key)) {
                        let place = Place::Section(name.clone());
                        return Err(ConfigError::UnknownKey { path: path(), place, key: key.clone() });
                    }
                }
                (Some(_), _) => return Err(ConfigError::NotASection { path: path(), name: name.clone() }),
                (None, toml::Value::Table(_)) => {
                    let known = sections().join(", ");
                    return Err(ConfigError::UnknownSection { path: path(), section: name.clone(), known });
                }
                (None, _) if global_key(root, name).is_some() => {}
                (None, _) => {
                    let homes: Vec<String> = root
                        .get_subcommands()
                        .filter(|c| has_long(c, name))
                        .map(|c| format!("[{}]", c.get_name()))
                        .collect();
                    let hint = if name == "config" {
                        "a config file cannot name another one".to_owned()
                    } else if homes.is_empty() {
                        let globals: Vec<&str> = root
                            .get_arguments()
                            .filter_map(|a| a.get_long().filter(|l| global_key(root, l).is_some()))
                            .collect();
                        format!(
                            "no command has a flag --{name}; the sections are {}, and only {} may stand \
                             outside them",
                            sections().join(", "),
                            globals.join(", ")
                        )
                    } else {
                        format!("put it in the section of its command: {}", or_list(&homes))
                    };
                    return Err(ConfigError::OutsideSection { path: path(), key: name.clone(), hint });
                }
            }
        }
        Ok(())
    }

    /// The `--key=value` arguments that the file contributes to the command `invoked`
    /// (from its section down to the one that runs).
    fn arguments(
        &self,
        root: &clap::Command,
        invoked: &[&clap::Command],
        argv: &[OsString],
        which: Keys,
    ) -> Result<Injected, ConfigError> {
        let mut injected = Injected { path: self.path.clone(), keys: Vec::new(), args: Vec::new() };
        let (Some(section), Some(leaf)) = (invoked.first(), invoked.last()) else { return Ok(injected) };
        let keys = self.table.get(section.get_name()).and_then(toml::Value::as_table);

        // The top level holds global flags only ([`Self::check`]); the section wins.
        for (key, value) in &self.table {
            if value.is_table() || keys.is_some_and(|keys| keys.contains_key(key)) {
                continue;
            }
            if let Some(arg) = global_key(root, key) {
                injected.add(arg, Place::Top, key, value, argv)?;
            }
        }
        for (key, value) in keys.into_iter().flatten() {
            let arg = match which {
                Keys::All => {
                    leaf.get_arguments().find(|a| a.get_long() == Some(key)).or_else(|| global_key(root, key))
                }
                Keys::Global => global_key(root, key),
            };
            // A key of another keygen subcommand (`crl-days` while running `keygen ca`)
            // is valid in the section but means nothing to this one.
            let Some(arg) = arg else { continue };
            injected.add(arg, Place::Section(section.get_name().to_owned()), key, value, argv)?;
        }
        if which == Keys::All {
            self.borrow_keys(section.get_name(), leaf, keys, argv, &mut injected)?;
        }
        Ok(injected)
    }

    /// Adds the keys [`BORROWED`] from another section, those the command's own
    /// section (`own`) leaves out.
    fn borrow_keys(
        &self,
        command: &str,
        leaf: &clap::Command,
        own: Option<&toml::Table>,
        argv: &[OsString],
        injected: &mut Injected,
    ) -> Result<(), ConfigError> {
        for (_, from, keys) in BORROWED.iter().filter(|(borrower, _, _)| *borrower == command) {
            let Some(lender) = self.table.get(*from).and_then(toml::Value::as_table) else { continue };
            for key in keys.iter().filter(|key| !own.is_some_and(|own| own.contains_key(**key))) {
                let (Some(value), Some(arg)) =
                    (lender.get(*key), leaf.get_arguments().find(|a| a.get_long() == Some(key)))
                else {
                    continue;
                };
                injected.add(arg, Place::Section((*from).to_owned()), key, value, argv)?;
            }
        }
        Ok(())
    }
}

/// What the config file added to the command line.
#[derive(Debug)]
struct Injected {
    path: PathBuf,
    /// The keys it set, with where they stand.
    keys: Vec<(Place, String)>,
    args: Vec<OsString>,
}

impl Injected {
    /// Adds `key = value` as the flag `arg`, unless the command line or the
    /// environment sets that flag already.
    fn add(
        &mut self,
        arg: &Arg,
        place: Place,
        key: &str,
        value: &toml::Value,
        argv: &[OsString],
    ) -> Result<(), ConfigError> {
        let in_environment = arg.get_env().is_some_and(|name| std::env::var_os(name).is_some());
        if in_environment || on_command_line(argv, key) {
            return Ok(());
        }
        let bad_value = |expected| ConfigError::BadValue {
            path: self.path.clone(),
            place: place.clone(),
            key: key.to_owned(),
            expected,
        };
        let is_flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) if repeatable => items.iter().collect(),
            toml::Value::Array(_) => return Err(bad_value("a single value, not a list")),
            single => vec![single],
        };
        let mut args = Vec::new();
        for value in values {
            match (value, is_flag) {
                (toml::Value::Boolean(true), true) => args.push(format!("--{key}")),
                (toml::Value::Boolean(false), true) => {}
                (_, true) => return Err(bad_value("true or false")),
                (toml::Value::String(s), false) => args.push(format!("--{key}={s}")),
                (toml::Value::Integer(n), false) => match unit_needed(arg) {
                    Some((unit, units)) => {
                        return Err(ConfigError::NeedsUnit {
                            path: self.path.clone(),
                            place,
                            key: key.to_owned(),
                            example: format!("{n}{unit}"),
                            units,
                        });
                    }
                    None => args.push(format!("--{key}={n}")),
                },
                (toml::Value::Float(x), false) => args.push(format!("--{key}={x}")),
                (_, false) => return Err(bad_value("a string or a number")),
            }
        }
        self.args.extend(args.into_iter().map(OsString::from));
        self.keys.push((place, key.to_owned()));
        Ok(())
    }

    /// The config file's version of `err`, when a key from the file caused it: a value
    /// its flag's parser refused, or a conflict with another flag. A missing required
    /// flag is the command line's to report.
    fn blame(&self, err: &clap::Error) -> Option<ConfigError> {
        if err.kind() == ErrorKind::MissingRequiredArgument {
            return None;
        }
        let named: Vec<&str> = [ContextKind::InvalidArg, ContextKind::PriorArg]
            .into_iter()
            .filter_map(|kind| err.get(kind))
            .flat_map(|value| match value {
                ContextValue::String(s) => vec![s.as_str()],
                ContextValue::Strings(list) => list.iter().map(String::as_str).collect(),
                _ => Vec::new(),
            })
            .collect();
        let (place, key) =
            self.keys.iter().find(|(_, key)| named.iter().any(|shown| names_flag(shown, key)))?;
        let text = err.to_string();
        let text = text.strip_prefix("error: ").unwrap_or(&text);
        let message = text.split("\n\n").next().unwrap_or(text).trim_end().to_owned();
        Some(ConfigError::Rejected {
            path: self.path.clone(),
            place: place.clone(),
            key: key.clone(),
            message,
        })
    }
}

/// Whether clap's display of an argument (`--grace <DURATION>`) is the flag `--long`.
fn names_flag(shown: &str, long: &str) -> bool {
    shown
        .strip_prefix("--")
        .and_then(|rest| rest.strip_prefix(long))
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '=']))
}

/// The 1-based line and column (in characters) of byte `at` of `text`.
fn line_and_column(text: &str, at: usize) -> (usize, usize) {
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// `a`, `a or b`, `a, b or c`.
fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Command, KeygenCommand, LogFormat};

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    /// `fts --config FILE ARGS...` with `text` as the file.
    fn with_file(text: &str, args: &[&str]) -> (Result<Cli, Box<ParseFailure>>, tempfile::NamedTempFile) {
        let file = config_file(text);
        let mut argv = vec!["fts", "--config", file.path().to_str().unwrap()];
        argv.extend_from_slice(args);
        (parse_layered(argv), file)
    }

    /// The error of `fts --config FILE ARGS...`, and the file's path.
    fn file_error(text: &str, args: &[&str]) -> (ConfigError, String) {
        let (result, file) = with_file(text, args);
        let path = file.path().to_str().unwrap().to_owned();
        match result {
            Ok(cli) => panic!("parsed: {cli:?}"),
            Err(failure) => (failure.error, path),
        }
    }

    fn publish_store(cli: &Cli) -> PathBuf {
        match &cli.command {
            Command::Publish(p) => p.store.clone(),
            other => panic!("not publish: {other:?}"),
        }
    }

    #[test]
    fn the_definition_of_the_command_line_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn the_config_file_fills_in_what_the_command_line_leaves_out() {
        let file = config_file("[publish]\nstore = \"/srv/store\"\nto = [\"all\", \"group:web\"]\n");
        let path = file.path().to_str().unwrap();
        let cli = parse_layered(["fts", "--config", path, "publish", "f"]).unwrap();
        assert_eq!(publish_store(&cli), PathBuf::from("/srv/store"));
        let Command::Publish(p) = &cli.command else { unreachable!() };
        assert_eq!(p.targets.iter().map(ToString::to_string).collect::<Vec<_>>(), ["all", "group:web"]);

        let cli = parse_layered(["fts", "--config", path, "publish", "--store", "mine", "f"]).unwrap();
        assert_eq!(publish_store(&cli), PathBuf::from("mine"), "a flag wins over the file");
    }

    #[test]
    fn a_value_from_the_file_goes_through_the_flags_own_parser() {
        let (cli, _file) =
            with_file("[serve]\ngrace = \"5m\"\nplaintext = true\nmax-connections = 7\n", &["serve"]);
        let cli = cli.unwrap();
        let Command::Serve(s) = &cli.command else { unreachable!() };
        assert_eq!(s.grace, std::time::Duration::from_secs(300));
        assert!(s.plaintext);
        assert_eq!(s.max_connections.map(std::num::NonZeroUsize::get), Some(7));

        let (err, path) = file_error("[serve]\ngrace = \"soon\"\n", &["serve"]);
        let text = err.to_string();
        assert!(text.contains(&path) && text.contains("--grace"), "{text}");
        assert!(text.contains("key `grace` in [serve]"), "{text}");

        let (err, _) = file_error("[serve]\nmax-active-polls = 0\n", &["serve"]);
        assert!(err.to_string().contains("at least 1"), "a zero limit from the file too: {err}");
    }

    #[test]
    fn a_conflict_caused_by_the_file_names_its_key() {
        let (err, path) = file_error("[serve]\nplaintext = true\n", &["serve", "--tls"]);
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Rejected { .. }), "{err:?}");
        assert!(text.contains("key `plaintext` in [serve]") && text.contains(&path), "{text}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_key_and_the_file() {
        let (err, path) = file_error("[serve]\nlisten = \"127.0.0.1:1\"\nmax-conections = 5\n", &["serve"]);
        let err = err.to_string();
        assert!(err.contains("`max-conections`") && err.contains("[serve]") && err.contains(&path), "{err}");

        let (err, _) = file_error("[sevre]\n", &["serve"]);
        assert!(err.to_string().contains("[sevre]"), "{err}");
    }

    #[test]
    fn a_section_for_another_command_is_checked_but_not_applied() {
        let (err, _) = file_error(
            "[serve]\nstore = \"/a\"\n[publish]\nstore = \"/b\"\n[poll]\nbogus = 1\n",
            &["publish", "f"],
        );
        assert!(err.to_string().contains("`bogus`"), "every section is checked: {err}");

        let (cli, _file) = with_file(
            "[serve]\nstore = \"/a\"\n[publish]\nstore = \"/b\"\n",
            &["publish", "f", "--to", "all"],
        );
        assert_eq!(publish_store(&cli.unwrap()), PathBuf::from("/b"));
    }

    #[test]
    fn verify_installed_borrows_state_and_trust_from_the_poll_section() {
        let poll = "[poll]\nserver = \"h:1\"\nid = \"web-01\"\nstate = \"/var/lib/fts/state.json\"\n\
                    trust = [\"/etc/fts/a.pub\", \"/etc/fts/b.pub\"]\ndest = \"/var/lib/fts/incoming\"\n";
        let verify = |text: &str, args: &[&str]| {
            let (cli, _file) = with_file(text, args);
            match cli.unwrap().command {
                Command::VerifyInstalled(v) => (v.state, v.trust),
                other => panic!("{other:?}"),
            }
        };
        let (state, trust) = verify(poll, &["verify-installed", "x.deb"]);
        assert_eq!(state, Some(PathBuf::from("/var/lib/fts/state.json")));
        assert_eq!(trust, [PathBuf::from("/etc/fts/a.pub"), PathBuf::from("/etc/fts/b.pub")]);

        let own = format!("{poll}[verify-installed]\nstate = \"/root/state.json\"\n");
        let (state, trust) = verify(&own, &["verify-installed", "x.deb"]);
        assert_eq!(state, Some(PathBuf::from("/root/state.json")), "its own section wins");
        assert_eq!(trust.len(), 2, "and the rest is still borrowed");
        let (state, _) = verify(poll, &["verify-installed", "x.deb", "--state", "s.json"]);
        assert_eq!(state, Some(PathBuf::from("s.json")), "a flag wins over both");

        let (err, _) = file_error("[poll]\nstate = [\"a\", \"b\"]\n", &["verify-installed", "x.deb"]);
        assert!(err.to_string().contains("`state` in [poll]"), "a bad borrowed key names its section: {err}");
    }

    #[test]
    fn keygen_keys_apply_to_the_subcommand_that_has_them() {
        let (cli, _file) = with_file("[keygen]\ndir = \"/pki\"\nid = \"web-01\"\n", &["keygen", "ca"]);
        let cli = cli.unwrap();
        let Command::Keygen(KeygenCommand::Ca(ca)) = &cli.command else { unreachable!() };
        assert_eq!(ca.dir.dir, PathBuf::from("/pki"));
    }

    #[test]
    fn a_list_for_a_single_value_flag_is_refused() {
        let (err, _) = file_error("[publish]\nstore = [\"a\", \"b\"]\n", &["publish", "f"]);
        assert!(err.to_string().contains("single value"), "{err}");
    }

    #[test]
    fn without_config_no_file_is_read() {
        let cli = parse_layered(["fts", "publish", "f", "--to", "all"]).unwrap();
        assert_eq!(publish_store(&cli), PathBuf::from("store"));
    }

    #[test]
    fn a_required_flag_can_come_from_the_file() {
        let (cli, _file) =
            with_file("[poll]\nserver = \"fts.example.net:6543\"\nid = \"web-01\"\n", &["poll"]);
        let cli = cli.unwrap();
        let Command::Poll(p) = &cli.command else { unreachable!() };
        assert_eq!((p.server[0].host.as_str(), p.id.as_str()), ("fts.example.net", "web-01"));

        let err = parse_layered(["fts", "poll"]).unwrap_err().error;
        let ConfigError::Clap(err) = err else { panic!("{err:?}") };
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let (err, _) = file_error("[poll]\nserver = \"fts.example.net:6543\"\n", &["poll"]);
        assert!(
            matches!(&err, ConfigError::Clap(e) if e.kind() == ErrorKind::MissingRequiredArgument),
            "{err:?}"
        );
        assert!(err.to_string().contains("--id"), "{err}");
    }

    #[test]
    fn server_in_the_file_is_one_string_or_a_list() {
        let servers = |text: &str| {
            let (cli, _file) = with_file(text, &["poll"]);
            let Command::Poll(p) = cli.unwrap().command else { unreachable!() };
            p.server.into_iter().map(|s| s.address).collect::<Vec<_>>()
        };
        assert_eq!(servers("[poll]\nserver = \"a:1\"\nid = \"web-01\"\n"), ["a:1"]);
        assert_eq!(servers("[poll]\nserver = [\"a:1\", \"b:2\"]\nid = \"web-01\"\n"), ["a:1", "b:2"]);
        let (err, _) = file_error("[poll]\nserver = [\"a:1\", \"b\"]\nid = \"web-01\"\n", &["poll"]);
        assert!(err.to_string().contains("is not HOST:PORT"), "{err}");
    }

    #[test]
    fn a_toml_syntax_error_names_the_line_and_column() {
        let (err, path) = file_error("[poll]\ninterval = \"5s\"\njitter 10\n", &["poll"]);
        assert!(matches!(err, ConfigError::Syntax { line: 3, column: 8, .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains(&path) && text.contains("line 3, column 8"), "{text}");
    }

    #[test]
    fn a_bare_integer_for_a_duration_or_a_size_needs_a_unit() {
        let (err, path) = file_error("[poll]\ninterval = 5\n", &["poll"]);
        let text = err.to_string();
        assert!(matches!(err, ConfigError::NeedsUnit { .. }), "{err:?}");
        assert!(
            text.contains("`interval` in [poll]") && text.contains("\"5s\"") && text.contains(&path),
            "{text}"
        );

        let (err, _) = file_error("[poll]\nmax-file-size = 1048576\n", &["poll"]);
        assert!(err.to_string().contains("\"1048576B\""), "{err}");
        let (err, _) = file_error("[poll]\nmax-rate = 1048576\n", &["poll"]);
        assert!(err.to_string().contains("\"1048576B/s\"") && err.to_string().contains("a rate"), "{err}");
        let (err, path) =
            file_error("[poll]\nserver = \"h:1\"\nid = \"web-01\"\nmax-rate = \"10KiB/s\"\n", &["poll"]);
        let text = err.to_string();
        assert!(text.contains("key `max-rate` in [poll]") && text.contains(&path), "{text}");
        assert!(text.contains("below the lowest --max-rate, 64KiB/s"), "{text}");
        let (cli, _file) = with_file(
            "[poll]\nserver = \"h:1\"\nid = \"web-01\"\nmax-rate = \"8MiB/s\"\n[serve]\nmax-send-rate = \"1GiB/s\"\n",
            &["poll"],
        );
        let Command::Poll(p) = &cli.unwrap().command else { unreachable!() };
        assert_eq!(p.max_rate.map(Rate::bytes_per_second), Some(8 << 20));
        // A count stays a number; a duration with its unit is fine.
        let (cli, _file) = with_file(
            "[poll]\nserver = \"h:1\"\nid = \"web-01\"\ninterval = \"5m\"\njitter = 5\n",
            &["poll"],
        );
        let cli = cli.unwrap();
        let Command::Poll(p) = &cli.command else { unreachable!() };
        assert_eq!((p.interval, p.jitter), (Duration::from_secs(300), 5));
    }

    #[test]
    fn global_keys_may_stand_at_the_top_and_a_section_overrides_them() {
        let (cli, _file) = with_file("log-format = \"json\"\n[publish]\nto = \"all\"\n", &["publish", "f"]);
        assert_eq!(cli.unwrap().log_format, LogFormat::Json);
        let (cli, _file) = with_file(
            "log-format = \"json\"\n[publish]\nlog-format = \"text\"\n",
            &["publish", "f", "--to", "all"],
        );
        assert_eq!(cli.unwrap().log_format, LogFormat::Text);
        let (cli, _file) =
            with_file("log-format = \"json\"\n", &["--log-format", "text", "publish", "f", "--to", "all"]);
        assert_eq!(cli.unwrap().log_format, LogFormat::Text, "the flag wins");
    }

    #[test]
    fn a_command_key_outside_any_section_is_reported_with_its_sections() {
        let (err, path) = file_error("interval = \"5s\"\n[poll]\n", &["poll"]);
        let text = err.to_string();
        assert!(matches!(err, ConfigError::OutsideSection { .. }), "{err:?}");
        assert!(
            text.contains("`interval` is outside any section")
                && text.contains("[poll]")
                && text.contains(&path),
            "{text}"
        );

        let (err, _) = file_error("store = \"/srv/store\"\n", &["status"]);
        assert!(
            err.to_string().contains("[publish], [serve], [status], [log], [withdraw], [gc] or [timestamp]"),
            "{err}"
        );

        let (err, _) = file_error("bogus = 1\n", &["status"]);
        let text = err.to_string();
        assert!(text.contains("no command has a flag --bogus") && text.contains("log-format"), "{text}");

        let (err, _) = file_error("config = \"other.toml\"\n", &["status"]);
        assert!(matches!(err, ConfigError::OutsideSection { .. }), "a file names no other file: {err:?}");

        let (err, _) = file_error("serve = 1\n", &["status"]);
        assert!(err.to_string().contains("must be a section, [serve]"), "{err}");
    }

    #[test]
    fn lines_and_columns_count_from_one() {
        let text = "[poll]\ninterval = \"5s\"\nbroken line\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 7), (2, 1));
        assert_eq!(line_and_column(text, text.find("broken").unwrap() + 3), (3, 4));
    }

    #[test]
    fn the_command_is_found_behind_the_global_options() {
        let cmd = command();
        let names = |words: &[&str]| {
            let argv: Vec<OsString> = words.iter().map(Into::into).collect();
            invoked_command(&cmd, &argv).map(|path| path.iter().map(|c| c.get_name()).collect::<Vec<_>>())
        };
        assert_eq!(names(&["fts", "serve"]), Some(vec!["serve"]));
        assert_eq!(
            names(&[
                "fts",
                "--config",
                "f.toml",
                "--log-format=json",
                "keygen",
                "--log-format",
                "text",
                "ca"
            ]),
            Some(vec!["keygen", "ca"])
        );
        assert_eq!(names(&["fts", "serve", "--help"]), None, "help reads no file");
        assert_eq!(names(&["fts", "--help"]), None);
        assert_eq!(names(&["fts", "keygen"]), None);
        assert_eq!(names(&["fts", "frobnicate"]), None);
        assert_eq!(names(&["fts", "--listen", "x", "serve"]), None, "not a global option");
        assert_eq!(names(&["fts", "publish", "--", "--help"]), Some(vec!["publish"]));
    }

    #[test]
    fn the_config_file_is_named_by_the_last_config_flag() {
        let argv = |words: &[&str]| words.iter().map(Into::into).collect::<Vec<OsString>>();
        assert_eq!(config_path(&argv(&["fts", "--config", "a", "serve", "--config=b"])), Some("b".into()));
        assert_eq!(
            config_path(&argv(&["fts", "serve", "--config", "a", "--", "--config=b"])),
            Some("a".into())
        );
    }

    #[test]
    fn a_flag_is_on_the_command_line_with_or_without_an_equals_sign() {
        let argv = |words: &[&str]| words.iter().map(Into::into).collect::<Vec<OsString>>();
        assert!(on_command_line(&argv(&["fts", "serve", "--store", "s"]), "store"));
        assert!(on_command_line(&argv(&["fts", "serve", "--store=s"]), "store"));
        assert!(!on_command_line(&argv(&["fts", "serve", "--store-x=s"]), "store"));
        assert!(!on_command_line(&argv(&["fts", "publish", "--", "--store"]), "store"));
    }

    #[test]
    fn every_flag_is_long_only_for_the_layering_to_find_it() {
        fn check(cmd: &clap::Command) {
            for arg in cmd.get_arguments() {
                assert!(
                    arg.get_short().is_none() && arg.get_all_aliases().is_none(),
                    "{} -{:?}: on_command_line looks for --NAME only",
                    cmd.get_name(),
                    arg.get_short()
                );
            }
            cmd.get_subcommands().for_each(check);
        }
        check(&command());
    }
}
