//! The command grammar: line framing and command parsing (core/proto `line.rs`, `command.rs`).
//!
//! Input: one byte choosing a chunk size, then client bytes. Checks that the framing gives the
//! same lines whatever the chunking, that every line it lets through is within RFC 2449's 255
//! octets and free of control octets, and that every core command parses, renders and parses
//! back to itself (render never lengthens a line, so the rendering is a valid line too).
#![no_main]

use libfuzzer_sys::fuzz_target;
use poppet_proto::ProtoError;
use poppet_proto::fuzzing::{Lines, parse_command};

type Framed = Vec<Result<String, ProtoError>>;

/// Feeds `chunks` one by one, taking every line that is complete after each.
fn frame<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Framed, bool) {
    let mut lines = Lines::default();
    let mut out = Vec::new();
    for chunk in chunks {
        lines.push(chunk);
        while let Some(line) = lines.next_line() {
            out.push(line);
        }
    }
    (out, lines.has_input())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let (whole, whole_left) = frame([input]);
    let (chunked, chunked_left) = frame(input.chunks(usize::from(split) + 1));
    assert_eq!(whole, chunked, "chunking changed the lines");
    assert_eq!(
        whole_left, chunked_left,
        "chunking changed what is left buffered"
    );

    for line in whole.into_iter().flatten() {
        assert!(
            line.len() + 2 <= 255,
            "line of {} octets let through",
            line.len()
        );
        assert!(
            !line.bytes().any(|b| b < 0x20 || b == 0x7f),
            "control octet in {line:?}"
        );
        let Some(Ok(command)) = parse_command(&line) else {
            continue;
        };
        let rendered = command.render();
        assert!(
            rendered.len() <= line.len(),
            "{line:?} rendered as {rendered:?}"
        );
        match parse_command(&rendered) {
            Some(Ok(again)) => assert_eq!(again, command, "{line:?} rendered as {rendered:?}"),
            other => panic!("{line:?} rendered as {rendered:?}, which parses as {other:?}"),
        }
        // The rendering goes through the framing unchanged.
        let (framed, _) = frame([format!("{rendered}\r\n").as_bytes()]);
        assert_eq!(framed, vec![Ok(rendered)]);
    }
});
