//! Unit tests across modules: parsing known inputs, and whole sessions against a temporary mbox.

use crate::parse::{Options, parse};
use crate::settings::{Settings, Variant};
use crate::transform::{Unquote, transform_all};
use crate::{Mbox, MboxDrop};
use futures_lite::future::block_on;
use futures_lite::io::AsyncReadExt;
use poppet_sdk::{ErrorCode, MailStore, Maildrop, OpenRequest};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

fn bodies(file: &[u8], variant: Variant, content_length: bool) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m");
    fs::write(&path, file).expect("write");
    let f = fs::File::open(&path).expect("open");
    let options = Options {
        unquote: Unquote::from(variant),
        content_length,
    };
    let parsed = parse(&f, file.len() as u64, options).expect("parse");
    parsed
        .messages
        .iter()
        .map(|m| {
            let raw = &file[m.content_start as usize..m.content_end as usize];
            let body = transform_all(raw, Unquote::from(variant));
            assert_eq!(body.len() as u64, m.size, "size of {body:?}");
            body
        })
        .collect()
}

fn s(v: &[Vec<u8>]) -> Vec<String> {
    v.iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect()
}

#[test]
fn messages_are_split_at_from_lines_and_the_separator_is_dropped() {
    let file = b"From a@x Mon Jan  1 00:00:00 2024\nSubject: 1\n\nbody\n>From quoted\n\nFrom b@x Mon Jan  1 00:00:01 2024\nSubject: 2\n\n.dot\n\n\nFrom c@x Mon Jan  1 00:00:02 2024\nSubject: 3\n\nno final newline";
    let got = bodies(file, Variant::Mboxrd, true);
    assert_eq!(
        s(&got),
        [
            "Subject: 1\r\n\r\nbody\r\nFrom quoted\r\n",
            "Subject: 2\r\n\r\n.dot\r\n\r\n",
            "Subject: 3\r\n\r\nno final newline\r\n",
        ]
    );
}

#[test]
fn crlf_files_empty_files_and_leading_blank_lines() {
    let file = b"\r\nFrom a Mon Jan  1 00:00:00 2024\r\nA: b\r\n\r\nx\r\n\r\nFrom b Mon Jan  1 00:00:00 2024\r\nA: c\r\n\r\ny\r\n";
    assert_eq!(
        s(&bodies(file, Variant::Mboxrd, true)),
        ["A: b\r\n\r\nx\r\n", "A: c\r\n\r\ny\r\n"]
    );
    assert!(bodies(b"", Variant::Mboxrd, true).is_empty());
    assert!(bodies(b"\n\n", Variant::Mboxrd, true).is_empty());
}

#[test]
fn a_file_that_is_not_an_mbox_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m");
    fs::write(&path, b"Subject: no From_ line\n\nhello\n").expect("write");
    let f = fs::File::open(&path).expect("open");
    let options = Options {
        unquote: Unquote::Many,
        content_length: true,
    };
    assert!(parse(&f, 30, options).is_err());
}

#[test]
fn content_length_protects_unquoted_from_lines_when_consistent() {
    let body = "line\nFrom inside the body\nend\n";
    let file = format!(
        "From a Mon Jan  1 00:00:00 2024\nContent-Length: {}\n\n{body}\nFrom b Mon Jan  1 00:00:00 2024\nX: y\n\nz\n",
        body.len()
    );
    let got = bodies(file.as_bytes(), Variant::Mboxcl2, true);
    assert_eq!(
        s(&got),
        [
            format!(
                "Content-Length: {}\r\n\r\nline\r\nFrom inside the body\r\nend\r\n",
                body.len()
            ),
            "X: y\r\n\r\nz\r\n".to_owned(),
        ]
    );
    // Ignored when off, or when wrong: then the From line splits.
    assert_eq!(bodies(file.as_bytes(), Variant::Mboxcl2, false).len(), 3);
    let wrong = file.replace(&format!("Length: {}", body.len()), "Length: 7");
    assert_eq!(bodies(wrong.as_bytes(), Variant::Mboxcl2, true).len(), 3);
    // Past the end of the file.
    let past = file.replace(&format!("Length: {}", body.len()), "Length: 9999");
    assert_eq!(bodies(past.as_bytes(), Variant::Mboxcl2, true).len(), 3);
}

