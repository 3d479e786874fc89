//! The mbox reader (plugins/store-mbox `parse.rs`, `transform.rs`, `body.rs`).
//!
//! Input: a flags byte (bits 0-1: mboxrd, mboxo, mboxcl2; bit 2: honour Content-Length), then
//! the file. Checks that the parse either refuses the file as not an mbox or splits it into
//! messages that tile it (each starts at a From_ line, offsets ordered and within the file, each
//! ending where the next starts), and that each message's body stream, through the reader the
//! store serves RETR with, yields exactly its listed size as CRLF text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poppet_store_mbox::MessageReader;
use poppet_store_mbox::fuzzing::{Options, Transform, Unquote, parse};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

fn transform_all(input: &[u8], unquote: Unquote) -> Vec<u8> {
    let mut out = Vec::new();
    let mut transform = Transform::new(unquote);
    for chunk in input.chunks(5) {
        transform.feed(chunk, &mut |b| out.extend_from_slice(b));
    }
    transform.finish(&mut |b| out.extend_from_slice(b));
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file_bytes)) = data.split_first() else {
        return;
    };
    let unquote = match flags & 3 {
        0 | 3 => Unquote::Many,
        1 => Unquote::One,
        _ => Unquote::Never,
    };
    let options = Options {
        unquote,
        content_length: flags & 4 != 0,
    };
    let mut file = tempfile::tempfile().expect("a temporary file");
    file.write_all(file_bytes).expect("write");
    // The store opens the file afresh: the parser reads from the current offset.
    file.seek(SeekFrom::Start(0)).expect("rewind");
    let len = file_bytes.len() as u64;

    let parsed = match parse(&file, len, options) {
        Ok(parsed) => parsed,
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
            // Only a file with something other than blank lines before any From_ line.
            let first = file_bytes
                .split_inclusive(|&b| b == b'\n')
                .find(|line| *line != b"\n" && *line != b"\r\n");
            assert!(first.is_some_and(|line| !line.starts_with(b"From ")));
            return;
        }
    };
    assert_eq!(parsed.len, len);
    let mut expected_start = parsed.messages.first().map_or(len, |m| m.start);
    let leading = &file_bytes[..expected_start as usize];
    assert!(
        leading
            .split_inclusive(|&b| b == b'\n')
            .all(|l| l == b"\n" || l == b"\r\n"),
        "skipped something other than blank lines before the first message"
    );
    for message in &parsed.messages {
        assert_eq!(
            message.start, expected_start,
            "messages do not tile the file"
        );
        assert!(message.start <= message.content_start);
        assert!(message.content_start <= message.content_end);
        assert!(message.content_end <= message.end);
        assert!(message.end <= len);
        expected_start = message.end;
        assert!(file_bytes[message.start as usize..].starts_with(b"From "));
        assert!(message.start == 0 || file_bytes[message.start as usize - 1] == b'\n');
        // The raw value of one header line (the snapshot validates it before use).
        if let Some(uidl) = &message.x_uidl {
            assert!(!uidl.contains('\n'));
        }

        let raw = &file_bytes[message.content_start as usize..message.content_end as usize];
        let body = transform_all(raw, unquote);
        assert_eq!(
            body.len() as u64,
            message.size,
            "listed size differs from the stream"
        );
        assert!(
            body.is_empty() || body.ends_with(b"\r\n"),
            "stream without final CRLF"
        );
        for (i, &b) in body.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && body[i - 1] == b'\r', "bare LF in the stream");
            }
        }

        let mut handle = file.try_clone().expect("dup");
        handle
            .seek(SeekFrom::Start(message.content_start))
            .expect("seek");
        let stored = message.content_end - message.content_start;
        let mut reader = MessageReader::new(handle, stored, unquote, message.size);
        let mut streamed = Vec::new();
        reader
            .read_to_end(&mut streamed)
            .expect("the body stream fails");
        assert_eq!(
            streamed, body,
            "the RETR stream differs from the counted one"
        );
    }
    assert_eq!(
        expected_start, len,
        "the last message does not end at the file's end"
    );
});
