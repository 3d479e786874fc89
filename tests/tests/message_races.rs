//! Mail that another process changes under an open session: a message file deleted before its
//! RETR or while it streams, a message file cut short while it streams, an mbox rewritten by
//! another program mid-session; and a mailbox the server may not read (it runs as `nobody`). Each
//! time the client gets `-ERR` with a reason or the connection is closed rather than a short
//! message passed off as whole, the session or the server goes on, other users are unaffected and
//! nothing is deleted that the client did not delete.

#![allow(clippy::unwrap_used)]

mod common;

use common::mda::load_message;
use common::stores::Store;
use poppet_testkit::conformance::{self, StoreFixture, as_sent, mboxrd};
use poppet_testkit::{Client, TestServer, copy_dir, demo_maildir, maildir_messages, skip};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The file of demo message `n` (1-based, in message-number order) in the maildir now.
fn message_file(maildir: &Path, n: usize) -> PathBuf {
    let uidl = &common::expected_messages()[n - 1].0;
    maildir_messages(maildir)
        .into_iter()
        .find(|(base, _)| base == uidl)
        .unwrap()
        .1
}

#[test]
fn a_message_deleted_before_its_retr_gets_err_and_the_session_goes_on() {
    let d = common::demo();
    let want = common::expected_messages();
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    std::fs::remove_file(message_file(&d.maildir, 2)).unwrap();
    let r = c.cmd("RETR 2");
    assert!(r.starts_with("-ERR ") && r.len() > 10, "{r}");
    let r = c.cmd("TOP 2 0");
    assert!(r.starts_with("-ERR "), "{r}");
    let (_, body) = c.multi("RETR 3");
    assert!(body == want[2].1, "message 3 differs");
    // Deleting the vanished message is no error: it is gone either way.
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (1 messages deleted)");
    common::assert_demo_left(&d.maildir, &[1]);
}

/// A demo server whose message 1 is replaced by a message of 32 MiB: more than the socket buffers
/// hold, so a RETR is still streaming while the test changes the file.
fn big_first_message() -> (common::Demo, Vec<u8>) {
    let d = common::demo();
    let mut big = b"Subject: big\n\n".to_vec();
    let line = format!("{}\n", "b".repeat(1023));
    while big.len() < 32 << 20 {
        big.extend_from_slice(line.as_bytes());
    }
    std::fs::write(message_file(&d.maildir, 1), &big).unwrap();
    (d, big)
}

#[test]
fn a_message_deleted_while_it_streams_is_still_sent_whole() {
    let (d, big) = big_first_message();
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    let status = c.cmd("RETR 1");
    assert!(status.starts_with("+OK"), "{status}");
    // The open file stays readable after the unlink (POSIX), so the client gets it all.
    std::fs::remove_file(message_file(&d.maildir, 1)).unwrap();
    let body = c.body();
    assert!(body == as_sent(&big), "the message was cut");
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
}

#[test]
fn a_message_cut_short_while_it_streams_closes_the_connection_rather_than_end_it_short() {
    let (d, big) = big_first_message();
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("RETR 1").starts_with("+OK"));
    let path = message_file(&d.maildir, 1);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    // Without the terminating "." the client knows the message is incomplete.
    assert_eq!(
        c.try_body().map(|b| b.len()),
        None,
        "a cut message ended as if complete"
    );
    // The server goes on, and the next session serves the file as it now is, at its true size.
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    let (status, body) = c.multi("RETR 1");
    assert_eq!(status, format!("+OK {} octets", body.len()));
    assert!(body == as_sent(&big[..1 << 20]), "the cut message differs");
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
}

