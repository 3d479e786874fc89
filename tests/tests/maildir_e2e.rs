//! End to end through real dlopen of the real plugins (auth-passwd, store-maildir), over real sockets.

#![allow(clippy::unwrap_used)]

mod common;

use common::{demo, demo_with, expected_messages};
use poppet_testkit::{Client, maildir_messages};
use std::time::Duration;

#[test]
fn list_sizes_equal_retr_octets_and_bodies_match_the_files() {
    let d = demo();
    let expected = expected_messages();
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    let total: usize = expected.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(c.cmd("STAT"), format!("+OK {} {total}", expected.len()));
    let (_, list) = c.multi("LIST");
    let (_, uidl) = c.multi("UIDL");
    let list = String::from_utf8(list).unwrap();
    let uidl = String::from_utf8(uidl).unwrap();
    for (i, (base, bytes)) in expected.iter().enumerate() {
        let n = i + 1;
        assert!(
            list.contains(&format!("{n} {}\r\n", bytes.len())),
            "LIST {list}"
        );
        assert!(uidl.contains(&format!("{n} {base}\r\n")), "UIDL {uidl}");
        assert_eq!(
            c.cmd(&format!("LIST {n}")),
            format!("+OK {n} {}", bytes.len())
        );
        let (status, body) = c.multi(&format!("RETR {n}"));
        assert_eq!(status, format!("+OK {} octets", bytes.len()));
        assert_eq!(
            body.len(),
            bytes.len(),
            "message {n}: RETR octets equal LIST size"
        );
        assert!(body == *bytes, "message {n} differs from its file");
    }
    // TOP: headers, the blank line, then k body lines.
    let (_, top0) = c.multi("TOP 1 0");
    let header_end = expected[0]
        .1
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap()
        + 4;
    assert_eq!(top0, &expected[0].1[..header_end]);
    let (_, top2) = c.multi("TOP 2 4");
    let text = String::from_utf8(top2).unwrap();
    assert!(
        text.ends_with("\r\n.\r\n..\r\n"),
        "TOP 2 4 keeps dot lines: {text:?}"
    );
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
}

#[test]
fn dele_and_quit_removes_exactly_those_files() {
    let d = demo();
    let before = maildir_messages(&d.maildir);
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 3").starts_with("+OK"));
    assert!(
        c.cmd("RETR 1").starts_with("-ERR"),
        "deleted messages are refused"
    );
    assert!(c.cmd("DELE 3").starts_with("-ERR"));
    assert!(c.cmd("LIST 3").starts_with("-ERR"));
    let stat = c.cmd("STAT");
    assert!(stat.starts_with("+OK 3 "), "{stat}");
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (2 messages deleted)");
    let after: Vec<String> = maildir_messages(&d.maildir)
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let expected: Vec<String> = before
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 0 && *i != 2)
        .map(|(_, (b, _))| b.clone())
        .collect();
    assert_eq!(after, expected);
}

#[test]
fn dele_then_dropped_connection_or_rset_removes_nothing() {
    let d = demo();
    let before: Vec<String> = maildir_messages(&d.maildir)
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    c.drop_connection();
    assert!(
        d.server
            .wait_for_log("reason=disconnected", Duration::from_secs(10)),
        "{}",
        d.server.log()
    );

    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("STAT").starts_with(&format!("+OK {} ", before.len())));
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    let r = c.cmd("RSET");
    assert!(r.starts_with("+OK"), "{r}");
    assert!(c.cmd("STAT").starts_with(&format!("+OK {} ", before.len())));
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
    let after: Vec<String> = maildir_messages(&d.maildir)
        .into_iter()
        .map(|(b, _)| b)
        .collect();
    assert_eq!(after, before);
}

#[test]
fn a_second_session_on_the_same_mailbox_gets_in_use_and_the_first_is_unaffected() {
    let d = demo();
    let mut first = Client::connect(d.server.addr);
    first.login("demo", "demo");
    let mut second = Client::connect(d.server.addr);
    second.cmd("USER demo");
    let r = second.cmd("PASS demo");
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
    assert!(first.cmd("STAT").starts_with("+OK 5 "));
    assert!(first.cmd("DELE 5").starts_with("+OK"));
    assert_eq!(
        first.cmd("QUIT"),
        "+OK Poppet signing off (1 messages deleted)"
    );
    // Released at QUIT: the second client can log in now.
    let r = second.cmd("PASS demo");
    assert!(
        r.starts_with("-ERR"),
        "PASS without USER after a failure: {r}"
    );
    second.login("demo", "demo");
    assert!(second.cmd("STAT").starts_with("+OK 4 "));
}

