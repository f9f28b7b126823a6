//! `fts serve` and glibc's malloc arenas: the server runs with at most
//! [`SERVER_ARENAS`] of them, unless the operator chose otherwise.
//!
//! Why: glibc gives threads their own arenas, up to eight per core, and keeps each
//! arena's pages at its peak. The server runs a runtime worker per core and up to
//! `--max-active-polls` + 64 blocking threads (status files, receipts, blobs), and
//! every arena ends up holding part of the whole fleet's churn: at 50,000 hosts polling every minute the
//! files backend's server held 234 MiB, 206 MiB of them in 15 arenas, against 78 MiB
//! with two arenas, for the same polls per second and none failed (docs/PERFORMANCE.md,
//! "Issue 21"). mimalloc as the global allocator held 116 MiB in the same run.
//!
//! An operator's `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES=glibc.malloc.arena_max=...`
//! wins: glibc has read it already, and this leaves it alone. Other C libraries
//! (musl) have no arenas to bound, and nothing is done.

/// The arenas `fts serve` allows: one per core of the machines the server is sized for
/// (2 cores) is enough for two runtime workers; blocking threads share them.
pub const SERVER_ARENAS: i32 = 2;

/// What [`bound_for_server`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arenas {
    /// Bounded to [`SERVER_ARENAS`].
    Bounded,
    /// The environment sets the bound; left as it is.
    SetByOperator,
    /// Not glibc, or glibc refused the setting.
    Unchanged,
}

/// Bounds the process's malloc arenas to [`SERVER_ARENAS`], unless the environment
/// already says how many. Call it before threads start.
pub fn bound_for_server() -> Arenas {
    let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.to_string_lossy().contains("arena_max") {
        return Arenas::SetByOperator;
    }
    set_arena_max(SERVER_ARENAS)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: i32) -> Arenas {
    // SAFETY: mallopt takes two integers and changes a malloc parameter under
    // glibc's own lock; it touches no memory of ours. M_ARENA_MAX only limits arenas
    // made from now on (existing ones stay in use).
    let accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    if accepted == 1 { Arenas::Bounded } else { Arenas::Unchanged }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_arenas: i32) -> Arenas {
    Arenas::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_bound() {
        // The test process's environment is the developer's: only the call is checked.
        assert_eq!(set_arena_max(SERVER_ARENAS), Arenas::Bounded);
    }
}
