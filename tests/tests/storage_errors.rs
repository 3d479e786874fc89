//! Storage that fails under the server: a full disk (a small tmpfs the test mounts) during a maildir
//! session and during an mbox rewrite, a read-only mailbox, wrong permissions (the server runs as
//! `nobody`), and message files deleted or cut short by another process before and during RETR.
//! Each time the client gets `-ERR` with a reason (or a commit fails as a whole), the session and
//! the server go on, other users are unaffected, and no message is lost or corrupted.
//!
//! Mounting needs root; without it (or when the mount fails) those tests print SKIP with the
//! reason.

#![allow(clippy::unwrap_used)]

mod common;

use common::mda::load_message;
use common::stores::Store;
use poppet_testkit::conformance::{self, StoreFixture, as_sent, mboxrd};
use poppet_testkit::{Client, TestServer, copy_dir, demo_maildir, skip};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted by the test, unmounted on drop (lazily, so a failing test cannot leave it).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs with `options` at `at` (created), or says why it cannot.
    fn mount(at: &Path, options: &str) -> Result<Tmpfs, String> {
        if !poppet_testkit::is_root() {
            return Err("not root: mounting a tmpfs needs CAP_SYS_ADMIN".into());
        }
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_owned()))
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }

    /// Fills the file system with `path` until a write fails with ENOSPC; returns the filler.
    fn fill(&self) -> PathBuf {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![b'x'; 4096];
        loop {
            match f.write_all(&chunk) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => return path,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs or records the skip; `None` means the caller returns.
fn tmpfs(at: &Path, options: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(at, options) {
        Ok(t) => Some(t),
        Err(why) => {
            skip(&why);
            None
        }
    }
}

/// A scratch directory and a maildir server for `demo` (and `plain`, on the ordinary disk), with
/// `demo`'s mail on a tmpfs mounted with `options`.
struct MaildirOnTmpfs {
    server: TestServer,
    tmpfs: Tmpfs,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

fn maildir_on_tmpfs(options: &str, extra: &str) -> Option<MaildirOnTmpfs> {
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = tmpfs(&dir.path().join("mail/demo"), options)?;
    let maildir = dir.path().join("mail/demo/Maildir");
    copy_dir(&demo_maildir(), &maildir);
    copy_dir(&demo_maildir(), &dir.path().join("mail/plain/Maildir"));
    let server = TestServer::start(dir.path(), &common::config(dir.path(), extra));
    Some(MaildirOnTmpfs {
        server,
        tmpfs,
        maildir,
        _dir: dir,
    })
}

/// A session for `user` that retrieves every message and checks them against the demo's.
fn retrieve_all(addr: std::net::SocketAddr, user: &str, password: &str) {
    let want = common::expected_messages();
    let mut c = Client::connect(addr);
    c.login(user, password);
    assert!(c.cmd("STAT").starts_with(&format!("+OK {} ", want.len())));
    for (i, (_, bytes)) in want.iter().enumerate() {
        let (_, body) = c.multi(&format!("RETR {}", i + 1));
        assert!(body == *bytes, "{user}: message {} differs", i + 1);
    }
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
}

/// Regression: the lock file was created, writing its text failed on the full disk, and the empty
/// file stayed (the release recognises its file by the text), keeping the user out for the whole
/// stale bound (30 minutes by default, which this server has) after the disk had room again.
#[test]
fn maildir_lock_half_written_on_a_full_disk_is_removed_not_left_to_lock_the_user_out() {
    let Some(m) = maildir_on_tmpfs("size=8m", "") else {
        return;
    };
    let filler = m.tmpfs.fill();
    let mut c = Client::connect(m.server.addr);
    assert!(c.cmd("USER demo").starts_with("+OK"));
    let r = c.cmd("PASS demo");
    assert!(r.starts_with("-ERR [SYS/TEMP] "), "{r}");
    assert!(r.len() > "-ERR [SYS/TEMP] ".len(), "no reason: {r}");
    assert!(
        !m.maildir.join("poppet-pop3.lock").exists(),
        "a half-written lock was left behind"
    );
    // The same connection, another user on another disk, and the server all go on.
    retrieve_all(m.server.addr, "plain", "plain-secret");
    assert!(
        c.cmd("QUIT").starts_with("+OK"),
        "the refused connection goes on"
    );
    std::fs::remove_file(filler).unwrap();
    retrieve_all(m.server.addr, "demo", "demo");
    common::assert_demo_left(&m.maildir, &[]);
}

#[test]
fn maildir_disk_full_during_a_session_deletes_exactly_what_was_asked() {
    let Some(m) = maildir_on_tmpfs("size=8m", "") else {
        return;
    };
    let want = common::expected_messages();
    let mut c = Client::connect(m.server.addr);
    c.login("demo", "demo");
    // The disk fills up after the login: reading, flagging read messages seen (renames) and
    // deleting need no space.
    let _filler = m.tmpfs.fill();
    for (i, (_, bytes)) in want.iter().enumerate() {
        let (_, body) = c.multi(&format!("RETR {}", i + 1));
        assert!(body == *bytes, "message {} differs", i + 1);
    }
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (1 messages deleted)");
    common::assert_demo_left(&m.maildir, &[1]);
}

#[test]
fn a_read_only_maildir_is_refused_with_a_reason_and_other_users_go_on() {
    let Some(m) = maildir_on_tmpfs("size=8m", "") else {
        return;
    };
    m.tmpfs.remount("ro");
    let mut c = Client::connect(m.server.addr);
    assert!(c.cmd("USER demo").starts_with("+OK"));
    let r = c.cmd("PASS demo");
    assert!(r.starts_with("-ERR [SYS/"), "{r}");
    retrieve_all(m.server.addr, "plain", "plain-secret");
    common::assert_demo_left(&m.maildir, &[]);
    m.tmpfs.remount("rw");
    retrieve_all(m.server.addr, "demo", "demo");
}

/// An mbox of `n` messages of about 60 KB each on a tmpfs of `size` at `dir/mail`.
fn mbox_on_tmpfs(dir: &Path, size: &str, n: usize) -> Option<(Tmpfs, Vec<Vec<u8>>)> {
    let tmpfs = tmpfs(&dir.join("mail"), &format!("size={size}"))?;
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|id| {
            let mut m = load_message(id);
            m.extend_from_slice("line of a big message\n".repeat(2800).as_bytes());
            m
        })
        .collect();
    Store::Mbox.create_mailbox(&dir.join("mail"), "demo", &messages);
    Some((tmpfs, messages))
}

fn temp_leftovers(mail: &Path) -> Vec<String> {
    std::fs::read_dir(mail)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("poppet-tmp") || n.ends_with(".lock"))
        .collect()
}

#[test]
fn mbox_disk_full_during_the_rewrite_fails_the_commit_and_keeps_every_message() {
    let dir = tempfile::tempdir().unwrap();
    // 10 messages of 60 KB: the rewrite needs room for the copy (about 540 KB) beside the mbox,
    // which the full disk does not have.
    let Some((tmpfs, messages)) = mbox_on_tmpfs(dir.path(), "2m", 10) else {
        return;
    };
    let mail = dir.path().join("mail");
    let before = std::fs::read(mail.join("demo")).unwrap();
    let server = TestServer::start(
        dir.path(),
        &conformance::config(&Store::Mbox, dir.path(), &mail),
    );
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    let filler = tmpfs.fill();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    let r = c.cmd("QUIT");
    assert!(
        r.starts_with("-ERR [SYS/TEMP] ") && r.len() > 20,
        "QUIT on a full disk: {r}"
    );
    assert!(c.try_full_line().is_none(), "the session ends after QUIT");
    assert!(
        std::fs::read(mail.join("demo")).unwrap() == before,
        "the mbox changed"
    );
    assert_eq!(temp_leftovers(&mail), Vec::<String>::new());
    // Nothing was deleted: the next session sees every message; with room again, the deletion
    // goes through.
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    for (i, m) in messages.iter().enumerate() {
        let (_, body) = c.multi(&format!("RETR {}", i + 1));
        assert!(body == as_sent(m), "message {} differs", i + 1);
    }
    std::fs::remove_file(filler).unwrap();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    let r = c.cmd("QUIT");
    assert_eq!(
        r,
        "+OK Poppet signing off (1 messages deleted)",
        "{}",
        server.log()
    );
    conformance::assert_same(&mboxrd::read(&mail.join("demo")), &messages[1..]);
    assert_eq!(temp_leftovers(&mail), Vec::<String>::new());
}

#[test]
fn a_read_only_mbox_is_refused_with_a_reason_and_served_again_once_writable() {
    let dir = tempfile::tempdir().unwrap();
    let Some((tmpfs, messages)) = mbox_on_tmpfs(dir.path(), "4m", 3) else {
        return;
    };
    let mail = dir.path().join("mail");
    let server = TestServer::start(
        dir.path(),
        &conformance::config(&Store::Mbox, dir.path(), &mail),
    );
    tmpfs.remount("ro");
    let mut c = Client::connect(server.addr);
    assert!(c.cmd("USER demo").starts_with("+OK"));
    let r = c.cmd("PASS demo");
    assert!(r.starts_with("-ERR [SYS/") && r.len() > 16, "{r}");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    tmpfs.remount("rw");
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    for (i, m) in messages.iter().enumerate() {
        let (_, body) = c.multi(&format!("RETR {}", i + 1));
        assert!(body == as_sent(m), "message {} differs", i + 1);
    }
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
    assert_eq!(temp_leftovers(&mail), Vec::<String>::new());
}
