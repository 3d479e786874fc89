//! Why an exchange failed.
//!
//! Every variant names the rule the client (or, for a few, the caller) broke, so a log line says what happened
//! without a debugger. RFC 5034 §4 ends every failed exchange with a negative response, so the driver maps every
//! variant to one `-ERR` line; [`SaslError::is_authentication_failure`] tells it which ones are a wrong password (which earns
//! the failure delay) rather than a broken client. None of the variants carry a password or key.

use thiserror::Error;

/// A failed SASL exchange. After any error the [`Exchange`](crate::Exchange) is finished.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SaslError {
    /// The message does not follow the mechanism's grammar; the text names what was wrong.
    #[error("malformed {mechanism} message: {reason}")]
    MalformedMessage {
        /// The mechanism whose grammar was violated.
        mechanism: &'static str,
        /// What was wrong, for the log.
        reason: &'static str,
    },
    /// A field that must be UTF-8 (RFC 4616 `SAFE`, RFC 5802 `value-char`) is not.
    #[error("message is not valid UTF-8")]
    InvalidUtf8,
    /// PLAIN or LOGIN sent an empty authentication identity (RFC 4616: `authcid = 1*SAFE`).
    #[error("empty user name")]
    EmptyUser,
    /// PLAIN or LOGIN sent an empty password (RFC 4616: `passwd = 1*SAFE`).
    #[error("empty password")]
    EmptyPassword,
    /// A SCRAM `saslname` has an `=` not followed by `2C` or `3D` (RFC 5802 §5.1: the server MUST fail).
    #[error("invalid '=' escape in SCRAM user or authorization name")]
    InvalidSaslname,
    /// The client sent the mandatory-extension attribute `m=` (RFC 5802 §5.1: its presence MUST cause failure).
    #[error("SCRAM mandatory extension (m=) is not supported")]
    ExtensionNotSupported,
    /// A `-PLUS` exchange was started but the connection has no channel-binding data (no TLS, or TLS < 1.3).
    /// This is the caller's mistake: `-PLUS` must not be advertised there.
    #[error("channel binding is not available on this connection")]
    ChannelBindingUnavailable,
    /// The client chose `SCRAM-SHA-256-PLUS` but its GS2 flag was `n` or `y` instead of `p=`.
    #[error("SCRAM-SHA-256-PLUS requires the client to use channel binding (p=)")]
    ChannelBindingRequired,
    /// The client asked for channel binding (`p=`) on plain `SCRAM-SHA-256` (RFC 5802 §6).
    #[error("channel binding requested on a mechanism without channel binding")]
    ChannelBindingNotSupported,
    /// The client flagged `y` ("I can bind, the server cannot") while the server advertises `-PLUS`: a downgrade
    /// (RFC 5802 §6: "If the flag is set to "y" and the server supports channel binding, the server MUST fail").
    #[error(
        "client claims the server does not support channel binding, but it does (downgrade attack?)"
    )]
    ChannelBindingDowngrade,
    /// The client asked for a channel-binding type other than the one this connection provides.
    #[error("unsupported channel binding type {0:?}")]
    ChannelBindingTypeUnsupported(String),
    /// The `c=` attribute does not equal base64(GS2 header + channel-binding data).
    #[error("channel binding data does not match")]
    ChannelBindingMismatch,
    /// The `r=` attribute of client-final is not the nonce the server sent.
    #[error("SCRAM nonce does not match")]
    NonceMismatch,
    /// The SCRAM proof is wrong: wrong password or unknown user. Authentication failed.
    #[error("authentication failed")]
    ProofMismatch,
    /// A message arrived when none was expected (for example after the exchange finished).
    #[error("unexpected message for the current state of the exchange")]
    UnexpectedMessage,
    /// [`Exchange::provide_credentials`](crate::Exchange::provide_credentials) was called when the exchange was not
    /// waiting for credentials. This is the caller's mistake.
    #[error("SCRAM credentials were provided when none were requested")]
    CredentialsNotRequested,
    /// A stored SCRAM credential (Dovecot form) could not be parsed; the text says which part.
    #[error("invalid stored SCRAM credentials: {0}")]
    InvalidStoredCredentials(&'static str),
}

impl SaslError {
    /// True when the client spoke the protocol correctly but did not prove it knows the password. The driver
    /// treats this like a wrong `PASS`: failure delay, per-IP penalty, the same `-ERR [AUTH]` line.
    pub fn is_authentication_failure(&self) -> bool {
        matches!(self, SaslError::ProofMismatch)
    }

    /// True when the error is the caller's mistake rather than the client's (a bug in the driver or its policy).
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            SaslError::ChannelBindingUnavailable
                | SaslError::CredentialsNotRequested
                | SaslError::InvalidStoredCredentials(_)
        )
    }

    pub(crate) fn malformed(mechanism: &'static str, reason: &'static str) -> SaslError {
        SaslError::MalformedMessage { mechanism, reason }
    }
}
