//! From stored lines to the octets POP3 sends: `>From ` unquoting, bare LF to CRLF, and the
//! completion of a last line without a line end.
//!
//! One [`Transform`] is used both to count a message's size when the snapshot is taken and to
//! produce its body stream, so the size in LIST is by construction what RETR sends (DESIGN.md:
//! "Sizes in STAT/LIST are exactly the octets RETR sends"). It works on byte chunks of any size
//! and keeps only a line's leading `>`s (and at most `From `) between chunks, so memory stays flat
//! whatever the message.
//!
//! RFC 1939 §3: lines are "terminated by the pair CRLF"; an mbox written by a Unix MDA ends lines
//! with a bare LF. A CR already before an LF is left alone, so CRLF files pass through unchanged.
//! The stream always ends with CRLF (as the maildir store's does), so the core's encoder never
//! adds anything and the octets sent equal the size.

use crate::settings::Variant;

/// Which quoted lines lose a `>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unquote {
    /// `^>+From ` loses one `>` (mboxrd).
    Many,
    /// Only `^>From ` loses its `>` (mboxo, mboxcl).
    One,
    /// Nothing is unquoted (mboxcl2).
    Never,
}

impl From<Variant> for Unquote {
    fn from(variant: Variant) -> Self {
        match variant {
            Variant::Mboxrd => Unquote::Many,
            Variant::Mboxo | Variant::Mboxcl => Unquote::One,
            Variant::Mboxcl2 => Unquote::Never,
        }
    }
}

const FROM: &[u8] = b"From ";

/// The streaming transformation of one message's stored bytes.
#[derive(Debug)]
pub struct Transform {
    unquote: Unquote,
    /// At the start of a line, before its first byte has been decided.
    line_start: bool,
    /// The start of the current line while it may still be a quoted `From ` line: some `>`s then
    /// a prefix of `From `.
    pending: Vec<u8>,
    /// How many `>`s `pending` starts with.
    quotes: usize,
    /// The last input byte was CR (so an LF is not bare).
    prev_cr: bool,
    /// The last byte emitted, for the completion.
    last: Option<u8>,
}

impl Transform {
    /// A transformation that unquotes as `unquote` says.
    pub fn new(unquote: Unquote) -> Transform {
        Transform {
            unquote,
            line_start: true,
            pending: Vec::new(),
            quotes: 0,
            prev_cr: false,
            last: None,
        }
    }

    /// Transforms the next chunk of input, handing the output to `out` in pieces.
    pub fn feed(&mut self, mut input: &[u8], out: &mut impl FnMut(&[u8])) {
        while !input.is_empty() {
            if self.line_start {
                let used = self.feed_line_start(input, out);
                input = &input[used..];
                continue;
            }
            match input.iter().position(|&b| b == b'\n') {
                Some(j) => {
                    let after_cr = if j > 0 {
                        input[j - 1] == b'\r'
                    } else {
                        self.prev_cr
                    };
                    self.emit(&input[..j], out);
                    self.emit(if after_cr { b"\n" } else { b"\r\n" }, out);
                    self.prev_cr = false;
                    self.line_start = true;
                    input = &input[j + 1..];
                }
                None => {
                    self.prev_cr = input.last() == Some(&b'\r');
                    self.emit(input, out);
                    input = &[];
                }
            }
        }
    }

