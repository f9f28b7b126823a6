//! The end-to-end suites of fts: the real `fts` binary (`CARGO_BIN_EXE_fts`) on
//! loopback, with credentials made per test in temporary folders. One test binary,
//! one module per area (as ripgrep does), so the suite links once; the helpers all
//! modules share are in [`common`].
//!
//! Run one area with `cargo test --test it serve::`, one test by its name.

mod common;

mod cli;
mod compat;
mod crash;
mod delivery;
mod disk_full;
mod dos;
mod failover;
mod fleet;
mod freshness;
mod gc;
mod hostile;
mod keygen;
mod load;
mod operator;
mod operator_view;
mod ops;
mod pki;
mod poll;
mod poll_behaviour;
mod rates;
mod resume;
mod revocation;
mod rotate;
mod safe_files;
mod serve;
mod status_db;
mod supersede;
mod withdraw;
