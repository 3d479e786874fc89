//! Server responses and their wire encoding.
//!
//! RFC 1939 §3: "Responses in the POP3 consist of a status indicator and a keyword
//! possibly followed by additional information. All responses are terminated by a CRLF
//! pair." RFC 2449 §4: "The maximum length of the first line of a command response
//! (including the initial greeting) is unchanged at 512 octets (including the
//! terminating CRLF)." RFC 2449 §8 adds the optional response code in brackets right
//! after the status indicator, which RFC 3206 extends with `SYS/TEMP` and `SYS/PERM`.
//!
//! Multi-line bodies are byte-stuffed here, per RFC 1939 §3: "If any line of the
//! multi-line response begins with the termination octet, the line is "byte-stuffed" by
//! pre-pending the termination octet to that line of the response." Message bodies are
//! streamed instead, through [`crate::BodyEncoder`].
//!
//! A SASL challenge is neither: RFC 5034 §4 sends it as "a line consisting of a "+"
//! character followed by a single space and a string encoded using Base64", which
//! [`Response::continuation`] builds (an empty challenge is `+ ` alone).
//!
//! Core texts come from one table ([`crate::text`]) and can be translated; other text
//! comes from plugins, so constructors replace control characters with
//! spaces (no CRLF injection) and cap the first line at 512 octets.

use crate::text::{Catalog, Text};
use std::fmt::{self, Write as _};

/// The status indicator of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// `+OK`.
    Ok,
    /// `-ERR`.
    Err,
    /// `+ `: a SASL server challenge that waits for one client line (RFC 5034 §4).
    Continuation,
}

impl Status {
    /// The indicator as written on the wire.
    fn indicator(self) -> &'static str {
        match self {
            Self::Ok => "+OK",
            Self::Err => "-ERR",
            Self::Continuation => "+",
        }
    }
}

/// A response code (RFC 2449 §8, RFC 3206), written as `[CODE]` after `-ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseCode {
    /// `IN-USE`: the maildrop is locked by another session (RFC 2449 §8.1).
    InUse,
    /// `LOGIN-DELAY`: the user logged in too recently (RFC 2449 §8.1).
    LoginDelay,
    /// `SYS/TEMP`: a temporary system problem (RFC 3206).
    SysTemp,
    /// `SYS/PERM`: a permanent system problem (RFC 3206).
    SysPerm,
    /// `AUTH`: the credentials were wrong, not the system (RFC 3206).
    Auth,
}

impl ResponseCode {
    /// The code as written between the brackets.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InUse => "IN-USE",
            Self::LoginDelay => "LOGIN-DELAY",
            Self::SysTemp => "SYS/TEMP",
            Self::SysPerm => "SYS/PERM",
            Self::Auth => "AUTH",
        }
    }
}

/// One response: status, optional code, text, optional multi-line body.
///
/// A response built from a core [`Text`] remembers it, so [`Response::localize`] can render
/// it in the session's language; equality compares the wire form only.
#[derive(Debug, Clone)]
pub struct Response {
    status: Status,
    code: Option<ResponseCode>,
    text: String,
    /// The multi-line body: every line sanitized and followed by CRLF, not yet byte-stuffed. One
    /// buffer, not a `String` per line: a UIDL listing of a large maildrop is one allocation.
    lines: Option<String>,
    source: Option<Text>,
}

impl PartialEq for Response {
    fn eq(&self, other: &Self) -> bool {
        (self.status, self.code, &self.text, &self.lines)
            == (other.status, other.code, &other.text, &other.lines)
    }
}

impl Eq for Response {}

impl Response {
    /// The longest first line RFC 2449 §4 allows, CRLF included.
    pub const MAX_LINE: usize = 512;

    /// A positive response, `+OK <text>`. Empty text gives a bare `+OK`.
    pub fn ok(text: impl Into<String>) -> Self {
        Self::build(Status::Ok, None, text.into())
    }

    /// A negative response, `-ERR [<code>] <text>`.
    pub fn err(code: Option<ResponseCode>, text: impl Into<String>) -> Self {
        Self::build(Status::Err, code, text.into())
    }

