//! Files that someone else planted or can change: the real `fts serve` never streams a
//! file a store writer linked into the store, and the real `fts poll` refuses a
//! destination or state folder others can write, never follows a planted link, keeps
//! unverified bytes out of the destination, and a publish repairs a damaged blob.
//! Real binaries, real certificates, real TLS on 127.0.0.1.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::raw_client::{RawClient, Received, client_config};
use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_code, expect_success, run, stderr, stdout};
use sha2::{Digest, Sha256};

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    std::fs::create_dir_all(sandbox.join("store")).unwrap();
    sandbox
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `store/blobs/<2>/<64>` of `hex`.
fn blob_path(sandbox: &Sandbox, hex: &str) -> PathBuf {
    sandbox.join("store/blobs").join(&hex[..2]).join(hex)
}

/// Asks the server for everything of web-01 since 0, over real TLS, as a raw client
/// that checks nothing; returns every frame and body it got.
fn everything_served(sandbox: &Sandbox, server: &ServeProcess) -> Vec<Received> {
    runtime().block_on(async {
        let config = client_config(&sandbox.join("certs"), "web-01");
        let mut client = RawClient::connect(server.addr, config).await.unwrap();
        client.send_poll("web-01", serde_json::json!({"web-01": 0, "all": 0})).await.unwrap();
        client.receive_all().await.unwrap()
    })
}

/// The server's key never appears in what was served; returns the seqs served.
fn assert_key_not_served(received: &[Received], key: &[u8]) -> Vec<u64> {
    let mut seqs = Vec::new();
    for item in received {
        if let Received::File(header, body) = item {
            assert!(body != key, "the server streamed its private key as seq {}", header.seq);
            assert!(
                !body.windows(11).any(|w| w == b"PRIVATE KEY"),
                "a body holds a private key (seq {})",
                header.seq
            );
            seqs.push(header.seq.get());
        }
    }
    seqs
}

