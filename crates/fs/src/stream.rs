//! The shape of fts's three byte streams, and what they share: the buffer size, the
//! writeback slice, filling a buffer from a reader ([`read_full`]) and the disk end
//! ([`DiskWriter`], [`start_writeback`]).
//!
//! | stream  | reads                         | writes                           | hashes on                  |
//! |---------|-------------------------------|----------------------------------|----------------------------|
//! | publish | the source file, its thread   | the blob temp, a scoped thread   | the reader                 |
//! | receive | the connection, an async task | the body temp, a blocking thread | a blocking thread between  |
//! | serve   | the blob, a blocking thread   | the connection, an async task    | (none)                     |
//!
//! **One shape.** A fixed set of buffers of [`CHUNK`] bytes goes round between the two
//! sides through bounded channels: full buffers one way, emptied ones back (in
//! receive through the hashing stage, three channels in a ring). So
//! each byte is read once into a buffer and written from it (no copy between), the
//! memory of a stream is the buffers whatever the file's size, and the two sides
//! overlap. A disk writer asks the kernel to start writing back every
//! [`WRITEBACK_SLICE`], so that the fsync at the end waits only for the tail.
//!
//! **Why not one generic pipeline function.** The three streams differ in which side
//! is async (tokio channels in receive and serve, at opposite ends; std channels and
//! scoped threads in publish, where nothing is async and no runtime exists) and in
//! where the hashing runs (publish: on the reader, which has CPU to spare; receive: on a
//! third stage of its own, as the async side decrypts and the writer waits for the
//! page cache, so that the three overlap on two cores). One function would need its channels and its per-buffer work behind traits, a
//! tokio dependency in this crate, and a call through a trait object or a closure per
//! 64 KiB on paths measured to the percent (docs/PERFORMANCE.md); each loop is about
//! thirty lines and stays beside its caller. What does not differ is here, once.

use std::fs::File;
use std::io::{self, Read, Write};
use std::num::NonZeroU64;

/// Bytes per buffer, on every stream. Publish: a buffer that was just read and
/// hashed is still in the CPU caches when it is written only if it is small (1 GiB
/// into ext4: 64 KiB took 1.0 s, 1 MiB 2.8 s, 16 KiB 1.17 s, 128 KiB already
/// slower). Receive: 64 KiB x 8 is as fast as 32 KiB x 16 and faster than 256 KiB x
/// 4. Serve: 64 KiB costs the same CPU per GiB as 256 KiB (docs/PERFORMANCE.md).
pub const CHUNK: usize = 64 << 10;

/// Buffers in flight between a reader and a disk writer (publish, receive): 512 KiB
/// per stream. (The server sends with fewer, for its memory per connection.)
pub const DISK_BUFFERS: usize = 8;

/// A disk writer starts writeback every this many bytes. Publish of 1 GiB (median of
/// 5): 0.95 s with 2 MiB, 0.99 s with 8 MiB, 1.09 s with 32 MiB, 1.37 s with none;
/// receive: no difference between 2, 8 and 64 MiB beyond the noise.
pub const WRITEBACK_SLICE: u64 = 2 << 20;

/// The length of the next buffer when `remaining` bytes are still wanted.
pub fn chunk_len(remaining: u64) -> usize {
    usize::try_from(remaining).map_or(CHUNK, |left| left.min(CHUNK))
}

/// Fills `buffer` from `reader`, retrying interrupted reads, until it is full or the
/// reader ends. Returns how many bytes it holds: fewer than its length only at the
/// end, 0 when the reader had nothing left.
pub fn read_full(reader: &mut impl Read, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The disk end of a stream: writes each buffer whole, in order, and starts the
/// writeback of every [`WRITEBACK_SLICE`] written.
#[derive(Debug)]
pub struct DiskWriter<'a> {
    file: &'a File,
    /// Where the handle's position started, and where it is now.
    start: u64,
    position: u64,
    writeback_from: u64,
}

impl<'a> DiskWriter<'a> {
    /// A writer onto `file` at offset 0 (its position), nothing written yet.
    pub fn new(file: &'a File) -> DiskWriter<'a> {
        DiskWriter::at(file, 0)
    }

    /// A writer onto `file` whose position is `offset` (after a kept prefix).
    pub fn at(file: &'a File, offset: u64) -> DiskWriter<'a> {
        DiskWriter { file, start: offset, position: offset, writeback_from: offset }
    }

    /// Writes `bytes` whole after what was written before.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut file = self.file;
        file.write_all(bytes)?;
        self.position += bytes.len() as u64;
        if self.position - self.writeback_from >= WRITEBACK_SLICE {
            start_writeback(self.file, self.writeback_from, self.position - self.writeback_from);
            self.writeback_from = self.position;
        }
        Ok(())
    }

    /// The bytes written so far.
    pub fn written(&self) -> u64 {
        self.position - self.start
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` to disk now, without
/// waiting (`POSIX_FADV_DONTNEED` starts writeback of dirty pages, and drops the pages
/// already clean). Only a head start for the fsync that follows, which stays the
/// durability point: a failure here changes nothing and is ignored.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    if let Some(len) = NonZeroU64::new(len) {
        let _ = rustix::fs::fadvise(file, offset, Some(len), rustix::fs::Advice::DontNeed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that gives at most 3 bytes per read and is interrupted in between.
    struct Trickle<'a>(&'a [u8], bool);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.1 = !self.1;
            if self.1 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_buffer_is_filled_across_short_and_interrupted_reads() {
        let mut reader = Trickle(b"0123456789", false);
        let mut buffer = [0u8; 4];
        assert_eq!(read_full(&mut reader, &mut buffer).unwrap(), 4);
        assert_eq!(&buffer, b"0123");
        assert_eq!(read_full(&mut reader, &mut buffer).unwrap(), 4);
        assert_eq!(read_full(&mut reader, &mut buffer).unwrap(), 2, "the end");
        assert_eq!(read_full(&mut reader, &mut buffer).unwrap(), 0);
        assert_eq!(chunk_len(10), 10);
        assert_eq!(chunk_len(u64::MAX), CHUNK);
    }

    #[test]
    fn the_disk_writer_writes_every_buffer_in_order() {
        let temp = tempfile::tempdir().unwrap();
        let file = File::create(temp.path().join("f")).unwrap();
        let mut writer = DiskWriter::new(&file);
        let chunk = vec![7u8; CHUNK];
        for _ in 0..(WRITEBACK_SLICE as usize / CHUNK + 3) {
            writer.write(&chunk).unwrap();
        }
        writer.write(b"tail").unwrap();
        let expected = (WRITEBACK_SLICE as usize / CHUNK + 3) * CHUNK + 4;
        assert_eq!(writer.written(), expected as u64);
        assert_eq!(std::fs::metadata(temp.path().join("f")).unwrap().len(), expected as u64);
    }
}
