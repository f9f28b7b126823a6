//! The incremental decoders give the same result however the input is cut: split in
//! two at every byte boundary, or fed one byte at a time, including a `file` frame
//! followed by its body and by further frames.

use fts_proto::{
    AnswerDecoder, AnswerItem, Chunk, ClientId, Done, FileHash, FileHeader, FileName, FrameDecoder, KeyId,
    MAX_REQUEST_HEADER, ProtoError, Published, RejectReason, Report, Request, Seq, ServerFrame, Signature,
    Target,
};

/// What a client makes of an answer: the frames, and the body of each file.
#[derive(Debug, PartialEq)]
struct Answer {
    frames: Vec<ServerFrame>,
    bodies: Vec<Vec<u8>>,
}

/// Feeds `pieces` one after another like successive socket reads, keeping unused
/// bytes in a buffer as a real reader would, then signals the end of input.
fn read_answer(pieces: &[&[u8]]) -> Result<Answer, ProtoError> {
    let mut decoder = AnswerDecoder::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut answer = Answer { frames: Vec::new(), bodies: Vec::new() };
    for piece in pieces {
        buf.extend_from_slice(piece);
        while let Some((item, used)) = decoder.decode(&buf)? {
            match item {
                AnswerItem::Frame(frame) => {
                    if matches!(frame, ServerFrame::File(_)) {
                        answer.bodies.push(Vec::new());
                    }
                    answer.frames.push(frame);
                }
                AnswerItem::Body(bytes) => answer.bodies.last_mut().unwrap().extend_from_slice(bytes),
            }
            buf.drain(..used);
        }
    }
    decoder.end_of_input(&buf)?;
    Ok(answer)
}

fn file(seq: u64, name: &str, body: &[u8]) -> FileHeader {
    FileHeader {
        target: Target::parse("group:web").unwrap(),
        seq: Seq::new(seq).unwrap(),
        file_name: FileName::parse(name).unwrap(),
        file_size: body.len() as u64,
        file_hash: FileHash::from_digest([seq as u8; 32]),
        published: Published::parse("2026-11-25T17:00:00Z").unwrap(),
        key_id: KeyId::from_prefix([7; 8]),
        signature: Signature::from_bytes([9; 64]),
        offset: None,
        log_index: None,
        inclusion: None,
    }
}

/// Two file frames with bodies (one empty, whose bytes look like a frame), then
/// `done`.
fn sample_answer() -> (Vec<u8>, Answer) {
    let first_body = b"\x00\x02{}body bytes that look like a frame";
    let frames = vec![
        ServerFrame::File(file(1, "a.deb", first_body)),
        ServerFrame::File(file(2, "b.deb", b"")),
        ServerFrame::Done(Done { more: true, poll_after: 60, ..Done::default() }),
    ];
    let mut wire = frames[0].encode().unwrap();
    wire.extend_from_slice(first_body);
    wire.extend(frames[1].encode().unwrap());
    wire.extend(frames[2].encode().unwrap());
    (wire, Answer { frames, bodies: vec![first_body.to_vec(), Vec::new()] })
}

#[test]
fn an_answer_split_in_two_at_every_byte_decodes_the_same() {
    let (wire, expected) = sample_answer();
    assert_eq!(read_answer(&[&wire]).unwrap(), expected);
    for split in 0..=wire.len() {
        let (a, b) = wire.split_at(split);
        assert_eq!(read_answer(&[a, b]).unwrap(), expected, "split at {split}");
    }
}

#[test]
fn an_answer_fed_one_byte_at_a_time_decodes_the_same() {
    let (wire, expected) = sample_answer();
    let pieces: Vec<&[u8]> = wire.chunks(1).collect();
    assert_eq!(read_answer(&pieces).unwrap(), expected);
}

#[test]
fn every_proper_prefix_of_an_answer_is_a_truncated_frame() {
    let (wire, _) = sample_answer();
    let frame_ends = frame_boundaries(&wire);
    for end in 0..wire.len() {
        let result = read_answer(&[&wire[..end]]);
        if frame_ends.contains(&end) {
            assert!(result.is_ok(), "a prefix ending between frames is complete: {end}");
        } else {
            let err = result.unwrap_err();
            assert!(
                matches!(err, ProtoError::TruncatedHeader { .. } | ProtoError::TruncatedBody { .. }),
                "prefix of {end} bytes: {err}"
            );
            assert_eq!(err.code().as_str(), "bad-frame");
        }
    }
}

/// Offsets at which a frame (header and body) ends, and 0.
fn frame_boundaries(wire: &[u8]) -> Vec<usize> {
    let mut decoder = AnswerDecoder::default();
    let mut at = 0;
    let mut ends = vec![0];
    while let Some((_, used)) = decoder.decode(&wire[at..]).unwrap() {
        at += used;
        if decoder.body_remaining() == 0 {
            ends.push(at);
        }
    }
    ends
}

#[test]
fn a_request_split_at_every_byte_decodes_the_same() {
    let mut request = Request::new(ClientId::parse("web-01").unwrap());
    request.since.insert(Target::All, 40);
    request.rejected.push(Report::new(Target::All, 41, RejectReason::Signature));
    let wire = request.encode().unwrap();
    for split in 0..=wire.len() {
        let mut decoder = FrameDecoder::new(MAX_REQUEST_HEADER);
        let (a, b) = wire.split_at(split);
        let mut buf = a.to_vec();
        let first = decoder.decode(&buf).unwrap();
        if split < wire.len() {
            assert_eq!(first, None, "split at {split}: a partial frame needs more bytes");
            buf.extend_from_slice(b);
        }
        let (chunk, used) = decoder.decode(&buf).unwrap().unwrap();
        assert_eq!(used, wire.len());
        let Chunk::Header(header) = chunk else { panic!("a request has no body") };
        assert_eq!(Request::decode(header).unwrap(), request);
    }
}
