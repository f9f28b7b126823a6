//! Configuration layering: flag, then `FTS_*` environment variable, then the TOML file
//! named by `--config` (or `FTS_CONFIG`), then the default.
//!
//! clap stays the one place where flags are defined. It reads flags and the
//! environment itself; the config file is merged in by appending `--key=value` for
//! every key whose flag was not given on the command line or in the environment, and
//! parsing again. So a value from the file goes through exactly the parser, checks and
//! conflicts of the flag it stands for, and nothing is declared twice.
//!
//! A config file has one table per command (`[keygen]`, `[publish]`, `[serve]`,
//! `[poll]`, `[status]`), keys named like the long flags. An unknown section or key is
//! an error naming it and the file: a typo must not silently fall back to a default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use crate::args::Cli;

/// Why the command line, environment and config file could not be turned into a
/// command. `Clap` carries clap's own errors (usage, `--help`, `--version`), which know
/// their exit code and how to print themselves.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("unknown section [{section}] in config file {path} (sections: {known})")]
    UnknownSection { path: PathBuf, section: String, known: String },
    #[error("unknown key `{key}` in [{section}] of config file {path}")]
    UnknownKey { path: PathBuf, section: String, key: String },
    #[error("key `{key}` in [{section}] of config file {path} must be {expected}")]
    BadValue { path: PathBuf, section: String, key: String, expected: &'static str },
    #[error("in config file {path}: {message}")]
    Rejected { path: PathBuf, message: String },
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

/// Parses `argv` with the environment and the config file layered in.
pub fn parse_layered<I, T>(argv: I) -> Result<Cli, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let cmd = command();
    let matches = cmd.clone().try_get_matches_from(&argv)?;
    let Some(path) = matches.get_one::<PathBuf>("config").cloned() else {
        return Ok(Cli::from_arg_matches(&matches)?);
    };

    let extra = file_arguments(&cmd, &matches, &path)?;
    // Appended flags must stay flags: put them before a `--` separator if there is one.
    let at = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    argv.splice(at..at, extra);
    let matches = cmd.try_get_matches_from(&argv).map_err(|err| ConfigError::Rejected {
        path: path.clone(),
        message: err.kind().as_str().map_or_else(|| err.to_string(), |_| err.render().to_string()),
    })?;
    Ok(Cli::from_arg_matches(&matches)?)
}

/// The `--key=value` arguments that the config file contributes to this invocation.
fn file_arguments(
    cmd: &clap::Command,
    matches: &ArgMatches,
    path: &Path,
) -> Result<Vec<OsString>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax {
        path: path.to_owned(),
        message: e.message().to_owned(),
    })?;

    // Every section is checked, not only the one of this command, so that a typo in a
    // file shared by several commands shows up at the first run of any of them.
    let sections: Vec<&str> = cmd.get_subcommands().map(|c| c.get_name()).collect();
    for (section, value) in &table {
        let (Some(section_cmd), Some(keys)) = (cmd.find_subcommand(section), value.as_table()) else {
            return Err(ConfigError::UnknownSection {
                path: path.to_owned(),
                section: section.clone(),
                known: sections.iter().map(|s| format!("[{s}]")).collect::<Vec<_>>().join(", "),
            });
        };
        if let Some(key) = keys.keys().find(|key| *key == "config" || !has_long(section_cmd, key)) {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                section: section.clone(),
                key: key.clone(),
            });
        }
    }

    // The command that runs: `serve`, or `keygen` and then `client`.
    let Some((section, mut leaf_matches)) = matches.subcommand() else {
        return Ok(Vec::new());
    };
    let section_cmd = cmd.find_subcommand(section).ok_or_else(|| ConfigError::UnknownSection {
        path: path.to_owned(),
        section: section.to_owned(),
        known: String::new(),
    })?;
    let mut leaf_cmd = section_cmd;
    while let Some((name, sub)) = leaf_matches.subcommand() {
        match leaf_cmd.find_subcommand(name) {
            Some(c) => {
                leaf_cmd = c;
                leaf_matches = sub;
            }
            None => break,
        }
    }

    let Some(keys) = table.get(section).and_then(toml::Value::as_table) else {
        return Ok(Vec::new());
    };
    let mut extra = Vec::new();
    for (key, value) in keys {
        let bad_value = |expected| ConfigError::BadValue {
            path: path.to_owned(),
            section: section.to_owned(),
            key: key.clone(),
            expected,
        };
        // A key of another keygen subcommand (`crl-days` while running `keygen ca`)
        // is valid in the section but means nothing to this one.
        let by_long = |a: &&clap::Arg| a.get_long() == Some(key);
        let (arg, arg_matches) = match leaf_cmd.get_arguments().find(by_long) {
            Some(arg) => (arg, leaf_matches),
            None => match cmd.get_arguments().find(by_long) {
                Some(global) => (global, matches),
                None => continue,
            },
        };
        if matches!(
            arg_matches.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        let is_flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let repeatable = matches!(arg.get_action(), ArgAction::Append);
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) if repeatable => items.iter().collect(),
            toml::Value::Array(_) => return Err(bad_value("a single value, not a list")),
            single => vec![single],
        };
        for value in values {
            match (value, is_flag) {
                (toml::Value::Boolean(true), true) => extra.push(format!("--{key}").into()),
                (toml::Value::Boolean(false), true) => {}
                (_, true) => return Err(bad_value("true or false")),
                (toml::Value::String(s), false) => extra.push(format!("--{key}={s}").into()),
                (toml::Value::Integer(n), false) => extra.push(format!("--{key}={n}").into()),
                (toml::Value::Float(x), false) => extra.push(format!("--{key}={x}").into()),
                (_, false) => return Err(bad_value("a string or a number")),
            }
        }
    }
    Ok(extra)
}

