//! A small tokio runtime owned by one plugin instance, for plugins built on tokio libraries.
//!
//! The server polls every plugin future on its own smol executor. A future from a tokio library
//! (ldap3, most database drivers) needs a tokio reactor and timer to make progress, and panics
//! ("there is no reactor running") when it is polled anywhere else. Entering a tokio context on
//! the host's threads is not an option: they belong to the host, and the plugin's copy of tokio is
//! not even the same crate as any tokio the host might have.
//!
//! So a plugin that needs tokio owns a [`Runtime`] and runs its work *on it*:
//! [`Runtime::spawn`] starts the future on the plugin's worker threads and returns a plain future
//! that completes when the work does. That future only waits on a channel, which any executor can
//! poll, so it is what the plugin hands back to the host:
//!
//! ```
//! use poppet_sdk::runtime::Runtime;
//! use poppet_sdk::{AuthBackend, AuthOutcome, AuthRequest, PluginError};
//!
//! struct Directory {
//!     runtime: Runtime,
//! }
//!
//! impl AuthBackend for Directory {
//!     async fn authenticate(&self, request: AuthRequest) -> Result<AuthOutcome, PluginError> {
//!         // Everything inside runs on the plugin's tokio threads: tokio timers and sockets work.
//!         self.runtime
//!             .spawn(async move {
//!                 tokio::time::sleep(std::time::Duration::from_millis(1)).await;
//!                 let _ = request;
//!                 Ok(AuthOutcome::Reject)
//!             })
//!             .await?
//!     }
//! }
//!
//! let backend = Directory { runtime: Runtime::new("doc-example")? };
//! # let request = AuthRequest {
//! #     mechanism: "USER".into(), user: "u".into(), password: poppet_sdk::Secret::new("p".into()),
//! #     authzid: None, peer: None, local: None, tls: false, verified: false,
//! # };
//! let outcome = futures_lite::future::block_on(backend.authenticate(request))?;
//! assert_eq!(outcome, AuthOutcome::Reject);
//! # Ok::<(), PluginError>(())
//! ```
//!
//! Properties a host relies on:
//! - **Small.** [`DEFAULT_WORKER_THREADS`] workers: a plugin that waits on the network needs few
//!   threads, and every plugin instance has its own runtime (live reload makes new instances).
//! - **Named threads** (`<name>-rt`), so `top -H` and a debugger show whose threads they are.
//! - **Cancellation follows the host.** Dropping the future [`Runtime::spawn`] returned (the client
//!   hung up, the session timed out) aborts the task at its next await point.
//! - **A panic stays in the plugin**: tokio catches it in the task, and the host gets an
//!   [`ErrorCode::PANIC`] error, which fails one session only.
//! - **Dropping never blocks.** The runtime shuts down in the background: the host may drop a
//!   plugin instance on its executor (live reload), and waiting there for a slow task to reach
//!   an await point would stall every session.

use crate::error::{ErrorCode, PluginError};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Worker threads of a [`Runtime::new`] runtime. Two rather than one, so that one task that
/// blocks a thread by mistake (a CPU-heavy hash check not moved to `spawn_blocking`) does not
/// stall the others; more buys nothing for work that mostly waits on sockets.
pub const DEFAULT_WORKER_THREADS: usize = 2;

/// Threads for [`tokio::task::spawn_blocking`]. tokio's default is 512, sized for servers whose
/// whole workload is blocking; a plugin that only moves the odd hash check off its workers needs
/// a few, and a cap keeps a login flood from spawning hundreds of threads in the host's process.
pub const MAX_BLOCKING_THREADS: usize = 8;

/// A multi-threaded tokio runtime owned by one plugin instance. See the [module docs](self).
pub struct Runtime {
    name: String,
    /// `Some` until dropped; taken in `Drop` to shut it down without blocking.
    inner: Option<tokio::runtime::Runtime>,
}

impl Runtime {
    /// A runtime with [`DEFAULT_WORKER_THREADS`] workers whose threads are named `<name>-rt`.
    pub fn new(name: &str) -> Result<Runtime, PluginError> {
        Self::with_worker_threads(name, DEFAULT_WORKER_THREADS)
    }

