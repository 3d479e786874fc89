//! The locks: the ones MDAs take while they append (dotlock and fcntl, in a configurable order),
//! and the exclusive POP3 session lock.
//!
//! **Delivery locks.** Every Debian MDA that writes mbox files takes a `file.lock` dotlock and a
//! whole-file `fcntl` lock, dotlock first: Postfix local(8) (`mailbox_delivery_lock = fcntl,
//! dotlock`; `mbox_open()` creates the dotlock, then opens the file and takes the kernel lock),
//! procmail (`Locking strategies: dotlocking, fcntl()`), Dovecot's LDA (`mbox_write_locks =
//! dotlock fcntl`). We take the same locks in the configured order (by default that one), each
//! without blocking; when one is busy we let go of the ones we have, wait a little and start over,
//! as Debian's locking discussion recommends for programs that must not deadlock with a writer
//! using the other order. The whole attempt is bounded by `lock_timeout`.
//!
//! Our `fcntl` lock is an open file description lock (`F_OFD_SETLK`, Linux 3.15+): it conflicts
//! with the classic `F_SETLK` locks MDAs take, but unlike them it is not silently released when
//! any other descriptor of the same file is closed in this process (a retrieval of the same mbox
//! on the thread pool would otherwise drop the lock under a commit).
//!
//! A dotlock holds our pid. It is stale, and removed, when its pid does not exist on this host
//! (`/proc` tells) or when neither the lock nor the mbox has changed for `dotlock_stale_after`
//! (liblockfile: 5 minutes). We touch our own dotlock while we hold it, so a long commit is never
//! taken for a dead one.
//!
//! **Session lock.** RFC 1939 §8: the server "should acquire an exclusive-access lock on the
//! maildrop". The delivery locks are released between the snapshot and the commit, so the POP3
//! lock is separate: an OFD lock on `.<mbox name>.poppet-session` beside the mbox. The kernel drops
//! it when the process dies, so a crash never leaves a session lock behind. The file is never
//! removed (removing a lock file while another process opens it would let two sessions lock two
//! different files).

use crate::settings::LockKind;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;
use poppet_sdk::PluginError;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Why a lock attempt did not succeed.
#[derive(Debug)]
pub enum Busy {
    /// Someone else holds it: try again later.
    Held(String),
    /// It cannot be taken at all (permissions, I/O).
    Failed(PluginError),
}

