//! The statement bytes against the shared test vectors (PROTOCOL.md section 5), and
//! the vectors' signature and key id fields through the proto types. No crypto here:
//! fts-trust verifies the signatures.

use fts_proto::{
    FileHash, FileHeader, FileName, KeyId, Published, Seq, ServerFrame, Signature, Statement, Target,
};
use serde_json::Value;

const VECTORS: &str = include_str!("data/statement-v1.json");

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn statement_from(fields: &Value) -> Statement {
    let text = |name: &str| fields[name].as_str().unwrap();
    let int = |name: &str| fields[name].as_u64().unwrap();
    Statement {
        target: Target::parse(text("target")).unwrap(),
        seq: Seq::new(int("seq")).unwrap(),
        file_name: FileName::parse(text("file-name")).unwrap(),
        file_size: int("file-size"),
        file_hash: FileHash::parse(text("file-hash")).unwrap(),
        published: Published::parse(text("published")).unwrap(),
    }
}

fn hex_decode(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn statement_bytes_match_every_vector_exactly() {
    let vectors = vectors();
    let cases = vectors["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let bytes = statement_from(&case["fields"]).to_bytes();
        assert_eq!(bytes, hex_decode(case["statement_hex"].as_str().unwrap()));
        assert_eq!(bytes, case["statement_text"].as_str().unwrap().as_bytes());
    }
}

#[test]
fn vector_signatures_and_key_id_parse_with_the_proto_types() {
    let vectors = vectors();
    let key_id = KeyId::parse(vectors["key_id"].as_str().unwrap()).unwrap();
    assert_eq!(key_id.to_string(), vectors["key_id"].as_str().unwrap());
    for case in vectors["cases"].as_array().unwrap() {
        let text = case["signature"].as_str().unwrap();
        let signature = Signature::parse(text).unwrap();
        assert_eq!(signature.to_string(), text);
    }
}

#[test]
fn a_file_header_built_from_a_vector_carries_the_same_statement() {
    let vectors = vectors();
    let key_id = KeyId::parse(vectors["key_id"].as_str().unwrap()).unwrap();
    for case in vectors["cases"].as_array().unwrap() {
        let statement = statement_from(&case["fields"]);
        let signature = Signature::parse(case["signature"].as_str().unwrap()).unwrap();
        let header = FileHeader::new(statement.clone(), key_id, signature);
        assert_eq!(header.statement(), statement);

        // The header's wire fields are the vector's fields, so decoding the vector
        // itself as a file header gives the same statement bytes.
        let mut wire = case["fields"].clone();
        wire["type"] = "file".into();
        wire["key-id"] = vectors["key_id"].clone();
        wire["signature"] = case["signature"].clone();
        let decoded = ServerFrame::decode(wire.to_string().as_bytes()).unwrap();
        assert_eq!(decoded, ServerFrame::File(header));
    }
}
