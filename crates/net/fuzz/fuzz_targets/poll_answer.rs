//! Arbitrary bytes as the server's whole side of one poll, through the real client:
//! `Client::poll_over` reads the answer, takes every frame through the checks of
//! PROTOCOL.md section 6 and installs what passes. Nothing may panic, and afterwards
//! the destination holds only verified files. The stable test
//! `crates/net/tests/fuzz_corpus.rs` replays the corpus through the same function.
#![no_main]

include!("../poll_answer.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = poll_answer(data);
});
