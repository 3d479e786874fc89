//! Moving users from Dovecot or Courier (issue 7): Poppet serves exactly the UIDLs the real old
//! servers served for the fixtures in tests/fixtures/migration/ (made with Debian's dovecot-pop3d
//! and courier-pop, see the README there), never writes the old servers' files, and the
//! `poppet-maildir` tool reports UIDL changes and warms the sizes caches.

#![allow(clippy::unwrap_used)]

use poppet_testkit::{Client, TestServer, artifacts, copy_dir, demo_maildir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn fixture(name: &str) -> PathBuf {
    workspace_root().join("tests/fixtures/migration").join(name)
}

/// The `poppet-maildir` tool, built by the testkit with the store plugin.
fn tool() -> PathBuf {
    artifacts().poppet.with_file_name("poppet-maildir")
}

/// A server whose user `demo` (password `demo`) has a copy of `maildir`; `settings` go into the
/// maildir store's settings.
fn server(maildir: &Path, settings: &str) -> (TestServer, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail/demo/Maildir");
    copy_dir(maildir, &mail);
    let server = server_at(dir.path(), settings);
    (server, mail, dir)
}

/// A server whose mail is `<dir>/mail/<user>/Maildir`, used where it is.
fn server_at(dir: &Path, settings: &str) -> TestServer {
    let config = format!(
        r#"(
    listeners: [(address: "127.0.0.1:0")],
    plugins: [
        (library: "{auth}", kind: auth, name: "passwd", settings: (file: "{users}")),
        (library: "{store}", kind: store, name: "maildir",
         settings: (path: "{root}/mail/%u/Maildir", {settings})),
    ],
    auth: "passwd",
    store: "maildir",
)"#,
        auth = artifacts().library("poppet-auth-passwd").display(),
        store = artifacts().library("poppet-store-maildir").display(),
        users = workspace_root().join("examples/demo/users").display(),
        root = dir.display(),
    );
    TestServer::start(dir, &config)
}

/// A recorded session: the UIDL listing and the LIST listing, as (number, value) lines.
struct Served {
    uidl: Vec<String>,
    list: Vec<(usize, u64)>,
}

fn recorded(path: &Path) -> Served {
    let text = std::fs::read_to_string(path).unwrap();
    // Two multi-line answers, each a `+OK` line, listing lines and a lone dot.
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let mut blocks = lines
        .split(|l| *l == ".")
        .map(|b| b.iter().filter(|l| !l.starts_with("+OK")));
    let uidl = blocks.next().unwrap().map(|l| (*l).to_owned()).collect();
    let list = blocks
        .next()
        .unwrap()
        .map(|l| {
            let (n, size) = l.split_once(' ').unwrap();
            (n.parse().unwrap(), size.parse().unwrap())
        })
        .collect();
    Served { uidl, list }
}

/// Logs in and returns the UIDL listing lines, the LIST sizes, and each message's RETR octets.
fn session(server: &TestServer) -> (Vec<String>, Vec<u64>, Vec<usize>) {
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    let uidl = String::from_utf8(c.multi("UIDL").1).unwrap();
    let uidl: Vec<String> = uidl.lines().map(str::to_owned).collect();
    let list = String::from_utf8(c.multi("LIST").1).unwrap();
    let sizes: Vec<u64> = list
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.parse().unwrap())
        .collect();
    let octets = (1..=sizes.len())
        .map(|n| c.multi(&format!("RETR {n}")).1.len())
        .collect();
    assert!(c.cmd("QUIT").starts_with("+OK"));
    (uidl, sizes, octets)
}

/// Poppet's sizes are the old server's, except where the old server's was not the octets it
/// sent: both count no line end for a last line without one, then send one (message 5).
fn assert_sizes(served: &Served, sizes: &[u64], octets: &[usize]) {
    assert_eq!(sizes.len(), served.list.len());
    for (i, (&size, &sent)) in sizes.iter().zip(octets).enumerate() {
        assert_eq!(
            size,
            sent as u64,
            "message {}: LIST equals RETR octets",
            i + 1
        );
        let old = served.list[i].1;
        if i == 4 {
            assert_eq!(size, old + 2, "the unterminated last line is counted");
        } else {
            assert_eq!(size, old, "message {} keeps the old server's size", i + 1);
        }
    }
}