/// Waits for the server's warning that an entry waits for its blob, and returns its
/// problem text.
fn blocked_problem(server: &ServeProcess) -> String {
    let line = server.wait_for_log(Duration::from_secs(10), |l| {
        l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("an entry cannot be served yet"))
    });
    line["fields"]["problem"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn a_published_blob_replaced_by_a_link_to_the_servers_key_is_never_sent() {
    let sandbox = sandbox();
    let key_path = sandbox.join("certs/server.key");
    let key = std::fs::read(&key_path).unwrap();
    // A genuine file of exactly the key's size, so that the size the server checks
    // (the signed one) matches the link's target.
    let innocent: Vec<u8> = (0..key.len()).map(|i| (i % 251) as u8).collect();
    sandbox.publish("innocent.deb", &innocent, &["all"]);
    let blob = blob_path(&sandbox, &sha256_hex(&innocent));

    // A store writer (no signing key) swaps the blob for a link to the server's key.
    let saved = sandbox.join("saved-blob");
    std::fs::rename(&blob, &saved).unwrap();
    symlink(&key_path, &blob).unwrap();
    let server = ServeProcess::start(&sandbox, &[]);

    let received = everything_served(&sandbox, &server);
    assert!(assert_key_not_served(&received, &key).is_empty(), "nothing is served past the link");
    assert!(matches!(received.last(), Some(Received::Frame(_))), "the answer ends with done: {received:?}");
    let problem = blocked_problem(&server);
    let hex = sha256_hex(&innocent);
    assert!(problem.contains(&format!("store/blobs/{}/{hex} is a symbolic link", &hex[..2])), "{problem}");

    // The target waits, it is not skipped: the genuine blob back, the entry is served.
    std::fs::remove_file(&blob).unwrap();
    std::fs::rename(&saved, &blob).unwrap();
    let received = everything_served(&sandbox, &server);
    assert_eq!(assert_key_not_served(&received, &key), [1]);
    assert!(matches!(&received[0], Received::File(_, body) if *body == innocent));
}

/// The journal record `e3_forge.py` (security review, E3) appends: an entry for
/// `target` whose blob the writer chose, with a size of its choosing and no valid
/// signature (the server does not check signatures; hosts do).
fn forged_record(file_hash: &str, size: usize, target: &str, seq: u64, key_id: &str) -> Vec<u8> {
    // base64 of 64 zero bytes: a signature no key made.
    let signature = format!("{}==", "A".repeat(86));
    let record = serde_json::json!({
        "record": "publish", "published": "2099-01-01T00:00:00Z", "file-name": "innocent.deb",
        "file-size": size, "file-hash": format!("sha256:{file_hash}"), "key-id": key_id,
        "entries": [{"target": target, "seq": seq, "signature": signature}],
    });
    let json = serde_json::to_vec(&record).unwrap();
    let mut line = json.clone();
    line.push(b'\t');
    line.extend_from_slice(&sha256_hex(&json).as_bytes()[..16]);
    line.push(b'\n');
    line
}

#[test]
fn a_forged_record_whose_blob_links_to_the_servers_key_is_never_served() {
    let sandbox = sandbox();
    sandbox.publish("first.deb", b"a genuine first file", &["all"]);
    let key_path = sandbox.join("certs/server.key");
    let key = std::fs::read(&key_path).unwrap();
    let journal = sandbox.join("store/journal");
    let text = std::fs::read_to_string(&journal).unwrap();
    let key_id = text.lines().last().unwrap().split("\"key-id\":\"").nth(1).unwrap()[..16].to_owned();

    let forged_hash = sha256_hex(b"anything the attacker likes");
    let link = blob_path(&sandbox, &forged_hash);
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    symlink(&key_path, &link).unwrap();
    let mut file = std::fs::OpenOptions::new().append(true).open(&journal).unwrap();
    std::io::Write::write_all(&mut file, &forged_record(&forged_hash, key.len(), "web-01", 1, &key_id))
        .unwrap();
    drop(file);
    let server = ServeProcess::start(&sandbox, &[]);

    let received = everything_served(&sandbox, &server);
    // The forged entry (web-01 seq 1) was published after all's seq 1: that one is
    // served, the forged one never.
    let served: Vec<(String, u64)> = received
        .iter()
        .filter_map(|r| match r {
            Received::File(h, _) => Some((h.target.to_string(), h.seq.get())),
            _ => None,
        })
        .collect();
    assert_key_not_served(&received, &key);
    assert_eq!(served, [("all".to_owned(), 1)], "{received:?}");
    assert!(blocked_problem(&server).contains("symbolic link"));
}

/// `fts poll --once` as web-01 into `dest` against `server` (an address nothing
/// answers on when the client is refused before it connects), more flags after.
fn poll(sandbox: &Sandbox, server: &str, dest: &str, extra: &[&str]) -> Output {
    let mut args = vec!["poll", "--once", "--server", server, "--id", "web-01", "--dest", dest];
    args.extend_from_slice(extra);
    run(sandbox.fts(&args).env("RUST_LOG", "info"))
}

/// A loopback address where no fts serves: a client that gets as far as connecting
/// fails there at once. Refusals must come before that.
const NOBODY: &str = "127.0.0.1:9";

#[test]
fn a_planted_lock_link_is_not_followed() {
    let sandbox = sandbox();
    let dest = sandbox.join("in");
    std::fs::create_dir(&dest).unwrap();
    chmod(&dest, 0o750);
    let target = sandbox.join("created-by-fts-lock");
    symlink(&target, dest.join(".fts-lock")).unwrap();

    let out = poll(&sandbox, NOBODY, "in", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(".fts-lock is a symbolic link"), "{err}");
    assert!(std::fs::symlink_metadata(&target).is_err(), "nothing was created at the link's target");
    assert!(!dest.join(".fts-partial").exists(), "nothing else was made in the destination");
}

#[test]
fn a_destination_others_can_write_is_refused_with_the_fix_and_left_untouched() {
    let sandbox = sandbox();
    let dest = sandbox.join("in");
    std::fs::create_dir(&dest).unwrap();
    for (mode, writers) in
        [(0o770, "its group"), (0o777, "its group and others"), (0o1777, "its group and others")]
    {
        chmod(&dest, mode);
        let out = poll(&sandbox, NOBODY, "in", &[]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(&format!("refusing to use {}", dest.display())), "{err}");
        assert!(err.contains(&format!("it is writable by {writers}")), "{err}");
        assert!(err.contains(&format!("mode {mode:04o}")), "{err}");
        assert!(err.contains(&format!("chmod 0750 {}", dest.display())), "{err}");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0, "mode {mode:o}: nothing was made in it");
    }

    // A private destination under a parent others can write: the parent is named.
    let parent = sandbox.join("shared");
    std::fs::create_dir_all(parent.join("in")).unwrap();
    chmod(&parent, 0o777);
    let out = poll(&sandbox, NOBODY, "shared/in", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("the folder {} on its way is writable", parent.display())),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains(&format!("chmod go-w {}", parent.display())), "{}", stderr(&out));
}

