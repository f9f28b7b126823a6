//! One host, `web-01` in group `web`, and the commands the issue-19 tests run for it
//! (withdraw.rs, supersede.rs, rotate.rs, gc.rs), each under [`LIMIT`].

use std::time::Duration;

use crate::common::{Run, Sandbox, run_bounded};

/// The host's client id.
pub const ID: &str = "web-01";
/// A command that has not ended by then is a hang.
pub const LIMIT: Duration = Duration::from_secs(60);

/// `fts ARGS` in the sandbox, bounded.
pub fn fts(sandbox: &Sandbox, args: &[&str]) -> Run {
    run_bounded(&mut sandbox.fts(args), LIMIT)
}

/// A sandbox with the CA, the server's certificate, a signing key and web-01.
pub fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.provision(&[(ID, &["web"])]);
    sandbox
}

/// `fts publish` of `contents` as `name` to `target`, signed with `key`.
pub fn try_publish(sandbox: &Sandbox, name: &str, contents: &[u8], target: &str, key: &str) -> Run {
    let source = sandbox.join("outbox").join(name);
    std::fs::create_dir_all(source.parent().expect("outbox")).expect("create outbox");
    std::fs::write(&source, contents).expect("write the file to publish");
    let source = source.to_str().expect("a UTF-8 temp path");
    fts(
        sandbox,
        &["publish", source, "--as", name, "--to", target, "--signing-key", key, "--ca-dir", "certs"],
    )
}

/// Publishes `contents` as `name` to web-01 with `certs/signing.key`.
pub fn publish(sandbox: &Sandbox, name: &str, contents: &[u8]) {
    try_publish(sandbox, name, contents, ID, "certs/signing.key").expect(0, "publish");
}

/// `fts poll --once` as web-01 into `dest`, with `extra`.
pub fn poll(sandbox: &Sandbox, addr: std::net::SocketAddr, dest: &str, extra: &[&str]) -> Run {
    let addr = addr.to_string();
    let mut args =
        vec!["poll", "--once", "--server", &addr, "--id", ID, "--dest", dest, "--min-interval", "1s"];
    args.extend(extra);
    fts(sandbox, &args)
}

/// web-01's `since` in the state of `dest` (0 with no state file: nothing applied).
pub fn since(sandbox: &Sandbox, dest: &str) -> u64 {
    let Ok(bytes) = std::fs::read(sandbox.join(dest).join(".fts-state.json")) else { return 0 };
    let state: serde_json::Value = serde_json::from_slice(&bytes).expect("the state is JSON");
    state["since"][ID].as_u64().unwrap_or(0)
}
