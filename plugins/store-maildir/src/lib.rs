//! # poppet-store-maildir
//!
//! Poppet's mail store for maildir mailboxes (cr.yp.to/proto/maildir.html, with Courier's
//! Maildir++ file names). Maildir is the format most MTAs deliver to without locking, and the one
//! qmail-pop3d, Courier and Dovecot read, so this plugin keeps their conventions where a client
//! could notice: the UIDL is the file name's unique part, new mail moves to `cur/` with `:2,`.
//!
//! What it adds for POP3:
//! - exact CRLF sizes (from `,W=` names, else computed once and kept in a checked sidecar cache,
//!   `poppet-sizes`) and a body stream converting bare LF to CRLF on the fly;
//! - an exclusive session lock file that works across processes and hosts, kept fresh by one
//!   background thread per store while sessions are open, and checked before a commit;
//! - a snapshot fixed at open, deletes applied only at commit, to the snapshot's files only
//!   (recognised by inode; nothing is ever renamed over another file).
//!
//! Settings (RON), all optional:
//! ```ron
//! (
//!     path: "/var/mail/%d/%n/Maildir",  // or let the auth backend name the mailbox
//!     skeleton: "/etc/poppet/skeleton",  // copied into a maildir that does not exist yet
//!     lock_stale_after: "30m",
//!     mark_seen: true,
//! )
//! ```
//!
//! Observability: each open logs, at debug level, `maildir {path}: {n} sizes from cache,
//! {m} computed, {k} from file names`; with `RUST_LOG=poppet_store_maildir=debug` an end-to-end
//! test can check that a second open computed none. In Rust, [`MaildirDrop::stats`] says the same.
//!
//! Unix only: it relies on file modes, inode numbers and byte file names.

mod body;
mod files;
mod lock;
mod maildrop;
mod name;
mod refresh;
mod settings;
mod sizes;
mod snapshot;
mod store;

#[cfg(test)]
mod tests;

pub use body::CrlfReader;
pub use lock::LOCK_FILE;
pub use maildrop::{Body, MaildirDrop};
pub use settings::{RawSettings, Settings};
pub use sizes::CACHE_FILE;
pub use snapshot::SizeStats;
pub use store::Maildir;

poppet_sdk::export_plugin! {
    name: "store-maildir",
    version: env!("CARGO_PKG_VERSION"),
    factories: [ store "maildir" => Maildir::from_settings ],
}
