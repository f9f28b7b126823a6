//! Property tests of host receipts (`fts_proto::receipt`): every valid receipt reads
//! back from its bytes unchanged, every accepted input is the one spelling of its
//! receipt, arbitrary bytes never panic the parser, and receipt requests and
//! `receipts-stored` frames survive encode then decode through the frame decoders.

use fts_proto::{
    AlarmName, AnswerDecoder, AnswerItem, Chunk, ClientRequest, EntryOutcome, EntryOutcomeKind, FrameDecoder,
    MAX_CLIENT_REQUEST, MAX_OUTCOMES, MAX_RECEIPTS_PER_REQUEST, MAX_REQUEST_HEADER, MAX_WIRE_INT, Outcome,
    ProtoError, Receipt, ReceiptRequest, ReceiptScheme, ReceiptsStored, RestartReason, Seq, ServerFrame,
    SignedReceipt,
};
use fts_testkit::strategies::{client_id, file_hash, file_name, published, reason, seq, target};
use proptest::prelude::*;

fn alarm_name() -> impl Strategy<Value = AlarmName> {
    "[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,6}){0,3}".prop_map(|s| AlarmName::parse(&s).unwrap())
}

fn restart_reason() -> impl Strategy<Value = RestartReason> {
    prop_oneof![
        Just("new-state".to_owned()),
        Just("new-certificate".to_owned()),
        "[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,6}){0,3}",
    ]
    .prop_map(|s| RestartReason::parse(&s).unwrap())
}

fn attempt() -> impl Strategy<Value = u32> {
    prop_oneof![1..=10u32, 1..=u32::MAX]
}

fn entry_kind(entry_seq: Seq) -> impl Strategy<Value = EntryOutcomeKind> {
    let later = (entry_seq.get() + 1..=MAX_WIRE_INT).prop_filter_map("a later seq", Seq::new);
    prop_oneof![
        Just(EntryOutcomeKind::Installed),
        attempt().prop_map(|attempt| EntryOutcomeKind::HookOk { attempt }),
        (attempt(), attempt())
            .prop_map(|(attempt, allowed)| EntryOutcomeKind::HookFailed { attempt, allowed }),
        reason().prop_map(|reason| EntryOutcomeKind::Held { reason }),
        reason().prop_map(|reason| EntryOutcomeKind::Refused { reason }),
        Just(EntryOutcomeKind::Withdrawn),
        Just(EntryOutcomeKind::WithdrawnInstalled),
        later.prop_map(|by| EntryOutcomeKind::Superseded { by }),
    ]
}

fn entry() -> impl Strategy<Value = EntryOutcome> {
    // Below the largest seq, so that a later one can supersede it.
    let entry_seq =
        seq().prop_filter_map("room for a later seq", |s| Seq::new(s.get().min(MAX_WIRE_INT - 1)));
    (target(), entry_seq, prop::option::of((file_name(), file_hash())))
        .prop_flat_map(|(target, seq, file)| (Just(target), Just(seq), Just(file), entry_kind(seq)))
        .prop_map(|(target, seq, file, kind)| EntryOutcome { target, seq, file, kind })
}

/// An outcome that may stand anywhere in a receipt (not a restart).
fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        6 => entry().prop_map(Outcome::Entry),
        1 => (alarm_name(), any::<bool>()).prop_map(|(name, raised)| Outcome::Alarm { name, raised }),
        1 => Just(Outcome::RebootRequired),
        1 => (1..=MAX_WIRE_INT).prop_map(|count| Outcome::Dropped { count }),
    ]
}

/// A valid receipt: a first receipt, a later one, or a restart.
fn receipt() -> impl Strategy<Value = Receipt> {
    let place = prop_oneof![
        Just((1, None, None)),
        (2..=MAX_WIRE_INT, file_hash()).prop_map(|(number, previous)| (number, Some(previous), None)),
        (prop::option::of(file_hash()), restart_reason()).prop_map(|(previous, reason)| (
            1,
            previous,
            Some(Outcome::Restart { reason })
        )),
    ];
    (client_id(), place, published(), prop::collection::vec(outcome(), 1..12)).prop_map(
        |(client_id, (number, previous, restart), made, mut outcomes)| {
            if let Some(restart) = restart {
                outcomes.insert(0, restart);
            }
            Receipt { client_id, number, previous, made, outcomes }
        },
    )
}

fn signed(receipt: &Receipt, scheme: ReceiptScheme, signature: Vec<u8>) -> SignedReceipt {
    SignedReceipt { bytes: receipt.to_bytes(), scheme, signature }
}

fn scheme() -> impl Strategy<Value = ReceiptScheme> {
    prop::sample::select(ReceiptScheme::ALL.to_vec())
}

