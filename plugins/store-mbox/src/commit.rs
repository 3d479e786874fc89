//! The UPDATE state: deleted messages leave the file by a rewrite that is safe beside delivery
//! and against a crash at any point.
//!
//! Under the delivery locks (so no MDA appends meanwhile):
//! 1. the mbox is checked to be the file the snapshot was read from (same inode, not shorter);
//! 2. a temporary file is created beside it (`.<name>.poppet-tmp.<pid>.<time>`, same directory,
//!    so the rename below stays within one filesystem), given the mbox's owner, group and mode;
//! 3. the mbox is read from its start: every byte up to the snapshot's length is hashed and
//!    compared with the snapshot's hash (another program that rewrote the file in place makes
//!    the commit fail, deleting nothing); kept messages are copied byte for byte (their quoting
//!    and line ends stay as the MDA wrote them), and so is everything appended after the
//!    snapshot, which is how mail delivered during the session is kept;
//!    Identical messages whose UIDLs would shift because one of them is deleted get an `X-UIDL`
//!    header (see [`pinned`]);
//! 4. the copy is `fsync`ed, renamed over the mbox, and the directory `fsync`ed.
//!
//! A crash before the rename leaves the old mbox untouched (plus anything appended to it) and a
//! stray temporary file, removed by the next session; after it, the new one. The path never names
//! a partial file, so nothing is ever truncated. An in-place rewrite would keep the inode but
//! leave a half-moved file after a crash, which a reader other than Poppet could see and keep.
//!
//! The rename gives the mbox a new inode. A writer that opened the old one and then waits for its
//! fcntl lock would append to the orphan; writers that take the dotlock *before* opening (Postfix
//! local, procmail, Dovecot's LDA, all by default) never do, because we hold the dotlock until the
//! rename is done. So keep `dotlock` in the lock set (see the README).

use crate::lock::DeliveryLocks;
use crate::snapshot::Snapshot;
use poppet_sdk::{CommitReport, PluginError};
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bytes copied per read: the same bound as everywhere else.
const CHUNK: usize = 64 * 1024;

/// How often the dotlock is touched during a long rewrite: well inside Dovecot's 2-minute
/// `mbox_dotlock_change_timeout`.
const TOUCH_EVERY: Duration = Duration::from_secs(10);

/// The prefix of our temporary files for `mbox`.
pub fn temp_prefix(mbox: &Path) -> OsString {
    let mut name = OsString::from(".");
    name.push(mbox.file_name().unwrap_or_default());
    name.push(".poppet-tmp.");
    name
}

