//! Several `--server`s (`fts poll --server A --server B ...`): the order a poll tries
//! them in, and whether the answer (or failure) of one makes it try the next. Pure
//! decisions, no I/O: [`Client::poll_until`](crate::client::Client::poll_until) dials
//! and applies them.
//!
//! - **Order** ([`pass_order`]): the server that last answered (remembered in the
//!   state file, [`ServerMemory`]) first, then the others in the order given
//!   (`--server-order in-order`, the default) or shuffled (`random`, which spreads a
//!   fleet over the servers by the first server each host picks). A remembered server
//!   no longer configured is ignored.
//! - **Moving on** ([`judge`]): a server that cannot be reached, whose certificate
//!   fails verification, that refuses the poll (an `error` frame: `busy`, `internal`,
//!   `log-behind`, any other code) or this host's certificate, that closes without
//!   answering, breaks the protocol or stops answering, or whose checkpoint the host
//!   refuses (`behind`, `fork`): the next one is tried. A local failure (the state,
//!   the destination, `--poll-timeout`) stops the pass: another server would not help.
//! - **Stale** (the `stale` alarm is raised after a complete answer): the next server
//!   is tried only when no pass over the list was made for staleness within
//!   `--max-age` ([`stale_pass_due`]). When every server is stale the host stays with
//!   the one it started with and polls at its normal interval: at most one pass over
//!   the list per poll, and at most one pass for staleness per `--max-age`.
//!
//! With a single `--server` nothing here runs: the poll is what it always was.

use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};

use crate::client::PollError;

/// `--server-order`: how the servers after the remembered one are tried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ServerOrder {
    /// In the order given (the default).
    #[default]
    InOrder,
    /// In a random order, drawn afresh at each poll.
    Random,
}

/// One server a host may poll: `HOST:PORT` as given, and the name its certificate
/// must hold (`None` in plaintext).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `HOST:PORT` as given: what is dialled, and what the state remembers.
    pub address: String,
    /// The HOST of `address`, checked against the server's certificate.
    pub server_name: Option<ServerName<'static>>,
}

/// The servers after the first (`ClientSettings::server`), and how to order them.
#[derive(Debug, Clone, Default)]
pub struct FailoverSettings {
    /// The other `--server`s, in the order given. Empty: a single server, as before.
    pub others: Vec<Endpoint>,
    /// `--server-order`.
    pub order: ServerOrder,
}

/// What the state file remembers of the servers (only with several `--server`s).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServerMemory {
    /// `HOST:PORT` of the server that last answered a poll: the next poll starts there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_server: Option<String>,
    /// When the host last moved on from a server because it was stale (Unix seconds):
    /// it does not do so again within `--max-age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_pass_at: Option<u64>,
}

/// The indices of `servers` in the order one poll tries them: the remembered server
/// first (when it is still one of them), then the rest in the given order or shuffled
/// by `seed`. Each index appears exactly once.
pub fn pass_order(
    servers: &[Endpoint],
    remembered: Option<&str>,
    order: ServerOrder,
    seed: u64,
) -> Vec<usize> {
    let first = remembered.and_then(|r| servers.iter().position(|s| s.address == r));
    let mut rest: Vec<usize> = (0..servers.len()).filter(|&i| Some(i) != first).collect();
    if order == ServerOrder::Random {
        shuffle(&mut rest, seed);
    }
    first.into_iter().chain(rest).collect()
}

/// Fisher-Yates with splitmix64 from `seed`: deterministic for a test's seed, and a
/// fresh random seed at each poll otherwise (nothing here needs to be unpredictable).
fn shuffle(items: &mut [usize], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = usize::try_from(next() % (i as u64 + 1)).unwrap_or(0);
        items.swap(i, j);
    }
}

/// What one server's attempt means for the pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It answered: the pass ends here, and it is remembered.
    Answered,
    /// Try the next server; the words say why (for the log line).
    MoveOn(String),
    /// It answered, but stale: try the next one if a pass for staleness is due.
    Stale,
    /// Stop the pass with this failure: another server would not help.
    Stop,
}

/// How an attempt's result stands: `Ok(log_refused)` for an answer (whose checkpoint
/// the host refused, `behind` or `fork`, when `log_refused`), `Err` for a failure;
/// `stale` whether the `stale` alarm is raised after it.
pub fn judge(result: &Result<bool, &PollError>, stale: bool) -> Verdict {
    match result {
        Ok(true) => Verdict::MoveOn(
            "its checkpoint is refused (behind or forked from what this host verified)".into(),
        ),
        Ok(false) if stale => Verdict::Stale,
        Ok(false) => Verdict::Answered,
        Err(e) => match why_move_on(e) {
            Some(why) => Verdict::MoveOn(why.to_owned()),
            None => Verdict::Stop,
        },
    }
}

/// Why a failure of one server is a reason to try the next, in a few words; `None`
/// for a local failure.
fn why_move_on(e: &PollError) -> Option<&'static str> {
    Some(match e {
        PollError::Connect { .. } | PollError::ConnectTimeout { .. } => "unreachable",
        PollError::Handshake { .. } | PollError::HandshakeTimeout { .. } => "the TLS handshake failed",
        PollError::CertificateRefused { .. } => "it refused this host's certificate",
        PollError::NoAnswer { .. } => "it closed the connection without answering",
        PollError::Refused(_) => "it refused the poll",
        PollError::Protocol(_) => "its answer breaks the protocol",
        PollError::Interrupted(_) => "its answer was cut short",
        PollError::Timeout(_) => "it stopped answering",
        PollError::Receipt(_)
        | PollError::NoHook
        | PollError::NotInstalled { .. }
        | PollError::RefusedRecently { .. }
        | PollError::PollDeadline { .. }
        | PollError::BelowMinimumRate { .. }
        | PollError::State(_)
        | PollError::Folder(_)
        | PollError::ResetRefused(_)
        | PollError::CreateDestination { .. }
        | PollError::StateNotAFile { .. }
        | PollError::Locked { .. }
        | PollError::Clean { .. }
        | PollError::NoServerAnswered { .. } => return None,
    })
}

