//! `fts poll`: the flags as [`ClientSettings`] and a [`Schedule`]. The host's
//! credentials are loaded here: its certificate says which groups it is in, so its
//! targets are known only once it is read, and a certificate of another client is a
//! usage error before anything is dialled. The defaults that depend on other flags:
//! `certs/ID.crt` and `certs/ID.key` from `--id`, `DEST/.fts-state.json` from `--dest`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use fts_net::client::failover::{Endpoint, FailoverSettings, ServerOrder};
use fts_net::client::freshness::LogSettings;
use fts_net::client::hook::Hook;
use fts_net::client::poller::Schedule;
use fts_net::client::{ClientSettings, ClientTransport};
use fts_trust::note::{TimestampPublic, verify_checkpoint_any_origin};
use fts_trust::pem::{load_certificates, load_private_key};
use fts_trust::{ClientIdentity, TrustedKeys, client_identity};

use crate::UsageError;
use crate::args::{PollArgs, ServerOrderArg};
use crate::units::Rate;

/// The most frames accepted in one answer: a bound on what one answer can make this
/// host read, whatever the server sends.
const MAX_FRAMES: usize = 10_000;

/// What `fts poll` is to run.
pub struct Poll {
    pub settings: ClientSettings,
    pub schedule: Schedule,
    /// `--once`: one round, then the exit code says how it went.
    pub once: bool,
    /// `--reset-state`: start from empty state when the state file is damaged.
    pub reset_state: bool,
    /// `--reset-log-state`: start the log state again.
    pub reset_log_state: bool,
    pub metrics_file: Option<PathBuf>,
    /// `--rerun-hook NAME`: run that hook now instead of polling.
    pub rerun_hook: Option<fts_proto::FileName>,
}

