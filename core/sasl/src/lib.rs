//! Sans-I/O SASL server mechanisms for POP3 `AUTH` (RFC 5034).
//!
//! The POP3 server owns the socket, the base64 framing of RFC 5034 and the policy (which mechanisms are offered on
//! which connection). This crate owns only the mechanisms: it takes each client message as raw, already
//! base64-decoded bytes and says what to do next with a [`Step`]. Keeping the mechanisms free of I/O lets every rule
//! below be tested with byte strings, RFC test vectors and an independent client implementation.
//!
//! Mechanisms:
//! - `PLAIN` (RFC 4616): one message carrying authzid, authcid and password.
//! - `LOGIN` (draft-murchison-sasl-login): the `Username:` / `Password:` dialogue Outlook still sends.
//! - `SCRAM-SHA-256` (RFC 5802 + RFC 7677): the password never crosses the wire, the server stores only keys.
//! - `SCRAM-SHA-256-PLUS` with `tls-exporter` channel binding (RFC 9266), which ties the SCRAM exchange to the TLS
//!   session so that a man in the middle that terminates TLS cannot relay it.
//!
//! Every [`SaslError`] means the AUTH command is rejected (RFC 5034 §4: a failed or cancelled exchange ends with a
//! negative response), and the driver maps each one to a single `-ERR` line.
//!
//! ```
//! use poppet_sasl::{Exchange, Mechanism, Step};
//!
//! let mut exchange = Exchange::new(Mechanism::Plain, None);
//! match exchange.step(Some(b"\0tim\0tanstaaftanstaaf"))? {
//!     Step::CheckPassword { user, password, .. } => {
//!         assert_eq!(user, "tim");
//!         assert_eq!(password.expose(), "tanstaaftanstaaf");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! # Ok::<(), poppet_sasl::SaslError>(())
//! ```

mod credentials;
mod error;
mod exchange;
mod login;
mod mechanism;
mod plain;
mod scram;
mod scram_msg;
mod secret;

pub use credentials::{DEFAULT_ITERATIONS, ScramCredentials};
pub use error::SaslError;
pub use exchange::{ChannelBinding, Exchange, Step};
pub use mechanism::Mechanism;
pub use secret::Secret;
