//! A reduced load run in the suite (the full one is `scripts/load.sh`): 40 hosts, each
//! with its own client id and certificate, poll the real `fts serve` three times each,
//! all at once, through the real verifying client, while 60 idle TCP connections are
//! held open. No poll may fail, every idle connection is closed by the handshake
//! timeout, and the server's peak memory stays far below 200 MiB.

#[path = "../../examples/load/driver.rs"]
mod driver;

use std::sync::Arc;
use std::time::Duration;

use crate::common::server::ServeProcess;
use crate::common::{Sandbox, expect_success};

const CLIENTS: usize = 40;
const POLLS: usize = 3;
const IDLE: usize = 60;

#[test]
fn forty_hosts_poll_at_once_beside_sixty_idle_connections() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[]);
    let ids: Vec<String> = (1..=CLIENTS).map(|n| format!("host-{n}")).collect();
    for id in &ids {
        expect_success(&mut sandbox.fts(["keygen", "client", "--id", id]));
    }
    sandbox.publish("motd.txt", b"hello, fleet", &["all"]);
    sandbox.publish("patch.deb", &vec![7u8; 256 * 1024], &["all"]);
    sandbox.publish("own.conf", b"for host-1 only", &["host-1"]);
    // Every simulated host and idle connection comes from 127.0.0.1, one source to the
    // per-source limits: lift them as a NAT gateway in --trusted-proxy would be.
    let server =
        ServeProcess::start(&sandbox, &["--handshake-timeout", "2s", "--max-handshakes-per-ip", "10000"]);

    let config = driver::LoadConfig {
        server: server.addr,
        certs: sandbox.join("certs"),
        work: sandbox.join("hosts"),
        ids,
        polls_per_client: POLLS,
        idle_connections: IDLE,
        idle_limit: Duration::from_secs(60),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = runtime.block_on(driver::run(Arc::new(config)));
    let rss = driver::peak_rss(server.child.id()).expect("the server's VmHWM");
    eprintln!("load: {}; server peak RSS {:.1} MiB", report.summary(), rss as f64 / 1048576.0);

    assert!(report.failures.is_empty(), "failed polls: {:#?}", report.failures);
    assert_eq!(report.polls_ok, CLIENTS * POLLS);
    assert_eq!(report.files_installed, CLIENTS * 2 + 1, "every host got its files once");
    assert_eq!(report.idle_opened, IDLE);
    assert_eq!(report.idle_closed_by_server, IDLE, "the handshake timeout closed every idle connection");
    assert!(rss < 200 << 20, "server peak RSS {rss} bytes");
    assert_eq!(
        std::fs::read(sandbox.join("hosts/host-1/own.conf")).unwrap(),
        b"for host-1 only",
        "what a host installed is what was published for it"
    );
    assert!(!sandbox.join("hosts/host-2/own.conf").exists());
}
