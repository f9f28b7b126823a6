//! [`Connection`]: frames over any byte stream (a TLS stream in production, a plain
//! TCP stream with `--plaintext`, an in-memory pipe in tests).
//!
//! It owns only the framing of PROTOCOL.md section 2: the 2-byte length prefix checked
//! against a limit before the header is read or any buffer reserved, the JSON header
//! decoded by fts-proto, a flush after each frame. What the frames mean is the
//! business of the server and the client.

use std::io;
use std::time::Duration;

use fts_proto::{ProtoError, Request, ServerFrame, check_header_length};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The largest server header the client accepts. The protocol asks clients to accept
/// at least 16 KiB; fts accepts anything a frame can carry, since the header is read
/// into a buffer of exactly the announced length.
pub const CLIENT_HEADER_LIMIT: usize = fts_proto::MAX_HEADER_LEN;

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
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// A byte stream that speaks in frames.
pub struct Connection<S> {
    stream: S,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S) -> Self {
        Connection { stream }
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Reads one frame header's JSON bytes, at most `limit` long. The length is
    /// checked before a byte of the header is read, so a peer cannot make this side
    /// allocate more than `limit`.
    async fn read_header(&mut self, limit: usize) -> Result<Vec<u8>, ReadError> {
        let mut prefix = [0u8; 2];
        let got = read_full(&mut self.stream, &mut prefix).await?;
        match got {
            0 => return Err(ReadError::Closed),
            1 => return Err(ProtoError::TruncatedHeader { buffered: 1 }.into()),
            _ => {}
        }
        let len = check_header_length(u16::from_be_bytes(prefix), limit)?;
        let mut header = vec![0u8; len];
        let got = read_full(&mut self.stream, &mut header).await?;
        if got < len {
            return Err(ProtoError::TruncatedHeader { buffered: 2 + got }.into());
        }
        Ok(header)
    }

    /// Server side: reads and decodes the client's request (limit 16 KiB).
    pub async fn read_request(&mut self) -> Result<Request, ReadError> {
        let header = self.read_header(fts_proto::MAX_REQUEST_HEADER).await?;
        Ok(Request::decode(&header)?)
    }

    /// Client side: reads and decodes the next server frame header. A `file` frame's
    /// body is then read with [`Connection::read_body_chunk`].
    pub async fn read_server_frame(&mut self) -> Result<ServerFrame, ReadError> {
        let header = self.read_header(CLIENT_HEADER_LIMIT).await?;
        Ok(ServerFrame::decode(&header)?)
    }

    /// Reads up to `buf.len()` body bytes; 0 means the peer closed the stream.
    pub async fn read_body_chunk(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf).await
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

/// Like `read_exact`, but reports how many bytes arrived before the end of the stream
/// instead of failing, so the caller can tell "closed between frames" from "closed
/// inside a frame".
async fn read_full<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fts_proto::{ClientId, Done, ErrorCode};
    use tokio::io::duplex;

    #[tokio::test]
    async fn a_request_crosses_a_connection() {
        let (a, b) = duplex(1024);
        let (mut client, mut server) = (Connection::new(a), Connection::new(b));
        let request = Request::new(ClientId::parse("web-01").unwrap());
        client.send_request(&request).await.unwrap();
        assert_eq!(server.read_request().await.unwrap(), request);
    }

    #[tokio::test]
    async fn an_oversized_request_header_is_refused_from_its_length_alone() {
        let (mut a, b) = duplex(1024);
        let mut server = Connection::new(b);
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
            let mut server = Connection::new(b);
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
        let mut server = Connection::new(b);
        assert!(matches!(server.read_request().await, Err(ReadError::Closed)));
    }

    #[tokio::test]
    async fn server_frames_cross_a_connection() {
        let (a, b) = duplex(1024);
        let (mut client, mut server) = (Connection::new(a), Connection::new(b));
        let done = ServerFrame::Done(Done { more: true, poll_after: 60 });
        server.send_frame(&done).await.unwrap();
        assert_eq!(client.read_server_frame().await.unwrap(), done);
    }
}
