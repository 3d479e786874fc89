//! Reading an mbox file into a snapshot: where each message is, its exact size as sent, the
//! digest its UIDL comes from, and its `X-UIDL` header.
//!
//! The format (qmail's mbox(5), RFC 4155): messages follow each other, each starting with a
//! "From_" line (`From sender date`); writers add an empty line after each message and quote body
//! lines that would look like a From_ line. So a line starting `From ` begins a message, and an
//! empty line right before it is the separator, not part of the message. Beyond that:
//!
//! - `Content-Length:` (mboxcl, mboxcl2) is honoured where it is consistent: the body it gives
//!   ends at the end of the file or right before a From_ line (after at most one empty line).
//!   Then `From ` lines inside that body do not split it. An inconsistent header is ignored.
//! - A last message without a final line end is read as it is (the stream completes its line).
//! - CRLF and LF files are both read; an empty file has no messages; empty lines before the first
//!   From_ line are skipped, but anything else there means this is not an mbox, and nothing is
//!   served from it (a commit would otherwise rewrite a file we cannot parse).
//!
//! The file is read once, in bounded chunks, from a descriptor opened under the delivery locks,
//! and only up to the length it had then. The SHA-256 of everything read is kept, so a commit can
//! tell that the part of the file it is about to rewrite is still what the session saw.

use crate::transform::{Transform, Unquote};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// Bytes read per system call: large enough to keep syscalls rare, small enough to be cheap.
pub const CHUNK: usize = 64 * 1024;

/// At the start of a line the scanner makes at least this much of it (or all of it) visible at
/// once, so a From_ line, a header name or an `X-UIDL` value is never split across chunks.
const LINE_START_WINDOW: usize = 512;

/// Headers that mail readers rewrite in place (flags, IMAP state, lengths): left out of the digest
/// so a message keeps its UIDL when another program marks it read.
const VOLATILE_HEADERS: &[&str] = &[
    "status",
    "x-status",
    "x-keywords",
    "x-uid",
    "x-imap",
    "x-imapbase",
    "content-length",
    "lines",
];

/// One message of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Offset of its From_ line.
    pub start: u64,
    /// Offset of its first header line (just after the From_ line).
    pub content_start: u64,
    /// Offset just after its content (before the separating empty line).
    pub content_end: u64,
    /// Offset of the next message, or the end of what was read: `start..end` is what a rewrite
    /// copies.
    pub end: u64,
    /// Octets the body stream yields.
    pub size: u64,
    /// SHA-256 of the From_ line and the content as sent, without [`VOLATILE_HEADERS`].
    pub digest: [u8; 32],
    /// The `X-UIDL` header's value, if there is one.
    pub x_uidl: Option<String>,
}

/// What was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The messages, in file order.
    pub messages: Vec<Message>,
    /// How many bytes were read (the file's length when the snapshot was taken).
    pub len: u64,
    /// SHA-256 of those bytes.
    pub hash: [u8; 32],
}

/// Options of the reading.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How `>From ` lines are unquoted.
    pub unquote: Unquote,
    /// Honour consistent `Content-Length:` headers.
    pub content_length: bool,
}

/// Reads the first `len` bytes of `file` (from its start).
pub fn parse(file: &File, len: u64, options: Options) -> io::Result<Parsed> {
    let mut scanner = Scanner::new(file, len);
    let mut parser = Parser {
        options,
        file,
        len,
        messages: Vec::new(),
        current: None,
    };
    while let Some(frag) = scanner.next()? {
        let bytes = &scanner.buf[frag.range.0..frag.range.1];
        parser.fragment(frag.offset, bytes, frag.line_start, frag.line_end)?;
    }
    parser.finish_current(len);
    let hash = scanner.hasher.finalize().into();
    Ok(Parsed {
        messages: parser.messages,
        len,
        hash,
    })
}

/// A piece of one line: all of it, or as much as the buffer holds.
#[derive(Debug, Clone, Copy)]
struct Fragment {
    offset: u64,
    range: (usize, usize),
    line_start: bool,
    line_end: bool,
}

/// Splits the file into line fragments without ever holding more than a chunk of it.
struct Scanner<'f> {
    input: io::Take<&'f File>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    line_start: bool,
    hasher: Sha256,
}

impl<'f> Scanner<'f> {
    fn new(file: &'f File, len: u64) -> Self {
        Scanner {
            input: file.take(len),
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            line_start: true,
            hasher: Sha256::new(),
        }
    }

