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
//! poppet-pop3-lock 2
//! pid 4242
//! host mail1.example.org
//! instance 0b5c8d1e-6f3a-4c2e-9a77-5d1f2e3c4b5a/123456
//! time 1700000000
//! ```
//! `instance` tells apart two processes that had the same pid: Linux's boot id and the process's
//! start time (`/proc/self/stat` field 22), or `-` where `/proc` cannot tell. A server in a
//! container is pid 1 at every start, so after a crash the old lock names our own pid; without the
//! instance it could only age out. Version 1 files (no `instance` line) are still read, and never
//! judged by pid when they name ours: an older copy of this plugin loaded in the same process (a
//! live reload loads a new library beside the old one) may hold them.
//!
//! A lock is stale, and is taken over, when
//! - its host is ours and its pid is ours, but its instance is not (an earlier run of this server);
//! - its host is ours and its pid no longer exists, or now belongs to another instance (reused);
//! - or neither its `time` nor its file's mtime is younger than the configured bound.
//!
//! A live session keeps the mtime fresh: the store's refresher touches every lock it holds every
//! third of the bound (see [`crate::refresh`]). A file that cannot be parsed (a lock being written
//! right now, or garbage) is judged by its mtime alone.
//! Comparing host names assumes, as every dotlock does, that a host name names one pid namespace.
//!
//! Before a commit deletes anything, the session checks that the file is still the one it created
//! with the text it wrote ([`SessionLock::verify`]): a session that was judged stale (a process
//! stopped for longer than the bound) and taken over must not delete messages under the new
//! session's feet.
//!
//! A released lock is not removed but marked (its last octet, the newline after `time`, becomes
//! [`RELEASED_MARK`], so the text no longer parses) and renamed to `poppet-pop3.lock.spare`, and
//! the next session renames that back (touched first, so that until its text is written the mtime
//! says "being written"), both with `renameat2`'s `RENAME_NOREPLACE`, which is as exclusive as
//! `O_EXCL`. One inode then serves every session of the maildir. A new file per login cost an
//! inode allocation and an orphan release each time, and on ext4 without a journal (this project's
//! benchmark machine) each allocation also scans past every inode freed in the last ~30 seconds:
//! at 4,000 logins a second that scan was a third of the server's CPU, growing with the login
//! rate. Where the flag is refused (NFS) or there is no spare, locks are created and removed as
//! before.
//!
//! The mark is at the end so that a reader racing the next holder's write never sees a valid
//! text that is not the holder's: what it can read is the new text's first octets over the old
//! one's last, and every line of that up to the old `time` line, which ends in the mark, is either
//! the new holder's, a line with the wrong key, or cut short. (Emptying the file at release did the
//! same, at the cost of freeing its block and allocating it again at the next login: about 9 µs of
//! the 190 µs of server CPU of a `{PLAIN}` session.)

use poppet_sdk::PluginError;
use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The lock file's name inside the maildir; outside `cur/`, `new/` and `tmp/`, where maildir
/// readers look, and not starting with `.`, which Maildir++ reserves for folders.
pub const LOCK_FILE: &str = "poppet-pop3.lock";

/// Where a released lock's file waits, marked, to be the next session's lock (see the module docs).
pub const SPARE_FILE: &str = "poppet-pop3.lock.spare";

/// What a release writes over the last octet of its text (a newline), so that it no longer parses.
pub const RELEASED_MARK: u8 = b'#';

const VERSION_LINE: &str = "poppet-pop3-lock 2";
/// Still read: written by earlier versions, without the `instance` line.
const VERSION_1_LINE: &str = "poppet-pop3-lock 1";

/// A held lock. Releasing or dropping it removes the file, if the file is still ours.
#[derive(Debug)]
pub struct SessionLock {
    path: PathBuf,
    /// Device and inode of our file, so we never remove or touch a lock someone else created after
    /// taking ours over.
    id: (u64, u64),
    /// What we wrote, compared before a commit: an inode number can be reused by a new lock.
    text: String,
    /// Set once released; a released lock is never touched again.
    released: AtomicBool,
    /// A stale lock was cleared to take this one: a session ended without releasing (a crash).
    took_over: bool,
}

/// What [`take_over_if_stale`] found.
enum Found {
    /// A live holder's lock: contention.
    Live,
    /// No lock any more (released between our create and our look): try again.
    Gone,
    /// A stale lock, now moved aside and removed: try again.
    Cleared,
}

