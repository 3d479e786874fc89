//! The mail store: from a user to an open maildrop.
//!
//! Opening finds the maildir (template or the auth backend's `mailbox`), creates it when missing
//! (from the skeleton when one is set), takes the session lock and then the snapshot. All of it is
//! blocking file I/O, so it runs on the store's thread pool ([`crate::pool::FILES`]) rather than
//! the host's executor.
//!
//! Each store instance owns one lock refresher ([`crate::refresh`]), shared by its clones, which
//! keeps the locks of its open sessions fresh and stops when the last clone is dropped.

use crate::chunks::Buffers;
use crate::lock::SessionLock;
use crate::maildrop::MaildirDrop;
use crate::pool::FILES;
use crate::refresh::Refresher;
use crate::settings::Settings;
use crate::snapshot;
use poppet_sdk::{ErrorCode, OpenRequest, PluginError};
use std::fs::{self, DirBuilder, File};
use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use walkdir::WalkDir;

/// Directories and files we create are private to the mail user, as maildir deliverers make them
/// (a mailbox is nobody else's business).
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// The maildir mail store.
#[derive(Debug, Clone)]
pub struct Maildir {
    settings: Arc<Settings>,
    refresher: Arc<Refresher>,
    /// Read buffers of large transfers, shared by the store's sessions.
    buffers: Arc<Buffers>,
}

impl Maildir {
    /// Creates the store from its RON settings text (see [`crate::RawSettings`]).
    pub fn from_settings(text: &str) -> Result<Maildir, PluginError> {
        let settings = Settings::parse(text)?;
        if let Some(skeleton) = &settings.skeleton {
            if !skeleton.is_dir() {
                return Err(PluginError::config(format!(
                    "skeleton: {} is not a directory",
                    skeleton.display()
                )));
            }
        }
        Ok(Maildir::new(settings))
    }

    /// Creates the store from validated settings.
    pub fn new(settings: Settings) -> Maildir {
        Maildir {
            refresher: Arc::new(Refresher::new(settings.lock_stale_after)),
            settings: Arc::new(settings),
            buffers: Arc::default(),
        }
    }

    /// The lock refresher (tests).
    #[cfg(test)]
    pub(crate) fn refresher(&self) -> &Refresher {
        &self.refresher
    }
}

impl poppet_sdk::MailStore for Maildir {
    type Maildrop = MaildirDrop;

    fn open(
        &self,
        request: OpenRequest,
    ) -> impl Future<Output = Result<MaildirDrop, PluginError>> + Send {
        let settings = Arc::clone(&self.settings);
        let refresher = Arc::clone(&self.refresher);
        let buffers = Arc::clone(&self.buffers);
        let job = move || open_blocking(&settings, &refresher, buffers, &request);
        async move { FILES.run(job).await }
    }
}

fn open_blocking(
    settings: &Settings,
    refresher: &Refresher,
    buffers: Arc<Buffers>,
    request: &OpenRequest,
) -> Result<MaildirDrop, PluginError> {
    let dir = settings.mailbox_path(&request.user, request.mailbox.as_deref())?;
    prepare(&dir, settings.skeleton.as_deref())?;
    let lock = Arc::new(SessionLock::acquire(&dir, settings.lock_stale_after)?);
    // Before the snapshot, which may read many messages on a first login.
    refresher.register(&lock);
    // On error the lock is dropped here, which releases it.
    let snapshot = snapshot::take(&dir, &settings.uidl_source)?;
    // Leftovers come from a crash, which also leaves its session's lock behind, or from a crash
    // while another session took a stale lock over. Looked for then, and whenever `cur/` had to be
    // listed anyway (new mail), not on every login: that listing of the maildir was five system
    // calls and a 32 KiB directory buffer per login.
    if lock.took_over() || snapshot.listed_cur {
        remove_leftovers(&dir);
    }
    Ok(MaildirDrop::new(
        dir,
        snapshot,
        lock,
        settings.mark_seen,
        buffers,
    ))
}

/// Temporary files of ours that a process killed at the wrong moment leaves in the maildir: a
/// sizes cache being written (`poppet-sizes.tmp.PID.NANOS`, renamed over the cache when done) and
/// a stale lock being taken over (`poppet-pop3.lock.stale.PID.NANOS`, removed right after).
const LEFTOVER_PREFIXES: [&str; 2] = ["poppet-sizes.tmp.", "poppet-pop3.lock.stale."];

