//! Frames (PROTOCOL.md section 2): the length prefix, the limits, encoding, and an
//! incremental decoder that never allocates.
//!
//! ```text
//! +----------------------+---------------------+-------------------------------+
//! | header length: u16   | JSON header         | body (only `file` frames)     |
//! | big-endian, 2 bytes  | exactly that many   | exactly `file-size` bytes     |
//! |                      | bytes, UTF-8 object |                               |
//! +----------------------+---------------------+-------------------------------+
//!
//! e.g. a done frame (44 = 0x002c header bytes, no body):
//!
//!   00 2c  {"type":"done","more":false,"poll-after":60}
//!   ^^^^^  ^----------------- 44 bytes ---------------^
//! ```
//!
//! The header length `N` is `2 <= N <= 65535` (`{}` is the shortest object). Each
//! side reads with its own limit: a server accepts request headers up to
//! [`MAX_REQUEST_HEADER`] (16 KiB), a client keeps its request frame under
//! [`MAX_CLIENT_REQUEST`] (8 KiB) and may cap server headers (at least 16 KiB).
//! [`check_header_length`] applies the limit to the two prefix bytes alone, so a
//! reader refuses a huge claim before it reads or reserves anything; the
//! [`FrameDecoder`] does the same for bytes already in a buffer.
//!
//! This module does not look inside the header: [`Request::decode`] and
//! [`ServerFrame::decode`] do. Only the caller knows, after decoding a `file`
//! header, that `file-size` body bytes follow, and says so with
//! [`FrameDecoder::expect_body`]; [`AnswerDecoder`] does both for a client.
//!
//! [`Request::decode`]: crate::Request::decode
//! [`ServerFrame::decode`]: crate::ServerFrame::decode
//! [`AnswerDecoder`]: crate::AnswerDecoder

use serde::Serialize;

use crate::error::{ProtoError, detail};

pub use crate::wire_int::MAX_WIRE_INT;

/// Bytes of the length prefix.
pub const LENGTH_PREFIX_LEN: usize = 2;

/// The shortest header: `{}`.
pub const MIN_HEADER_LEN: usize = 2;

/// The longest header the u16 prefix can announce.
pub const MAX_HEADER_LEN: usize = u16::MAX as usize;

/// The server's limit for a request header; a longer one is `header-too-large`.
pub const MAX_REQUEST_HEADER: usize = 16 * 1024;

/// A client's whole request frame must be shorter than this.
pub const MAX_CLIENT_REQUEST: usize = 8 * 1024;

/// The lowest limit a client may put on the server's headers.
pub const MIN_CLIENT_HEADER_LIMIT: usize = 16 * 1024;