/// Takes (`true`) or releases (`false`) a whole-file OFD write lock without blocking.
pub fn ofd_lock(file: &File, lock: bool) -> Result<bool, Errno> {
    let request = libc::flock {
        l_type: if lock { libc::F_WRLCK } else { libc::F_UNLCK } as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        // Zero: to the end of the file, however far it grows (the MDAs lock the same range).
        l_len: 0,
        // Must be 0 for OFD locks.
        l_pid: 0,
    };
    match fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&request)) {
        Ok(_) => Ok(true),
        Err(Errno::EAGAIN | Errno::EACCES) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A held `file.lock`. Dropping it removes the file if it is still ours.
#[derive(Debug)]
pub struct Dotlock {
    toucher: Toucher,
}

/// What keeps a dotlock fresh: its path and identity, so only our own file is ever touched.
#[derive(Debug, Clone)]
pub struct Toucher {
    path: PathBuf,
    id: (u64, u64),
}

impl Toucher {
    /// Marks the lock as in use now, so nobody takes it for a dead holder's.
    pub fn touch(&self) {
        if let Ok(file) = OpenOptions::new().write(true).open(&self.path) {
            if file.metadata().is_ok_and(|m| (m.dev(), m.ino()) == self.id) {
                let _ = file.set_modified(SystemTime::now());
            }
        }
    }
}

impl Dotlock {
    /// The dotlock path of `mbox`.
    pub fn path_of(mbox: &Path) -> PathBuf {
        let mut name = mbox.file_name().unwrap_or_default().to_owned();
        name.push(".lock");
        mbox.with_file_name(name)
    }

    /// One attempt to create `mbox.lock`, removing a stale one first.
    pub fn try_acquire(mbox: &Path, stale_after: Duration) -> Result<Dotlock, Busy> {
        let path = Dotlock::path_of(mbox);
        for _ in 0..2 {
            let created = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path);
            match created {
                Ok(mut file) => {
                    // The pid, as liblockfile writes it, so others can tell when we are gone.
                    let _ = writeln!(file, "{}", std::process::id());
                    let id = file.metadata().map(|m| (m.dev(), m.ino()));
                    return match id {
                        Ok(id) => Ok(Dotlock {
                            toucher: Toucher { path, id },
                        }),
                        Err(e) => {
                            let _ = fs::remove_file(&path);
                            Err(Busy::Failed(PluginError::io("creating the dotlock", &e)))
                        }
                    };
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    match stale_reason(&path, mbox, stale_after) {
                        Some(why) => {
                            log::info!("{}: removing a stale dotlock ({why})", path.display());
                            match fs::remove_file(&path) {
                                Ok(()) => {}
                                Err(e) if e.kind() == ErrorKind::NotFound => {}
                                Err(e) => {
                                    return Err(Busy::Failed(PluginError::io(
                                        format!("removing the stale {}", path.display()),
                                        &e,
                                    )));
                                }
                            }
                        }
                        None => return Err(Busy::Held(format!("{} exists", path.display()))),
                    }
                }
                Err(e) => {
                    return Err(Busy::Failed(PluginError::io(
                        format!(
                            "creating {} (the mail directory must be writable for dotlocks)",
                            path.display()
                        ),
                        &e,
                    )));
                }
            }
        }
        Err(Busy::Held(format!("{} keeps coming back", path.display())))
    }

    /// What keeps this lock fresh from another thread.
    pub fn toucher(&self) -> Toucher {
        self.toucher.clone()
    }
}

impl Drop for Dotlock {
    fn drop(&mut self) {
        let Toucher { path, id } = &self.toucher;
        if fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == *id) {
            if let Err(e) = fs::remove_file(path) {
                log::warn!("removing {}: {e}", path.display());
            }
        }
    }
}

/// Why the dotlock at `path` is stale, or `None` while its holder may be alive.
fn stale_reason(path: &Path, mbox: &Path, stale_after: Duration) -> Option<String> {
    let text = fs::read_to_string(path).unwrap_or_default();
    if let Ok(pid) = text.trim().parse::<u32>() {
        let proc = Path::new("/proc");
        if pid != 0 && proc.join("self").exists() && !proc.join(pid.to_string()).exists() {
            return Some(format!("pid {pid} is gone"));
        }
    }
    let changed = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let newest = [changed(path), changed(mbox)].into_iter().flatten().max()?;
    let age = SystemTime::now().duration_since(newest).unwrap_or_default();
    (age > stale_after).then(|| format!("neither it nor the mbox changed for {}s", age.as_secs()))
}

/// The delivery locks, held. Dropping releases them, the last taken first.
#[derive(Debug)]
pub struct DeliveryLocks {
    /// The mbox opened read-write, carrying the fcntl lock when one was asked for; `None` when the
    /// mbox does not exist.
    pub file: Option<File>,
    fcntl_held: bool,
    /// The dotlock.
    pub dotlock: Option<Dotlock>,
    /// The order they were taken in, to release in reverse.
    order: Vec<LockKind>,
}