#[test]
fn variants_unquote_differently() {
    let file = b"From a Mon Jan  1 00:00:00 2024\nX: y\n\n>From one\n>>From two\n";
    assert_eq!(
        s(&bodies(file, Variant::Mboxrd, true)),
        ["X: y\r\n\r\nFrom one\r\n>From two\r\n"]
    );
    assert_eq!(
        s(&bodies(file, Variant::Mboxo, true)),
        ["X: y\r\n\r\nFrom one\r\n>>From two\r\n"]
    );
    assert_eq!(
        s(&bodies(file, Variant::Mboxcl2, true)),
        ["X: y\r\n\r\n>From one\r\n>>From two\r\n"]
    );
}

#[test]
fn uidls_use_x_uidl_then_digests_distinct_for_duplicates() {
    let msg = "From a Mon Jan  1 00:00:00 2024\nSubject: same\n\nsame\n\n";
    let file = format!(
        "{msg}{msg}From b Mon Jan  1 00:00:00 2024\nX-UIDL: abc123\n\nx\n\nFrom c Mon Jan  1 00:00:00 2024\nX-UIDL: abc123\n\ny\n"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("m");
    fs::write(&path, &file).expect("write");
    let f = fs::File::open(&path).expect("open");
    let options = Options {
        unquote: Unquote::Many,
        content_length: true,
    };
    let parsed = parse(&f, file.len() as u64, options).expect("parse");
    let uidls = crate::snapshot::assign_uidls(&parsed.messages);
    assert_eq!(uidls.len(), 4);
    assert_eq!(uidls[1], format!("{}-2", uidls[0]));
    assert_eq!(uidls[2], "abc123");
    assert_ne!(
        uidls[3], "abc123",
        "a repeated X-UIDL falls back to the digest"
    );
    for u in &uidls {
        assert!(crate::snapshot::valid_uidl(u), "{u}");
    }
    // A Status: header added by a mail reader, and CRLF line ends, keep the digest.
    let rewritten = msg
        .replace("Subject: same\n", "Subject: same\nStatus: RO\n")
        .replace('\n', "\r\n");
    fs::write(&path, &rewritten).expect("write");
    let f = fs::File::open(&path).expect("open");
    let again = parse(&f, rewritten.len() as u64, options).expect("parse");
    assert_eq!(crate::snapshot::assign_uidls(&again.messages)[0], uidls[0]);
}

// ---- whole sessions ----

fn store(dir: &Path, extra: &str) -> Mbox {
    let text = format!(
        "(path: \"{}/%u\", lock_timeout: \"2s\", {extra})",
        dir.display()
    );
    Mbox::new(Settings::parse(&text).expect("settings"))
}

fn open(store: &Mbox) -> Result<MboxDrop, poppet_sdk::PluginError> {
    block_on(store.open(OpenRequest {
        user: "u".into(),
        mailbox: None,
    }))
}

fn read(drop: &MboxDrop, i: usize) -> Vec<u8> {
    let mut body = block_on(drop.retrieve(i)).expect("retrieve");
    let mut out = Vec::new();
    block_on(body.read_to_end(&mut out)).expect("read");
    out
}

fn msg(n: usize) -> String {
    format!("From s{n}@x Mon Jan  1 00:00:0{n} 2024\nSubject: {n}\n\nbody {n}\nFrom quoted\n\n")
        .replace("\nFrom quoted", "\n>From quoted")
}

#[test]
fn a_missing_mbox_is_an_empty_maildrop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = store(dir.path(), "");
    let mut d = open(&s).expect("open");
    assert!(d.messages().is_empty());
    block_on(d.commit(vec![])).expect("commit");
}

