//! The command line as a user meets it: help, exit codes, and the configuration
//! layering (flag, then environment, then config file, then default; docs/OPERATIONS.md
//! section 14).

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

#[test]
fn a_missing_required_flag_is_clap_usage_error_exit_2() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("f"), b"x").unwrap();
    for (args, names) in [
        (&["poll"][..], &["--server", "--id"][..]),
        (&["poll", "--server", "127.0.0.1:1"], &["--id"]),
        (&["publish", "f"], &["--to"]),
        (&["keygen", "server"], &["--name"]),
        (&["keygen", "client"], &["--id"]),
        (&["keygen", "csr"], &["--id"]),
    ] {
        let out = expect_code(&mut sandbox.fts(args), 2);
        let err = stderr(&out);
        assert!(err.starts_with("fts: error: ") && err.contains("required"), "{args:?}: {err}");
        for name in names {
            assert!(err.contains(name), "{args:?} names {name}: {err}");
        }
    }
}

#[test]
fn a_value_is_parsed_at_the_edge_and_refused_naming_its_flag() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("f"), b"x").unwrap();
    for (args, says) in [
        (&["publish", "f", "--to", "Web 01"][..], "--to"),
        (&["publish", "f", "--to", "all", "--as", "../x"], "--as"),
        (&["poll", "--server", "no-port", "--id", "web-01"], "is not HOST:PORT"),
        (&["poll", "--server", "h:1", "--id", "all"], "--id"),
        (&["serve", "--max-active-polls", "0"], "at least 1"),
        (&["serve", "--max-polls-per-client", "0"], "at least 1"),
        (&["serve", "--poll-max-files", "0"], "at least 1"),
        (&["serve", "--status-interval", "0s"], "--status-interval must be longer than 0s"),
    ] {
        let out = expect_code(&mut sandbox.fts(args), 2);
        assert!(
            stderr(&out).starts_with("fts: error: ") && stderr(&out).contains(says),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Nothing was written by a refused publish.
    assert!(!sandbox.join("store").exists());
}

#[test]
fn a_config_file_that_is_not_toml_names_the_line() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("fts.toml"), "[poll]\nserver = \"h:1\"\nid = web-01\n").unwrap();
    let out = expect_code(&mut sandbox.fts(["--config", "fts.toml", "poll"]), 2);
    let err = stderr(&out);
    assert!(
        err.starts_with("fts: error: ") && err.contains("fts.toml") && err.contains("line 3, column"),
        "{err}"
    );
}

#[test]
fn a_bare_number_for_a_duration_in_the_config_file_exits_2_asking_for_a_unit() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("fts.toml"), "[poll]\ninterval = 5\n").unwrap();
    let out = expect_code(
        &mut sandbox.fts(["--config", "fts.toml", "poll", "--server", "h:1", "--id", "web-01"]),
        2,
    );
    let err = stderr(&out);
    assert!(err.contains("`interval`") && err.contains("\"5s\"") && err.contains("unit"), "{err}");
}

#[test]
fn a_key_outside_any_section_is_reported_as_such() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("fts.toml"), "interval = \"5s\"\n").unwrap();
    let out = expect_code(&mut sandbox.fts(["--config", "fts.toml", "status"]), 2);
    let err = stderr(&out);
    assert!(err.contains("`interval` is outside any section") && err.contains("[poll]"), "{err}");
    assert!(!err.contains("unknown section"), "{err}");
}

#[test]
fn log_format_may_stand_at_the_top_of_the_config_file() {
    let sandbox = Sandbox::new();
    std::fs::write(sandbox.join("fts.toml"), "log-format = \"json\"\n").unwrap();
    // A failure after parsing is reported as a JSON line.
    let out = expect_code(&mut sandbox.fts(["--config", "fts.toml", "status", "--status-dir", "none"]), 1);
    let line: serde_json::Value = serde_json::from_str(stderr(&out).trim()).expect("one JSON line");
    assert_eq!(line["level"], "ERROR", "{line}");
    // So is a usage error that the file's own values cause.
    std::fs::write(sandbox.join("fts.toml"), "log-format = \"json\"\n[status]\nbogus = 1\n").unwrap();
    let out = expect_code(&mut sandbox.fts(["--config", "fts.toml", "status"]), 2);
    assert!(stderr(&out).starts_with('{') && stderr(&out).contains("`bogus`"), "{}", stderr(&out));
}

/// A required flag supplied by the file, or by the environment alone, and flag, then
/// environment, then file for it: observed through the server `fts poll` dials.
#[test]
fn a_required_flag_follows_the_precedence_too() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "signing"]));
    std::fs::write(sandbox.join("fts.toml"), "[poll]\nserver = \"127.0.0.1:1\"\nid = \"web-01\"\n").unwrap();
    let poll = |extra: &[&str]| {
        let mut args = vec!["--config", "fts.toml", "poll", "--once", "--plaintext", "--dest", "in"];
        args.extend_from_slice(extra);
        sandbox.fts(args)
    };
    let dials = |out: &std::process::Output, addr: &str| {
        assert!(stderr(out).contains(&format!("cannot connect to {addr}")), "dials {addr}: {}", stderr(out));
    };
    dials(&expect_code(&mut poll(&[]), 1), "127.0.0.1:1");
    dials(&expect_code(poll(&[]).env("FTS_SERVER", "127.0.0.1:2"), 1), "127.0.0.1:2");
    dials(
        &expect_code(poll(&["--server", "127.0.0.1:3"]).env("FTS_SERVER", "127.0.0.1:2"), 1),
        "127.0.0.1:3",
    );

    // The environment alone, no file.
    let out = expect_code(
        sandbox
            .fts(["poll", "--once", "--plaintext", "--dest", "in"])
            .env("FTS_SERVER", "127.0.0.1:4")
            .env("FTS_ID", "web-01"),
        1,
    );
    dials(&out, "127.0.0.1:4");

    // `fts keygen client`'s required --id: from the file, and the environment over it.
    expect_success(&mut sandbox.fts(["keygen", "ca"]));
    std::fs::write(sandbox.join("fts.toml"), "[keygen]\nid = \"web-07\"\n").unwrap();
    expect_success(&mut sandbox.fts(["--config", "fts.toml", "keygen", "client"]));
    assert!(sandbox.join("certs/web-07.crt").is_file());
    expect_success(sandbox.fts(["--config", "fts.toml", "keygen", "client"]).env("FTS_ID", "web-08"));
    assert!(sandbox.join("certs/web-08.crt").is_file());
}

/// A failure with a nested system error prints that error once (issue 16 item 1):
/// every message says its own part, and `main` prints the chain without trimming it.
/// A folder where a file is expected fails for root too, unlike a permission error.
#[test]
fn a_nested_io_cause_is_printed_exactly_once() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.join("keys")).unwrap();
    let out = expect_code(
        &mut sandbox.fts([
            "poll",
            "--once",
            "--server",
            "127.0.0.1:1",
            "--id",
            "web-01",
            "--ca",
            "ca.crt",
            "--dest",
            "dest",
            "--trust",
            "keys",
        ]),
        1,
    );
    let err = stderr(&out);
    let io = std::io::Error::from_raw_os_error(21).to_string(); // EISDIR, in the C library's words
    assert_eq!(err.matches(&io).count(), 1, "the cause once: {err}");
    assert!(
        err.trim_end()
            .ends_with(&format!("loading the trusted signing keys (--trust): cannot read keys: {io}")),
        "the chain, outermost first: {err}"
    );
}
