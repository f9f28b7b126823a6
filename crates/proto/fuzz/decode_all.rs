// Shared by the fuzz target (fuzz_targets/decode.rs) and the stable replay test
// (../tests/fuzz_corpus.rs) through `include!`, so both run exactly the same calls.

/// Arbitrary bytes through every decoder of fts-proto. Must never panic.
pub fn decode_all(data: &[u8]) {
    use fts_proto::{
        AnswerDecoder, AnswerItem, Chunk, FrameDecoder, MAX_REQUEST_HEADER, Request, ServerFrame,
    };

    // The bytes as a bare header.
    let _ = Request::decode(data);
    let _ = ServerFrame::decode(data);

    // A server reading one request frame.
    if let Ok(Some((Chunk::Header(header), _))) = FrameDecoder::new(MAX_REQUEST_HEADER).decode(data) {
        let _ = Request::decode(header);
    }

    // A client reading a whole answer in two reads, split where the first byte says.
    let split = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut decoder = AnswerDecoder::default();
    let mut buf = Vec::new();
    for piece in [&data[..split], &data[split..]] {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&buf) {
                Ok(Some((item, used))) => {
                    assert!(used > 0 && used <= buf.len(), "progress within the buffer");
                    if let AnswerItem::Body(body) = item {
                        assert_eq!(body.len(), used);
                    }
                    buf.drain(..used);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    let _ = decoder.end_of_input(&buf);
}
