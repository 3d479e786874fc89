//! Shared setup for the end-to-end tests: a scratch directory with a copy of the demo maildir, a
//! passwd-file, and a config that loads the real plugins from their built libraries.

#![allow(dead_code, clippy::unwrap_used)]

pub mod haproxy;
pub mod mda;
pub mod net;
pub mod stores;

use poppet_testkit::{TestServer, artifacts, copy_dir, demo_maildir, workspace_root};
use std::path::PathBuf;

/// A demo server and where its mail is.
pub struct Demo {
    pub server: TestServer,
    pub maildir: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Writes a passwd-file with the demo user plus `plain` (password `plain-secret`, stored `{PLAIN}`
/// so APOP can work).
fn write_users(dir: &std::path::Path) -> PathBuf {
    let demo = std::fs::read_to_string(workspace_root().join("examples/demo/users")).unwrap();
    let path = dir.join("users");
    std::fs::write(&path, format!("{demo}plain:{{PLAIN}}plain-secret\n")).unwrap();
    path
}

/// The config text for the real plugins; `extra` is inserted at the top level.
pub fn config(dir: &std::path::Path, extra: &str) -> String {
    config_with_listeners(dir, r#"(address: "127.0.0.1:0")"#, extra)
}

/// Like [`config`] with the given listener entries.
pub fn config_with_listeners(dir: &std::path::Path, listeners: &str, extra: &str) -> String {
    let users = write_users(dir);
    format!(
        r#"(
    listeners: [{listeners}],
    plugins: [
        (library: "{auth}", kind: auth, name: "passwd", settings: (file: "{users}")),
        (library: "{store}", kind: store, name: "maildir", settings: (path: "{mail}/%u/Maildir")),
    ],
    auth: "passwd",
    store: "maildir",
    {extra}
)"#,
        auth = artifacts().library("poppet-auth-passwd").display(),
        store = artifacts().library("poppet-store-maildir").display(),
        users = users.display(),
        mail = dir.join("mail").display(),
    )
}

/// Starts a server whose user `demo` has a fresh copy of the demo maildir.
pub fn demo_with(extra: &str) -> Demo {
    demo_with_listeners(r#"(address: "127.0.0.1:0")"#, extra)
}

/// Like [`demo_with`] with the given listener entries; `{dir}` in either text is replaced by the
/// scratch directory (for certificate paths).
pub fn demo_with_listeners(listeners: &str, extra: &str) -> Demo {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("mail/demo/Maildir");
    copy_dir(&demo_maildir(), &maildir);
    let d = dir.path().display().to_string();
    let text = config_with_listeners(
        dir.path(),
        &listeners.replace("{dir}", &d),
        &extra.replace("{dir}", &d),
    );
    let server = TestServer::start(dir.path(), &text);
    Demo {
        server,
        maildir,
        dir,
    }
}

/// [`demo_with`] with default settings.
pub fn demo() -> Demo {
    demo_with("")
}

/// The demo messages in message-number order (delivery time in the name): (uidl, CRLF bytes).
pub fn expected_messages() -> Vec<(String, Vec<u8>)> {
    poppet_testkit::maildir_messages(&demo_maildir())
        .into_iter()
        .map(|(base, path)| (base, poppet_testkit::crlf(&std::fs::read(path).unwrap())))
        .collect()
}

/// The demo messages are on disk in `maildir`, byte for byte, except those at the 0-based
/// `deleted` indices, and nothing else is.
pub fn assert_demo_left(maildir: &std::path::Path, deleted: &[usize]) {
    let want: Vec<(String, Vec<u8>)> = expected_messages()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !deleted.contains(i))
        .map(|(_, m)| m)
        .collect();
    let got = poppet_testkit::maildir_messages(maildir);
    assert_eq!(
        got.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>(),
        want.iter().map(|(b, _)| b.clone()).collect::<Vec<_>>()
    );
    for ((_, path), (base, bytes)) in got.iter().zip(&want) {
        let stored = poppet_testkit::crlf(&std::fs::read(path).unwrap());
        assert!(stored == *bytes, "{base} changed on disk");
    }
}
