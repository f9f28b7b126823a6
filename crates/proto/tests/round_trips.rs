//! Property tests: every valid request and server frame survives encode then decode
//! unchanged, through the frame decoder, with arbitrary valid names and integers.

use fts_proto::{
    AlarmName, AnswerDecoder, AnswerItem, Chunk, ClientId, Done, ErrorCode, ErrorFrame, Features, FileHeader,
    FrameDecoder, KeyId, LogHash, MAX_CLIENT_REQUEST, MAX_REPORTS, MAX_REQUEST_HEADER, MAX_WIRE_INT,
    ProtoError, Request, Resume, ServerFrame, Signature, Target,
};
use fts_testkit::strategies::{client_id, file_hash, file_name, published, report, seq, target, wire_int};
use proptest::prelude::*;

fn request() -> impl Strategy<Value = Request> {
    (
        client_id(),
        prop::collection::btree_map(target(), wire_int(), 0..6),
        prop::collection::vec(report(), 0..=MAX_REPORTS),
        prop::collection::btree_map(target(), seq(), 0..4),
        prop::collection::vec(
            (file_hash(), wire_int()).prop_map(|(file_hash, offset)| Resume { file_hash, offset }),
            0..3,
        ),
        prop::option::of(wire_int()),
        prop::collection::btree_map(
            "[a-z]{1,8}(-[a-z]{1,8})?".prop_map(|s| AlarmName::parse(&s).unwrap()),
            wire_int(),
            0..4,
        ),
        (
            any::<bool>(),
            any::<bool>(),
            prop::option::of(wire_int()),
            prop::collection::vec(any::<[u8; 8]>(), 0..3),
        ),
        (
            prop::option::of(wire_int()),
            prop::option::of(file_hash()),
            prop::option::of(wire_int()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                client_id,
                since,
                rejected,
                held,
                resume,
                log_size,
                alarms,
                (withdrawn, superseded, max_file_size, keys),
                (receipt_count, receipt_head, next_poll_within, reboot_required),
            )| Request {
                client_id,
                since,
                rejected,
                held,
                resume,
                log_size,
                alarms,
                features: Features { withdrawn, superseded },
                max_file_size,
                keys: keys.into_iter().map(KeyId::from_prefix).collect(),
                rotation: max_file_size.map(|n| n / 2),
                receipt_count,
                receipt_head,
                next_poll_within,
                reboot_required,
            },
        )
}

fn file_header() -> impl Strategy<Value = FileHeader> {
    (
        target(),
        seq(),
        file_name(),
        wire_int(),
        file_hash(),
        published(),
        any::<[u8; 8]>(),
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(target, seq, file_name, file_size, file_hash, published, key, sig)| FileHeader {
            target,
            seq,
            file_name,
            file_size,
            file_hash,
            published,
            key_id: KeyId::from_prefix(key),
            signature: Signature::from_bytes(sig.try_into().unwrap()),
            offset: None,
            log_index: None,
            inclusion: None,
        })
        .prop_flat_map(|header| {
            let size = header.file_size;
            (Just(header), prop::option::of(0..=size))
        })
        .prop_map(|(header, offset)| FileHeader { offset, ..header })
        .prop_flat_map(|header| {
            let proof = prop::collection::vec(any::<[u8; 32]>().prop_map(LogHash), 0..20);
            (Just(header), prop::option::of((wire_int(), proof)))
        })
        .prop_map(|(header, log)| FileHeader {
            log_index: log.as_ref().map(|(index, _)| *index),
            inclusion: log.map(|(_, proof)| proof),
            ..header
        })
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::BadFrame),
        Just(ErrorCode::HeaderTooLarge),
        Just(ErrorCode::BadJson),
        Just(ErrorCode::BadRequest),
        Just(ErrorCode::UnknownRequest),
        Just(ErrorCode::UnsupportedProtocol),
        Just(ErrorCode::IdentityMismatch),
        Just(ErrorCode::Busy),
        Just(ErrorCode::Internal),
        Just(ErrorCode::LogBehind),
        ".{0,40}".prop_map(|s| ErrorCode::parse(&s)),
    ]
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        file_header().prop_map(ServerFrame::File),
        (any::<bool>(), wire_int(), prop::collection::btree_map(target(), wire_int(), 0..4))
            .prop_map(|(more, poll_after, heads)| ServerFrame::Done(Done { more, poll_after, heads })),
        (error_code(), ".{0,200}", prop::option::of(wire_int())).prop_map(|(code, message, retry_after)| {
            ServerFrame::Error(ErrorFrame { code, message, retry_after })
        }),
    ]
}

proptest! {
    #[test]
    fn requests_survive_encode_then_decode(request in request()) {
        let frame = request.encode().unwrap();
        prop_assert!(frame.len() < MAX_CLIENT_REQUEST);
        let (chunk, used) = FrameDecoder::new(MAX_REQUEST_HEADER).decode(&frame).unwrap().unwrap();
        prop_assert_eq!(used, frame.len());
        let Chunk::Header(header) = chunk else { panic!("a request has no body") };
        prop_assert_eq!(Request::decode(header).unwrap(), request);
    }

    #[test]
    fn server_frames_survive_encode_then_decode(frame in server_frame()) {
        let bytes = frame.encode().unwrap();
        let mut decoder = AnswerDecoder::default();
        let (item, used) = decoder.decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(item, AnswerItem::Frame(frame.clone()));
        let expected_body = match &frame { ServerFrame::File(f) => f.body_len(), _ => 0 };
        prop_assert_eq!(decoder.body_remaining(), expected_body);
    }

    #[test]
    fn integers_above_the_wire_range_are_never_encoded(seq in MAX_WIRE_INT + 1..=u64::MAX) {
        let mut request = Request::new(ClientId::parse("web-01").unwrap());
        request.since.insert(Target::All, seq);
        let encoded = matches!(request.encode(), Err(ProtoError::Encode { .. }));
        prop_assert!(encoded, "a request with since {} was encoded", seq);
        let done = ServerFrame::Done(Done { more: false, poll_after: seq, ..Done::default() });
        let encoded = matches!(done.encode(), Err(ProtoError::Encode { .. }));
        prop_assert!(encoded, "a done frame with poll-after {} was encoded", seq);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = Request::decode(&bytes);
        let _ = ServerFrame::decode(&bytes);
        let _ = FrameDecoder::new(MAX_REQUEST_HEADER).decode(&bytes);
        let _ = AnswerDecoder::default().decode(&bytes);
    }
}