    /// A positive response with a core text, `+OK <text>`, translatable.
    pub fn ok_text(text: Text) -> Self {
        let mut response = Self::build(Status::Ok, None, text.render(None));
        response.source = Some(text);
        response
    }

    /// A negative response with a core text, `-ERR [<code>] <text>`, translatable.
    pub fn err_text(code: Option<ResponseCode>, text: Text) -> Self {
        let mut response = Self::build(Status::Err, code, text.render(None));
        response.source = Some(text);
        response
    }

    /// Renders the text again from `catalog` (English when `None`), if it is a core
    /// text; plugin texts and protocol data stay as they are.
    pub fn localize(&mut self, catalog: Option<&Catalog>) {
        if let Some(source) = &self.source {
            let rebuilt = Self::build(self.status, self.code, source.render(catalog));
            self.text = rebuilt.text;
        }
    }

    /// The core text this response was built from, if any.
    pub fn source(&self) -> Option<&Text> {
        self.source.as_ref()
    }

    /// A SASL challenge, `+ <data>` (RFC 5034 §4); `data` is already base64. It is not
    /// capped at 512 octets: RFC 2449 §4 limits the first line of a command response,
    /// and challenges of some mechanisms (GSSAPI) are longer.
    pub fn continuation(data: impl Into<String>) -> Self {
        Self {
            status: Status::Continuation,
            code: None,
            text: sanitize(&data.into()),
            lines: None,
            source: None,
        }
    }

    /// Makes this a multi-line response with the given body lines (without CRLF, without
    /// byte-stuffing; [`Response::encode`] adds both and the terminating `.`). Each line is
    /// written straight into the body's buffer, so a listing needs no `String` per line.
    pub fn with_lines<I>(mut self, lines: I) -> Self
    where
        I: IntoIterator,
        I::Item: fmt::Display,
    {
        let mut body = String::new();
        for line in lines {
            let start = body.len();
            // Writing into a `String` cannot fail.
            let _ = write!(body, "{line}");
            sanitize_from(&mut body, start);
            body.push_str("\r\n");
        }
        self.lines = Some(body);
        self
    }

    fn build(status: Status, code: Option<ResponseCode>, text: String) -> Self {
        let indicator = status.indicator().len();
        let code_len = code.map_or(0, |code| code.as_str().len() + 3);
        // One space before the text and the CRLF after it.
        let budget = Self::MAX_LINE.saturating_sub(indicator + code_len + 3);
        let mut text = text;
        sanitize_from(&mut text, 0);
        truncate_at_char(&mut text, budget);
        Self {
            status,
            code,
            text,
            lines: None,
            source: None,
        }
    }

    /// The status indicator.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether this is a `+OK` response.
    pub fn is_ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// The response code, if any.
    pub fn code(&self) -> Option<ResponseCode> {
        self.code
    }

    /// The text of the first line (after status and code).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The multi-line body's lines (not byte-stuffed), if this is a multi-line response.
    pub fn lines(&self) -> Option<Vec<&str>> {
        // Lines hold no CR or LF (they were sanitized), so CRLF splits them exactly.
        self.lines
            .as_deref()
            .map(|body| body.split_terminator("\r\n").collect())
    }