    fn has_newline(&self) -> bool {
        self.buf[self.pos..self.end].contains(&b'\n')
    }

    /// Reads more, keeping the unconsumed bytes.
    fn fill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        loop {
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(());
                }
                Ok(n) => {
                    self.hasher.update(&self.buf[self.end..self.end + n]);
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn next(&mut self) -> io::Result<Option<Fragment>> {
        loop {
            let available = self.end - self.pos;
            let need_more = available == 0
                || (self.line_start && available < LINE_START_WINDOW && !self.has_newline());
            if !need_more || self.eof {
                break;
            }
            self.fill()?;
        }
        if self.pos == self.end {
            return Ok(None);
        }
        let rest = &self.buf[self.pos..self.end];
        let (len, line_end) = match rest.iter().position(|&b| b == b'\n') {
            Some(j) => (j + 1, true),
            None => (rest.len(), false),
        };
        let frag = Fragment {
            offset: self.base + self.pos as u64,
            range: (self.pos, self.pos + len),
            line_start: self.line_start,
            line_end,
        };
        self.pos += len;
        self.line_start = line_end;
        Ok(Some(frag))
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Part {
    /// The From_ line, until its end.
    FromLine,
    Headers,
    Body,
    /// The content ended where Content-Length said; waiting for the next From_ line.
    AfterContentLength,
}

/// The message being read.
struct Building {
    start: u64,
    content_start: u64,
    part: Part,
    transform: Transform,
    size: u64,
    hasher: Sha256,
    /// The header field being read is one of [`VOLATILE_HEADERS`].
    volatile: bool,
    content_length: Option<u64>,
    /// Where the content ends by a consistent Content-Length.
    cl_end: Option<u64>,
    x_uidl: Option<String>,
    /// An empty line that is the separator if a From_ line follows: (offset, its bytes).
    blank: Option<(u64, Vec<u8>)>,
}

impl Building {
    fn feed(&mut self, bytes: &[u8]) {
        let (size, hasher, volatile) = (&mut self.size, &mut self.hasher, self.volatile);
        self.transform.feed(bytes, &mut |out| {
            *size += out.len() as u64;
            if !volatile {
                hasher.update(out);
            }
        });
    }

    fn flush_blank(&mut self) {
        if let Some((_, bytes)) = self.blank.take() {
            self.feed(&bytes);
        }
    }
}

struct Parser<'f> {
    options: Options,
    file: &'f File,
    len: u64,
    messages: Vec<Message>,
    current: Option<Building>,
}

impl Parser<'_> {
    fn fragment(
        &mut self,
        offset: u64,
        bytes: &[u8],
        line_start: bool,
        line_end: bool,
    ) -> io::Result<()> {
        let is_blank = line_start && line_end && (bytes == b"\n" || bytes == b"\r\n");
        let Some(msg) = self.current.as_mut() else {
            if line_start && bytes.starts_with(b"From ") {
                self.begin(offset, bytes, line_end);
                return Ok(());
            }
            if is_blank {
                return Ok(());
            }
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an mbox file: no From_ line at offset {offset}"),
            ));
        };
        if msg.part == Part::FromLine {
            msg.hasher.update(trim_line_end(bytes));
            if line_end {
                msg.hasher.update(b"\n");
                msg.content_start = offset + bytes.len() as u64;
                msg.part = Part::Headers;
            }
            return Ok(());
        }
        let in_cl_body = msg.part == Part::Body && msg.cl_end.is_some_and(|end| offset < end);
        if msg.part == Part::Body && msg.cl_end == Some(offset) {
            msg.part = Part::AfterContentLength;
        }
        if line_start && bytes.starts_with(b"From ") && !in_cl_body {
            let content_end = match msg.part {
                Part::AfterContentLength => msg.cl_end.unwrap_or(offset),
                _ => msg.blank.as_ref().map_or(offset, |(at, _)| *at),
            };
            self.end_message(content_end, offset);
            self.begin(offset, bytes, line_end);
            return Ok(());
        }
        match msg.part {
            Part::AfterContentLength => {
                if !is_blank {
                    log::warn!("mbox: ignoring stray bytes at offset {offset} after a message");
                }
            }
            Part::Headers => {
                msg.flush_blank();
                if is_blank {
                    msg.volatile = false;
                    msg.part = Part::Body;
                    let body_start = offset + bytes.len() as u64;
                    msg.cl_end = match (self.options.content_length, msg.content_length) {
                        (true, Some(n)) => consistent_end(self.file, self.len, body_start, n)?,
                        _ => None,
                    };
                    if msg.cl_end == Some(body_start) {
                        msg.part = Part::AfterContentLength;
                        msg.feed(bytes);
                    } else {
                        // The blank line ending the headers may also be the separator of a
                        // message without a body.
                        msg.blank = Some((offset, bytes.to_vec()));
                    }
                    return Ok(());
                }
                if line_start {
                    header_line(msg, bytes);
                }
                msg.feed(bytes);
            }
            Part::Body => {
                if in_cl_body {
                    msg.flush_blank();
                    msg.feed(bytes);
                } else {
                    msg.flush_blank();
                    if is_blank {
                        msg.blank = Some((offset, bytes.to_vec()));
                    } else {
                        msg.feed(bytes);
                    }
                }
            }
            Part::FromLine => {}
        }
        Ok(())
    }

    fn begin(&mut self, offset: u64, bytes: &[u8], line_end: bool) {
        let mut msg = Building {
            start: offset,
            content_start: offset + bytes.len() as u64,
            part: Part::FromLine,
            transform: Transform::new(self.options.unquote),
            size: 0,
            hasher: Sha256::new(),
            volatile: false,
            content_length: None,
            cl_end: None,
            x_uidl: None,
            blank: None,
        };
        msg.hasher.update(trim_line_end(bytes));
        if line_end {
            msg.hasher.update(b"\n");
            msg.part = Part::Headers;
        }
        self.current = Some(msg);
    }

    /// Ends the message being read at `content_end`; the next one starts at `end`.
    fn end_message(&mut self, content_end: u64, end: u64) {
        let Some(mut msg) = self.current.take() else {
            return;
        };
        msg.blank = None;
        let (size, hasher) = (&mut msg.size, &mut msg.hasher);
        msg.transform.finish(&mut |out| {
            *size += out.len() as u64;
            hasher.update(out);
        });
        self.messages.push(Message {
            start: msg.start,
            content_start: msg.content_start.min(content_end),
            content_end,
            end,
            size: msg.size,
            digest: msg.hasher.finalize().into(),
            x_uidl: msg.x_uidl,
        });
    }

    fn finish_current(&mut self, len: u64) {
        let Some(msg) = self.current.as_ref() else {
            return;
        };
        let content_end = match msg.part {
            Part::AfterContentLength => msg.cl_end.unwrap_or(len),
            Part::FromLine => len,
            _ => msg.blank.as_ref().map_or(len, |(at, _)| *at),
        };
        self.end_message(content_end, len);
    }
}

