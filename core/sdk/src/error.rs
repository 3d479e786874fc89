//! The one error type that crosses the boundary, grouped by what the server should do about it.

use crate::ffi::{FfiError, FfiString};
use std::fmt;

/// What kind of failure a plugin reports. A `u32` newtype rather than a Rust enum: a newer plugin may
/// send a code this server does not know, which must not be undefined behaviour (it reads as
/// [`ErrorCode::OTHER`]'s handling).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// Anything else; the session gets `-ERR [SYS/TEMP]`.
    pub const OTHER: ErrorCode = ErrorCode(1);
    /// The plugin panicked; the SDK caught it inside the plugin.
    pub const PANIC: ErrorCode = ErrorCode(2);
    /// The plugin's settings are invalid (with a position when known).
    pub const CONFIG: ErrorCode = ErrorCode(3);
    /// An I/O error.
    pub const IO: ErrorCode = ErrorCode(4);
    /// A temporary failure (directory down, timeout); the client may retry.
    pub const TEMPORARY: ErrorCode = ErrorCode(5);
    /// Credentials were checked and are wrong.
    pub const AUTH_FAILED: ErrorCode = ErrorCode(6);
    /// The thing asked for does not exist.
    pub const NOT_FOUND: ErrorCode = ErrorCode(7);
    /// The mailbox is locked by another POP3 session (`[IN-USE]`).
    pub const LOCKED: ErrorCode = ErrorCode(8);
    /// A permanent failure that retrying will not fix (`[SYS/PERM]`).
    pub const PERMANENT: ErrorCode = ErrorCode(9);

    /// A short lowercase name for logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::OTHER => "other",
            ErrorCode::PANIC => "panic",
            ErrorCode::CONFIG => "config",
            ErrorCode::IO => "io",
            ErrorCode::TEMPORARY => "temporary",
            ErrorCode::AUTH_FAILED => "auth-failed",
            ErrorCode::NOT_FOUND => "not-found",
            ErrorCode::LOCKED => "locked",
            ErrorCode::PERMANENT => "permanent",
            _ => "unknown",
        }
    }
}

impl fmt::Debug for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({})", self.name(), self.0)
    }
}

/// A 1-based position inside a plugin's settings text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

/// The error every plugin method returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// A message for the log (never shown to POP3 clients verbatim, never containing a password).
    pub message: String,
    /// For [`ErrorCode::CONFIG`]: where in the settings text.
    pub position: Option<Position>,
}

impl PluginError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        PluginError {
            code,
            message: message.into(),
            position: None,
        }
    }

    /// A temporary failure.
    pub fn temporary(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TEMPORARY, message)
    }

    /// A permanent failure.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::PERMANENT, message)
    }

    /// The mailbox is held by another session.
    pub fn locked(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::LOCKED, message)
    }

    /// A settings error.
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::CONFIG, message)
    }

    /// An I/O error with context: `"{context}: {err}"`.
    pub fn io(context: impl fmt::Display, err: &std::io::Error) -> Self {
        Self::new(ErrorCode::IO, format!("{context}: {err}"))
    }

    pub(crate) fn into_ffi(self) -> FfiError {
        let (line, column) = self.position.map_or((0, 0), |p| (p.line, p.column));
        FfiError {
            code: self.code.0,
            message: FfiString::from(self.message),
            line,
            column,
        }
    }

    pub(crate) fn from_ffi(e: FfiError) -> Self {
        let position = (e.line != 0).then_some(Position {
            line: e.line,
            column: e.column,
        });
        PluginError {
            code: ErrorCode(e.code),
            message: e.message.as_str().to_owned(),
            position,
        }
    }
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(p) => write!(f, "{}:{}: {}", p.line, p.column, self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for PluginError {}

impl From<std::io::Error> for PluginError {
    fn from(err: std::io::Error) -> Self {
        PluginError::new(ErrorCode::IO, err.to_string())
    }
}
