//! TLS (STLS and implicit), SASL and the cleartext policy, end to end with real clients: Python's
//! `ssl`/`poplib`, `openssl s_client`, curl's SASL, and Python's `scramp` for SCRAM.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Demo, demo_with_listeners};
use poppet_testkit::{Client, have_tool};
use std::process::{Command, Stdio};

/// A plain listener offering STLS (default when TLS is configured) and an implicit-TLS listener; the
/// server generates its self-signed certificate at startup.
fn tls_demo(extra: &str) -> Demo {
    demo_with_listeners(
        r#"(address: "127.0.0.1:0"), (address: "127.0.0.1:0", tls: implicit)"#,
        &format!(
            r#"tls: (cert: "{{dir}}/cert.pem", key: "{{dir}}/key.pem", generate_self_signed: true), {extra}"#
        ),
    )
}

fn python(script: &str, args: &[String]) -> Option<(bool, String)> {
    if !have_tool("python3") {
        poppet_testkit::skip("python3 is not installed");
        return None;
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    Some((out.status.success(), poppet_testkit::output_text(&out)))
}

const POPLIB_TLS: &str = r#"
import poplib, ssl, sys
cafile, port, implicit_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ctx = ssl.create_default_context(cafile=cafile)
p = poplib.POP3("127.0.0.1", port, timeout=30)
before = sorted(p.capa().keys())
p.stls(context=ctx)
after = sorted(p.capa().keys())
p.user("demo"); p.pass_("demo")
print("before", " ".join(before))
print("after", " ".join(after))
print("stat", p.stat()[0])
print("tls", p.sock.version())
p.quit()
# Implicit TLS (RFC 8314), server name checked against the certificate.
ctx = ssl.create_default_context(cafile=cafile)
s = poplib.POP3_SSL("localhost", implicit_port, context=ctx, timeout=30)
s.user("demo"); s.pass_("demo")
print("implicit", s.stat()[0], s.sock.version())
s.quit()
"#;

#[test]
fn stls_and_implicit_tls_with_python_ssl() {
    let d = tls_demo("");
    let cert = d.dir.path().join("cert.pem").display().to_string();
    let args = [
        cert,
        d.server.addrs[0].port().to_string(),
        d.server.addrs[1].port().to_string(),
    ];
    let Some((ok, out)) = python(POPLIB_TLS, &args) else {
        return;
    };
    assert!(ok, "{out}");
    let line = |k: &str| {
        out.lines()
            .find(|l| l.starts_with(k))
            .unwrap_or_else(|| panic!("{out}"))
            .to_owned()
    };
    assert!(line("before ").split(' ').any(|c| c == "STLS"), "{out}");
    assert!(
        !line("after ").split(' ').any(|c| c == "STLS"),
        "CAPA after TLS lists no STLS: {out}"
    );
    assert_eq!(line("stat "), "stat 5");
    assert!(line("tls ").contains("TLSv1.3"), "{out}");
    assert!(line("implicit ").starts_with("implicit 5 TLSv1"), "{out}");
    // The login line names the protocol and cipher.
    assert!(
        d.server.wait_for_log(
            "mechanism=USER tls=TLSv1_3/TLS13_",
            std::time::Duration::from_secs(10)
        ),
        "{}",
        d.server.log()
    );
}

#[test]
fn openssl_s_client_starttls_pop3() {
    if !have_tool("openssl") {
        poppet_testkit::skip("openssl is not installed");
        return;
    }
    let d = tls_demo("");
    let cert = d.dir.path().join("cert.pem");
    let mut child = Command::new("openssl")
        .args(["s_client", "-starttls", "pop3", "-connect"])
        .arg(d.server.addrs[0].to_string())
        .arg("-CAfile")
        .arg(&cert)
        .args(["-verify_return_error", "-servername", "localhost", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"CAPA\r\nUSER demo\r\nPASS demo\r\nSTAT\r\nQUIT\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\r\nUSER\r\n"), "{text}");
    assert!(!text.contains("STLS"), "no STLS once TLS is up: {text}");
    assert!(text.contains("+OK 5 "), "{text}");
}

const STLS_INJECTION: &str = r#"
import socket, ssl, sys
cafile, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=30)
f = s.makefile("rb")
f.readline()
# Pipelined after STLS, in plain text: must be discarded, never read as if it came over TLS.
s.sendall(b"STLS\r\nUSER demo\r\n")
print("stls", f.readline().decode().strip())
t = ssl.create_default_context(cafile=cafile).wrap_socket(s, server_hostname="localhost")
g = t.makefile("rb")
t.sendall(b"PASS demo\r\n")
print("pass", g.readline().decode().strip())
"#;

#[test]
fn bytes_pipelined_after_stls_are_discarded() {
    let d = tls_demo("");
    let cert = d.dir.path().join("cert.pem").display().to_string();
    let Some((ok, out)) = python(
        STLS_INJECTION,
        &[cert, d.server.addrs[0].port().to_string()],
    ) else {
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("stls +OK Begin TLS negotiation"), "{out}");
    let pass = out.lines().find(|l| l.starts_with("pass ")).unwrap();
    assert!(
        pass.starts_with("pass -ERR"),
        "the injected USER must not count: {out}"
    );
}

