//! The vectors of host receipts (`tests/vectors/receipt-v1.json`): two receipts of
//! host `web-01` in their exact `fts-receipt-v1` bytes, between them every outcome
//! kind, their hashes, their Ed25519 signatures by a published test key over
//! [`RECEIPT_SIGNING_PREFIX`] and the bytes, the signed receipts as JSON, the
//! `receipt` request that carries both and the `receipts-stored` frame that answers
//! it. Ed25519 is deterministic, so signing the fixed receipts with the fixed key
//! must reproduce every byte, and every signature must check against the vector's
//! self-signed client certificate.
//!
//! Fields of the file:
//!
//! - The host's key is not in the file: it is the published test key of
//!   `crates/proto/tests/data/statement-v1.json` (`private_key_seed_hex`), the one
//!   the project's tests may copy, never to be used for anything else;
//!   `host_public_key_hex`: its raw 32-byte public key.
//! - `certificate_der_base64`: a self-signed client certificate of that key made by
//!   rcgen (`print_the_computed_vectors`): CN `web-01`, O `web`, clientAuth, not a
//!   CA; `certificate_client_id`, `certificate_groups`: the identity fts reads from
//!   it. Not made by the test (rcgen's encoding may change between versions): the
//!   test checks its identity and that it carries the host's public key.
//! - `signing_prefix_hex`: [`RECEIPT_SIGNING_PREFIX`], `fts host receipt v1` and a
//!   zero byte.
//! - `receipt_7_*`: receipt 7 of a chain (its previous receipt's hash is 32 bytes of
//!   0x66, receipt 6 is not given), with every entry outcome kind and every host
//!   outcome but `restart`; `receipt_1_*`: the receipt after it, which restarts the
//!   chain (`restart new-state`) and so is number 1 and names receipt 7 as the old
//!   chain's head. For each: `_text` the exact bytes (ASCII, each line ended by
//!   `\n`), `_hash` their [`receipt_hash`], `_signature` the base64 of the 64-byte
//!   Ed25519 signature over the prefix and the bytes, `_wire` the signed receipt's
//!   JSON object as a `receipt` request carries it.
//! - `request_header`: the header of the `receipt` request carrying both signed
//!   receipts (`ReceiptRequest::encode` without the two length bytes).
//! - `receipts_stored_header`: the header of the server's `receipts-stored` answer
//!   listing both hashes.
//!
//! The signatures were also checked once by hand with Python's `cryptography`
//! (Ed25519 public key from the certificate, over the prefix and each text); the test
//! checks them with ed25519-dalek besides ring (through rustls and webpki).

use ed25519_dalek::Signer as _;
use fts_proto::{
    AlarmName, ClientId, EntryOutcome, EntryOutcomeKind, FileHash, FileName, Outcome, Published, Receipt,
    ReceiptRequest, ReceiptScheme, ReceiptsStored, RejectReason, RestartReason, Seq, ServerFrame,
    SignedReceipt, Target,
};
use fts_trust::{RECEIPT_SIGNING_PREFIX, ReceiptSigner, check_receipt, client_identity, receipt_hash};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

const VECTORS: &str = include_str!("vectors/receipt-v1.json");

/// The statement vectors, whose published test key signs these receipts too.
const STATEMENT_VECTORS: &str = include_str!("../../proto/tests/data/statement-v1.json");

/// RFC 8410 PKCS#8 v1 prefix of an Ed25519 private key; the 32-byte seed follows.
const PKCS8_V1_PREFIX_HEX: &str = "302e020100300506032b657004220420";

fn vectors() -> Value {
    serde_json::from_str(VECTORS).unwrap()
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_else(|| panic!("no field {field}")).to_owned()
}

