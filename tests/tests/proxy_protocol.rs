//! The PROXY protocol with a real HAProxy (Debian's `haproxy`) in front of Poppet on loopback: v1 and
//! v2 carry the client's address into Poppet's logs and limits; untrusted senders and connections
//! without a header are refused.

#![allow(clippy::unwrap_used)]

mod common;

use common::demo_with_listeners;
use common::haproxy::{Haproxy, free_port};
use poppet_testkit::have_tool;
use std::process::Command;
use std::time::Duration;

/// Starts HAProxy with two frontends forwarding to `backend` with PROXY v1 and v2.
fn haproxy(dir: &std::path::Path, backend: std::net::SocketAddr) -> (Haproxy, u16, u16) {
    let (v1, v2) = (free_port(), free_port());
    let config = format!(
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n\
         frontend pop3_v1\n  bind 127.0.0.1:{v1}\n  default_backend poppet_v1\n\
         backend poppet_v1\n  server poppet {backend} send-proxy\n\
         frontend pop3_v2\n  bind 127.0.0.1:{v2}\n  default_backend poppet_v2\n\
         backend poppet_v2\n  server poppet {backend} send-proxy-v2\n"
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).unwrap();
    let front = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let h = Haproxy::start(&path, &[front(v1), front(v2)]);
    (h, v1, v2)
}

const CLIENT: &str = r#"
import socket, sys
src, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.bind((src, 0)); s.settimeout(30)
s.connect(("127.0.0.1", port)); f = s.makefile("rb")
greeting = f.readline().decode().strip()
print("greeting", greeting)
if greeting.startswith("+OK"):
    s.sendall(b"USER demo\r\nPASS demo\r\nQUIT\r\n")
    for _ in range(3):
        print("reply", f.readline().decode().strip())
"#;

fn client(src: &str, port: u16) -> String {
    let out = Command::new("python3")
        .args(["-c", CLIENT, src, &port.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn haproxy_v1_and_v2_carry_the_client_address() {
    if !have_tool("haproxy") || !have_tool("python3") {
        poppet_testkit::skip("haproxy and python3 are needed (apt-get install haproxy)");
        return;
    }
    let d = demo_with_listeners(
        r#"(address: "127.0.0.1:0", proxy_protocol: ["127.0.0.1/32"])"#,
        "",
    );
    let (_haproxy, v1, v2) = haproxy(d.dir.path(), d.server.addr);
    for port in [v1, v2] {
        let out = client("127.0.0.2", port);
        assert!(
            out.contains("reply +OK Logged in"),
            "via haproxy port {port}: {out}\n{}",
            d.server.log()
        );
    }
    // Both logins were logged with the client's address, not HAProxy's.
    let t = Duration::from_secs(10);
    assert!(
        d.server
            .wait_for_log_count("login user=\"demo\" rip=127.0.0.2 ", 2, t),
        "{}",
        d.server.log()
    );
    assert!(
        d.server.log().contains("via proxy 127.0.0.1:"),
        "{}",
        d.server.log()
    );
}

#[test]
fn untrusted_senders_and_missing_headers_are_refused() {
    if !have_tool("python3") {
        poppet_testkit::skip("python3 is needed to connect from 127.0.0.2");
        return;
    }
    let d = demo_with_listeners(
        r#"(address: "127.0.0.1:0", proxy_protocol: ["127.0.0.1/32"])"#,
        "",
    );
    // 127.0.0.2 is not a trusted proxy: closed without a greeting.
    let out = client("127.0.0.2", d.server.addr.port());
    assert_eq!(out.trim(), "greeting", "{out}");
    let t = Duration::from_secs(10);
    assert!(
        d.server
            .wait_for_log("not a trusted PROXY protocol sender", t),
        "{}",
        d.server.log()
    );
    // A trusted address that speaks POP3 instead of PROXY: refused too, nothing logged in.
    let mut s = std::net::TcpStream::connect(d.server.addr).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"USER demo\r\nPASS demo\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(buf.is_empty(), "{:?}", String::from_utf8_lossy(&buf));
    assert!(
        d.server.wait_for_log("no PROXY protocol header", t),
        "{}",
        d.server.log()
    );
    assert!(!d.server.log().contains("login user="));
}

/// The cleartext policy judged on a real non-loopback client address: the PROXY header says the
/// client is 192.0.2.7 (TEST-NET-1; no packet goes there, it is only the header's claim), so the
/// default `loopback` policy refuses USER/PASS until TLS, while a loopback client may.
#[test]
fn cleartext_is_refused_for_a_non_loopback_client() {
    use std::io::{BufRead, BufReader, Write};
    let d = demo_with_listeners(
        r#"(address: "127.0.0.1:0", proxy_protocol: ["127.0.0.1/32"])"#,
        "",
    );
    let talk = |header: &str| {
        let mut s = std::net::TcpStream::connect(d.server.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(header.as_bytes()).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("+OK"), "{line}");
        s.write_all(b"USER demo\r\n").unwrap();
        line.clear();
        r.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    };
    let external = talk("PROXY TCP4 192.0.2.7 127.0.0.1 40000 110\r\n");
    assert_eq!(
        external,
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
    );
    let local = talk("PROXY TCP4 127.0.0.9 127.0.0.1 40001 110\r\n");
    assert!(local.starts_with("+OK"), "{local}");
}
