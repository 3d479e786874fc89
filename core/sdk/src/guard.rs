//! Panic guards, run inside the plugin.
//!
//! Since Rust 1.81 a panic that reaches an `extern "C"` boundary aborts the process, so a host-side
//! `catch_unwind` cannot save the server. Every shim the SDK generates therefore catches panics on the
//! plugin's side and turns them into an [`ErrorCode::PANIC`] error: the session that hit it gets
//! `-ERR [SYS/TEMP]`, everyone else carries on.

use crate::error::{ErrorCode, PluginError};
use futures_lite::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Describes a panic payload.
pub(crate) fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

fn panic_error(what: &str, payload: Box<dyn Any + Send>) -> PluginError {
    // Dropping the payload could itself panic (rust-lang/rust#86027); leak it instead.
    // The panic hook installed at load has already logged the location.
    let message = format!("plugin panicked in {what}: {}", payload_text(&*payload));
    std::mem::forget(payload);
    PluginError::new(ErrorCode::PANIC, message)
}

/// Runs `f`, turning a panic into an error.
pub(crate) fn guard<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, PluginError>,
) -> Result<T, PluginError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| Err(panic_error(what, p)))
}

/// Runs `f` where a panic can only be logged (drops, infallible accessors), returning `fallback`.
pub(crate) fn guard_or<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        panic_error(what, p);
        fallback
    })
}

/// Wraps a future so a panic while polling it becomes an error.
pub(crate) async fn guard_future<T>(
    what: &'static str,
    fut: impl Future<Output = Result<T, PluginError>>,
) -> Result<T, PluginError> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|p| Err(panic_error(what, p)))
}