/// Notes what a header line says that matters here.
fn header_line(msg: &mut Building, line: &[u8]) {
    if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
        return; // A continuation: same field, same volatility.
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        msg.volatile = false;
        return;
    };
    let name = String::from_utf8_lossy(&line[..colon])
        .trim()
        .to_ascii_lowercase();
    msg.volatile = VOLATILE_HEADERS.contains(&name.as_str());
    let value = String::from_utf8_lossy(trim_line_end(&line[colon + 1..]))
        .trim()
        .to_owned();
    match name.as_str() {
        "content-length" => msg.content_length = value.parse().ok(),
        "x-uidl" if msg.x_uidl.is_none() => msg.x_uidl = Some(value),
        _ => {}
    }
}

/// Where a body of `n` octets starting at `body_start` ends, if that is consistent with the file:
/// at its end, or at a line start followed by a From_ line (after at most one empty line).
fn consistent_end(file: &File, len: u64, body_start: u64, n: u64) -> io::Result<Option<u64>> {
    let Some(end) = body_start.checked_add(n).filter(|&e| e <= len) else {
        return Ok(None);
    };
    if end == len {
        return Ok(Some(end));
    }
    let mut probe = [0u8; 8];
    let from = end.saturating_sub(1).max(body_start);
    let got = read_at_most(file, &mut probe, from)?;
    let probe = &probe[..got];
    let after = if end > body_start {
        match probe.split_first() {
            Some((b'\n', rest)) => rest,
            _ => return Ok(None), // Not at a line start.
        }
    } else {
        probe
    };
    let at_eof = end + after.len() as u64 == len;
    let ok = after.starts_with(b"From ")
        || after.starts_with(b"\nFrom ")
        || after.starts_with(b"\r\nFrom ")
        || (at_eof && (after == b"\n" || after == b"\r\n"));
    Ok(ok.then_some(end))
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn trim_line_end(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.strip_suffix(b"\r").unwrap_or(bytes)
}
