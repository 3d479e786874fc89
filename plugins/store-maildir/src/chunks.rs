//! Reading a large message file on the blocking pool, one buffer ahead of the reader.
//!
//! `blocking::Unblock` copies every octet twice on the way (file to its buffer, buffer into a pipe,
//! pipe into the reader's buffer) and hands over 32 KiB at a time, each time with a futex wake-up
//! on both sides; for 50 MiB messages the benchmark counted a handoff per 20 KiB. Here the pool
//! reads [`CHUNK`] octets straight into a buffer that is then swapped into the
//! [`CrlfReader`](crate::body::CrlfReader) (no copy), and as soon as the reader takes one buffer the
//! next read starts into the buffer it gave back, so the disk (or page cache) and the conversion
//! overlap. Two buffers per large transfer, whatever the message size.

use crate::body::Fill;
use blocking::Task;
use std::fs::File;
use std::future::Future as _;
use std::io::{self, ErrorKind, Read};
use std::task::{Context, Poll, ready};

/// Octets per read: four times the old pipe's handoff, a quarter of the handoffs.
pub const CHUNK: usize = 128 * 1024;

/// A read under way: the file and the buffer come back with the result.
type Reading = Task<(File, Vec<u8>, io::Result<usize>)>;

/// A large message's file, read ahead in [`CHUNK`] pieces on the blocking pool.
#[derive(Debug)]
pub struct FileChunks {
    /// The file, when no read is under way.
    file: Option<File>,
    pending: Option<Reading>,
    /// A buffer for the next read, kept while none can start.
    spare: Option<Vec<u8>>,
    eof: bool,
}

impl FileChunks {
    /// Reads `file` from its current position.
    pub fn new(file: File) -> FileChunks {
        FileChunks {
            file: Some(file),
            pending: None,
            spare: None,
            eof: false,
        }
    }

    /// Starts reading the next chunk into `buf` (made [`CHUNK`] long the first time it is used).
    fn start(&mut self, mut buf: Vec<u8>) {
        let Some(mut file) = self.file.take() else {
            self.spare = Some(buf);
            return;
        };
        if buf.len() < CHUNK {
            buf.resize(CHUNK, 0);
        }
        self.pending = Some(blocking::unblock(move || {
            let read = read_full(&mut file, &mut buf);
            (file, buf, read)
        }));
    }
}

impl Fill for FileChunks {
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<io::Result<usize>> {
        if self.eof {
            return Poll::Ready(Ok(0));
        }
        if self.pending.is_none() {
            let fresh = self.spare.take().unwrap_or_default();
            self.start(fresh);
        }
        let Some(pending) = &mut self.pending else {
            return Poll::Ready(Err(io::Error::other(
                "message file lost after a failed read",
            )));
        };
        let (file, filled, read) = ready!(std::pin::Pin::new(pending).poll(cx));
        self.pending = None;
        self.file = Some(file);
        match read {
            Ok(0) => {
                self.eof = true;
                self.spare = Some(filled);
                Poll::Ready(Ok(0))
            }
            Ok(n) => {
                // The reader is done with `buf`: it becomes the next read's buffer.
                let done = std::mem::replace(buf, filled);
                self.start(done);
                Poll::Ready(Ok(n))
            }
            Err(e) => {
                self.spare = Some(filled);
                Poll::Ready(Err(e))
            }
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::{CHUNK, FileChunks};
    use crate::body::{CrlfReader, Fill};
    use futures_lite::future::{block_on, poll_fn};
    use futures_lite::io::AsyncReadExt;
    use std::io::Write;

    #[test]
    fn chunks_cover_the_file_in_order_then_end() {
        let mut file = tempfile::tempfile().expect("tempfile");
        let data: Vec<u8> = (0..CHUNK * 2 + 1234).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).expect("write");
        use std::io::Seek;
        file.rewind().expect("rewind");
        let mut chunks = FileChunks::new(file);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            let n = block_on(poll_fn(|cx| chunks.poll_fill(cx, &mut buf))).expect("fill");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        let n = block_on(poll_fn(|cx| chunks.poll_fill(cx, &mut buf))).expect("again");
        assert_eq!(n, 0);
    }

    #[test]
    fn a_large_lf_file_converts_like_a_small_one() {
        let mut file = tempfile::tempfile().expect("tempfile");
        let mut text = Vec::new();
        let mut want = Vec::new();
        let mut i = 0;
        while text.len() < CHUNK * 3 {
            let line = format!("line {i} {}\n", "x".repeat(i % 90));
            text.extend_from_slice(line.as_bytes());
            want.extend_from_slice(line.trim_end_matches('\n').as_bytes());
            want.extend_from_slice(b"\r\n");
            i += 1;
        }
        file.write_all(&text).expect("write");
        use std::io::Seek;
        file.rewind().expect("rewind");
        let mut reader = CrlfReader::swapping(FileChunks::new(file), want.len() as u64, None);
        let mut out = Vec::new();
        block_on(reader.read_to_end(&mut out)).expect("read");
        assert_eq!(out, want);
    }
}
