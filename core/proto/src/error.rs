//! Every `-ERR` the engine produces, in one table.
//!
//! DESIGN.md: "Every error maps to one `-ERR [CODE] text` line in one table (rustls
//! style), unit-tested." The variants are grouped by who is at fault: the client's
//! framing or syntax, the client's timing (wrong state, wrong message), the login
//! outcome reported by the auth backend, and the mail store. [`ProtoError::to_response`]
//! is the one total mapping to the wire; its text is the `Display` of the error, so logs
//! and the wire say the same thing.

use std::fmt;

use crate::response::{Response, ResponseCode};
use crate::state::State;

/// An error the session answers with `-ERR`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtoError {
    // The client's framing and syntax.
    /// The command line exceeds 255 octets including CRLF (RFC 2449 §4).
    LineTooLong,
    /// The command line contains a control character (NUL, TAB, a stray CR, ...).
    ControlCharacter(u8),
    /// The command line is not UTF-8.
    InvalidUtf8,
    /// The command line is empty.
    EmptyCommand,
    /// The keyword is neither a core command nor a configured extension verb.
    UnknownCommand(String),
    /// A required argument is missing.
    MissingArgument {
        /// The command keyword.
        verb: &'static str,
        /// What is missing, e.g. "a message number".
        what: &'static str,
    },
    /// More arguments than the command takes.
    TooManyArguments(&'static str),
    /// An argument exceeds 40 octets (RFC 1939 §3, RFC 2449 §4).
    ArgumentTooLong,
    /// A number argument is not unsigned decimal.
    InvalidNumber {
        /// What the number is, e.g. "message number".
        what: &'static str,
        /// The argument as sent.
        value: String,
    },
    /// The APOP digest is not 32 hexadecimal digits (RFC 1939 §7).
    InvalidDigest,
    /// A SASL continuation line exceeds [`crate::SessionOptions::max_sasl_line`]; the
    /// exchange is cancelled.
    SaslLineTooLong(usize),

    // The client's timing.
    /// The command exists but not in the current state.
    WrongState {
        /// The command keyword.
        verb: String,
        /// The state the session is in.
        state: State,
    },
    /// PASS without a preceding successful USER (RFC 1939 §7).
    PassWithoutUser,
    /// USER/PASS is switched off by configuration.
    UserPassDisabled,
    /// APOP is not offered (no timestamp in the greeting).
    ApopDisabled,
    /// STLS while TLS is already active; the text is RFC 2595 §4's example.
    TlsActive,
    /// STLS is not offered on this connection.
    StlsNotOffered,
    /// STLS between USER and PASS (RFC 2595 §4 allows it in AUTHORIZATION; refusing it
    /// mid-login keeps a plain-text USER from carrying over into TLS).
    StlsAfterUser,
    /// A cleartext login on an unencrypted connection while the policy forbids it;
    /// Dovecot's text, which users and operators know.
    PlaintextDisallowed,
    /// AUTH names a mechanism the session does not offer.
    UnsupportedMechanism,
    /// A user name with non-ASCII characters before the RFC 6856 `UTF8` command, on a server
    /// that offers it.
    Utf8UserNeedsUtf8,
    /// The message number is 0 or beyond the maildrop.
    NoSuchMessage,
    /// The message is marked as deleted (RFC 1939 §5).
    AlreadyDeleted(u64),
    /// Too many consecutive bad commands; the session closes.
    TooManyBadCommands,
    /// The autologout timer expired (RFC 1939 §3).
    IdleTimeout,
    /// The client did not log in within the login timeout.
    LoginTimeout,

    // The login outcome.
    /// The credentials were rejected (RFC 3206 `AUTH`).
    AuthFailed,
    /// The maildrop is locked by another session (RFC 2449 §8.1 `IN-USE`).
    MailboxInUse,
    /// The user logged in too recently (RFC 2449 §8.1 `LOGIN-DELAY`).
    LoginTooSoon,
    /// The client cancelled a SASL exchange with `*` (RFC 5034 §4).
    SaslCancelled,
    /// The driver found the SASL exchange malformed (bad base64, a malformed message);
    /// the text says what.
    SaslFailed(String),

    // The server or a plugin.
    /// A temporary failure (RFC 3206 `SYS/TEMP`); the text says what failed.
    Temporary(String),
    /// A permanent failure (RFC 3206 `SYS/PERM`); the text says what failed.
    Permanent(String),
    /// Some deletions failed at QUIT (RFC 1939 §6).
    CommitPartial {
        /// How many deletions failed.
        failed: usize,
    },
    /// The commit failed as a whole (RFC 1939 §6).
    CommitFailed(String),
    /// The driver answered an action that was never requested (a driver bug).
    NothingPending,
}

