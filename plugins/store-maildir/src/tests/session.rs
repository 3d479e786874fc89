//! Locking, commit, vanished files and mail arriving during a session.

use super::*;
use crate::LOCK_FILE;
use crate::lock::Holder;
use poppet_sdk::ErrorCode;
use std::time::SystemTime;

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
    // Nothing but the maildir's own entries and the released lock's spare is left behind.
    assert_eq!(
        names(&f.maildir("jo")),
        ["cur", "new", "poppet-pop3.lock.spare", "tmp"]
    );
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

#[test]
fn f1_mark_seen_never_overwrites_a_message_with_the_same_unique_part() {
    let f = Fixture::new();
    f.deliver("pia", "cur", "1700000000.dup.host:2,", b"A\n", 1);
    f.deliver("pia", "cur", "1700000000.dup.host:2,S", b"B\n", 2);
    let mut maildrop = f.open("pia").expect("open");
    assert_eq!(body(&maildrop, 0), b"A\r\n");
    assert_eq!(body(&maildrop, 1), b"B\r\n");
    let report = block_on(maildrop.commit(Vec::new())).expect("commit");
    assert_eq!((report.deleted, report.failed), (0, 0));
    let cur = f.maildir("pia").join("cur");
    // A stays unflagged rather than being renamed over B.
    assert_eq!(
        names(&cur),
        ["1700000000.dup.host:2,", "1700000000.dup.host:2,S"]
    );
    assert_eq!(
        std::fs::read(cur.join("1700000000.dup.host:2,")).expect("A"),
        b"A\n"
    );
    assert_eq!(
        std::fs::read(cur.join("1700000000.dup.host:2,S")).expect("B"),
        b"B\n"
    );
}

#[test]
fn f1_a_renamed_duplicate_is_found_by_inode_not_by_unique_part() {
    let f = Fixture::new();
    let a = f.deliver("quy", "cur", "dup:2,", b"A\n", 1);
    f.deliver("quy", "cur", "dup:2,S", b"B\n", 2);
    let mut maildrop = f.open("quy").expect("open");
    // Another reader flags A: "dup" now names A as dup:2,F and B as dup:2,S.
    std::fs::rename(&a, a.with_file_name("dup:2,F")).expect("mv");
    assert_eq!(body(&maildrop, 0), b"A\r\n");
    let report = block_on(maildrop.commit(vec![0])).expect("commit");
    assert_eq!((report.deleted, report.failed), (1, 0));
    let cur = f.maildir("quy").join("cur");
    assert_eq!(names(&cur), ["dup:2,S"]);
    assert_eq!(std::fs::read(cur.join("dup:2,S")).expect("B"), b"B\n");
}

#[test]
fn f1_a_vanished_duplicate_counts_as_deleted_without_touching_the_other() {
    let f = Fixture::new();
    let a = f.deliver("ray", "cur", "dup:2,", b"A\n", 1);
    f.deliver("ray", "cur", "dup:2,S", b"B\n", 2);
    let mut maildrop = f.open("ray").expect("open");
    std::fs::remove_file(&a).expect("rm");
    // RETR never hands out B for A.
    let err = block_on(maildrop.retrieve(0)).expect_err("gone");
    assert_eq!(err.code, ErrorCode::NOT_FOUND);
    let report = block_on(maildrop.commit(vec![0])).expect("commit");
    assert_eq!((report.deleted, report.failed), (1, 0));
    assert_eq!(names(&f.maildir("ray").join("cur")), ["dup:2,S"]);
}

#[test]
fn f1_a_file_that_took_a_messages_name_or_unique_part_is_never_deleted_or_sent() {
    let f = Fixture::new();
    let a = f.deliver("sam", "cur", "1.a:2,", b"A\n", 1);
    let b = f.deliver("sam", "cur", "2.b:2,", b"B\n", 2);
    let mut maildrop = f.open("sam").expect("open");
    // A is replaced by another file under the same name; B by one under its unique part.
    std::fs::remove_file(&a).expect("rm");
    std::fs::write(&a, b"new A\n").expect("write");
    std::fs::remove_file(&b).expect("rm");
    std::fs::write(b.with_file_name("2.b:2,T"), b"new B\n").expect("write");
    for index in [0, 1] {
        let err = block_on(maildrop.retrieve(index)).expect_err("not ours");
        assert_eq!(err.code, ErrorCode::NOT_FOUND);
    }
    let report = block_on(maildrop.commit(vec![0, 1])).expect("commit");
    assert_eq!((report.deleted, report.failed), (0, 2));
    assert_eq!(names(&f.maildir("sam").join("cur")), ["1.a:2,", "2.b:2,T"]);
}