/// Removes temporary files a crashed commit left beside `mbox`. Called under the session and
/// delivery locks, so no commit of ours for this mbox is running.
pub fn remove_leftovers(mbox: &Path) {
    let (Some(dir), prefix) = (mbox.parent(), temp_prefix(mbox)) else {
        return;
    };
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    let prefix = prefix.as_encoded_bytes().to_vec();
    for entry in listing.flatten() {
        if entry.file_name().as_encoded_bytes().starts_with(&prefix) {
            log::info!(
                "{}: removing a crashed commit's leftover",
                entry.path().display()
            );
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Removes the messages at `deleted` from `mbox`, under `locks`.
pub fn commit(
    mbox: &Path,
    snapshot: &Snapshot,
    deleted: &[usize],
    locks: &DeliveryLocks,
) -> Result<CommitReport, PluginError> {
    let messages = &snapshot.parsed.messages;
    let mut remove = vec![false; messages.len()];
    let mut report = CommitReport::default();
    for &index in deleted {
        match remove.get_mut(index) {
            Some(flag) => *flag = true,
            None => report.failed += 1,
        }
    }
    let n_deleted = remove.iter().filter(|&&d| d).count() as u64;
    if n_deleted == 0 {
        return Ok(report);
    }
    let changed = |why: &str| {
        PluginError::temporary(format!(
            "{}: {why} since the session began; nothing was deleted",
            mbox.display()
        ))
    };
    let Some(file) = &locks.file else {
        return Err(changed("the mbox vanished"));
    };
    let meta = file
        .metadata()
        .map_err(|e| PluginError::io(format!("reading {}", mbox.display()), &e))?;
    if snapshot.id != Some((meta.dev(), meta.ino())) {
        return Err(changed("the mbox was replaced"));
    }
    if meta.len() < snapshot.parsed.len {
        return Err(changed("the mbox shrank"));
    }
    let started = Instant::now();
    log::debug!(
        "{}: rewriting without {n_deleted} messages ({} bytes)",
        mbox.display(),
        meta.len()
    );
    let temp = temp_path(mbox);
    let written = write_copy(file, &meta, &temp, snapshot, &remove, locks).and_then(|()| {
        fs::rename(&temp, mbox)
            .map_err(|e| PluginError::io(format!("renaming over {}", mbox.display()), &e))
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    if let Some(dir) = mbox.parent() {
        // The rename is durable only once the directory is; a failure here is logged, not fatal:
        // the rename itself has happened.
        if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
            log::warn!("{}: syncing the directory: {e}", dir.display());
        }
    }
    log::debug!(
        "{}: rewrote in {} ms",
        mbox.display(),
        started.elapsed().as_millis()
    );
    report.deleted = n_deleted;
    Ok(report)
}

fn temp_path(mbox: &Path) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut name = temp_prefix(mbox);
    name.push(format!("{}.{nanos}", std::process::id()));
    mbox.with_file_name(name)
}

/// Writes the new mbox to `temp`: owner, mode, kept messages, the appended tail, fsync.
fn write_copy(
    file: &File,
    meta: &fs::Metadata,
    temp: &Path,
    snapshot: &Snapshot,
    remove: &[bool],
    locks: &DeliveryLocks,
) -> Result<(), PluginError> {
    let fail = |what: &str, e: &io::Error| PluginError::io(format!("{what} {}", temp.display()), e);
    let out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)
        .map_err(|e| fail("creating", &e))?;
    keep_owner(&out, meta).map_err(|e| fail("giving the mbox's owner to", &e))?;
    out.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))
        .map_err(|e| fail("giving the mbox's mode to", &e))?;
    let mut writer = BufWriter::with_capacity(CHUNK, &out);
    let mut copier = Copier {
        file,
        buf: vec![0; CHUNK],
        hasher: Sha256::new(),
        locks,
        touched: Instant::now(),
    };
    let parsed = &snapshot.parsed;
    let pins = pinned(snapshot, remove);
    let mut at = 0;
    for (i, (message, &gone)) in parsed.messages.iter().zip(remove).enumerate() {
        // Bytes before the first message (empty lines) stay.
        copier.copy(at, message.start, Some(&mut writer))?;
        match (&pins[i], gone) {
            (Some(uidl), false) => {
                copier.copy(message.start, message.content_start, Some(&mut writer))?;
                let crlf = copier.last_was_crlf(message.content_start)?;
                let header = format!("X-UIDL: {uidl}{}", if crlf { "\r\n" } else { "\n" });
                writer
                    .write_all(header.as_bytes())
                    .map_err(|e| fail("writing", &e))?;
                copier.copy(message.content_start, message.end, Some(&mut writer))?;
            }
            _ => copier.copy(message.start, message.end, (!gone).then_some(&mut writer))?,
        }
        at = message.end;
    }
    copier.copy(at, parsed.len, Some(&mut writer))?;
    if <[u8; 32]>::from(copier.hasher.finalize()) != parsed.hash {
        return Err(PluginError::temporary(format!(
            "{}: the mbox was changed in place since the session began; nothing was deleted",
            temp.display()
        )));
    }
    // Mail appended during the session: copied as it is, not hashed.
    let mut tail = Copier {
        hasher: Sha256::new(),
        ..copier
    };
    tail.copy(parsed.len, meta.len(), Some(&mut writer))?;
    writer.flush().map_err(|e| fail("writing", &e))?;
    drop(writer);
    out.sync_all().map_err(|e| fail("syncing", &e))?;
    Ok(())
}

