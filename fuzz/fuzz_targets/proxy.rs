//! The PROXY protocol header reader (core/server `proxy.rs`, wrapping the `ppp` crate).
//!
//! Checks: no panic on any bytes; the reader never consumes past the header (what follows is
//! left for TLS or POP3), a v1 header is one CRLF line of at most 107 octets and a v2 header is
//! exactly its 16-octet preamble plus the length it gives; reading and parsing the consumed bytes
//! agree.
#![no_main]

use futures_lite::future::block_on;
use libfuzzer_sys::fuzz_target;
use proxy::{parse, read_header};

// The server's own file, compiled here rather than through the `poppet` crate: it needs only
// `ppp` and `futures-lite`, and the server's other dependencies (rustls, ring, the plugin host)
// would double the fuzz build.
#[path = "../../core/server/src/proxy.rs"]
mod proxy;

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

fuzz_target!(|data: &[u8]| {
    let parsed = parse(data);
    let mut rest = data;
    let read = block_on(read_header(&mut rest));
    let consumed = &data[..data.len() - rest.len()];
    match &read {
        Ok(proxied) => {
            if consumed.starts_with(V2_SIGNATURE) {
                let len = usize::from(u16::from_be_bytes([consumed[14], consumed[15]]));
                assert_eq!(consumed.len(), 16 + len, "v2 header read past its length");
            } else {
                assert!(consumed.starts_with(b"PROXY "));
                assert!(
                    consumed.len() <= 107,
                    "v1 header of {} octets",
                    consumed.len()
                );
                assert!(consumed.ends_with(b"\r\n"));
                assert_eq!(consumed.windows(2).filter(|w| *w == b"\r\n").count(), 1);
            }
            let again = parse(consumed).expect("the consumed header parses alone");
            assert_eq!(&again, proxied);
            if consumed.len() == data.len() {
                assert_eq!(parsed.as_ref().ok(), Some(proxied));
            }
        }
        Err(_) => assert!(consumed.len() <= data.len()),
    }
});