    /// Ends the message: emits what is pending and completes the last line.
    pub fn finish(&mut self, out: &mut impl FnMut(&[u8])) {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.emit(&pending, out);
        }
        match self.last {
            None | Some(b'\n') => {}
            Some(b'\r') => self.emit(b"\n", out),
            Some(_) => self.emit(b"\r\n", out),
        }
        self.line_start = true;
        self.quotes = 0;
    }

    /// Consumes bytes at the start of a line until it is clear whether the line is a quoted
    /// `From ` line; returns how many bytes of `input` were used.
    fn feed_line_start(&mut self, input: &[u8], out: &mut impl FnMut(&[u8])) -> usize {
        for (i, &b) in input.iter().enumerate() {
            let matched = self.pending.len() - self.quotes;
            let fits = if matched == 0 && b == b'>' {
                self.quotes += 1;
                true
            } else {
                FROM.get(matched) == Some(&b)
            };
            if !fits {
                // Not a quoted From line: everything pending goes out as it was.
                self.flush_line_start(0, out);
                return i;
            }
            self.pending.push(b);
            if self.pending.len() - self.quotes == FROM.len() {
                let strip = match self.unquote {
                    Unquote::Many => usize::from(self.quotes >= 1),
                    Unquote::One => usize::from(self.quotes == 1),
                    Unquote::Never => 0,
                };
                self.flush_line_start(strip, out);
                return i + 1;
            }
        }
        input.len()
    }

    fn flush_line_start(&mut self, strip: usize, out: &mut impl FnMut(&[u8])) {
        let pending = std::mem::take(&mut self.pending);
        // `pending` holds no CR or LF, so the line's CR state starts afresh.
        self.prev_cr = false;
        self.emit(&pending[strip..], out);
        self.pending = pending;
        self.pending.clear();
        self.quotes = 0;
        self.line_start = false;
    }

    fn emit(&mut self, bytes: &[u8], out: &mut impl FnMut(&[u8])) {
        if let Some(&b) = bytes.last() {
            self.last = Some(b);
            out(bytes);
        }
    }
}

/// Transforms a whole message at once (tests).
#[cfg(test)]
pub fn transform_all(input: &[u8], unquote: Unquote) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32 + 2);
    let mut t = Transform::new(unquote);
    t.feed(input, &mut |b| out.extend_from_slice(b));
    t.finish(&mut |b| out.extend_from_slice(b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(input: &[u8], unquote: Unquote, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut t = Transform::new(unquote);
        for chunk in input.chunks(step.max(1)) {
            t.feed(chunk, &mut |b| out.extend_from_slice(b));
        }
        t.finish(&mut |b| out.extend_from_slice(b));
        out
    }

    #[test]
    fn unquoting_per_variant() {
        let input = b"From x\n>From a\n>>From b\n>>>From c\n>Fro\n> From\n>From\nx>From d\n";
        let cases: [(Unquote, &[u8]); 3] = [
            (
                Unquote::Many,
                b"From x\r\nFrom a\r\n>From b\r\n>>From c\r\n>Fro\r\n> From\r\n>From\r\nx>From d\r\n",
            ),
            (
                Unquote::One,
                b"From x\r\nFrom a\r\n>>From b\r\n>>>From c\r\n>Fro\r\n> From\r\n>From\r\nx>From d\r\n",
            ),
            (
                Unquote::Never,
                b"From x\r\n>From a\r\n>>From b\r\n>>>From c\r\n>Fro\r\n> From\r\n>From\r\nx>From d\r\n",
            ),
        ];
        for (unquote, want) in cases {
            for step in [1, 2, 3, 5, 7, 4096] {
                let got = chunked(input, unquote, step);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(want),
                    "{unquote:?} step {step}"
                );
            }
        }
    }

    #[test]
    fn line_ends_and_completion() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"a\r\nb\r\n", b"a\r\nb\r\n"),
            (b"a\nb", b"a\r\nb\r\n"),
            (b"a\nb\r", b"a\r\nb\r\n"),
            (b"\n\n", b"\r\n\r\n"),
            (b"lone\rcr\n", b"lone\rcr\r\n"),
            (b">From", b">From\r\n"),
            (b">From ", b"From \r\n"),
            (b"\r\n>From x\r\n", b"\r\nFrom x\r\n"),
            (b"", b""),
        ];
        for (input, want) in cases {
            for step in [1, 2, 3, 4096] {
                assert_eq!(
                    chunked(input, Unquote::Many, step),
                    *want,
                    "{:?} step {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn a_cr_before_a_split_lf_is_not_doubled() {
        assert_eq!(chunked(b"ab\r\ncd\r\n", Unquote::Many, 3), b"ab\r\ncd\r\n");
        assert_eq!(chunked(b"x\r", Unquote::Many, 1), b"x\r\n");
    }
}
