//! Several Poppet instances on shared storage behind HAProxy, as `book/src/scaling-out.md`
//! describes: three instances, each in its own network namespace (and its own UTS namespace, so
//! each has its own host name, as separate machines would), reached over veth pairs on a bridge,
//! all serving the same maildir tree; HAProxy in the root namespace in front of them, sending the
//! PROXY protocol. The configs are `examples/scale-out/poppet.ron` and `haproxy.cfg`, with only
//! addresses and paths replaced, so the book's page quotes what was tested.
//!
//! Asserted: the instances log the client's address, not HAProxy's; a second concurrent session
//! on another instance gets `[IN-USE]`; a QUIT releases the lock for every instance at once; and
//! after `kill -9` of the instance holding a session, nothing is lost (its DELEs are not applied),
//! the user stays locked out while the dead instance's lock is younger than the stale bound (no
//! instance can prove from another host that the holder is dead), and then logs in through
//! another instance, which takes the stale lock over.

#![allow(clippy::unwrap_used)]

mod common;

use common::haproxy::{Haproxy, free_port};
use common::net::{free_subnet, ip};
use poppet_testkit::{Client, TestServer, artifacts, copy_dir, demo_maildir, have_tool};
use poppet_testkit::{skip, workspace_root};
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

/// Instances behind HAProxy (the example config lists three).
const INSTANCES: usize = 3;
/// The maildir lock's stale bound in the test (the example says 5m).
const STALE_AFTER: Duration = Duration::from_secs(3);

/// The test's network: a bridge in the root namespace with HAProxy's address on it, and one
/// namespace per instance joined to it by a veth pair. Everything is removed on drop, also when
/// the test fails half-way through making it.
struct Net {
    bridge: Option<String>,
    namespaces: Vec<String>,
    /// The first three octets of the /24 in use.
    prefix: String,
}

impl Net {
    fn create(n: usize) -> Result<Net, String> {
        let pid = std::process::id();
        let tag = format!("pp{}", pid % 100_000);
        let mut net = Net {
            bridge: None,
            namespaces: Vec::new(),
            prefix: free_subnet(pid)?,
        };
        let bridge = format!("{tag}br");
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        net.bridge = Some(bridge.clone());
        ip(&[
            "addr",
            "add",
            &format!("{}.1/24", net.prefix),
            "dev",
            &bridge,
        ])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 1..=n {
            let ns = format!("poppet-shared-{pid}-{i}");
            ip(&["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            let (outer, inner) = (format!("{tag}v{i}"), format!("{tag}p{i}"));
            // The outer end is removed with the namespace that holds its peer.
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "master", &bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            let addr = format!("{}/24", net.instance(i));
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &inner])?;
            ip(&["-n", &ns, "link", "set", &inner, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    /// Instance `i`'s address (1-based), as in the example: .11, .12, .13.
    fn instance(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, 10 + i)
    }

    /// HAProxy's address on the bridge.
    fn proxy(&self) -> String {
        format!("{}.1", self.prefix)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        if let Some(bridge) = &self.bridge {
            let _ = ip(&["link", "del", bridge]);
        }
    }
}

/// `template` with each `(from, to)` replaced, asserting every `from` is there: a changed example
/// file fails here instead of silently testing something else.
fn fill(template: &str, replacements: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (from, to) in replacements {
        assert!(
            out.contains(from),
            "the example no longer contains {from:?}; update this test with it"
        );
        out = out.replace(from, to);
    }
    out
}

fn example(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("examples/scale-out").join(name)).unwrap()
}

/// How often each instance has logged `needle` so far.
fn counts(instances: &[TestServer], needle: &str) -> Vec<usize> {
    instances
        .iter()
        .map(|s| s.log().matches(needle).count())
        .collect()
}

/// Which instance logs `needle` once more than it had in `before` (bounded wait over all).
fn which_logged(instances: &[TestServer], needle: &str, before: &[usize]) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for (i, s) in instances.iter().enumerate() {
            if s.wait_for_log_count(needle, before[i] + 1, Duration::from_millis(20)) {
                return i;
            }
        }
        if Instant::now() >= deadline {
            let logs: Vec<String> = instances.iter().map(TestServer::log).collect();
            panic!("no instance logged {needle:?}:\n{}", logs.join("\n----\n"));
        }
    }
}

