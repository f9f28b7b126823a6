//! The lines fts itself writes on stderr for the operator, apart from its log: the
//! reason of a non-zero exit (`fts: error: ...`) and the problems a `--once` poll
//! reported. In text mode they are plain lines; with `--log-format json` each is one
//! JSON object like every log line (`level`, `fields.message`, `target`), so that
//! stderr holds nothing but JSON for whatever collects it.
//!
//! A JSON line goes through the process's log subscriber when its filter lets it
//! through, so it lands in order among the other log lines. When `RUST_LOG` filters
//! it out, it is written straight to stderr in the same shape anyway: the reason of a
//! non-zero exit must never be lost.

use std::sync::OnceLock;

use tracing::Level;

use crate::args::LogFormat;

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The format chosen by `--log-format`; set once, after parsing (text until then).
pub fn set_format(format: LogFormat) {
    let _ = FORMAT.set(format);
}

/// Whether the lines are JSON.
pub fn is_json() -> bool {
    FORMAT.get() == Some(&LogFormat::Json)
}

/// A fatal error: `fts: error: TEXT`, or an ERROR line.
pub fn error(text: &str) {
    if is_json() {
        json_line(Level::ERROR, text);
    } else {
        eprintln!("fts: error: {text}");
    }
}

/// A warning the command ends with: `fts: TEXT`, or a WARN line.
pub fn warn(text: &str) {
    if is_json() {
        json_line(Level::WARN, text);
    } else {
        eprintln!("fts: {text}");
    }
}

fn json_line(level: Level, text: &str) {
    let enabled = if level == Level::ERROR {
        tracing::enabled!(target: "fts", Level::ERROR)
    } else {
        tracing::enabled!(target: "fts", Level::WARN)
    };
    if enabled {
        emit(level, text);
    } else {
        let direct = tracing_subscriber::fmt().json().with_writer(std::io::stderr).finish();
        tracing::subscriber::with_default(direct, || emit(level, text));
    }
}

fn emit(level: Level, text: &str) {
    if level == Level::ERROR {
        tracing::error!(target: "fts", "{text}");
    } else {
        tracing::warn!(target: "fts", "{text}");
    }
}

/// The `--log-format` of a command line that could not be parsed whole (a usage error,
/// a bad config file): the flag if it is there, else `FTS_LOG_FORMAT`. Text unless
/// json is asked for.
pub fn requested_format(argv: &[std::ffi::OsString]) -> LogFormat {
    let mut words = argv.iter().map(|a| a.to_string_lossy());
    let mut value = None;
    while let Some(word) = words.next() {
        if word == "--" {
            break;
        }
        if word == "--log-format" {
            value = words.next().map(|v| v.into_owned());
        } else if let Some(v) = word.strip_prefix("--log-format=") {
            value = Some(v.to_owned());
        }
    }
    let value = value.or_else(|| std::env::var("FTS_LOG_FORMAT").ok());
    if value.as_deref() == Some("json") { LogFormat::Json } else { LogFormat::Text }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<std::ffi::OsString> {
        words.iter().map(Into::into).collect()
    }

    #[test]
    fn the_log_format_is_found_in_a_command_line_that_does_not_parse() {
        assert_eq!(
            requested_format(&argv(&["fts", "--log-format", "json", "poll", "--bogus"])),
            LogFormat::Json
        );
        assert_eq!(requested_format(&argv(&["fts", "poll", "--log-format=json"])), LogFormat::Json);
        assert_eq!(requested_format(&argv(&["fts", "poll", "--", "--log-format=json"])), LogFormat::Text);
    }
}
