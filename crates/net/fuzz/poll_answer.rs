// Shared by the fuzz target (fuzz_targets/poll_answer.rs) and the stable replay test
// (../tests/fuzz_corpus.rs) through `include!`, so both run exactly the same calls.

/// The seed of the only release key the fuzzed client trusts. The seed corpus is
/// signed with it, so mutations start from answers that pass the signature check.
pub const FUZZ_KEY_SEED: [u8; 32] = [0x5a; 32];

/// The fuzzed client's id; its targets are `web-01`, `all` and `group:web`.
pub const FUZZ_CLIENT_ID: &str = "web-01";

/// The fuzzed client's `--max-file-size`.
pub const FUZZ_MAX_FILE_SIZE: u64 = 1 << 20;

/// Runs one poll of a fresh client whose server sends exactly `data` (and reads
/// whatever the client writes), then checks what a poll may leave behind: no
/// temporary file, and only files whose content is what the state says was installed
/// (so: signed, in sequence, hash checked). Must never panic. Returns what the poll
/// said, for tests.
pub fn poll_answer(data: &[u8]) -> Result<fts_net::client::PollOutcome, fts_net::client::PollError> {
    use fts_net::client::receive::NoProgress;
    use fts_net::client::state::{State, TEMP_PREFIX};
    use fts_net::client::{Client, ClientSettings, ClientTransport};
    use fts_proto::{ClientId, FileHash, FileName, GroupName, Target};
    use sha2::Digest;

    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime");
    }

    // In memory where possible: every state save flushes to disk.
    let scratch = std::path::Path::new("/dev/shm");
    let dir = if scratch.is_dir() { tempfile::tempdir_in(scratch) } else { tempfile::tempdir() }
        .expect("a temporary folder");
    let dest = dir.path().join("dest");
    let state_path = dest.join(".fts-state.json");

    let mut trusted = fts_trust::TrustedKeys::default();
    trusted
        .insert(fts_trust::SigningKey::from_seed(&FUZZ_KEY_SEED).public_key(), std::path::Path::new("fuzz"))
        .expect("one key");
    let id = ClientId::parse(FUZZ_CLIENT_ID).expect("a client id");
    let settings = ClientSettings {
        receipt_signer: None,
        next_poll_within: 60,
        reboot_required_file: None,
        failover: Default::default(),
        server: "fuzz:6543".into(),
        transport: ClientTransport::Plaintext,
        id: id.clone(),
        targets: vec![
            Target::Client(id),
            Target::All,
            Target::Group(GroupName::parse("web").expect("a group")),
        ],
        trusted,
        dest: dest.clone(),
        state_path: state_path.clone(),
        max_file_size: FUZZ_MAX_FILE_SIZE,
        read_timeout: std::time::Duration::from_secs(5),
        poll_timeout: std::time::Duration::from_secs(60),
        max_frames: 64,
        hook: None,
        exec_withdrawn: None,
        hook_retries: 5,
        hold_on_hook_failure: false,
        retry_base: std::time::Duration::from_secs(10),
        min_free_percent: 5,
        max_rate: None,
        log: fts_net::client::freshness::LogSettings::default(),
    };
    let mut client = Client::open(settings, false).expect("open the client");
    let server_side = tokio::io::join(data, tokio::io::sink());
    let result = RUNTIME.with(|rt| rt.block_on(client.poll_over(server_side, &mut NoProgress)));
    drop(client);

    let state = State::load(&state_path).expect("the client's own state reads back");
    let partial = dest.join(fts_net::client::partial::PARTIAL_DIR);
    let left: Vec<_> = std::fs::read_dir(&partial).expect("the partial folder").collect();
    assert!(left.is_empty(), "a body was left in the partial folder: {left:?}");
    for entry in std::fs::read_dir(&dest).expect("the destination") {
        let entry = entry.expect("a folder entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(TEMP_PREFIX), "a temporary file was left behind: {name}");
        if name.starts_with('.') {
            continue;
        }
        let file_name = FileName::parse(&name).expect("only valid file names are written");
        let installed = state.installed.get(&file_name).expect("every file in the destination is recorded");
        let bytes = std::fs::read(entry.path()).expect("an installed file");
        let hash = FileHash::from_digest(sha2::Sha256::digest(&bytes).into());
        assert_eq!(hash, installed.file_hash, "{name} holds what was signed");
    }
    result
}
