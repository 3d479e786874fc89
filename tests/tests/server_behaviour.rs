//! The server around the engine: connection caps, graceful shutdown, the quickstart config, the CLI.

#![allow(clippy::unwrap_used)]

mod common;

use common::{demo, demo_with};
use poppet_testkit::{Client, artifacts, maildir_messages};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn per_address_connection_cap_refuses_with_sys_temp_and_frees_slots() {
    let d = demo_with("limits: (max_connections_per_ip: 2),");
    let a = Client::connect(d.server.addr);
    let b = Client::connect(d.server.addr);
    assert!(a.greeting.starts_with("+OK") && b.greeting.starts_with("+OK"));
    let c = Client::connect(d.server.addr);
    assert_eq!(
        c.greeting,
        "-ERR [SYS/TEMP] too many connections from your address"
    );
    assert!(d.server.wait_for_log(
        "per-address connection limit reached",
        Duration::from_secs(10)
    ));
    drop(a);
    assert!(
        d.server
            .wait_for_log("reason=disconnected", Duration::from_secs(10)),
        "{}",
        d.server.log()
    );
    // The slot is released just after that log line; retry a bounded number of times.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Client::connect(d.server.addr).greeting.starts_with("+OK") {
        assert!(Instant::now() < deadline, "slot never freed");
    }
    drop(b);
}

#[test]
fn sigterm_ends_idle_sessions_commits_nothing_and_exits_cleanly() {
    let mut d = demo();
    let names = |d: &common::Demo| {
        maildir_messages(&d.maildir)
            .into_iter()
            .map(|(b, _)| b)
            .collect::<Vec<_>>()
    };
    let before = names(&d);
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    let status = d
        .server
        .terminate(Duration::from_secs(30))
        .expect("server exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.server.log());
    assert_eq!(
        c.try_line().as_deref(),
        Some("-ERR [SYS/TEMP] server shutting down, try again later")
    );
    assert_eq!(c.try_line(), None);
    assert_eq!(names(&d), before, "an interrupted session commits nothing");
    let log = d.server.log();
    assert!(log.contains("reason=shutdown"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn the_quickstart_config_checks_out() {
    // The quickstart keeps its certificate and mail under /tmp/poppet-quickstart, which belongs to
    // whoever runs the demo (and is absent on a fresh machine), so the test checks a copy pointed
    // at its own scratch directory: before the first start the certificate is still to be made,
    // after it the certificate loads.
    let root = poppet_testkit::workspace_root();
    let dir = tempfile::tempdir().unwrap();
    let original = std::fs::read_to_string(root.join("examples/quickstart.ron")).unwrap();
    assert!(
        original.contains(r#"cert: "/tmp/poppet-quickstart/tls/cert.pem""#),
        "the quickstart's certificate is where the book says: {original}"
    );
    let scratch = dir.path().join("quickstart");
    let text = original
        .replace("/tmp/poppet-quickstart", &scratch.display().to_string())
        .replace(
            r#""examples/"#,
            &format!(r#""{}/examples/"#, root.display()),
        );
    let cert = scratch.join("tls/cert.pem");
    let check = || poppet_testkit::check_text(dir.path(), "quickstart.ron", &text);

    let (ok, out) = check();
    assert!(ok, "{out}");
    for line in [
        "plugin auth `passwd`: auth-passwd".to_owned(),
        "plugin store `maildir`: store-maildir".to_owned(),
        "listener 127.0.0.1:11110 (plain + STLS)".to_owned(),
        "listener 127.0.0.1:11995 (implicit TLS)".to_owned(),
        format!(
            "tls certificate {}: will be generated at first start",
            cert.display()
        ),
    ] {
        assert!(out.contains(&line), "no {line:?} in:\n{out}");
    }
    assert!(!cert.exists(), "checking made the certificate");

    // The first start makes it (on free ports: the demo may be running on the real ones).
    let started = text
        .replace("127.0.0.1:11110", "127.0.0.1:0")
        .replace("127.0.0.1:11995", "127.0.0.1:0");
    drop(poppet_testkit::TestServer::start(dir.path(), &started));
    let (ok, out) = check();
    assert!(ok, "{out}");
    let line = format!("tls certificate {}: ok", cert.display());
    assert!(out.contains(&line), "no {line:?} in:\n{out}");
}

#[test]
fn a_bad_config_exits_non_zero_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.ron");
    std::fs::write(&path, "(\n  listeners: [(adress: \"127.0.0.1:0\")],\n)").unwrap();
    let out = Command::new(&artifacts().poppet)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:", path.display())), "{err}");
    assert!(err.contains("adress"), "{err}");
}

#[test]
fn version_and_pw_subcommand() {
    let out = Command::new(&artifacts().poppet)
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("poppet "));
    let mut child = Command::new(&artifacts().poppet)
        .args(["pw", "-s", "SHA256-CRYPT"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(b"hunter2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(hash.starts_with("{SHA256-CRYPT}$5$"), "{hash}");
    let crypt = hash.trim().trim_start_matches("{SHA256-CRYPT}");
    // Cross-check with an independent implementation: openssl passwd -5 with the same salt must print
    // the same string (5000 rounds, the default, are implicit in both).
    let salt = crypt.split('$').nth(2).unwrap();
    match Command::new("openssl")
        .args(["passwd", "-5", "-salt", salt, "hunter2"])
        .output()
    {
        Ok(o) if o.status.success() => assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), crypt),
        _ => poppet_testkit::skip("cross-check only: openssl is not installed"),
    }
}
