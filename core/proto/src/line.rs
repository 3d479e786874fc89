//! Command-line framing: bytes in, complete command lines out.
//!
//! RFC 2449 §4: "The maximum length of a command is increased from 47 characters (4
//! character command, single space, 40 character argument, CRLF) to 255 octets,
//! including the terminating CRLF." RFC 1939 §3: "All commands are terminated by a CRLF
//! pair. Keywords and arguments consist of printable ASCII characters."
//!
//! The reader never holds more than one line's worth of an unfinished line: a line that
//! is already too long is reported once and the rest of it is discarded up to the next
//! LF, so a client cannot make the session buffer without bound. Bare LF is accepted as
//! a line end (common in hand-typed telnet sessions); only a CR right before the LF is
//! part of the terminator. What comes out is the same whatever the input chunking.
//!
//! SASL continuation lines (RFC 5034) are framed the same way with a larger limit
//! ([`crate::SessionOptions::max_sasl_line`]); the caller passes the limit per line.

use crate::error::ProtoError;

/// The longest command line, CRLF included (RFC 2449 §4).
pub(crate) const MAX_LINE: usize = 255;

/// Splits buffered input into command lines.
#[derive(Debug, Default)]
pub(crate) struct LineReader {
    buf: Vec<u8>,
    /// Where unread input starts in `buf`; consumed lines are dropped lazily.
    start: usize,
    /// The current line was reported as too long and is skipped up to its LF.
    discarding: bool,
}

impl LineReader {
    /// Appends received bytes.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete command line, without its terminator, decoded and checked.
    pub(crate) fn next_line(&mut self) -> Option<Result<String, ProtoError>> {
        self.next_line_within(MAX_LINE)
    }

    /// Like [`LineReader::next_line`] for a line of at most `limit` octets, CRLF
    /// included; a longer line is [`ProtoError::LineTooLong`].
    pub(crate) fn next_line_within(&mut self, limit: usize) -> Option<Result<String, ProtoError>> {
        loop {
            let pending = &self.buf[self.start..];
            let newline = pending.iter().position(|&b| b == b'\n');
            if self.discarding {
                match newline {
                    Some(at) => {
                        self.discarding = false;
                        self.consume(at + 1);
                        continue;
                    }
                    None => {
                        self.consume(pending.len());
                        return None;
                    }
                }
            }
            let Some(at) = newline else {
                if pending.len() >= limit {
                    // Even the shortest terminator (LF) would push it past the limit.
                    self.discarding = true;
                    self.consume(pending.len());
                    return Some(Err(ProtoError::LineTooLong));
                }
                return None;
            };
            let raw = &pending[..at];
            let content = raw.strip_suffix(b"\r").unwrap_or(raw);
            let result = if content.len() + 2 > limit {
                Err(ProtoError::LineTooLong)
            } else {
                decode(content)
            };
            self.consume(at + 1);
            return Some(result);
        }
    }

    /// Drops everything buffered, e.g. plain text pipelined after STLS.
    pub(crate) fn discard_all(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.discarding = false;
    }

    /// Whether any unread input is buffered.
    pub(crate) fn has_input(&self) -> bool {
        self.start < self.buf.len()
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 4096 && self.start > self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

/// Checks a line for control octets and UTF-8.
fn decode(content: &[u8]) -> Result<String, ProtoError> {
    if let Some(&bad) = content.iter().find(|&&b| b < 0x20 || b == 0x7F) {
        return Err(ProtoError::ControlCharacter(bad));
    }
    String::from_utf8(content.to_vec()).map_err(|_| ProtoError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::{LineReader, MAX_LINE};
    use crate::error::ProtoError;

    fn lines(input: &[u8]) -> Vec<Result<String, ProtoError>> {
        let mut reader = LineReader::default();
        reader.push(input);
        std::iter::from_fn(|| reader.next_line()).collect()
    }

    #[test]
    fn crlf_and_bare_lf() {
        assert_eq!(
            lines(b"STAT\r\nNOOP\nLI"),
            vec![Ok("STAT".into()), Ok("NOOP".into())]
        );
    }

    #[test]
    fn limit_is_255_including_crlf() {
        let longest = format!("{}\r\n", "a".repeat(MAX_LINE - 2));
        assert_eq!(lines(longest.as_bytes()), vec![Ok("a".repeat(253))]);
        let over = format!("{}\r\nNOOP\r\n", "a".repeat(MAX_LINE - 1));
        assert_eq!(
            lines(over.as_bytes()),
            vec![Err(ProtoError::LineTooLong), Ok("NOOP".into())]
        );
    }

    #[test]
    fn overlong_line_reported_once_and_discarded_across_chunks() {
        let mut reader = LineReader::default();
        reader.push(&[b'x'; 300]);
        assert_eq!(reader.next_line(), Some(Err(ProtoError::LineTooLong)));
        assert_eq!(reader.next_line(), None);
        reader.push(&[b'y'; 1000]);
        assert_eq!(reader.next_line(), None);
        assert!(!reader.has_input());
        reader.push(b"zz\r\nNOOP\r\n");
        assert_eq!(reader.next_line(), Some(Ok("NOOP".into())));
        assert_eq!(reader.next_line(), None);
    }

    #[test]
    fn larger_limit_for_continuations_and_discard_all() {
        let mut reader = LineReader::default();
        let long = format!("{}\r\n", "A".repeat(1000));
        reader.push(long.as_bytes());
        assert_eq!(reader.next_line_within(1002), Some(Ok("A".repeat(1000))));
        reader.push(long.as_bytes());
        assert_eq!(
            reader.next_line_within(1001),
            Some(Err(ProtoError::LineTooLong))
        );
        reader.push(b"NOOP\r\nST");
        reader.discard_all();
        assert!(!reader.has_input());
        assert_eq!(reader.next_line(), None);
    }

    #[test]
    fn control_octets_and_bad_utf8() {
        assert_eq!(
            lines(b"US\0ER\r\n"),
            vec![Err(ProtoError::ControlCharacter(0))]
        );
        assert_eq!(
            lines(b"USER\ta\r\n"),
            vec![Err(ProtoError::ControlCharacter(b'\t'))]
        );
        assert_eq!(
            lines(b"US\rER\r\n"),
            vec![Err(ProtoError::ControlCharacter(b'\r'))]
        );
        assert_eq!(lines(b"USER \xff\r\n"), vec![Err(ProtoError::InvalidUtf8)]);
        assert_eq!(lines(b"\r\n"), vec![Ok(String::new())]);
    }
}