#[test]
fn wrong_password_and_unknown_user_answer_alike() {
    let d = demo();
    let mut c = Client::connect(d.server.addr);
    c.cmd("USER demo");
    let wrong = c.cmd("PASS nope");
    c.cmd("USER nobody");
    let unknown = c.cmd("PASS nope");
    assert_eq!(wrong, unknown);
    assert!(wrong.starts_with("-ERR [AUTH]"), "{wrong}");
    // The log is read from the server's stderr by another thread: wait for the lines.
    let t = Duration::from_secs(10);
    assert!(
        d.server
            .wait_for_log("authentication failed: user=\"demo\" rip=127.0.0.1", t),
        "{}",
        d.server.log()
    );
    assert!(
        d.server
            .wait_for_log("authentication failed: user=\"nobody\" rip=127.0.0.1", t),
        "{}",
        d.server.log()
    );
    assert!(
        !d.server.log().contains("nope"),
        "passwords never reach the log"
    );
}

#[test]
fn uidl_is_stable_across_sessions_and_the_move_from_new_to_cur() {
    let d = demo();
    let in_new = std::fs::read_dir(d.maildir.join("new")).unwrap().count();
    assert!(in_new >= 2, "the demo has mail in new/");
    let uidls = |c: &mut Client| String::from_utf8(c.multi("UIDL").1).unwrap();
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    let first = uidls(&mut c);
    c.cmd("QUIT");
    assert_eq!(
        std::fs::read_dir(d.maildir.join("new")).unwrap().count(),
        0,
        "new/ mail moved to cur/"
    );
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert_eq!(uidls(&mut c), first);
    for (base, _) in expected_messages() {
        assert!(
            first.contains(&base),
            "UIDL is the unique part of the file name: {base}"
        );
    }
}

#[test]
fn sizes_cache_is_used_on_the_second_open_and_rebuilt_when_corrupt() {
    let d = demo();
    let login_quit = || {
        let mut c = Client::connect(d.server.addr);
        c.login("demo", "demo");
        let stat = c.cmd("STAT");
        c.cmd("QUIT");
        stat
    };
    let first = login_quit();
    assert!(
        d.server
            .wait_for_log("sizes from cache", Duration::from_secs(10)),
        "{}",
        d.server.log()
    );
    let first_line = d
        .server
        .log()
        .lines()
        .find(|l| l.contains("sizes from cache"))
        .unwrap()
        .to_owned();
    assert!(
        !first_line.contains(" 0 computed"),
        "the first open computes the sizes: {first_line}"
    );
    assert!(d.maildir.join("poppet-sizes").exists());
    let second = login_quit();
    assert_eq!(first, second);
    // The second open read no message body: every size came from the cache or the file name.
    assert!(
        d.server
            .wait_for_log_count("sizes from cache", 2, Duration::from_secs(10)),
        "{}",
        d.server.log()
    );
    let log = d.server.log();
    let second_line = log
        .lines()
        .filter(|l| l.contains("sizes from cache"))
        .nth(1)
        .unwrap()
        .to_owned();
    assert!(second_line.contains(" 0 computed"), "{second_line}");

    let cache = d.maildir.join("poppet-sizes");
    let good = std::fs::read_to_string(&cache).unwrap();
    std::fs::write(&cache, "poppet-sizes 1\ngarbage\n").unwrap();
    let third = login_quit();
    assert_eq!(third, first, "a corrupt cache is rebuilt, not trusted");
    assert!(
        d.server
            .wait_for_log("ignoring the size cache", Duration::from_secs(10)),
        "{}",
        d.server.log()
    );
    assert!(
        d.server
            .wait_for_log_count("sizes from cache", 3, Duration::from_secs(10))
    );
    assert_eq!(
        std::fs::read_to_string(&cache).unwrap(),
        good,
        "the rebuilt cache is written back"
    );
}