impl ProtoError {
    /// The response code this error carries on the wire, if any.
    pub fn code(&self) -> Option<ResponseCode> {
        match self {
            Self::AuthFailed
            | Self::PlaintextDisallowed
            | Self::SaslCancelled
            | Self::SaslFailed(_) => Some(ResponseCode::Auth),
            Self::MailboxInUse => Some(ResponseCode::InUse),
            Self::LoginTooSoon => Some(ResponseCode::LoginDelay),
            Self::Temporary(_)
            | Self::CommitPartial { .. }
            | Self::CommitFailed(_)
            | Self::NothingPending => Some(ResponseCode::SysTemp),
            Self::Permanent(_) => Some(ResponseCode::SysPerm),
            Self::LineTooLong
            | Self::ControlCharacter(_)
            | Self::InvalidUtf8
            | Self::EmptyCommand
            | Self::UnknownCommand(_)
            | Self::MissingArgument { .. }
            | Self::TooManyArguments(_)
            | Self::ArgumentTooLong
            | Self::InvalidNumber { .. }
            | Self::InvalidDigest
            | Self::SaslLineTooLong(_)
            | Self::WrongState { .. }
            | Self::PassWithoutUser
            | Self::UserPassDisabled
            | Self::ApopDisabled
            | Self::TlsActive
            | Self::StlsNotOffered
            | Self::StlsAfterUser
            | Self::UnsupportedMechanism
            | Self::Utf8UserNeedsUtf8
            | Self::NoSuchMessage
            | Self::AlreadyDeleted(_)
            | Self::TooManyBadCommands
            | Self::IdleTimeout
            | Self::LoginTimeout => None,
        }
    }

    /// Whether this refuses a login attempt by policy rather than a broken command.
    /// Like failed logins, these do not count towards the bad-command limits: a client
    /// trying what it was not offered is not fumbling, and the driver's failure delay
    /// and the login timeout bound how often it can try. (Dovecot's login process does
    /// not count them either.)
    pub(crate) fn is_login_refusal(&self) -> bool {
        matches!(self, Self::PlaintextDisallowed | Self::UnsupportedMechanism)
    }

    /// The `-ERR` line for this error; a core text remembers its id, so a session with a
    /// language selected can translate it.
    pub fn to_response(&self) -> Response {
        match self.text() {
            Some(text) => Response::err_text(self.code(), text),
            None => Response::err(self.code(), self.to_string()),
        }
    }
}

/// The English text of [`crate::text::TEMPLATES`], or the plugin's own text.
impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SaslFailed(text) | Self::Temporary(text) | Self::Permanent(text) => {
                f.write_str(text)
            }
            core => core.text().map_or(Ok(()), |text| text.fmt(f)),
        }
    }
}

impl std::error::Error for ProtoError {}

impl From<ProtoError> for Response {
    fn from(error: ProtoError) -> Self {
        error.to_response()
    }
}

#[cfg(test)]
mod tests {
    use super::ProtoError;
    use crate::state::State;

