//! Maildir sizes against the body stream (plugins/store-maildir `sizes.rs`, `body.rs`).
//!
//! Input: a chunk-size byte, then a message file. The size the store lists (counted in chunks)
//! must be what the RETR stream yields, and the stream must be the file with bare LFs turned into
//! CRLF and the last line completed: DESIGN.md's "sizes in STAT/LIST are exactly the octets RETR
//! sends". A reader told a wrong size must fail rather than yield a cut or padded message.
#![no_main]

use futures_lite::future::block_on;
use futures_lite::io::{AsyncReadExt, Cursor};
use libfuzzer_sys::fuzz_target;
use poppet_store_maildir::CrlfReader;
use poppet_store_maildir::fuzzing::{CrlfCounter, Reading, completion};

/// The conversion, spelt out byte by byte.
fn crlf(file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() * 2);
    for (i, &b) in file.iter().enumerate() {
        if b == b'\n' && (i == 0 || file[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(b);
    }
    out.extend_from_slice(completion(file.last().copied()));
    out
}

fn stream(file: &[u8], size: u64) -> std::io::Result<Vec<u8>> {
    block_on(async {
        let mut reader = CrlfReader::new(Reading(Cursor::new(file.to_vec())), size, None);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.map(|_| out)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, file)) = data.split_first() else {
        return;
    };
    let mut counter = CrlfCounter::default();
    for piece in file.chunks(usize::from(chunk).max(1)) {
        counter.feed(piece);
    }
    let size = counter.total();
    let expected = crlf(file);
    assert_eq!(
        size,
        expected.len() as u64,
        "listed size differs from the conversion"
    );
    assert!(expected.is_empty() || expected.ends_with(b"\r\n"));

    let streamed = stream(file, size).expect("the body stream fails at the listed size");
    assert_eq!(
        streamed, expected,
        "RETR stream differs from the conversion"
    );
    assert!(
        stream(file, size + 1).is_err(),
        "a stream shorter than its size ended cleanly"
    );
    if size > 0 {
        assert!(
            stream(file, size - 1).is_err(),
            "a stream longer than its size was cut"
        );
    }
});
