//! The message body stream: the file's bytes with bare LF turned into CRLF, on the fly.
//!
//! RFC 1939 §3: responses are "terminated by the pair CRLF"; maildir files usually end lines with a
//! bare LF. The reader converts as it goes, from a buffer of bounded size, so memory stays flat
//! however large the message is. A CR already before an LF is left alone, so CRLF files pass
//! through unchanged, and a last line without a line end is completed (see [`completion`]), so the
//! stream always ends with CRLF and the core's encoder adds nothing to it.
//!
//! It yields exactly the size advertised in LIST or fails: a file that ends early, or that holds
//! more than the advertised size (a wrong Maildir++ `W=`, a file changed on disk), is an error, not
//! a stream cut to length. A short stream that ends cleanly would look complete to the client; an
//! error lets the core answer `-ERR` (before its first flush) or drop the connection (after it).

use crate::sizes::completion;
use futures_io::AsyncRead;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

/// Bytes read from the file at a time: the same bound as the size computation, small enough that
/// many concurrent sessions cost little memory, large enough to keep syscalls rare.
pub const CHUNK: usize = 64 * 1024;

/// Where a reader records that its message was read to the end: one flag of a session's set, which
/// is one allocation per session rather than one per message.
#[derive(Debug, Clone)]
pub struct ReadFlag {
    flags: Arc<[AtomicBool]>,
    index: usize,
}

impl ReadFlag {
    /// Flag `index` of `flags`.
    pub fn new(flags: Arc<[AtomicBool]>, index: usize) -> ReadFlag {
        ReadFlag { flags, index }
    }

    fn set(&self, done: bool) {
        if let Some(flag) = self.flags.get(self.index) {
            flag.store(done, Ordering::Relaxed);
        }
    }
}

/// Where a [`CrlfReader`]'s octets come from.
pub trait Fill {
    /// Puts the next octets of the file at the start of `buf` and returns how many, 0 at its end.
    /// `buf`'s length is the room there is. A source that reads ahead into buffers of its own may
    /// swap `buf` for one of them instead of copying (the reader is done with `buf` when it asks).
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<io::Result<usize>>;
}

/// Any `AsyncRead` as a `Fill` source: reads into the reader's buffer (the tests' and the fuzz
/// targets' sources).
#[derive(Debug)]
pub struct Reading<R>(pub R);

impl<R: AsyncRead + Unpin> Fill for Reading<R> {
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

/// Finds line ends with memchr's AVX2 searcher when the CPU has it, chosen once per process: the
/// `memchr` function picks it on every call, and for lines of 72 octets on average that dispatch
/// cost about a fifth of the conversion's instructions. The searcher (32-octet vectors) is kept in
/// a static and referred to: held by value it made every body 32-byte aligned, so each RETR's body
/// was allocated with `posix_memalign`.
#[derive(Debug, Clone, Copy)]
struct LfFinder {
    #[cfg(target_arch = "x86_64")]
    avx2: Option<&'static memchr::arch::x86_64::avx2::memchr::One>,
}

impl LfFinder {
    fn new() -> LfFinder {
        #[cfg(target_arch = "x86_64")]
        static AVX2: std::sync::OnceLock<Option<memchr::arch::x86_64::avx2::memchr::One>> =
            std::sync::OnceLock::new();
        LfFinder {
            #[cfg(target_arch = "x86_64")]
            avx2: AVX2
                .get_or_init(|| memchr::arch::x86_64::avx2::memchr::One::new(b'\n'))
                .as_ref(),
        }
    }

    fn find(&self, haystack: &[u8]) -> Option<usize> {
        #[cfg(target_arch = "x86_64")]
        if let Some(avx2) = self.avx2 {
            return avx2.find(haystack);
        }
        memchr::memchr(b'\n', haystack)
    }
}

/// Reads `inner` as CRLF text of exactly `size` octets.
pub struct CrlfReader<R> {
    inner: R,
    lf: LfFinder,
    /// File bytes not yet converted are `buf[pos..end]`; `inner` is read into the whole of it.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// The last byte taken from `buf` was CR, so an LF after it is not bare.
    prev_cr: bool,
    /// We emitted the CR we inserted before `buf[pos]` (an LF) and owe the LF.
    owe_lf: bool,
    /// The last byte read from `inner`, for the completion of the last line.
    last: Option<u8>,
    /// `inner` is at its end; what is left is `completion(last)[tail..]`.
    eof: bool,
    tail: usize,
    emitted: u64,
    size: u64,
    /// The file turned out longer or shorter than `size` (the reader failed).
    mismatch: bool,
    /// Set when the whole message has been yielded (marks it seen at commit).
    complete: Option<ReadFlag>,
}

impl<R: fmt::Debug> fmt::Debug for CrlfReader<R> {
    // By hand, so a log line or a failed test does not print the 64 KiB buffer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrlfReader")
            .field("inner", &self.inner)
            .field("emitted", &self.emitted)
            .field("size", &self.size)
            .field("eof", &self.eof)
            .field("mismatch", &self.mismatch)
            .finish_non_exhaustive()
    }
}

