//! Dovecot-compatible password schemes and passwd-file parsing.
//!
//! Poppet reads the same credentials Dovecot does, so that a site can move its users over without re-hashing a
//! single password. This crate is the one place that knows those formats; the passwd-file auth plugin, the future
//! LDAP plugin and the server's `poppet pw` subcommand (a twin of `doveadm pw`) all share it.
//!
//! - [`PasswordHash::parse`] reads Dovecot's `{SCHEME}data` form (and a bare crypt string, which Dovecot's
//!   passwd-file reads as its default scheme `CRYPT`), refusing anything it cannot verify with an error that names
//!   the scheme.
//! - [`verify`] checks a password in constant time where the scheme allows; [`dummy_verify`] and
//!   [`dummy_verify_like`] spend the same time for a user that does not exist.
//! - [`plaintext_equivalent`] and [`scram_keys`] hand challenge-response mechanisms (APOP, SASL SCRAM-SHA-256)
//!   what they need from `{PLAIN}` and `{SCRAM-SHA-256}` entries.
//! - [`hash()`] and [`hash_with_rounds`] produce new `{SCHEME}...` strings with fresh salts and Dovecot's defaults.
//! - [`parse_passwd_file`] reads Dovecot's `user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields` file,
//!   reporting bad lines without giving up on the good ones.
//!
//! The crate does no I/O and no async: callers hand it text and bytes. `Debug` never shows a hash or a password.

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod argon;
mod crypt;
mod error;
mod generate;
mod hash;
mod passwd_file;
mod scheme;
mod scram;
mod ssha;
#[cfg(test)]
mod vectors;

pub use crate::error::{HashError, ParseError};
pub use crate::generate::{hash, hash_with_rounds};
pub use crate::hash::{
    PasswordHash, dummy_verify, dummy_verify_like, plaintext_equivalent, scram_keys, verify,
};
pub use crate::passwd_file::{Entry, LineError, LineErrorReason, parse_passwd_file};
pub use crate::scheme::Scheme;
/// The SCRAM-SHA-256 keys [`scram_keys`] returns, re-exported so callers need not depend on `poppet-sasl`.
pub use poppet_sasl::ScramCredentials;
