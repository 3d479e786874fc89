//! Poppet's POP3 protocol core: a sans-I/O grammar and session state machine.
//!
//! Bytes in, events and responses out, clock passed in; no sockets, files or async, so
//! every rule of RFC 1939 (POP3), RFC 2449 (CAPA, PIPELINING, RESP-CODES,
//! AUTH-RESP-CODE, LOGIN-DELAY, EXPIRE, IMPLEMENTATION, 255-octet command lines) and
//! RFC 3206 (SYS/TEMP, SYS/PERM, AUTH), RFC 2595 (STLS) and RFC 5034 (SASL AUTH
//! framing; the mechanisms run in the driver) is testable without a network. The
//! hostile-client rules live here too: the cleartext policy, bad-command limits, an
//! absolute login timeout and username hygiene.
//!
//! The driver loop:
//!
//! ```
//! use std::time::Instant;
//! use poppet_proto::{Event, Session, SessionOptions};
//!
//! let now = Instant::now();
//! let mut session = Session::new(SessionOptions::default(), now);
//! let mut wire = session.greeting().to_bytes();
//! session.enqueue_input(b"CAPA\r\nQUIT\r\n");
//! while let Some(event) = session.next(now) {
//!     match event {
//!         Event::Reply(reply) => reply.encode(&mut wire),
//!         Event::Close { reply, .. } => {
//!             if let Some(reply) = reply {
//!                 reply.encode(&mut wire);
//!             }
//!             break;
//!         }
//!         _ => unimplemented!("TLS, auth, transfers, commits and extensions"),
//!     }
//! }
//! assert!(wire.ends_with(b"+OK Poppet signing off\r\n"));
//! ```

mod authorization;
mod body;
mod capability;
mod command;
mod error;
mod event;
mod line;
mod options;
mod response;
mod sasl;
mod secret;
mod session;
mod state;
pub mod text;
mod tls;
mod transaction;
mod uidl;
mod update;
mod user;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

pub use crate::body::{BodyEncoder, Progress};
pub use crate::error::ProtoError;
pub use crate::event::{
    AuthRequest, CloseReason, CommitOutcome, Event, Failure, LoginOutcome, Mechanism, MessageMeta,
    SessionStats,
};
pub use crate::options::{Expire, ExtensionVerb, SessionOptions};
pub use crate::response::{Response, ResponseCode, Status};
pub use crate::secret::Secret;
pub use crate::session::Session;
pub use crate::state::{State, StateSet};
pub use crate::text::{Catalog, CatalogError, Text};
pub use crate::uidl::{InvalidUidl, Uidl};
pub use crate::user::{InvalidUser, MAX_USER_LEN, validate_user};

/// The command parser and line framing alone, for the fuzz targets in `fuzz/`; not API.
#[doc(hidden)]
pub mod fuzzing;
