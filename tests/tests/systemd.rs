//! systemd socket activation (`LISTEN_FDS`) with systemd's own `systemd-socket-activate`: Poppet
//! serves on the socket it is handed instead of binding its configured address.

#![allow(clippy::unwrap_used)]

mod common;

use poppet_testkit::{Client, artifacts, have_tool};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serves_on_a_socket_handed_over_by_systemd() {
    if !have_tool("systemd-socket-activate") {
        poppet_testkit::skip("systemd-socket-activate is not installed (package systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    poppet_testkit::copy_dir(
        &poppet_testkit::demo_maildir(),
        &dir.path().join("mail/demo/Maildir"),
    );
    // The configured address is a placeholder: the activated socket takes its place.
    let config = common::config(dir.path(), "");
    let path = dir.path().join("poppet.ron");
    std::fs::write(&path, config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg(&artifacts().poppet)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // systemd-socket-activate listens at once and starts Poppet on the first connection.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut c = loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break Client::connect(format!("127.0.0.1:{port}").parse().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "systemd-socket-activate did not listen"
        );
        std::thread::yield_now();
    };
    assert!(c.greeting.starts_with("+OK"), "{}", c.greeting);
    c.login("demo", "demo");
    assert!(c.cmd("STAT").starts_with("+OK 5 "));
    c.cmd("QUIT");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("comes from systemd socket activation"),
        "{log}"
    );
}
