//! Property tests (proptest): the grammar and the wire encodings hold for all inputs, not only
//! for the transcripts of the other files.
//!
//! - Any core command, rendered as a line, parses back to itself, in any keyword case, and the
//!   line passes the framing unchanged.
//! - A response decodes back to its status, code, text and body lines; its first line is at most
//!   512 octets (RFC 2449 §4) whatever text it was given.
//! - A message body streamed through [`BodyEncoder`] in any chunking un-stuffs to exactly the
//!   CRLF text the store yielded, whose length is the size LIST reported.

use proptest::prelude::*;

use crate::body::{BodyEncoder, Progress};
use crate::command::{Command, Verb, split_keyword};
use crate::error::ProtoError;
use crate::line::LineReader;
use crate::response::{Response, ResponseCode, Status};
use crate::secret::Secret;

fn parse(line: &str) -> Option<Result<Command, ProtoError>> {
    let (keyword, rest) = split_keyword(line);
    Verb::parse(keyword).map(|verb| Command::parse(verb, rest))
}

/// A word as USER and APOP take it: 1-40 printable octets, no space.
fn word() -> impl Strategy<Value = String> {
    "[\\x21-\\x7e]{1,40}"
}

fn command() -> impl Strategy<Value = Command> {
    let msg = any::<u64>();
    prop_oneof![
        word().prop_map(Command::User),
        // PASS takes the rest of the line, spaces included (RFC 1939 §7).
        "[\\x20-\\x7e]{1,200}".prop_map(|p| Command::Pass(Secret::new(p))),
        (word(), "[0-9a-f]{32}").prop_map(|(user, digest)| Command::Apop {
            user,
            digest: Secret::new(digest),
        }),
        Just(Command::Quit),
        Just(Command::Stat),
        proptest::option::of(msg).prop_map(Command::List),
        msg.prop_map(Command::Retr),
        msg.prop_map(Command::Dele),
        Just(Command::Noop),
        Just(Command::Rset),
        (msg, any::<u64>()).prop_map(|(msg, lines)| Command::Top { msg, lines }),
        proptest::option::of(msg).prop_map(Command::Uidl),
        Just(Command::Capa),
        Just(Command::Stls),
        (proptest::option::of((
            "[A-Z0-9_-]{1,20}",
            proptest::option::of("[A-Za-z0-9+/]{0,150}={0,2}")
        )),)
            .prop_map(|(auth,)| Command::Auth {
                mechanism: auth.as_ref().map(|(m, _)| m.clone()),
                initial_response: auth.and_then(|(_, ir)| ir).filter(|ir| !ir.is_empty()),
            }),
    ]
}

/// Random case for ASCII letters.
fn recase(text: &str, mask: u64) -> String {
    text.chars()
        .enumerate()
        .map(|(i, c)| {
            if mask >> (i % 64) & 1 == 1 {
                c.to_ascii_lowercase()
            } else {
                c
            }
        })
        .collect()
}

/// The test's own decoder for what [`Response::encode`] writes.
fn decode(wire: &[u8]) -> (Status, Option<String>, String, Option<Vec<String>>) {
    let text = std::str::from_utf8(wire).expect("responses are UTF-8");
    let (first, rest) = text.split_once("\r\n").expect("a first line");
    let (status, after) = if let Some(after) = first.strip_prefix("+OK") {
        (Status::Ok, after)
    } else if let Some(after) = first.strip_prefix("-ERR") {
        (Status::Err, after)
    } else if let Some(after) = first.strip_prefix("+ ") {
        (Status::Continuation, after)
    } else {
        panic!("no status indicator in {first:?}")
    };
    let after = match status {
        Status::Continuation => after,
        _ => after.strip_prefix(' ').unwrap_or(after),
    };
    let (code, text) = match after.strip_prefix('[').and_then(|a| a.split_once(']')) {
        Some((code, text)) if status == Status::Err => (
            Some(code.to_owned()),
            text.strip_prefix(' ').unwrap_or(text),
        ),
        _ => (None, after),
    };
    let lines = (!rest.is_empty()).then(|| {
        let body = rest
            .strip_suffix(".\r\n")
            .expect("the terminating dot line");
        body.split_terminator("\r\n")
            .map(|line| line.strip_prefix('.').unwrap_or(line).to_owned())
            .collect()
    });
    (status, code, text.to_owned(), lines)
}

