//! The mbox store beside real delivery: an MDA-like writer that locks exactly as Debian's MDAs do
//! (dotlock `file.lock` created with `O_EXCL`, then a whole-file `fcntl` lock with `F_SETLKW`, the
//! order of Postfix local, procmail and Dovecot's LDA) appends messages in a loop while POP3
//! sessions retrieve, DELE and QUIT in a loop; and `kill -9` of the server in the middle of a
//! commit. Afterwards every delivered message is either retrieved-and-deleted or still in the
//! file, exactly once, intact.
//!
//! The writer is a separate process (Python's `fcntl.lockf` is `fcntl(F_SETLKW)` on the whole
//! file), as an MDA is; with procmail installed the same loop also runs with procmail itself.

#![allow(clippy::unwrap_used)]

mod common;

use common::mda::{load_message, mbox_spool, mbox_writer, test_id};
use poppet_testkit::conformance::{self, StoreFixture, as_sent, mboxrd};
use poppet_testkit::{Client, TestServer, have_tool};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Mbox {
    settings: &'static str,
}

impl StoreFixture for Mbox {
    fn package(&self) -> &'static str {
        "poppet-store-mbox"
    }
    fn factory(&self) -> &'static str {
        "mbox"
    }
    fn settings(&self, mail: &Path) -> String {
        format!("(path: \"{}/%u\", {})", mail.display(), self.settings)
    }
    fn create_mailbox(&self, mail: &Path, user: &str, messages: &[Vec<u8>]) {
        std::fs::write(mail.join(user), mboxrd::file(messages)).unwrap();
    }
    fn deliver(&self, mail: &Path, user: &str, message: &[u8]) {
        let spool = tempfile::tempdir().unwrap();
        let file = spool.path().join("m");
        std::fs::write(&file, mboxrd::entry(message)).unwrap();
        let status = writer(&mail.join(user), &[file]).wait().unwrap();
        assert!(status.success());
    }
    fn remaining(&self, mail: &Path, user: &str) -> Vec<Vec<u8>> {
        mboxrd::read(&mail.join(user))
    }
}

fn writer(mbox: &Path, files: &[PathBuf]) -> Child {
    mbox_writer(mbox, files, "0")
}

/// One POP3 session: retrieves everything, checks each body, deletes the ids `delete` picks,
/// QUITs. Returns the ids deleted, or `None` if the session could not start (lock timeout).
fn session(addr: std::net::SocketAddr, delete: impl Fn(usize) -> bool) -> Option<Vec<usize>> {
    let mut c = Client::connect(addr);
    c.cmd("USER demo");
    let r = c.cmd("PASS demo");
    if !r.starts_with("+OK") {
        assert!(r.contains("SYS/TEMP"), "{r}");
        return None;
    }
    let stat = c.cmd("STAT");
    let n: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut deleted = Vec::new();
    for i in 1..=n {
        let (status, body) = c.multi(&format!("RETR {i}"));
        assert_eq!(status, format!("+OK {} octets", body.len()));
        let id = test_id(&body);
        assert!(body == as_sent(&load_message(id)), "message {id} corrupted");
        if delete(id) {
            assert!(c.cmd(&format!("DELE {i}")).starts_with("+OK"));
            deleted.push(id);
        }
    }
    let quit = c.cmd("QUIT");
    assert_eq!(
        quit,
        format!(
            "+OK Poppet signing off ({} messages deleted)",
            deleted.len()
        )
    );
    Some(deleted)
}

/// Delivery of `total` messages by `spawn_writer` while sessions loop; then the accounting.
fn delivery_under_load(
    settings: &'static str,
    total: usize,
    spawn_writer: impl Fn(&Path, &[PathBuf]) -> Child,
) {
    let fixture = Mbox { settings };
    let s = conformance::start(&fixture, &[]);
    let mbox = s.mail.join("demo");
    let files = mbox_spool(&s.dir.path().join("spool"), 0..total);
    let mut child = spawn_writer(&mbox, &files);
    // Leave every third message on the server, delete the rest.
    let delete = |id: usize| id % 3 != 0;
    let mut deleted: BTreeMap<usize, usize> = BTreeMap::new();
    let (mut sessions, mut with_mail) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let done = child.try_wait().unwrap().is_some();
        if let Some(ids) = session(s.server.addr, delete) {
            sessions += 1;
            with_mail += usize::from(!ids.is_empty());
            for id in ids {
                *deleted.entry(id).or_default() += 1;
            }
        }
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the writer did not finish in time"
        );
    }
    assert!(child.wait().unwrap().success(), "the writer failed");
    // One more session after the last delivery, then the file itself.
    if let Some(ids) = session(s.server.addr, delete) {
        for id in ids {
            *deleted.entry(id).or_default() += 1;
        }
    }
    let left: Vec<usize> = mboxrd::read(&mbox).iter().map(|m| test_id(m)).collect();
    for m in mboxrd::read(&mbox) {
        assert!(
            m == load_message(test_id(&m)),
            "a stored message is corrupted"
        );
    }
    let left_set: BTreeSet<usize> = left.iter().copied().collect();
    assert_eq!(
        left.len(),
        left_set.len(),
        "duplicated in the file: {left:?}"
    );
    assert!(
        deleted.values().all(|&n| n == 1),
        "deleted twice: {deleted:?}"
    );
    for id in 0..total {
        let gone = deleted.contains_key(&id);
        let kept = left_set.contains(&id);
        assert!(
            gone != kept,
            "message {id}: deleted {gone}, still in the file {kept}"
        );
        assert_eq!(gone, delete(id), "message {id}");
    }
    eprintln!(
        "{total} messages delivered during {sessions} sessions ({with_mail} with mail); {} deleted, {} kept",
        deleted.len(),
        left.len()
    );
    assert!(
        with_mail >= 2,
        "sessions and delivery overlapped too little to mean anything"
    );
    assert!(!Path::new(&format!("{}.lock", mbox.display())).exists());
}

