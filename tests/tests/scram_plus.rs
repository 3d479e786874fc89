//! SCRAM-SHA-256-PLUS end to end over real TLS 1.3: a client written here from RFC 5802/7677 with
//! rustls's own `export_keying_material` (RFC 9266 `tls-exporter`) against the server's channel
//! binding. No packaged POP3 client speaks -PLUS with tls-exporter, so this client is ours; the
//! mechanism itself is cross-checked against Python's `scramp` in `core/sasl`.

#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().into()
}

struct Tls {
    conn: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Tls {
    fn line(&mut self) -> String {
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while !out.ends_with(b"\r\n") {
            self.conn.read_exact(&mut byte).unwrap();
            out.push(byte[0]);
        }
        String::from_utf8(out).unwrap().trim_end().to_owned()
    }

    fn send(&mut self, line: &str) {
        self.conn
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.conn.flush().unwrap();
    }
}

/// STLS, then the handshake; returns the TLS stream and its `tls-exporter` value.
fn stls(addr: std::net::SocketAddr, ca: &std::path::Path) -> (Tls, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    let mut reader = BufReader::new(tcp.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    tcp.write_all(b"STLS\r\n").unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("+OK"), "{line}");
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = Tls {
        conn: rustls::StreamOwned::new(conn, tcp),
    };
    tls.conn.flush().unwrap();
    while tls.conn.conn.is_handshaking() {
        tls.conn.conn.complete_io(&mut tls.conn.sock).unwrap();
    }
    let exporter = tls
        .conn
        .conn
        .export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
        .unwrap()
        .to_vec();
    (tls, exporter)
}

/// Runs SCRAM-SHA-256-PLUS; returns the server's final answer line.
fn scram_plus(tls: &mut Tls, cb_data: &[u8], user: &str, password: &str) -> String {
    let nonce = B64.encode(rand::random::<[u8; 18]>());
    let gs2 = "p=tls-exporter,,";
    let first_bare = format!("n={user},r={nonce}");
    tls.send(&format!(
        "AUTH SCRAM-SHA-256-PLUS {}",
        B64.encode(format!("{gs2}{first_bare}"))
    ));
    let challenge = tls.line();
    let Some(server_first) = challenge.strip_prefix("+ ") else {
        return challenge;
    };
    let server_first = String::from_utf8(B64.decode(server_first).unwrap()).unwrap();
    let field = |k: &str| {
        server_first
            .split(',')
            .find_map(|f| f.strip_prefix(k))
            .unwrap()
            .to_owned()
    };
    let (r, salt, iterations) = (
        field("r="),
        B64.decode(field("s=")).unwrap(),
        field("i=").parse::<u32>().unwrap(),
    );
    assert!(r.starts_with(&nonce));
    let mut binding = gs2.as_bytes().to_vec();
    binding.extend_from_slice(cb_data);
    let final_bare = format!("c={},r={r}", B64.encode(&binding));
    let auth_message = format!("{first_bare},{server_first},{final_bare}");
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let signature = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(signature)
        .map(|(k, s)| k ^ s)
        .collect();
    tls.send(&B64.encode(format!("{final_bare},p={}", B64.encode(proof))));
    let answer = tls.line();
    let Some(server_final) = answer.strip_prefix("+ ") else {
        return answer;
    };
    let server_final = String::from_utf8(B64.decode(server_final).unwrap()).unwrap();
    let server_key = hmac(&salted, b"Server Key");
    let expected = B64.encode(hmac(&server_key, auth_message.as_bytes()));
    assert_eq!(
        server_final,
        format!("v={expected}"),
        "the server proves it knows the keys too"
    );
    tls.send("");
    tls.line()
}

#[test]
fn scram_sha_256_plus_binds_to_the_tls_1_3_channel() {
    let d = common::demo_with(
        r#"tls: (cert: "{dir}/cert.pem", key: "{dir}/key.pem", generate_self_signed: true),"#,
    );
    let ca = d.dir.path().join("cert.pem");
    let (mut tls, exporter) = stls(d.server.addr, &ca);
    tls.send("CAPA");
    let mut capa = Vec::new();
    loop {
        let l = tls.line();
        if l == "." {
            break;
        }
        capa.push(l);
    }
    assert!(
        capa.iter()
            .any(|l| l.starts_with("SASL SCRAM-SHA-256-PLUS ")),
        "{capa:?}"
    );
    let answer = scram_plus(&mut tls, &exporter, "plain", "plain-secret");
    assert!(answer.starts_with("+OK"), "{answer}");
    tls.send("STAT");
    assert!(tls.line().starts_with("+OK"));

    // Binding data from another channel (a man in the middle's) fails the proof.
    let (mut tls, mut exporter) = stls(d.server.addr, &ca);
    exporter[0] ^= 1;
    let answer = scram_plus(&mut tls, &exporter, "plain", "plain-secret");
    assert!(answer.starts_with("-ERR"), "{answer}");
}