/// What a lock file says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// Which run of the process `pid` (see the module docs); `None` when unknown (`-`, or a
    /// version 1 file).
    pub instance: Option<String>,
    /// Seconds since the Unix epoch when it was taken.
    pub time: u64,
}

impl SessionLock {
    /// Takes the lock of the maildir at `dir`, taking over a stale one. Contention is
    /// [`poppet_sdk::ErrorCode::LOCKED`].
    pub fn acquire(dir: &Path, stale_after: Duration) -> Result<SessionLock, PluginError> {
        let path = dir.join(LOCK_FILE);
        let spare = dir.join(SPARE_FILE);
        let mut took_over = false;
        // Two rounds suffice: one to find and clear a stale lock, one to create ours. More would
        // only mean another session keeps winning the race, which is contention.
        for _ in 0..3 {
            match create(&path, &spare) {
                Ok(mut file) => {
                    let text = Holder::me().to_text();
                    let write = file.write_all(text.as_bytes());
                    // A recycled file still holds the text of the session before, marked; cut what
                    // is left after ours (it was longer), which `is_ours` compares octet for octet.
                    let id = file.metadata().and_then(|m| {
                        if m.len() > text.len() as u64 {
                            file.set_len(text.len() as u64)?;
                        }
                        Ok((m.dev(), m.ino()))
                    });
                    let lock = match id {
                        Ok(id) => SessionLock {
                            path,
                            id,
                            text,
                            released: AtomicBool::new(false),
                            took_over,
                        },
                        Err(e) => {
                            let _ = fs::remove_file(&path);
                            return Err(PluginError::io("checking the new lock file", &e));
                        }
                    };
                    if let Err(e) = write {
                        lock.discard_unwritten();
                        return Err(PluginError::io("writing the lock file", &e));
                    }
                    return Ok(lock);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    match take_over_if_stale(&path, stale_after)? {
                        Found::Live => return Err(PluginError::locked(describe(&path))),
                        Found::Gone => {}
                        Found::Cleared => took_over = true,
                    }
                }
                Err(e) => return Err(PluginError::io(format!("creating {}", path.display()), &e)),
            }
        }
        Err(PluginError::locked(describe(&path)))
    }

    /// Whether a stale lock was taken over to take this one, i.e. an earlier session ended without
    /// releasing it (its server crashed or was killed), possibly leaving temporary files behind.
    pub fn took_over(&self) -> bool {
        self.took_over
    }

