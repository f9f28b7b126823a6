// Shared by the fuzz target (fuzz_targets/notes.rs) and the stable replay test
// (../tests/fuzz_corpus.rs) through `include!`, so both run exactly the same calls.

/// Arbitrary bytes, as text when they are UTF-8, through every text parser of the
/// log: `Note::parse`, `Checkpoint::parse_text` and `Origin::parse`. None may panic,
/// and whatever parses must render back to exactly the input and parse again to the
/// same value.
pub fn notes_all(data: &[u8]) {
    use fts_proto::{Checkpoint, Note, Origin, cosignature_message};

    let Ok(text) = std::str::from_utf8(data) else { return };

    if let Ok(note) = Note::parse(text) {
        let rendered = note.render();
        assert_eq!(rendered, text, "a parsed note renders back to its input");
        assert_eq!(Note::parse(&rendered).as_ref(), Ok(&note));
        assert!(!note.signatures.is_empty() && note.signatures.len() <= fts_proto::MAX_SIGNATURE_LINES);
        for signature in &note.signatures {
            assert!(!signature.line().ends_with('\n'));
        }
        let _ = Checkpoint::parse_text(&note.text);
    }

    if let Ok(checkpoint) = Checkpoint::parse_text(text) {
        assert_eq!(checkpoint.text(), text, "a parsed checkpoint's text is its input");
        assert_eq!(Checkpoint::parse_text(&checkpoint.text()).as_ref(), Ok(&checkpoint));
        assert!(text.starts_with(&checkpoint.cosigned_text()));
        let message = cosignature_message(0, &checkpoint);
        assert!(message.ends_with(checkpoint.text().as_bytes()));
    }

    if let Ok(origin) = Origin::parse(text) {
        assert_eq!(origin.as_str(), text);
        assert_eq!(Origin::parse(origin.as_str()).as_ref(), Ok(&origin));
    }
}