#[test]
fn commit_keeps_mail_appended_during_the_session_owner_and_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    fs::write(&path, format!("{}{}{}", msg(1), msg(2), msg(3))).expect("write");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o620)).expect("chmod");
    let s = store(dir.path(), "");
    let mut d = open(&s).expect("open");
    let uidls: Vec<String> = d.messages().iter().map(|m| m.uidl.clone()).collect();
    assert_eq!(read(&d, 1), b"Subject: 2\r\n\r\nbody 2\r\nFrom quoted\r\n");
    // Second session: in use.
    let err = open(&s).expect_err("in use");
    assert_eq!(err.code, ErrorCode::LOCKED);
    // Delivery during the session: nothing holds the delivery locks.
    assert!(!dir.path().join("u.lock").exists());
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(msg(4).as_bytes()))
        .expect("append");
    let report = block_on(d.commit(vec![0, 2])).expect("commit");
    assert_eq!(report.deleted, 2);
    assert_eq!(
        fs::read_to_string(&path).expect("read"),
        format!("{}{}", msg(2), msg(4))
    );
    assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o620);
    assert!(!dir.path().join("u.lock").exists());
    drop(d);
    let d = open(&s).expect("reopen");
    let now: Vec<String> = d.messages().iter().map(|m| m.uidl.clone()).collect();
    assert_eq!(now[0], uidls[1], "UIDLs survive the rewrite");
    assert_eq!(now.len(), 2);
}

#[test]
fn dropping_without_commit_changes_nothing_and_leftovers_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let text = format!("{}{}", msg(1), msg(2));
    fs::write(&path, &text).expect("write");
    fs::write(dir.path().join(".u.poppet-tmp.1.2"), "half a copy").expect("write");
    let s = store(dir.path(), "");
    let d = open(&s).expect("open");
    assert!(!dir.path().join(".u.poppet-tmp.1.2").exists());
    drop(d);
    assert_eq!(fs::read_to_string(&path).expect("read"), text);
    open(&s).expect("the session lock was released");
}

#[test]
fn a_file_rewritten_in_place_during_the_session_is_not_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    fs::write(&path, format!("{}{}", msg(1), msg(2))).expect("write");
    let s = store(dir.path(), "");
    let mut d = open(&s).expect("open");
    let changed = format!("{}{}", msg(2), msg(1));
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(changed.as_bytes()))
        .expect("rewrite in place");
    assert!(block_on(d.commit(vec![0])).is_err());
    assert_eq!(fs::read_to_string(&path).expect("read"), changed);
}

#[test]
fn lock_session_holds_the_delivery_locks_until_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    fs::write(&path, msg(1)).expect("write");
    let s = store(dir.path(), "lock_session: true");
    let mut d = open(&s).expect("open");
    assert!(dir.path().join("u.lock").exists());
    let other = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open");
    assert!(!crate::lock::ofd_lock(&other, true).expect("try"));
    block_on(d.commit(vec![0])).expect("commit");
    assert!(!dir.path().join("u.lock").exists());
    assert_eq!(fs::read(&path).expect("read"), b"");
}

#[test]
fn deleting_one_of_identical_messages_keeps_the_others_uidls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("u");
    let same = msg(1);
    fs::write(&path, format!("{same}{same}{}{same}", msg(2))).expect("write");
    let s = store(dir.path(), "");
    let mut d = open(&s).expect("open");
    let before: Vec<String> = d.messages().iter().map(|m| m.uidl.clone()).collect();
    block_on(d.commit(vec![0])).expect("commit");
    drop(d);
    let d = open(&s).expect("reopen");
    let after: Vec<String> = d.messages().iter().map(|m| m.uidl.clone()).collect();
    assert_eq!(after, before[1..]);
    // The pinned copies read back as they were, plus their X-UIDL header.
    let body = read(&d, 0);
    assert!(body.starts_with(format!("X-UIDL: {}\r\nSubject: 1", before[1]).as_bytes()));
    assert_eq!(read(&d, 1), b"Subject: 2\r\n\r\nbody 2\r\nFrom quoted\r\n");
}
