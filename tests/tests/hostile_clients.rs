//! Hostile clients: password guessing, slow-loris, garbage, per-user limits, and running as root.
//! Delays are asserted only as lower bounds (what the server must at least wait), except where a
//! legitimate client must not be made to wait for someone else's penalty.

#![allow(clippy::unwrap_used)]

mod common;

use common::{demo_with, expected_messages};
use poppet_testkit::{Client, TestServer, artifacts, have_tool, maildir_messages};
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn password_guessing_is_delayed_penalised_and_cut_off_but_other_addresses_are_not_slowed() {
    let d = demo_with(
        r#"limits: (auth_failure_delay: "300ms", auth_penalty_max: "6s", trusted_networks: [], max_auth_failures: 3),"#,
    );
    // One connection, three wrong passwords: each answer waits at least the failure delay; after the
    // third the server hangs up.
    let mut c = Client::connect(d.server.addr);
    for i in 1..=3 {
        c.cmd("USER demo");
        let t = Instant::now();
        let r = c.cmd(&format!("PASS wrong{i}"));
        assert!(r.starts_with("-ERR [AUTH]"), "{r}");
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "attempt {i} answered after {:?}",
            t.elapsed()
        );
    }
    assert_eq!(c.try_line(), None, "closed after three failures");
    // Three failures from this address: the next attempt first serves a 4 s penalty (1, 2, 4 s).
    let mut c = Client::connect(d.server.addr);
    c.cmd("USER demo");
    let t = Instant::now();
    let r = c.cmd("PASS demo");
    assert!(r.starts_with("+OK"), "the right password still works: {r}");
    assert!(
        t.elapsed() >= Duration::from_secs(4),
        "penalty served: {:?}",
        t.elapsed()
    );
    c.cmd("QUIT");
    assert!(
        d.server
            .wait_for_log("auth penalty 4s for rip=127.0.0.1", Duration::from_secs(10)),
        "{}",
        d.server.log()
    );
    // Served once per attempt, not once per layer the attempt passes through.
    assert!(
        d.server
            .wait_for_log("logout user=\"demo\"", Duration::from_secs(10))
    );
    assert_eq!(
        d.server.log().matches("auth penalty 4s").count(),
        1,
        "{}",
        d.server.log()
    );

    // Guessing again from 127.0.0.1, while a user on another address logs in without waiting.
    let mut c = Client::connect(d.server.addr);
    for _ in 0..2 {
        c.cmd("USER demo");
        c.cmd("PASS wrong");
    }
    if !have_tool("python3") {
        poppet_testkit::skip("partial: python3 is needed to connect from 127.0.0.2");
        return;
    }
    let script = r#"
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.2", 0)); s.settimeout(30)
s.connect(("127.0.0.1", int(sys.argv[1]))); f = s.makefile("rb"); f.readline()
t = time.monotonic()
s.sendall(b"USER demo\r\nPASS demo\r\n"); f.readline(); r = f.readline().decode().strip()
print(r, round(time.monotonic() - t, 3))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &d.server.addr.port().to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("+OK"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let secs: f64 = text.split_whitespace().last().unwrap().parse().unwrap();
    assert!(
        secs < 4.0,
        "127.0.0.2 must not serve 127.0.0.1's penalty, took {secs}s"
    );
}

