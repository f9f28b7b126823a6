//! `fts serve` and glibc's malloc arenas: the server runs with one arena per core
//! ([`server_arenas`]), unless the operator chose otherwise.
//!
//! Why: glibc gives threads their own arenas, up to eight per core, and keeps each
//! arena's pages at its peak. The server runs a runtime worker per core and up to
//! `--max-active-polls` + 64 blocking threads (status files, receipts, blobs), and
//! every arena ends up holding part of the whole fleet's churn: at 50,000 hosts
//! polling every minute, on 2 cores, the files backend's server held 234 MiB, 206 MiB
//! of them in 15 arenas, against 84 MiB with two arenas, for the same polls per second
//! and none failed; mimalloc as the global allocator held 116 MiB in the same bench
//! (docs/PERFORMANCE.md, "Issue 21"). One per core keeps the runtime's workers from
//! waiting for each other's arena; the blocking threads share them.
//!
//! An operator's `MALLOC_ARENA_MAX` or `GLIBC_TUNABLES=glibc.malloc.arena_max=...`
//! wins: glibc has read it already, and this leaves it alone. Other C libraries
//! (musl) have no arenas to bound, and nothing is done.

/// The arenas `fts serve` allows: one per core, at least two.
pub fn server_arenas() -> i32 {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    i32::try_from(cores).unwrap_or(i32::MAX).max(2)
}

/// What [`bound_for_server`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arenas {
    /// Bounded to this many.
    Bounded(i32),
    /// The environment sets the bound; left as it is.
    SetByOperator,
    /// Not glibc, or glibc refused the setting.
    Unchanged,
}

/// Bounds the process's malloc arenas to [`server_arenas`], unless the environment
/// already says how many. Call it before threads start.
pub fn bound_for_server() -> Arenas {
    let tunables = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() || tunables.to_string_lossy().contains("arena_max") {
        return Arenas::SetByOperator;
    }
    set_arena_max(server_arenas())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_arena_max(arenas: i32) -> Arenas {
    // SAFETY: mallopt takes two integers and changes a malloc parameter under
    // glibc's own lock; it touches no memory of ours. M_ARENA_MAX only limits arenas
    // made from now on (existing ones stay in use).
    let accepted = unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) };
    if accepted == 1 { Arenas::Bounded(arenas) } else { Arenas::Unchanged }
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
        assert_eq!(set_arena_max(2), Arenas::Bounded(2));
    }
}
