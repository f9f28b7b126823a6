//! The shared status suite ([`suite`]) against the files backend, the embedded
//! default ([`fts_status::StatusDir`] in a temporary folder).

mod suite;

use fts_status::StatusDir;

/// One test per suite entry, each on a fresh, empty status folder.
macro_rules! files_suite {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let backend = StatusDir::open_or_create(dir.path().join("status")).unwrap();
                suite::$name(&backend);
            }
        )*

        #[test]
        fn every_suite_test_runs_here() {
            let here = [$(stringify!($name)),*];
            for (name, _) in suite::SUITE {
                assert!(here.contains(name), "{name} of the shared suite does not run against the files");
            }
        }
    };
}

files_suite!(
    a_poll_is_recorded_and_read_back,
    an_unchanged_poll_is_noted_and_its_time_shown_after_a_flush,
    what_was_offered_is_recorded_for_a_known_host,
    receipts_are_stored_in_order_and_update_their_host,
    the_receipts_of_a_thousand_hosts_at_once_are_all_stored,
    a_forgotten_host_is_gone_and_its_receipts_stay_as_evidence,
    the_server_status_round_trips,
    a_host_whose_state_was_lost_starts_afresh,
);