#[test]
fn f3_an_idle_session_keeps_its_lock_fresh_and_live() {
    let f = Fixture::with("lock_stale_after: \"1s\"");
    let first = f.open("tam").expect("open");
    let lock = f.maildir("tam").join(LOCK_FILE);
    crate::lock::set_mtime(&lock, UNIX_EPOCH + Duration::from_secs(1000)).expect("age");
    // The refresher runs every third of the bound; seven passes outlast the bound by far (the
    // lock's own `time` is then more than 1s old), so only the refresher keeps the lock live.
    f.store.refresher().wait_for_passes(7);
    let mtime = std::fs::metadata(&lock)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert!(mtime > SystemTime::now() - Duration::from_secs(5));
    let err = f.open("tam").expect_err("still locked");
    assert_eq!(err.code, ErrorCode::LOCKED);
    drop(first);
    assert!(!lock.exists());
}

#[test]
fn f3_dropping_the_store_stops_its_refresher() {
    let f = Fixture::new();
    let maildrop = f.open("uma").expect("open");
    let thread = f
        .store
        .refresher()
        .take_thread()
        .expect("started by the session");
    drop(maildrop);
    drop(f);
    thread.join().expect("stopped");
}

#[test]
fn f3_commit_changes_nothing_once_the_lock_was_taken_over() {
    let other = Holder {
        host: "elsewhere.invalid".into(),
        ..Holder::me()
    };
    // A new lock file (what a takeover creates), and our file rewritten in place.
    for in_place in [false, true] {
        let f = Fixture::new();
        f.deliver("val", "cur", "1.a:2,", b"x\n", 1);
        let mut maildrop = f.open("val").expect("open");
        body(&maildrop, 0);
        let lock = f.maildir("val").join(LOCK_FILE);
        if !in_place {
            std::fs::remove_file(&lock).expect("rm");
        }
        std::fs::write(&lock, other.to_text()).expect("take over");
        let err = block_on(maildrop.commit(vec![0])).expect_err("taken over");
        assert_eq!(err.code, ErrorCode::LOCKED, "{err}");
        assert!(err.message.contains("taken over"), "{err}");
        drop(maildrop);
        assert_eq!(names(&f.maildir("val").join("cur")), ["1.a:2,"]);
        // The new owner's lock is left alone.
        assert_eq!(
            std::fs::read_to_string(&lock).expect("lock"),
            other.to_text()
        );
    }
}

#[test]
fn f4_a_lock_left_by_an_earlier_run_with_our_pid_is_taken_over() {
    if crate::lock::our_instance().is_none() {
        return; // no /proc: only the time bound can tell
    }
    let f = Fixture::new();
    f.open("wes").expect("create");
    let lock = f.maildir("wes").join(LOCK_FILE);
    let me = Holder::me();
    let earlier_run = Holder {
        instance: Some("00000000-0000-0000-0000-000000000000/1".into()),
        ..me.clone()
    };
    std::fs::write(&lock, earlier_run.to_text()).expect("write");
    let maildrop = f
        .open("wes")
        .expect("stale: an earlier run of pid 1 after a restart");
    let ours = Holder::parse(&std::fs::read_to_string(&lock).expect("lock")).expect("v2");
    assert_eq!(ours.instance, me.instance);
    drop(maildrop);
    // This process's own lock (another session) and a version 1 lock naming our pid stay live.
    let v1 = format!(
        "poppet-pop3-lock 1\npid {}\nhost {}\ntime {}\n",
        me.pid, me.host, me.time
    );
    for text in [me.to_text(), v1] {
        std::fs::write(&lock, &text).expect("write");
        let err = f.open("wes").expect_err(&text);
        assert_eq!(err.code, ErrorCode::LOCKED);
        std::fs::remove_file(&lock).expect("rm");
    }
}

