//! Keeping the table in step with the file, without a restart.
//!
//! Two ways notice a change, and both end in [`Source::reload_if_changed`]:
//! - a `notify` watcher on the file's *directory*, because editors and tools like `install` or
//!   `mv new users` replace a file by renaming another over it, which a watch on the file itself
//!   would not see (it would keep watching the old, unlinked inode);
//! - a stat of the file during logins, at most every `check_interval`, in case file events are lost
//!   (inotify watch limit, network file systems, a symlink switched to another target).
//!
//! A reload happens only when the file's modification time, size or inode differ from the version
//! loaded last, so the burst of events one save produces costs one read. A file that is being
//! written in place may be read half-written; the event at the end of the write reloads it again
//! (so rename-replace is still the better way to update it). A reload that cannot read the file
//! keeps the old table and logs an error: a deleted or unreadable file must not lock everyone out.

use crate::table::Table;
use poppet_password::parse_passwd_file;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

/// What identifies one version of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Stamp {
    fn of(path: &Path) -> std::io::Result<Stamp> {
        // `metadata` follows symlinks, so a switched symlink target counts as a change.
        let meta = std::fs::metadata(path)?;
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Stamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        })
    }
}

/// The file, its current table, and when it was last looked at.
#[derive(Debug)]
pub struct Source {
    path: PathBuf,
    mailbox_from_home: bool,
    check_interval: std::time::Duration,
    table: RwLock<Arc<Table>>,
    /// The stamp of the loaded version. Held while reloading, so two reloads never interleave.
    loaded: Mutex<Option<Stamp>>,
    /// When a login last stat'ed the file.
    last_check: Mutex<Instant>,
}

impl Source {
    /// Reads the file for the first time. Unlike a reload, failing to read it is an error: at
    /// startup it is most likely a typo in the path, which `poppet check` should report.
    pub fn open(
        path: PathBuf,
        mailbox_from_home: bool,
        check_interval: std::time::Duration,
    ) -> std::io::Result<Source> {
        let stamp = Stamp::of(&path)?;
        let text = std::fs::read_to_string(&path)?;
        let table = load(&path, &text, mailbox_from_home);
        Ok(Source {
            path,
            mailbox_from_home,
            check_interval,
            table: RwLock::new(Arc::new(table)),
            loaded: Mutex::new(Some(stamp)),
            last_check: Mutex::new(Instant::now()),
        })
    }

    /// The file's path as configured.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current table. Cheap: a reload swaps in a new `Arc`, it never changes a table in use.
    pub fn table(&self) -> Arc<Table> {
        self.table
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stats the file when `check_interval` has passed since the last check, and reloads it if it
    /// changed. Blocking; call it off the async executor.
    pub fn check_now_and_then(&self) {
        {
            let mut last = self
                .last_check
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < self.check_interval {
                return;
            }
            *last = Instant::now();
        }
        // A login must not queue behind a reload someone else is already doing.
        if let Ok(mut loaded) = self.loaded.try_lock() {
            self.reload_locked(&mut loaded);
        }
    }

    /// Re-reads the file if its stamp differs from the loaded version's. Blocking.
    pub fn reload_if_changed(&self) {
        let mut loaded = self.loaded.lock().unwrap_or_else(PoisonError::into_inner);
        self.reload_locked(&mut loaded);
    }

    fn reload_locked(&self, loaded: &mut Option<Stamp>) {
        let read = Stamp::of(&self.path).and_then(|stamp| {
            if loaded.as_ref() == Some(&stamp) {
                return Ok(None);
            }
            // The stamp is taken before reading: if the file changes during the read, the next
            // check sees a newer stamp and reads it again.
            std::fs::read_to_string(&self.path).map(|text| Some((stamp, text)))
        });
        match read {
            Ok(None) => {}
            Ok(Some((stamp, text))) => {
                let table = load(&self.path, &text, self.mailbox_from_home);
                log::info!(
                    "passwd-file {}: reloaded, {} users",
                    self.path.display(),
                    table.len()
                );
                *self.table.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(table);
                *loaded = Some(stamp);
            }
            Err(err) => {
                log::error!(
                    "passwd-file {}: cannot read it, keeping the {} users loaded before: {err}",
                    self.path.display(),
                    self.table().len()
                );
                // Forget the stamp, so that the file is read again once it is back, even if it
                // comes back identical.
                *loaded = None;
            }
        }
    }
}

/// Parses one version of the file, logging and skipping every line it cannot use.
fn load(path: &Path, text: &str, mailbox_from_home: bool) -> Table {
    let (entries, line_errors) = parse_passwd_file(text);
    for err in &line_errors {
        log::warn!(
            "passwd-file {}:{}: skipped: {}",
            path.display(),
            err.line,
            err.reason
        );
    }
    let (table, user_errors) = Table::build(entries, mailbox_from_home);
    for (user, reason) in &user_errors {
        // Entries do not carry their line number; a user's line is the first that defines it
        // (later ones are duplicates, already reported above).
        let line = text
            .lines()
            .position(|line| line.split(':').next() == Some(user.as_str()))
            .map_or(0, |idx| idx + 1);
        log::warn!(
            "passwd-file {}:{line}: user {user:?} skipped: {reason}",
            path.display()
        );
    }
    if table.is_empty() {
        log::warn!("passwd-file {}: no users can log in", path.display());
    }
    table
}
