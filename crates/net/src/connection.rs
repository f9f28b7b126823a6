//! [`Connection`]: frames over any byte stream (a TLS stream in production, a plain
//! TCP stream with `--plaintext`, an in-memory pipe in tests).
//!
//! It owns only the I/O of PROTOCOL.md section 2; the framing itself is fts-proto's
//! pure, fuzzed decoder ([`FrameDecoder`] for the server's requests, [`AnswerDecoder`]
//! for the client's answers), in the shape of mini-redis's `read_frame`: bytes read
//! from the stream go into a buffer, the decoder is asked for the next header, and
//! "needs more bytes" means read again. So the length prefix is checked against the
//! limit by the same code the fuzzer runs, before a header byte is read or a buffer
//! is reserved for it. What the frames mean is the business of the server and the
//! client.
//!
//! A `file` body is counted by the decoder too: [`Connection::read_body_chunk`] never
//! returns a byte past the body the last header announced. Body bytes that arrived
//! with the header are handed out of the buffer through the decoder; the rest are
//! read straight into the caller's buffer (no copy on the hot path), at most
//! [`FrameDecoder::body_room`] at a time, and counted with
//! [`FrameDecoder::body_arrived`].
//!
//! Memory: the buffer holds at most one header plus one read of [`READ_SIZE`], and is
//! allocated on the first read.

use std::io;
use std::time::Duration;

