//! The store's own threads for its file work, the most recently idle one woken first.
//!
//! The store's file work (opens, commits, retrievals, the read-ahead's reading jobs) first ran on
//! the `blocking` crate's pool. That pool wakes the thread that has waited longest (the waiters of
//! a condition variable queue in order) and keeps every thread a burst created, so once a few
//! hundred concurrent logins had grown it to dozens of threads, every job started on another
//! long-idle thread: pipelined RETRs of small messages were about a tenth slower after those
//! logins (211,000 against 234,000 messages per second with this pool for the reading jobs,
//! twelve alternating runs each), and with opens and commits here too a login at c=64 costs about
//! 3% less CPU (see the book's performance page). No maintained crate offers a pool that wakes
//! its most recently idle thread, so this one does, in a few lines around `async-task` (what
//! `blocking` is built on): an idle thread waits on a slot of its own, and a job goes to the
//! thread that became idle last. The threads a steady load needs stay warm, and the others end
//! after an idle spell.

use async_task::{Runnable, Task};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// The store's pool for its file work: as many threads as jobs run at once, at most 64 (more
/// wait their turn); an idle thread ends after 10 s.
pub static FILES: Pool = Pool::new("poppet-maildir-io", 64, Duration::from_secs(10));

type Job = Runnable;

/// A pool of at most `max` threads, each ending after `idle` without a job.
pub struct Pool {
    name: &'static str,
    max: usize,
    idle: Duration,
    state: Mutex<State>,
}

struct State {
    /// Idle threads' slots, the most recently idle last.
    idle: Vec<Arc<Slot>>,
    /// Jobs that came while all `max` threads were busy, in order.
    queue: VecDeque<Job>,
    /// Threads running or idle.
    threads: usize,
}

/// Where a thread finds its next job.
struct Slot {
    job: Mutex<Option<Job>>,
    given: Condvar,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = lock(&self.state);
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("threads", &state.threads)
            .field("idle", &state.idle.len())
            .field("queued", &state.queue.len())
            .finish()
    }
}

/// Locks `m`; a job's panic never leaves these states half changed (it is caught outside them).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs a job; a panic in it ends the job only (its task is cancelled; a reading job's messages
/// are then read by their retrievals), not the thread.
fn run(job: Job) {
    let _ = panic::catch_unwind(AssertUnwindSafe(|| job.run()));
}

impl Pool {
    /// A pool whose threads are named `name`.
    pub const fn new(name: &'static str, max: usize, idle: Duration) -> Pool {
        Pool {
            name,
            max,
            idle,
            state: Mutex::new(State {
                idle: Vec::new(),
                queue: VecDeque::new(),
                threads: 0,
            }),
        }
    }

