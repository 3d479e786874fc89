//! UIDLs, sizes, bodies and message order.

use super::*;

#[test]
fn uidl_is_stable_across_the_move_and_across_opens() {
    let f = Fixture::new();
    f.deliver("ann", "new", "1000.M1P1.host", b"a\n", 1000);
    f.deliver("ann", "cur", "900.M1P1.host:2,S", b"b\n", 900);
    let first = f.open("ann").expect("open");
    assert_eq!(uidls(&first), ["900.M1P1.host", "1000.M1P1.host"]);
    drop(first);
    let cur = f.maildir("ann").join("cur");
    assert_eq!(names(&cur), ["1000.M1P1.host:2,", "900.M1P1.host:2,S"]);
    assert!(names(&f.maildir("ann").join("new")).is_empty());
    let second = f.open("ann").expect("open");
    assert_eq!(uidls(&second), ["900.M1P1.host", "1000.M1P1.host"]);
}

#[test]
fn sizes_are_exactly_the_bytes_streamed() {
    let f = Fixture::new();
    let cases: &[(&str, &[u8], &[u8])] = &[
        (
            "1.lf",
            b"Subject: a\n\nbody\n",
            b"Subject: a\r\n\r\nbody\r\n",
        ),
        (
            "2.crlf",
            b"Subject: b\r\n\r\nbody\r\n",
            b"Subject: b\r\n\r\nbody\r\n",
        ),
        (
            "3.mixed",
            b"A: 1\r\nB: 2\n\nx\r\ny\n",
            b"A: 1\r\nB: 2\r\n\r\nx\r\ny\r\n",
        ),
        (
            "4.notrail",
            b"A: 1\n\nno newline",
            b"A: 1\r\n\r\nno newline\r\n",
        ),
        ("5.empty", b"", b""),
        ("6.plus,S=8,W=11:2,", b"A: 1\n\nx\n", b"A: 1\r\n\r\nx\r\n"),
    ];
    for (i, (name, raw, _)) in cases.iter().enumerate() {
        f.deliver("bob", "cur", name, raw, 100 + i as u64);
    }
    // A big LF-only message crosses the reader's chunk boundaries.
    let big: Vec<u8> = b"0123456789abcdef\n".repeat(20_000);
    f.deliver("bob", "cur", "7.big", &big, 200);
    let maildrop = f.open("bob").expect("open");
    assert_eq!(maildrop.messages().len(), cases.len() + 1);
    for (i, (name, _, want)) in cases.iter().enumerate() {
        let got = body(&maildrop, i);
        assert_eq!(got, *want, "{name}");
        assert_eq!(maildrop.messages()[i].size, got.len() as u64, "{name}");
    }
    let got = body(&maildrop, cases.len());
    assert_eq!(got.len() as u64, maildrop.messages()[cases.len()].size);
    assert_eq!(got.len(), big.len() + 20_000);
    let stats = maildrop.stats();
    assert_eq!((stats.from_names, stats.computed), (1, 6));
}

#[test]
fn a_wrong_w_size_below_the_file_length_is_not_trusted() {
    let f = Fixture::new();
    f.deliver("cy", "cur", "1.h,W=2:2,", b"abc\n", 1);
    let maildrop = f.open("cy").expect("open");
    assert_eq!(maildrop.messages()[0].size, 5);
    assert_eq!(body(&maildrop, 0), b"abc\r\n");
}

#[test]
fn odd_or_long_base_names_get_a_stable_hashed_uidl() {
    let f = Fixture::new();
    let long = "x".repeat(80);
    f.deliver("dee", "cur", &format!("{long}:2,"), b"a\n", 1);
    f.deliver("dee", "new", "with space", b"b\n", 2);
    let first = uidls(&f.open("dee").expect("open"));
    for uidl in &first {
        assert!((1..=70).contains(&uidl.len()));
        assert!(uidl.bytes().all(|b| (0x21..=0x7E).contains(&b)));
    }
    assert_eq!(first, uidls(&f.open("dee").expect("open")));
}

#[test]
fn duplicate_unique_parts_still_get_distinct_uidls() {
    let f = Fixture::new();
    f.deliver("eve", "cur", "dup:2,", b"a\n", 1);
    f.deliver("eve", "cur", "dup:2,S", b"b\n", 2);
    let u = uidls(&f.open("eve").expect("open"));
    assert_eq!(u[0], "dup");
    assert_ne!(u[0], u[1]);
}

#[test]
fn messages_are_ordered_by_mtime_then_name() {
    let f = Fixture::new();
    f.deliver("fay", "cur", "c:2,", b"c\n", 5);
    f.deliver("fay", "cur", "b:2,", b"b\n", 5);
    f.deliver("fay", "new", "a", b"a\n", 9);
    f.deliver("fay", "cur", ".hidden", b"x\n", 1);
    assert_eq!(uidls(&f.open("fay").expect("open")), ["b", "c", "a"]);
}

#[test]
fn the_demo_maildir_streams_its_advertised_sizes() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo/Maildir");
    if !demo.is_dir() {
        return;
    }
    // As a skeleton, so the committed demo mail is never modified.
    let f = Fixture::with(&format!("skeleton: \"{}\"", demo.display()));
    let maildrop = f.open("demo").expect("open");
    assert!(!maildrop.messages().is_empty());
    for (i, info) in maildrop.messages().iter().enumerate() {
        assert_eq!(body(&maildrop, i).len() as u64, info.size, "{}", info.uidl);
    }
}