/// Message-like bytes: line ends of every kind, dots and From_ at line starts, binary.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(b"From ".to_vec()),
        Just(b"Subject: x".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// What a store yields for `message`: bare LF and a final bare CR completed to CRLF, and an
/// unterminated last line completed with CRLF (DESIGN.md: "CRLF text without dot-stuffing").
fn store_stream(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &b) in message.iter().enumerate() {
        if b == b'\n' && (i == 0 || message[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    match out.last() {
        None | Some(b'\n') => {}
        Some(b'\r') => out.push(b'\n'),
        Some(_) => out.extend_from_slice(b"\r\n"),
    }
    out
}

/// The client's side of RETR: the octets before the terminating `.` line, un-stuffed.
fn unstuff(wire: &[u8]) -> Vec<u8> {
    let body = wire
        .strip_suffix(b".\r\n")
        .expect("the terminating dot line");
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        assert_ne!(line, b".\r\n", "a terminator inside the body");
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

proptest! {
    #[test]
    fn rendered_commands_parse_back(command in command(), mask in any::<u64>()) {
        let line = command.render();
        prop_assert!(line.len() + 2 <= crate::line::MAX_LINE, "{line:?} is too long");
        prop_assert_eq!(parse(&line), Some(Ok(command.clone())));
        let recased = match line.split_once(' ') {
            Some((keyword, rest)) => format!("{} {rest}", recase(keyword, mask)),
            None => recase(&line, mask),
        };
        prop_assert_eq!(parse(&recased), Some(Ok(command.clone())));

        let mut reader = LineReader::default();
        reader.push(format!("{line}\r\n").as_bytes());
        prop_assert_eq!(reader.next_line(), Some(Ok(line)));
    }

    #[test]
    fn parsed_lines_render_and_parse_to_the_same_command(
        keyword in "(?i)(user|pass|apop|quit|stat|list|retr|dele|noop|rset|top|uidl|capa|stls|auth)",
        rest in "( |[0-9]{1,25}|[\\x21-\\x7e]{1,45}){0,5}",
    ) {
        let line = format!("{keyword}{rest}");
        if let Some(Ok(command)) = parse(&line) {
            let rendered = command.render();
            prop_assert!(rendered.len() <= line.len());
            prop_assert_eq!(parse(&rendered), Some(Ok(command)));
        }
    }

    #[test]
    fn responses_decode_to_what_was_encoded(
        status in 0..3u8,
        code in proptest::option::of(0..5u8),
        text in any::<String>(),
        lines in proptest::option::of(proptest::collection::vec(any::<String>(), 0..6)),
    ) {
        let code = code.map(|c| [
            ResponseCode::InUse,
            ResponseCode::LoginDelay,
            ResponseCode::SysTemp,
            ResponseCode::SysPerm,
            ResponseCode::Auth,
        ][usize::from(c)]);
        let mut response = match status {
            0 => Response::ok(text.clone()),
            1 => Response::err(code, text.clone()),
            _ => Response::continuation(text.clone()),
        };
        if let Some(lines) = &lines {
            if status != 2 {
                response = response.with_lines(lines.clone());
            }
        }
        let wire = response.to_bytes();
        let first = wire.iter().position(|&b| b == b'\n').expect("a line end") + 1;
        prop_assert_eq!(&wire[first - 2..first], b"\r\n");
        if response.status() != Status::Continuation {
            prop_assert!(first <= Response::MAX_LINE, "first line of {} octets", first);
        }
        // Control characters became spaces; the text kept what fits, cut at a character.
        let sanitized: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        prop_assert!(sanitized.starts_with(response.text()));
        if response.text().len() < sanitized.len() {
            prop_assert!(first > Response::MAX_LINE - 4, "cut short at {} octets", first);
        }
        // Without a code, text that starts with `[` reads as one on the wire (RFC 2449 §8).
        prop_assume!(response.code().is_some() || !response.text().starts_with('['));

        let (got_status, got_code, got_text, got_lines) = decode(&wire);
        prop_assert_eq!(got_status, response.status());
        prop_assert_eq!(got_code.as_deref(), response.code().map(ResponseCode::as_str));
        prop_assert_eq!(got_text.as_str(), response.text());
        let got_lines: Option<Vec<&str>> = got_lines
            .as_ref()
            .map(|lines| lines.iter().map(String::as_str).collect());
        prop_assert_eq!(got_lines, response.lines());
    }

    #[test]
    fn retr_sends_exactly_the_listed_octets(message in message(), chunk in 1..64usize) {
        let stream = store_stream(&message);
        let listed = stream.len() as u64;
        let mut encoder = BodyEncoder::new(None);
        let mut wire = Vec::new();
        for piece in stream.chunks(chunk) {
            prop_assert_eq!(encoder.encode(piece, &mut wire), Progress::NeedMore);
        }
        encoder.finish(&mut wire);
        let sent = unstuff(&wire);
        prop_assert_eq!(sent.len() as u64, listed);
        prop_assert_eq!(sent, stream);
    }

    #[test]
    fn top_sends_a_prefix_of_whole_lines(message in message(), chunk in 1..64usize, lines in 0..5u64) {
        let stream = store_stream(&message);
        let mut encoder = BodyEncoder::new(Some(lines));
        let mut wire = Vec::new();
        for piece in stream.chunks(chunk) {
            if encoder.encode(piece, &mut wire) == Progress::Done {
                break;
            }
        }
        encoder.finish(&mut wire);
        let sent = unstuff(&wire);
        prop_assert!(stream.starts_with(&sent));
        prop_assert!(sent.is_empty() || sent.ends_with(b"\r\n"));
    }
}
