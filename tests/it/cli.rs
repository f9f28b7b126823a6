//! The command line as a user meets it: help, exit codes, and the configuration
//! layering of PRODUCT.md (flag, then environment, then config file, then default).

use crate::common::{Sandbox, expect_code, expect_success, stderr, stdout};

#[test]
fn help_lists_every_command() {
    let sandbox = Sandbox::new();
    let out = expect_success(&mut sandbox.fts(["--help"]));
    for command in ["keygen", "publish", "serve", "poll", "status", "--config", "--log-format"] {
        assert!(stdout(&out).contains(command), "`fts --help` mentions {command}:\n{}", stdout(&out));
    }
}

#[test]
fn each_command_documents_its_environment_variables() {
    let sandbox = Sandbox::new();
    let out = expect_success(&mut sandbox.fts(["serve", "--help"]));
    assert!(stdout(&out).contains("FTS_MAX_CONNECTIONS"), "{}", stdout(&out));
    let out = expect_success(&mut sandbox.fts(["poll", "--help"]));
    assert!(stdout(&out).contains("FTS_SERVER"), "{}", stdout(&out));
}

#[test]
fn a_usage_error_exits_2_with_a_one_line_reason() {
    let sandbox = Sandbox::new();
    let out = expect_code(&mut sandbox.fts(["serve", "--max-connections", "many"]), 2);
    assert!(stderr(&out).contains("--max-connections"), "{}", stderr(&out));
    expect_code(&mut sandbox.fts(["frobnicate"]), 2);
}

#[test]
fn a_config_file_with_an_unknown_key_exits_2_naming_key_and_file() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("fts.toml"), "[serve]\nlisen = \"127.0.0.1:1\"\n").unwrap();
    let out = expect_code(&mut sandbox.fts(["--config", "fts.toml", "serve"]), 2);
    let err = stderr(&out);
    assert!(err.starts_with("fts: error: ") && err.contains("`lisen`") && err.contains("fts.toml"), "{err}");
}

#[test]
fn the_config_file_can_be_named_by_the_environment() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("fts.toml"), "[serve]\nbogus = 1\n").unwrap();
    let out = expect_code(sandbox.fts(["serve"]).env("FTS_CONFIG", "fts.toml"), 2);
    assert!(stderr(&out).contains("`bogus`"), "{}", stderr(&out));
}

#[test]
fn a_missing_config_file_is_an_error() {
    let sandbox = Sandbox::new();
    let out = expect_code(&mut sandbox.fts(["--config", "nope.toml", "status"]), 2);
    assert!(stderr(&out).contains("nope.toml"), "{}", stderr(&out));
}
