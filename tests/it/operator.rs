//! Operator mistakes that used to pass silently: a target that reaches no host, a
//! mistyped status folder, a CA folder readable by everyone.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::common::{Sandbox, expect_code, expect_success, stderr, stdout};

fn journal_len(sandbox: &Sandbox) -> u64 {
    fs::metadata(sandbox.join("store/journal")).map_or(0, |m| m.len())
}

#[test]
fn a_target_that_no_issued_certificate_has_is_refused_with_what_was_probably_meant() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &["web"]), ("db-01", &[])]);
    fs::write(sandbox.join("fix.sh"), b"echo fixed").unwrap();
    sandbox.publish("first.txt", b"so the store exists", &["all"]);
    let before = journal_len(&sandbox);

    let out = expect_code(&mut sandbox.fts(["publish", "fix.sh", "--to", "web"]), 2);
    let err = stderr(&out);
    assert!(err.contains("--to web reaches no host") && err.contains("did you mean group:web?"), "{err}");
    assert!(err.contains("--allow-unknown-target") && err.contains("--known-targets"), "{err}");
    let out = expect_code(&mut sandbox.fts(["publish", "fix.sh", "--to", "group:web", "--to", "db-1"]), 2);
    assert!(stderr(&out).contains("did you mean db-01?"), "{}", stderr(&out));
    assert_eq!(journal_len(&sandbox), before, "a refused publish writes nothing, for any target");

    for good in ["web-01", "db-01", "group:web", "all"] {
        expect_success(&mut sandbox.fts(["publish", "fix.sh", "--to", good]));
    }
    let out =
        expect_success(&mut sandbox.fts(["publish", "fix.sh", "--to", "web", "--allow-unknown-target"]));
    assert!(stdout(&out).contains("web seq 1"), "{}", stdout(&out));

    // Certificates made outside fts are not in the index: an operator lists them.
    fs::write(sandbox.join("targets.txt"), "# made with openssl\nmail-01\ngroup:mail\n").unwrap();
    expect_code(&mut sandbox.fts(["publish", "fix.sh", "--to", "mail-01"]), 2);
    for target in ["mail-01", "group:mail"] {
        expect_success(&mut sandbox.fts([
            "publish",
            "fix.sh",
            "--to",
            target,
            "--known-targets",
            "targets.txt",
        ]));
    }
}

#[test]
fn the_index_is_found_beside_the_signing_key_or_named_with_ca_dir() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &[])]);
    fs::create_dir(sandbox.join("offline")).unwrap();
    fs::rename(sandbox.join("certs/signing.key"), sandbox.join("offline/signing.key")).unwrap();
    fs::write(sandbox.join("fix.sh"), b"echo fixed").unwrap();
    let publish = |extra: &[&str]| {
        let mut args = vec!["publish", "fix.sh", "--to", "web-01", "--signing-key", "offline/signing.key"];
        args.extend(extra);
        sandbox.fts(args)
    };
    let out = expect_code(&mut publish(&[]), 2);
    assert!(stderr(&out).contains("no index of issued certificates") && stderr(&out).contains("--ca-dir"));
    expect_success(&mut publish(&["--ca-dir", "certs"]));
}

#[test]
fn a_group_on_an_index_older_than_its_groups_field_is_a_warning() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &["web"])]);
    // The index as fts wrote it before it recorded groups: five fields a line.
    let index = fs::read_to_string(sandbox.join("certs/issued.tsv")).unwrap();
    let old: Vec<String> = index
        .lines()
        .map(|line| {
            if line.starts_with('#') { line.to_owned() } else { line.rsplit_once('\t').unwrap().0.to_owned() }
        })
        .collect();
    fs::write(sandbox.join("certs/issued.tsv"), old.join("\n") + "\n").unwrap();
    fs::write(sandbox.join("fix.sh"), b"echo fixed").unwrap();

    let out = expect_success(&mut sandbox.fts(["publish", "fix.sh", "--to", "group:web"]));
    assert!(stderr(&out).contains("warning: --to group:web") && stderr(&out).contains("cannot be checked"));
    expect_code(&mut sandbox.fts(["publish", "fix.sh", "--to", "web-02"]), 2);
}

#[test]
fn the_issued_index_records_the_groups_of_each_client_certificate() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[("web-01", &["web", "frontend"]), ("db-01", &[])]);
    let index = fs::read_to_string(sandbox.join("certs/issued.tsv")).unwrap();
    let groups_of = |id: &str| {
        let line = index.lines().find(|l| l.contains(&format!("\tclient\t{id}\t"))).unwrap();
        line.rsplit('\t').next().unwrap().to_owned()
    };
    assert_eq!(groups_of("web-01"), "frontend,web");
    assert_eq!(groups_of("db-01"), "-");
}

#[test]
fn a_mistyped_status_folder_is_an_error_not_an_empty_fleet() {
    let sandbox = Sandbox::new();
    sandbox.provision(&[]);
    sandbox.publish("a.txt", b"a", &["all"]);
    let out = expect_code(&mut sandbox.fts(["status", "--status-dir", "statsu"]), 1);
    assert!(stderr(&out).contains("there is no status folder statsu"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "nothing a script could take for a fleet");
    fs::create_dir(sandbox.join("empty")).unwrap();
    let out = expect_code(&mut sandbox.fts(["status", "--status-dir", "empty", "--json"]), 1);
    assert!(stderr(&out).contains("is not a status folder of fts serve"), "{}", stderr(&out));

    // A server's own folder before any client polled: an empty fleet, truthfully.
    let server = crate::common::server::ServeProcess::start(&sandbox, &[]);
    server.wait_for_log(std::time::Duration::from_secs(10), |l| l["fields"]["message"] == "listening");
    let out = expect_success(&mut sandbox.fts(["status"]));
    assert!(stdout(&out).contains("no client has polled yet"), "{}", stdout(&out));
}

#[test]
fn a_new_ca_folder_is_private_to_its_owner() {
    let sandbox = Sandbox::new();
    expect_success(&mut sandbox.fts(["keygen", "ca", "--dir", "ca/nested"]));
    for dir in ["ca", "ca/nested"] {
        let mode = fs::metadata(sandbox.join(dir)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{dir}");
    }
    let index = fs::metadata(sandbox.join("ca/nested/issued.tsv")).unwrap();
    assert!(index.is_file());
}
