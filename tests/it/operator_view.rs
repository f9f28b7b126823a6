//! The operator's and the installer's view (issue 17, part 6): `fts publish
//! --dry-run` says what a publish would do and changes nothing; `fts publish --note`
//! keeps a note with the publisher in the store and `fts log` shows it; `fts
//! verify-installed` checks a file a real `fts poll` installed against the signed
//! statement the host recorded.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use sha2::{Digest, Sha256};

use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_code, expect_success, stderr, stdout};

/// Every file and folder under `root`: a file's bytes and mode, a folder's mode. Equal
/// before and after means nothing was created, removed, changed or re-moded.
fn tree(root: &Path) -> BTreeMap<PathBuf, (Option<Vec<u8>>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let bytes = meta.is_file().then(|| fs::read(&path).unwrap());
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.insert(path, (bytes, meta.permissions().mode()));
        }
    }
    out
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The key id a publish's output names (`... signed by key ID`).
fn key_id(publish: &Output) -> String {
    let out = stdout(publish);
    out.lines().next().and_then(|l| l.rsplit(' ').next()).unwrap().to_owned()
}

fn provisioned() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &["web"]), ("db-01", &[])]);
    sandbox
}

#[test]
fn a_dry_run_says_what_would_be_published_where_and_changes_nothing() {
    let sandbox = provisioned();
    let key = key_id(&sandbox.publish("first.txt", b"so the store exists", &["all"]));
    fs::write(sandbox.join("fix.sh"), b"echo fixed").unwrap();
    let before = tree(&sandbox.join("store"));

    let dry = ["publish", "fix.sh", "--to", "web-01", "--to", "all", "--to", "group:web", "--dry-run"];
    let out = expect_success(sandbox.fts(dry).args(["--note", "tonight's fix"]));
    let text = stdout(&out);
    assert!(text.starts_with("would publish fix.sh (10 bytes, "), "{text}");
    assert!(
        text.contains(&sha256(b"echo fixed")) && text.contains(&format!("signed by key {key}")),
        "{text}"
    );
    for line in ["  web-01 seq 1", "  all seq 2", "  group:web seq 1", "  note: tonight's fix"] {
        assert!(text.lines().any(|l| l == line), "{line:?} in:\n{text}");
    }
    assert!(text.trim_end().ends_with("dry run: nothing was signed or written"), "{text}");
    assert_eq!(tree(&sandbox.join("store")), before, "not a byte of the store changed, not even a lock file");

    // What the dry run said is what the publish then does.
    let out = expect_success(&mut sandbox.fts(&dry[..dry.len() - 1]));
    for line in ["  web-01 seq 1", "  all seq 2", "  group:web seq 1"] {
        assert!(stdout(&out).lines().any(|l| l == line), "{line:?} in:\n{}", stdout(&out));
    }

    // A store that does not exist yet is not created by a dry run.
    let out = expect_success(&mut sandbox.fts([
        "publish",
        "fix.sh",
        "--to",
        "all",
        "--store",
        "fresh",
        "--dry-run",
    ]));
    assert!(
        stdout(&out).contains("all seq 1") && stdout(&out).contains("would create it"),
        "{}",
        stdout(&out)
    );
    assert!(!sandbox.join("fresh").exists());
}

