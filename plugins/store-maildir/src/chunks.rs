//! Reading a large message file on the store's thread pool, one buffer ahead of the reader.
//!
//! `blocking::Unblock` copies every octet twice on the way (file to its buffer, buffer into a pipe,
//! pipe into the reader's buffer) and hands over 32 KiB at a time, each time with a futex wake-up
//! on both sides; for 50 MiB messages the benchmark counted a handoff per 20 KiB. Here the pool
//! reads [`CHUNK`] octets straight into a buffer that is then swapped into the
//! [`CrlfReader`](crate::body::CrlfReader) (no copy), and as soon as the reader takes one buffer the
//! next read starts into the buffer it gave back, so the disk (or page cache) and the conversion
//! overlap. Two buffers per large transfer, whatever the message size; a transfer that reaches
//! the end gives them back to the store's [`Buffers`] for the next one.

use crate::body::Fill;
use crate::pool::FILES;
use async_task::Task;
use std::fs::File;
use std::future::Future as _;
use std::io::{self, ErrorKind, Read};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

/// Octets per read. Every read is a trip to the pool and back (futex wake-ups on both sides):
/// 512 KiB instead of 128 KiB made RETRs of a 50 MiB message 9% faster in the benchmark (2,460 ->
/// 2,680 MiB/s, 4 alternating runs); 1 MiB was no faster there and slower for 5 MiB messages.
pub const CHUNK: usize = 512 * 1024;

/// Read buffers kept at most, for the whole store: 4 MiB, whatever the number of sessions.
pub const SPARE_MAX: usize = 8;

/// Read buffers of finished large transfers, kept for the next ones (one set per store).
///
/// A buffer this large is given back to the kernel when freed (glibc serves such blocks from
/// `mmap`, or trims them off its heap), so a fresh one per transfer had its pages faulted in
/// again every time: 7% of the server's time in RETRs of a 5 MiB message. Only full-size buffers
/// are kept, at most [`SPARE_MAX`]; more concurrent transfers than that allocate their own.
#[derive(Debug, Default)]
pub struct Buffers {
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Buffers {
    /// A [`CHUNK`]-long buffer: a kept one, or a new one (`calloc`'s pages, zero until touched).
    fn take(&self) -> Vec<u8> {
        let kept = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        kept.unwrap_or_else(|| vec![0; CHUNK])
    }

    /// Keeps `buf` for a later transfer if it is a full-size read buffer and there is room.
    fn give(&self, buf: Vec<u8>) {
        if buf.len() != CHUNK {
            return;
        }
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        if spare.len() < SPARE_MAX {
            spare.push(buf);
        }
    }

    /// How many buffers are kept (tests).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> usize {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A read under way: the file and the buffer come back with the result.
type Reading = Task<(File, Vec<u8>, io::Result<usize>)>;

/// A large message's file, read ahead in [`CHUNK`] pieces on the store's pool.
#[derive(Debug)]
pub struct FileChunks {
    /// The file, when no read is under way.
    file: Option<File>,
    pending: Option<Reading>,
    /// A buffer for the next read, kept while none can start.
    spare: Option<Vec<u8>>,
    eof: bool,
    /// Where buffers come from and go back to.
    buffers: Arc<Buffers>,
}

impl FileChunks {
    /// Reads `file` from its current position, with buffers from `buffers`.
    pub fn new(file: File, buffers: Arc<Buffers>) -> FileChunks {
        FileChunks {
            file: Some(file),
            pending: None,
            spare: None,
            eof: false,
            buffers,
        }
    }

    /// Starts reading the next chunk into `buf`, or into one from [`Buffers`] if `buf` is not a
    /// read buffer (the reader's first, empty one).
    fn start(&mut self, buf: Vec<u8>) {
        let mut buf = if buf.len() == CHUNK {
            buf
        } else {
            self.buffers.take()
        };
        let Some(mut file) = self.file.take() else {
            self.spare = Some(buf);
            return;
        };
        self.pending = Some(FILES.run(move || {
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
                // The reader asks no more after the end: both buffers are done with.
                self.eof = true;
                self.buffers.give(filled);
                self.buffers.give(std::mem::take(buf));
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
    use super::{Buffers, CHUNK, FileChunks, SPARE_MAX};
    use crate::body::{CrlfReader, Fill};
    use futures_lite::future::{block_on, poll_fn};
    use futures_lite::io::AsyncReadExt;
    use std::io::Write;
    use std::sync::Arc;

    #[test]
    fn chunks_cover_the_file_in_order_then_end() {
        let mut file = tempfile::tempfile().expect("tempfile");
        let data: Vec<u8> = (0..CHUNK * 2 + 1234).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).expect("write");
        use std::io::Seek;
        file.rewind().expect("rewind");
        let mut chunks = FileChunks::new(file, Arc::default());
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
        let mut reader = CrlfReader::swapping(
            FileChunks::new(file, Arc::default()),
            want.len() as u64,
            None,
        );
        let mut out = Vec::new();
        block_on(reader.read_to_end(&mut out)).expect("read");
        assert_eq!(out, want);
    }

    /// A file of `len` octets, at its start.
    fn file_of(len: usize) -> std::fs::File {
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(&vec![b'x'; len]).expect("write");
        use std::io::Seek;
        file.rewind().expect("rewind");
        file
    }

    /// Reads `file` through `buffers` to its end.
    fn drain(file: std::fs::File, buffers: &Arc<Buffers>) -> usize {
        let mut chunks = FileChunks::new(file, Arc::clone(buffers));
        let mut buf = Vec::new();
        let mut total = 0;
        loop {
            match block_on(poll_fn(|cx| chunks.poll_fill(cx, &mut buf))).expect("fill") {
                0 => return total,
                n => total += n,
            }
        }
    }

    #[test]
    fn buffers_of_a_finished_transfer_serve_the_next_and_stay_bounded() {
        let buffers = Arc::new(Buffers::default());
        assert_eq!(drain(file_of(CHUNK * 2 + 5), &buffers), CHUNK * 2 + 5);
        // Both buffers came back: the one read into last and the one the reader held.
        assert_eq!(buffers.kept(), 2);
        // The next transfer takes them (none is allocated) and gives them back.
        let mut chunks = FileChunks::new(file_of(CHUNK + 1), Arc::clone(&buffers));
        let mut buf = Vec::new();
        let n = block_on(poll_fn(|cx| chunks.poll_fill(cx, &mut buf))).expect("fill");
        assert_eq!(n, CHUNK);
        assert_eq!(buffers.kept(), 0, "the reader and the next read hold both");
        while block_on(poll_fn(|cx| chunks.poll_fill(cx, &mut buf))).expect("fill") > 0 {}
        assert_eq!(buffers.kept(), 2);
        // A transfer dropped before its end gives nothing back; nothing is lost either.
        let mut cut = FileChunks::new(file_of(CHUNK * 3), Arc::clone(&buffers));
        block_on(poll_fn(|cx| cut.poll_fill(cx, &mut buf))).expect("fill");
        drop(cut);
        assert_eq!(buffers.kept(), 0);
        // However many transfers end, at most SPARE_MAX buffers are kept.
        for _ in 0..SPARE_MAX {
            buffers.give(vec![0; CHUNK]);
        }
        buffers.give(vec![0; 10]);
        assert_eq!(buffers.kept(), SPARE_MAX);
    }
}
