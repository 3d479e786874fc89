//! The two store plugins as [`StoreFixture`]s for the fault tests, with a short stale bound.

use super::mda::{maildir_deliver, mbox_read_locked, mbox_writer, test_id};
use poppet_testkit::conformance::{StoreFixture, mboxrd};
use poppet_testkit::maildir_messages;
use std::path::Path;
use std::time::Duration;

/// The stores' stale bound in these tests: short, so a lock a dead server left behind (one the
/// stores cannot prove dead by its pid) would show as a delay the test can measure.
pub const STALE_AFTER: Duration = Duration::from_secs(3);

/// Which store; mailboxes are `mail/USER/Maildir` or `mail/USER`.
#[derive(Debug, Clone, Copy)]
pub enum Store {
    Maildir,
    Mbox,
}

impl StoreFixture for Store {
    fn package(&self) -> &'static str {
        match self {
            Store::Maildir => "poppet-store-maildir",
            Store::Mbox => "poppet-store-mbox",
        }
    }
    fn factory(&self) -> &'static str {
        match self {
            Store::Maildir => "maildir",
            Store::Mbox => "mbox",
        }
    }
    fn settings(&self, mail: &Path) -> String {
        let stale = format!("\"{}s\"", STALE_AFTER.as_secs());
        match self {
            Store::Maildir => format!(
                "(path: \"{}/%u/Maildir\", lock_stale_after: {stale})",
                mail.display()
            ),
            Store::Mbox => format!(
                "(path: \"{}/%u\", dotlock_stale_after: {stale})",
                mail.display()
            ),
        }
    }
    fn create_mailbox(&self, mail: &Path, user: &str, messages: &[Vec<u8>]) {
        match self {
            Store::Maildir => {
                let dir = mail.join(user).join("Maildir");
                for sub in ["cur", "new", "tmp"] {
                    std::fs::create_dir_all(dir.join(sub)).unwrap();
                }
                for (i, m) in messages.iter().enumerate() {
                    maildir_deliver(&dir, 1_000_000 + i, m).unwrap();
                }
            }
            Store::Mbox => std::fs::write(mail.join(user), mboxrd::file(messages)).unwrap(),
        }
    }
    fn deliver(&self, mail: &Path, user: &str, message: &[u8]) {
        match self {
            Store::Maildir => {
                let dir = mail.join(user).join("Maildir");
                maildir_deliver(&dir, 2_000_000 + test_id(message), message).unwrap();
            }
            Store::Mbox => {
                let file = mail.join(format!(".{user}.spool"));
                std::fs::write(&file, mboxrd::entry(message)).unwrap();
                let status = mbox_writer(&mail.join(user), &[file], "0").wait();
                assert!(status.unwrap().success(), "the mbox writer failed");
            }
        }
    }
    fn remaining(&self, mail: &Path, user: &str) -> Vec<Vec<u8>> {
        match self {
            Store::Maildir => maildir_messages(&mail.join(user).join("Maildir"))
                .into_iter()
                .map(|(_, path)| std::fs::read(path).unwrap())
                .collect(),
            // Under the lock: an MDA may be appending right now.
            Store::Mbox => mboxrd::parse(&mbox_read_locked(&mail.join(user))),
        }
    }
}