    /// A runtime with `worker_threads` workers (at least one).
    ///
    /// Fails (with [`ErrorCode::OTHER`]) only when the OS refuses to start threads.
    pub fn with_worker_threads(name: &str, worker_threads: usize) -> Result<Runtime, PluginError> {
        let inner = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads.max(1))
            .max_blocking_threads(MAX_BLOCKING_THREADS)
            .thread_name(format!("{name}-rt"))
            // Timers, and sockets when the plugin's tokio has the `net` feature (its libraries
            // enable it; features are unified within the plugin's build).
            .enable_all()
            .build()
            .map_err(|err| {
                PluginError::new(
                    ErrorCode::OTHER,
                    format!("cannot start the {name} runtime: {err}"),
                )
            })?;
        Ok(Runtime {
            name: name.to_owned(),
            inner: Some(inner),
        })
    }

    /// Runs `fut` on this runtime's threads and returns a future, pollable by any executor, that
    /// resolves to its output.
    ///
    /// Dropping the returned future aborts the task. A panic inside `fut` resolves to an
    /// [`ErrorCode::PANIC`] error with the panic message; a task cut off because the runtime is
    /// shutting down resolves to an [`ErrorCode::TEMPORARY`] error.
    pub fn spawn<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, PluginError>> + Send + use<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self.handle().map(|handle| handle.spawn(fut));
        Task {
            handle,
            name: self.name.clone(),
        }
    }

    /// The tokio handle, for code that needs one directly (`Handle::spawn`, `block_on` in a
    /// constructor). `None` only while the runtime is being dropped.
    pub fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.inner.as_ref().map(tokio::runtime::Runtime::handle)
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("name", &self.name).finish()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            // `Runtime`'s own drop waits for its workers to finish their current poll; this
            // returns at once and lets them wind down by themselves (see the module docs).
            inner.shutdown_background();
        }
    }
}

/// The future [`Runtime::spawn`] returns: the task's join handle, aborting the task when dropped.
struct Task<T> {
    /// `None` when the runtime was already gone at spawn time.
    handle: Option<tokio::task::JoinHandle<T>>,
    name: String,
}

impl<T> Future for Task<T> {
    type Output = Result<T, PluginError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let name = self.name.clone();
        let Some(handle) = self.handle.as_mut() else {
            return Poll::Ready(Err(shut_down(&name)));
        };
        // A JoinHandle only waits on the task's state and a waker: no tokio context is needed to
        // poll it, which is what makes this future safe to hand to the host's executor.
        Pin::new(handle)
            .poll(cx)
            .map(|result| result.map_err(|err| join_error(&name, err)))
    }
}

impl<T> Drop for Task<T> {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

fn shut_down(name: &str) -> PluginError {
    PluginError::temporary(format!("the {name} runtime is shutting down"))
}

fn join_error(name: &str, err: tokio::task::JoinError) -> PluginError {
    if !err.is_panic() {
        return shut_down(name);
    }
    let payload = err.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned());
    PluginError::new(
        ErrorCode::PANIC,
        format!("panic in a {name} task: {message}"),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    #[test]
    fn tokio_timers_work_under_a_foreign_executor() {
        let rt = Runtime::new("test").unwrap();
        let out = block_on(rt.spawn(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            std::thread::current().name().map(str::to_owned)
        }))
        .unwrap();
        assert_eq!(out.as_deref(), Some("test-rt"));
    }

    #[test]
    fn a_panic_becomes_a_panic_error() {
        let rt = Runtime::new("test").unwrap();
        let err = block_on(rt.spawn(async { panic!("boom") })).unwrap_err();
        assert_eq!(err.code, ErrorCode::PANIC);
        assert!(err.message.contains("boom"), "{}", err.message);
        // The runtime carries on.
        assert_eq!(block_on(rt.spawn(async { 7 })).unwrap(), 7);
    }

    /// Sets its flag when dropped, i.e. when the task holding it is aborted.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn dropping_the_future_aborts_the_task() {
        let rt = Runtime::new("test").unwrap();
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = DropFlag(Arc::clone(&dropped));
        let task = rt.spawn(async move {
            let _flag = flag;
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        drop(task);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dropped.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "the task was not aborted");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn dropping_the_runtime_does_not_wait_for_busy_tasks() {
        let rt = Runtime::new("test").unwrap();
        // A task that blocks its worker thread for a while (which a task should not do).
        let _busy = rt.spawn(async { std::thread::sleep(Duration::from_millis(500)) });
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        drop(rt);
        assert!(started.elapsed() < Duration::from_millis(200));
    }
}