    /// Marks the lock as in use now (its mtime), so a long but active session is never stale.
    /// Failures are ignored: the worst case is a takeover after the stale bound, which
    /// [`SessionLock::verify`] then notices before a commit.
    pub fn touch(&self) {
        if self.released.load(Ordering::Acquire) {
            return;
        }
        if let Ok(file) = open_existing(&self.path) {
            if file.metadata().is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
                let _ = file.set_modified(SystemTime::now());
            }
        }
    }

    /// Checks that the lock file is still the one we created, with the text we wrote. Otherwise
    /// another session took it over (we were judged stale) and may be working on the maildrop, so
    /// the caller must change nothing: [`poppet_sdk::ErrorCode::LOCKED`].
    pub fn verify(&self) -> Result<(), PluginError> {
        if !self.released.load(Ordering::Acquire) && self.is_ours() {
            return Ok(());
        }
        let now = if fs::symlink_metadata(&self.path).is_ok() {
            describe(&self.path)
        } else {
            format!("{} is gone", self.path.display())
        };
        Err(PluginError::locked(format!(
            "the session lock was taken over by another session ({now}); nothing was changed"
        )))
    }

    /// Takes the lock file away if it is still ours: marked and renamed to [`SPARE_FILE`] for the
    /// next session, or removed where that cannot be done. Only the first call does anything, so a
    /// commit releases the lock at once even while the refresher still holds a reference to it.
    pub fn release(&self) {
        if self.released.swap(true, Ordering::AcqRel) {
            return;
        }
        // Checking then removing leaves a tiny window in which a takeover could slip in; that only
        // happens to a session that was stale for the whole bound, and it is what dotlocks do.
        let Some(file) = self.open_if_ours() else {
            return;
        };
        let spare = self.path.with_file_name(SPARE_FILE);
        let last = self.text.len().saturating_sub(1) as u64;
        if file.write_all_at(&[RELEASED_MARK], last).is_ok()
            && rename_noreplace(&self.path, &spare).is_ok()
        {
            return;
        }
        if let Err(e) = fs::remove_file(&self.path) {
            log::warn!("removing {}: {e}", self.path.display());
        }
    }

    /// Removes the file we just created when writing our text into it failed (a full disk, a
    /// quota). [`SessionLock::release`] recognises our file by its text too, which a failed write
    /// did not leave there: the empty file would stay, and keep the user out for the whole stale
    /// bound. The identity is enough here: nobody can have taken over a file this young.
    fn discard_unwritten(&self) {
        self.released.store(true, Ordering::Release);
        if fs::symlink_metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
            if let Err(e) = fs::remove_file(&self.path) {
                log::warn!("removing {}: {e}", self.path.display());
            }
        }
    }

    /// The lock file is the one we created (device and inode) and still says what we wrote (an
    /// inode number freed by a takeover can be reused by the new lock). Any error reading it
    /// counts as "not ours": refusing a commit or leaving a file behind is the safe side.
    fn is_ours(&self) -> bool {
        self.open_if_ours().is_some()
    }

    /// The lock file, open for reading and writing, when [`SessionLock::is_ours`]. The identity is
    /// the open file's, so what the caller then changes is certainly our file.
    fn open_if_ours(&self) -> Option<fs::File> {
        let text = self.text.as_bytes();
        let mut file = open_existing(&self.path).ok()?;
        let meta = file.metadata().ok()?;
        if (meta.dev(), meta.ino()) != self.id || meta.len() != text.len() as u64 {
            return None;
        }
        // One read of the expected length plus one (not `fs::read`'s second read): a commit
        // checks twice, on every session.
        let read = crate::readahead::read_whole(&mut file, text.len() as u64).ok()??;
        (read.data.get(..read.filled) == Some(text)).then_some(file)
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        self.release();
    }
}

impl Holder {
    /// This process on this host, now.
    pub fn me() -> Holder {
        Holder {
            pid: our_pid(),
            host: our_host().to_owned(),
            instance: our_instance().map(str::to_owned),
            time: unix_now(),
        }
    }

    /// The lock file text (version 2).
    pub fn to_text(&self) -> String {
        format!(
            "{VERSION_LINE}\npid {}\nhost {}\ninstance {}\ntime {}\n",
            self.pid,
            self.host,
            self.instance.as_deref().unwrap_or("-"),
            self.time
        )
    }

    /// Parses a lock file's text, version 2 or 1; `None` when it is not a complete lock.
    pub fn parse(text: &str) -> Option<Holder> {
        let mut lines = text.lines();
        let version = lines.next()?;
        if version != VERSION_LINE && version != VERSION_1_LINE {
            return None;
        }
        let pid = lines.next()?.strip_prefix("pid ")?.parse().ok()?;
        let host = lines.next()?.strip_prefix("host ")?.to_owned();
        let instance = if version == VERSION_LINE {
            match lines.next()?.strip_prefix("instance ")? {
                "-" | "" => None,
                id => Some(id.to_owned()),
            }
        } else {
            None
        };
        let time = lines.next()?.strip_prefix("time ")?.parse().ok()?;
        Some(Holder {
            pid,
            host,
            instance,
            time,
        })
    }
}

/// Creates the lock file at `path`, exclusively (`AlreadyExists` while a lock is there): the
/// spare a released lock left at `spare` when there is one, a new file otherwise.
///
/// The spare is touched before it is renamed in: its text does not parse until its new holder
/// writes (see [`RELEASED_MARK`]), and such a lock is judged by its mtime alone, which must then be
/// fresh (the release marked it at any time before). Racing sessions may both touch it; one rename
/// wins.
fn create(path: &Path, spare: &Path) -> std::io::Result<fs::File> {
    let now = nix::sys::time::TimeSpec::UTIME_NOW;
    let touched = nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        spare,
        &now,
        &now,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    );
    if touched.is_ok() {
        match rename_noreplace(spare, path) {
            Ok(()) => {
                let file = open_existing(path).and_then(|f| match f.metadata()?.is_file() {
                    true => Ok(f),
                    false => Err(std::io::Error::other("not a regular file")),
                });
                // Something else than our file under the spare's name (a link, a fifo): gone, and
                // a new file instead.
                if file.is_ok() {
                    return file;
                }
                let _ = fs::remove_file(path);
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => return Err(e),
            // Taken by another session since, or a file system without the flag (NFS): below.
            Err(_) => {}
        }
    }
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Opens an existing lock file for reading and writing, not through a symbolic link and without
/// blocking on a fifo, whatever someone with access to the maildir put there.
fn open_existing(path: &Path) -> std::io::Result<fs::File> {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
}

/// Renames `from` to `to` unless `to` exists (`AlreadyExists`), atomically: Linux's `renameat2`
/// with `RENAME_NOREPLACE` (local file systems; NFS has no such flag and refuses).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE)
            .map_err(std::io::Error::from)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (from, to);
        Err(std::io::Error::from(ErrorKind::Unsupported))
    }
}

