//! Live reload: on a config file change or SIGHUP the new config is validated completely first; a
//! broken one leaves the running settings in force, a good one applies to new sessions while running
//! sessions finish on the settings they started with. Certificates are re-read.

#![allow(clippy::unwrap_used)]

mod common;

use common::{config_with_listeners, demo};
use poppet_testkit::{Client, have_tool};
use std::path::Path;
use std::time::Duration;

/// Replaces the config the way editors do: write a new file, rename it over the old one.
fn rewrite(dir: &Path, text: &str) {
    let tmp = dir.join("poppet.ron.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("poppet.ron")).unwrap();
}

#[test]
fn a_broken_config_is_reported_with_its_position_and_the_old_one_stays() {
    let d = demo();
    rewrite(
        d.dir.path(),
        "(\n  listeners: [(address: \"127.0.0.1:0\")],\n  bogus: 1,\n)",
    );
    let t = Duration::from_secs(20);
    assert!(
        d.server
            .wait_for_log("reload failed; still serving the previous config", t),
        "{}",
        d.server.log()
    );
    assert!(
        d.server.log().contains("poppet.ron:3:3"),
        "{}",
        d.server.log()
    );
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("STAT").starts_with("+OK 5 "));
}

#[test]
fn a_reload_moves_listeners_while_a_running_session_carries_on() {
    let d = demo();
    let mut a = Client::connect(d.server.addr);
    a.login("demo", "demo");
    assert!(a.cmd("DELE 1").starts_with("+OK"));
    // New config: the listener moves to 127.0.0.2 (also loopback) with a new greeting.
    let text = config_with_listeners(
        d.dir.path(),
        r#"(address: "127.0.0.2:0")"#,
        r#"greeting: "Reloaded.","#,
    );
    rewrite(d.dir.path(), &text);
    let addrs = d.server.wait_for_listeners(2, Duration::from_secs(20));
    assert_eq!(addrs.len(), 2, "{}", d.server.log());
    let new = addrs[1];
    assert_eq!(new.ip().to_string(), "127.0.0.2");
    assert!(d.server.wait_for_log(
        "no longer listening on 127.0.0.1:0",
        Duration::from_secs(10)
    ));
    // New sessions get the new settings on the new listener; the old listener is closed.
    let mut b = Client::connect(new);
    assert_eq!(b.greeting, "+OK Reloaded.");
    b.login("plain", "plain-secret");
    assert!(
        std::net::TcpStream::connect(d.server.addr).is_err(),
        "the old listener is closed"
    );
    // The running session finishes on its own settings and commits.
    assert!(a.cmd("STAT").starts_with("+OK 4 "));
    assert_eq!(a.cmd("QUIT"), "+OK Poppet signing off (1 messages deleted)");
}

const TLS_CHECK: &str = r#"
import socket, ssl, sys
cafile, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=30)
f = s.makefile("rb"); f.readline()
s.sendall(b"STLS\r\n"); f.readline()
try:
    ssl.create_default_context(cafile=cafile).wrap_socket(s, server_hostname="localhost")
    print("trusted")
except ssl.SSLCertVerificationError:
    print("untrusted")
"#;

#[test]
fn sighup_rereads_the_certificate() {
    if !have_tool("python3") {
        poppet_testkit::skip("python3 is not installed");
        return;
    }
    let d = common::demo_with(
        r#"tls: (cert: "{dir}/cert.pem", key: "{dir}/key.pem", generate_self_signed: true),"#,
    );
    let dir = d.dir.path();
    let check = |ca: &Path| {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                TLS_CHECK,
                ca.to_str().unwrap(),
                &d.server.addr.port().to_string(),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let old_ca = dir.join("old-cert.pem");
    std::fs::copy(dir.join("cert.pem"), &old_ca).unwrap();
    assert_eq!(check(&old_ca), "trusted");
    // A new certificate (the server generates one when both files are missing), then SIGHUP.
    std::fs::remove_file(dir.join("cert.pem")).unwrap();
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    d.server.reload();
    assert!(
        d.server
            .wait_for_log("new sessions use the new settings", Duration::from_secs(20)),
        "{}",
        d.server.log()
    );
    assert_eq!(check(&dir.join("cert.pem")), "trusted");
    assert_eq!(
        check(&old_ca),
        "untrusted",
        "new connections present the new certificate"
    );
}

/// `limits.tcp_keepalive` follows a reload: connections accepted after it get the new value (here:
/// off), those accepted before keep theirs. Read from the kernel with `ss`, which shows a
/// keepalive timer on a socket that has keepalive on.
#[test]
fn tcp_keepalive_follows_a_reload_for_new_connections() {
    use std::io::BufRead as _;
    if !have_tool("ss") {
        poppet_testkit::skip("ss is not installed (Debian package iproute2)");
        return;
    }
    let d = common::demo_with(r#"limits: (tcp_keepalive: "60s"),"#);
    let server_port = d.server.addr.port();
    // Connected and greeted: the server has accepted it and set its options.
    let connect = || {
        let stream = std::net::TcpStream::connect(d.server.addr).unwrap();
        let mut greeting = String::new();
        std::io::BufReader::new(&stream)
            .read_line(&mut greeting)
            .unwrap();
        assert!(greeting.starts_with("+OK"), "{greeting}");
        stream
    };
    // The server's end of `client`'s connection, as `ss` prints it.
    let server_side = |client: &std::net::TcpStream| {
        let port = client.local_addr().unwrap().port();
        let filter = format!("( sport = :{server_port} and dport = :{port} )");
        let out = std::process::Command::new("ss")
            .args(["-tnoH", "state", "established", &filter])
            .output()
            .unwrap();
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            line.contains(&format!(":{port}")),
            "ss found no such socket: {line}"
        );
        line
    };
    let before = connect();
    let line = server_side(&before);
    assert!(line.contains("timer:(keepalive,"), "{line}");

    rewrite(
        d.dir.path(),
        &common::config(d.dir.path(), r#"limits: (tcp_keepalive: "0s"),"#),
    );
    assert!(
        d.server
            .wait_for_log("new sessions use the new settings", Duration::from_secs(20)),
        "{}",
        d.server.log()
    );
    let after = connect();
    let line = server_side(&after);
    assert!(!line.contains("keepalive"), "{line}\n{}", d.server.log());
    let line = server_side(&before);
    assert!(line.contains("timer:(keepalive,"), "{line}");
}