    /// Appends the wire form to `out`: CRLF lines, a byte-stuffed body and `.\r\n` for
    /// multi-line responses.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.status.indicator().as_bytes());
        if let Some(code) = self.code {
            out.extend_from_slice(b" [");
            out.extend_from_slice(code.as_str().as_bytes());
            out.push(b']');
        }
        if !self.text.is_empty() || self.status == Status::Continuation {
            out.push(b' ');
            out.extend_from_slice(self.text.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(body) = &self.lines {
            let bytes = body.as_bytes();
            if bytes.first() == Some(&b'.') || memchr::memmem::find(bytes, b"\n.").is_some() {
                for line in body.split_inclusive("\r\n") {
                    if line.starts_with('.') {
                        out.push(b'.');
                    }
                    out.extend_from_slice(line.as_bytes());
                }
            } else {
                out.extend_from_slice(bytes);
            }
            out.extend_from_slice(b".\r\n");
        }
    }

    /// The wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

/// Replaces control characters (CR and LF included) so text cannot break the framing.
fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// [`sanitize`]s `text[start..]` in place. Control characters are C0, DEL and C1 (U+0080 to
/// U+009F, which UTF-8 writes as 0xC2 0x80-0x9F): octets that pass the quick test cannot be one,
/// so the usual line is only scanned.
fn sanitize_from(text: &mut String, start: usize) {
    let suspect = |b: &u8| *b < 0x20 || *b == 0x7f || *b == 0xc2;
    if text.as_bytes()[start..].iter().any(suspect) {
        let clean = sanitize(&text[start..]);
        text.truncate(start);
        text.push_str(&clean);
    }
}

/// Cuts `text` to at most `max` octets without splitting a character.
fn truncate_at_char(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
}

#[cfg(test)]
mod tests {
    use super::{Response, ResponseCode};

    fn wire(response: &Response) -> String {
        String::from_utf8_lossy(&response.to_bytes()).into_owned()
    }

    #[test]
    fn single_lines() {
        assert_eq!(wire(&Response::ok("")), "+OK\r\n");
        assert_eq!(wire(&Response::ok("2 320")), "+OK 2 320\r\n");
        assert_eq!(
            wire(&Response::err(None, "no such message")),
            "-ERR no such message\r\n"
        );
        assert_eq!(
            wire(&Response::err(Some(ResponseCode::InUse), "locked")),
            "-ERR [IN-USE] locked\r\n"
        );
    }

    #[test]
    fn continuations() {
        assert_eq!(wire(&Response::continuation("")), "+ \r\n");
        let challenge = Response::continuation("VXNlcm5hbWU6");
        assert_eq!(wire(&challenge), "+ VXNlcm5hbWU6\r\n");
        assert!(!challenge.is_ok());
        assert_eq!(challenge.status(), super::Status::Continuation);
        assert_eq!(wire(&Response::continuation("a\r\nb")), "+ a  b\r\n");
        let long = Response::continuation("A".repeat(2000)).to_bytes();
        assert_eq!(long.len(), 2004);
    }

    #[test]
    fn multi_line_is_byte_stuffed_and_terminated() {
        let response = Response::ok("follows").with_lines([".hidden", "plain", "", ".."]);
        assert_eq!(
            wire(&response),
            "+OK follows\r\n..hidden\r\nplain\r\n\r\n...\r\n.\r\n"
        );
        assert_eq!(
            wire(&Response::ok("none").with_lines(Vec::<String>::new())),
            "+OK none\r\n.\r\n"
        );
    }

    #[test]
    fn control_characters_cannot_inject_lines() {
        let response = Response::err(None, "bad\r\n+OK fake").with_lines(["a\r\nb"]);
        assert_eq!(wire(&response), "-ERR bad  +OK fake\r\na  b\r\n.\r\n");
    }

    #[test]
    fn body_lines_lose_c0_del_and_c1_controls_but_keep_other_text() {
        let response =
            Response::ok("x").with_lines(["a\u{85}b\u{7f}c", "\u{a0}caf\u{e9}", ".d\te"]);
        assert_eq!(
            wire(&response),
            "+OK x\r\na b c\r\n\u{a0}caf\u{e9}\r\n..d e\r\n.\r\n"
        );
        assert_eq!(
            response.lines(),
            Some(vec!["a b c", "\u{a0}caf\u{e9}", ".d e"])
        );
    }

    #[test]
    fn first_line_is_capped_at_512_octets() {
        for code in [None, Some(ResponseCode::LoginDelay)] {
            let line = Response::err(code, "x".repeat(1000)).to_bytes();
            assert_eq!(line.len(), 512);
            assert!(line.ends_with(b"\r\n"));
        }
        // Multi-octet characters are never split.
        let line = Response::ok("\u{e9}".repeat(600)).to_bytes();
        assert!(line.len() <= 512);
        assert!(String::from_utf8(line).is_ok());
    }
}