#[test]
fn mail_delivered_during_a_session_is_not_lost() {
    let d = demo();
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    // Deliver like an MDA: write into tmp/, then rename into new/.
    let tmp = d.maildir.join("tmp/1900000000.M1P1.test");
    std::fs::write(&tmp, "Subject: late\n\narrived during the session\n").unwrap();
    std::fs::rename(&tmp, d.maildir.join("new/1900000000.M1P1.test")).unwrap();
    assert!(
        c.cmd("STAT").starts_with("+OK 5 "),
        "the snapshot does not change"
    );
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (1 messages deleted)");
    assert!(
        d.maildir.join("new/1900000000.M1P1.test").exists(),
        "new mail untouched by the commit"
    );
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("STAT").starts_with("+OK 5 "));
    let (_, uidl) = c.multi("UIDL");
    assert!(
        String::from_utf8(uidl)
            .unwrap()
            .contains("5 1900000000.M1P1.test\r\n")
    );
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let d = demo();
    let mut c = Client::connect(d.server.addr);
    c.send(b"CAPA\r\nUSER demo\r\nPASS demo\r\nSTAT\r\nLIST 2\r\nNOOP\r\nTOP 5 0\r\nQUIT\r\n");
    let capa = c.line();
    assert!(capa.starts_with("+OK"));
    let capa_body = String::from_utf8(c.body()).unwrap();
    assert!(capa_body.contains("PIPELINING\r\n"), "{capa_body}");
    assert!(c.line().starts_with("+OK"));
    assert!(c.line().starts_with("+OK Logged in"));
    assert!(c.line().starts_with("+OK 5 "));
    assert!(c.line().starts_with("+OK 2 "));
    assert_eq!(c.line(), "+OK");
    assert!(c.line().starts_with("+OK"));
    assert!(
        String::from_utf8(c.body())
            .unwrap()
            .starts_with("From: Dave")
    );
    assert!(c.line().starts_with("+OK Poppet signing off"));
    assert_eq!(c.try_line(), None);
}

/// Pipelined RETRs of many messages go through the store's read-ahead: a job on the pool reads the
/// next small messages while earlier ones are sent, stops at large messages and when its queue is
/// full, and is dropped when the client jumps back. Every body must still be its file, byte for
/// byte.
#[test]
fn pipelined_retrs_of_many_messages_are_byte_exact_through_the_read_ahead() {
    let d = demo();
    let cur = d.maildir.join("cur");
    for i in 0..200usize {
        let mut text = format!("Subject: message {i}\n\n");
        // Mostly small, every 41st (about 315 KiB) larger than the read-ahead's whole queue (256
        // KiB); dot lines throughout.
        let lines = if i % 41 == 5 { 7000 } else { 10 + i % 90 };
        for l in 0..lines {
            let dot = if l % 9 == 0 { "." } else { "" };
            text.push_str(&format!(
                "{dot}line {l} of message {i}, some text to fill it\n"
            ));
        }
        let name = format!("2000000000.M{i:04}P1.test:2,S");
        std::fs::write(cur.join(name), text).unwrap();
    }
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    let (_, listing) = c.multi("UIDL");
    let files: std::collections::HashMap<String, std::path::PathBuf> =
        maildir_messages(&d.maildir).into_iter().collect();
    let expected: Vec<Vec<u8>> = String::from_utf8(listing)
        .unwrap()
        .lines()
        .map(|line| {
            let uidl = line.split(' ').nth(1).unwrap();
            poppet_testkit::crlf(&std::fs::read(&files[uidl]).unwrap())
        })
        .collect();
    assert_eq!(expected.len(), 205);
    // In order, a jump back in the middle, then in order again to the end.
    let order: Vec<usize> = (1..=100).chain([40, 41]).chain(101..=205).collect();
    let batch: String = order.iter().map(|n| format!("RETR {n}\r\n")).collect();
    c.send(batch.as_bytes());
    for n in order {
        let status = c.line();
        assert!(status.starts_with("+OK"), "RETR {n}: {status}");
        assert!(c.body() == expected[n - 1], "RETR {n}: body differs");
    }
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
}

#[test]
fn an_overlong_line_gets_an_error_and_the_session_goes_on() {
    let d = demo();
    let mut c = Client::connect(d.server.addr);
    let long = format!("USER {}\r\n", "x".repeat(300));
    c.send(long.as_bytes());
    let r = c.line();
    assert!(r.starts_with("-ERR"), "{r}");
    assert!(r.to_ascii_lowercase().contains("too long"), "{r}");
    c.login("demo", "demo");
}

#[test]
fn apop_works_for_a_plaintext_equivalent_secret() {
    let d = demo_with("apop: true,");
    let mut c = Client::connect(d.server.addr);
    let ts = c
        .greeting
        .split_whitespace()
        .find(|w| w.starts_with('<'))
        .unwrap()
        .to_owned();
    // MD5 via Python, an independent implementation.
    let out = std::process::Command::new("python3")
        .args(["-c", "import hashlib,sys; print(hashlib.md5((sys.argv[1]+sys.argv[2]).encode()).hexdigest())", &ts, "plain-secret"])
        .output();
    let Ok(out) = out else {
        poppet_testkit::skip("python3 not found");
        return;
    };
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = c.cmd(&format!("APOP plain {digest}"));
    assert!(r.starts_with("+OK"), "{r}");
    // The demo user has only a one-way hash: APOP cannot work for it, and fails like a wrong digest.
    let mut c = Client::connect(d.server.addr);
    let r = c.cmd("APOP demo 0123456789abcdef0123456789abcdef");
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
}

