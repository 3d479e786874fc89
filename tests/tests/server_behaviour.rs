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

/// A client logged in from another network namespace, with message 1 marked deleted; it prints
/// `ready` and then holds the connection until its stdin closes.
const HOLDING_CLIENT: &str = r#"
import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=60)
p.user("demo")
p.pass_("demo")
p.dele(1)
print("ready", flush=True)
sys.stdin.read()
"#;

/// A client whose host vanishes (no FIN, no RST: a phone that left its network) is cut by TCP
/// keepalive, committing nothing, and its maildrop lock is free for its next login right away
/// instead of after the 10-minute idle timeout. The client runs in a network namespace of its
/// own; it "vanishes" when a blackhole route swallows everything it sends back, so the server's
/// probes go unanswered while nothing fails on the server's side.
#[test]
fn a_vanished_client_is_cut_by_keepalive_and_its_lock_released() {
    if !poppet_testkit::is_root() {
        poppet_testkit::skip("not root: the client's network namespace needs CAP_NET_ADMIN");
        return;
    }
    for tool in ["ip", "python3"] {
        if !poppet_testkit::have_tool(tool) {
            poppet_testkit::skip(&format!(
                "{tool} is not installed (Debian: iproute2, python3)"
            ));
            return;
        }
    }
    let peer = match common::net::Peer::create("keepalive") {
        Ok(peer) => peer,
        Err(e) => {
            poppet_testkit::skip(&format!("cannot make a network namespace here: {e}"));
            return;
        }
    };
    // Serving a non-loopback address as root is refused: the server drops root for `nobody`.
    let d = common::demo_with_listeners(
        &format!(r#"(address: "{}:0", plaintext_auth: always)"#, peer.here),
        r#"user: "nobody", limits: (tcp_keepalive: "4s"),"#,
    );
    let chown = Command::new("chown")
        .args(["-R", "nobody:"])
        .arg(d.dir.path().join("mail"))
        .status();
    assert!(chown.is_ok_and(|s| s.success()), "chown of the mail tree");
    std::fs::set_permissions(
        d.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut client = Command::new("ip")
        .args(["netns", "exec", &peer.namespace, "python3", "-c"])
        .args([
            HOLDING_CLIENT,
            &peer.here,
            &d.server.addr.port().to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(client.stdout.take().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready", "{}", d.server.log());
    // While the client is there, its session holds the maildrop.
    let mut other = Client::connect(d.server.addr);
    assert!(other.cmd("USER demo").starts_with("+OK"));
    let refused = other.cmd("PASS demo");
    assert!(refused.starts_with("-ERR [IN-USE]"), "{refused}");
    drop(other);

    // The client's host vanishes: what it sends back to the server goes nowhere from now on.
    common::net::ip(&[
        "-n",
        &peer.namespace,
        "route",
        "add",
        "blackhole",
        &format!("{}/32", peer.here),
    ])
    .unwrap();
    let vanished = Instant::now();
    // Probes after 4 s of silence, four of them a second apart: about 8 s.
    assert!(
        d.server.wait_for_log(
            "reason=lost mechanism=USER retr=0/0 top=0 dele=1 deleted=0",
            Duration::from_secs(40)
        ),
        "the vanished client's session was not cut:\n{}",
        d.server.log()
    );
    eprintln!(
        "the vanished client was cut {:?} after it vanished",
        vanished.elapsed()
    );
    assert!(
        d.server
            .log()
            .contains("the client's host stopped answering")
    );
    // The lock went with the session, and the lost session's DELE was not applied.
    let mut next = Client::connect(d.server.addr);
    next.login("demo", "demo");
    let expected = common::expected_messages();
    let octets: usize = expected.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(next.cmd("STAT"), format!("+OK {} {octets}", expected.len()));
    assert!(next.cmd("QUIT").starts_with("+OK"));
    common::assert_demo_left(&d.maildir, &[]);
    let _ = client.kill();
    let _ = client.wait();
}
