//! Error types: one for reading a stored hash, one for making a new one.
//!
//! Errors never contain a hash or a password. A bare string without `{SCHEME}` that is not a recognised crypt
//! format might be a plaintext password written by mistake, so only its `$id$` prefix is ever echoed.

use crate::scheme::{Scheme, supported_list};

/// Why a stored password hash could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The hash field is empty.
    #[error("empty password hash")]
    Empty,
    /// The hash starts with `{` but has no closing `}`.
    #[error("password hash starts with '{{' but the scheme name has no closing '}}'")]
    UnterminatedScheme,
    /// The scheme between the braces is not one Poppet can verify.
    #[error("unsupported password scheme {{{0}}} (supported: {list})", list = supported_list())]
    UnknownScheme(String),
    /// A `{CRYPT}` or bare hash whose `$id$` is not SHA-crypt or bcrypt (for example `$1$`, DES, yescrypt).
    #[error(
        "unsupported crypt format {prefix:?} (supported: $6$ SHA512-CRYPT, $5$ SHA256-CRYPT, $2y$/$2b$/$2a$ \
         BLF-CRYPT; Argon2 needs the {{ARGON2ID}} prefix)"
    )]
    UnsupportedCrypt {
        /// The `$id$` prefix, or empty when the string does not start with `$` (DES crypt or a typo).
        prefix: String,
    },
    /// The scheme is known but the data after it is not well formed.
    #[error("malformed {scheme} hash: {reason}")]
    Malformed {
        /// The scheme the data claimed to be.
        scheme: Scheme,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why a new password hash could not be made.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The scheme has no cost parameter (SSHA, SSHA256, SSHA512, PLAIN).
    #[error("{0} does not take a rounds/cost parameter")]
    RoundsNotApplicable(Scheme),
    /// The rounds/cost value is outside what the scheme allows.
    #[error("{scheme} rounds {rounds} out of range {min}..={max}")]
    RoundsOutOfRange {
        /// The scheme asked for.
        scheme: Scheme,
        /// The value given.
        rounds: u32,
        /// The smallest allowed value.
        min: u32,
        /// The largest allowed value.
        max: u32,
    },
    /// A PLAIN "hash" is the password itself, which must then be text to be written into a file.
    #[error("a PLAIN password must be valid UTF-8")]
    PlainNotUtf8,
    /// The hashing library refused (should not happen with valid parameters).
    #[error("{scheme} hashing failed: {reason}")]
    Backend {
        /// The scheme asked for.
        scheme: Scheme,
        /// The library's message.
        reason: String,
    },
}