    /// Runs `f` on the pool, as `blocking::unblock` does on its own: the task gives its result
    /// (dropping it unstarted cancels it; `detach` lets it run).
    pub fn run<T: Send + 'static>(
        &'static self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Task<T> {
        let (runnable, task) = async_task::spawn(async move { f() }, |job| self.schedule(job));
        runnable.schedule();
        task
    }

    /// Gives `job` to the most recently idle thread, else to a new thread, else (all `max` busy)
    /// to the first to become free. If no thread can be started, `blocking`'s pool runs it.
    fn schedule(&'static self, job: Job) {
        let mut state = lock(&self.state);
        if let Some(slot) = state.idle.pop() {
            drop(state);
            *lock(&slot.job) = Some(job);
            slot.given.notify_one();
            return;
        }
        if state.threads >= self.max {
            state.queue.push_back(job);
            return;
        }
        state.threads += 1;
        drop(state);
        let slot = Arc::new(Slot {
            job: Mutex::new(Some(job)),
            given: Condvar::new(),
        });
        let theirs = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name(self.name.into())
            .spawn(move || self.work(&theirs));
        if let Err(e) = spawned {
            lock(&self.state).threads -= 1;
            log::warn!(
                "{}: cannot start a thread ({e}); the job goes to `blocking`",
                self.name
            );
            // The job must run: a session waits for it. Not here, on the host's executor.
            if let Some(job) = lock(&slot.job).take() {
                blocking::unblock(move || run(job)).detach();
            }
        }
    }

    /// A thread's life: its first job is in `slot` already.
    fn work(&self, slot: &Arc<Slot>) {
        while let Some(job) = self.next(slot) {
            run(job);
            let mut state = lock(&self.state);
            while let Some(queued) = state.queue.pop_front() {
                drop(state);
                run(queued);
                state = lock(&self.state);
            }
            state.idle.push(Arc::clone(slot));
        }
    }

    /// The job given to `slot`, waiting for it while the thread is listed idle; `None` once none
    /// came for `self.idle` and the thread is no longer listed (it ends).
    fn next(&self, slot: &Arc<Slot>) -> Option<Job> {
        let mut job = lock(&slot.job);
        loop {
            if let Some(given) = job.take() {
                return Some(given);
            }
            let (guard, waited) = slot
                .given
                .wait_timeout(job, self.idle)
                .unwrap_or_else(PoisonError::into_inner);
            job = guard;
            if waited.timed_out() && job.is_none() {
                // `schedule` takes a slot off the list before it gives it a job, so a slot still
                // listed has none coming. Lock order: the pool's state, then a slot.
                drop(job);
                let mut state = lock(&self.state);
                if let Some(at) = state.idle.iter().position(|s| Arc::ptr_eq(s, slot)) {
                    state.idle.remove(at);
                    state.threads -= 1;
                    return None;
                }
                drop(state);
                job = lock(&slot.job);
            }
        }
    }

    /// Threads running or idle.
    #[cfg(test)]
    fn threads(&self) -> usize {
        lock(&self.state).threads
    }

    /// Jobs waiting for a thread.
    #[cfg(test)]
    fn queued(&self) -> usize {
        lock(&self.state).queue.len()
    }

    /// Threads idle.
    #[cfg(test)]
    fn idle_threads(&self) -> usize {
        lock(&self.state).idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::Pool;
    use std::sync::mpsc::{Sender, channel};
    use std::thread::{self, ThreadId};
    use std::time::{Duration, Instant};

    fn pool(max: usize, idle: Duration) -> &'static Pool {
        Box::leak(Box::new(Pool::new("test-pool", max, idle)))
    }

    /// Waits (bounded) until `done` holds.
    fn until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            thread::yield_now();
        }
    }

    /// Starts a job that holds its thread until the returned sender sends (or is dropped); the
    /// thread's id.
    fn held(pool: &'static Pool) -> (ThreadId, Sender<()>) {
        let (id_tx, id_rx) = channel();
        let (go_tx, go_rx) = channel::<()>();
        pool.run(move || {
            id_tx
                .send(thread::current().id())
                .expect("the test listens");
            let _ = go_rx.recv();
        })
        .detach();
        (id_rx.recv().expect("the held job runs"), go_tx)
    }

    /// The thread that runs the next job (its result comes back through the task).
    fn runs_on(pool: &'static Pool) -> ThreadId {
        futures_lite::future::block_on(pool.run(|| thread::current().id()))
    }

    #[test]
    fn a_job_goes_to_the_thread_idle_last() {
        let pool = pool(8, Duration::from_secs(60));
        let (a, a_go) = held(pool);
        let (b, b_go) = held(pool);
        assert_ne!(a, b, "two jobs at once run on two threads");
        assert_eq!(pool.threads(), 2);
        a_go.send(()).expect("a waits");
        until("a idle", || pool.idle_threads() == 1);
        b_go.send(()).expect("b waits");
        until("b idle", || pool.idle_threads() == 2);
        assert_eq!(runs_on(pool), b, "b became idle last");
        until("b idle again", || pool.idle_threads() == 2);
        assert_eq!(runs_on(pool), b, "and stays the one woken");
        assert_eq!(pool.threads(), 2, "no thread started for an idle one");
    }

    #[test]
    fn jobs_beyond_the_limit_wait_for_a_thread() {
        let pool = pool(1, Duration::from_secs(60));
        let (first, first_go) = held(pool);
        let (tx, rx) = channel();
        for n in 0..3 {
            let tx = tx.clone();
            pool.run(move || {
                tx.send((n, thread::current().id()))
                    .expect("the test listens")
            })
            .detach();
        }
        assert_eq!(pool.queued(), 3, "the only thread is busy: they wait");
        assert_eq!(pool.threads(), 1);
        first_go.send(()).expect("the first waits");
        for n in 0..3 {
            let (got, on) = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the queued jobs run");
            assert_eq!((got, on), (n, first), "in order, on the one thread");
        }
    }

    #[test]
    fn a_panicking_job_leaves_the_thread_serving() {
        let pool = pool(4, Duration::from_secs(60));
        let first = runs_on(pool);
        until("idle", || pool.idle_threads() == 1);
        pool.run(|| panic!("a job that panics (expected in this test)"))
            .detach();
        until("idle after the panic", || pool.idle_threads() == 1);
        assert_eq!(runs_on(pool), first);
        assert_eq!(pool.threads(), 1);
    }

    #[test]
    fn idle_threads_end_and_new_ones_start() {
        let pool = pool(4, Duration::from_millis(20));
        let (a, a_go) = held(pool);
        let (b, b_go) = held(pool);
        a_go.send(()).expect("a waits");
        b_go.send(()).expect("b waits");
        until("both ended", || pool.threads() == 0);
        assert_eq!(pool.idle_threads(), 0);
        let c = runs_on(pool);
        assert!(c != a && c != b, "a new thread runs the next job");
        until("it ended too", || pool.threads() == 0);
    }
}
