//! Real POP3 clients against the real server: Python's poplib, curl's pop3://, mpop (GnuTLS and GNU
//! SASL underneath, so its TLS and SCRAM are other implementations than the server's) and fetchmail
//! (OpenSSL). Each test skips with a printed reason when its client is not installed (`.ci/run`
//! installs them).

#![allow(clippy::unwrap_used)]

mod common;

use common::{demo, expected_messages};
use poppet_testkit::{have_tool, maildir_messages};
use std::process::Command;

const POPLIB_SCRIPT: &str = r#"
import base64, json, poplib, sys
host, port, action = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = poplib.POP3(host, port, timeout=30)
p.user("demo")
p.pass_("demo")
out = {"stat": list(p.stat()), "capa": sorted(p.capa().keys())}
out["list"] = [l.decode() for l in p.list()[1]]
out["uidl"] = [l.decode() for l in p.uidl()[1]]
out["retr"] = []
for i in range(1, out["stat"][0] + 1):
    resp, lines, octets = p.retr(i)
    out["retr"].append(base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode())
out["top"] = base64.b64encode(b"".join(l + b"\r\n" for l in p.top(1, 0)[1])).decode()
if action == "delete":
    p.dele(1)
    p.dele(2)
out["quit"] = p.quit().decode()
print(json.dumps(out))
"#;