use fts_proto::{
    AnswerDecoder, AnswerItem, Chunk, ClientRequest, FrameDecoder, MAX_REQUEST_HEADER, ProtoError,
    ReceiptRequest, Request, ServerFrame,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest server header the client accepts. The protocol asks clients to accept
/// at least 16 KiB; fts accepts anything a frame can carry.
pub const CLIENT_HEADER_LIMIT: usize = fts_proto::MAX_HEADER_LEN;

/// Bytes asked of the stream per read while a header is incomplete: one TLS record.
pub const READ_SIZE: usize = 16 * 1024;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer sent something that breaks the protocol; the server answers these
    /// with an `error` frame of the matching code.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The connection closed cleanly before the first byte of a frame.
    #[error("the connection closed before a frame began")]
    Closed,
    /// The transport failed (reset, TLS alert, ...).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Which side of the protocol a connection reads.
#[derive(Debug)]
enum Decoder {
    /// The server reads one request (headers up to 16 KiB, no bodies).
    Requests(FrameDecoder),
    /// The client reads the answer: headers, and the bodies `file` headers announce.
    Answer(AnswerDecoder),
}

impl Decoder {
    fn body_remaining(&self) -> u64 {
        match self {
            Decoder::Requests(d) => d.body_remaining(),
            Decoder::Answer(d) => d.body_remaining(),
        }
    }

    /// What the end of the stream means, with `unused` bytes still buffered.
    fn end_of_input(&self, unused: &[u8]) -> ReadError {
        let ended = match self {
            Decoder::Requests(d) => d.end_of_input(unused),
            Decoder::Answer(d) => d.end_of_input(unused),
        };
        match ended {
            Err(e) => e.into(),
            Ok(()) => ReadError::Closed,
        }
    }
}

/// A byte stream that speaks in frames.
pub struct Connection<S> {
    stream: S,
    /// Bytes read from the stream and not yet handed out: `buffer[start..]`.
    buffer: Vec<u8>,
    start: usize,
    decoder: Decoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// The server's side of a connection: it reads a request.
    pub fn server(stream: S) -> Self {
        Connection::with(stream, Decoder::Requests(FrameDecoder::new(MAX_REQUEST_HEADER)))
    }

    /// The client's side of a connection: it reads the server's answer.
    pub fn client(stream: S) -> Self {
        Connection::with(stream, Decoder::Answer(AnswerDecoder::new(CLIENT_HEADER_LIMIT)))
    }

    fn with(stream: S, decoder: Decoder) -> Self {
        Connection { stream, buffer: Vec::new(), start: 0, decoder }
    }

    /// The stream underneath (a TLS session's peer certificate, say).
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream underneath, to shut it down or tune it.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    fn consume(&mut self, used: usize) {
        self.start += used;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
    }

    /// Reads more bytes from the stream into the buffer. At the end of the stream,
    /// the error that ending there is: [`ReadError::Closed`] between frames, a
    /// truncated frame otherwise.
    async fn fill(&mut self) -> Result<(), ReadError> {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        let have = self.buffer.len();
        self.buffer.resize(have + READ_SIZE, 0);
        let read = self.stream.read(&mut self.buffer[have..]).await;
        self.buffer.truncate(have + read.as_ref().map_or(0, |n| *n));
        match read? {
            0 => Err(self.decoder.end_of_input(&self.buffer)),
            _ => Ok(()),
        }
    }

    /// Server side: reads and decodes the client's `poll` request (limit 16 KiB); any
    /// other request type is `unknown-request`.
    pub async fn read_request(&mut self) -> Result<Request, ReadError> {
        match self.read_client_request().await? {
            ClientRequest::Poll(request) => Ok(request),
            ClientRequest::Receipt(_) => Err(ReadError::Proto(ProtoError::UnknownRequest {
                request_type: fts_proto::REQUEST_TYPE_RECEIPT.into(),
            })),
        }
    }

    /// Server side: reads and decodes the client's request, a `poll` or a `receipt`
    /// (limit 16 KiB).
    pub async fn read_client_request(&mut self) -> Result<ClientRequest, ReadError> {
        loop {
            let Decoder::Requests(decoder) = &mut self.decoder else {
                return Err(io::Error::other("a client's connection reads no request").into());
            };
            match decoder.decode(&self.buffer[self.start..])? {
                Some((Chunk::Header(header), used)) => {
                    let request = ClientRequest::decode(header);
                    self.consume(used);
                    if self.buffer.is_empty() {
                        // One request per connection: the buffer is not needed while the
                        // answer is sent, for however long that takes.
                        self.buffer = Vec::new();
                    }
                    return Ok(request?);
                }
                // Never: a request decoder is never told to expect a body.
                Some((Chunk::Body(_), used)) => self.consume(used),
                None => self.fill().await?,
            }
        }
    }

    /// Client side: reads and decodes the next server frame header. A `file` frame's
    /// body is then read with [`Connection::read_body_chunk`].
    pub async fn read_server_frame(&mut self) -> Result<ServerFrame, ReadError> {
        if self.decoder.body_remaining() > 0 {
            return Err(io::Error::other("the body of the last file frame was not read").into());
        }
        loop {
            let Decoder::Answer(decoder) = &mut self.decoder else {
                return Err(io::Error::other("the server's connection reads no answer").into());
            };
            match decoder.decode(&self.buffer[self.start..])? {
                Some((AnswerItem::Frame(frame), used)) => {
                    self.consume(used);
                    return Ok(frame);
                }
                // Never: no body is due (checked above) until a frame is returned.
                Some((AnswerItem::Body(_), used)) => self.consume(used),
                None => self.fill().await?,
            }
        }
    }

    /// Reads up to `buf.len()` bytes of the current `file` body, never past its end;
    /// 0 means the peer closed the stream. An error when no body is due.
    pub async fn read_body_chunk(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Decoder::Answer(decoder) = &mut self.decoder else {
            return Err(io::Error::other("the server's connection reads no body"));
        };
        if decoder.body_remaining() == 0 {
            return Err(io::Error::other("no file body is due"));
        }
        let buffered = self.buffer.len() - self.start;
        if buffered > 0 {
            // Body bytes that arrived with the header, through the decoder.
            let end = self.start + buffered.min(buf.len());
            let Ok(Some((AnswerItem::Body(body), used))) = decoder.decode(&self.buffer[self.start..end])
            else {
                return Err(io::Error::other("the frame decoder refused a body it announced"));
            };
            buf[..used].copy_from_slice(body);
            self.consume(used);
            return Ok(used);
        }
        let room = decoder.body_room(buf.len());
        let n = self.stream.read(&mut buf[..room]).await?;
        if let Decoder::Answer(decoder) = &mut self.decoder {
            decoder.body_arrived(n);
        }
        Ok(n)
    }

    /// Writes an encoded frame (or a body chunk) and flushes it.
    pub async fn write_all_flush(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Writes body bytes without flushing (the caller flushes at the end of the body).
    pub async fn write_body_chunk(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Flushes what was written to the stream.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.stream.flush().await
    }

    /// Encodes and sends one server frame header.
    pub async fn send_frame(&mut self, frame: &ServerFrame) -> io::Result<()> {
        let bytes = frame.encode().map_err(io::Error::other)?;
        self.write_all_flush(&bytes).await
    }

    /// Encodes and sends the client's request.
    pub async fn send_request(&mut self, request: &Request) -> io::Result<()> {
        let bytes = request.encode().map_err(io::Error::other)?;
        self.write_all_flush(&bytes).await
    }

    /// Client side: sends a `receipt` request.
    pub async fn send_receipts(&mut self, request: &ReceiptRequest) -> io::Result<()> {
        let bytes = request.encode().map_err(io::Error::other)?;
        self.write_all_flush(&bytes).await
    }

    /// Reads and discards input until the peer stops sending or `limit` passes, so
    /// that an error frame just written is not lost to a TCP reset (a peer whose
    /// unread input is discarded by a close gets an RST, which can overtake data).
    pub async fn drain(&mut self, limit: Duration) {
        let mut scratch = [0u8; 4096];
        let _ = tokio::time::timeout(limit, async {
            while let Ok(n) = self.stream.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }

    /// Ends the stream in an orderly way (a TLS close_notify over TLS).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fts_proto::{ClientId, Done, ErrorCode};
    use tokio::io::duplex;

    #[tokio::test]
    async fn a_request_crosses_a_connection() {
        let (a, b) = duplex(1024);
        let (mut client, mut server) = (Connection::client(a), Connection::server(b));
        let request = Request::new(ClientId::parse("web-01").unwrap());
        client.send_request(&request).await.unwrap();
        assert_eq!(server.read_request().await.unwrap(), request);
    }

    #[tokio::test]
    async fn an_oversized_request_header_is_refused_from_its_length_alone() {
        let (mut a, b) = duplex(1024);
        let mut server = Connection::server(b);
        // Only the prefix is sent: the server must answer without waiting for 60000 bytes.
        a.write_all(&60_000u16.to_be_bytes()).await.unwrap();
        let err = server.read_request().await.unwrap_err();
        let ReadError::Proto(err) = err else { panic!("{err}") };
        assert_eq!(err.code(), ErrorCode::HeaderTooLarge);
    }

    #[tokio::test]
    async fn a_connection_closed_inside_a_frame_is_a_bad_frame() {
        for sent in [&[0u8][..], &[0, 10, b'{'][..]] {
            let (mut a, b) = duplex(1024);
            let mut server = Connection::server(b);
            a.write_all(sent).await.unwrap();
            drop(a);
            let ReadError::Proto(err) = server.read_request().await.unwrap_err() else { panic!() };
            assert_eq!(err.code(), ErrorCode::BadFrame, "{sent:?}");
        }
    }

    #[tokio::test]
    async fn a_connection_closed_between_frames_is_just_closed() {
        let (a, b) = duplex(1024);
        drop(a);
        let mut server = Connection::server(b);
        assert!(matches!(server.read_request().await, Err(ReadError::Closed)));
    }

    #[tokio::test]
    async fn server_frames_cross_a_connection() {
        let (a, b) = duplex(1024);
        let (mut client, mut server) = (Connection::client(a), Connection::server(b));
        let done = ServerFrame::Done(Done { more: true, poll_after: 60, ..Done::default() });
        server.send_frame(&done).await.unwrap();
        assert_eq!(client.read_server_frame().await.unwrap(), done);
    }

    /// A file frame, its body and the next frame, written in two pieces split at every
    /// interesting place: the body comes out whole and exact, the next frame after it.
    #[tokio::test]
    async fn a_body_is_never_read_past_its_end_whatever_the_reads_bring() {
        let header = format!(
            r#"{{"type":"file","target":"all","seq":1,"file-name":"a.txt","file-size":5,"file-hash":"sha256:{}","published":"2026-11-25T17:00:00Z","key-id":"0000000000000000","signature":"{}=="}}"#,
            "0".repeat(64),
            "A".repeat(86)
        );
        let done =
            ServerFrame::Done(Done { more: false, poll_after: 60, ..Done::default() }).encode().unwrap();
        let mut wire = u16::try_from(header.len()).unwrap().to_be_bytes().to_vec();
        wire.extend_from_slice(header.as_bytes());
        wire.extend_from_slice(b"hello");
        wire.extend_from_slice(&done);
        for split in [0, 1, 2, 50, header.len() + 2, header.len() + 4, header.len() + 7, wire.len()] {
            let (mut a, b) = duplex(1 << 16);
            let mut client = Connection::client(b);
            let (first, rest) = wire.split_at(split);
            let (first, rest) = (first.to_vec(), rest.to_vec());
            let writer = tokio::spawn(async move {
                a.write_all(&first).await.unwrap();
                tokio::task::yield_now().await;
                a.write_all(&rest).await.unwrap();
                a
            });
            let ServerFrame::File(file) = client.read_server_frame().await.unwrap() else { panic!() };
            assert_eq!(file.file_size, 5);
            let mut body = Vec::new();
            let mut buf = [0u8; 3];
            while body.len() < 5 {
                let n = client.read_body_chunk(&mut buf).await.unwrap();
                assert!(n > 0, "split at {split}");
                body.extend_from_slice(&buf[..n]);
            }
            assert_eq!(body, b"hello", "split at {split}");
            assert!(client.read_body_chunk(&mut buf).await.is_err(), "no body is due any more");
            assert!(matches!(client.read_server_frame().await.unwrap(), ServerFrame::Done(_)));
            drop(writer.await.unwrap());
        }
    }

    #[tokio::test]
    async fn a_stream_that_ends_after_the_last_frame_is_just_closed() {
        let (a, b) = duplex(1024);
        let (mut client, mut server) = (Connection::client(a), Connection::server(b));
        let done = ServerFrame::Done(Done { more: false, poll_after: 60, ..Done::default() });
        server.send_frame(&done).await.unwrap();
        drop(server);
        assert!(matches!(client.read_server_frame().await.unwrap(), ServerFrame::Done(_)));
        assert!(matches!(client.read_server_frame().await, Err(ReadError::Closed)));
    }
}
