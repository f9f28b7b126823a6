//! The flags of the bench tools (`examples/load` and `examples/loadgen.rs`, which
//! includes this file): `--name value` pairs and bare switches after an optional
//! leading word, read with a message instead of a panic when one is missing or wrong.

use std::str::FromStr;

pub struct Flags(Vec<String>);

impl Flags {
    /// The process's arguments, without the program name.
    pub fn from_env() -> Flags {
        Flags(std::env::args().skip(1).collect())
    }

    /// The first argument (a mode word), if any.
    pub fn first(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    /// The value after `name`, if given.
    pub fn value(&self, name: &str) -> Option<String> {
        self.0.iter().position(|a| a == name).and_then(|i| self.0.get(i + 1)).cloned()
    }

    /// The value after `name`, which must be given.
    pub fn required(&self, name: &str) -> Result<String, String> {
        self.value(name).ok_or_else(|| format!("{name} is required"))
    }

    /// The value after `name` parsed as a `T`, or `default` when not given.
    pub fn parsed_or<T: FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        self.parsed(name).map(|value| value.unwrap_or(default))
    }

    /// The value after `name` parsed as a `T`, if given.
    pub fn parsed<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        match self.value(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("{name} cannot take {v:?}")),
        }
    }

    /// Whether the bare switch `name` is given.
    pub fn switch(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
}
