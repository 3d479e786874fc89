//! The store conformance suite (`poppet_testkit::conformance`) run for every store plugin: the
//! real server, the real plugin through dlopen, real sockets.

#![allow(clippy::unwrap_used)]

use poppet_testkit::conformance::{self, StoreFixture, mboxrd};
use poppet_testkit::maildir_messages;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Maildir: one file per message, delivered into `new/` through `tmp/`.
struct Maildir;

fn maildir(mail: &Path, user: &str) -> PathBuf {
    mail.join(user).join("Maildir")
}

impl StoreFixture for Maildir {
    fn package(&self) -> &'static str {
        "poppet-store-maildir"
    }
    fn factory(&self) -> &'static str {
        "maildir"
    }
    fn settings(&self, mail: &Path) -> String {
        format!("(path: \"{}/%u/Maildir\")", mail.display())
    }
    fn create_mailbox(&self, mail: &Path, user: &str, messages: &[Vec<u8>]) {
        let dir = maildir(mail, user);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for (i, m) in messages.iter().enumerate() {
            // Delivery times in the names give the message order.
            let name = format!("{}.M{i}P1.conformance", 1_600_000_000 + i);
            std::fs::write(dir.join("new").join(name), m).unwrap();
        }
    }
    fn deliver(&self, mail: &Path, user: &str, message: &[u8]) {
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = maildir(mail, user);
        let name = format!(
            "{}.M1P1.late",
            1_900_000_000 + N.fetch_add(1, Ordering::Relaxed)
        );
        std::fs::write(dir.join("tmp").join(&name), message).unwrap();
        std::fs::rename(dir.join("tmp").join(&name), dir.join("new").join(&name)).unwrap();
    }
    fn remaining(&self, mail: &Path, user: &str) -> Vec<Vec<u8>> {
        maildir_messages(&maildir(mail, user))
            .into_iter()
            .map(|(_, path)| std::fs::read(path).unwrap())
            .collect()
    }
}

/// mbox: one mboxrd file per user, appended to.
struct Mbox;

impl StoreFixture for Mbox {
    fn package(&self) -> &'static str {
        "poppet-store-mbox"
    }
    fn factory(&self) -> &'static str {
        "mbox"
    }
    fn settings(&self, mail: &Path) -> String {
        format!("(path: \"{}/%u\")", mail.display())
    }
    fn create_mailbox(&self, mail: &Path, user: &str, messages: &[Vec<u8>]) {
        std::fs::write(mail.join(user), mboxrd::file(messages)).unwrap();
    }
    fn deliver(&self, mail: &Path, user: &str, message: &[u8]) {
        // The store holds no delivery lock between snapshot and commit (mbox_delivery.rs checks
        // delivery under the MDAs' locks), so a plain append is what an MDA would get to do.
        std::fs::OpenOptions::new()
            .append(true)
            .open(mail.join(user))
            .and_then(|mut f| f.write_all(&mboxrd::entry(message)))
            .unwrap();
    }
    fn remaining(&self, mail: &Path, user: &str) -> Vec<Vec<u8>> {
        mboxrd::read(&mail.join(user))
    }
}

macro_rules! conformance_tests {
    ($module:ident, $fixture:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn sizes_and_bodies() {
                conformance::check_sizes_and_bodies(&$fixture);
            }
            #[test]
            fn top() {
                conformance::check_top(&$fixture);
            }
            #[test]
            fn uidl_stable() {
                conformance::check_uidl_stable(&$fixture);
            }
            #[test]
            fn dele_quit() {
                conformance::check_dele_quit(&$fixture);
            }
            #[test]
            fn dropped_connection() {
                conformance::check_dropped_connection(&$fixture);
            }
            #[test]
            fn rset() {
                conformance::check_rset(&$fixture);
            }
            #[test]
            fn in_use() {
                conformance::check_in_use(&$fixture);
            }
            #[test]
            fn delivery_during_session() {
                conformance::check_delivery_during_session(&$fixture);
            }
            #[test]
            fn every_check_has_a_test() {
                assert_eq!(conformance::CHECKS.len(), 8, "add the new check above");
            }
        }
    };
}

conformance_tests!(maildir, Maildir);
conformance_tests!(mbox, Mbox);
