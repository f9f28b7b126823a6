//! Crash safety with the real binaries: `fts poll --once` and `fts publish` killed with
//! SIGKILL at seeded random moments of large transfers. After every kill the host
//! holds a whole version of the file (the old one or a new one, compared by hash),
//! never a partial one; the store stays readable; temporary files are cleaned at the
//! next start; and the next run converges.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_success, run, stderr, stdout};
use sha2::{Digest, Sha256};

/// Each version of the file a host receives: large enough that a transfer over
/// loopback takes a while, small enough to keep the test quick.
const POLL_FILE_SIZE: usize = 64 << 20;

/// The file `fts publish` is killed while copying.
const PUBLISH_FILE_SIZE: usize = 128 << 20;

const POLL_KILLS: usize = 10;
const PUBLISH_KILLS: usize = 4;

/// A small seeded PRNG (xorshift64*): the kill points and contents are the same at
/// every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [lo, hi).
    fn fraction(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `size` pseudo-random bytes, different for each `seed`.
fn contents(seed: u64, size: usize) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut bytes = Vec::with_capacity(size);
    while bytes.len() < size {
        bytes.extend_from_slice(&rng.next().to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

fn sha256_file(path: &Path) -> Option<[u8; 32]> {
    let mut file = std::fs::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match std::io::Read::read(&mut file, &mut buffer).expect("read a file to hash it") {
            0 => return Some(hasher.finalize().into()),
            n => hasher.update(&buffer[..n]),
        }
    }
}

/// The names in `dir` that start with `prefix` (and end with `suffix`).
fn names_in(dir: &Path, prefix: &str, suffix: &str) -> BTreeSet<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return BTreeSet::new() };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix) && n.ends_with(suffix))
        .collect()
}

/// When to kill a child: once one of its temporary files in `dir` holds `at` bytes.
struct KillPoint<'a> {
    dir: &'a Path,
    prefix: &'a str,
    suffix: &'a str,
    at: u64,
    /// Kill only once that temporary file has been renamed into place (between the
    /// install and the state write that applies it).
    after_rename: bool,
}

impl KillPoint<'_> {
    /// The temporary files there now: left by an earlier run, not the child's own.
    fn existing(&self) -> BTreeSet<String> {
        names_in(self.dir, self.prefix, self.suffix)
    }
}

/// How a run under a [`KillPoint`] ended.
struct Run {
    killed: bool,
    /// The temporary files there when it was killed (the live one among them).
    temps_at_kill: BTreeSet<String>,
    exit: std::process::ExitStatus,
}

/// Starts `cmd`, waits until a temporary file of `point` reaches its size, and kills
/// the child with SIGKILL. A child that ends first is only waited for.
fn run_and_kill(cmd: &mut Command, point: &KillPoint) -> Run {
    let earlier = point.existing();
    let mut child: Child =
        cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("start the command to kill");
    let started = Instant::now();
    let mut temps_at_kill = BTreeSet::new();
    let mut killed = false;
    let mut full: Option<String> = None;
    loop {
        if child.try_wait().expect("poll the child").is_some() {
            break;
        }
        let temps = names_in(point.dir, point.prefix, point.suffix);
        let mut reached = temps
            .iter()
            .filter(|name| !earlier.contains(*name))
            .find(|name| std::fs::metadata(point.dir.join(name)).is_ok_and(|meta| meta.len() >= point.at));
        if point.after_rename {
            if full.is_none() {
                full = reached.cloned();
            }
            reached = full.as_ref().filter(|name| !temps.contains(*name));
        }
        if reached.is_some() {
            let _ = child.kill();
            killed = true;
            temps_at_kill = temps;
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the command neither ended nor reached {}",
            point.at
        );
        std::thread::sleep(Duration::from_micros(300));
    }
    let exit = child.wait().expect("wait for the child");
    Run { killed: killed && exit.signal() == Some(9), temps_at_kill, exit }
}

/// The `since` of a target in the host's state file.
fn since(state: &Path, target: &str) -> u64 {
    let text = std::fs::read_to_string(state).unwrap_or_else(|e| panic!("{}: {e}", state.display()));
    let value: serde_json::Value = serde_json::from_str(&text).expect("the state is JSON");
    value["since"][target].as_u64().unwrap_or(0)
}