fn pem_block(label: &str, der: &[u8]) -> String {
    let b64 = fts_proto::base64::encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|line| std::str::from_utf8(line).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

/// The seed of the published test key (hex).
fn seed_hex() -> String {
    let statements: Value = serde_json::from_str(STATEMENT_VECTORS).unwrap();
    text(&statements, "private_key_seed_hex")
}

/// That key as a host's TLS key file (PKCS#8 v1), made here.
fn key_pem() -> String {
    pem_block("PRIVATE KEY", &hex::decode(format!("{PKCS8_V1_PREFIX_HEX}{}", seed_hex())).unwrap())
}

fn seed() -> [u8; 32] {
    hex::decode(seed_hex()).unwrap().try_into().unwrap()
}

fn digest(byte: u8) -> FileHash {
    FileHash::from_digest([byte; 32])
}

fn entry(target: &str, seq: u64, file: Option<(&str, u8)>, kind: EntryOutcomeKind) -> Outcome {
    Outcome::Entry(EntryOutcome {
        target: Target::parse(target).unwrap(),
        seq: Seq::new(seq).unwrap(),
        file: file.map(|(name, byte)| (FileName::parse(name).unwrap(), digest(byte))),
        kind,
    })
}

/// Receipt 7: every entry outcome kind and every host outcome but `restart`.
fn receipt_7() -> Receipt {
    let seq = |n| Seq::new(n).unwrap();
    Receipt {
        client_id: ClientId::parse("web-01").unwrap(),
        number: 7,
        previous: Some(digest(0x66)),
        made: Published::parse("2026-12-02T09:00:00Z").unwrap(),
        outcomes: vec![
            entry("group:web", 42, Some(("openssl-3.0.19.deb", 0x11)), EntryOutcomeKind::Installed),
            entry(
                "group:web",
                42,
                Some(("openssl-3.0.19.deb", 0x11)),
                EntryOutcomeKind::HookOk { attempt: 1 },
            ),
            entry("web-01", 5, Some(("motd", 0x22)), EntryOutcomeKind::HookFailed { attempt: 2, allowed: 4 }),
            entry("all", 12, None, EntryOutcomeKind::Held { reason: RejectReason::Signature }),
            entry(
                "all",
                13,
                Some(("big.iso", 0x33)),
                EntryOutcomeKind::Refused { reason: RejectReason::TooLarge },
            ),
            entry("group:web", 43, Some(("openssl-3.0.20.deb", 0x44)), EntryOutcomeKind::Withdrawn),
            entry("group:web", 41, Some(("openssl-3.0.18.deb", 0x55)), EntryOutcomeKind::WithdrawnInstalled),
            entry("group:web", 44, Some(("nginx.conf", 0x77)), EntryOutcomeKind::Superseded { by: seq(45) }),
            Outcome::Alarm { name: AlarmName::parse("stale").unwrap(), raised: true },
            Outcome::Alarm { name: AlarmName::parse("fork").unwrap(), raised: false },
            Outcome::RebootRequired,
            Outcome::Dropped { count: 3 },
        ],
    }
}

/// The receipt after receipt 7: a restart, number 1, naming receipt 7 as the old head.
fn receipt_1() -> Receipt {
    Receipt {
        client_id: ClientId::parse("web-01").unwrap(),
        number: 1,
        previous: Some(receipt_hash(&receipt_7().to_bytes())),
        made: Published::parse("2026-12-02T09:05:00Z").unwrap(),
        outcomes: vec![
            Outcome::Restart { reason: RestartReason::parse("new-state").unwrap() },
            entry("group:web", 45, Some(("nginx.conf", 0x88)), EntryOutcomeKind::Installed),
        ],
    }
}

/// Every field of the file but the certificate, computed from the fixed inputs with
/// fts's own code.
fn computed() -> Value {
    let signer = ReceiptSigner::from_der(
        rustls_pki_types::pem::PemObject::from_pem_slice(key_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(signer.scheme(), ReceiptScheme::Ed25519);
    let public = ed25519_dalek::SigningKey::from_bytes(&seed()).verifying_key();
    let (seven, one) = (signer.sign(&receipt_7()).unwrap(), signer.sign(&receipt_1()).unwrap());
    let request = ReceiptRequest {
        client_id: ClientId::parse("web-01").unwrap(),
        receipts: vec![seven.clone(), one.clone()],
    };
    let request_frame = request.encode().unwrap();
    let stored = ServerFrame::ReceiptsStored(ReceiptsStored {
        stored: vec![receipt_hash(&seven.bytes), receipt_hash(&one.bytes)],
    });
    let mut fields = json!({
        "host_public_key_hex": hex::encode(public.to_bytes()),
        "signing_prefix_hex": hex::encode(RECEIPT_SIGNING_PREFIX),
        "request_header": String::from_utf8(request_frame[2..].to_vec()).unwrap(),
        "receipts_stored_header": String::from_utf8(stored.encode().unwrap()[2..].to_vec()).unwrap(),
    });
    for (name, signed) in [("receipt_7", &seven), ("receipt_1", &one)] {
        fields[format!("{name}_text")] = json!(String::from_utf8(signed.bytes.clone()).unwrap());
        fields[format!("{name}_hash")] = json!(receipt_hash(&signed.bytes).to_string());
        fields[format!("{name}_signature")] = json!(fts_proto::base64::encode(&signed.signature));
        fields[format!("{name}_wire")] = json!(serde_json::to_string(signed).unwrap());
    }
    fields
}

#[test]
fn every_field_of_the_vectors_is_reproduced_byte_for_byte() {
    let v = vectors();
    let computed = computed();
    for (field, value) in computed.as_object().unwrap() {
        assert_eq!(&v[field], value, "field {field}");
    }
    assert_eq!(text(&v, "signing_prefix_hex"), "66747320686f7374207265636569707420763100");
}

#[test]
fn the_vector_receipts_are_the_one_spelling_of_their_receipts() {
    let v = vectors();
    for (name, receipt) in [("receipt_7", receipt_7()), ("receipt_1", receipt_1())] {
        let bytes = text(&v, &format!("{name}_text")).into_bytes();
        assert_eq!(Receipt::parse(&bytes).as_ref(), Ok(&receipt), "{name}");
        assert_eq!(receipt.to_bytes(), bytes, "{name}");
    }
    assert!(receipt_1().is_restart());
    assert_eq!(receipt_1().previous.map(|h| h.to_string()), Some(text(&v, "receipt_7_hash")));
    let kinds: Vec<&str> =
        receipt_7().outcomes.iter().chain(&receipt_1().outcomes).map(Outcome::as_str).collect();
    for kind in [
        "installed",
        "hook-ok",
        "hook-failed",
        "held",
        "refused",
        "withdrawn",
        "withdrawn-installed",
        "superseded",
        "alarm",
        "reboot-required",
        "dropped",
        "restart",
    ] {
        assert!(kinds.contains(&kind), "no {kind} outcome in the vectors");
    }
}

#[test]
fn the_vector_signatures_check_against_the_certificate_and_with_ed25519_dalek() {
    let v = vectors();
    let der = fts_proto::base64::decode(&text(&v, "certificate_der_base64")).unwrap();
    let identity = client_identity(&der).unwrap();
    assert_eq!(identity.id.as_str(), text(&v, "certificate_client_id"));
    let groups: Vec<Value> = identity.groups.iter().map(|g| json!(g.as_str())).collect();
    assert_eq!(Value::Array(groups), v["certificate_groups"]);
    let public = hex::decode(text(&v, "host_public_key_hex")).unwrap();
    assert!(der.windows(32).any(|w| w == public), "the certificate carries the host's public key");
    let certificate = CertificateDer::from(der);

    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed());
    for name in ["receipt_7", "receipt_1"] {
        let signed: SignedReceipt = serde_json::from_str(&text(&v, &format!("{name}_wire"))).unwrap();
        assert_eq!(signed.bytes, text(&v, &format!("{name}_text")).into_bytes());
        let message = [RECEIPT_SIGNING_PREFIX, &signed.bytes].concat();
        assert_eq!(dalek.sign(&message).to_bytes().to_vec(), signed.signature, "{name}");
        let checked = check_receipt(&signed, &certificate).unwrap();
        assert_eq!(checked.hash().to_string(), text(&v, &format!("{name}_hash")));
        let mut altered = signed.clone();
        altered.bytes[40] ^= 1;
        assert!(check_receipt(&altered, &certificate).is_err(), "{name}");
    }
    let request = fts_proto::ClientRequest::decode(text(&v, "request_header").as_bytes()).unwrap();
    let fts_proto::ClientRequest::Receipt(request) = request else { panic!("not a receipt request") };
    assert_eq!(request.receipts.len(), 2);
}

/// Prints every computed field and a new certificate, to write a new version of the
/// file: `cargo test -p fts-trust --test receipt_vectors -- --ignored --nocapture`.
#[test]
#[ignore = "prints the vectors; run by hand"]
fn print_the_computed_vectors() {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SerialNumber,
    };
    let key = KeyPair::from_pem(&key_pem()).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "web-01");
    params.distinguished_name.push(DnType::OrganizationName, "web");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.is_ca = IsCa::ExplicitNoCa;
    params.serial_number = Some(SerialNumber::from_slice(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08]));
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key).unwrap();
    let mut fields = computed();
    fields["certificate_der_base64"] = json!(fts_proto::base64::encode(cert.der()));
    println!("{}", serde_json::to_string_pretty(&fields).unwrap());
}
