//! Property test (proptest): for any message, the size the store lists is the number of octets
//! its body stream yields, and the stream is the message as POP3 sends it (DESIGN.md: "Sizes in
//! STAT/LIST are exactly the octets RETR sends").
//!
//! Each case writes the message into an mbox the way an mboxrd MDA does (a From_ line, `>`
//! before lines matching `^>*From `, a final line end, an empty separator line), between two
//! fixed messages, and opens it through the store's Rust API. The stream must be the message
//! with bare LFs as CRLF and its last line completed; the core's dot-stuffing of that stream is
//! poppet-proto's property test.

use crate::Mbox;
use crate::settings::Settings;
use futures_lite::future::block_on;
use futures_lite::io::AsyncReadExt;
use poppet_sdk::{MailStore, Maildrop, OpenRequest};
use proptest::prelude::*;

/// Message-like bytes: line ends of every kind, dots and From_ at line starts, binary.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b".".to_vec()),
        Just(b"From ".to_vec()),
        Just(b">".to_vec()),
        Just(b"Subject: x".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

/// The message as an mboxrd writer stores it, separator included.
fn mboxrd(message: &[u8]) -> Vec<u8> {
    let mut out = b"From sender@example.org Mon Jan  1 00:00:00 2024\n".to_vec();
    for line in message.split_inclusive(|&b| b == b'\n') {
        let quotes = line.iter().take_while(|&&b| b == b'>').count();
        if line[quotes..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
    if !message.is_empty() && !message.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// What POP3 sends: bare LF and a final bare CR completed to CRLF, a last line completed.
fn crlf(message: &[u8]) -> Vec<u8> {
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

const BEFORE: &[u8] = b"From a@x Mon Jan  1 00:00:00 2024\nSubject: before\n\nfirst\n\n";
const AFTER: &[u8] = b"From b@x Mon Jan  1 00:00:01 2024\nSubject: after\n\nlast\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn listed_size_is_what_retr_streams(message in message()) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = BEFORE.to_vec();
        file.extend_from_slice(&mboxrd(&message));
        file.extend_from_slice(AFTER);
        std::fs::write(dir.path().join("u"), &file).expect("write");
        let settings = format!("(path: \"{}/%u\", lock_timeout: \"2s\")", dir.path().display());
        let store = Mbox::new(Settings::parse(&settings).expect("settings"));
        let drop = block_on(store.open(OpenRequest { user: "u".into(), mailbox: None }))
            .expect("open");
        prop_assert_eq!(drop.messages().len(), 3, "the message was split or merged");
        let expected = crlf(&message);
        let mut streams = Vec::new();
        for (index, info) in drop.messages().iter().enumerate() {
            let mut body = block_on(drop.retrieve(index)).expect("retrieve");
            let mut out = Vec::new();
            block_on(body.read_to_end(&mut out)).expect("the stream fails");
            prop_assert_eq!(out.len() as u64, info.size, "message {} listed wrong", index + 1);
            streams.push(out);
        }
        prop_assert_eq!(&streams[1], &expected);
        prop_assert_eq!(&streams[0][..], &b"Subject: before\r\n\r\nfirst\r\n"[..]);
        prop_assert_eq!(&streams[2][..], &b"Subject: after\r\n\r\nlast\r\n"[..]);
    }
}