/// How old such a file must be before it is removed. Both live for milliseconds; an hour leaves
/// room for any clock difference between hosts sharing the maildir.
const LEFTOVER_AGE: Duration = Duration::from_secs(3600);

/// Removes [`LEFTOVER_PREFIXES`] files older than [`LEFTOVER_AGE`]: nothing else removes them, so
/// every badly timed crash would leave one for good. Best effort, under the session lock; see
/// `open_blocking` for when it runs.
fn remove_leftovers(dir: &Path) {
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    for entry in listing.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !LEFTOVER_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if age.is_some_and(|age| age > LEFTOVER_AGE) {
            log::info!(
                "{}: removing a crashed session's leftover",
                entry.path().display()
            );
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Makes sure `dir` is a maildir: a missing one is created (from `skeleton` when given), and a
/// missing `cur/`, `new/` or `tmp/` is added (git cannot keep an empty `tmp/` in a skeleton).
fn prepare(dir: &Path, skeleton: Option<&Path>) -> Result<(), PluginError> {
    if let Some(skeleton) = skeleton {
        if !dir.exists() {
            copy_skeleton(skeleton, dir)?;
        }
    }
    for sub in ["cur", "new", "tmp"] {
        let path = dir.join(sub);
        // One stat for the usual case; a recursive create of an existing directory costs a failed
        // mkdir and then a stat, on every login.
        if fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&path)
            .map_err(|e| PluginError::io(format!("creating {}", path.display()), &e))?;
    }
    Ok(())
}

/// Copies `skeleton` to `dir` through a temporary sibling and a rename, so a crash or a concurrent
/// first login never leaves a half-copied maildir, and the skeleton itself is never modified.
fn copy_skeleton(skeleton: &Path, dir: &Path) -> Result<(), PluginError> {
    let (Some(parent), Some(leaf)) = (dir.parent(), dir.file_name()) else {
        return Err(PluginError::permanent(format!(
            "{} has no parent",
            dir.display()
        )));
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(parent)
        .map_err(|e| PluginError::io(format!("creating {}", parent.display()), &e))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = parent.join(format!(
        ".{}.skeleton.{}.{nanos}",
        leaf.to_string_lossy(),
        std::process::id()
    ));
    let copied = copy_tree(skeleton, &tmp).and_then(|()| match fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Another session's first login won the race; its copy is as good as ours.
        Err(_) if dir.exists() => Ok(()),
        Err(e) => Err(PluginError::io(format!("creating {}", dir.display()), &e)),
    });
    if tmp.exists() {
        let _ = fs::remove_dir_all(&tmp);
    }
    copied?;
    log::info!(
        "{}: created from skeleton {}",
        dir.display(),
        skeleton.display()
    );
    Ok(())
}

/// Copies a directory tree of plain files, keeping mtimes (they order the messages).
fn copy_tree(from: &Path, to: &Path) -> Result<(), PluginError> {
    let fail =
        |what: &Path, e: &std::io::Error| PluginError::io(format!("copying {}", what.display()), e);
    for item in WalkDir::new(from).sort_by_file_name() {
        let item = item.map_err(|e| {
            PluginError::new(
                ErrorCode::IO,
                format!("reading skeleton {}: {e}", from.display()),
            )
        })?;
        let Ok(rel) = item.path().strip_prefix(from) else {
            continue;
        };
        let target = to.join(rel);
        let kind = item.file_type();
        if kind.is_dir() {
            DirBuilder::new()
                .mode(DIR_MODE)
                .create(&target)
                .map_err(|e| fail(&target, &e))?;
        } else if kind.is_file() {
            fs::copy(item.path(), &target).map_err(|e| fail(item.path(), &e))?;
            let mtime = item.metadata().ok().and_then(|m| m.modified().ok());
            let file = File::options()
                .write(true)
                .open(&target)
                .map_err(|e| fail(&target, &e))?;
            file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
                .map_err(|e| fail(&target, &e))?;
            if let Some(mtime) = mtime {
                file.set_modified(mtime).map_err(|e| fail(&target, &e))?;
            }
        } else {
            log::warn!(
                "skeleton: skipping {}, not a plain file",
                item.path().display()
            );
        }
    }
    Ok(())
}
