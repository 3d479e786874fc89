//! Property test (proptest): for any message file, the size the store lists is the number of
//! octets its body stream yields, and the stream is the file as POP3 sends it (DESIGN.md: "Sizes
//! in STAT/LIST are exactly the octets RETR sends").
//!
//! Each case delivers the bytes twice, to `new/` under a plain name (size computed, then cached)
//! and to `cur/` under a Maildir++ name carrying the right `,W=` (size from the name), and opens
//! the maildir twice, so both the computed and the cached size are checked. The stream must be
//! the file with bare LFs as CRLF and its last line completed; the core's dot-stuffing of that
//! stream is poppet-proto's property test.

use super::{Fixture, body};
use poppet_sdk::Maildrop;
use proptest::prelude::*;

/// Message-like bytes: line ends of every kind, dots at line starts, binary.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b".".to_vec()),
        Just(b"..".to_vec()),
        Just(b"Subject: x".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn listed_size_is_what_retr_streams(message in message()) {
        let expected = crlf(&message);
        let fixture = Fixture::new();
        fixture.deliver("u", "new", "1700000000.M1P1.host", &message, 1_700_000_000);
        let named = format!("1700000001.M2P2.host,S={},W={}:2,S", message.len(), expected.len());
        fixture.deliver("u", "cur", &named, &message, 1_700_000_001);
        for session in ["computed", "cached"] {
            let drop = fixture.open("u").expect("open");
            prop_assert_eq!(drop.messages().len(), 2);
            for (index, info) in drop.messages().iter().enumerate() {
                let sent = body(&drop, index);
                prop_assert_eq!(sent.len() as u64, info.size, "{} size of {}", session, index + 1);
                prop_assert_eq!(&sent, &expected);
            }
        }
    }
}
