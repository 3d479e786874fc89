//! Tests through the store's Rust API, on temporary maildirs: what a POP3 session would see.

mod cache;
mod migration;
mod paths;
mod session;
mod size_props;
mod snapshot;

use crate::{Maildir, MaildirDrop};
use futures_lite::future::block_on;
use futures_lite::io::AsyncReadExt;
use poppet_sdk::{MailStore, Maildrop, OpenRequest, PluginError};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use tempfile::TempDir;

/// A temporary mail root with a store whose template is `<root>/%u/Maildir`.
struct Fixture {
    root: TempDir,
    store: Maildir,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::with("")
    }

    /// `extra` is more settings, e.g. `skeleton: "..",`.
    fn with(extra: &str) -> Fixture {
        let root = tempfile::tempdir().expect("tempdir");
        let text = format!("(path: \"{}/%u/Maildir\", {extra})", root.path().display());
        let store = Maildir::from_settings(&text).expect("settings");
        Fixture { root, store }
    }

    fn maildir(&self, user: &str) -> PathBuf {
        self.root.path().join(user).join("Maildir")
    }

    fn open(&self, user: &str) -> Result<MaildirDrop, PluginError> {
        block_on(self.store.open(OpenRequest {
            user: user.into(),
            mailbox: None,
        }))
    }

    /// Writes a message file into `sub` (`new` or `cur`) with an mtime of `secs` after the epoch.
    fn deliver(&self, user: &str, sub: &str, name: &str, body: &[u8], secs: u64) -> PathBuf {
        let dir = self.maildir(user);
        for d in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        let path = dir.join(sub).join(name);
        std::fs::write(&path, body).expect("write");
        set_mtime(&path, secs);
        path
    }
}

/// Sets `cur/`'s mtime to `secs` after the epoch, as if it had not changed for a long time.
fn settle(f: &Fixture, user: &str, secs: u64) {
    let cur = std::fs::File::open(f.maildir(user).join("cur")).expect("open cur");
    cur.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .expect("mtime");
}

fn set_mtime(path: &Path, secs: u64) {
    crate::lock::set_mtime(path, UNIX_EPOCH + Duration::from_secs(secs)).expect("mtime");
}

/// Reads message `index` to its end.
fn body(drop: &MaildirDrop, index: usize) -> Vec<u8> {
    try_body(drop, index).expect("read")
}

/// Reads message `index` to its end; the error is the stream's (retrieval itself must work).
fn try_body(drop: &MaildirDrop, index: usize) -> std::io::Result<Vec<u8>> {
    block_on(async {
        let mut reader = drop.retrieve(index).await.expect("retrieve");
        let mut out = Vec::new();
        reader.read_to_end(&mut out).await.map(|_| out)
    })
}

fn uidls(drop: &MaildirDrop) -> Vec<String> {
    drop.messages().iter().map(|m| m.uidl.clone()).collect()
}

/// The sorted file names in a maildir subdirectory.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