#[test]
fn polls_killed_mid_transfer_leave_the_old_or_the_new_file_never_a_partial_one() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    std::fs::create_dir_all(sandbox.join("store")).unwrap();
    let server = ServeProcess::start(&sandbox, &[]);
    let addr = server.addr.to_string();
    let dest = sandbox.join("in");
    let partial = dest.join(".fts-partial");
    let installed = dest.join("big.bin");
    let poll = || {
        let mut cmd = sandbox.fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"]);
        cmd.env("RUST_LOG", "warn");
        cmd
    };

    // Every version published so far, by hash, oldest first.
    let mut versions: Vec<[u8; 32]> = Vec::new();
    let publish_version = |versions: &mut Vec<[u8; 32]>| {
        let data = contents(versions.len() as u64 + 1, POLL_FILE_SIZE);
        versions.push(Sha256::digest(&data).into());
        sandbox.publish("big.bin", &data, &["all"]);
    };

    // The old version, installed.
    publish_version(&mut versions);
    expect_success(&mut poll());
    assert_eq!(sha256_file(&installed), Some(versions[0]));

    let mut rng = Rng(0x00f7_5c4a_5e5a_fe11);
    let mut kills = 0;
    // Kills that left the version installed before the run, and a newer one.
    let (mut kept_old, mut got_new) = (0, 0);
    let mut leftovers = BTreeSet::new();
    let mut state_leftovers = BTreeSet::new();
    for round in 0..40 {
        if kills == POLL_KILLS {
            break;
        }
        let before = sha256_file(&installed).expect("a version is installed");
        let from = versions.iter().position(|v| *v == before).expect("the installed file is a version");
        if from == versions.len() - 1 {
            // The newest is in place: a new version for the next kills.
            publish_version(&mut versions);
        }
        // Most kills land inside the body; one in four once the whole body is written
        // (during the flush), one in four once it has been renamed into place (before or
        // during the state write).
        let (at, after_rename) = match round % 4 {
            1 => (POLL_FILE_SIZE as u64, false),
            3 => (POLL_FILE_SIZE as u64, true),
            _ => ((rng.fraction(0.02, 0.98) * POLL_FILE_SIZE as f64) as u64, false),
        };
        // Bodies are received in the partial folder, never under a name in `in/`; one
        // this large into its kept file (named by hash and size), which the next run
        // resumes rather than removes.
        let point = KillPoint { dir: &partial, prefix: "sha256-", suffix: "", at, after_rename };
        let run = run_and_kill(&mut poll(), &point);

        let after = sha256_file(&installed).expect("the file is never missing");
        let whole = versions[from..].iter().position(|v| *v == after);
        assert!(
            whole.is_some(),
            "round {round}: after a kill at {at} bytes the file is not a whole version (killed: {}, {:?})",
            run.killed,
            run.exit
        );
        // The temporary files of the previous kill were removed when this run started
        // (it was writing a body of its own when it was killed).
        let stale: Vec<_> = leftovers.intersection(&run.temps_at_kill).collect();
        assert!(
            stale.is_empty(),
            "round {round}: temporary files of a killed run were not cleaned: {stale:?}"
        );
        let state_now = names_in(&dest, ".fts-tmp-", "");
        let stale: Vec<_> = state_leftovers.intersection(&state_now).collect();
        assert!(stale.is_empty(), "round {round}: state temps of a killed run were not cleaned: {stale:?}");
        let in_partial = names_in(&partial, "", "");
        leftovers = names_in(&partial, ".fts-tmp-", "");
        state_leftovers = state_now;
        assert!(
            in_partial.len() <= 1,
            "round {round}: at most the body in the partial folder: {in_partial:?}"
        );
        assert!(
            state_leftovers.len() <= 1,
            "round {round}: at most the state temp in in/: {state_leftovers:?}"
        );
        if run.killed {
            kills += 1;
            if after == before { kept_old += 1 } else { got_new += 1 }
        } else {
            assert!(run.exit.success(), "round {round}: a poll that was not killed succeeds: {:?}", run.exit);
            assert!(in_partial.is_empty(), "round {round}: a completed poll leaves no body: {in_partial:?}");
            assert!(state_leftovers.is_empty(), "round {round}: nor a state temp: {state_leftovers:?}");
        }
    }
    assert_eq!(kills, POLL_KILLS, "enough runs were killed mid-transfer");

    // The next poll converges: the newest version, applied, and nothing left over.
    expect_success(&mut poll());
    assert_eq!(sha256_file(&installed), versions.last().copied());
    assert_eq!(since(&dest.join(".fts-state.json"), "all"), versions.len() as u64);
    assert!(names_in(&dest, ".fts-tmp-", "").is_empty(), "no temporary file after a completed poll");
    assert!(names_in(&partial, "", "").is_empty(), "no body left after a completed poll");
    let names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(names, ["big.bin"], "the destination holds only the verified file");
    let out = expect_success(&mut poll());
    assert!(stdout(&out).contains("0 file(s) installed"), "{}{}", stdout(&out), stderr(&out));
    eprintln!(
        "crash: {kills} polls killed mid-transfer over {} versions of 64 MiB: {kept_old} left the old file, \
         {got_new} a new one, none a partial one",
        versions.len()
    );
}