#[test]
fn an_mbox_rewritten_by_another_program_mid_session_is_not_committed_over() {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    let messages: Vec<Vec<u8>> = (0..4).map(load_message).collect();
    Store::Mbox.create_mailbox(&mail, "demo", &messages);
    let server = TestServer::start(
        dir.path(),
        &conformance::config(&Store::Mbox, dir.path(), &mail),
    );
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    // Another program (a mail reader with the file open) deletes the last message in place.
    let others = mboxrd::file(&messages[..3]);
    std::fs::write(mail.join("demo"), &others).unwrap();
    // The snapshot's offsets no longer hold for any message: every RETR is refused (the store
    // logs why), and the session goes on.
    for n in [4, 1] {
        let r = c.cmd(&format!("RETR {n}"));
        assert!(r.starts_with("-ERR [SYS/TEMP] ") && r.len() > 20, "{r}");
    }
    assert!(c.cmd("NOOP").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    let r = c.cmd("QUIT");
    assert!(r.starts_with("-ERR [SYS/TEMP] "), "{r}");
    // What the other program wrote stands; the next session sees it.
    assert!(std::fs::read(mail.join("demo")).unwrap() == others);
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("STAT").starts_with("+OK 3 "));
    let (_, body) = c.multi("RETR 1");
    assert!(body == as_sent(&messages[0]), "message 1 differs");
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
    assert!(
        server.wait_for_log(
            "was rewritten by another program",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        server.log()
    );
}

#[test]
fn mailboxes_the_server_may_not_read_get_err_and_other_users_go_on() {
    if !poppet_testkit::is_root() {
        skip("not root: the test runs the server as `nobody` to make permissions bite");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("mail/demo/Maildir");
    let plain = dir.path().join("mail/plain/Maildir");
    copy_dir(&demo_maildir(), &demo);
    copy_dir(&demo_maildir(), &plain);
    let config = common::config(dir.path(), "user: \"nobody\",");
    let chown = Command::new("chown")
        .args(["-R", "nobody:"])
        .arg(dir.path().join("mail/demo"))
        .status();
    assert!(chown.is_ok_and(|s| s.success()));
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, PermissionsExt::from_mode(m));
    mode(dir.path(), 0o755).unwrap();
    mode(&dir.path().join("users"), 0o644).unwrap();
    // plain's maildir belongs to root alone; one of demo's messages too (its size is in its name,
    // so the snapshot does not need to read it).
    mode(&dir.path().join("mail/plain"), 0o700).unwrap();
    let unreadable = message_file(&demo, 5);
    assert!(unreadable.to_string_lossy().contains("W="));
    Command::new("chown")
        .arg("root:")
        .arg(&unreadable)
        .status()
        .unwrap();
    mode(&unreadable, 0o600).unwrap();
    let server = TestServer::start(dir.path(), &config);
    let want = common::expected_messages();

    let mut c = Client::connect(server.addr);
    assert!(c.cmd("USER plain").starts_with("+OK"));
    let r = c.cmd("PASS plain-secret");
    assert!(r.starts_with("-ERR [SYS/") && r.len() > 16, "{r}");
    assert!(c.cmd("QUIT").starts_with("+OK"));

    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    let r = c.cmd("RETR 5");
    assert!(r.starts_with("-ERR [SYS/TEMP] ") && r.len() > 20, "{r}");
    for (i, (_, bytes)) in want.iter().enumerate().take(4) {
        let (_, body) = c.multi(&format!("RETR {}", i + 1));
        assert!(body == *bytes, "message {} differs", i + 1);
    }
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (1 messages deleted)");
    assert!(unreadable.exists(), "the unreadable message is kept");
    assert_eq!(maildir_messages(&demo).len(), want.len() - 1);

    // Permissions fixed: plain gets in, on the same server.
    mode(&dir.path().join("mail/plain"), 0o755).unwrap();
    Command::new("chown")
        .args(["-R", "nobody:"])
        .arg(dir.path().join("mail/plain"))
        .status()
        .unwrap();
    let mut c = Client::connect(server.addr);
    c.login("plain", "plain-secret");
    assert!(c.cmd("STAT").starts_with(&format!("+OK {} ", want.len())));
    assert!(c.cmd("QUIT").starts_with("+OK"));
}
