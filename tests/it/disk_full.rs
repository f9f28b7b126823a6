//! A host whose destination runs out of space, on a real small file system (an 8 MiB
//! tmpfs mounted for the test; it needs root, as in CI: without it the test says why
//! and skips, unless `FTS_REQUIRE_TMPFS` is set). A receive that cannot fit, found
//! before it starts or when a write fails half-way, is reported as `install-failed`
//! (exit 3): the old file is kept, no partial file is left, nothing is applied, and a
//! later poll succeeds once there is room.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::server::ServeProcess;
use crate::common::{Sandbox, run, stderr, stdout};
use sha2::{Digest, Sha256};

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status().is_ok_and(|s| s.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// An 8 MiB tmpfs on `dest`, or `None` when it cannot be mounted (not root) and
/// `FTS_REQUIRE_TMPFS` is unset: the test `name` then says why it skips.
fn small_destination(dest: &Path, name: &str) -> Option<Tmpfs> {
    // mode=0750: a tmpfs root is 1777 by default, and fts refuses a destination that
    // others can write.
    match Tmpfs::mount(dest, "8m,mode=0750") {
        Ok(mounted) => Some(mounted),
        Err(reason) if std::env::var_os("FTS_REQUIRE_TMPFS").is_none() => {
            eprintln!("SKIPPED {name}: {reason}");
            None
        }
        Err(reason) => panic!("FTS_REQUIRE_TMPFS is set and {reason}"),
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn sha256_file(path: &Path) -> [u8; 32] {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Distinct contents for each version.
fn version(n: u8, size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8 ^ n).collect()
}

/// The temporary files of a poll into `dest`: the state's beside it (`.fts-tmp-state-*`)
/// and the bodies being received in its partial folder (`.fts-partial/body-*`).
fn temps(dest: &Path) -> Vec<String> {
    let names = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|entries| entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default()
    };
    let mut temps: Vec<String> = names(dest).into_iter().filter(|n| n.starts_with(".fts-tmp-")).collect();
    temps.extend(names(&dest.join(".fts-partial")).into_iter().map(|n| format!(".fts-partial/{n}")));
    temps
}

fn state(dest: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dest.join(".fts-state.json")).unwrap()).unwrap()
}

/// Fills the file system of `dir` with `filler` until at most `leave` bytes are free.
fn fill(dir: &Path, filler: &Path, leave: u64) {
    let mut file = std::fs::File::options().create(true).append(true).open(filler).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        let free = free_space(dir);
        if free <= leave {
            return;
        }
        let n = usize::try_from(free - leave).unwrap_or(chunk.len()).min(chunk.len());
        if let Err(e) = file.write_all(&chunk[..n]) {
            assert_eq!(e.raw_os_error(), Some(28), "only ENOSPC ends the filling: {e}");
            return;
        }
    }
}