#[test]
fn a_destination_owned_by_another_user_is_refused() {
    if fts_euid() != 0 {
        eprintln!("SKIPPED a_destination_owned_by_another_user_is_refused: only root can give a folder away");
        return;
    }
    let sandbox = sandbox();
    let dest = sandbox.join("in");
    std::fs::create_dir(&dest).unwrap();
    chmod(&dest, 0o750);
    std::os::unix::fs::chown(&dest, Some(65534), Some(65534)).unwrap();
    let out = poll(&sandbox, NOBODY, "in", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("owned by uid 65534, not by the user running fts"), "{err}");
    assert!(err.contains(&format!("chown 0 {}", dest.display())), "{err}");
}

/// The effective uid of this test process (the owner of what it creates).
fn fts_euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::tempdir().unwrap();
    std::fs::metadata(probe.path()).unwrap().uid()
}

#[test]
fn a_planted_state_link_is_refused_and_its_pending_hook_never_runs() {
    let sandbox = sandbox();
    let dest = sandbox.join("in");
    std::fs::create_dir(&dest).unwrap();
    chmod(&dest, 0o750);
    // E4: a file of the attacker's and a state that freezes the host and marks a hook
    // pending for it, planted as a link in place of the state.
    let payload = b"attacker payload";
    std::fs::write(dest.join("evil.deb"), payload).unwrap();
    let planted = sandbox.join("planted-state.json");
    let state = serde_json::json!({
        "format": 1, "since": {"all": 999999, "web-01": 999999}, "installed": {},
        "hooks-pending": [{"file-name": "evil.deb", "target": "all", "seq": 999999,
            "published": "2026-11-25T17:00:00Z", "file-hash": format!("sha256:{}", sha256_hex(payload))}],
        "reports": [],
    });
    std::fs::write(&planted, serde_json::to_vec(&state).unwrap()).unwrap();
    symlink(&planted, dest.join(".fts-state.json")).unwrap();
    let hook = sandbox.join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\ntouch \"$(dirname \"$0\")/hook-ran\"\n").unwrap();
    chmod(&hook, 0o755);

    let before = std::fs::read(&planted).unwrap();
    let out = poll(&sandbox, NOBODY, "in", &["--exec", hook.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(".fts-state.json is a symbolic link, not a regular file"), "{err}");
    assert!(!sandbox.join("hook-ran").exists(), "the planted pending hook did not run");
    assert_eq!(std::fs::read(&planted).unwrap(), before, "the link's target is untouched");

    // A state file in a folder others can write is refused too.
    let shared = sandbox.join("state");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let out = poll(&sandbox, NOBODY, "in2", &["--state", "state/fts.json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("refusing to use {}", shared.display())), "{}", stderr(&out));
    assert_eq!(names(&sandbox.join("in2")), Vec::<String>::new(), "nothing was made in the destination");
}

#[test]
fn the_default_destination_is_created_private() {
    let sandbox = sandbox();
    let server = ServeProcess::start(&sandbox, &[]);
    sandbox.publish("a.bin", b"a", &["all"]);
    expect_success(&mut sandbox.fts([
        "poll",
        "--once",
        "--server",
        &server.addr.to_string(),
        "--id",
        "web-01",
    ]));
    assert_eq!(mode_of(&sandbox.join("incoming")), 0o750, "incoming/ is 0750");
    assert_eq!(mode_of(&sandbox.join("incoming/.fts-partial")), 0o700, "the partial folder is 0700");
    assert_eq!(std::fs::read(sandbox.join("incoming/a.bin")).unwrap(), b"a");
}

/// Distinct contents for each version.
fn version(n: u8, size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8 ^ n).collect()
}

/// The names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|e| e.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Every name in `dest` not starting with a dot holds what the state records as
/// installed under it: what a root installer acting on recorded names may trust.
fn assert_destination_holds_only_verified_files(dest: &Path) {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dest.join(".fts-state.json")).unwrap()).unwrap();
    for name in names(dest).iter().filter(|n| !n.starts_with('.')) {
        let recorded = state["installed"][name]["file-hash"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} is not recorded"));
        let actual = format!("sha256:{}", sha256_hex(&std::fs::read(dest.join(name)).unwrap()));
        assert_eq!(recorded, actual, "{name} holds what was verified");
    }
    for name in names(dest) {
        assert!(
            !name.starts_with(".fts-tmp-") || name.starts_with(".fts-tmp-state-"),
            "a body in dest: {name}"
        );
    }
}

