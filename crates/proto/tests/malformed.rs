//! Every malformed request and server frame gets the error PROTOCOL.md sections 2,
//! 3 and 6 call for, and a bad `file` header is reportable exactly when its target
//! and seq can be read.

use fts_proto::{
    ErrorCode, ErrorFrame, FrameDecoder, MAX_REQUEST_HEADER, ProtoError, RejectReason, Report, Request,
    ServerFrame, Target, check_header_length,
};
use serde_json::{Value, json};

fn request_code(header: &[u8]) -> ErrorCode {
    Request::decode(header).unwrap_err().code()
}

fn request_json(value: &Value) -> Result<Request, ProtoError> {
    Request::decode(value.to_string().as_bytes())
}

fn valid_request() -> Value {
    json!({"request-type": "poll", "protocol": 1, "client-id": "web-01"})
}

fn with(mut base: Value, field: &str, value: Value) -> Value {
    base[field] = value;
    base
}

fn without(mut base: Value, field: &str) -> Value {
    base.as_object_mut().unwrap().remove(field);
    base
}

const VALID_REQUEST: &str = r#"{"request-type":"poll","protocol":1,"client-id":"web-01"}"#;

#[test]
fn the_example_request_of_the_protocol_decodes() {
    let request = Request::decode(
        br#"{
          "request-type": "poll",
          "protocol": 1,
          "client-id": "web-01",
          "since": {"web-01": 12, "all": 40, "group:web": 3},
          "rejected": [{"target": "all", "seq": 41, "reason": "signature"}]
        }"#,
    )
    .unwrap();
    assert_eq!(request.client_id.as_str(), "web-01");
    assert_eq!(request.since(&Target::All), 40);
    assert_eq!(request.since(&Target::parse("group:web").unwrap()), 3);
    assert_eq!(request.since(&Target::parse("group:db").unwrap()), 0);
    assert_eq!(request.rejected, vec![Report::new(Target::All, 41, RejectReason::Signature)]);
}

#[test]
fn bytes_that_are_not_one_json_object_are_bad_json() {
    let bom = [b"\xEF\xBB\xBF".as_slice(), VALID_REQUEST.as_bytes()].concat();
    let not_utf8 = VALID_REQUEST.replace("web-01", "web-\u{1}").into_bytes();
    let mut not_utf8 = not_utf8;
    let at = not_utf8.iter().position(|&b| b == 1).unwrap();
    not_utf8[at] = 0xff;
    for bad in [
        bom.as_slice(),
        &not_utf8,
        b"poll please",
        b"{\"request-type\":\"poll\"",
        b"[]",
        b"[{\"request-type\":\"poll\"}]",
        b"\"poll\"",
        b"1",
        b"null",
        b"{}{}",
        b"  ",
    ] {
        assert_eq!(request_code(bad), ErrorCode::BadJson, "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn duplicate_keys_anywhere_are_bad_json() {
    for bad in [
        r#"{"request-type":"poll","protocol":1,"client-id":"web-01","client-id":"web-02"}"#,
        r#"{"request-type":"poll","request-type":"poll","protocol":1,"client-id":"web-01"}"#,
        r#"{"request-type":"poll","protocol":1,"client-id":"web-01","since":{"all":1,"all":2}}"#,
        r#"{"request-type":"poll","protocol":1,"client-id":"web-01",
            "rejected":[{"target":"all","seq":1,"seq":1,"reason":"gap"}]}"#,
        r#"{"request-type":"poll","protocol":1,"client-id":"web-01","x":{"y":[{"z":1,"z":1}]}}"#,
    ] {
        assert_eq!(request_code(bad.as_bytes()), ErrorCode::BadJson, "{bad}");
    }
}

#[test]
fn the_empty_object_is_a_bad_request() {
    assert_eq!(request_code(b"{}"), ErrorCode::BadRequest);
}

#[test]
fn a_missing_or_mistyped_client_id_is_a_bad_request() {
    for bad in [
        without(valid_request(), "client-id"),
        with(valid_request(), "client-id", json!(5)),
        with(valid_request(), "client-id", json!(null)),
        with(valid_request(), "client-id", json!(["web-01"])),
        with(valid_request(), "client-id", json!("Web 01")),
        with(valid_request(), "client-id", json!("all")),
        with(valid_request(), "client-id", json!("ca")),
        with(valid_request(), "client-id", json!("")),
    ] {
        let err = request_json(&bad).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest, "{bad}");
        assert!(err.to_string().contains("client-id"), "the message names the field: {err}");
    }
}

#[test]
fn other_request_types_are_unknown_requests() {
    let err = request_json(&with(valid_request(), "request-type", json!("fetch"))).unwrap_err();
    assert_eq!(err.code(), ErrorCode::UnknownRequest);
    assert_eq!(err.to_string(), "unknown request type \"fetch\"");
    for bad in [without(valid_request(), "request-type"), with(valid_request(), "request-type", json!(1))] {
        assert_eq!(request_json(&bad).unwrap_err().code(), ErrorCode::BadRequest, "{bad}");
    }
}

