//! The message body stream: the file's bytes with bare LF turned into CRLF, on the fly.
//!
//! RFC 1939 §3: responses are "terminated by the pair CRLF"; maildir files usually end lines with a
//! bare LF. The reader converts as it goes, from a buffer of bounded size, so memory stays flat
//! however large the message is, and it yields exactly the size advertised in LIST: it stops there
//! and reports an error if the file ends early, because a stream of another length would break the
//! client's framing. A CR already before an LF is left alone, so CRLF files pass through unchanged.

use futures_io::AsyncRead;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

/// Bytes read from the file at a time: the same bound as the size computation, small enough that
/// many concurrent sessions cost little memory, large enough to keep syscalls rare.
pub const CHUNK: usize = 64 * 1024;

/// Reads `inner` as CRLF text of exactly `size` octets.
#[derive(Debug)]
pub struct CrlfReader<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// The last byte taken from `buf` was CR, so an LF after it is not bare.
    prev_cr: bool,
    /// We emitted the CR we inserted before `buf[pos]` (an LF) and owe the LF.
    owe_lf: bool,
    emitted: u64,
    size: u64,
    /// Set when the whole message has been yielded (marks it seen at commit).
    complete: Option<Arc<AtomicBool>>,
}

impl<R: AsyncRead + Unpin> CrlfReader<R> {
    /// A reader that yields `size` octets of converted `inner`, setting `complete` once it has.
    pub fn new(inner: R, size: u64, complete: Option<Arc<AtomicBool>>) -> Self {
        CrlfReader {
            inner,
            buf: vec![0u8; CHUNK].into_boxed_slice(),
            pos: 0,
            end: 0,
            prev_cr: false,
            owe_lf: false,
            emitted: 0,
            size,
            complete,
        }
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
            match src[..limit].iter().position(|&b| b == b'\n') {
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

    fn mark_complete(&self) {
        if let Some(flag) = &self.complete {
            flag.store(true, Ordering::Relaxed);
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for CrlfReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let remaining = this.size - this.emitted;
        if out.is_empty() || remaining == 0 {
            // Stopping at the advertised size even if the file grew keeps the client's framing.
            return Poll::Ready(Ok(0));
        }
        while this.pos == this.end {
            match ready!(Pin::new(&mut this.inner).poll_read(cx, &mut this.buf)) {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "message ended after {} of its {} octets (changed on disk?)",
                            this.emitted, this.size
                        ),
                    )));
                }
                Ok(n) => {
                    this.pos = 0;
                    this.end = n;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let limit = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(out.len());
        let n = this.convert(&mut out[..limit]);
        this.emitted += n as u64;
        if this.emitted == this.size {
            this.mark_complete();
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
        let mut reader = CrlfReader::new(Cursor::new(input.to_vec()), size, None);
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
        counter.total
    }

    #[test]
    fn converts_bare_lf_only() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\r\nb\nc", b"a\r\nb\r\nc"),
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
    fn stops_at_the_size_and_fails_on_a_short_file() {
        assert_eq!(read_all(b"abc\n", 3, 10).expect("read"), b"abc");
        let err = read_all(b"ab", 5, 10).expect_err("short");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn marks_complete_only_at_the_end() {
        let flag = Arc::new(AtomicBool::new(false));
        let mut reader = CrlfReader::new(Cursor::new(b"ab\n".to_vec()), 4, Some(flag.clone()));
        let mut buf = [0u8; 2];
        block_on(reader.read(&mut buf)).expect("read");
        assert!(!flag.load(Ordering::Relaxed));
        let mut rest = Vec::new();
        block_on(reader.read_to_end(&mut rest)).expect("read");
        assert!(flag.load(Ordering::Relaxed));
    }
}