impl<R: Fill + Unpin> CrlfReader<R> {
    /// A reader that yields `size` octets of converted `inner`, setting `complete` once it has.
    pub fn new(inner: R, size: u64, complete: Option<ReadFlag>) -> Self {
        Self::preloaded(inner, vec![0u8; CHUNK], 0, size, complete)
    }

    /// Like [`CrlfReader::new`] for a source that brings its own buffers: none is allocated here.
    pub fn swapping(inner: R, size: u64, complete: Option<ReadFlag>) -> Self {
        Self::preloaded(inner, Vec::new(), 0, size, complete)
    }

    /// Like [`CrlfReader::new`], but the file's first `filled` octets are already in `buf`, and
    /// later reads of `inner` (positioned after them) go into `buf` too. A small message read whole
    /// is served from its own buffer this way, with no 64 KiB buffer to allocate and clear per
    /// message (that clearing was most of the instructions of pipelined small RETRs).
    pub fn preloaded(
        inner: R,
        buf: Vec<u8>,
        filled: usize,
        size: u64,
        complete: Option<ReadFlag>,
    ) -> Self {
        let end = filled.min(buf.len());
        let last = end.checked_sub(1).map(|i| buf[i]);
        CrlfReader {
            inner,
            lf: LfFinder::new(),
            buf,
            pos: 0,
            end,
            prev_cr: false,
            owe_lf: false,
            last,
            eof: false,
            tail: 0,
            emitted: 0,
            size,
            mismatch: false,
            complete,
        }
    }

    /// Where the octets come from.
    pub fn source(&self) -> &R {
        &self.inner
    }

    /// Takes the reader's buffer (for reuse once the reader is done with; it reads nothing more
    /// from it).
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.pos = 0;
        self.end = 0;
        std::mem::take(&mut self.buf)
    }

    /// Whether the reader failed because the message is not the advertised size.
    pub fn size_mismatch(&self) -> bool {
        self.mismatch
    }

    /// Converts from `buf[pos..end]` into `out`; returns the octets written.
    fn convert(&mut self, out: &mut [u8]) -> usize {
        let mut written = 0;
        while written < out.len() && self.pos < self.end {
            if self.owe_lf {
                out[written] = b'\n';
                written += 1;
                self.pos += 1;
                self.owe_lf = false;
                self.prev_cr = false;
                continue;
            }
            let src = &self.buf[self.pos..self.end];
            let limit = src.len().min(out.len() - written);
            match self.lf.find(&src[..limit]) {
                Some(j) => {
                    out[written..written + j].copy_from_slice(&src[..j]);
                    let after_cr = if j > 0 {
                        src[j - 1] == b'\r'
                    } else {
                        self.prev_cr
                    };
                    written += j;
                    self.pos += j;
                    // `j < limit`, so there is room for one more octet.
                    if after_cr {
                        out[written] = b'\n';
                        self.pos += 1;
                        self.prev_cr = false;
                    } else {
                        out[written] = b'\r';
                        self.owe_lf = true;
                    }
                    written += 1;
                }
                None => {
                    out[written..written + limit].copy_from_slice(&src[..limit]);
                    written += limit;
                    self.pos += limit;
                    self.prev_cr = src[limit - 1] == b'\r';
                }
            }
        }
        written
    }

    fn mark_complete(&self, done: bool) {
        if let Some(flag) = &self.complete {
            flag.set(done);
        }
    }

    /// Fails the stream: the message is not `size` octets. A message that failed is never marked
    /// read through, even if an earlier call reached its size.
    fn fail_size(&mut self, kind: io::ErrorKind, what: &str) -> io::Error {
        self.mismatch = true;
        self.mark_complete(false);
        io::Error::new(
            kind,
            format!(
                "message is {what} its advertised {} octets (changed on disk? a wrong W=?)",
                self.size
            ),
        )
    }
}