#[test]
fn a_dry_run_refuses_what_a_publish_refuses_with_the_same_error() {
    let sandbox = provisioned();
    sandbox.publish("first.txt", b"so the store exists", &["all"]);
    fs::write(sandbox.join("fix.sh"), b"echo fixed").unwrap();
    let before = tree(&sandbox.join("store"));
    for (args, code) in [
        (&["publish", "fix.sh", "--to", "web"][..], 2), // reaches no host
        (&["publish", "missing.sh", "--to", "all"], 1),
        (&["publish", "fix.sh", "--to", "all", "--signing-key", "nope.key"], 1),
    ] {
        let real = expect_code(&mut sandbox.fts(args), code);
        let dry = expect_code(sandbox.fts(args).arg("--dry-run"), code);
        assert!(stdout(&dry).is_empty(), "{}", stdout(&dry));
        let (real, dry) = (stderr(&real), stderr(&dry));
        let reason = real.trim_end().trim_start_matches("fts: error: ");
        assert!(dry.trim_end().ends_with(reason), "{args:?}: dry run says {dry:?}, the publish {real:?}");
    }
    assert_eq!(tree(&sandbox.join("store")), before);

    // A folder that holds other things is not a store, dry or not.
    fs::create_dir(sandbox.join("home")).unwrap();
    fs::write(sandbox.join("home/.profile"), b"").unwrap();
    let out = expect_code(
        &mut sandbox.fts(["publish", "fix.sh", "--to", "all", "--store", "home", "--dry-run"]),
        1,
    );
    assert!(stderr(&out).contains("holds \".profile\" but no journal"), "{}", stderr(&out));
    assert_eq!(fs::read_dir(sandbox.join("home")).unwrap().count(), 1);
}

