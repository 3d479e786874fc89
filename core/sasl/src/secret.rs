//! A wrapper that keeps passwords out of logs.
//!
//! Sessions, steps and errors get logged with `{:?}` while debugging; a password must never appear there. The
//! wrapped value is reachable only through [`Secret::expose`], so every place that reads it is easy to find.

use std::fmt;

/// A value that must not appear in `Debug` output (passwords, keys).
///
/// ```
/// let password = poppet_sasl::Secret::new(String::from("pencil"));
/// assert_eq!(format!("{password:?}"), "[REDACTED]");
/// assert_eq!(password.expose(), "pencil");
/// ```
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Borrows the secret value. Call this only where the value is used, never to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}