#[test]
fn messages_retrieved_in_order_are_read_ahead_and_still_exact() {
    let f = Fixture::new();
    let big = vec![b'z'; crate::body::CHUNK + 10];
    let mut expected = Vec::new();
    for i in 0..40u8 {
        let text = if i == 20 {
            big.clone()
        } else {
            format!("Subject: {i}\n\n.body {i}\n").into_bytes()
        };
        f.deliver(
            "ria",
            "cur",
            &format!("{}.m{i}:2,", 100 + u32::from(i)),
            &text,
            100 + u64::from(i),
        );
        let mut crlf = Vec::new();
        for &b in &text {
            if b == b'\n' {
                crlf.push(b'\r');
            }
            crlf.push(b);
        }
        if !crlf.ends_with(b"\r\n") {
            crlf.extend_from_slice(b"\r\n");
        }
        expected.push(crlf);
    }
    let maildrop = f.open("ria").expect("open");
    // In order (read ahead from the second on), then out of order, then in order again.
    for index in (0..40).chain([5, 3, 4, 5, 6]) {
        assert_eq!(body(&maildrop, index), expected[index], "message {index}");
        assert_eq!(
            maildrop.messages()[index].size,
            expected[index].len() as u64
        );
    }
}

#[test]
fn a_message_replaced_under_its_name_after_the_snapshot_is_not_read_ahead() {
    let f = Fixture::new();
    let text = |i: usize, tag: &str| format!("Subject: {tag} {i:02}\n\nbody\n").into_bytes();
    let mut paths = Vec::new();
    for i in 0..24 {
        let name = format!("{}.m{i}:2,", 100 + i);
        paths.push(f.deliver("rex", "cur", &name, &text(i, "old"), 100 + i as u64));
    }
    // `cur/` settled long before the login: the read-ahead may trust its names while it stays so.
    settle(&f, "rex", 1000);
    let maildrop = f.open("rex").expect("open");
    // Message 10 is replaced under its name by another file of the same length: `cur/` changes,
    // so the files read ahead are checked one by one, and that one is not the snapshot's.
    std::fs::remove_file(&paths[10]).expect("rm");
    std::fs::write(&paths[10], text(10, "new")).expect("write");
    for index in 0..24 {
        if index == 10 {
            let err = block_on(maildrop.retrieve(index)).expect_err("not ours");
            assert_eq!(err.code, ErrorCode::NOT_FOUND);
            continue;
        }
        let expected = String::from_utf8(text(index, "old"))
            .expect("ascii")
            .replace('\n', "\r\n");
        assert_eq!(
            body(&maildrop, index),
            expected.as_bytes(),
            "message {index}"
        );
    }
}

#[test]
fn leftovers_are_looked_for_after_a_crash_or_new_mail_not_on_every_login() {
    let f = Fixture::new();
    f.deliver("una", "cur", "1.a:2,", b"x\n", 1);
    let dir = f.maildir("una");
    // `cur/` unchanged for long: the first open lists it and keeps the listing in the cache.
    std::fs::File::open(dir.join("cur"))
        .and_then(|d| d.set_modified(UNIX_EPOCH + Duration::from_secs(1000)))
        .expect("age cur/");
    drop(f.open("una").expect("first open"));
    let plant = |name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, b"").expect("plant");
        set_mtime(&path, 1000);
        path
    };
    let leftover = plant("poppet-sizes.tmp.4242.1");
    // An ordinary login, `cur/` unchanged: the maildir itself is not listed.
    drop(f.open("una").expect("second open"));
    assert!(leftover.exists(), "not looked for on an ordinary login");
    // A crashed session's lock (a pid that cannot exist) is taken over, and leftovers go too.
    let dead = Holder {
        pid: 4_000_000_000,
        ..Holder::me()
    };
    std::fs::write(dir.join(LOCK_FILE), dead.to_text()).expect("dead lock");
    drop(f.open("una").expect("takeover"));
    assert!(!leftover.exists(), "removed after the takeover");
    // New mail means `cur/` is listed again, and the maildir is looked at too.
    let leftover = plant("poppet-pop3.lock.stale.4242.2");
    f.deliver("una", "new", "2.b", b"y\n", 2);
    let maildrop = f.open("una").expect("open with new mail");
    assert_eq!(maildrop.messages().len(), 2);
    assert!(!leftover.exists(), "removed when cur/ was listed");
}