impl<R: Fill + Unpin> AsyncRead for CrlfReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.mismatch {
            return Poll::Ready(Err(this.fail_size(io::ErrorKind::InvalidData, "not")));
        }
        // Even at the advertised size the file is read once more, to see that it really ends.
        while this.pos == this.end && !this.eof {
            match ready!(this.inner.poll_fill(cx, &mut this.buf)) {
                Ok(0) => this.eof = true,
                Ok(n) => {
                    this.pos = 0;
                    this.end = n;
                    this.last = this.buf.get(n - 1).copied();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let remaining = this.size - this.emitted;
        let limit = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(out.len());
        let n = if this.pos < this.end {
            this.convert(&mut out[..limit])
        } else {
            let tail = &completion(this.last)[this.tail..];
            let n = tail.len().min(limit);
            out[..n].copy_from_slice(&tail[..n]);
            this.tail += n;
            n
        };
        if n == 0 {
            let at_end = this.eof && this.tail == completion(this.last).len();
            return Poll::Ready(match (remaining, at_end) {
                (0, true) => Ok(0),
                (0, false) => Err(this.fail_size(io::ErrorKind::InvalidData, "longer than")),
                (_, _) => Err(this.fail_size(
                    io::ErrorKind::UnexpectedEof,
                    &format!("{} octets, not", this.emitted),
                )),
            });
        }
        this.emitted += n as u64;
        if this.emitted == this.size {
            // Marked now so a TOP that stops at the last line counts too; taken back if the file
            // turns out longer on the next read.
            this.mark_complete(true);
        }
        Poll::Ready(Ok(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sizes::CrlfCounter;
    use futures_lite::future::block_on;
    use futures_lite::io::{AsyncReadExt, Cursor};

    /// Reads through the converter with output buffers of `step` octets.
    fn read_all(input: &[u8], size: u64, step: usize) -> io::Result<Vec<u8>> {
        let mut reader = CrlfReader::new(Reading(Cursor::new(input.to_vec())), size, None);
        let mut out = Vec::new();
        let mut buf = vec![0u8; step];
        block_on(async {
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok(out);
                }
                out.extend_from_slice(&buf[..n]);
            }
        })
    }

    fn converted_size(input: &[u8]) -> u64 {
        let mut counter = CrlfCounter::default();
        counter.feed(input);
        counter.total()
    }

    #[test]
    fn converts_bare_lf_only() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\r\nb\nc", b"a\r\nb\r\nc\r\n"),
            (b"\n\n", b"\r\n\r\n"),
            (b"lone\rcr\n", b"lone\rcr\r\n"),
            (b"", b""),
        ];
        for (input, want) in cases {
            assert_eq!(converted_size(input), want.len() as u64);
            for step in [1, 2, 3, 7, 4096] {
                let got = read_all(input, want.len() as u64, step).expect("read");
                assert_eq!(&got, want, "input {input:?} step {step}");
            }
        }
    }

    /// Bare LF to CRLF, octet by octet, plus the completion of the last line.
    fn reference(input: &[u8]) -> Vec<u8> {
        let mut want = Vec::new();
        let mut prev = None;
        for &b in input {
            if b == b'\n' && prev != Some(b'\r') {
                want.push(b'\r');
            }
            want.push(b);
            prev = Some(b);
        }
        want.extend_from_slice(completion(prev));
        want
    }

    /// The converter against the plain definition, on text with LF, CR, CRLF and CRCRLF at every
    /// offset, read through output buffers of many sizes.
    #[test]
    fn conversion_matches_the_definition() {
        let mut input = Vec::new();
        let mut seed = 12345u32;
        for _ in 0..4000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            input.push(match (seed >> 16) % 23 {
                0..=2 => b'\n',
                3 => b'\r',
                _ => b'a' + ((seed >> 8) % 26) as u8,
            });
        }
        input.extend_from_slice(b"\r\n\r\r\n\n\n");
        let want = reference(&input);
        assert_eq!(converted_size(&input), want.len() as u64);
        for step in [1, 31, 32, 33, 95, 96, 97, 100, 1000, 4096, 65536] {
            let got = read_all(&input, want.len() as u64, step).expect("read");
            assert_eq!(got, want, "step {step}");
        }
        // Starting anywhere relative to a block.
        for skip in 0..70 {
            let input = &input[skip..];
            let want = reference(input);
            let got = read_all(input, want.len() as u64, 4096).expect("read");
            assert_eq!(got, want, "skip {skip}");
        }
    }

    /// A body is allocated per RETR: more than 16-byte alignment would make that `posix_memalign`.
    #[test]
    fn a_reader_needs_no_special_alignment() {
        assert!(std::mem::align_of::<CrlfReader<Reading<Cursor<Vec<u8>>>>>() <= 16);
    }

    #[test]
    fn crlf_split_across_chunks_is_not_doubled() {
        let mut input = vec![b'x'; CHUNK - 1];
        input.extend_from_slice(b"\r\n\n");
        let size = converted_size(&input);
        assert_eq!(size, input.len() as u64 + 1);
        let got = read_all(&input, size, 4096).expect("read");
        assert!(got.ends_with(b"x\r\n\r\n"));
        assert_eq!(got.len() as u64, size);
    }

    #[test]
    fn f2_a_file_longer_or_shorter_than_the_size_fails_instead_of_being_cut() {
        // Longer: a W= of 3 for "abc\n" (5 octets converted) used to yield "abc" and end cleanly.
        for (input, size) in [(&b"abc\n"[..], 3), (b"abc\n", 4), (b"abc\nmore\n", 5)] {
            for step in [1, 3, 4096] {
                let err = read_all(input, size, step).expect_err("longer");
                assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{input:?} {size}");
            }
        }
        let err = read_all(b"ab", 5, 10).expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let mut reader = CrlfReader::new(Reading(Cursor::new(b"abc\n".to_vec())), 4, None);
        assert!(!reader.size_mismatch());
        let mut out = Vec::new();
        block_on(reader.read_to_end(&mut out)).expect_err("longer");
        assert!(reader.size_mismatch());
    }

    #[test]
    fn f2_a_message_that_turns_out_longer_is_not_marked_read_through() {
        let flags: Arc<[AtomicBool]> = Arc::new([AtomicBool::new(false)]);
        let flag = Some(ReadFlag::new(flags.clone(), 0));
        let mut reader = CrlfReader::new(Reading(Cursor::new(b"abc\n".to_vec())), 4, flag);
        let mut out = Vec::new();
        block_on(reader.read_to_end(&mut out)).expect_err("longer");
        assert!(!flags[0].load(Ordering::Relaxed));
    }

    #[test]
    fn f7_the_stream_always_ends_with_crlf_and_matches_the_counted_size() {
        let cases: &[(&str, &[u8], &[u8])] = &[
            ("no final line break", b"a\nb", b"a\r\nb\r\n"),
            ("final bare CR", b"a\nb\r", b"a\r\nb\r\n"),
            ("final CRLF", b"a\r\nb\r\n", b"a\r\nb\r\n"),
            ("final LF", b"a\nb\n", b"a\r\nb\r\n"),
            ("only a CR", b"\r", b"\r\n"),
            ("one octet", b"x", b"x\r\n"),
            ("empty", b"", b""),
        ];
        for (what, input, want) in cases {
            let size = converted_size(input);
            assert_eq!(size, want.len() as u64, "{what}");
            for step in [1, 2, 3, 4096] {
                let got = read_all(input, size, step).expect(what);
                assert_eq!(&got, want, "{what} step {step}");
            }
        }
        // A completion that falls after a chunk boundary of the file.
        let mut input = vec![b'x'; CHUNK];
        input.push(b'\r');
        let size = converted_size(&input);
        let got = read_all(&input, size, 4096).expect("read");
        assert_eq!(got.len() as u64, size);
        assert!(got.ends_with(b"x\r\n"));
    }

    #[test]
    fn marks_complete_only_at_the_end() {
        let flags: Arc<[AtomicBool]> = Arc::new([AtomicBool::new(false)]);
        let flag = Some(ReadFlag::new(flags.clone(), 0));
        let mut reader = CrlfReader::new(Reading(Cursor::new(b"ab\n".to_vec())), 4, flag);
        let mut buf = [0u8; 2];
        block_on(reader.read(&mut buf)).expect("read");
        assert!(!flags[0].load(Ordering::Relaxed));
        let mut rest = Vec::new();
        block_on(reader.read_to_end(&mut rest)).expect("read");
        assert!(flags[0].load(Ordering::Relaxed));
    }
}