/// Clears the lock at `path` when it is stale.
fn take_over_if_stale(path: &Path, stale_after: Duration) -> Result<Found, PluginError> {
    let (meta, text) = match (fs::symlink_metadata(path), fs::read(path)) {
        (Ok(meta), Ok(text)) => (meta, text),
        // Released between our create and our look: try again.
        (Err(e), _) | (_, Err(e)) if e.kind() == ErrorKind::NotFound => return Ok(Found::Gone),
        (Err(e), _) | (_, Err(e)) => return Err(PluginError::io("reading the lock file", &e)),
    };
    let holder = Holder::parse(&String::from_utf8_lossy(&text));
    let Some(reason) = stale_reason(holder.as_ref(), meta.modified().ok(), stale_after) else {
        return Ok(Found::Live);
    };
    // Move the stale file aside under a name of our own, then check it is the file we judged: if
    // another session took it over first, what we moved is its fresh lock, and we put it back.
    let aside = path.with_extension(format!("lock.stale.{}.{}", std::process::id(), nanos()));
    match fs::rename(path, &aside) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Found::Gone),
        Err(e) => return Err(PluginError::io("moving the stale lock aside", &e)),
    }
    let moved = fs::symlink_metadata(&aside).map(|m| (m.dev(), m.ino()));
    if moved.is_ok_and(|id| id == (meta.dev(), meta.ino())) {
        log::info!("{}: taking over a stale lock ({reason})", path.display());
        let _ = fs::remove_file(&aside);
        Ok(Found::Cleared)
    } else {
        // `hard_link` fails rather than replace a lock created in the meantime.
        let _ = fs::hard_link(&aside, path);
        let _ = fs::remove_file(&aside);
        Ok(Found::Live)
    }
}

/// Why a lock is stale, or `None` when it is live.
pub fn stale_reason(
    holder: Option<&Holder>,
    mtime: Option<SystemTime>,
    stale_after: Duration,
) -> Option<String> {
    if let Some(reason) = holder.and_then(dead_holder) {
        return Some(reason);
    }
    let mtime_secs = mtime
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let last_sign = holder.map_or(0, |h| h.time).max(mtime_secs);
    let age = unix_now().saturating_sub(last_sign);
    (age > stale_after.as_secs()).then(|| format!("untouched for {age}s"))
}

/// Why a holder on this host is certainly dead, or `None` when it may be alive (or is elsewhere).
fn dead_holder(h: &Holder) -> Option<String> {
    if h.host != our_host() {
        return None;
    }
    if h.pid == our_pid() {
        // Ours, or an earlier run that had our pid: the instance tells (unknown: keep it).
        let (theirs, ours) = (h.instance.as_deref()?, our_instance()?);
        return (theirs != ours).then(|| {
            format!(
                "pid {} on this host is an earlier run of this server (instance {theirs})",
                h.pid
            )
        });
    }
    if pid_is_gone(h.pid) {
        return Some(format!("pid {} on this host is gone", h.pid));
    }
    let theirs = h.instance.as_deref()?;
    let now = instance_of(&h.pid.to_string())?;
    (theirs != now).then(|| format!("pid {} on this host was reused (instance {theirs})", h.pid))
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

/// This process's id, asked once: every login takes a lock, and `getpid` is a system call. The
/// server never forks after loading its plugins.
fn our_pid() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// This host's name, asked once (as Dovecot does): every login takes a lock, and each asking is a
/// system call.
fn our_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        // A host name with a line break would break the file format; none has one in practice.
        gethostname::gethostname()
            .to_string_lossy()
            .replace(['\n', '\r'], "?")
    })
}

