//! `fts serve` and its open-file limit (RLIMIT_NOFILE).
//!
//! Every connection holds a socket, and every active poll up to
//! [`PER_ACTIVE_POLL`] more descriptors at a time (the blob it sends, or a status
//! file and its folder while it records the poll). The server also needs some for
//! itself at any moment: the listeners, the runtime, the store, the metrics
//! endpoint's connections and, above all, the CRL file at each reload. If connections
//! alone could use up every descriptor, any peer, without authenticating, could hold
//! the server at EMFILE and make a CRL reload fail. So at start `fts serve`:
//!
//! 1. raises its soft limit to the hard limit (the soft one is often 1024 outside
//!    systemd, where the shipped unit sets `LimitNOFILE=65536`);
//! 2. checks that `--max-connections` + [`PER_ACTIVE_POLL`] x `--max-active-polls` +
//!    [`RESERVE`] fits in it;
//! 3. refuses a value that was asked for (flag, environment or config file) and does
//!    not fit, with a usage error naming the numbers and the fix; lowers a default
//!    that does not fit, with a warning, so that the quickstart runs anywhere.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept free of connections and polls: stdio, listeners, the runtime,
/// the store, the status folder, 16 metrics scrapes, and the CRL reload.
pub const RESERVE: u64 = 64;

/// Descriptors an active poll may hold besides its connection.
pub const PER_ACTIVE_POLL: u64 = 2;

/// One of the two limits, and whether the operator asked for that value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub value: usize,
    pub explicit: bool,
}

/// The limits the server runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    pub max_connections: usize,
    pub max_active_polls: usize,
}

/// Raises the soft open-file limit to the hard limit and returns the limit in force
/// (`None`: unlimited). A failure to raise it leaves the soft limit, which is then
/// the one that counts.
pub fn raise_soft_limit() -> Option<u64> {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    // Linux refuses a soft limit above fs.nr_open, even under an unlimited hard one.
    let target = match (maximum, nr_open()) {
        (None, Some(nr_open)) => Some(nr_open),
        (Some(hard), Some(nr_open)) => Some(hard.min(nr_open)),
        (hard, None) => hard,
    };
    if current == target {
        return current;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: target, maximum }) {
        Ok(()) => target,
        Err(e) => {
            tracing::warn!(
                soft = ?current,
                hard = ?maximum,
                error = %fts_proto::ErrorChain(&e),
                "cannot raise the open-file limit to its hard limit: the soft limit counts"
            );
            current
        }
    }
}

/// The kernel's ceiling on any process's open files (`/proc/sys/fs/nr_open`), when it
/// can be read.
fn nr_open() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/fs/nr_open").ok()?.trim().parse().ok()
}

/// Descriptors the server may need with these limits.
pub fn needed(max_connections: usize, max_active_polls: usize) -> u64 {
    (max_connections as u64)
        .saturating_add((max_active_polls as u64).saturating_mul(PER_ACTIVE_POLL))
        .saturating_add(RESERVE)
}

const FIX: &str = "or raise the open-file limit (LimitNOFILE= in the systemd unit, `ulimit -Hn` and \
                   /etc/security/limits.conf elsewhere)";

