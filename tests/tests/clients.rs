//! Real POP3 clients against the real server: Python's poplib and curl's pop3://. Each test skips with
//! a printed reason when its client is not installed (`.ci/run` installs both).

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
