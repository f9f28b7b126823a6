//! Arbitrary bytes through every decoder of fts-proto: the incremental frame decoders,
//! `Request::decode` and `ServerFrame::decode`. None may panic. The stable test
//! `crates/proto/tests/fuzz_corpus.rs` replays the corpus through the same function.
#![no_main]

include!("../decode_all.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| decode_all(data));
