//! The exclusive POP3 session lock: a file inside the maildir, created with `O_EXCL`.
//!
//! RFC 1939 §8: the server "should acquire an exclusive-access lock on the maildrop" so two POP3
//! sessions never hand out the same snapshot. Maildir itself needs no lock for delivery, so this
//! lock only keeps POP3 sessions apart (qmail-pop3d has none; Dovecot and Courier have their own).
//! `O_EXCL` creation works across processes and, on NFS v3 and later, across hosts sharing the
//! directory, which `flock` does not.
//!
//! The file holds (one `key value` per line, after a version line):
//! ```text
//! poppet-pop3-lock 1
//! pid 4242
//! host mail1.example.org
//! time 1700000000
//! ```
//! A lock is stale, and is taken over, when its host is ours and its pid no longer exists, or when
//! neither its `time` nor its file's mtime (which a live session refreshes on every retrieval) is
//! younger than the configured bound. A file that cannot be parsed (a lock being written right
//! now, or garbage) is judged by its mtime alone.

use poppet_sdk::PluginError;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lock file's name inside the maildir; outside `cur/`, `new/` and `tmp/`, where maildir
/// readers look, and not starting with `.`, which Maildir++ reserves for folders.
pub const LOCK_FILE: &str = "poppet-pop3.lock";

const VERSION_LINE: &str = "poppet-pop3-lock 1";

/// A held lock. Dropping it removes the file, if the file is still ours.
#[derive(Debug)]
pub struct SessionLock {
    path: PathBuf,
    /// Device and inode of our file, so we never remove or touch a lock someone else created after
    /// taking ours over.
    id: (u64, u64),
}

/// What a lock file says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Seconds since the Unix epoch when it was taken.
    pub time: u64,
}

impl SessionLock {
    /// Takes the lock of the maildir at `dir`, taking over a stale one. Contention is
    /// [`poppet_sdk::ErrorCode::LOCKED`].
    pub fn acquire(dir: &Path, stale_after: Duration) -> Result<SessionLock, PluginError> {
        let path = dir.join(LOCK_FILE);
        // Two rounds suffice: one to find and clear a stale lock, one to create ours. More would
        // only mean another session keeps winning the race, which is contention.
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let me = Holder::me();
                    let write = file.write_all(me.to_text().as_bytes());
                    let id = file.metadata().map(|m| (m.dev(), m.ino()));
                    let lock = match id {
                        Ok(id) => SessionLock { path, id },
                        Err(e) => {
                            let _ = fs::remove_file(&path);
                            return Err(PluginError::io("reading the new lock file", &e));
                        }
                    };
                    // Dropping `lock` removes the half-written file.
                    write.map_err(|e| PluginError::io("writing the lock file", &e))?;
                    return Ok(lock);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    if !take_over_if_stale(&path, stale_after)? {
                        return Err(PluginError::locked(describe(&path)));
                    }
                }
                Err(e) => return Err(PluginError::io(format!("creating {}", path.display()), &e)),
            }
        }
        Err(PluginError::locked(describe(&path)))
    }

    /// Marks the lock as in use now (its mtime), so a long but active session is never stale.
    /// Failures are ignored: the worst case is a takeover after the stale bound.
    pub fn touch(&self) {
        if let Ok(file) = OpenOptions::new().write(true).open(&self.path) {
            if file.metadata().is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
                let _ = file.set_modified(SystemTime::now());
            }
        }
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        // Checking then removing leaves a tiny window in which a takeover could slip in; that only
        // happens to a session that was stale for the whole bound, and it is what dotlocks do.
        let ours = fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id);
        if ours {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("removing {}: {e}", self.path.display());
            }
        }
    }
}

impl Holder {
    /// This process on this host, now.
    pub fn me() -> Holder {
        Holder {
            pid: std::process::id(),
            host: our_host(),
            time: unix_now(),
        }
    }

    /// The lock file text.
    pub fn to_text(&self) -> String {
        format!(
            "{VERSION_LINE}\npid {}\nhost {}\ntime {}\n",
            self.pid, self.host, self.time
        )
    }

    /// Parses a lock file's text; `None` when it is not a complete lock.
    pub fn parse(text: &str) -> Option<Holder> {
        let mut lines = text.lines();
        if lines.next()? != VERSION_LINE {
            return None;
        }
        let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
        let host = lines.next()?.strip_prefix("host ")?.to_owned();
        let time = lines.next()?.strip_prefix("time ")?.parse().ok()?;
        Some(Holder { pid, host, time })
    }
}

