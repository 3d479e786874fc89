//! A wrapper that keeps passwords and digests out of logs.
//!
//! DESIGN.md: "Passwords never reach logs; `Debug` of secrets is redacted." Anything a
//! client sends as a credential (the PASS argument, the APOP digest) is wrapped in
//! [`Secret`] the moment it is parsed, so a stray `{:?}` on an event or command cannot
//! print it. Reading the value takes a deliberate call to [`Secret::expose`].

use std::fmt;

/// A value that must not appear in `Debug` output (passwords, digests).
///
/// `Debug` prints `[REDACTED]`; there is deliberately no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a sensitive value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Gives read access to the sensitive value. Callers must not log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the sensitive value. Callers must not log it.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_is_redacted_and_expose_reads() {
        let secret = Secret::new(String::from("hunter2"));
        assert_eq!(format!("{secret:?}"), "[REDACTED]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([REDACTED])");
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(secret.into_inner(), "hunter2");
    }
}