#[test]
fn f7_list_sizes_equal_the_streamed_bytes_whatever_the_last_line() {
    let f = Fixture::new();
    let cases: &[(&str, &[u8], &[u8])] = &[
        (
            "1.none",
            b"A: 1\n\nno final newline",
            b"A: 1\r\n\r\nno final newline\r\n",
        ),
        (
            "2.cr",
            b"A: 1\n\nfinal bare CR\r",
            b"A: 1\r\n\r\nfinal bare CR\r\n",
        ),
        (
            "3.crlf",
            b"A: 1\r\n\r\nfinal CRLF\r\n",
            b"A: 1\r\n\r\nfinal CRLF\r\n",
        ),
        ("4.lf", b"A: 1\n\nfinal LF\n", b"A: 1\r\n\r\nfinal LF\r\n"),
    ];
    for (i, (name, raw, _)) in cases.iter().enumerate() {
        f.deliver("ida", "new", name, raw, 10 + i as u64);
    }
    // Computed on the first open, from the cache on the second.
    for computed in [cases.len(), 0] {
        let maildrop = f.open("ida").expect("open");
        assert_eq!(maildrop.stats().computed, computed);
        for (i, (name, _, want)) in cases.iter().enumerate() {
            let got = body(&maildrop, i);
            assert_eq!(got, *want, "{name}");
            assert!(got.ends_with(b"\r\n"), "{name}");
            assert_eq!(maildrop.messages()[i].size, got.len() as u64, "{name}");
        }
    }
}

#[test]
fn f2_a_wrong_w_size_fails_the_transfer_and_is_not_trusted_again() {
    let f = Fixture::new();
    // "abc\n" is 5 octets as CRLF text; the name says 4, which is not below the file length.
    f.deliver("jan", "cur", "1.h,S=4,W=4:2,", b"abc\n", 1);
    // A W= no conversion could reach is not trusted even once.
    f.deliver("jan", "cur", "2.h,W=999:2,", b"abc\n", 2);
    let mut first = f.open("jan").expect("open");
    assert_eq!(first.messages()[0].size, 4);
    assert_eq!(first.messages()[1].size, 5);
    assert_eq!((first.stats().from_names, first.stats().computed), (1, 1));
    let err = try_body(&first, 0).expect_err("longer than advertised");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(body(&first, 1), b"abc\r\n");
    block_on(first.commit(Vec::new())).expect("commit");
    drop(first);
    // Not flagged seen: the client never got the whole message.
    let cur = f.maildir("jan").join("cur");
    assert_eq!(names(&cur), ["1.h,S=4,W=4:2,", "2.h,W=999:2,S"]);
    let second = f.open("jan").expect("open");
    assert_eq!(second.messages()[0].size, 5);
    assert_eq!(second.stats().from_names, 0);
    assert_eq!(body(&second, 0), b"abc\r\n");
}

#[test]
fn f2_a_message_that_grew_on_disk_fails_instead_of_being_cut() {
    // Larger than one read chunk, so it is streamed from disk (small messages are read whole when
    // retrieved, and are then exactly the snapshot's bytes).
    let big: Vec<u8> =
        b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n"
            .repeat(crate::body::CHUNK / 72 + 10);
    let f = Fixture::new();
    let path = f.deliver("kai", "cur", "1.a:2,", &big, 1);
    let maildrop = f.open("kai").expect("open");
    assert_eq!(maildrop.messages()[0].size, big.len() as u64);
    let mut reader = block_on(maildrop.retrieve(0)).expect("retrieve");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"more\n"))
        .expect("append");
    let mut out = Vec::new();
    let err = block_on(reader.read_to_end(&mut out)).expect_err("longer");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    // Once changed, it is no longer the snapshot's message at all.
    let err = block_on(maildrop.retrieve(0)).expect_err("changed");
    assert_eq!(err.code, poppet_sdk::ErrorCode::NOT_FOUND);
}

#[test]
fn a_small_message_is_served_as_it_was_when_retrieved() {
    let f = Fixture::new();
    let path = f.deliver("kai", "cur", "1.a:2,", b"abc\n", 1);
    let maildrop = f.open("kai").expect("open");
    let mut reader = block_on(maildrop.retrieve(0)).expect("retrieve");
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .and_then(|mut file| std::io::Write::write_all(&mut file, b"more\n"))
        .expect("append");
    let mut out = Vec::new();
    block_on(reader.read_to_end(&mut out)).expect("read");
    assert_eq!(
        out, b"abc\r\n",
        "exactly the advertised octets, read at RETR time"
    );
}

/// Opening a large maildir without its cache stats and reads the files on several threads; the
/// sizes and the order must be each message's own, with W= names among them.
#[test]
fn many_sizes_found_concurrently_are_each_messages_own() {
    let f = Fixture::new();
    let count = 700u64;
    let mut want = Vec::new();
    for i in 0..count {
        let lines = 1 + i % 13;
        let text = "line of text\n".repeat(lines as usize);
        let name = if i % 7 == 0 {
            // A plausible W= is taken as it is: no read.
            let w = text.len() as u64 + lines;
            format!("{}.M{i}P1.host,S={},W={w}:2,S", 1000 + i, text.len())
        } else {
            format!("{}.M{i}P1.host:2,S", 1000 + i)
        };
        f.deliver("ann", "cur", &name, text.as_bytes(), 1000 + i);
        want.push(text.len() as u64 + lines);
    }
    let first = f.open("ann").expect("open");
    let sizes: Vec<u64> = first.messages().iter().map(|m| m.size).collect();
    assert_eq!(sizes, want);
    let stats = first.stats();
    assert_eq!((stats.from_names, stats.computed), (100, 600));
    for index in [0, 1, 350, 699] {
        assert_eq!(body(&first, index).len() as u64, want[index]);
    }
    // The cache written from them serves the next open.
    drop(first);
    let again = f.open("ann").expect("open");
    assert_eq!(again.stats().computed, 0);
    let cached: Vec<u64> = again.messages().iter().map(|m| m.size).collect();
    assert_eq!(cached, want);
}
