//! fts-testkit: the helpers more than one test suite needs, in one copy. Test suites
//! of different crates are different crates, so they share through this one (a
//! dev-dependency only; nothing here is shipped).
//!
//! - [`openssl`]: runs the system's `openssl` to check fts's keys, certificates and
//!   CRLs with an independent implementation;
//! - [`strategies`]: proptest strategies for the protocol's names, numbers and reasons.
//!
//! Integration tests only: a crate's own unit tests would see a second copy of
//! fts-proto's types through this crate.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod openssl;
pub mod strategies;