#[test]
fn publishes_killed_mid_copy_leave_a_valid_store_and_their_temps_are_cleaned() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    sandbox.publish("first.txt", b"published before the kills", &["all"]);
    let server = ServeProcess::start(&sandbox, &[]);
    let store = sandbox.join("store");
    let tmp = store.join("tmp");

    let big: PathBuf = sandbox.join("outbox/big.bin");
    std::fs::File::create(&big).unwrap().write_all(&contents(99, PUBLISH_FILE_SIZE)).unwrap();

    let mut rng = Rng(0x0bad_c0ff_ee15_900d);
    let mut kills = 0;
    let mut seq = 1;
    for round in 0..20 {
        if kills == PUBLISH_KILLS {
            break;
        }
        let at = (rng.fraction(0.05, 0.95) * PUBLISH_FILE_SIZE as f64) as u64;
        let point = KillPoint { dir: &tmp, prefix: ".fts-tmp-blob-", suffix: "", at, after_rename: false };
        let mut cmd = sandbox.fts(["publish", big.to_str().unwrap(), "--to", "all"]);
        let run = run_and_kill(&mut cmd, &point);
        let reader = fts_store::StoreReader::open(&store).expect("the store stays readable");
        if run.killed {
            kills += 1;
            assert_eq!(
                reader.entries().len() as u64,
                seq,
                "round {round}: a publish killed mid-copy adds nothing"
            );
            assert_eq!(reader.damage(), None, "round {round}: the journal is untouched");
        } else {
            assert!(run.exit.success(), "round {round}: {:?}", run.exit);
            seq += 1;
            assert_eq!(reader.entries().len() as u64, seq);
        }

        // A killed publisher leaves its temp, its lock released with the process.
        let left = names_in(&tmp, "", "");
        assert_eq!(
            left.len(),
            usize::from(run.killed),
            "round {round}: one temp per killed publish, none from the completed ones: {left:?}"
        );

        // The store works: a status report, and the next publish gets the next seq.
        expect_success(&mut sandbox.fts(["status"]));
        let out = sandbox.publish(&format!("note-{round}.txt"), round.to_string().as_bytes(), &["all"]);
        seq += 1;
        assert!(stdout(&out).contains(&format!("all seq {seq}")), "round {round}: {}", stdout(&out));
        // That publish removed the killed one's temp at once: its lock was free (a live
        // publisher's, however slow, is locked and kept: fts-fs's lock rule).
        assert!(names_in(&tmp, "", "").is_empty(), "round {round}: stale temps were removed");
    }
    assert_eq!(kills, PUBLISH_KILLS, "enough publishes were killed mid-copy");

    // A host gets every entry the store holds.
    let addr = server.addr.to_string();
    let out = run(&mut sandbox.fts(["poll", "--once", "--server", &addr, "--id", "web-01", "--dest", "in"]));
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(since(&sandbox.join("in/.fts-state.json"), "all"), seq);
    eprintln!("crash: {kills} publishes killed mid-copy of 128 MiB; the store stayed valid");
}