/// Which kept messages get an `X-UIDL` header with their current UIDL: the members of a group of
/// identical messages (same digest, UIDL from the digest) of which one is deleted. Their UIDLs
/// count occurrences (`-2`, `-3`), which the deletion would shift; the header pins them, as
/// qpopper's `X-UIDL` does. Nothing else in any message is ever changed.
fn pinned(snapshot: &Snapshot, remove: &[bool]) -> Vec<Option<String>> {
    let messages = &snapshot.parsed.messages;
    let from_digest = |i: usize| {
        let (m, info) = (&messages[i], &snapshot.infos[i]);
        m.x_uidl.as_deref() != Some(info.uidl.as_str())
    };
    let mut groups: std::collections::HashMap<[u8; 32], (usize, bool)> = Default::default();
    for (i, m) in messages.iter().enumerate() {
        if from_digest(i) {
            let group = groups.entry(m.digest).or_default();
            group.0 += 1;
            group.1 |= remove.get(i).copied().unwrap_or(false);
        }
    }
    (0..messages.len())
        .map(|i| {
            let (size, any_deleted) = groups.get(&messages[i].digest).copied()?;
            (from_digest(i) && size > 1 && any_deleted && !remove[i])
                .then(|| snapshot.infos[i].uidl.clone())
        })
        .collect()
}

/// Gives `out` the mbox's owner and group. Running as the mail user (or root) this succeeds;
/// otherwise it is fine only when they are ours already: a mailbox must never change hands.
fn keep_owner(out: &File, meta: &fs::Metadata) -> io::Result<()> {
    match std::os::unix::fs::fchown(out, Some(meta.uid()), Some(meta.gid())) {
        Ok(()) => Ok(()),
        Err(e) => {
            let ours = out.metadata()?;
            if (ours.uid(), ours.gid()) == (meta.uid(), meta.gid()) {
                Ok(())
            } else {
                Err(e)
            }
        }
    }
}

/// Copies byte ranges of the mbox, hashing what it reads.
struct Copier<'a> {
    file: &'a File,
    buf: Vec<u8>,
    hasher: Sha256,
    locks: &'a DeliveryLocks,
    touched: Instant,
}

impl Copier<'_> {
    /// Whether the line ending just before `at` is CRLF (the style a header we add follows).
    fn last_was_crlf(&self, at: u64) -> Result<bool, PluginError> {
        let mut two = [0u8; 2];
        if at < 2 {
            return Ok(false);
        }
        self.file
            .read_exact_at(&mut two, at - 2)
            .map_err(|e| PluginError::io("reading the mbox", &e))?;
        Ok(&two == b"\r\n")
    }

    /// Reads `from..to`, hashes it, and writes it to `out` when given.
    fn copy(
        &mut self,
        from: u64,
        to: u64,
        mut out: Option<&mut BufWriter<&File>>,
    ) -> Result<(), PluginError> {
        let mut at = from;
        while at < to {
            let want = usize::try_from(to - at)
                .unwrap_or(usize::MAX)
                .min(self.buf.len());
            let n = match self.file.read_at(&mut self.buf[..want], at) {
                Ok(0) => {
                    return Err(PluginError::temporary(
                        "the mbox ended early while rewriting; nothing was deleted",
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(PluginError::io("reading the mbox", &e)),
            };
            self.hasher.update(&self.buf[..n]);
            if let Some(out) = out.as_deref_mut() {
                out.write_all(&self.buf[..n])
                    .map_err(|e| PluginError::io("writing the new mbox", &e))?;
            }
            at += n as u64;
            if self.touched.elapsed() >= TOUCH_EVERY {
                self.locks.touch();
                self.touched = Instant::now();
            }
        }
        Ok(())
    }
}