impl DeliveryLocks {
    /// Takes `kinds` on `mbox`, in order, within `timeout`. A mbox that does not exist is not an
    /// error: `file` is `None`.
    pub fn acquire(
        mbox: &Path,
        kinds: &[LockKind],
        timeout: Duration,
        stale_after: Duration,
    ) -> Result<DeliveryLocks, PluginError> {
        let deadline = Instant::now() + timeout;
        // Short at first (a delivery takes milliseconds), growing to 1s, Postfix's retry delay.
        let mut pause = Duration::from_millis(5);
        loop {
            match DeliveryLocks::try_once(mbox, kinds, stale_after) {
                Ok(locks) => return Ok(locks),
                Err(Busy::Failed(e)) => return Err(e),
                Err(Busy::Held(why)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(PluginError::temporary(format!(
                            "{}: could not lock the mailbox within {}s: {why}",
                            mbox.display(),
                            timeout.as_secs()
                        )));
                    }
                    // A little jitter so two waiters do not retry in step.
                    let jitter = Duration::from_micros(u64::from(
                        SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.subsec_micros())
                            % 1000,
                    ));
                    std::thread::sleep((pause + jitter).min(deadline - now));
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn try_once(
        mbox: &Path,
        kinds: &[LockKind],
        stale_after: Duration,
    ) -> Result<DeliveryLocks, Busy> {
        let mut held = DeliveryLocks {
            file: open_mbox(mbox).map_err(Busy::Failed)?,
            fcntl_held: false,
            dotlock: None,
            order: Vec::new(),
        };
        for kind in kinds {
            match kind {
                LockKind::Dotlock => held.dotlock = Some(Dotlock::try_acquire(mbox, stale_after)?),
                LockKind::Fcntl => {
                    if let Some(file) = &held.file {
                        match ofd_lock(file, true) {
                            Ok(true) => held.fcntl_held = true,
                            Ok(false) => {
                                return Err(Busy::Held(format!(
                                    "{} is fcntl-locked",
                                    mbox.display()
                                )));
                            }
                            Err(e) => {
                                return Err(Busy::Failed(PluginError::io(
                                    format!("fcntl-locking {}", mbox.display()),
                                    &std::io::Error::from(e),
                                )));
                            }
                        }
                    }
                }
            }
            held.order.push(*kind);
        }
        // Opened before the locks, so the path may have been replaced meanwhile (a writer that
        // rewrote the file under its own locks): then this descriptor is not the mbox.
        if let Some(file) = &held.file {
            let now = fs::metadata(mbox).map(|m| (m.dev(), m.ino())).ok();
            let ours = file.metadata().map(|m| (m.dev(), m.ino())).ok();
            if now != ours {
                return Err(Busy::Held(format!("{} was replaced", mbox.display())));
            }
        } else if mbox.exists() {
            return Err(Busy::Held(format!("{} was just created", mbox.display())));
        }
        Ok(held)
    }

    /// Touches the dotlock (during long work).
    pub fn touch(&self) {
        if let Some(dotlock) = &self.dotlock {
            dotlock.toucher.touch();
        }
    }
}

impl Drop for DeliveryLocks {
    fn drop(&mut self) {
        for kind in self.order.iter().rev() {
            match kind {
                LockKind::Fcntl if self.fcntl_held => {
                    if let Some(file) = &self.file {
                        let _ = ofd_lock(file, false);
                    }
                }
                LockKind::Dotlock => drop(self.dotlock.take()),
                LockKind::Fcntl => {}
            }
        }
    }
}

/// Opens the mbox read-write (an fcntl write lock needs it, and so will a commit); `None` when it
/// does not exist.
fn open_mbox(mbox: &Path) -> Result<Option<File>, PluginError> {
    match OpenOptions::new().read(true).write(true).open(mbox) {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PluginError::io(format!("opening {}", mbox.display()), &e)),
    }
}

/// The exclusive POP3 session lock of one mbox. Dropping it releases it.
#[derive(Debug)]
pub struct SessionLock {
    _file: File,
}

impl SessionLock {
    /// The session lock file of `mbox`.
    pub fn path_of(mbox: &Path) -> PathBuf {
        let mut name = std::ffi::OsString::from(".");
        name.push(mbox.file_name().unwrap_or_default());
        name.push(".poppet-session");
        mbox.with_file_name(name)
    }