#[test]
fn cleartext_passwords_are_refused_where_the_listener_says_so() {
    let d = demo_with_listeners(r#"(address: "127.0.0.1:0", plaintext_auth: never)"#, "");
    let mut c = Client::connect(d.server.addr);
    let r = c.cmd("USER demo");
    assert_eq!(
        r,
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
    );
    let (_, capa) = c.multi("CAPA");
    let capa = String::from_utf8(capa).unwrap();
    assert!(!capa.contains("USER\r\n"), "{capa}");
    assert!(
        capa.contains("SASL SCRAM-SHA-256\r\n"),
        "only SCRAM without TLS: {capa}"
    );
    let r = c.cmd("AUTH PLAIN AGRlbW8AZGVtbw==");
    assert!(r.starts_with("-ERR [AUTH] Plaintext"), "{r}");
    // The default policy allows cleartext from loopback, as Dovecot treats localhost as secure.
    let d = demo_with_listeners(r#"(address: "127.0.0.1:0")"#, "");
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
}

#[test]
fn curl_sasl_plain_and_login() {
    if !have_tool("curl") {
        poppet_testkit::skip("curl is not installed");
        return;
    }
    let d = tls_demo("");
    for mech in ["PLAIN", "LOGIN"] {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "--login-options",
                &format!("AUTH={mech}"),
            ])
            .arg(format!("pop3://demo:demo@{}/", d.server.addrs[0]))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mech}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).starts_with("1 "),
            "{mech}"
        );
        let line = format!("mechanism={mech} tls=no");
        assert!(
            d.server
                .wait_for_log(&line, std::time::Duration::from_secs(10)),
            "{}",
            d.server.log()
        );
    }
}

const SCRAM_CLIENT: &str = r#"
import base64, socket, sys
from scramp import ScramClient
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
f = s.makefile("rb")
f.readline()
c = ScramClient(["SCRAM-SHA-256"], user, password)
b64 = lambda b: base64.b64encode(b.encode()).decode()
s.sendall(("AUTH SCRAM-SHA-256 " + b64(c.get_client_first()) + "\r\n").encode())
line = f.readline().decode().strip()
assert line.startswith("+ "), line
c.set_server_first(base64.b64decode(line[2:]).decode())
s.sendall((b64(c.get_client_final()) + "\r\n").encode())
line = f.readline().decode().strip()
if line.startswith("+ "):
    c.set_server_final(base64.b64decode(line[2:]).decode())
    s.sendall(b"\r\n")
    line = f.readline().decode().strip()
print("result", line)
s.sendall(b"STAT\r\n")
print("stat", f.readline().decode().strip())
"#;

#[test]
fn scram_sha_256_with_python_scramp() {
    if python("import scramp", &[]).is_none_or(|(ok, _)| !ok) {
        poppet_testkit::skip("python3 scramp is not installed (pip install scramp)");
        return;
    }
    let d = tls_demo("");
    let port = d.server.addrs[0].port().to_string();
    let (ok, out) = python(
        SCRAM_CLIENT,
        &[port.clone(), "plain".into(), "plain-secret".into()],
    )
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("result +OK"), "{out}");
    assert!(out.contains("stat +OK"), "{out}");
    // A wrong password fails at the proof like any failed login.
    let (_, out) = python(SCRAM_CLIENT, &[port, "plain".into(), "wrong".into()]).unwrap();
    assert!(out.contains("-ERR [AUTH]"), "{out}");
}

#[test]
fn sasl_edge_cases_over_the_wire() {
    let d = tls_demo("");
    let mut c = Client::connect(d.server.addrs[0]);
    // Bad base64 in the initial response.
    assert!(c.cmd("AUTH PLAIN ***notbase64").starts_with("-ERR [AUTH]"));
    // A continuation, then cancel with "*".
    assert_eq!(c.cmd("AUTH PLAIN"), "+ ");
    assert_eq!(c.cmd("*"), "-ERR [AUTH] Authentication cancelled");
    // Unknown mechanism.
    assert!(c.cmd("AUTH CRAM-MD5").starts_with("-ERR"));
    // AUTH with no argument lists the mechanisms.
    let (_, list) = c.multi("AUTH");
    assert!(String::from_utf8(list).unwrap().contains("PLAIN\r\n"));
    // An overlong continuation ends the exchange; the connection stays usable.
    let mut c = Client::connect(d.server.addrs[0]);
    assert_eq!(c.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6");
    let long = format!("{}\r\n", "A".repeat(10_000));
    c.send(long.as_bytes());
    assert!(c.line().starts_with("-ERR"));
    // PLAIN with the demo user works.
    assert!(c.cmd("AUTH PLAIN AGRlbW8AZGVtbw==").starts_with("+OK"));
}