#[test]
fn other_protocol_versions_are_unsupported_and_mistyped_ones_bad_requests() {
    let err = request_json(&with(valid_request(), "protocol", json!(2))).unwrap_err();
    assert_eq!(err, ProtoError::UnsupportedProtocol { version: 2 });
    assert_eq!(err.code(), ErrorCode::UnsupportedProtocol);
    assert_eq!(
        request_json(&with(valid_request(), "protocol", json!(0))).unwrap_err().code(),
        ErrorCode::UnsupportedProtocol
    );
    for bad in [
        with(valid_request(), "protocol", json!("1")),
        with(valid_request(), "protocol", json!(null)),
        without(valid_request(), "protocol"),
    ] {
        assert_eq!(request_json(&bad).unwrap_err().code(), ErrorCode::BadRequest, "{bad}");
    }
    for bad in ["1.0", "1e0", "-1", "9007199254740992"] {
        let text = VALID_REQUEST.replace("\"protocol\":1", &format!("\"protocol\":{bad}"));
        assert_eq!(request_code(text.as_bytes()), ErrorCode::BadRequest, "{text}");
    }
}

#[test]
fn the_checks_run_in_the_documented_order() {
    // JSON first, then request-type, then protocol, then the rest.
    assert_eq!(request_code(br#"{"request-type":"fetch","request-type":"fetch"}"#), ErrorCode::BadJson);
    assert_eq!(request_code(br#"{"request-type":"fetch","protocol":"x"}"#), ErrorCode::UnknownRequest);
    assert_eq!(
        request_code(br#"{"request-type":"poll","protocol":7,"client-id":5}"#),
        ErrorCode::UnsupportedProtocol
    );
    assert_eq!(request_code(br#"{"protocol":7}"#), ErrorCode::BadRequest);
}

#[test]
fn at_most_32_reports_ride_in_one_request() {
    let report = json!({"target": "all", "seq": 41, "reason": "signature"});
    let ok = with(valid_request(), "rejected", Value::Array(vec![report.clone(); 32]));
    assert_eq!(request_json(&ok).unwrap().rejected.len(), 32);
    let bad = with(valid_request(), "rejected", Value::Array(vec![report; 33]));
    let err = request_json(&bad).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert!(err.to_string().contains("33 reports"), "{err}");
}

#[test]
fn integers_with_fraction_exponent_sign_or_above_2_53_are_bad_requests() {
    for bad in ["1.0", "1e3", "1E3", "-1", "-0", "0.5", "9007199254740992", "18446744073709551616", "\"1\""] {
        let since = VALID_REQUEST.replace('}', &format!(",\"since\":{{\"all\":{bad}}}}}"));
        assert_eq!(request_code(since.as_bytes()), ErrorCode::BadRequest, "{since}");
        let rejected = VALID_REQUEST.replace(
            '}',
            &format!(",\"rejected\":[{{\"target\":\"all\",\"seq\":{bad},\"reason\":\"gap\"}}]}}"),
        );
        assert_eq!(request_code(rejected.as_bytes()), ErrorCode::BadRequest, "{rejected}");
    }
    let max = VALID_REQUEST.replace('}', ",\"since\":{\"all\":9007199254740991}}");
    assert_eq!(Request::decode(max.as_bytes()).unwrap().since(&Target::All), 9_007_199_254_740_991);
}

#[test]
fn unknown_fields_are_ignored_at_every_level() {
    let request = json!({
        "request-type": "poll", "protocol": 1, "client-id": "web-01", "future": {"a": [1.5, null]},
        "rejected": [{"target": "all", "seq": 1, "reason": "gap", "detail": "x"}]
    });
    let decoded = request_json(&request).unwrap();
    assert_eq!(decoded.rejected[0].reason, RejectReason::Gap);
}

#[test]
fn since_and_rejected_must_have_their_types_and_valid_targets() {
    for bad in [
        with(valid_request(), "since", json!({"Web": 1})),
        with(valid_request(), "since", json!({"group:": 1})),
        with(valid_request(), "since", json!({"ca": 1})),
        with(valid_request(), "since", json!([])),
        with(valid_request(), "since", json!(null)),
        with(valid_request(), "rejected", json!({})),
        with(valid_request(), "rejected", json!([{"target": "all", "seq": 1}])),
        with(valid_request(), "rejected", json!([{"target": "nobody!", "seq": 1, "reason": "gap"}])),
        with(valid_request(), "rejected", json!([{"target": "all", "seq": 1, "reason": "Bad Reason"}])),
        with(valid_request(), "rejected", json!([{"target": "all", "seq": 1, "reason": 3}])),
        with(valid_request(), "rejected", json!(["all"])),
    ] {
        assert_eq!(request_json(&bad).unwrap_err().code(), ErrorCode::BadRequest, "{bad}");
    }
}

#[test]
fn a_reason_from_a_newer_client_is_kept_not_refused() {
    let request = with(
        valid_request(),
        "rejected",
        json!([{"target": "all", "seq": 7, "reason": "disk-quota-exceeded"}]),
    );
    let decoded = request_json(&request).unwrap();
    assert_eq!(decoded.rejected[0].reason, RejectReason::Other("disk-quota-exceeded".into()));
    assert_eq!(decoded.rejected[0].reason.to_string(), "disk-quota-exceeded");
}

#[test]
fn error_messages_quote_only_a_short_excerpt_of_the_input() {
    let long = "x".repeat(10_000);
    for bad in [
        with(valid_request(), "client-id", json!(long)),
        with(valid_request(), "request-type", json!(long)),
        with(valid_request(), "since", json!({ long.clone(): 1 })),
        with(valid_request(), "rejected", json!([{"target": "all", "seq": 1, "reason": long}])),
        with(valid_request(), "client-id", json!(1.5)),
    ] {
        let message = request_json(&bad).unwrap_err().to_string();
        assert!(message.len() < 400, "{} bytes: {message}", message.len());
    }
    let dup = format!(r#"{{"{long}":1,"{long}":1}}"#);
    assert!(Request::decode(dup.as_bytes()).unwrap_err().to_string().len() < 400);
}

#[test]
fn the_request_limit_applies_to_the_length_prefix() {
    let mut at_limit = 16384u16.to_be_bytes().to_vec();
    at_limit.extend(std::iter::repeat_n(b' ', 16384));
    assert_eq!(FrameDecoder::new(MAX_REQUEST_HEADER).decode(&at_limit).unwrap().unwrap().1, 16386);
    let over = 16385u16.to_be_bytes();
    let err = FrameDecoder::new(MAX_REQUEST_HEADER).decode(&over).unwrap_err();
    assert_eq!(err, ProtoError::HeaderTooLarge { len: 16385, limit: 16384 });
    assert_eq!(check_header_length(2, MAX_REQUEST_HEADER), Ok(2));
    assert_eq!(check_header_length(1, MAX_REQUEST_HEADER).unwrap_err().code(), ErrorCode::BadFrame);
    assert_eq!(check_header_length(0, MAX_REQUEST_HEADER).unwrap_err().code(), ErrorCode::BadFrame);
}

// ---- server frames ----

fn valid_file() -> Value {
    json!({
        "type": "file",
        "target": "web-01",
        "seq": 13,
        "file-name": "openssl-3.0.19.deb",
        "file-size": 4,
        "file-hash": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "published": "2026-11-25T17:00:00Z",
        "key-id": "3b1c0d6e9a7f2c44",
        "signature": "yqeg7FM1Rr9YHfvW3tD2uFV9ChY1NhZMZ2Q1JAY/D5hbQp+7NBhUydtr4qEMtXDX/g4oLvkTaGviyh7zFrXKBA=="
    })
}

fn frame_json(value: &Value) -> Result<ServerFrame, ProtoError> {
    ServerFrame::decode(value.to_string().as_bytes())
}

fn web_01_seq_13(reason: RejectReason) -> Option<Report> {
    Some(Report::new(Target::parse("web-01").unwrap(), 13, reason))
}

#[test]
fn the_example_frames_of_the_protocol_decode() {
    let ServerFrame::File(file) = frame_json(&valid_file()).unwrap() else { panic!("a file frame") };
    assert_eq!(file.file_size, 4);
    assert_eq!(file.statement().seq.get(), 13);
    assert_eq!(
        ServerFrame::decode(br#"{"type": "done", "more": false, "poll-after": 60}"#).unwrap(),
        ServerFrame::Done(fts_proto::Done { more: false, poll_after: 60, ..fts_proto::Done::default() })
    );
    let ServerFrame::Error(error) = ServerFrame::decode(
        br#"{"type": "error", "code": "identity-mismatch", "message": "human-readable text"}"#,
    )
    .unwrap() else {
        panic!("an error frame")
    };
    assert_eq!(error.code, ErrorCode::IdentityMismatch);
    assert_eq!(error.retry_after, None);
}

#[test]
fn a_bad_file_name_is_reported_as_bad_name_with_its_target_and_seq() {
    for name in ["../etc/passwd", ".hidden", "a b", "", "x/y"] {
        let err = frame_json(&with(valid_file(), "file-name", json!(name))).unwrap_err();
        assert!(matches!(err, ProtoError::BadFileHeader { .. }), "{err}");
        assert_eq!(err.report(), web_01_seq_13(RejectReason::BadName), "{name}");
    }
    let err = frame_json(&with(valid_file(), "file-name", json!(7))).unwrap_err();
    assert_eq!(err.report(), web_01_seq_13(RejectReason::BadName));
}

#[test]
fn other_bad_file_fields_are_reported_as_bad_header() {
    for bad in [
        with(valid_file(), "file-hash", json!("sha256:XYZ")),
        with(valid_file(), "file-hash", json!("md5:9f86d081884c7d659a2feaa0c55ad015")),
        with(valid_file(), "published", json!("2026-11-25 17:00:00")),
        with(valid_file(), "published", json!("2026-02-30T00:00:00Z")),
        with(valid_file(), "signature", json!("not base64!")),
        with(valid_file(), "signature", json!("AAAA")),
        with(valid_file(), "key-id", json!("3B1C0D6E9A7F2C44")),
        with(valid_file(), "file-size", json!(1.5)),
        with(valid_file(), "file-size", json!(-4)),
        with(valid_file(), "file-size", json!(9_007_199_254_740_992u64)),
        without(valid_file(), "signature"),
        without(valid_file(), "file-name"),
    ] {
        let err = frame_json(&bad).unwrap_err();
        assert_eq!(err.report(), web_01_seq_13(RejectReason::BadHeader), "{bad}: {err}");
    }
}

#[test]
fn a_file_header_with_seq_zero_is_reported_as_malformed_with_its_target() {
    let err = frame_json(&with(valid_file(), "seq", json!(0))).unwrap_err();
    let expected = Report::new(Target::parse("web-01").unwrap(), 0, RejectReason::BadHeader);
    assert_eq!(err.report(), Some(expected), "{err}");
    assert!(err.to_string().contains("start at 1"), "{err}");
}

#[test]
fn a_file_header_without_a_readable_target_or_seq_is_not_reportable() {
    for bad in [
        without(valid_file(), "target"),
        with(valid_file(), "target", json!("Not A Target")),
        without(valid_file(), "seq"),
        with(valid_file(), "seq", json!("13")),
        with(valid_file(), "seq", json!(1e3)),
        with(valid_file(), "type", json!("flie")),
        without(valid_file(), "type"),
        with(valid_file(), "type", json!(1)),
    ] {
        let err = frame_json(&bad).unwrap_err();
        assert!(matches!(err, ProtoError::BadServerFrame { .. }), "{bad}: {err}");
        assert_eq!(err.report(), None);
    }
    for garbage in [&b"not json"[..], b"[]", b"\xEF\xBB\xBF{}", b"{\"type\":\"file\",\"type\":\"file\"}"] {
        let err = ServerFrame::decode(garbage).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadJson);
        assert_eq!(err.report(), None);
    }
}

#[test]
fn duplicate_keys_in_a_file_header_are_bad_json_not_reportable() {
    let text = valid_file().to_string().replace("\"seq\":13", "\"seq\":13,\"seq\":14");
    let err = ServerFrame::decode(text.as_bytes()).unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadJson);
    assert_eq!(err.report(), None);
}

#[test]
fn an_error_frame_with_an_unknown_code_still_parses() {
    let frame = ServerFrame::decode(
        br#"{"type":"error","code":"rate-limited","message":"slow down","retry-after":30}"#,
    )
    .unwrap();
    assert_eq!(
        frame,
        ServerFrame::Error(ErrorFrame {
            code: ErrorCode::Unknown("rate-limited".into()),
            message: "slow down".into(),
            retry_after: Some(30),
        })
    );
    let ServerFrame::Error(bare) = ServerFrame::decode(br#"{"type":"error","code":"busy"}"#).unwrap() else {
        panic!("an error frame")
    };
    assert_eq!((bare.code, bare.message.as_str()), (ErrorCode::Busy, ""));
}

#[test]
fn mistyped_done_and_error_fields_fail_the_poll() {
    for bad in [
        json!({"type": "done", "more": false}),
        json!({"type": "done", "more": "no", "poll-after": 60}),
        json!({"type": "done", "more": false, "poll-after": 1e3}),
        json!({"type": "error"}),
        json!({"type": "error", "code": 5}),
        json!({"type": "error", "code": "busy", "retry-after": -1}),
        json!({"type": "error", "code": "busy", "message": 5}),
    ] {
        let err = frame_json(&bad).unwrap_err();
        assert!(matches!(err, ProtoError::BadServerFrame { .. }), "{bad}: {err}");
    }
}

#[test]
fn unknown_fields_in_server_frames_are_ignored() {
    let file = with(valid_file(), "mirror", json!({"x": [1, 2.5]}));
    assert!(frame_json(&file).is_ok());
    let done = json!({"type": "done", "more": true, "poll-after": 0, "budget": 1.5});
    assert!(frame_json(&done).is_ok());
}