    /// Takes the lock, or fails with [`poppet_sdk::ErrorCode::LOCKED`] at once.
    pub fn acquire(mbox: &Path) -> Result<SessionLock, PluginError> {
        let path = SessionLock::path_of(mbox);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| PluginError::io(format!("opening {}", path.display()), &e))?;
        match ofd_lock(&file, true) {
            Ok(true) => Ok(SessionLock { _file: file }),
            Ok(false) => Err(PluginError::locked(format!(
                "{} is open in another POP3 session",
                mbox.display()
            ))),
            Err(e) => Err(PluginError::io(
                format!("locking {}", path.display()),
                &std::io::Error::from(e),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_locks_exclude_each_other_within_one_process() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("user");
        let first = SessionLock::acquire(&mbox).expect("first");
        let err = SessionLock::acquire(&mbox).expect_err("second");
        assert_eq!(err.code, poppet_sdk::ErrorCode::LOCKED);
        drop(first);
        SessionLock::acquire(&mbox).expect("after release");
    }

    #[test]
    fn dotlocks_exclude_and_stale_ones_are_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("user");
        let long = Duration::from_secs(300);
        let held = Dotlock::try_acquire(&mbox, long).expect("first");
        assert!(matches!(
            Dotlock::try_acquire(&mbox, long),
            Err(Busy::Held(_))
        ));
        drop(held);
        assert!(!Dotlock::path_of(&mbox).exists());
        // A dead pid's lock goes at once (pid_max is at most 2^22 on Linux).
        fs::write(Dotlock::path_of(&mbox), "4999999\n").expect("write");
        if Path::new("/proc/self").exists() {
            drop(Dotlock::try_acquire(&mbox, long).expect("dead pid"));
        }
        // An unknown holder's lock goes once it is old.
        fs::write(Dotlock::path_of(&mbox), "").expect("write");
        assert!(matches!(
            Dotlock::try_acquire(&mbox, long),
            Err(Busy::Held(_))
        ));
        let old = SystemTime::now() - Duration::from_secs(600);
        File::options()
            .write(true)
            .open(Dotlock::path_of(&mbox))
            .and_then(|f| f.set_modified(old))
            .expect("age");
        drop(Dotlock::try_acquire(&mbox, long).expect("old lock"));
    }

    #[test]
    fn delivery_locks_time_out_and_release_what_they_took() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("user");
        fs::write(&mbox, "").expect("write");
        let kinds = [LockKind::Dotlock, LockKind::Fcntl];
        let long = Duration::from_secs(300);
        // Someone holds the fcntl lock (another descriptor: OFD locks conflict within a process).
        let other = File::options().write(true).open(&mbox).expect("open");
        assert!(ofd_lock(&other, true).expect("lock"));
        let err = DeliveryLocks::acquire(&mbox, &kinds, Duration::from_millis(50), long)
            .expect_err("busy");
        assert_eq!(err.code, poppet_sdk::ErrorCode::TEMPORARY);
        // The dotlock taken before the busy fcntl lock was given back.
        assert!(!Dotlock::path_of(&mbox).exists());
        assert!(ofd_lock(&other, false).expect("unlock"));
        let held =
            DeliveryLocks::acquire(&mbox, &kinds, Duration::from_secs(1), long).expect("free now");
        assert!(Dotlock::path_of(&mbox).exists());
        assert!(!ofd_lock(&other, true).expect("try"));
        drop(held);
        assert!(!Dotlock::path_of(&mbox).exists());
        assert!(ofd_lock(&other, true).expect("free"));
    }

    #[test]
    fn a_missing_mbox_is_no_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mbox = dir.path().join("nobody");
        let held = DeliveryLocks::acquire(
            &mbox,
            &[LockKind::Dotlock, LockKind::Fcntl],
            Duration::from_secs(1),
            Duration::from_secs(300),
        )
        .expect("locks");
        assert!(held.file.is_none());
    }
}
