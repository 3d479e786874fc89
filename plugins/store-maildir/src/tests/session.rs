//! Locking, commit, vanished files and mail arriving during a session.

use super::*;
use crate::LOCK_FILE;
use crate::lock::Holder;
use poppet_sdk::ErrorCode;

#[test]
fn a_second_session_is_locked_out_until_the_first_ends() {
    let f = Fixture::new();
    let first = f.open("ivy").expect("open");
    let lock = f.maildir("ivy").join(LOCK_FILE);
    let holder = Holder::parse(&std::fs::read_to_string(&lock).expect("lock")).expect("parse");
    assert_eq!(holder.pid, std::process::id());
    let err = f.open("ivy").expect_err("locked");
    assert_eq!(err.code, ErrorCode::LOCKED);
    drop(first);
    assert!(!lock.exists());
    let mut second = f.open("ivy").expect("open after release");
    block_on(second.commit(Vec::new())).expect("commit");
    assert!(!lock.exists(), "commit releases the lock");
}

#[test]
fn stale_locks_are_taken_over_and_live_ones_are_not() {
    let f = Fixture::new();
    f.open("jo").expect("create");
    let lock = f.maildir("jo").join(LOCK_FILE);
    let me = Holder::me();
    let dead_here = Holder {
        pid: 4_000_000_000,
        ..me.clone()
    };
    let old_elsewhere = Holder {
        host: "elsewhere.invalid".into(),
        time: 1000,
        ..me.clone()
    };
    let fresh_elsewhere = Holder {
        host: "elsewhere.invalid".into(),
        ..me.clone()
    };
    for (holder, age_file, taken) in [
        (dead_here, false, true),
        (old_elsewhere.clone(), true, true),
        // A recent mtime means its session is still touching it.
        (old_elsewhere, false, false),
        (fresh_elsewhere, false, false),
    ] {
        std::fs::write(&lock, holder.to_text()).expect("write lock");
        if age_file {
            set_mtime(&lock, 1000);
        }
        match f.open("jo") {
            Ok(_) => assert!(taken, "{holder:?} should be live"),
            Err(e) => {
                assert!(!taken, "{holder:?} should be stale: {e}");
                assert_eq!(e.code, ErrorCode::LOCKED);
            }
        }
        let _ = std::fs::remove_file(&lock);
    }
    // Nothing but the maildir's own entries is left behind.
    assert_eq!(names(&f.maildir("jo")), ["cur", "new", "tmp"]);
}

#[test]
fn commit_unlinks_exactly_the_deleted_and_flags_the_read() {
    let f = Fixture::new();
    for (i, name) in ["1.a", "2.b", "3.c", "4.d"].iter().enumerate() {
        f.deliver("kim", "new", name, b"x\n", i as u64 + 1);
    }
    let mut maildrop = f.open("kim").expect("open");
    assert_eq!(body(&maildrop, 1), b"x\r\n");
    let report = block_on(maildrop.commit(vec![0, 2])).expect("commit");
    assert_eq!((report.deleted, report.failed), (2, 0));
    assert_eq!(names(&f.maildir("kim").join("cur")), ["2.b:2,S", "4.d:2,"]);
}

#[test]
fn dropping_without_commit_changes_nothing() {
    let f = Fixture::new();
    f.deliver("lou", "cur", "1.a:2,", b"x\n", 1);
    let maildrop = f.open("lou").expect("open");
    body(&maildrop, 0);
    drop(maildrop);
    assert_eq!(names(&f.maildir("lou").join("cur")), ["1.a:2,"]);
}

#[test]
fn vanished_and_renamed_files() {
    let f = Fixture::new();
    let gone = f.deliver("max", "cur", "1.a:2,", b"x\n", 1);
    let flagged = f.deliver("max", "cur", "2.b:2,", b"y\n", 2);
    let mut maildrop = f.open("max").expect("open");
    std::fs::remove_file(&gone).expect("rm");
    // An IMAP server sets a flag meanwhile: same unique part, new name.
    std::fs::rename(&flagged, flagged.with_file_name("2.b:2,F")).expect("mv");
    let err = block_on(maildrop.retrieve(0)).expect_err("vanished");
    assert_eq!(err.code, ErrorCode::NOT_FOUND);
    assert_eq!(body(&maildrop, 1), b"y\r\n");
    let err = block_on(maildrop.retrieve(7)).expect_err("no such message");
    assert_eq!(err.code, ErrorCode::NOT_FOUND);
    let report = block_on(maildrop.commit(vec![0, 1])).expect("commit");
    assert_eq!((report.deleted, report.failed), (2, 0));
    assert!(names(&f.maildir("max").join("cur")).is_empty());
}

#[test]
fn mail_arriving_during_a_session_waits_for_the_next() {
    let f = Fixture::new();
    f.deliver("ned", "new", "1.a", b"old\n", 1);
    let mut maildrop = f.open("ned").expect("open");
    f.deliver("ned", "new", "2.b", b"new\n", 2);
    assert_eq!(maildrop.messages().len(), 1);
    block_on(maildrop.commit(vec![0])).expect("commit");
    drop(maildrop);
    assert_eq!(names(&f.maildir("ned").join("new")), ["2.b"]);
    let next = f.open("ned").expect("open");
    assert_eq!(uidls(&next), ["2.b"]);
    assert_eq!(body(&next, 0), b"new\r\n");
}

#[test]
fn mark_seen_can_be_turned_off() {
    let f = Fixture::with("mark_seen: false");
    f.deliver("oz", "new", "1.a", b"x\n", 1);
    let mut maildrop = f.open("oz").expect("open");
    body(&maildrop, 0);
    block_on(maildrop.commit(Vec::new())).expect("commit");
    assert_eq!(names(&f.maildir("oz").join("cur")), ["1.a:2,"]);
}