impl Poll {
    pub fn resolve(args: PollArgs) -> anyhow::Result<Self> {
        if args.min_interval > args.max_interval {
            return Err(UsageError::new("--min-interval is longer than --max-interval").into());
        }
        let schedule = Schedule {
            interval: args.interval,
            jitter_percent: args.jitter,
            min_interval: args.min_interval,
            max_interval: args.max_interval,
        };
        let id = args.id;
        let Some((first, others)) = args.server.split_first() else {
            return Err(UsageError::new("--server is required").into());
        };
        for (i, server) in args.server.iter().enumerate() {
            if args.server[..i].iter().any(|s| s.address.eq_ignore_ascii_case(&server.address)) {
                return Err(UsageError::new(format!("--server {} is given twice", server.address)).into());
            }
        }

        let trust = if args.trust.is_empty() { vec![PathBuf::from("certs/signing.pub")] } else { args.trust };
        let trusted = TrustedKeys::load(&trust).context("loading the trusted signing keys (--trust)")?;

        let (transport, targets, receipt_signer) = if args.plaintext {
            (ClientTransport::Plaintext, ClientIdentity::claimed(id.clone()).targets(), None)
        } else {
            let cert = args.cert.unwrap_or_else(|| PathBuf::from(format!("certs/{id}.crt")));
            let key = args.key.unwrap_or_else(|| PathBuf::from(format!("certs/{id}.key")));
            let chain = load_certificates(&cert)?;
            let identity = client_identity(&chain[0])
                .with_context(|| format!("{} is not a usable client certificate", cert.display()))?;
            if identity.id != id {
                return Err(UsageError::new(format!(
                    "{} is the certificate of client {}, not of --id {id}",
                    cert.display(),
                    identity.id
                ))
                .into());
            }
            let certificate = chain[0].clone();
            let config =
                fts_trust::client_config(load_certificates(&args.ca)?, chain, load_private_key(&key)?)
                    .map_err(|e| super::key_mismatch_names_files(e, &cert, &key))?;
            let server_name = fts_trust::tls::server_name(&first.host)?;
            // The same key signs this host's receipts.
            let signer = fts_trust::ReceiptSigner::from_pem_file(&key)
                .with_context(|| format!("{} cannot sign this host's receipts", key.display()))?;
            (
                ClientTransport::tls(config, server_name, &certificate),
                identity.targets(),
                Some(Arc::new(signer)),
            )
        };

        let others = others
            .iter()
            .map(|server| {
                let server_name = match args.plaintext {
                    true => None,
                    false => Some(fts_trust::tls::server_name(&server.host)?),
                };
                Ok(Endpoint { address: server.address.clone(), server_name })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let failover = FailoverSettings {
            others,
            order: match args.server_order {
                ServerOrderArg::InOrder => ServerOrder::InOrder,
                ServerOrderArg::Random => ServerOrder::Random,
            },
        };
        // Absolute, so that a hook gets a path it can use wherever it changes directory to.
        let dest = std::path::absolute(&args.dest)
            .with_context(|| format!("cannot resolve --dest {}", args.dest.display()))?;
        // Absolute too, so that an error about its folder names it whole.
        let state_path = match args.state {
            Some(state) => std::path::absolute(&state)
                .with_context(|| format!("cannot resolve --state {}", state.display()))?,
            None => dest.join(".fts-state.json"),
        };
        let timestamp_keys = args
            .timestamp_key
            .iter()
            .map(|path| TimestampPublic::load(path))
            .collect::<Result<Vec<_>, _>>()
            .context("loading the timestamp signers' keys (--timestamp-key)")?;
        let initial_checkpoint = match &args.log_checkpoint {
            Some(path) => Some(initial_checkpoint(path, &trusted)?),
            None => None,
        };
        // What each request promises: the longest wait after a complete round (with
        // --once, the next run is a timer's: at most --max-interval, as the backoff).
        let next_poll_within = match args.once {
            true => schedule.max_interval,
            false => schedule.interval.clamp(schedule.min_interval, schedule.max_interval),
        };
        let next_poll_within =
            next_poll_within.as_secs().saturating_mul(100 + u64::from(schedule.jitter_percent)).div_ceil(100);
        let settings = ClientSettings {
            receipt_signer,
            next_poll_within,
            reboot_required_file: Some(args.reboot_required_file).filter(|p| !p.as_os_str().is_empty()),
            server: first.address.clone(),
            failover,
            transport,
            id,
            targets,
            trusted,
            dest,
            state_path,
            max_file_size: args.max_file_size.bytes(),
            read_timeout: args.read_timeout,
            poll_timeout: args.poll_timeout,
            max_frames: MAX_FRAMES,
            hook: args.exec.map(|program| Hook { program, timeout: args.exec_timeout }),
            exec_withdrawn: args.exec_withdrawn.map(|program| Hook { program, timeout: args.exec_timeout }),
            hook_retries: args.hook_retries,
            hold_on_hook_failure: args.hold_on_hook_failure,
            retry_base: args.min_interval,
            min_free_percent: args.min_free,
            max_rate: args.max_rate.map(Rate::bytes_per_second),
            log: LogSettings {
                origin: args.log_origin,
                initial_checkpoint,
                timestamp_keys,
                max_age: args.max_age,
                withheld_after: args.withheld_after.unwrap_or(args.max_age),
                max_skew: args.max_skew,
            },
        };
        Ok(Poll {
            settings,
            schedule,
            once: args.once,
            reset_state: args.reset_state,
            reset_log_state: args.reset_log_state,
            metrics_file: args.metrics_file,
            rerun_hook: args.rerun_hook,
        })
    }
}

/// `--log-checkpoint FILE`: a checkpoint note signed by a trusted release key.
fn initial_checkpoint(path: &std::path::Path, trusted: &TrustedKeys) -> anyhow::Result<String> {
    let note = fts_fs::read_bounded(path, fts_proto::checkpoint::MAX_NOTE_LEN as u64)
        .map_err(anyhow::Error::from)
        .and_then(|bytes| Ok(String::from_utf8(bytes)?))
        .with_context(|| format!("cannot read --log-checkpoint {}", path.display()))?;
    verify_checkpoint_any_origin(&note, trusted).with_context(|| {
        format!("--log-checkpoint {} is not a checkpoint signed by a trusted release key", path.display())
    })?;
    Ok(note)
}