#[test]
fn python_poplib_reads_every_message_byte_exact() {
    if !have_tool("python3") {
        poppet_testkit::skip("python3 is not installed");
        return;
    }
    let d = demo();
    let run = |action: &str| {
        let out = Command::new("python3")
            .args([
                "-c",
                POPLIB_SCRIPT,
                "127.0.0.1",
                &d.server.addr.port().to_string(),
                action,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "poplib failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let expected = expected_messages();
    let v = run("read");
    let total: usize = expected.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(v["stat"], serde_json::json!([expected.len(), total]));
    for cap in ["PIPELINING", "RESP-CODES", "TOP", "UIDL", "USER"] {
        assert!(
            v["capa"].as_array().unwrap().iter().any(|c| c == cap),
            "CAPA lacks {cap}: {}",
            v["capa"]
        );
    }
    for (i, (base, bytes)) in expected.iter().enumerate() {
        assert_eq!(v["list"][i], format!("{} {}", i + 1, bytes.len()));
        assert_eq!(v["uidl"][i], format!("{} {base}", i + 1));
        let got = decode(&v["retr"][i]);
        assert!(
            got == *bytes,
            "message {} differs ({} vs {} bytes)",
            i + 1,
            got.len(),
            bytes.len()
        );
    }
    let top = decode(&v["top"]);
    assert!(
        expected[0].1.starts_with(&top) && top.ends_with(b"\r\n\r\n"),
        "TOP 1 0 is the header"
    );

    // DELE + QUIT through poplib removes exactly those two files.
    let v = run("delete");
    assert!(v["quit"].as_str().unwrap().starts_with("+OK"));
    let left: Vec<String> = maildir_messages(&d.maildir)
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let want: Vec<String> = expected.iter().skip(2).map(|(b, _)| b.clone()).collect();
    assert_eq!(left, want);
}

fn decode(v: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap()
}

#[test]
fn curl_lists_and_retrieves_messages() {
    if !have_tool("curl") {
        poppet_testkit::skip("curl is not installed");
        return;
    }
    let d = demo();
    let url = |path: &str| format!("pop3://demo:demo@{}/{path}", d.server.addr);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let expected = expected_messages();
    let list = String::from_utf8(curl(&[&url("")])).unwrap();
    for (i, (_, bytes)) in expected.iter().enumerate() {
        assert!(
            list.contains(&format!("{} {}\r\n", i + 1, bytes.len())),
            "{list}"
        );
    }
    let uidl = String::from_utf8(curl(&["-X", "UIDL", &url("")])).unwrap();
    assert!(uidl.contains(&format!("1 {}\r\n", expected[0].0)), "{uidl}");
    for (i, (_, bytes)) in expected.iter().enumerate() {
        let got = curl(&[&url(&(i + 1).to_string())]);
        assert!(
            got == *bytes,
            "curl RETR {} differs ({} vs {} bytes)",
            i + 1,
            got.len(),
            bytes.len()
        );
    }
    // curl's -X DELE on a message: deleted at QUIT.
    curl(&["-X", "DELE", "-I", &url("1")]);
    let left = maildir_messages(&d.maildir);
    assert_eq!(left.len(), expected.len() - 1);
    assert!(!left.iter().any(|(b, _)| *b == expected[0].0));
}

/// Writes a client's configuration file holding a password, readable by its owner alone (mpop and
/// fetchmail refuse one that others can read).
fn write_private(file: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(file, text).unwrap();
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Runs mpop with the configuration `rc` (written to `dir/mpoprc`) for its account `demo`; exit
/// status and everything it printed.
fn mpop(dir: &std::path::Path, rc: &str) -> (bool, String) {
    let file = dir.join("mpoprc");
    write_private(&file, rc);
    let out = Command::new("mpop")
        .arg("-C")
        .arg(&file)
        .arg("demo")
        .env("HOME", dir)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (out.status.success(), poppet_testkit::output_text(&out))
}

/// The messages mpop delivered into the maildir `into` (its `new/`), sorted by content.
fn delivered(into: &std::path::Path) -> Vec<Vec<u8>> {
    let mut got: Vec<Vec<u8>> = maildir_messages(into)
        .into_iter()
        .map(|(_, path)| std::fs::read(path).unwrap())
        .collect();
    got.sort();
    got
}

/// The demo messages as mpop stores them: the server's CRLF text with LF line ends again.
fn as_stored_by_mpop() -> Vec<Vec<u8>> {
    let mut want: Vec<Vec<u8>> = expected_messages()
        .into_iter()
        .map(|(_, crlf)| {
            let text = String::from_utf8_lossy(&crlf).replace("\r\n", "\n");
            text.into_bytes()
        })
        .collect();
    want.sort();
    want
}

/// mpop fetches every message, byte for byte, into a maildir, remembering their UIDLs: a second
/// run fetches nothing, and a run with `keep off` deletes them on the server, at its QUIT.
#[test]
fn mpop_fetches_every_message_then_only_new_ones_then_deletes() {
    if !have_tool("mpop") {
        poppet_testkit::skip("mpop is not installed (Debian package mpop)");
        return;
    }
    let d = demo();
    let into = d.dir.path().join("fetched");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(into.join(sub)).unwrap();
    }
    let rc = |keep: &str| {
        format!(
            "account demo\nhost 127.0.0.1\nport {port}\ntls off\nauth user\nuser demo\n\
             password demo\ndelivery maildir {into}\nuidls_file {uidls}\nkeep {keep}\n\
             received_header off\n",
            port = d.server.addr.port(),
            into = into.display(),
            uidls = d.dir.path().join("uidls").display(),
        )
    };
    let (ok, out) = mpop(d.dir.path(), &rc("on"));
    assert!(ok, "mpop: {out}\n{}", d.server.log());
    assert_eq!(delivered(&into), as_stored_by_mpop(), "{out}");
    assert_eq!(
        maildir_messages(&d.maildir).len(),
        expected_messages().len()
    );

    // Known UIDLs: nothing fetched again.
    let (ok, out) = mpop(d.dir.path(), &rc("on"));
    assert!(ok, "mpop: {out}");
    assert_eq!(delivered(&into).len(), expected_messages().len(), "{out}");

    // keep off: the messages it has are deleted on the server (RFC 1939: at QUIT).
    let (ok, out) = mpop(d.dir.path(), &rc("off"));
    assert!(ok, "mpop: {out}");
    assert_eq!(maildir_messages(&d.maildir).len(), 0, "{out}");
    assert!(
        d.server
            .wait_for_log("reason=quit", std::time::Duration::from_secs(10))
    );
    assert_eq!(delivered(&into).len(), expected_messages().len());
}

/// mpop over STLS and over implicit TLS (GnuTLS checking the server's certificate against the
/// file the server generated), logging in with SCRAM-SHA-256 (GNU SASL) as a user whose password
/// is stored `{PLAIN}`; a wrong password is refused.
#[test]
fn mpop_over_stls_and_implicit_tls_with_scram_sha_256() {
    if !have_tool("mpop") {
        poppet_testkit::skip("mpop is not installed (Debian package mpop)");
        return;
    }
    let d = common::demo_with_listeners(
        r#"(address: "127.0.0.1:0"), (address: "127.0.0.1:0", tls: implicit)"#,
        r#"tls: (cert: "{dir}/cert.pem", key: "{dir}/key.pem", generate_self_signed: true),"#,
    );
    poppet_testkit::copy_dir(
        &poppet_testkit::demo_maildir(),
        &d.dir.path().join("mail/plain/Maildir"),
    );
    let rc = |port: u16, starttls: &str, password: &str, into: &std::path::Path| {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(into.join(sub)).unwrap();
        }
        format!(
            "account demo\nhost 127.0.0.1\nport {port}\ntls on\ntls_starttls {starttls}\n\
             tls_trust_file {cert}\nauth scram-sha-256\nuser plain\npassword {password}\n\
             delivery maildir {into}\nuidls_file {into}/uidls\nkeep on\n\
             received_header off\n",
            cert = d.dir.path().join("cert.pem").display(),
            into = into.display(),
        )
    };
    for (port, starttls, name) in [
        (d.server.addrs[0].port(), "on", "stls"),
        (d.server.addrs[1].port(), "off", "implicit"),
    ] {
        let into = d.dir.path().join(name);
        let (ok, out) = mpop(d.dir.path(), &rc(port, starttls, "plain-secret", &into));
        assert!(ok, "mpop {name}: {out}\n{}", d.server.log());
        assert_eq!(delivered(&into), as_stored_by_mpop(), "{name}: {out}");
        let into = d.dir.path().join(format!("{name}-wrong"));
        let (ok, out) = mpop(d.dir.path(), &rc(port, starttls, "wrong", &into));
        assert!(!ok, "mpop {name} logged in with a wrong password: {out}");
        assert!(delivered(&into).is_empty());
    }
    let log = d.server.log();
    assert_eq!(
        log.matches("mechanism=SCRAM-SHA-256 tls=TLSv1_3").count(),
        2,
        "{log}"
    );
}

/// fetchmail (OpenSSL underneath) over STLS, checking the server's generated certificate, hands
/// every message to an MDA command; it remembers the UIDLs (`--uidl`), so a second run fetches
/// nothing, and `--flush --nokeep` deletes them on the server.
#[test]
fn fetchmail_fetches_over_stls_remembers_uidls_and_flushes() {
    if !have_tool("fetchmail") {
        poppet_testkit::skip("fetchmail is not installed (Debian package fetchmail)");
        return;
    }
    let d = common::demo_with_listeners(
        r#"(address: "127.0.0.1:0")"#,
        r#"tls: (cert: "{dir}/cert.pem", key: "{dir}/key.pem", generate_self_signed: true),"#,
    );
    let dir = d.dir.path();
    let out = dir.join("fetched");
    std::fs::create_dir_all(&out).unwrap();
    let rc = dir.join("fetchmailrc");
    // One file per message, named by fetchmail's message number.
    write_private(
        &rc,
        &format!(
            "poll localhost protocol pop3 port {port}\n    user \"demo\" password \"demo\" is \"root\" here\n    sslproto tls1.2+ sslcertck sslcertfile {cert}\n    keep\n    mda \"/bin/sh -c 'cat > {out}/%s.$$'\"\n",
            port = d.server.addr.port(),
            cert = dir.join("cert.pem").display(),
            out = out.display(),
        ),
    );
    let fetchmail = |extra: &[&str]| {
        let o = Command::new("fetchmail")
            .arg("--fetchmailrc")
            .arg(&rc)
            .arg("--idfile")
            .arg(dir.join("ids"))
            .args(["--uidl", "--nodetach", "--verbose"])
            .args(extra)
            .env("HOME", dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        // 0: mail fetched; 1: no new mail.
        (o.status.code(), poppet_testkit::output_text(&o))
    };
    let files = || std::fs::read_dir(&out).unwrap().count();
    let (code, log) = fetchmail(&[]);
    assert_eq!(code, Some(0), "{log}\n{}", d.server.log());
    assert!(
        log.contains("STLS"),
        "fetchmail did not upgrade with STLS:\n{log}"
    );
    let expected = expected_messages();
    assert_eq!(files(), expected.len(), "{log}");
    // fetchmail adds its own header lines (Received, Delivered-To); the rest is the message.
    let mut got: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    got.sort();
    for (uidl, crlf) in &expected {
        let text = String::from_utf8_lossy(crlf).replace("\r\n", "\n");
        let (head, body) = text.split_once("\n\n").unwrap();
        assert!(
            got.iter()
                .any(|g| g.ends_with(body) && head.lines().all(|l| g.lines().any(|gl| gl == l))),
            "message {uidl} not delivered intact"
        );
    }
    let ids = std::fs::read_to_string(dir.join("ids")).unwrap();
    for (uidl, _) in &expected {
        assert!(
            ids.contains(uidl.as_str()),
            "{uidl} not in fetchmail's idfile:\n{ids}"
        );
    }

    // The UIDLs it knows: nothing new.
    let (code, log) = fetchmail(&[]);
    assert_eq!(code, Some(1), "{log}");
    assert_eq!(files(), expected.len());
    assert_eq!(maildir_messages(&d.maildir).len(), expected.len());

    // --flush --nokeep: the old messages are deleted on the server (at its QUIT).
    let (code, log) = fetchmail(&["--flush", "--nokeep"]);
    assert!(matches!(code, Some(0 | 1)), "{log}");
    assert_eq!(maildir_messages(&d.maildir).len(), 0, "{log}");
    assert_eq!(files(), expected.len());
}