#[test]
fn delivery_while_sessions_dele_and_quit_loses_and_duplicates_nothing() {
    if !have_tool("python3") {
        poppet_testkit::skip("python3 (the MDA-like writer) is not installed");
        return;
    }
    delivery_under_load("", 300, |m, f| mbox_writer(m, f, "0.01"));
}

#[test]
fn the_same_with_the_delivery_locks_held_for_the_whole_session() {
    if !have_tool("python3") {
        poppet_testkit::skip("python3 (the MDA-like writer) is not installed");
        return;
    }
    delivery_under_load("lock_session: true", 150, |m, f| mbox_writer(m, f, "0.01"));
}

#[test]
fn delivery_by_procmail_while_sessions_dele_and_quit() {
    if !have_tool("procmail") {
        poppet_testkit::skip("procmail is not installed (Debian package procmail)");
        return;
    }
    // procmail as a general mail filter with no recipes delivers to $DEFAULT, taking
    // `$DEFAULT.lock` and then the kernel lock, like a real delivery. It adds its own From_ line
    // (our files carry one already, which it keeps).
    delivery_under_load("", 100, |mbox, files| {
        let script = format!(
            // Paced like real mail (a delivery every 50 ms), so deliveries spread over several
            // sessions instead of all landing before the first one.
            "for f in \"$@\"; do procmail -m DEFAULT={} LOCKSLEEP=1 /dev/null < \"$f\" || exit 1; sleep 0.05; done",
            mbox.display()
        );
        Command::new("sh")
            .args(["-c", &script, "sh"])
            .args(files)
            .stdin(Stdio::null())
            .spawn()
            .unwrap()
    });
}

/// A mailbox big enough that a rewrite takes a while: 300 messages of about 120 KB.
fn big_message(id: usize) -> Vec<u8> {
    let mut m =
        format!("From: big@example.org\nSubject: big {id}\nX-Test-Id: {id}\n\n").into_bytes();
    for line in 0..1500 {
        m.extend_from_slice(format!("{id:04} {line:04} {}\n", "w".repeat(70)).as_bytes());
    }
    m
}

#[test]
fn kill_9_during_a_commit_leaves_a_valid_mbox_with_nothing_lost() {
    if !have_tool("python3") {
        poppet_testkit::skip("python3 (the MDA-like writer) is not installed");
        return;
    }
    let fixture = Mbox { settings: "" };
    let n = 300;
    let messages: Vec<Vec<u8>> = (0..n).map(big_message).collect();
    let late = big_message(n);
    let mut landed_in_rewrite = 0;
    // The rewrite starts with a debug log line; the kill follows it after a varying delay, so some
    // attempts land while the copy is written and some around the rename.
    let delays_ms = [0u64, 0, 1, 2, 5, 10, 20, 40, 3000];
    for (attempt, delay) in delays_ms.iter().enumerate() {
        let s = conformance::start(&fixture, &messages);
        let mbox = s.mail.join("demo");
        let mut c = s.login();
        fixture.deliver(&s.mail, "demo", &late);
        let mut batch = String::new();
        for i in 1..=n / 2 {
            batch.push_str(&format!("DELE {}\r\n", 2 * i));
        }
        batch.push_str("QUIT\r\n");
        c.send(batch.as_bytes());
        assert!(
            s.server
                .wait_for_log("rewriting without", Duration::from_secs(60)),
            "{}",
            s.server.log()
        );
        std::thread::sleep(Duration::from_millis(*delay));
        let conformance::Setup { server, mail, dir } = s;
        drop(server); // SIGKILL, like kill -9.
        let leftovers = std::fs::read_dir(&mail)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".demo.poppet-tmp.")
            })
            .count();
        landed_in_rewrite += usize::from(leftovers > 0);
        let ids: Vec<usize> = mboxrd::read(&mbox).iter().map(|m| test_id(m)).collect();
        let old: Vec<usize> = (0..=n).collect();
        let new: Vec<usize> = (0..=n).filter(|id| id % 2 == 0).collect();
        assert!(
            ids == old || ids == new,
            "attempt {attempt}: neither the old nor the new mailbox: {} messages",
            ids.len()
        );
        for m in mboxrd::read(&mbox) {
            let id = test_id(&m);
            let want = if id == n { &late } else { &messages[id] };
            assert!(m == *want, "attempt {attempt}: message {id} corrupted");
        }
        eprintln!(
            "attempt {attempt} (kill {delay} ms after the rewrite began): {} messages, {} leftover",
            ids.len(),
            leftovers
        );
        // A restarted server takes over the dead one's dotlock, removes the leftover and serves
        // exactly what the file holds.
        let config = conformance::config(&fixture, dir.path(), &mail);
        let server = TestServer::start(dir.path(), &config);
        let mut c = Client::connect(server.addr);
        c.login("demo", "demo");
        assert!(c.cmd("STAT").starts_with(&format!("+OK {} ", ids.len())));
        assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
        assert!(!mail.join(".demo.poppet-tmp.").exists());
        let still: usize = std::fs::read_dir(&mail)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".demo.poppet-tmp.")
            })
            .count();
        assert_eq!(still, 0, "the leftover was removed");
    }
    eprintln!(
        "{landed_in_rewrite} of {} kills landed during the rewrite",
        delays_ms.len()
    );
    assert!(
        landed_in_rewrite > 0,
        "no kill landed inside the commit window; the test did not test it"
    );
}