/// This process's instance id (see the module docs), read once.
///
/// It is derived from `/proc` rather than drawn at random so that every copy of this plugin loaded
/// into one process (live reload loads a new library beside the old one, each with its own
/// statics) agrees on it: a random id per copy would make one copy's live lock look stale to the
/// other.
pub fn our_instance() -> Option<&'static str> {
    static INSTANCE: OnceLock<Option<String>> = OnceLock::new();
    INSTANCE.get_or_init(|| instance_of("self")).as_deref()
}

/// `<boot id>/<start time>` of the process `pid` (or `self`), from Linux's `/proc`.
fn instance_of(pid: &str) -> Option<String> {
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let boot = boot.trim();
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let start = start_time(&stat)?;
    let usable = !boot.is_empty() && !boot.contains(char::is_whitespace);
    usable.then(|| format!("{boot}/{start}"))
}

/// Field 22 (`starttime`, clock ticks after boot) of a `/proc/<pid>/stat` line. Field 2 is the
/// command name in parentheses and may itself hold spaces and parentheses, so counting starts after
/// the last `)`, where field 3 begins.
fn start_time(stat: &str) -> Option<u64> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    after_comm.split_whitespace().nth(22 - 3)?.parse().ok()
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
        assert_eq!(Holder::parse(&me.to_text()), Some(me.clone()));
        let unknown = Holder {
            instance: None,
            ..me
        };
        assert!(unknown.to_text().contains("\ninstance -\n"));
        assert_eq!(Holder::parse(&unknown.to_text()), Some(unknown));
        assert_eq!(Holder::parse("poppet-pop3-lock 1\npid x\n"), None);
        assert_eq!(
            Holder::parse("poppet-pop3-lock 2\npid 1\nhost h\ntime 5\n"),
            None
        );
        assert_eq!(
            Holder::parse("poppet-pop3-lock 3\npid 1\nhost h\ntime 5\n"),
            None
        );
        assert_eq!(Holder::parse(""), None);
    }

    #[test]
    fn f4_version_1_locks_are_still_read() {
        let v1 = Holder::parse("poppet-pop3-lock 1\npid 42\nhost h.example\ntime 1700000000\n");
        assert_eq!(
            v1,
            Some(Holder {
                pid: 42,
                host: "h.example".into(),
                instance: None,
                time: 1_700_000_000,
            })
        );
    }

    #[test]
    fn f4_the_start_time_is_field_22_even_with_odd_command_names() {
        let stat = "77 (a) b (c)) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 100 2";
        assert_eq!(start_time(stat), Some(987_654));
        assert_eq!(start_time("77 (x) S 1"), None);
        if Path::new("/proc/self/stat").exists() {
            let ours = our_instance().expect("instance on Linux");
            assert_eq!(Some(ours.to_owned()), instance_of("self"));
            assert!(!ours.contains(char::is_whitespace));
        }
    }

    #[test]
    fn f4_a_lock_with_our_pid_from_an_earlier_run_is_stale() {
        let bound = Duration::from_secs(60);
        let now = SystemTime::now();
        let me = Holder::me();
        // Ourselves (another session of this process): live.
        assert_eq!(stale_reason(Some(&me), Some(now), bound), None);
        let earlier_run = Holder {
            instance: Some("other-boot/1".into()),
            ..me.clone()
        };
        let unknown = Holder {
            instance: None,
            ..me.clone()
        };
        if our_instance().is_some() {
            let why = stale_reason(Some(&earlier_run), Some(now), bound).expect("stale");
            assert!(why.contains("earlier run"), "{why}");
        }
        // Without an instance (version 1, or no /proc) only the time bound decides.
        assert_eq!(stale_reason(Some(&unknown), Some(now), bound), None);
        // Another host's pid numbers say nothing about ours.
        let elsewhere = Holder {
            host: "elsewhere.invalid".into(),
            ..earlier_run
        };
        assert_eq!(stale_reason(Some(&elsewhere), Some(now), bound), None);
    }

    #[test]
    fn f4_a_reused_pid_on_this_host_is_stale() {
        let bound = Duration::from_secs(60);
        let now = SystemTime::now();
        let parent = std::os::unix::process::parent_id();
        let Some(real) = instance_of(&parent.to_string()) else {
            return; // no /proc
        };
        let alive = Holder {
            pid: parent,
            instance: Some(real),
            ..Holder::me()
        };
        assert_eq!(stale_reason(Some(&alive), Some(now), bound), None);
        let reused = Holder {
            instance: Some("other-boot/1".into()),
            ..alive
        };
        let why = stale_reason(Some(&reused), Some(now), bound).expect("stale");
        assert!(why.contains("reused"), "{why}");
    }

    /// The lock of a maildir's sessions is one file, moved between two names: no inode is
    /// allocated after the first login, and each holder's file says exactly what it wrote.
    #[test]
    fn a_released_lock_is_the_next_sessions_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, spare) = (dir.path().join(LOCK_FILE), dir.path().join(SPARE_FILE));
        let bound = Duration::from_secs(60);
        let first = SessionLock::acquire(dir.path(), bound).expect("first");
        let inode = fs::metadata(&path).expect("lock").ino();
        assert!(!spare.exists());
        first.verify().expect("ours");
        let mut marked = first.text.clone().into_bytes();
        drop(first);
        assert!(!path.exists(), "released");
        assert_eq!(
            fs::metadata(&spare).expect("spare").ino(),
            inode,
            "same inode"
        );
        // Marked: the text of the session before with its last octet replaced, so it no longer
        // parses.
        *marked.last_mut().expect("text") = RELEASED_MARK;
        let kept = fs::read(&spare).expect("spare");
        assert_eq!(kept, marked);
        assert_eq!(Holder::parse(&String::from_utf8_lossy(&kept)), None);

        // Left with text longer than a holder's (no release of ours does that): cut to ours.
        fs::write(&spare, "x".repeat(400)).expect("plant");
        set_mtime(&spare, UNIX_EPOCH + Duration::from_secs(1000)).expect("age");
        let second = SessionLock::acquire(dir.path(), bound).expect("second");
        let meta = fs::metadata(&path).expect("lock");
        assert_eq!(meta.ino(), inode, "the spare was reused");
        assert_eq!(fs::read_to_string(&path).expect("read"), second.text);
        assert!(!spare.exists());
        second.verify().expect("ours");
        // Held: a third session is refused whether or not a spare is there.
        fs::write(&spare, "").expect("plant");
        let err = SessionLock::acquire(dir.path(), bound).expect_err("held");
        assert_eq!(err.code, poppet_sdk::ErrorCode::LOCKED);
        assert_eq!(fs::read_to_string(&path).expect("read"), second.text);
        // Released while a spare is already there: the lock file is removed instead.
        drop(second);
        assert!(!path.exists());
        assert_eq!(fs::metadata(&spare).expect("spare").len(), 0);
    }

    /// Sessions racing for one maildir, each taking and releasing its lock over and over: at no
    /// moment do two hold it, every holder finds its own text in the file, and the races between
    /// the spare's rename and the fallback create never leave the maildir locked for good.
    #[test]
    fn racing_sessions_never_hold_the_lock_together() {
        use std::sync::atomic::AtomicUsize;
        let dir = tempfile::tempdir().expect("tempdir");
        let holders = AtomicUsize::new(0);
        let (taken, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..300 {
                        let lock = match SessionLock::acquire(dir.path(), Duration::from_secs(60)) {
                            Ok(lock) => lock,
                            Err(e) => {
                                assert_eq!(e.code, poppet_sdk::ErrorCode::LOCKED, "{e}");
                                refused.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                        };
                        assert_eq!(holders.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        lock.verify().expect("the file is the holder's");
                        holders.fetch_sub(1, Ordering::SeqCst);
                        taken.fetch_add(1, Ordering::Relaxed);
                        drop(lock);
                    }
                });
            }
        });
        // Both outcomes happen (about 400 taken and 2,000 refused of 2,400 on two cores).
        assert!(taken.load(Ordering::Relaxed) > 0);
        assert!(taken.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed) == 8 * 300);
        // Free again: the next session gets it at once.
        SessionLock::acquire(dir.path(), Duration::from_secs(60)).expect("free after the race");
    }

    /// Between the rename and its holder's write a recycled lock holds the marked text of the
    /// session before, which is judged by the mtime alone: the spare is touched before it is
    /// renamed in, however long it waited, and the dead holder it names does not make it stale.
    #[test]
    fn a_marked_spare_being_taken_looks_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, spare) = (dir.path().join(LOCK_FILE), dir.path().join(SPARE_FILE));
        let mut gone = Holder::me();
        gone.pid = 4_000_000_000; // no such process
        let mut text = gone.to_text().into_bytes();
        // Unmarked, that text on an old file is a stale lock, taken over.
        fs::write(&path, &text).expect("plant");
        set_mtime(&path, UNIX_EPOCH + Duration::from_secs(1000)).expect("age");
        let bound = Duration::from_secs(60);
        assert!(matches!(
            take_over_if_stale(&path, bound),
            Ok(Found::Cleared)
        ));
        assert!(!path.exists());
        // Marked by its release and renamed in by the next session: live until it writes.
        *text.last_mut().expect("text") = RELEASED_MARK;
        fs::write(&spare, &text).expect("plant");
        set_mtime(&spare, UNIX_EPOCH + Duration::from_secs(1000)).expect("age");
        let file = create(&path, &spare).expect("renamed in");
        assert_eq!(file.metadata().expect("meta").len(), text.len() as u64);
        assert!(matches!(take_over_if_stale(&path, bound), Ok(Found::Live)));
        assert!(path.exists());
    }

    /// A reader racing the next holder's write sees the new text's first octets over the marked
    /// old text's last ones. Whatever the split, that never parses as a holder other than the new
    /// one (whose lines may be cut short, never mixed with the old holder's).
    #[test]
    fn a_half_written_recycled_lock_never_names_another_holder() {
        let holder = |pid, host: &str, instance: Option<&str>, time| Holder {
            pid,
            host: host.into(),
            instance: instance.map(str::to_owned),
            time,
        };
        let holders = [
            holder(7, "h", None, 5),
            holder(
                4242,
                "mail1.example",
                Some("0b5c8d1e/123456"),
                1_700_000_000,
            ),
            holder(4_194_303, "mx.example", Some("boot/9"), 1_800_000_000),
            holder(31, "mail1.example", Some("0b5c8d1e/1234567"), 1_700_000_001),
        ];
        for old in &holders {
            let mut marked = old.to_text().into_bytes();
            *marked.last_mut().expect("text") = RELEASED_MARK;
            for new in &holders {
                let text = new.to_text().into_bytes();
                for k in 0..=text.len() {
                    // The file as a read sees it: the new octets up to `k` over the old ones,
                    // as long as the longer of the two.
                    let mut seen = text[..k].to_vec();
                    seen.extend_from_slice(marked.get(k..).unwrap_or_default());
                    let parsed = Holder::parse(&String::from_utf8_lossy(&seen));
                    if let Some(p) = parsed {
                        assert_eq!(
                            (p.pid, &p.host, &p.instance),
                            (new.pid, &new.host, &new.instance),
                            "{:?}",
                            String::from_utf8_lossy(&seen)
                        );
                    }
                }
            }
        }
    }

    /// An emptied spare (as releases before the mark left it) is judged by its mtime too.
    #[test]
    fn a_spare_being_taken_looks_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (path, spare) = (dir.path().join(LOCK_FILE), dir.path().join(SPARE_FILE));
        fs::write(&spare, "").expect("plant");
        set_mtime(&spare, UNIX_EPOCH + Duration::from_secs(1000)).expect("age");
        let file = create(&path, &spare).expect("renamed in");
        assert_eq!(file.metadata().expect("meta").len(), 0);
        assert!(!spare.exists());
        // What another session sees at this moment: a lock being written, not a stale one.
        assert!(matches!(
            take_over_if_stale(&path, Duration::from_secs(60)),
            Ok(Found::Live)
        ));
        assert!(path.exists());
    }

    /// A spare that is not a plain file (a symbolic link someone planted) is never written
    /// through: the session gets a new file, and the link's target is untouched.
    #[test]
    fn a_spare_that_is_a_link_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("elsewhere");
        fs::write(&target, "precious\n").expect("target");
        std::os::unix::fs::symlink(&target, dir.path().join(SPARE_FILE)).expect("link");
        let lock = SessionLock::acquire(dir.path(), Duration::from_secs(60)).expect("lock");
        let path = dir.path().join(LOCK_FILE);
        assert!(fs::symlink_metadata(&path).expect("lock").is_file());
        assert_eq!(fs::read_to_string(&path).expect("read"), lock.text);
        assert_eq!(fs::read_to_string(&target).expect("target"), "precious\n");
        lock.verify().expect("ours");
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
