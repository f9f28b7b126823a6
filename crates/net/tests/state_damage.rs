//! Properties of the host's state file beyond "arbitrary bytes never panic the parser"
//! (a unit test in `src/client/state.rs`): whatever the state holds is read back
//! exactly (nothing lost in a round trip), a torn or damaged state file is an error
//! and never a state that silently forgot entries, and a client that meets a damaged
//! state stops without touching it or the files already installed.

use std::path::Path;
use std::time::Duration;

use fts_net::client::state::{Installed, PendingHook, State};
use fts_net::client::{Client, ClientSettings, ClientTransport, PollError};
use fts_proto::{ClientId, Target};
use fts_testkit::strategies::{file_hash, file_name, published, report, seq, target};
use proptest::prelude::*;

/// Seqs within the wire range (2^53 - 1), 0 included: `since` counts entries.
fn since() -> impl Strategy<Value = u64> {
    0u64..(1 << 53)
}

fn state() -> impl Strategy<Value = State> {
    let installed =
        (target(), seq(), published(), file_hash()).prop_map(|(target, seq, published, file_hash)| {
            Installed { target, seq, published, file_hash, file_size: None, key_id: None, signature: None }
        });
    let hook = (file_name(), target(), seq(), published(), file_hash()).prop_map(
        |(file_name, target, seq, published, file_hash)| PendingHook {
            file_name,
            target,
            seq,
            published,
            file_hash,
            failures: 0,
            retry_at: None,
            given_up: false,
        },
    );
    (
        proptest::collection::btree_map(target(), since(), 0..6),
        proptest::collection::btree_map(file_name(), installed, 0..6),
        proptest::collection::vec(hook, 0..3),
        proptest::collection::vec(report(), 0..4),
    )
        .prop_map(|(since, installed, hooks_pending, reports)| State {
            since,
            installed,
            hooks_pending,
            reports,
            ..State::empty()
        })
}

/// A client over `dest` (it never connects in these tests).
fn settings(dest: &Path) -> ClientSettings {
    let mut trusted = fts_trust::TrustedKeys::default();
    trusted.insert(fts_trust::SigningKey::from_seed(&[1; 32]).public_key(), Path::new("test")).unwrap();
    let id = ClientId::parse("web-01").unwrap();
    ClientSettings {
        receipt_signer: None,
        next_poll_within: 60,
        reboot_required_file: None,
        failover: Default::default(),
        server: "127.0.0.1:9".into(),
        transport: ClientTransport::Plaintext,
        id: id.clone(),
        targets: vec![Target::Client(id), Target::All],
        trusted,
        dest: dest.to_owned(),
        state_path: dest.join(".fts-state.json"),
        max_file_size: 1 << 20,
        read_timeout: Duration::from_secs(1),
        poll_timeout: Duration::from_secs(60),
        max_frames: 10,
        hook: None,
        exec_withdrawn: None,
        hook_retries: 5,
        hold_on_hook_failure: false,
        retry_base: std::time::Duration::from_secs(10),
        min_free_percent: 5,
        max_rate: None,
        log: fts_net::client::freshness::LogSettings::default(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_state_is_read_back_exactly(state in state()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".fts-state.json");
        state.save(&path).unwrap();
        prop_assert_eq!(State::load(&path).unwrap(), state);
    }

    #[test]
    fn a_torn_state_file_is_an_error_never_a_state_that_forgot_entries(state in state(), cut in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".fts-state.json");
        state.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let cut = ((bytes.len() as f64) * cut) as usize;
        prop_assert!(State::parse(&bytes[..cut]).is_err(), "a state cut at {} of {} bytes parsed", cut, bytes.len());
    }

    #[test]
    fn a_damaged_state_stops_the_client_and_is_left_as_it_was(
        state in state(),
        at in 0.0f64..1.0,
        junk in proptest::collection::vec(any::<u8>(), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("in");
        std::fs::create_dir(&dest).unwrap();
        let path = dest.join(".fts-state.json");
        state.save(&path).unwrap();
        std::fs::write(dest.join("installed.bin"), b"a file installed earlier").unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let start = ((bytes.len() as f64) * at) as usize;
        let end = (start + junk.len()).min(bytes.len());
        bytes.splice(start..end, junk);
        std::fs::write(&path, &bytes).unwrap();

        match (State::parse(&bytes), Client::open(settings(&dest), false)) {
            // Still a valid state (the junk landed in a value): it is read as written.
            (Ok(parsed), Ok(client)) => prop_assert_eq!(client.state(), &parsed),
            (Err(_), Err(PollError::State(e))) => {
                prop_assert!(e.to_string().contains("--reset-state"), "{}", e);
                prop_assert_eq!(std::fs::read(&path).unwrap(), bytes, "the damaged state is kept for the operator");
                prop_assert_eq!(std::fs::read(dest.join("installed.bin")).unwrap(), b"a file installed earlier");
            }
            (parsed, opened) => prop_assert!(false, "parse {:?} but open {:?}", parsed.is_ok(), opened.is_ok()),
        }
    }
}
