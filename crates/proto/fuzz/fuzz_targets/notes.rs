//! Arbitrary bytes through the log's text parsers: `Note::parse`,
//! `Checkpoint::parse_text` and `Origin::parse`, with render/parse round trips on
//! success. None may panic. The stable test `crates/proto/tests/fuzz_corpus.rs`
//! replays the corpus through the same function.
#![no_main]

include!("../notes_all.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| notes_all(data));