/// The length prefix followed by the compact JSON of `header`. The caller writes a
/// `file` frame's body after it.
///
/// Fails if the header is not a JSON object, is longer than 65535 bytes, or holds
/// an integer that is not a wire integer.
pub fn encode_frame(header: &impl Serialize) -> Result<Vec<u8>, ProtoError> {
    let mut frame = vec![0u8; LENGTH_PREFIX_LEN];
    serde_json::to_writer(&mut frame, header).map_err(|e| ProtoError::Encode { detail: detail(e) })?;
    let len = frame.len() - LENGTH_PREFIX_LEN;
    if frame.get(LENGTH_PREFIX_LEN) != Some(&b'{') {
        return Err(ProtoError::Encode { detail: "a frame header must be a JSON object".to_owned() });
    }
    let prefix = u16::try_from(len).map_err(|_| ProtoError::Encode {
        detail: format!("the header is {len} bytes, more than the {MAX_HEADER_LEN} a frame can carry"),
    })?;
    frame[..LENGTH_PREFIX_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(frame)
}

/// Checks a header length read from the prefix against the 2-byte minimum and the
/// reader's `limit`, before anything is read or allocated; returns it as a `usize`.
///
/// Below 2 is `bad-frame`, above `limit` is `header-too-large`.
pub fn check_header_length(len: u16, limit: usize) -> Result<usize, ProtoError> {
    let n = usize::from(len);
    if n < MIN_HEADER_LEN {
        Err(ProtoError::HeaderTooShort { len })
    } else if n > limit {
        Err(ProtoError::HeaderTooLarge { len: n, limit })
    } else {
        Ok(n)
    }
}

/// One piece of a frame stream, borrowed from the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'b> {
    /// A complete JSON header, without its length prefix.
    Header(&'b [u8]),
    /// Some bytes of the current `file` body, never more than remain of it.
    Body(&'b [u8]),
}

/// An incremental frame decoder in the style of mini-redis: give it whatever bytes
/// have arrived; it returns the next [`Chunk`] and how many bytes it used, or
/// `Ok(None)` when more bytes are needed (not an error). It keeps no buffer of its
/// own and never allocates, so a claimed length cannot make it reserve memory.
///
/// After an error the stream cannot be resynchronised: close the connection.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    /// The longest header this side accepts (at most [`MAX_HEADER_LEN`]).
    limit: usize,
    /// Bytes of the current `file` body not yet returned; 0 between frames.
    body_remaining: u64,
}

impl FrameDecoder {
    /// A decoder that refuses headers longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        FrameDecoder { limit: limit.min(MAX_HEADER_LEN), body_remaining: 0 }
    }

    /// The longest header accepted.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Decodes the next chunk from the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds less than a whole header (or is empty in
    /// a body); the caller reads more and calls again with the bytes it kept. On
    /// `Ok(Some((chunk, used)))` the caller drops the first `used` bytes.
    pub fn decode<'b>(&mut self, buf: &'b [u8]) -> Result<Option<(Chunk<'b>, usize)>, ProtoError> {
        if self.body_remaining > 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            let take = usize::try_from(self.body_remaining).map_or(buf.len(), |r| r.min(buf.len()));
            let body = &buf[..take];
            self.body_remaining -= take as u64;
            return Ok(Some((Chunk::Body(body), take)));
        }
        let Some(&[hi, lo]) = buf.get(..LENGTH_PREFIX_LEN) else {
            return Ok(None);
        };
        let len = check_header_length(u16::from_be_bytes([hi, lo]), self.limit)?;
        let end = LENGTH_PREFIX_LEN + len;
        match buf.get(LENGTH_PREFIX_LEN..end) {
            Some(header) => Ok(Some((Chunk::Header(header), end))),
            None => Ok(None),
        }
    }

    /// Announces that the header just returned was a `file` header: the next `len`
    /// bytes are its body. Until they have all been returned as [`Chunk::Body`],
    /// no header is decoded.
    pub fn expect_body(&mut self, len: u64) {
        self.body_remaining = len;
    }

    /// Bytes of the current body not yet returned.
    pub fn body_remaining(&self) -> u64 {
        self.body_remaining
    }

    /// How many bytes a reader may take straight from the stream as body now: at most
    /// `capacity`, never past the body (0 between frames). For readers that avoid a
    /// copy through their buffer; they report what arrived with [`body_arrived`].
    ///
    /// [`body_arrived`]: FrameDecoder::body_arrived
    pub fn body_room(&self, capacity: usize) -> usize {
        usize::try_from(self.body_remaining).map_or(capacity, |r| r.min(capacity))
    }

    /// `n` body bytes, at most [`body_room`](FrameDecoder::body_room), were read
    /// straight from the stream; the body is counted down by them.
    pub fn body_arrived(&mut self, n: usize) {
        self.body_remaining = self.body_remaining.saturating_sub(n as u64);
    }

    /// Called when the input has ended, with the bytes still unused: an error
    /// (`bad-frame`) unless the stream ended exactly between two frames.
    pub fn end_of_input(&self, unused: &[u8]) -> Result<(), ProtoError> {
        if self.body_remaining > 0 {
            Err(ProtoError::TruncatedBody { missing: self.body_remaining })
        } else if !unused.is_empty() {
            Err(ProtoError::TruncatedHeader { buffered: unused.len() })
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::ErrorCode;

    fn frame_with_len(len: u16, header: &[u8]) -> Vec<u8> {
        let mut f = len.to_be_bytes().to_vec();
        f.extend_from_slice(header);
        f
    }

    #[test]
    fn header_lengths_below_two_are_bad_frames() {
        for len in [0u16, 1] {
            let err = check_header_length(len, MAX_REQUEST_HEADER).unwrap_err();
            assert_eq!(err.code(), ErrorCode::BadFrame);
            let err = FrameDecoder::new(MAX_REQUEST_HEADER).decode(&frame_with_len(len, b"{}")).unwrap_err();
            assert_eq!(err.code(), ErrorCode::BadFrame);
        }
    }

    #[test]
    fn the_empty_object_is_the_shortest_frame() {
        let bytes = frame_with_len(2, b"{}");
        let (chunk, used) = FrameDecoder::new(MAX_REQUEST_HEADER).decode(&bytes).unwrap().unwrap();
        assert_eq!(chunk, Chunk::Header(b"{}"));
        assert_eq!(used, 4);
    }

    #[test]
    fn the_request_limit_is_16_kib_inclusive() {
        assert_eq!(check_header_length(16384, MAX_REQUEST_HEADER).unwrap(), 16384);
        let err = check_header_length(16385, MAX_REQUEST_HEADER).unwrap_err();
        assert_eq!(err.code(), ErrorCode::HeaderTooLarge);
        assert_eq!(err.to_string(), "header length 16385 exceeds the limit of 16384 bytes");
        assert_eq!(check_header_length(65535, MAX_HEADER_LEN).unwrap(), 65535);
        assert!(check_header_length(65535, MAX_REQUEST_HEADER).is_err());
    }

    #[test]
    fn a_too_large_length_is_refused_from_the_prefix_alone() {
        // Only the two prefix bytes are present: the limit must fire before the
        // decoder waits for (or reserves room for) the header.
        let mut decoder = FrameDecoder::new(MAX_REQUEST_HEADER);
        let err = decoder.decode(&16385u16.to_be_bytes()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::HeaderTooLarge);
        let err = decoder.decode(&u16::MAX.to_be_bytes()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::HeaderTooLarge);
        assert_eq!(decoder.decode(&[0x40]).unwrap(), None, "one byte: need more");
    }

    #[test]
    fn a_limit_above_the_prefix_range_means_65535() {
        let decoder = FrameDecoder::new(usize::MAX);
        assert_eq!(decoder.limit(), MAX_HEADER_LEN);
        let header = vec![b' '; 65535];
        let bytes = frame_with_len(65535, &header);
        let (chunk, used) = FrameDecoder::new(usize::MAX).decode(&bytes).unwrap().unwrap();
        assert_eq!(used, 65537);
        assert!(matches!(chunk, Chunk::Header(h) if h.len() == 65535));
    }

    #[test]
    fn truncated_input_needs_more_bytes_and_fails_at_end_of_input() {
        let bytes = frame_with_len(10, b"{\"a\":");
        let mut decoder = FrameDecoder::new(MAX_REQUEST_HEADER);
        for end in 0..bytes.len() {
            assert_eq!(decoder.decode(&bytes[..end]).unwrap(), None);
        }
        assert_eq!(decoder.end_of_input(&[]), Ok(()));
        let err = decoder.end_of_input(&bytes).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadFrame);
    }

    #[test]
    fn bodies_are_returned_in_pieces_and_never_overrun() {
        let mut decoder = FrameDecoder::new(MAX_REQUEST_HEADER);
        decoder.expect_body(5);
        let (chunk, used) = decoder.decode(b"abc").unwrap().unwrap();
        assert_eq!((chunk, used), (Chunk::Body(b"abc"), 3));
        assert_eq!(decoder.decode(b"").unwrap(), None);
        assert_eq!(decoder.end_of_input(b"").unwrap_err(), ProtoError::TruncatedBody { missing: 2 });
        let (chunk, used) = decoder.decode(b"de\x00\x02{}").unwrap().unwrap();
        assert_eq!((chunk, used), (Chunk::Body(b"de"), 2));
        let (chunk, used) = decoder.decode(b"\x00\x02{}").unwrap().unwrap();
        assert_eq!((chunk, used), (Chunk::Header(b"{}"), 4));
    }

    #[test]
    fn encoding_writes_a_big_endian_prefix_and_compact_json() {
        let frame = encode_frame(&serde_json::json!({"type": "done"})).unwrap();
        assert_eq!(&frame[..2], &[0, 15]);
        assert_eq!(&frame[2..], br#"{"type":"done"}"#);
    }

    #[test]
    fn encoding_refuses_oversized_and_non_object_headers() {
        let big = serde_json::json!({ "x": "a".repeat(65535) });
        assert!(matches!(encode_frame(&big).unwrap_err(), ProtoError::Encode { .. }));
        assert!(encode_frame(&1).is_err());
        assert!(encode_frame(&[1, 2]).is_err());
        let exact = serde_json::json!({ "x": "a".repeat(65535 - 8) });
        assert_eq!(encode_frame(&exact).unwrap().len(), 65537);
    }
}