#[test]
fn slow_loris_connections_are_cut_at_the_login_timeout_and_new_logins_still_work() {
    let d = demo_with(r#"limits: (login_timeout: "2s", max_connections_per_ip: 100),"#);
    let mut idle: Vec<Client> = (0..40).map(|_| Client::connect(d.server.addr)).collect();
    // Activity does not extend the login timeout: a client trickling commands is cut too.
    idle[0].cmd("CAPA");
    let _ = idle[0].body();
    // While they hang on, a real user logs in.
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    let started = Instant::now();
    for (i, mut client) in idle.into_iter().enumerate() {
        let mut last = None;
        while let Some(line) = client.try_line() {
            last = Some(line);
        }
        assert_eq!(
            last.as_deref(),
            Some("-ERR Disconnected: login took too long"),
            "client {i}"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    // The logged-in session is not subject to the login timeout.
    assert!(c.cmd("STAT").starts_with("+OK 5 "));
    assert!(
        d.server
            .wait_for_log("reason=login-timeout", Duration::from_secs(5))
    );
}

#[test]
fn garbage_nul_bytes_and_endless_auth_leave_the_server_healthy_and_the_mail_intact() {
    let d = demo_with(r#"limits: (login_timeout: "3s"),"#);
    let before = maildir_messages(&d.maildir)
        .into_iter()
        .map(|(b, _)| b)
        .collect::<Vec<_>>();
    // Binary garbage: answered with -ERR, then the connection is closed after a few bad commands.
    let mut c = Client::connect(d.server.addr);
    let mut junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    junk.extend_from_slice(b"\r\n\x00\x00QUIT\x00\r\n\xff\xfe\r\n");
    c.send(&junk);
    let mut lines = Vec::new();
    while let Some(l) = c.try_line() {
        lines.push(l);
    }
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.starts_with("-ERR")),
        "{lines:?}"
    );
    // A NUL inside a command.
    let mut c = Client::connect(d.server.addr);
    let r = c.cmd("USER de\0mo");
    assert!(r.starts_with("-ERR"), "{r}");
    // Endless AUTH exchanges and cancels: bounded by the login timeout.
    let mut c = Client::connect(d.server.addr);
    let t = Instant::now();
    let mut closed = false;
    while t.elapsed() < Duration::from_secs(20) {
        // The server may hang up at any moment (that is the point): a failed write or read ends it.
        if !c.try_send(b"AUTH PLAIN\r\n") {
            closed = true;
            break;
        }
        let Some(l) = c.try_line() else {
            closed = true;
            break;
        };
        if l.starts_with("-ERR Disconnected") {
            closed = c.try_line().is_none();
            break;
        }
        if !c.try_send(b"*\r\n") || c.try_line().is_none() {
            closed = true;
            break;
        }
    }
    assert!(closed, "an endless AUTH loop is cut off");
    // The server is healthy and nothing was deleted.
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert_eq!(
        c.cmd("STAT"),
        format!(
            "+OK 5 {}",
            expected_messages()
                .iter()
                .map(|(_, b)| b.len())
                .sum::<usize>()
        )
    );
    c.cmd("QUIT");
    let after = maildir_messages(&d.maildir)
        .into_iter()
        .map(|(b, _)| b)
        .collect::<Vec<_>>();
    assert_eq!(after, before);
}

#[test]
fn logged_in_sessions_per_user_are_capped() {
    // The faulty test store has no mailbox lock, so only the per-user cap stops a second session.
    let dir = tempfile::tempdir().unwrap();
    let lib = artifacts()
        .library("poppet-test-faulty")
        .display()
        .to_string();
    let config = format!(
        r#"(
    listeners: [(address: "127.0.0.1:0")],
    plugins: [(library: "{lib}", kind: auth, name: "faulty"), (library: "{lib}", kind: store, name: "faulty")],
    auth: "faulty",
    store: "faulty",
    limits: (max_connections_per_user: 1),
)"#
    );
    let server = TestServer::start(dir.path(), &config);
    let mut a = Client::connect(server.addr);
    a.login("carol", "secret");
    let mut b = Client::connect(server.addr);
    b.cmd("USER carol");
    let r = b.cmd("PASS secret");
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
    a.cmd("QUIT");
    assert!(server.wait_for_log("logout user=\"carol\"", Duration::from_secs(10)));
    b.login("carol", "secret");
}

#[test]
fn started_as_root_it_drops_to_the_configured_user() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .unwrap();
    if uid != "0" {
        poppet_testkit::skip("not running as root, cannot test dropping root");
        return;
    }
    let d = common::demo_with(r#"user: "nobody","#);
    let pid = d.server.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_owned();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u != "0"),
        "{uid_line}"
    );
    assert!(
        d.server
            .wait_for_log("dropped root", Duration::from_secs(5)),
        "{}",
        d.server.log()
    );
}