#[test]
fn a_note_is_kept_with_its_publisher_and_fts_log_shows_it() {
    let sandbox = provisioned();
    fs::write(sandbox.join("fix.sh"), b"echo fixed").unwrap();
    let noted =
        ["publish", "fix.sh", "--to", "web-01", "--to", "group:web", "--note", "CVE-2026-1234: ticket #42"];
    let out = expect_success(sandbox.fts(noted).env("USER", "alice"));
    assert!(stdout(&out).contains("  note: CVE-2026-1234: ticket #42"), "{}", stdout(&out));
    expect_success(sandbox.fts(["publish", "fix.sh", "--to", "all", "--as", "plain.sh"]).env("USER", "bob"));

    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_owned();
    let out = expect_success(&mut sandbox.fts(["log"]));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("PUBLISHED") && lines[0].contains("PUBLISHER"), "{text}");
    let row = |target: &str| lines.iter().find(|l| l.split_whitespace().nth(1) == Some(target)).unwrap();
    assert!(row("web-01").contains("fix.sh") && row("web-01").contains(&format!("alice@{host}")), "{text}");
    assert!(row("all").contains("plain.sh") && row("all").contains("bob@"), "{text}");
    assert_eq!(text.matches("note: CVE-2026-1234: ticket #42").count(), 1, "once per publish: {text}");
    let note_at = lines.iter().position(|l| l.trim_start().starts_with("note:")).unwrap();
    assert!(lines[note_at - 1].contains("group:web"), "under the last entry of its publish: {text}");

    let out = expect_success(&mut sandbox.fts(["log", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON document");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["target"], "web-01");
    assert_eq!(rows[0]["seq"], 1);
    assert_eq!(rows[0]["file-name"], "fix.sh");
    assert_eq!(rows[0]["file-size"], 10);
    assert_eq!(rows[0]["file-hash"], sha256(b"echo fixed"));
    assert!(rows[0]["published"].as_str().unwrap().ends_with('Z'));
    assert_eq!(rows[0]["key-id"].as_str().unwrap().len(), 16);
    assert_eq!(rows[1]["note"], "CVE-2026-1234: ticket #42");
    assert_eq!(rows[1]["publisher"], serde_json::json!({"user": "alice", "host": host}));
    assert_eq!((rows[2]["target"].as_str(), &rows[2]["note"]), (Some("all"), &serde_json::Value::Null));
    assert_eq!(rows[2]["publisher"]["user"], "bob");

    let out = expect_success(&mut sandbox.fts(["log", "--target", "group:web", "--json"]));
    let rows: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(1));
    let out = expect_success(&mut sandbox.fts(["log", "--target", "web-09"]));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(stderr(&out).contains("no entries for target web-09"), "{}", stderr(&out));
}

#[test]
fn a_bad_note_is_refused_and_nothing_is_written() {
    let sandbox = provisioned();
    fs::write(sandbox.join("fix.sh"), b"echo fixed").unwrap();
    let long = "x".repeat(1001);
    for (note, says) in [
        ("two\nlines", "U+000A"),
        ("\x1b]0;owned\x07", "U+001B"),
        ("tab\there", "U+0009"),
        ("gnp.exe\u{202e}", "U+202E"),
        ("", "is empty"),
        (long.as_str(), "has 1001 bytes, more than the 1000 allowed"),
    ] {
        let out = expect_code(&mut sandbox.fts(["publish", "fix.sh", "--to", "all", "--note", note]), 2);
        let err = stderr(&out);
        assert!(err.contains("--note") && err.contains(says), "{note:?}: {err}");
    }
    expect_success(&mut sandbox.fts(["publish", "fix.sh", "--to", "all", "--note", &"x".repeat(1000)]));
    let store = tree(&sandbox.join("store"));
    let out = expect_code(&mut sandbox.fts(["publish", "fix.sh", "--to", "all", "--note", "a\rb"]), 2);
    assert!(stderr(&out).contains("U+000D"), "{}", stderr(&out));
    assert_eq!(tree(&sandbox.join("store")), store);
}

#[test]
fn fts_log_of_a_missing_or_empty_store_says_so() {
    let sandbox = Sandbox::new();
    let out = expect_code(&mut sandbox.fts(["log"]), 1);
    assert!(
        stderr(&out).contains("there is no store store") && stderr(&out).contains("--store"),
        "{}",
        stderr(&out)
    );
    fs::create_dir(sandbox.join("empty")).unwrap();
    let out = expect_code(&mut sandbox.fts(["log", "--store", "empty"]), 1);
    assert!(stderr(&out).contains("empty is not an fts store: it has no journal"), "{}", stderr(&out));

    // A store with its header and nothing published yet.
    fs::create_dir(sandbox.join("new")).unwrap();
    fs::write(
        sandbox.join("new/journal"),
        "{\"record\":\"store\",\"format\":\"fts-store\",\"version\":1}\t41c75c632282856c\n",
    )
    .unwrap();
    let out = expect_success(&mut sandbox.fts(["log", "--store", "new"]));
    assert_eq!(stdout(&out), "the store new has no entries yet\n");
    let out = expect_success(&mut sandbox.fts(["log", "--store", "new", "--json"]));
    assert_eq!(stdout(&out).trim(), "[]");
}

/// `fts verify-installed` with `args`, and its exit code, stdout and stderr.
fn verify(sandbox: &Sandbox, args: &[&str]) -> (Option<i32>, String, String) {
    let out = crate::common::run(sandbox.fts(["verify-installed"]).args(args));
    (out.status.code(), stdout(&out), stderr(&out))
}

/// Edits the record of `name` in the host's state file.
fn edit_record(state: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let mut value: serde_json::Value = serde_json::from_slice(&fs::read(state).unwrap()).unwrap();
    edit(value["installed"][name].as_object_mut().expect("a record"));
    fs::write(state, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

#[test]
fn verify_installed_passes_a_genuine_file_and_fails_a_changed_unknown_or_untrusted_one() {
    let sandbox = provisioned();
    sandbox.publish("app.sh", b"echo version 1", &["web-01"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr.to_string();
    expect_success(&mut sandbox.fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"]));
    let installed = sandbox.join("in/app.sh");
    let path = installed.to_str().unwrap();

    let (code, out, err) = verify(&sandbox, &[path]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(
        out.contains("genuine") && out.contains("web-01 seq 1") && out.contains(&sha256(b"echo version 1")),
        "{out}"
    );
    // With the state and the key named, from anywhere.
    let state = sandbox.join("in/.fts-state.json");
    let trust = sandbox.join("certs/signing.pub");
    let elsewhere = Sandbox::new();
    let named = ["--state", state.to_str().unwrap(), "--trust", trust.to_str().unwrap()];
    assert_eq!(verify(&elsewhere, &[&[path][..], &named].concat()).0, Some(0));

    // Signed by a key this check does not trust.
    expect_success(&mut sandbox.fts(["keygen", "signing", "--dir", "other"]));
    let (code, _, err) = verify(&sandbox, &[path, "--trust", "other/signing.pub"]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("not among the trusted keys"), "{err}");

    // A name the host never installed.
    fs::write(sandbox.join("in/stranger.sh"), b"echo version 1").unwrap();
    let (code, _, err) = verify(&sandbox, &[sandbox.join("in/stranger.sh").to_str().unwrap()]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("no file of this name is recorded as installed"), "{err}");

    // A link in the file's place is not followed, even to a genuine copy.
    fs::copy(&installed, sandbox.join("copy.sh")).unwrap();
    fs::remove_file(&installed).unwrap();
    std::os::unix::fs::symlink(sandbox.join("copy.sh"), &installed).unwrap();
    let (code, _, err) = verify(&sandbox, &[path]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("symbolic link"), "{err}");

    // Changed bytes of the same size.
    fs::remove_file(&installed).unwrap();
    fs::write(&installed, b"echo version X").unwrap();
    let (code, _, err) = verify(&sandbox, &[path]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("its SHA-256 is") && err.contains("changed since it was installed"), "{err}");

    // Changed bytes and a record changed to match them: the signature gives it away.
    edit_record(&state, "app.sh", |record| {
        record.insert("file-hash".into(), sha256(b"echo version X").into());
    });
    let (code, _, err) = verify(&sandbox, &[path]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("does not verify with trusted key"), "{err}");

    // A record from before records kept signatures: the hash alone is not enough.
    fs::write(&installed, b"echo version 1").unwrap();
    edit_record(&state, "app.sh", |record| {
        record.insert("file-hash".into(), sha256(b"echo version 1").into());
        record.remove("signature");
        record.remove("key-id");
    });
    let (code, _, err) = verify(&sandbox, &[path]);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("predates signed records") && err.contains("SHA-256 matches"), "{err}");

    // A file that cannot be read at all is a failure to check (1), not a verdict.
    fs::remove_file(&installed).unwrap();
    assert_eq!(verify(&sandbox, &[path]).0, Some(1));
    let trusted = ["--trust", trust.to_str().unwrap()];
    let (code, _, err) =
        verify(&elsewhere, &[&[elsewhere.join("app.sh").to_str().unwrap()][..], &trusted].concat());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("there is no state file"), "{err}");
}

#[test]
fn verify_installed_takes_the_state_and_keys_of_the_polls_config_file() {
    let sandbox = provisioned();
    sandbox.publish("app.sh", b"echo version 1", &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    fs::create_dir(sandbox.join("keys")).unwrap();
    fs::rename(sandbox.join("certs/signing.pub"), sandbox.join("keys/release.pub")).unwrap();
    let config = format!(
        "[poll]\nserver = \"{}\"\nid = \"web-01\"\ndest = \"in\"\nstate = \"var/state.json\"\ntrust = [\"keys/release.pub\"]\n",
        server.addr
    );
    fs::write(sandbox.join("poll.toml"), config).unwrap();
    fs::create_dir(sandbox.join("var")).unwrap();
    expect_success(&mut sandbox.fts(["--config", "poll.toml", "poll", "--once"]));
    assert!(sandbox.join("var/state.json").is_file());

    let out = expect_success(&mut sandbox.fts(["--config", "poll.toml", "verify-installed", "in/app.sh"]));
    assert!(stdout(&out).contains("genuine"), "{}", stdout(&out));
    // Without the file, neither the state nor the key is where the defaults look.
    let out = expect_code(&mut sandbox.fts(["verify-installed", "in/app.sh"]), 1);
    assert!(stderr(&out).contains("--trust"), "{}", stderr(&out));
}

#[test]
fn the_new_commands_are_in_help_and_completions() {
    let sandbox = Sandbox::new();
    let out = expect_success(&mut sandbox.fts(["--help"]));
    assert!(stdout(&out).contains("log") && stdout(&out).contains("verify-installed"), "{}", stdout(&out));
    let out = expect_success(&mut sandbox.fts(["completions", "bash"]));
    for word in ["verify-installed", "--dry-run", "--note"] {
        assert!(stdout(&out).contains(word), "{word}");
    }
}
