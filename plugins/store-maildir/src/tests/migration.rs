//! UIDLs imported from Dovecot's and Courier's files, and the `poppet-maildir` tools.

use super::*;
use crate::tools;

#[test]
fn uidl_source_settings_are_validated() {
    for good in [
        "",
        r#"uidl_source: "native""#,
        r#"uidl_source: "courier""#,
        r#"uidl_source: "dovecot""#,
        r#"uidl_source: "dovecot", uidl_format: "%f""#,
    ] {
        assert!(
            Maildir::from_settings(&format!("({good})")).is_ok(),
            "{good}"
        );
    }
    for bad in [
        r#"uidl_source: "qmail""#,
        r#"uidl_source: "dovecot", uidl_format: "%m""#,
        r#"uidl_format: "%f""#,
        r#"uidl_source: "courier", uidl_format: "%f""#,
    ] {
        let err = Maildir::from_settings(&format!("({bad})")).expect_err(bad);
        assert!(err.message.contains("uidl_"), "{bad}: {}", err.message);
    }
}

#[test]
fn dovecot_uidls_with_native_fallback_and_the_list_left_alone() {
    let f = Fixture::with(r#"uidl_source: "dovecot""#);
    f.deliver("ann", "cur", "1.a:2,S", b"one\n", 1);
    f.deliver("ann", "new", "2.b", b"two\n", 2);
    f.deliver("ann", "new", "3.c", b"three\n", 3);
    let list = f.maildir("ann").join("dovecot-uidlist");
    let text = "3 V255 N3 G00\n1 W5 :1.a\n2 :2.b\n";
    std::fs::write(&list, text).expect("write");
    let first = f.open("ann").expect("open");
    assert_eq!(
        uidls(&first),
        ["00000001000000ff", "00000002000000ff", "3.c"]
    );
    // One size from Dovecot's `W`, checked against the file's last octet.
    assert_eq!(
        (first.stats().from_imported, first.stats().computed),
        (1, 2)
    );
    assert_eq!(first.messages()[0].size, 5);
    drop(first);
    drop_and_reopen_is_the_same(&f, "ann", &["00000001000000ff", "00000002000000ff", "3.c"]);
    assert_eq!(std::fs::read_to_string(&list).expect("read"), text);
}

fn drop_and_reopen_is_the_same(f: &Fixture, user: &str, want: &[&str]) {
    let again = f.open(user).expect("open");
    assert_eq!(uidls(&again), want);
    assert_eq!(
        again.stats().computed,
        0,
        "imported sizes went into the cache"
    );
}

#[test]
fn courier_uidls_and_an_unusable_list_falls_back_to_native() {
    let f = Fixture::with(r#"uidl_source: "courier""#);
    f.deliver("bob", "cur", "1.a:2,", b"one\n", 1);
    f.deliver("bob", "cur", "2.b:2,", b"two", 2);
    let list = f.maildir("bob").join("courierpop3dsizelist");
    std::fs::write(&list, "/3 3 77\n1.a:2, 5 1:77:0\n2.b:2, 4 2:77:0\n").expect("write");
    let first = f.open("bob").expect("open");
    assert_eq!(uidls(&first), ["UID1-77", "UID2-77"]);
    // Courier's 4 for "two" leaves out the CRLF it adds after the unterminated line.
    assert_eq!(first.messages()[1].size, 5);
    assert_eq!(body(&first, 1), b"two\r\n");
    drop(first);
    drop_and_reopen_is_the_same(&f, "bob", &["UID1-77", "UID2-77"]);
    std::fs::write(&list, "garbage\n").expect("write");
    assert_eq!(uidls(&f.open("bob").expect("open")), ["1.a", "2.b"]);
}

#[test]
fn an_invalid_or_repeated_imported_uidl_is_not_served() {
    let f = Fixture::with(r#"uidl_source: "dovecot", uidl_format: "x%4f""#);
    f.deliver("cy", "cur", "1.aaaa:2,", b"1\n", 1);
    f.deliver("cy", "cur", "1.aaab:2,", b"2\n", 2);
    std::fs::write(
        f.maildir("cy").join("dovecot-uidlist"),
        "3 V1 N3\n1 :1.aaaa\n2 :1.aaab\n",
    )
    .expect("write");
    let got = uidls(&f.open("cy").expect("open"));
    assert_eq!(got[0], "x1.aa");
    assert_eq!(got[1].len(), 64, "the repeat becomes a hash: {got:?}");
}

#[test]
fn warm_fills_the_cache_a_session_then_uses_without_moving_new_mail() {
    let f = Fixture::new();
    f.deliver("dee", "cur", "1.a:2,S", b"one\n", 1);
    f.deliver("dee", "new", "2.b", b"two\nlines\n", 2);
    let mut out = Vec::new();
    let counts = tools::warm(f.root.path(), std::time::SystemTime::now(), &mut out).expect("warm");
    assert_eq!(
        (counts.maildirs, counts.computed, counts.problems),
        (1, 2, 0)
    );
    assert!(
        f.maildir("dee").join("new/2.b").exists(),
        "new/ is left alone"
    );
    let session = f.open("dee").expect("open");
    assert_eq!(
        (session.stats().from_cache, session.stats().computed),
        (2, 0)
    );
}
