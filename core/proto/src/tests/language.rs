//! RFC 6856: the core's texts in a selected language, and UTF-8 user names after UTF8.

use std::sync::Arc;

use crate::testing::{Driver, logged_in, test_options};
use crate::text::{Catalog, TEMPLATES};

fn german() -> Arc<Catalog> {
    let texts = [
        ("no-such-message", "Keine solche Nachricht"),
        ("missing-argument", "{verb} braucht {what}"),
        ("message-deleted", "Nachricht {msg} gelöscht"),
        (
            "signing-off-deleted",
            "Poppet verabschiedet sich ({deleted} Nachrichten gelöscht)",
        ),
        ("unknown-command", "unbekannter Befehl {verb}"),
    ];
    let catalog = Catalog::new(
        "de",
        "Deutsch",
        texts.map(|(id, text)| (id.to_owned(), text.to_owned())),
        [(
            "a message number".to_owned(),
            "eine Nachrichtennummer".to_owned(),
        )],
    )
    .expect("valid catalog");
    Arc::new(catalog)
}

#[test]
fn selected_language_translates_core_texts_but_not_protocol_data() {
    let mut driver = logged_in();
    driver.session.set_language(Some(german()));
    assert_eq!(driver.session.language(), Some("de"));
    driver.feed(b"STAT\r\nRETR 9\r\nRETR\r\nXYZZY\r\nDELE 1\r\nLIST 2\r\nQUIT\r\n");
    let out = String::from_utf8_lossy(&driver.out).into_owned();
    let lines: Vec<&str> = out.split("\r\n").collect();
    // STAT's numbers are protocol data: unchanged.
    assert!(lines[0].starts_with("+OK 3 "), "{out}");
    assert_eq!(lines[1], "-ERR Keine solche Nachricht");
    assert_eq!(lines[2], "-ERR RETR braucht eine Nachrichtennummer");
    assert_eq!(lines[3], "-ERR unbekannter Befehl XYZZY");
    assert_eq!(lines[4], "+OK Nachricht 1 gelöscht");
    assert!(lines[5].starts_with("+OK 2 "), "{out}");
    assert_eq!(
        lines[6],
        "+OK Poppet verabschiedet sich (1 Nachrichten gelöscht)"
    );
}

/// Found by the session fuzz target: USER without a name used a phrase missing from TERMS (a
/// debug assertion; in release it would have stayed English in every language).
#[test]
fn every_missing_argument_phrase_is_a_term() {
    let mut driver = Driver::new(test_options());
    driver.session.set_language(Some(german()));
    driver.feed(b"USER\r\nAPOP\r\nPASS\r\n");
    let out = driver.replies();
    assert!(out.contains("-ERR USER braucht "), "{out}");
    // Every argument error of every command (Text::term asserts that its phrase is a term).
    for line in ["USER", "APOP", "APOP x", "PASS"] {
        let mut driver = Driver::new(test_options());
        driver.session.set_language(Some(german()));
        driver.feed(format!("{line}\r\n").as_bytes());
        assert!(driver.replies().starts_with("-ERR"), "{line}");
    }
    for line in [
        "RETR", "DELE", "TOP", "TOP 1", "LIST x", "TOP 1 x", "RETR x", "UIDL x",
    ] {
        let mut driver = logged_in();
        driver.session.set_language(Some(german()));
        driver.feed(format!("{line}\r\n").as_bytes());
        let out = String::from_utf8_lossy(&driver.out).into_owned();
        assert!(out.starts_with("-ERR"), "{line}: {out}");
    }
}

#[test]
fn untranslated_texts_stay_english_and_english_can_be_selected_again() {
    let mut driver = logged_in();
    driver.session.set_language(Some(german()));
    driver.feed(b"DELE 1\r\nDELE 1\r\n");
    driver.session.set_language(None);
    driver.feed(b"RETR 9\r\n");
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "+OK Nachricht 1 gelöscht\r\n-ERR message 1 already deleted\r\n-ERR no such message\r\n"
    );
}

#[test]
fn every_core_text_renders_from_a_full_catalog() {
    // A catalog that translates every id (here: upper-cases the English) is accepted,
    // and leaves nothing untranslated.
    let full = Catalog::new(
        "x-upper",
        "UPPER",
        TEMPLATES.iter().map(|t| {
            (
                t.id.to_owned(),
                t.english
                    .replace("{", "\u{0}")
                    .to_uppercase()
                    .replace("\u{0}", "{"),
            )
        }),
        [],
    );
    // Upper-casing also changes placeholder names, which the check refuses: proof that
    // placeholders are checked for every id.
    assert!(full.is_err());
    let full = Catalog::new(
        "x-same",
        "Same",
        TEMPLATES
            .iter()
            .map(|t| (t.id.to_owned(), t.english.to_owned())),
        [],
    )
    .expect("the English table is a valid catalog");
    assert!(full.untranslated().is_empty());
}

#[test]
fn utf8_user_names_need_the_utf8_command_when_offered() {
    let options = || {
        let mut options = test_options();
        options.utf8_users_need_command = true;
        options
    };
    let mut driver = Driver::new(options());
    driver.feed("USER jürgen\r\nAPOP jürgen c4c9334bac560ecc979e58001b3e22fb\r\n".as_bytes());
    assert_eq!(
        driver.replies(),
        "-ERR a user name with non-ASCII characters needs the UTF8 command first\r\n\
         -ERR a user name with non-ASCII characters needs the UTF8 command first\r\n"
    );
    // ASCII names are not affected.
    let mut driver = Driver::new(options());
    driver.feed(b"USER alice\r\n");
    assert_eq!(driver.replies(), "+OK send PASS\r\n");
    // After UTF8 the name goes through to the backend.
    let mut driver = Driver::new(options());
    driver.session.enable_utf8();
    assert!(driver.session.utf8_enabled());
    driver.feed("USER jürgen\r\n".as_bytes());
    assert_eq!(driver.replies(), "+OK send PASS\r\n");
    // Without the option (no UTF8 extension) such names are accepted as before.
    let mut driver = Driver::new(test_options());
    driver.feed("USER jürgen\r\n".as_bytes());
    assert_eq!(driver.replies(), "+OK send PASS\r\n");
}