#[test]
fn the_partial_folder_holds_the_body_during_a_transfer_and_dest_only_verified_files() {
    let sandbox = sandbox();
    let server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr.to_string();
    let dest = sandbox.join("in");
    let partial = dest.join(".fts-partial");
    sandbox.publish("app.bin", &version(1, 1 << 20), &["all"]);
    expect_success(&mut sandbox.fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"]));

    // Stop the client while a body is on its way (if a transfer ends before it can
    // be caught, publish a new version and try again).
    let mut caught = false;
    for attempt in 2..8u8 {
        let latest = version(attempt, 48 << 20);
        sandbox.publish("app.bin", &latest, &["all"]);
        let mut child = sandbox
            .fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while names(&partial).is_empty() && child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(60), "the transfer never started");
            std::thread::sleep(Duration::from_micros(200));
        }
        signal(child.id(), "STOP");
        let bodies = names(&partial);
        let mid_transfer = bodies.len() == 1
            && std::fs::metadata(partial.join(&bodies[0])).is_ok_and(|m| m.len() < latest.len() as u64);
        if mid_transfer {
            let body = &bodies[0];
            // A large body goes into its kept file (named by hash and size), which a
            // cut transfer resumes from.
            assert_eq!(*body, format!("sha256-{}-{}", sha256_hex(&latest), latest.len()), "{body}");
            assert_eq!(mode_of(&partial), 0o700, "no one else can reach the unverified bytes");
            assert_eq!(names(&dest).iter().filter(|n| !n.starts_with('.')).collect::<Vec<_>>(), ["app.bin"]);
            assert_destination_holds_only_verified_files(&dest);
        }
        signal(child.id(), "CONT");
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
        assert_eq!(sha256_hex(&std::fs::read(dest.join("app.bin")).unwrap()), sha256_hex(&latest));
        assert!(names(&partial).is_empty(), "the body left the partial folder: {:?}", names(&partial));
        assert_destination_holds_only_verified_files(&dest);
        if mid_transfer {
            caught = true;
            break;
        }
        eprintln!("attempt {attempt}: the transfer ended before it could be stopped; again");
    }
    assert!(caught, "a transfer was caught midway");
}

fn signal(pid: u32, signal: &str) {
    let status =
        std::process::Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
fn a_damaged_blob_is_repaired_by_publishing_the_same_content_again_and_a_host_installs_it() {
    let sandbox = sandbox();
    let content = b"the patch, byte for byte".to_vec();
    sandbox.publish("fix.deb", &content, &["all"]);
    let blob = blob_path(&sandbox, &sha256_hex(&content));
    // Bit rot (or a change on the signing host): same size, other bytes.
    let mut damaged = content.clone();
    damaged[3] ^= 0x20;
    std::fs::remove_file(&blob).unwrap();
    std::fs::write(&blob, &damaged).unwrap();
    let server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr.to_string();

    let out = poll(&sandbox, &addr, "in", &["--min-interval", "1s"]);
    assert_eq!(out.status.code(), Some(3), "the damage is seen by the host: {}", stderr(&out));
    assert!(stderr(&out).contains("hash-mismatch"), "{}", stderr(&out));
    assert!(!sandbox.join("in/fix.deb").exists());

    sandbox.publish("fix.deb", &content, &["all"]);
    assert_eq!(std::fs::read(&blob).unwrap(), content, "the publish repaired the blob");
    assert_eq!(mode_of(&blob), 0o444);
    // The host holds the target for its backoff (from --min-interval), then asks again.
    std::thread::sleep(Duration::from_millis(2100));
    let out = expect_code(
        &mut sandbox.fts([
            "poll",
            "--once",
            "--server",
            &addr,
            "--id",
            "web-01",
            "--dest",
            "in",
            "--min-interval",
            "1s",
        ]),
        0,
    );
    assert!(stdout(&out).contains("1 file(s) installed"), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(std::fs::read(sandbox.join("in/fix.deb")).unwrap(), content);
}
