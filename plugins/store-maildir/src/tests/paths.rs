//! Settings, mailbox paths, creation and the skeleton.

use super::*;
use crate::Settings;
use poppet_sdk::ErrorCode;
use std::os::unix::fs::PermissionsExt;

#[test]
fn user_names_that_could_escape_are_refused_before_any_path_exists() {
    let root = tempfile::tempdir().expect("tempdir");
    let text = format!("(path: \"{}/mail/%n/%d/Maildir\")", root.path().display());
    let store = Maildir::from_settings(&text).expect("settings");
    for user in [
        "",
        "..",
        "../x@a",
        "a/b@c",
        "a@b/..",
        "a\0b@c",
        "a\nb@c",
        "x\u{7f}@c",
        ".@a",
        "a@.",
        "@a",
        "a@",
        "noat",
    ] {
        let req = OpenRequest {
            user: user.into(),
            mailbox: None,
        };
        let err = block_on(store.open(req)).expect_err(user);
        assert_eq!(err.code, ErrorCode::PERMANENT, "{user:?}: {err}");
    }
    assert!(!root.path().join("mail").exists());
}

#[test]
fn a_missing_maildir_is_created_private_and_empty() {
    let f = Fixture::new();
    let maildrop = f.open("pat@example.org").expect("open");
    assert!(maildrop.messages().is_empty());
    for sub in ["cur", "new", "tmp"] {
        let meta = std::fs::metadata(f.maildir("pat@example.org").join(sub)).expect("dir");
        assert_eq!(meta.permissions().mode() & 0o777, 0o700, "{sub}");
    }
}

#[test]
fn the_skeleton_is_copied_once_and_never_changed() {
    let skel = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(skel.path().join("new")).expect("mkdir");
    std::fs::create_dir_all(skel.path().join("cur")).expect("mkdir");
    std::fs::write(skel.path().join("new/1.welcome"), b"Hi\n").expect("write");
    std::fs::write(skel.path().join("cur/0.old:2,S"), b"Old\n").expect("write");
    set_mtime(&skel.path().join("new/1.welcome"), 20);
    set_mtime(&skel.path().join("cur/0.old:2,S"), 10);
    let f = Fixture::with(&format!("skeleton: \"{}\"", skel.path().display()));
    let mut first = f.open("quin").expect("open");
    assert_eq!(uidls(&first), ["0.old", "1.welcome"]);
    assert_eq!(body(&first, 1), b"Hi\r\n");
    block_on(first.commit(vec![0, 1])).expect("commit");
    drop(first);
    assert!(f.open("quin").expect("open").messages().is_empty());
    assert_eq!(names(&skel.path().join("new")), ["1.welcome"]);
    assert_eq!(names(&skel.path().join("cur")), ["0.old:2,S"]);
    // No temporary copy is left beside the maildir.
    assert_eq!(names(&f.root.path().join("quin")), ["Maildir"]);
}

#[test]
fn the_auth_backends_mailbox_wins() {
    let f = Fixture::new();
    let elsewhere = f.root.path().join("elsewhere");
    for mailbox in [
        format!("{}", elsewhere.display()),
        format!("maildir:{}", elsewhere.display()),
        format!("maildir:{}:LAYOUT=fs", elsewhere.display()),
    ] {
        let req = OpenRequest {
            user: "../ignored".into(),
            mailbox: Some(mailbox.clone()),
        };
        block_on(f.store.open(req)).expect(&mailbox);
        assert!(elsewhere.join("cur").is_dir());
    }
    let relative = OpenRequest {
        user: "u".into(),
        mailbox: Some("maildir:Maildir".into()),
    };
    let err = block_on(f.store.open(relative)).expect_err("relative");
    assert_eq!(err.code, ErrorCode::PERMANENT);
}

#[test]
fn settings_are_checked_at_load() {
    let defaults = Settings::parse("").expect("empty");
    assert_eq!(defaults.lock_stale_after, Duration::from_secs(1800));
    assert!(defaults.mark_seen);
    assert!(Settings::parse("()").is_ok());
    let s = Settings::parse("(lock_stale_after: \"90s\")").expect("90s");
    assert_eq!(s.lock_stale_after, Duration::from_secs(90));
    let err = Settings::parse("(\n  paht: \"/x\",\n)").expect_err("unknown key");
    assert_eq!(err.code, ErrorCode::CONFIG);
    assert_eq!(err.position.map(|p| p.line), Some(2));
    for bad in [
        "(path: \"/var/mail/%x\")",
        "(path: \"/var/mail/%\")",
        "(path: \"mail/%u\")",
        "(lock_stale_after: \"30\")",
        "(lock_stale_after: \"0s\")",
        "(lock_stale_after: \"5 weeks\")",
    ] {
        let err = Settings::parse(bad).expect_err(bad);
        assert_eq!(err.code, ErrorCode::CONFIG, "{bad}");
    }
    let err = Maildir::from_settings("(skeleton: \"/nonexistent/poppet\")").expect_err("skel");
    assert_eq!(err.code, ErrorCode::CONFIG);
    let none = Maildir::from_settings("()").expect("no template");
    let err = block_on(none.open(OpenRequest {
        user: "u".into(),
        mailbox: None,
    }))
    .expect_err("no path");
    assert_eq!(err.code, ErrorCode::PERMANENT);
}