/// Clears the lock at `path` when it is stale. Returns whether the caller should try again.
fn take_over_if_stale(path: &Path, stale_after: Duration) -> Result<bool, PluginError> {
    let (meta, text) = match (fs::symlink_metadata(path), fs::read(path)) {
        (Ok(meta), Ok(text)) => (meta, text),
        // Released between our create and our look: try again.
        (Err(e), _) | (_, Err(e)) if e.kind() == ErrorKind::NotFound => return Ok(true),
        (Err(e), _) | (_, Err(e)) => return Err(PluginError::io("reading the lock file", &e)),
    };
    let holder = Holder::parse(&String::from_utf8_lossy(&text));
    let Some(reason) = stale_reason(holder.as_ref(), meta.modified().ok(), stale_after) else {
        return Ok(false);
    };
    // Move the stale file aside under a name of our own, then check it is the file we judged: if
    // another session took it over first, what we moved is its fresh lock, and we put it back.
    let aside = path.with_extension(format!("lock.stale.{}.{}", std::process::id(), nanos()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(PluginError::io("moving the stale lock aside", &e)),
    }
    let moved = fs::symlink_metadata(&aside).map(|m| (m.dev(), m.ino()));
    if moved.is_ok_and(|id| id == (meta.dev(), meta.ino())) {
        log::info!("{}: taking over a stale lock ({reason})", path.display());
        let _ = fs::remove_file(&aside);
        Ok(true)
    } else {
        // `hard_link` fails rather than replace a lock created in the meantime.
        let _ = fs::hard_link(&aside, path);
        let _ = fs::remove_file(&aside);
        Ok(false)
    }
}

/// Why a lock is stale, or `None` when it is live.
pub fn stale_reason(
    holder: Option<&Holder>,
    mtime: Option<SystemTime>,
    stale_after: Duration,
) -> Option<String> {
    if let Some(h) = holder {
        if h.host == our_host() && h.pid != std::process::id() && pid_is_gone(h.pid) {
            return Some(format!("pid {} on this host is gone", h.pid));
        }
    }
    let mtime_secs = mtime
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let last_sign = holder.map_or(0, |h| h.time).max(mtime_secs);
    let age = unix_now().saturating_sub(last_sign);
    (age > stale_after.as_secs()).then(|| format!("untouched for {age}s"))
}

/// True only when we can tell the process is gone: Linux's `/proc` is mounted (we see ourselves)
/// and has no entry for `pid`. Without `/proc` the time bound decides.
fn pid_is_gone(pid: u32) -> bool {
    let proc = Path::new("/proc");
    proc.join("self").exists() && !proc.join(pid.to_string()).exists()
}

/// The contention message, naming the holder when the file says who it is.
fn describe(path: &Path) -> String {
    let holder = fs::read(path)
        .ok()
        .and_then(|t| Holder::parse(&String::from_utf8_lossy(&t)));
    match holder {
        Some(h) => format!(
            "{} is held by pid {} on {} since {}",
            path.display(),
            h.pid,
            h.host,
            h.time
        ),
        None => format!("{} is held by another session", path.display()),
    }
}

fn our_host() -> String {
    // A host name with a line break would break the file format; none has one in practice.
    gethostname::gethostname()
        .to_string_lossy()
        .replace(['\n', '\r'], "?")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Sets a file's mtime; tests use it to age locks and messages.
#[cfg(test)]
pub fn set_mtime(path: &Path, time: SystemTime) -> std::io::Result<()> {
    fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_text_round_trips() {
        let me = Holder::me();
        assert_eq!(Holder::parse(&me.to_text()), Some(me));
        assert_eq!(Holder::parse("poppet-pop3-lock 1\npid x\n"), None);
        assert_eq!(Holder::parse(""), None);
    }

    #[test]
    fn staleness() {
        let bound = Duration::from_secs(60);
        let now = SystemTime::now();
        let old = UNIX_EPOCH + Duration::from_secs(1000);
        let mut live = Holder::me();
        assert_eq!(stale_reason(Some(&live), Some(now), bound), None);
        live.host = "elsewhere.invalid".into();
        live.pid = 4_000_000_000;
        assert_eq!(stale_reason(Some(&live), Some(now), bound), None);
        live.time = 1000;
        assert!(stale_reason(Some(&live), Some(old), bound).is_some());
        // A recent mtime (a touching session) keeps an old `time` alive.
        assert_eq!(stale_reason(Some(&live), Some(now), bound), None);
        let mut dead_here = Holder::me();
        dead_here.pid = 4_000_000_000;
        assert!(stale_reason(Some(&dead_here), Some(now), bound).is_some());
        assert_eq!(stale_reason(None, Some(now), bound), None);
        assert!(stale_reason(None, Some(old), bound).is_some());
    }
}
