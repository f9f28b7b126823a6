//! Helpers shared by the end-to-end tests: run the real `fts` binary in a temporary
//! working folder and, when a run does not end as expected, fail with the command,
//! its exit status, stdout and stderr, so that a CI log says what happened.
#![allow(dead_code)] // each test file uses its own subset

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary working folder in which `fts` runs with a clean `FTS_*` environment.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        Sandbox { dir: tempfile::tempdir().expect("create a temp dir") }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// `fts` with the given arguments, run in the sandbox, with no `FTS_*` variable
    /// inherited from the caller's environment.
    pub fn fts<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fts"));
        cmd.args(args).current_dir(self.path());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FTS_") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    /// `fts poll` in loop mode as `id` against `server`, into `in/`, polling every
    /// second (`--interval 1s`, with the server's `--poll-after 1s`: the host waits the
    /// later of the two) without jitter; more flags after `extra`.
    pub fn poll_loop(&self, server: std::net::SocketAddr, id: &str, extra: &[&str]) -> Command {
        let server = server.to_string();
        let mut args = vec!["poll", "--server", &server, "--id", id, "--dest", "in"];
        args.extend(["--interval", "1s", "--min-interval", "1s", "--jitter", "0%"]);
        args.extend(extra);
        self.fts(args)
    }
}

/// Runs the command and returns its output, whatever its status.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs the command and checks its exit code; on a mismatch, panics with everything
/// needed to see why.
pub fn expect_code(cmd: &mut Command, code: i32) -> Output {
    let out = run(cmd);
    if out.status.code() != Some(code) {
        panic!(
            "expected exit code {code}, got {:?}\ncommand: {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Runs the command and checks that it succeeded.
pub fn expect_success(cmd: &mut Command) -> Output {
    expect_code(cmd, 0)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub mod hostile_server;
pub mod log_frames;
pub mod metrics;
pub mod one_host;
pub mod raw_client;
pub mod server;

impl Sandbox {
    /// Makes a CA, a server certificate for localhost and 127.0.0.1, a signing key,
    /// and one client certificate per `(id, groups)`, all in `certs/`, with the real
    /// `fts keygen`.
    pub fn provision(&self, clients: &[(&str, &[&str])]) {
        expect_success(&mut self.fts(["keygen", "ca"]));
        expect_success(&mut self.fts(["keygen", "server", "--name", "localhost", "--name", "127.0.0.1"]));
        expect_success(&mut self.fts(["keygen", "signing"]));
        for (id, groups) in clients {
            let mut args = vec!["keygen", "client", "--id", id];
            for group in *groups {
                args.extend(["--group", group]);
            }
            expect_success(&mut self.fts(args));
        }
    }

    /// Publishes `contents` as `name` to `targets` with the real `fts publish`.
    pub fn publish(&self, name: &str, contents: &[u8], targets: &[&str]) -> Output {
        let source = self.join("outbox").join(name);
        std::fs::create_dir_all(source.parent().expect("outbox has a parent")).expect("create outbox");
        std::fs::write(&source, contents).expect("write the file to publish");
        let mut args = vec!["publish".to_owned(), source.display().to_string()];
        for target in targets {
            args.extend(["--to".to_owned(), (*target).to_owned()]);
        }
        expect_success(&mut self.fts(args))
    }
}

/// How a command run by [`run_bounded`] ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Fails unless it exited with `code`, showing its output.
    pub fn expect(&self, code: i32, what: &str) {
        assert_eq!(self.code, code, "{what}\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
    }

    /// The `fts: ...` lines of a non-zero exit.
    pub fn reason_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.starts_with("fts: ")).collect()
    }
}

/// Runs `cmd` with no input, killing it (and failing) if it has not exited within
/// `limit`; an exit by a signal (a crash) fails too.
pub fn run_bounded(cmd: &mut Command, limit: std::time::Duration) -> Run {
    use std::io::Read;
    use std::process::Stdio;
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = out.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = err.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "hung: still running after {limit:?}: {cmd:?}\n--- stderr\n{}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let stdout = out.join().expect("stdout reader");
    let stderr = err.join().expect("stderr reader");
    let Some(code) = status.code() else {
        panic!("{cmd:?} was killed by a signal ({status:?}): it crashed\n--- stderr\n{stderr}");
    };
    Run { code, stdout, stderr }
}