/// Whether `long` is a flag of `cmd`, one of its subcommands, or a global flag.
fn has_long(cmd: &clap::Command, long: &str) -> bool {
    long == "log-format"
        || cmd.get_arguments().any(|a| a.get_long() == Some(long))
        || cmd.get_subcommands().any(|sub| has_long(sub, long))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Command, KeygenCommand};

    fn config_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
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
        assert_eq!(p.targets, ["all", "group:web"]);

        let cli = parse_layered(["fts", "--config", path, "publish", "--store", "mine", "f"]).unwrap();
        assert_eq!(publish_store(&cli), PathBuf::from("mine"), "a flag wins over the file");
    }

    #[test]
    fn a_value_from_the_file_goes_through_the_flags_own_parser() {
        let file = config_file("[serve]\ngrace = \"5m\"\nplaintext = true\nmax-connections = 7\n");
        let cli = parse_layered(["fts", "serve", "--config", file.path().to_str().unwrap()]).unwrap();
        let Command::Serve(s) = &cli.command else { unreachable!() };
        assert_eq!(s.grace, std::time::Duration::from_secs(300));
        assert!(s.plaintext);
        assert_eq!(s.max_connections, Some(7));

        let file = config_file("[serve]\ngrace = \"soon\"\n");
        let err = parse_layered(["fts", "serve", "--config", file.path().to_str().unwrap()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(file.path().to_str().unwrap()) && text.contains("--grace"), "{text}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_key_and_the_file() {
        let file = config_file("[serve]\nlisten = \"127.0.0.1:1\"\nmax-conections = 5\n");
        let path = file.path().to_str().unwrap();
        let err = parse_layered(["fts", "--config", path, "serve"]).unwrap_err().to_string();
        assert!(err.contains("`max-conections`") && err.contains("[serve]") && err.contains(path), "{err}");

        let file = config_file("[sevre]\n");
        let err = parse_layered(["fts", "--config", file.path().to_str().unwrap(), "serve"]).unwrap_err();
        assert!(err.to_string().contains("[sevre]"), "{err}");
    }

    #[test]
    fn a_section_for_another_command_is_checked_but_not_applied() {
        let file = config_file("[serve]\nstore = \"/a\"\n[publish]\nstore = \"/b\"\n[poll]\nbogus = 1\n");
        let err =
            parse_layered(["fts", "--config", file.path().to_str().unwrap(), "publish", "f"]).unwrap_err();
        assert!(err.to_string().contains("`bogus`"), "every section is checked: {err}");

        let file = config_file("[serve]\nstore = \"/a\"\n[publish]\nstore = \"/b\"\n");
        let cli = parse_layered(["fts", "--config", file.path().to_str().unwrap(), "publish", "f"]).unwrap();
        assert_eq!(publish_store(&cli), PathBuf::from("/b"));
    }

    #[test]
    fn keygen_keys_apply_to_the_subcommand_that_has_them() {
        let file = config_file("[keygen]\ndir = \"/pki\"\nid = \"web-01\"\n");
        let cli = parse_layered(["fts", "--config", file.path().to_str().unwrap(), "keygen", "ca"]).unwrap();
        let Command::Keygen(KeygenCommand::Ca(ca)) = &cli.command else { unreachable!() };
        assert_eq!(ca.dir.dir, PathBuf::from("/pki"));
    }

    #[test]
    fn a_list_for_a_single_value_flag_is_refused() {
        let file = config_file("[publish]\nstore = [\"a\", \"b\"]\n");
        let err =
            parse_layered(["fts", "--config", file.path().to_str().unwrap(), "publish", "f"]).unwrap_err();
        assert!(err.to_string().contains("single value"), "{err}");
    }

    #[test]
    fn without_config_no_file_is_read() {
        let cli = parse_layered(["fts", "publish", "f"]).unwrap();
        assert_eq!(publish_store(&cli), PathBuf::from("store"));
    }
}