/// Whether a stale server may make the host try the others now: no pass for
/// staleness was made within `max_age` seconds of `now`.
pub fn stale_pass_due(memory: &ServerMemory, now: u64, max_age: u64) -> bool {
    memory.stale_pass_at.is_none_or(|at| now.saturating_sub(at) >= max_age)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fts_proto::{ErrorCode, ErrorFrame};

    fn servers(n: usize) -> Vec<Endpoint> {
        (0..n).map(|i| Endpoint { address: format!("s{i}:1"), server_name: None }).collect()
    }

    #[test]
    fn in_order_starts_with_the_remembered_server_then_the_rest_as_given() {
        let s = servers(4);
        assert_eq!(pass_order(&s, None, ServerOrder::InOrder, 7), [0, 1, 2, 3]);
        assert_eq!(pass_order(&s, Some("s2:1"), ServerOrder::InOrder, 7), [2, 0, 1, 3]);
        assert_eq!(pass_order(&s, Some("s0:1"), ServerOrder::InOrder, 7), [0, 1, 2, 3]);
    }

    #[test]
    fn a_remembered_server_no_longer_given_is_ignored() {
        let s = servers(3);
        assert_eq!(pass_order(&s, Some("gone:1"), ServerOrder::InOrder, 1), [0, 1, 2]);
        assert_eq!(pass_order(&s, Some(""), ServerOrder::InOrder, 1), [0, 1, 2]);
    }

    #[test]
    fn random_order_is_a_permutation_that_depends_on_the_seed_and_keeps_the_remembered_first() {
        let s = servers(5);
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let order = pass_order(&s, None, ServerOrder::Random, seed);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [0, 1, 2, 3, 4], "seed {seed}: {order:?}");
            assert_eq!(order, pass_order(&s, None, ServerOrder::Random, seed), "deterministic");
            firsts.insert(order[0]);
            let remembered = pass_order(&s, Some("s3:1"), ServerOrder::Random, seed);
            assert_eq!(remembered[0], 3, "seed {seed}");
            assert_eq!(remembered.len(), 5);
        }
        // Over 64 seeds every server comes first at least once.
        assert_eq!(firsts.len(), 5, "{firsts:?}");
    }

    #[test]
    fn a_single_server_is_the_whole_pass() {
        for order in [ServerOrder::InOrder, ServerOrder::Random] {
            assert_eq!(pass_order(&servers(1), Some("other:1"), order, 3), [0]);
        }
    }

    #[test]
    fn an_unreachable_refusing_or_behind_server_makes_the_pass_move_on() {
        let connect =
            PollError::Connect { server: "a:1".into(), source: std::io::ErrorKind::ConnectionRefused.into() };
        assert!(matches!(judge(&Err(&connect), false), Verdict::MoveOn(w) if w == "unreachable"));
        let refused = PollError::CertificateRefused {
            server: "a:1".into(),
            alert: rustls::AlertDescription::UnknownCA,
        };
        assert!(matches!(judge(&Err(&refused), false), Verdict::MoveOn(_)));
        for code in [ErrorCode::Busy, ErrorCode::LogBehind, ErrorCode::Internal] {
            let frame = PollError::Refused(ErrorFrame { code, message: "no".into(), retry_after: Some(30) });
            assert!(matches!(judge(&Err(&frame), false), Verdict::MoveOn(_)), "{frame}");
        }
        let closed = PollError::NoAnswer { server: "a:1".into(), reset: true, tls: true };
        assert!(matches!(judge(&Err(&closed), false), Verdict::MoveOn(_)));
        assert!(matches!(
            judge(&Err(&PollError::Timeout(std::time::Duration::from_secs(1))), false),
            Verdict::MoveOn(_)
        ));
        // A checkpoint the host refuses (behind, fork), stale or not.
        assert!(matches!(judge(&Ok(true), false), Verdict::MoveOn(_)));
        assert!(matches!(judge(&Ok(true), true), Verdict::MoveOn(_)));
    }

    #[test]
    fn a_local_failure_stops_the_pass() {
        let locked = PollError::Locked { path: "/srv/incoming".into() };
        assert_eq!(judge(&Err(&locked), false), Verdict::Stop);
        let deadline = PollError::PollDeadline { limit: std::time::Duration::from_secs(5) };
        assert_eq!(judge(&Err(&deadline), false), Verdict::Stop);
    }

    #[test]
    fn an_answer_ends_the_pass_unless_stale() {
        assert_eq!(judge(&Ok(false), false), Verdict::Answered);
        assert_eq!(judge(&Ok(false), true), Verdict::Stale);
    }

    #[test]
    fn staleness_moves_on_at_most_once_per_max_age() {
        let never = ServerMemory::default();
        assert!(stale_pass_due(&never, 1000, 60));
        let recent = ServerMemory { stale_pass_at: Some(990), ..ServerMemory::default() };
        assert!(!stale_pass_due(&recent, 1000, 60));
        assert!(stale_pass_due(&recent, 1050, 60));
        // A clock that went back does not make it due.
        assert!(!stale_pass_due(&recent, 900, 60));
    }
}