    /// The whole table, as it goes on the wire.
    #[test]
    fn every_error_maps_to_one_line() {
        let table: Vec<(ProtoError, &str)> = vec![
            (
                ProtoError::LineTooLong,
                "-ERR line too long (at most 255 octets including CRLF)",
            ),
            (
                ProtoError::ControlCharacter(0),
                "-ERR command contains control character 0x00",
            ),
            (ProtoError::InvalidUtf8, "-ERR command is not valid UTF-8"),
            (ProtoError::EmptyCommand, "-ERR empty command"),
            (
                ProtoError::UnknownCommand("XYZZY".into()),
                "-ERR unknown command XYZZY",
            ),
            (
                ProtoError::MissingArgument {
                    verb: "RETR",
                    what: "a message number",
                },
                "-ERR RETR needs a message number",
            ),
            (
                ProtoError::TooManyArguments("STAT"),
                "-ERR too many arguments for STAT",
            ),
            (
                ProtoError::ArgumentTooLong,
                "-ERR argument too long (at most 40 octets)",
            ),
            (
                ProtoError::InvalidNumber {
                    what: "message number",
                    value: "-1".into(),
                },
                "-ERR message number must be a decimal number, got -1",
            ),
            (
                ProtoError::InvalidDigest,
                "-ERR APOP digest must be 32 hexadecimal digits",
            ),
            (
                ProtoError::SaslLineTooLong(8192),
                "-ERR authentication line too long (at most 8192 octets including CRLF)",
            ),
            (
                ProtoError::WrongState {
                    verb: "RETR".into(),
                    state: State::Authorization,
                },
                "-ERR RETR is not valid in the AUTHORIZATION state",
            ),
            (
                ProtoError::PassWithoutUser,
                "-ERR PASS must follow a successful USER",
            ),
            (
                ProtoError::UserPassDisabled,
                "-ERR USER/PASS login is disabled",
            ),
            (ProtoError::ApopDisabled, "-ERR APOP is not available"),
            (
                ProtoError::TlsActive,
                "-ERR Command not permitted when TLS active",
            ),
            (ProtoError::StlsNotOffered, "-ERR STLS is not available"),
            (
                ProtoError::StlsAfterUser,
                "-ERR STLS is not allowed after USER",
            ),
            (
                ProtoError::PlaintextDisallowed,
                "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
            ),
            (
                ProtoError::UnsupportedMechanism,
                "-ERR Unsupported authentication mechanism",
            ),
            (ProtoError::NoSuchMessage, "-ERR no such message"),
            (
                ProtoError::AlreadyDeleted(2),
                "-ERR message 2 already deleted",
            ),
            (
                ProtoError::TooManyBadCommands,
                "-ERR too many bad commands, closing connection",
            ),
            (
                ProtoError::IdleTimeout,
                "-ERR autologout: idle for too long",
            ),
            (
                ProtoError::LoginTimeout,
                "-ERR Disconnected: login took too long",
            ),
            (ProtoError::AuthFailed, "-ERR [AUTH] Authentication failed"),
            (
                ProtoError::MailboxInUse,
                "-ERR [IN-USE] maildrop is locked by another session",
            ),
            (
                ProtoError::LoginTooSoon,
                "-ERR [LOGIN-DELAY] logged in too recently, try again later",
            ),
            (
                ProtoError::SaslCancelled,
                "-ERR [AUTH] Authentication cancelled",
            ),
            (
                ProtoError::SaslFailed("Invalid base64 data".into()),
                "-ERR [AUTH] Invalid base64 data",
            ),
            (
                ProtoError::Temporary("store offline".into()),
                "-ERR [SYS/TEMP] store offline",
            ),
            (
                ProtoError::Permanent("account disabled".into()),
                "-ERR [SYS/PERM] account disabled",
            ),
            (
                ProtoError::CommitPartial { failed: 2 },
                "-ERR [SYS/TEMP] some deleted messages not removed (2 failed)",
            ),
            (
                ProtoError::CommitFailed("disk full".into()),
                "-ERR [SYS/TEMP] some deleted messages not removed: disk full",
            ),
            (
                ProtoError::NothingPending,
                "-ERR [SYS/TEMP] internal error: no such action pending",
            ),
        ];
        for (error, line) in table {
            let wire = error.to_response().to_bytes();
            assert_eq!(
                String::from_utf8_lossy(&wire),
                format!("{line}\r\n"),
                "{error:?}"
            );
        }
    }
}