fn free_space(dir: &Path) -> u64 {
    let out = Command::new("stat").args(["-f", "-c", "%a %S"]).arg(dir).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().unwrap());
    parts.next().unwrap() * parts.next().unwrap()
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill").args([&format!("-{signal}"), &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
fn a_receive_that_runs_out_of_space_fails_cleanly_and_succeeds_later() {
    let sandbox = Sandbox::new();
    let dest = sandbox.join("in");
    let Some(_tmpfs) = small_destination(&dest, "a_receive_that_runs_out_of_space") else { return };
    sandbox.provision(&[("web-01", &[])]);
    let v1 = version(1, 512 * 1024);
    sandbox.publish("app.bin", &v1, &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr.to_string();
    let poll = || sandbox.fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"]);
    let filler = sandbox.join("in/.filler");
    let installed = dest.join("app.bin");

    let out = run(&mut poll());
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sha256_file(&installed), sha256(&v1));

    // What a clean failure leaves: the installed file and the applied seqs as before.
    let refused_cleanly =
        |out: &std::process::Output, what: &str, old: [u8; 32], applied: &serde_json::Value| {
            assert_eq!(out.status.code(), Some(3), "{what}: exit 3 for a local failure:\n{}", stderr(out));
            assert!(stderr(out).contains("install-failed"), "{what}: {}", stderr(out));
            assert_eq!(sha256_file(&installed), old, "{what}: the old file is kept whole");
            assert_eq!(temps(&dest), Vec::<String>::new(), "{what}: no partial file is left");
            assert_eq!(&state(&dest)["since"], applied, "{what}: nothing was applied");
        };

    // 1. A new version larger than the free space: refused before a byte is written.
    let v2 = version(2, 6 << 20);
    sandbox.publish("app.bin", &v2, &["all"]);
    fill(&dest, &filler, 2 << 20);
    let applied = state(&dest)["since"].clone();
    let out = run(&mut poll());
    refused_cleanly(&out, "too little space up front", sha256(&v1), &applied);

    // 1b. Not a byte free: the state cannot take the report either. Still exit 3 with
    //     the report (kept in memory), the state on disk as it was.
    fill(&dest, &filler, 0);
    let out = run(&mut poll());
    refused_cleanly(&out, "a completely full disk", sha256(&v1), &applied);
    std::fs::remove_file(&filler).unwrap();

    // 2. The disk fills up while the body is written: the client is stopped once its
    //    temporary file exists, the space is taken, and it resumes into a full disk.
    //    (If it finished before it could be stopped, a new version is published and
    //    the attempt repeated.)
    let mut latest = v2;
    let mut mid_write = false;
    for attempt in 3..8u8 {
        let old = sha256_file(&installed);
        let applied = state(&dest)["since"].clone();
        let mut child = poll().stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let started = Instant::now();
        while temps(&dest).iter().all(|t| t.starts_with(".fts-tmp-state-"))
            && child.try_wait().unwrap().is_none()
        {
            assert!(started.elapsed() < Duration::from_secs(30), "the transfer never started");
            std::thread::sleep(Duration::from_micros(100));
        }
        signal(child.id(), "STOP");
        let body = temps(&dest).into_iter().find(|t| !t.starts_with(".fts-tmp-state-"));
        let partial = body
            .is_some_and(|t| std::fs::metadata(dest.join(t)).is_ok_and(|m| m.len() < latest.len() as u64));
        if partial {
            fill(&dest, &filler, 0);
        }
        signal(child.id(), "CONT");
        let out = child.wait_with_output().unwrap();
        if partial {
            refused_cleanly(&out, "the disk filled up mid-write", old, &applied);
            std::fs::remove_file(&filler).unwrap();
            mid_write = true;
            break;
        }
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(sha256_file(&installed), sha256(&latest));
        eprintln!("attempt {attempt}: the transfer ended before it could be stopped; again");
        latest = version(attempt, 6 << 20);
        sandbox.publish("app.bin", &latest, &["all"]);
    }
    assert!(mid_write, "a transfer was caught mid-write");

    // 3. Room again: the next poll installs the newest version and applies it.
    let applied = state(&dest)["since"].clone();
    let out = run(&mut poll());
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(sha256_file(&installed), sha256(&latest));
    assert_ne!(state(&dest)["since"], applied);
    assert_eq!(temps(&dest), Vec::<String>::new());
}

#[test]
fn an_entry_that_does_not_fit_holds_only_its_target_and_installs_once_there_is_room() {
    let sandbox = Sandbox::new();
    let dest = sandbox.join("in");
    let Some(_tmpfs) = small_destination(&dest, "an_entry_that_does_not_fit") else { return };
    sandbox.provision(&[("web-01", &[])]);
    let big = version(1, 6 << 20);
    sandbox.publish("php-runtime.tar", &big, &["all"]);
    let fix = b"urgent fix, 24 bytes ok\n".to_vec();
    sandbox.publish("urgent-fix.sh", &fix, &["web-01"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr.to_string();
    // A long backoff: only the freed space can end the hold within this test.
    let poll = || {
        sandbox.fts([
            "poll",
            "--once",
            "--server",
            &addr,
            "--id",
            "web-01",
            "--dest",
            "in",
            "--min-interval",
            "1h",
            "--max-interval",
            "2h",
        ])
    };
    let filler = sandbox.join("in/.filler");
    fill(&dest, &filler, 2 << 20);

    let out = run(&mut poll());
    assert_eq!(out.status.code(), Some(3), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("1 file(s) installed"), "the urgent fix did not wait: {}", stdout(&out));
    assert!(stdout(&out).contains("all at seq 1 (install-failed)"), "{}", stdout(&out));
    assert_eq!(std::fs::read(dest.join("urgent-fix.sh")).unwrap(), fix);
    assert!(!dest.join("php-runtime.tar").exists());
    assert_eq!(temps(&dest), Vec::<String>::new(), "no partial file is left");

    std::fs::remove_file(&filler).unwrap();
    let out = run(&mut poll());
    assert_eq!(
        out.status.code(),
        Some(0),
        "room again ends the hold at once: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(sha256_file(&dest.join("php-runtime.tar")), sha256(&big));
}