fn read_all(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap()
}

#[test]
fn dovecot_uidls_are_served_exactly_as_dovecot_served_them() {
    let source = fixture("dovecot/Maildir");
    for (format, record) in [
        ("%08Xu%08Xv", "dovecot/served-08Xu08Xv.txt"),
        ("%f", "dovecot/served-f.txt"),
    ] {
        let served = recorded(&fixture(record));
        assert_eq!(served.uidl.len(), 5, "{record}");
        let settings = format!(r#"uidl_source: "dovecot", uidl_format: "{format}""#);
        let (server, mail, _dir) = server(&source, &settings);
        let uidlist = read_all(&mail, "dovecot-uidlist");
        let (uidl, sizes, octets) = session(&server);
        assert_eq!(uidl, served.uidl, "UIDLs under pop3_uidl_format {format}");
        assert_sizes(&served, &sizes, &octets);
        // A second session (new/ moved to cur/ by the first) serves the same.
        assert_eq!(session(&server).0, served.uidl);
        assert_eq!(
            read_all(&mail, "dovecot-uidlist"),
            uidlist,
            "Dovecot's file is never written"
        );
    }
}

#[test]
fn courier_uidls_and_sizes_are_served_as_courier_served_them() {
    let served = recorded(&fixture("courier/served.txt"));
    assert_eq!(served.uidl.len(), 5);
    let (server, mail, _dir) = server(&fixture("courier/Maildir"), r#"uidl_source: "courier""#);
    let sizelist = read_all(&mail, "courierpop3dsizelist");
    let (uidl, sizes, octets) = session(&server);
    assert_eq!(uidl, served.uidl);
    assert_sizes(&served, &sizes, &octets);
    // The first open took four sizes from Courier's list (the fifth has no final line end, so
    // Courier's number for it is not trusted) and read only that one message.
    assert!(
        server.wait_for_log("sizes from cache", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("sizes from cache"))
        .unwrap();
    assert!(line.contains(" 1 computed"), "{line}");
    assert!(line.contains("4 from the courier list"), "{line}");
    assert_eq!(read_all(&mail, "courierpop3dsizelist"), sizelist);
}

#[test]
fn mail_the_old_server_never_listed_gets_the_native_uidl() {
    let (server, mail, _dir) = server(&fixture("courier/Maildir"), r#"uidl_source: "courier""#);
    std::fs::write(
        mail.join("new/1800000000.M9P9.later.example.org"),
        "Subject: after the move\n\nhello\n",
    )
    .unwrap();
    let (uidl, _, _) = session(&server);
    assert_eq!(uidl.len(), 6);
    assert_eq!(uidl[0], recorded(&fixture("courier/served.txt")).uidl[0]);
    assert_eq!(uidl[5], "6 1800000000.M9P9.later.example.org");
}

/// Runs the tool; returns its exit code and standard output.
fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(tool()).args(args).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    (out.status.code().unwrap(), stdout)
}

#[test]
fn uidl_report_counts_kept_and_changed_uidls_per_maildir_and_in_total() {
    let tree = tempfile::tempdir().unwrap();
    let root = tree.path().display().to_string();
    copy_dir(
        &fixture("dovecot/Maildir"),
        &tree.path().join("ann/Maildir"),
    );
    copy_dir(
        &fixture("courier/Maildir"),
        &tree.path().join("bob/Maildir"),
    );
    // Mail that arrived after Dovecot last saw ann's mailbox.
    std::fs::write(
        tree.path().join("ann/Maildir/new/1800000000.M1P1.h"),
        "Subject: new\n\nx\n",
    )
    .unwrap();
    let (code, out) = run(&["uidl-report", "--root", &root, "--source", "dovecot"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ann/Maildir: 6 messages: 5 keep their UIDL, 0 change, 1 not listed"),
        "{out}"
    );
    assert!(
        out.contains("total: 2 maildirs, 11 messages: 5 keep their UIDL, 0 change, 6 not listed"),
        "{out}"
    );
    // Native UIDLs differ from both old servers' defaults: every listed message changes.
    let (code, out) = run(&["uidl-report", "--root", &root, "--source", "native"]);
    assert_eq!(code, 1, "changes are problems: {out}");
    assert!(
        out.contains("total: 2 maildirs, 11 messages: 0 keep their UIDL, 10 change, 1 not listed"),
        "{out}"
    );
    // ...but match a Dovecot that served file names (pop3_uidl_format = %f).
    let args = [
        "uidl-report",
        "--root",
        &root,
        "--source",
        "native",
        "--old",
        "dovecot",
        "--old-format",
        "%f",
    ];
    let (code, out) = run(&args);
    assert!(
        out.contains("ann/Maildir: 6 messages: 5 keep their UIDL, 0 change, 1 not listed"),
        "{out}"
    );
    assert_eq!(code, 0, "{out}");
    let (code, _) = run(&["uidl-report", "--root", &root, "--source", "courier"]);
    assert_eq!(code, 0);
    let (code, _) = run(&["uidl-report", "--root", &root, "--source", "nonsense"]);
    assert_eq!(code, 2, "usage error");
    let (code, _) = run(&[
        "uidl-report",
        "--root",
        &root,
        "--source",
        "courier",
        "--format",
        "%f",
    ]);
    assert_eq!(code, 2, "--format only with dovecot");
}

fn files(maildir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for sub in ["cur", "new", "tmp"] {
        if let Ok(read) = std::fs::read_dir(maildir.join(sub)) {
            for e in read {
                names.push(format!(
                    "{sub}/{}",
                    e.unwrap().file_name().to_string_lossy()
                ));
            }
        }
    }
    names.sort();
    names
}

#[test]
fn warm_makes_the_first_login_read_no_message_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("mail");
    copy_dir(&demo_maildir(), &tree.join("demo/Maildir"));
    let before = files(&tree.join("demo/Maildir"));
    let (code, out) = run(&["warm", "--root", &tree.display().to_string()]);
    assert_eq!(code, 0, "{out}");
    // The demo's one Maildir++ `W=` name needs no cache.
    assert!(
        out.contains("4 sizes computed, 0 already cached, 1 from file names"),
        "{out}"
    );
    assert_eq!(files(&tree.join("demo/Maildir")), before, "no mail changed");
    let (code, out) = run(&["warm", "--root", &tree.display().to_string()]);
    assert_eq!(code, 0);
    assert!(out.contains("0 sizes computed, 4 already cached"), "{out}");

    // The server's first login on the warmed maildir reads no message body.
    let server = server_at(dir.path(), "");
    let (_, sizes, octets) = session(&server);
    assert_eq!(sizes.len(), 5);
    for (size, sent) in sizes.iter().zip(octets) {
        assert_eq!(*size, sent as u64);
    }
    assert!(
        server.wait_for_log("sizes from cache", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("sizes from cache"))
        .unwrap();
    assert!(
        line.contains("4 sizes from cache, 0 computed, 1 from file names"),
        "{line}"
    );
}

#[test]
fn warm_reports_broken_maildirs_without_changing_them() {
    let tree = tempfile::tempdir().unwrap();
    let good = tree.path().join("good/Maildir");
    copy_dir(&demo_maildir(), &good);
    std::fs::create_dir_all(good.join("tmp")).unwrap();
    // A delivery that never finished, two days ago.
    let stale = good.join("tmp/1700000000.M1P1.h");
    std::fs::write(&stale, "half a mess").unwrap();
    let two_days = std::time::SystemTime::now() - Duration::from_secs(48 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_days)
        .unwrap();
    // A fresh one is fine.
    std::fs::write(good.join("tmp/1900000000.M2P1.h"), "arriving").unwrap();
    let broken = tree.path().join("broken/Maildir");
    std::fs::create_dir_all(broken.join("cur")).unwrap();
    std::fs::write(broken.join("cur/1.a:2,"), "Subject: x\n\ny\n").unwrap();
    let (before_good, before_broken) = (files(&good), files(&broken));
    let (code, out) = run(&["warm", "--root", &tree.path().display().to_string()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("problem: missing new/"), "{out}");
    assert!(out.contains("problem: missing tmp/"), "{out}");
    assert!(
        out.contains("problem: stale tmp/1700000000.M1P1.h (48 hours old"),
        "{out}"
    );
    assert!(!out.contains("1900000000.M2P1.h"), "{out}");
    assert!(out.contains("; 3 problems"), "{out}");
    assert_eq!(files(&good), before_good);
    assert_eq!(files(&broken), before_broken);
    assert!(stale.exists(), "stale files are reported, not removed");
}