/// Delivers `text` with Courier's `deliverquota`; its exit status (77: over quota, a bounce).
fn deliverquota(maildir: &std::path::Path, text: &str) -> i32 {
    use std::io::Write;
    let mut child = std::process::Command::new("deliverquota")
        .arg(maildir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait().unwrap().code().unwrap_or(-1)
}

/// Maildir++ quota with a real delivery agent: a maildir made by Courier's `maildirmake` with a
/// quota of three messages, filled by `deliverquota`, which then refuses a fourth. Once a POP3
/// client has deleted one message, `deliverquota` takes mail again: the removal is in
/// `maildirsize`, as a line of the message's `,S=` size. A session that ends without QUIT removes
/// nothing and records nothing.
#[test]
fn deletions_are_recorded_in_maildirsize_so_a_quota_delivery_agent_takes_mail_again() {
    for tool in ["maildirmake", "deliverquota"] {
        if !poppet_testkit::have_tool(tool) {
            poppet_testkit::skip(&format!(
                "{tool} is not installed (Debian package maildrop)"
            ));
            return;
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail/demo/Maildir");
    std::fs::create_dir_all(maildir.parent().unwrap()).unwrap();
    let make = |args: &[&str]| {
        let status = std::process::Command::new("maildirmake")
            .args(args)
            .arg(&maildir)
            .stdin(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "maildirmake {args:?}");
    };
    make(&[]);
    make(&["-q", "3C"]);
    for i in 1..=3 {
        let text = format!("From: a@example.org\nSubject: {i}\n\nmessage {i}\n");
        assert_eq!(deliverquota(&maildir, &text), 0, "delivery {i}");
    }
    let late = "From: a@example.org\nSubject: late\n\nthe fourth\n";
    assert_eq!(deliverquota(&maildir, late), 77, "the quota does not bite");

    let server = poppet_testkit::TestServer::start(dir.path(), &common::config(dir.path(), ""));
    // DELE without QUIT: nothing removed, nothing recorded.
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    c.drop_connection();
    assert!(server.wait_for_log("reason=disconnected", Duration::from_secs(10)));
    let quota_file = maildir.join("maildirsize");
    let before = std::fs::read_to_string(&quota_file).unwrap();
    assert_eq!(maildir_messages(&maildir).len(), 3);
    assert_eq!(deliverquota(&maildir, late), 77);

    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    let first = c.cmd("UIDL 1");
    let base = first.rsplit(' ').next().unwrap().to_owned();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let size: u64 = base
        .split(',')
        .find_map(|f| f.strip_prefix("S="))
        .expect("deliverquota names carry S=")
        .parse()
        .unwrap();
    let after = std::fs::read_to_string(&quota_file).unwrap();
    assert_eq!(after, format!("{before}-{size} -1\n"));
    assert_eq!(maildir_messages(&maildir).len(), 2);
    assert_eq!(
        deliverquota(&maildir, late),
        0,
        "still over quota:\n{after}"
    );
}

/// A message file with two names in `cur/` (what a reader killed between the link and the unlink
/// of a flag rename leaves) is one message: listed once under its own UIDL, the extra name removed,
/// and a DELE + QUIT deletes it for good. It used to be served twice (the second under a hashed
/// UIDL), and deleting it left the other name, so it came back: the kill -9 fault test caught that.
#[test]
fn a_message_file_with_two_names_is_one_message_and_is_deleted_for_good() {
    let d = demo();
    let cur = d.maildir.join("cur");
    let expected = expected_messages();
    let (base, _) = &expected[1];
    let name = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with(base.as_str()))
        .expect("message 2 is in cur/");
    let flagged = format!("{base}:2,S");
    assert_ne!(name, flagged, "pick a message not flagged seen yet");
    std::fs::hard_link(cur.join(&name), cur.join(&flagged)).unwrap();

    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    let total: usize = expected.iter().map(|(_, b)| b.len()).sum();
    assert_eq!(c.cmd("STAT"), format!("+OK {} {total}", expected.len()));
    let (_, uidl) = c.multi("UIDL");
    let uidl = String::from_utf8(uidl).unwrap();
    assert!(uidl.contains(&format!("2 {base}\r\n")), "{uidl}");
    // The rename is completed: the name it was renamed to stays.
    assert!(!cur.join(&name).exists() && cur.join(&flagged).exists());
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (1 messages deleted)");
    common::assert_demo_left(&d.maildir, &[1]);

    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert!(
        c.cmd("STAT")
            .starts_with(&format!("+OK {} ", expected.len() - 1))
    );
    assert!(
        d.server.log().contains("a second name of"),
        "{}",
        d.server.log()
    );
}
