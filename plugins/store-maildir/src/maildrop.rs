//! An open maildrop: the locked snapshot, body streams, and the UPDATE-state commit.
//!
//! RFC 1939 §6: in UPDATE "the POP3 server removes all messages marked as deleted from the
//! maildrop and replies as to the status of this operation"; here that is one unlink per message.
//! A file that another program removed (or renamed by changing its flags) during the session is
//! looked up again by its unique part; one that is really gone counts as deleted, since the
//! client's wish is fulfilled. Dropping the maildrop without a commit changes nothing but the lock.

use crate::body::{CHUNK, CrlfReader};
use crate::lock::SessionLock;
use crate::name;
use crate::snapshot::{self, Entry, SizeStats, Snapshot};
use blocking::Unblock;
use poppet_sdk::{CommitReport, ErrorCode, MessageInfo, PluginError};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::future::Future;
use std::io::ErrorKind;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The body stream of one message. File reads run on the `blocking` thread pool, so a slow disk
/// never stalls the host's executor.
pub type Body = CrlfReader<Unblock<File>>;

/// An open, locked snapshot of one maildir.
#[derive(Debug)]
pub struct MaildirDrop {
    dir: PathBuf,
    entries: Vec<Entry>,
    messages: Vec<MessageInfo>,
    stats: SizeStats,
    /// Per message: the body was read to its end (for the `S` flag at commit).
    read_through: Vec<Arc<AtomicBool>>,
    mark_seen: bool,
    /// `None` once committed. Shared with running retrievals, which touch it.
    lock: Option<Arc<SessionLock>>,
}

impl MaildirDrop {
    /// Builds the maildrop from a snapshot taken under `lock`.
    pub(crate) fn new(
        dir: PathBuf,
        snapshot: Snapshot,
        lock: SessionLock,
        mark_seen: bool,
    ) -> Self {
        let read_through = (0..snapshot.entries.len())
            .map(|_| Arc::new(AtomicBool::new(false)))
            .collect();
        MaildirDrop {
            dir,
            entries: snapshot.entries,
            messages: snapshot.messages,
            stats: snapshot.stats,
            read_through,
            mark_seen,
            lock: Some(Arc::new(lock)),
        }
    }

    /// Where this session's sizes came from (the cache is in use when `computed` is 0).
    pub fn stats(&self) -> SizeStats {
        self.stats
    }

    /// The maildir's path.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl poppet_sdk::Maildrop for MaildirDrop {
    type Body = Body;

    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn retrieve(&self, index: usize) -> impl Future<Output = Result<Body, PluginError>> + Send {
        let found = self.entries.get(index).zip(self.messages.get(index));
        let job = found.map(|(entry, info)| {
            let cur = self.dir.join("cur");
            let entry = entry.clone();
            let lock = self.lock.clone();
            let size = info.size;
            let flag = self.read_through.get(index).cloned();
            move || -> Result<Body, PluginError> {
                if let Some(lock) = lock {
                    lock.touch();
                }
                let file = open_message(&cur, &entry)?;
                Ok(CrlfReader::new(
                    Unblock::with_capacity(CHUNK, file),
                    size,
                    flag,
                ))
            }
        });
        async move {
            match job {
                Some(job) => blocking::unblock(job).await,
                None => Err(PluginError::new(
                    ErrorCode::NOT_FOUND,
                    format!("no message {}", index.saturating_add(1)),
                )),
            }
        }
    }

    fn commit(
        &mut self,
        deleted: Vec<usize>,
    ) -> impl Future<Output = Result<CommitReport, PluginError>> + Send {
        let cur = self.dir.join("cur");
        let entries = self.entries.clone();
        let seen: Vec<bool> = self
            .read_through
            .iter()
            .map(|f| self.mark_seen && f.load(Ordering::Relaxed))
            .collect();
        let lock = self.lock.take();
        async move {
            blocking::unblock(move || {
                let report = apply(&cur, &entries, &deleted, &seen);
                // Released only after every change is on disk, so the next session sees them all.
                drop(lock);
                Ok(report)
            })
            .await
        }
    }
}

/// Opens a message, following a rename by another reader (a flag change keeps the unique part).
fn open_message(cur: &Path, entry: &Entry) -> Result<File, PluginError> {
    let vanished = || {
        PluginError::new(
            ErrorCode::NOT_FOUND,
            format!(
                "{}: message {} vanished",
                cur.display(),
                name::uidl(&entry.base)
            ),
        )
    };
    match File::open(cur.join(&entry.name)) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let names = by_base(cur).map_err(|_| vanished())?;
            let name = names.get(&entry.base).ok_or_else(vanished)?;
            File::open(cur.join(name)).map_err(|_| vanished())
        }
        Err(e) => Err(PluginError::io(format!("opening {}", cur.display()), &e)),
    }
}

/// Unlinks the deleted messages and flags the ones read through as seen.
fn apply(cur: &Path, entries: &[Entry], deleted: &[usize], seen: &[bool]) -> CommitReport {
    let mut report = CommitReport::default();
    // Listed at most once, and only if some file is not where the snapshot left it.
    let mut renamed: Option<HashMap<Vec<u8>, OsString>> = None;
    let mut current = |entry: &Entry| -> Option<PathBuf> {
        let path = cur.join(&entry.name);
        if fs::symlink_metadata(&path).is_ok() {
            return Some(path);
        }
        let names = renamed.get_or_insert_with(|| by_base(cur).unwrap_or_default());
        names.get(&entry.base).map(|n| cur.join(n))
    };
    let mut is_deleted = vec![false; entries.len()];
    for &index in deleted {
        let Some(entry) = entries.get(index) else {
            log::warn!("{}: commit of unknown message index {index}", cur.display());
            report.failed += 1;
            continue;
        };
        is_deleted[index] = true;
        let removed = match current(entry) {
            Some(path) => fs::remove_file(&path),
            None => Ok(()),
        };
        match removed {
            Ok(()) => report.deleted += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => report.deleted += 1,
            Err(e) => {
                log::warn!("{}: deleting {:?}: {e}", cur.display(), entry.name);
                report.failed += 1;
            }
        }
    }
    for (index, entry) in entries.iter().enumerate() {
        if is_deleted[index] || !seen.get(index).copied().unwrap_or(false) {
            continue;
        }
        let Some(path) = current(entry) else { continue };
        let Some(file_name) = path.file_name() else {
            continue;
        };
        if let Some(flagged) = name::with_seen(file_name.as_bytes()) {
            // Best effort: a missing flag costs an IMAP client a bold line, nothing more.
            if let Err(e) = fs::rename(&path, cur.join(OsString::from_vec(flagged))) {
                log::debug!("{}: flagging {:?} seen: {e}", cur.display(), entry.name);
            }
        }
    }
    report
}

/// The files of `cur/` by unique part.
fn by_base(cur: &Path) -> Result<HashMap<Vec<u8>, OsString>, PluginError> {
    Ok(snapshot::list(cur)?
        .into_iter()
        .map(|n| (name::base(n.as_bytes()).to_vec(), n))
        .collect())
}