/// Fits `connections` and `polls` into the open-file `limit`: as asked when they fit;
/// otherwise an error for a value that was asked for, and lower defaults.
pub fn fit(limit: Option<u64>, connections: Wanted, polls: Wanted) -> Result<Fitted, String> {
    let asked = Fitted { max_connections: connections.value, max_active_polls: polls.value };
    let Some(limit) = limit else { return Ok(asked) };
    if needed(connections.value, polls.value) <= limit {
        return Ok(asked);
    }
    let budget = limit.saturating_sub(RESERVE);
    let explain = |need: u64| {
        format!(
            "{need} open files (one per connection, {PER_ACTIVE_POLL} per active poll and {RESERVE} kept for \
             CRL reloads, blobs and status writes), but this process may open at most {limit} (RLIMIT_NOFILE)"
        )
    };
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    match (connections.explicit, polls.explicit) {
        (true, true) => {
            let fix = match budget.checked_sub(polls.value as u64 * PER_ACTIVE_POLL).filter(|&c| c >= 1) {
                Some(c) => format!("lower --max-connections to {c} or less (or --max-active-polls)"),
                None => format!(
                    "lower --max-active-polls to {} or less and --max-connections to fit",
                    budget.saturating_sub(1) / PER_ACTIVE_POLL
                ),
            };
            Err(format!(
                "--max-connections {} and --max-active-polls {} need up to {}: {fix}, {FIX}",
                connections.value,
                polls.value,
                explain(needed(connections.value, polls.value))
            ))
        }
        (true, false) => {
            let room = budget.saturating_sub(connections.value as u64) / PER_ACTIVE_POLL;
            if room < 1 {
                return Err(format!(
                    "--max-connections {} needs, with a single active poll, {}: lower it to {} or less, {FIX}",
                    connections.value,
                    explain(needed(connections.value, 1)),
                    budget.saturating_sub(PER_ACTIVE_POLL)
                ));
            }
            Ok(Fitted { max_active_polls: polls.value.min(to_usize(room)), ..asked })
        }
        (false, true) => {
            let room = budget.saturating_sub(polls.value as u64 * PER_ACTIVE_POLL);
            if room < 1 {
                return Err(format!(
                    "--max-active-polls {} needs, with a single other connection, {}: lower it to {} or less, \
                     {FIX}",
                    polls.value,
                    explain(needed(1, polls.value)),
                    budget.saturating_sub(1) / PER_ACTIVE_POLL
                ));
            }
            Ok(Fitted { max_connections: connections.value.min(to_usize(room)), ..asked })
        }
        (false, false) => {
            // Keep the defaults' ratio (5 connections per active poll): c + 2c/5 <= budget.
            let connections = budget * 5 / 7;
            let polls = (connections / 5).max(1);
            if connections < 1 || connections + polls * PER_ACTIVE_POLL > budget {
                return Err(format!(
                    "the open-file limit (RLIMIT_NOFILE) is {limit}, too low for fts serve: raise it to at \
                     least {} ({FIX})",
                    needed(1, 1)
                ));
            }
            Ok(Fitted { max_connections: to_usize(connections), max_active_polls: to_usize(polls) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(value: usize, explicit: bool) -> Wanted {
        Wanted { value, explicit }
    }

    #[test]
    fn limits_that_fit_are_kept_and_no_limit_fits_everything() {
        let asked = Fitted { max_connections: 10_000, max_active_polls: 2_000 };
        assert_eq!(fit(Some(20_000), wanted(10_000, false), wanted(2_000, false)), Ok(asked));
        assert_eq!(fit(None, wanted(10_000, true), wanted(2_000, true)), Ok(asked));
        assert_eq!(fit(Some(needed(10_000, 2_000)), wanted(10_000, true), wanted(2_000, true)), Ok(asked));
    }

    #[test]
    fn defaults_are_lowered_to_fit_with_room_for_the_reserve() {
        let fitted = fit(Some(1024), wanted(10_000, false), wanted(2_000, false)).unwrap();
        assert!(needed(fitted.max_connections, fitted.max_active_polls) <= 1024, "{fitted:?}");
        assert!(fitted.max_connections >= 600 && fitted.max_active_polls >= 100, "{fitted:?}");

        let fitted = fit(Some(1024), wanted(500, true), wanted(2_000, false)).unwrap();
        assert_eq!(fitted.max_connections, 500);
        assert!(needed(500, fitted.max_active_polls) <= 1024 && fitted.max_active_polls >= 200, "{fitted:?}");

        let fitted = fit(Some(1024), wanted(10_000, false), wanted(100, true)).unwrap();
        assert_eq!(fitted, Fitted { max_connections: 1024 - 64 - 200, max_active_polls: 100 });
    }

    #[test]
    fn a_value_asked_for_that_does_not_fit_is_refused_with_both_numbers_and_the_fix() {
        let err = fit(Some(1024), wanted(10_000, true), wanted(2_000, false)).unwrap_err();
        assert!(err.contains("--max-connections 10000") && err.contains("at most 1024"), "{err}");
        assert!(err.contains("lower it to 958 or less") && err.contains("LimitNOFILE"), "{err}");

        let err = fit(Some(1024), wanted(900, true), wanted(100, true)).unwrap_err();
        assert!(err.contains("lower --max-connections to 760 or less"), "{err}");

        let err = fit(Some(1024), wanted(10_000, false), wanted(2_000, true)).unwrap_err();
        assert!(err.contains("--max-active-polls 2000") && err.contains("lower it to 479 or less"), "{err}");

        let err = fit(Some(40), wanted(10_000, false), wanted(2_000, false)).unwrap_err();
        assert!(err.contains("too low") && err.contains("40"), "{err}");
    }
}
