//! # poppet-store-mbox
//!
//! Poppet's mail store for Unix mbox files: one file per user that the MTA appends to, as
//! `/var/mail/<user>` on Debian. It serves them without ever losing or corrupting mail delivered
//! while a POP3 session is open:
//!
//! - reading: mboxrd by default (`>From ` unquoting done per variant, [`Variant`]), consistent
//!   `Content-Length:` headers honoured, LF or CRLF files, a missing final line end, an empty or
//!   missing file (an empty maildrop); the `parse` module has the rules;
//! - locking: the dotlock and fcntl locks Debian's MDAs take, in their order, with a timeout,
//!   held only while the snapshot is read and while deletions are written (or, with
//!   `lock_session`, for the whole session); plus an exclusive POP3 session lock (`[IN-USE]`);
//! - UIDL: `X-UIDL` where present, else a SHA-256 digest of the message's stable content,
//!   distinct for identical duplicates, unchanged by other messages' deletion;
//! - sizes: computed exactly, by the same transformation the body stream uses, in the one pass
//!   that finds the messages. No sizes cache: finding message boundaries already reads the whole
//!   file, and a cache keyed on the file's length and mtime could not tell an append from a
//!   rewrite without reading it again;
//! - commit: a rewrite to a temporary file, `fsync`, and a rename over the mbox, keeping mail
//!   appended meanwhile, the owner and the mode; crash-safe at every point.
//!
//! Settings (RON), all optional:
//! ```ron
//! (
//!     path: "/var/mail/%u",          // or let the auth backend name the mailbox
//!     variant: mboxrd,               // mboxrd | mboxo | mboxcl | mboxcl2
//!     locks: [dotlock, fcntl],       // taken in this order
//!     lock_timeout: "30s",
//!     dotlock_stale_after: "5m",
//!     lock_session: false,           // true: hold the delivery locks all session (tpop3d)
//!     content_length: true,
//! )
//! ```
//! The README says which variant and locks to choose for which MDA.
//!
//! Linux only: the fcntl lock is an open file description lock.

mod body;
mod commit;
mod lock;
mod maildrop;
mod parse;
mod settings;
mod snapshot;
mod store;
mod transform;

#[cfg(test)]
mod size_props;
#[cfg(test)]
mod tests;

pub use body::MessageReader;
pub use maildrop::{Body, MboxDrop};
pub use settings::{LockKind, RawSettings, Settings, Variant};
pub use store::Mbox;

/// The parser and the transformation alone, for the fuzz targets in `fuzz/` (which also drive
/// the public [`MessageReader`]); not API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::parse::{Options, parse};
    pub use crate::transform::{Transform, Unquote};
}

poppet_sdk::export_plugin! {
    name: "store-mbox",
    version: env!("CARGO_PKG_VERSION"),
    factories: [ store "mbox" => Mbox::from_settings ],
}