/// Reasons the test cannot run here, if any.
fn missing() -> Option<String> {
    if !poppet_testkit::is_root() {
        return Some("not root: network namespaces need CAP_NET_ADMIN".into());
    }
    for tool in ["ip", "haproxy", "unshare"] {
        if !have_tool(tool) {
            return Some(format!(
                "{tool} is not installed (Debian: iproute2, haproxy, util-linux)"
            ));
        }
    }
    None
}

#[test]
fn three_instances_behind_haproxy_share_one_maildir_tree() {
    if let Some(why) = missing() {
        skip(&why);
        return;
    }
    let net = match Net::create(INSTANCES) {
        Ok(net) => net,
        Err(e) => {
            skip(&format!("cannot make the test network: {e}"));
            return;
        }
    };
    // Entering a namespace and setting a host name there can still be forbidden (a container
    // without CAP_SYS_ADMIN): try once before building anything on it.
    let probe = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.namespaces[0],
            "unshare",
            "--uts",
            "sh",
            "-c",
        ])
        .arg("echo probe > /proc/sys/kernel/hostname")
        .output();
    if let Some(e) = probe.ok().filter(|o| !o.status.success()) {
        let why = String::from_utf8_lossy(&e.stderr);
        skip(&format!(
            "cannot run a process in a network and UTS namespace: {why}"
        ));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail/demo/Maildir");
    copy_dir(&demo_maildir(), &maildir);
    let users = dir.path().join("users");
    std::fs::copy(workspace_root().join("examples/demo/users"), &users).unwrap();
    // The instances drop root for `nobody` after binding, as the example drops it for `poppet`.
    let chown = Command::new("chown")
        .args(["-R", "nobody:"])
        .arg(dir.path().join("mail"))
        .status();
    assert!(chown.is_ok_and(|s| s.success()), "chown of the mail tree");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let library = artifacts().library("poppet-store-maildir");
    let plugin_dir = library.parent().unwrap();
    assert_eq!(
        artifacts().library("poppet-auth-passwd").parent(),
        Some(plugin_dir)
    );
    let stale = format!("\"{}s\"", STALE_AFTER.as_secs());
    let instances: Vec<TestServer> = (1..=INSTANCES)
        .map(|i| {
            let config = fill(
                &example("poppet.ron"),
                &[
                    ("10.0.0.11:110", format!("{}:110", net.instance(i))),
                    ("10.0.0.1/32", format!("{}/32", net.proxy())),
                    ("\"/usr/lib/poppet\"", format!("{plugin_dir:?}")),
                    ("/etc/poppet/users", users.display().to_string()),
                    (
                        "/srv/mail/%u/Maildir",
                        format!("{}/mail/%u/Maildir", dir.path().display()),
                    ),
                    ("\"5m\"", stale.clone()),
                    ("user: \"poppet\"", "user: \"nobody\"".to_owned()),
                ],
            );
            let home = dir.path().join(format!("instance{i}"));
            std::fs::create_dir_all(&home).unwrap();
            // Its own network namespace, and its own host name, as a separate machine has.
            let set_host =
                format!("echo poppet-host-{i} > /proc/sys/kernel/hostname && exec \"$@\"");
            let wrapper: Vec<String> = [
                "ip",
                "netns",
                "exec",
                &net.namespaces[i - 1],
                "unshare",
                "--uts",
                "sh",
                "-c",
                &set_host,
                "sh",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
            TestServer::start_wrapped(&home, &config, &wrapper)
        })
        .collect();
    let port = free_port();
    let front = SocketAddr::from(([127, 0, 0, 1], port));
    let mut backends = vec![("0.0.0.0:110", front.to_string())];
    let examples = ["10.0.0.11:110", "10.0.0.12:110", "10.0.0.13:110"];
    for (i, example_addr) in examples.iter().enumerate() {
        backends.push((example_addr, format!("{}:110", net.instance(i + 1))));
    }
    let haproxy_cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&haproxy_cfg, fill(&example("haproxy.cfg"), &backends)).unwrap();
    let _haproxy = Haproxy::start(&haproxy_cfg, &[front]);
    let expected = common::expected_messages();
    let n = expected.len();
    assert!(
        n >= 4,
        "the demo maildir has too few messages for this test"
    );
    let login_line = "login user=\"demo\" rip=127.0.0.1 ";

    // One session: the instance logs the client's address; HAProxy's is only the "via".
    let in_use_line = "mailbox of \"demo\" is in use";
    let stale_line = "taking over a stale lock";
    let (logins, refusals, takeovers) = (
        counts(&instances, login_line),
        counts(&instances, in_use_line),
        counts(&instances, stale_line),
    );
    let mut first = Client::connect(front);
    first.login("demo", "demo");
    let a = which_logged(&instances, login_line, &logins);
    let via = format!("via proxy {}:", net.proxy());
    assert!(instances[a].log().contains(&via), "{}", instances[a].log());
    // A second session lands on another instance (round robin) and finds the mailbox in use.
    let mut second = Client::connect(front);
    assert!(second.cmd("USER demo").starts_with("+OK"));
    let refused = second.cmd("PASS demo");
    assert!(refused.starts_with("-ERR [IN-USE]"), "{refused}");
    let b = which_logged(&instances, in_use_line, &refusals);
    assert_ne!(a, b, "the second session went to the same instance");
    // The first deletes two messages and quits; at once any instance serves what is left.
    let (_, body) = first.multi("RETR 1");
    assert!(body == expected[0].1, "message 1 differs");
    assert!(first.cmd("DELE 1").starts_with("+OK"));
    assert!(first.cmd("DELE 2").starts_with("+OK"));
    assert_eq!(
        first.cmd("QUIT"),
        "+OK Poppet signing off (2 messages deleted)"
    );
    let left = &expected[2..];
    let logins = counts(&instances, login_line);
    let mut third = Client::connect(front);
    third.login("demo", "demo");
    let holder = which_logged(&instances, login_line, &logins);
    assert!(
        third
            .cmd("STAT")
            .starts_with(&format!("+OK {} ", left.len()))
    );

    // kill -9 of the instance holding the session, after a DELE: the DELE is not applied.
    assert!(third.cmd("DELE 1").starts_with("+OK"));
    let killed = Instant::now();
    Command::new("kill")
        .args(["-KILL", &instances[holder].pid().to_string()])
        .status()
        .unwrap();
    assert_eq!(third.try_cmd("NOOP"), None, "the killed instance answered");
    // Another instance cannot tell from its host that the holder is dead: the user is locked out
    // until the lock is stale (its holder touched it up to a third of the bound before dying),
    // then gets in. Logins that HAProxy sends to the dead instance before its check marks it
    // down are closed or redispatched.
    let (mut in_use, mut session) = (0, None);
    while session.is_none() {
        assert!(
            killed.elapsed() < STALE_AFTER + Duration::from_secs(20),
            "still locked out {:?} after the kill ({in_use} IN-USE answers)",
            killed.elapsed()
        );
        let Some(mut c) = Client::try_connect(front) else {
            continue;
        };
        let _ = c.try_cmd("USER demo");
        match c.try_cmd("PASS demo") {
            Some(r) if r.starts_with("+OK") => session = Some(c),
            Some(r) => {
                assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
                in_use += 1;
                // Bounded by the assertion above; a pause keeps the retries from spinning.
                std::thread::sleep(Duration::from_millis(100));
            }
            None => {}
        }
    }
    let waited = killed.elapsed();
    assert!(in_use > 0, "the dead instance's lock did not hold at all");
    assert!(
        waited >= STALE_AFTER / 2,
        "the lock was taken over {waited:?} after the kill, before it could be stale"
    );
    let mut c = session.unwrap();
    assert!(c.cmd("STAT").starts_with(&format!("+OK {} ", left.len())));
    for (i, (_, want)) in left.iter().enumerate() {
        let (_, body) = c.multi(&format!("RETR {}", i + 1));
        assert!(body == *want, "message {} differs after the kill", i + 1);
    }
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
    let took_over = which_logged(&instances, stale_line, &takeovers);
    assert_ne!(took_over, holder, "the killed instance is dead");
    eprintln!(
        "login through another instance {waited:?} after the kill ({in_use} IN-USE answers \
         before); instance {} took the stale lock over",
        took_over + 1
    );
    // No login was ever logged with HAProxy's address (its health checks are, as they should be:
    // PROXY v2 LOCAL connections are the proxy's own).
    let wrong = format!("rip={} ", net.proxy());
    for s in &instances {
        let log = s.log();
        let bad: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("login user=") && l.contains(&wrong))
            .collect();
        assert!(bad.is_empty(), "{bad:?}");
    }
}
