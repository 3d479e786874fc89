//! Panic guards, run inside the plugin.
//!
//! Since Rust 1.81 a panic that reaches an `extern "C"` boundary aborts the process, so a host-side
//! `catch_unwind` cannot save the server. Every shim the SDK generates therefore catches panics on the
//! plugin's side and turns them into an [`ErrorCode::PANIC`] error: the session that hit it gets
//! `-ERR [SYS/TEMP]`, everyone else carries on.

use crate::abi::to_ffi_result;
use crate::error::{ErrorCode, PluginError};
use crate::ffi::FfiResult;
use futures_lite::future::CatchUnwind;
use futures_lite::{FutureExt, ready};
use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

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

pin_project_lite::pin_project! {
    /// A plugin's future as the host polls it: a panic while polling it or while converting its
    /// output becomes an error, and the output is converted with `finish`.
    ///
    /// One state machine: wrapping the plugin's future in `async` blocks (one to catch panics, one
    /// to convert, one for the boundary type) stored it again in each, and a RETR's grew from 320
    /// to 1,336 octets, past glibc's small sizes, so each one's allocation ran `malloc_consolidate`.
    pub(crate) struct Guarded<F, M> {
        #[pin]
        fut: CatchUnwind<AssertUnwindSafe<F>>,
        what: &'static str,
        finish: Option<M>,
    }
}

/// Guards `fut` (see [`Guarded`]); `finish` converts its output for the boundary.
pub(crate) fn guard_future<F, M, T>(what: &'static str, fut: F, finish: M) -> Guarded<F, M>
where
    F: Future,
    M: FnOnce(F::Output) -> Result<T, PluginError>,
{
    Guarded {
        fut: AssertUnwindSafe(fut).catch_unwind(),
        what,
        finish: Some(finish),
    }
}

impl<F, M, T> Future for Guarded<F, M>
where
    F: Future,
    M: FnOnce(F::Output) -> Result<T, PluginError>,
{
    type Output = FfiResult<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FfiResult<T>> {
        let this = self.project();
        let what = *this.what;
        let result = match ready!(this.fut.poll(cx)) {
            Err(payload) => Err(panic_error(what, payload)),
            Ok(output) => match this.finish.take() {
                Some(finish) => guard(what, || finish(output)),
                None => Err(PluginError::new(
                    ErrorCode::OTHER,
                    format!("{what} polled after it completed"),
                )),
            },
        };
        Poll::Ready(to_ffi_result(result))
    }
}

#[cfg(test)]
mod tests {
    use super::guard_future;
    use crate::error::{ErrorCode, PluginError};
    use crate::ffi::FfiResult;
    use futures_lite::future::{block_on, yield_now};

    fn error_of<T>(result: FfiResult<T>) -> (u32, String) {
        match result {
            FfiResult::Ok(_) => panic!("expected an error"),
            FfiResult::Err(e) => (e.code, e.message.as_str().to_owned()),
        }
    }

    #[test]
    fn output_is_converted_and_errors_pass_through() {
        let ok = block_on(guard_future("t", async { 20 }, |n: i32| Ok(n + 1)));
        assert!(matches!(ok, FfiResult::Ok(21)));
        let failed = guard_future(
            "t",
            async { Err::<i32, _>(PluginError::new(ErrorCode::OTHER, "no")) },
            |r: Result<i32, PluginError>| r,
        );
        assert_eq!(error_of(block_on(failed)), (1, "no".to_owned()));
    }

    #[test]
    fn panics_while_polling_or_converting_become_errors() {
        let polled = guard_future(
            "retrieve",
            async {
                yield_now().await;
                panic!("boom")
            },
            |()| Ok(()),
        );
        let (code, message) = error_of(block_on(polled));
        assert_eq!(code, ErrorCode::PANIC.0);
        assert_eq!(message, "plugin panicked in retrieve: boom");
        let converted = guard_future("open", async { 1 }, |_: i32| -> Result<(), _> {
            panic!("in finish")
        });
        let (code, message) = error_of(block_on(converted));
        assert_eq!(code, ErrorCode::PANIC.0);
        assert_eq!(message, "plugin panicked in open: in finish");
    }

    #[test]
    fn the_guarded_future_is_barely_larger_than_the_plugins() {
        let big = async {
            let buffer = [7u8; 1000];
            yield_now().await;
            buffer[999]
        };
        let inner = std::mem::size_of_val(&big);
        let guarded = guard_future("t", big, |b: u8| Ok(b));
        // Nested `async` blocks stored the plugin's future once per layer (x4 for a RETR).
        assert!(std::mem::size_of_val(&guarded) <= inner + 32);
        assert!(matches!(block_on(guarded), FfiResult::Ok(7)));
    }
}
