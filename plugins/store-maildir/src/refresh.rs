//! Keeping live session locks fresh in the background.
//!
//! A lock is judged stale when its mtime is older than `lock_stale_after`. Retrievals touch it,
//! but a live session may go much longer without one: a client that only sends NOOP, LIST or DELE,
//! or a slow one. Once its lock looked stale another session could take the maildrop over, and
//! both would then commit. So every store instance has one refresher thread that touches every
//! lock its sessions hold, every third of the bound: two refreshes can be missed (a busy machine,
//! a slow disk) before a live lock looks stale.
//!
//! One thread per store instance, not per session: a thousand idle sessions cost one wake-up per
//! period. It starts with the first session and stops when the store is dropped (a live reload
//! replaces the store). It only holds weak references, so a session that ends is simply forgotten.

use crate::lock::SessionLock;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// The refresher of one store instance. Dropping it stops its thread.
#[derive(Debug)]
pub struct Refresher {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    period: Duration,
    state: Mutex<State>,
    /// Wakes the thread to stop.
    wake: Condvar,
    /// Signalled after every pass (tests wait on it instead of sleeping).
    passed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    locks: Vec<Weak<SessionLock>>,
    /// When `locks` reaches this length, `register` forgets the ended sessions first. Without it
    /// only a pass did, every third of the stale bound (10 minutes by default): at a thousand
    /// sessions a second the dead entries (each keeping its `Arc` allocation) grew the server
    /// by about 100 MB between passes, found by the soak test.
    prune_at: usize,
    thread: Option<JoinHandle<()>>,
    stop: bool,
    passes: u64,
}

impl Refresher {
    /// A refresher for locks judged stale after `stale_after`. No thread runs until a lock is
    /// registered.
    pub fn new(stale_after: Duration) -> Refresher {
        // A bound of 1s (the minimum) still gives a positive period.
        let period = (stale_after / 3).max(Duration::from_millis(100));
        Refresher {
            shared: Arc::new(Shared {
                period,
                state: Mutex::new(State::default()),
                wake: Condvar::new(),
                passed: Condvar::new(),
            }),
        }
    }

    /// Keeps `lock` fresh for as long as anyone else holds it.
    pub fn register(&self, lock: &Arc<SessionLock>) {
        let mut state = self.shared.lock();
        if state.locks.len() >= state.prune_at {
            state.locks.retain(|w| w.strong_count() > 0);
            // Twice the live count: pruning stays amortised O(1) per registration however many
            // sessions are live, and the list never holds more dead entries than live ones + 64.
            state.prune_at = (2 * state.locks.len()).max(64);
        }
        state.locks.push(Arc::downgrade(lock));
        if state.thread.is_none() {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("poppet-maildir-locks".into())
                .spawn(move || shared.run());
            match spawned {
                Ok(handle) => state.thread = Some(handle),
                // Retried with the next session; meanwhile retrievals still touch their locks.
                Err(e) => log::warn!("maildir: cannot start the lock refresher: {e}"),
            }
        }
    }

    /// Blocks until `n` more passes have completed (tests).
    #[cfg(test)]
    pub fn wait_for_passes(&self, n: u64) {
        let mut state = self.shared.lock();
        let target = state.passes + n;
        while state.passes < target {
            state = self
                .shared
                .passed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The thread, taken out so a test can join it after dropping the store.
    #[cfg(test)]
    pub fn take_thread(&self) -> Option<JoinHandle<()>> {
        self.shared.lock().thread.take()
    }

    /// The number of registered locks, ended ones included (tests).
    #[cfg(test)]
    pub fn registered(&self) -> usize {
        self.shared.lock().locks.len()
    }

    /// The number of registered locks still alive (tests).
    #[cfg(test)]
    pub fn live_locks(&self) -> usize {
        let state = self.shared.lock();
        state.locks.iter().filter(|w| w.strong_count() > 0).count()
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        // Not joined: the thread may be in the middle of a touch on a slow (NFS) disk, and the
        // store may be dropped on the host's executor. It stops at its next wake-up.
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this mutex cannot leave the state inconsistent (plain pushes).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run(&self) {
        let mut state = self.lock();
        loop {
            state = self
                .wake
                .wait_timeout_while(state, self.period, |s| !s.stop)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            if state.stop {
                return;
            }
            state.locks.retain(|w| w.strong_count() > 0);
            let live: Vec<Arc<SessionLock>> =
                state.locks.iter().filter_map(Weak::upgrade).collect();
            // File I/O without the mutex, so registering a new session never waits for a disk.
            drop(state);
            for lock in &live {
                lock.touch();
            }
            // A session that ended meanwhile has released its lock already (`release`), so
            // dropping the last reference here removes nothing late.
            drop(live);
            state = self.lock();
            state.passes += 1;
            self.passed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn f3_the_refresher_touches_live_locks_and_forgets_ended_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let refresher = Refresher::new(Duration::from_millis(300));
        let lock =
            Arc::new(SessionLock::acquire(dir.path(), Duration::from_secs(60)).expect("lock"));
        refresher.register(&lock);
        let path = dir.path().join(crate::LOCK_FILE);
        let old = UNIX_EPOCH + Duration::from_secs(1000);
        crate::lock::set_mtime(&path, old).expect("age");
        refresher.wait_for_passes(2);
        let mtime = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert!(mtime > SystemTime::now() - Duration::from_secs(60));
        assert_eq!(refresher.live_locks(), 1);
        // As a maildrop does: released at once, even if a pass holds a reference right now.
        lock.release();
        drop(lock);
        assert!(!path.exists());
        // After a full pass the refresher holds no reference any more.
        refresher.wait_for_passes(1);
        assert_eq!(refresher.live_locks(), 0);
        let thread = refresher.take_thread().expect("started");
        drop(refresher);
        thread.join().expect("the thread stops with the store");
    }

    /// Regression (found by `tests/soak/soak.sh`): ended sessions were forgotten only by a pass,
    /// every third of the stale bound, so between passes a busy server kept one dead entry (and
    /// its allocation) per session: about 100 MB per 10 minutes at a thousand sessions a second.
    #[test]
    fn ended_sessions_are_forgotten_at_registration_not_only_by_the_periodic_pass() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A pass every 10 minutes: none happens during the test.
        let refresher = Refresher::new(Duration::from_secs(30 * 60));
        let live =
            Arc::new(SessionLock::acquire(dir.path(), Duration::from_secs(60)).expect("lock"));
        refresher.register(&live);
        let other = tempfile::tempdir().expect("tempdir");
        for _ in 0..2000 {
            let lock = Arc::new(
                SessionLock::acquire(other.path(), Duration::from_secs(60)).expect("lock"),
            );
            refresher.register(&lock);
            lock.release();
        }
        assert!(
            refresher.registered() <= 2 * 64,
            "{} entries kept for 1 live session",
            refresher.registered()
        );
        assert_eq!(refresher.live_locks(), 1);
    }

    #[test]
    fn f3_no_thread_runs_before_the_first_session() {
        let refresher = Refresher::new(Duration::from_secs(60));
        assert!(refresher.take_thread().is_none());
    }
}