proptest! {
    #[test]
    fn generated_receipts_read_back_from_their_bytes(receipt in receipt()) {
        let bytes = receipt.to_bytes();
        let parsed = Receipt::parse(&bytes);
        prop_assert_eq!(parsed.as_ref(), Ok(&receipt), "{}", String::from_utf8_lossy(&bytes));
        prop_assert_eq!(parsed.unwrap().to_bytes(), bytes);
    }

    #[test]
    fn an_accepted_receipt_is_the_one_spelling_of_itself(
        receipt in receipt(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = receipt.to_bytes();
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Ok(parsed) = Receipt::parse(&bytes) {
            prop_assert_eq!(parsed.to_bytes(), bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_receipt_parser(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Receipt::parse(&bytes);
        let _ = ClientRequest::decode(&bytes);
    }

    #[test]
    fn arbitrary_lines_after_a_valid_header_never_panic_the_receipt_parser(
        lines in prop::collection::vec("[ -~]{0,40}", 1..8),
    ) {
        let mut text = format!("fts-receipt-v1\nweb-01\n1\nnone\n2026-12-02T09:00:00Z\n{}\n", lines.len());
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        if let Ok(parsed) = Receipt::parse(text.as_bytes()) {
            prop_assert_eq!(parsed.to_bytes(), text.into_bytes());
        }
    }

    #[test]
    fn receipt_requests_survive_encode_then_decode(
        id in client_id(),
        receipts in prop::collection::vec(
            (receipt(), scheme(), prop::collection::vec(any::<u8>(), 1..520)),
            1..=MAX_RECEIPTS_PER_REQUEST,
        ),
    ) {
        let receipts: Vec<SignedReceipt> =
            receipts.iter().map(|(r, scheme, sig)| signed(r, *scheme, sig.clone())).collect();
        let n = ReceiptRequest::how_many_fit(&id, &receipts);
        let request = ReceiptRequest { client_id: id.clone(), receipts: receipts[..n.max(1)].to_vec() };
        match request.encode() {
            Ok(frame) => {
                prop_assert!(n >= 1 && frame.len() < MAX_CLIENT_REQUEST);
                let (chunk, used) = FrameDecoder::new(MAX_REQUEST_HEADER).decode(&frame).unwrap().unwrap();
                prop_assert_eq!(used, frame.len());
                let Chunk::Header(header) = chunk else { panic!("a request has no body") };
                prop_assert_eq!(ClientRequest::decode(header).unwrap(), ClientRequest::Receipt(request));
            }
            Err(ProtoError::RequestTooLarge { .. }) => prop_assert_eq!(n, 0),
            Err(other) => prop_assert!(false, "{}", other),
        }
        if n < receipts.len().min(MAX_RECEIPTS_PER_REQUEST) {
            let more = ReceiptRequest { client_id: id, receipts: receipts[..=n].to_vec() };
            let refused = matches!(more.encode(), Err(ProtoError::RequestTooLarge { .. }));
            prop_assert!(refused, "one more than how_many_fit still fits");
        }
    }

    #[test]
    fn receipts_stored_frames_survive_encode_then_decode(
        stored in prop::collection::vec(file_hash(), 0..=MAX_RECEIPTS_PER_REQUEST),
    ) {
        let frame = ServerFrame::ReceiptsStored(ReceiptsStored { stored });
        let bytes = frame.encode().unwrap();
        let mut decoder = AnswerDecoder::default();
        let (item, used) = decoder.decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(item, AnswerItem::Frame(frame));
        prop_assert_eq!(decoder.body_remaining(), 0);
    }
}

#[test]
fn a_receipt_of_the_most_outcomes_is_accepted_and_one_more_is_not() {
    let outcome = Outcome::Dropped { count: 1 };
    let mut receipt = Receipt {
        client_id: fts_proto::ClientId::parse("web-01").unwrap(),
        number: 1,
        previous: None,
        made: fts_proto::Published::parse("2026-12-02T09:00:00Z").unwrap(),
        outcomes: vec![outcome.clone(); MAX_OUTCOMES],
    };
    assert_eq!(Receipt::parse(&receipt.to_bytes()).as_ref(), Ok(&receipt));
    receipt.outcomes.push(outcome);
    let err = Receipt::parse(&receipt.to_bytes()).unwrap_err();
    assert_eq!(
        err,
        ProtoError::BadReceipt { detail: "line 6: 257 outcomes, more than the 256 allowed".into() }
    );
    receipt.outcomes.clear();
    assert!(Receipt::parse(&receipt.to_bytes()).is_err(), "a receipt without outcomes is never made");
}
