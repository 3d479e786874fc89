//! The PROXY protocol (HAProxy, versions 1 and 2) on listeners behind a load balancer, so logs, rate
//! limits and the cleartext policy see the real client address.
//!
//! The header is read before anything else, without reading past it: version 1 is a text line of at
//! most 107 octets, version 2 a 16-octet preamble giving the length of the rest. Parsing is the `ppp`
//! crate's. A client that could speak first (implicit TLS sends a ClientHello at once) must not lose a
//! byte to the header reader, hence the exact reads.

use futures_lite::{AsyncRead, AsyncReadExt};
use ppp::HeaderResult;
use std::io;
use std::net::SocketAddr;

/// The version 2 signature (`\r\n\r\n\0\r\nQUIT\n`).
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1 headers are at most 107 octets (the spec's worst case with IPv6 addresses).
const V1_MAX: usize = 107;
/// PP2_TYPE_SSL, and its PP2_CLIENT_SSL bit: the client spoke TLS to the proxy.
const PP2_TYPE_SSL: u8 = 0x20;
const PP2_CLIENT_SSL: u8 = 0x01;

/// What the proxy told us about the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proxied {
    /// The client's address, or `None` for a proxy's own health check (v2 LOCAL, v1 UNKNOWN): the
    /// connection's own peer address is kept then.
    pub client: Option<SocketAddr>,
    /// The client connected to the proxy with TLS (v2 PP2_TYPE_SSL with the client bit).
    pub tls: bool,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Reads and parses one PROXY header from `stream`.
pub async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Proxied> {
    let mut buf = vec![0u8; 16];
    // 15 octets: the shortest v1 line ("PROXY UNKNOWN\r\n"); one more completes a v2 preamble.
    stream.read_exact(&mut buf[..15]).await?;
    if buf.starts_with(&V2_SIGNATURE[..]) {
        stream.read_exact(&mut buf[15..16]).await?;
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        buf.resize(16 + len, 0);
        stream.read_exact(&mut buf[16..]).await?;
    } else if buf.starts_with(b"PROXY ") {
        buf.truncate(15);
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(invalid("PROXY v1 line longer than 107 octets"));
            }
            stream.read_exact(&mut byte).await?;
            buf.push(byte[0]);
        }
    } else {
        return Err(invalid("no PROXY protocol header"));
    }
    parse(&buf)
}

/// Parses a complete header.
pub fn parse(bytes: &[u8]) -> io::Result<Proxied> {
    match HeaderResult::parse(bytes) {
        HeaderResult::V1(Ok(h)) => Ok(Proxied {
            client: match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            },
            tls: false,
        }),
        HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (ppp::v2::Command::Local, _) => None,
                (_, ppp::v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (_, ppp::v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            let tls = h.tlvs().filter_map(Result::ok).any(|t| {
                t.kind == PP2_TYPE_SSL && t.value.first().is_some_and(|f| f & PP2_CLIENT_SSL != 0)
            });
            Ok(Proxied { client, tls })
        }
        HeaderResult::V1(Err(e)) => Err(invalid(format!("bad PROXY v1 header: {e}"))),
        HeaderResult::V2(Err(e)) => Err(invalid(format!("bad PROXY v2 header: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn v1_lines() {
        let p = parse(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 110\r\n").unwrap();
        assert_eq!(
            p,
            Proxied {
                client: Some("192.0.2.7:40000".parse().unwrap()),
                tls: false
            }
        );
        let p = parse(b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 995\r\n").unwrap();
        assert_eq!(p.client, Some("[2001:db8::7]:40000".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().client, None);
        assert!(parse(b"PROXY TCP4 999.0.0.1 1.2.3.4 1 2\r\n").is_err());
    }

    #[test]
    fn v2_with_tls_tlv_and_local() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x21, 0x11]); // v2 PROXY, TCP over IPv4
        let tlv = [PP2_TYPE_SSL, 0, 5, PP2_CLIENT_SSL, 0, 0, 0, 0];
        h.extend_from_slice(&(12u16 + tlv.len() as u16).to_be_bytes());
        h.extend_from_slice(&[192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0, 110]);
        h.extend_from_slice(&tlv);
        let p = parse(&h).unwrap();
        assert_eq!(
            p,
            Proxied {
                client: Some("192.0.2.7:40000".parse().unwrap()),
                tls: true
            }
        );
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(
            parse(&local).unwrap(),
            Proxied {
                client: None,
                tls: false
            }
        );
    }

    #[test]
    fn reads_exactly_the_header_and_nothing_after_it() {
        let mut input: &[u8] = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 110\r\nUSER x\r\n";
        let p = block_on(read_header(&mut input)).unwrap();
        assert_eq!(p.client, Some("192.0.2.7:40000".parse().unwrap()));
        assert_eq!(input, b"USER x\r\n");
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0x40, 0, 110,
        ]);
        h.extend_from_slice(b"\x16\x03\x01");
        let mut input: &[u8] = &h;
        block_on(read_header(&mut input)).unwrap();
        assert_eq!(
            input, b"\x16\x03\x01",
            "a TLS ClientHello after the header is untouched"
        );
    }

    #[test]
    fn garbage_is_refused() {
        let mut input: &[u8] = b"USER alice\r\nPASS secret\r\n";
        assert!(block_on(read_header(&mut input)).is_err());
        let mut long = b"PROXY TCP4 ".to_vec();
        long.extend(std::iter::repeat_n(b'1', 200));
        let mut input: &[u8] = &long;
        assert!(block_on(read_header(&mut input)).is_err());
    }
}
