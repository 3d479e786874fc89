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
//! - deletions recorded in the maildir's Maildir++ quota file (`maildirsize`) when it has one, so a
//!   delivery agent enforcing the quota counts them as gone.
//!
//! Settings (RON), all optional:
//! ```ron
//! (
//!     path: "/var/mail/%d/%n/Maildir",  // or let the auth backend name the mailbox
//!     skeleton: "/etc/poppet/skeleton",  // copied into a maildir that does not exist yet
//!     lock_stale_after: "30m",
//!     mark_seen: true,
//!     uidl_source: "native",            // or "dovecot" / "courier": keep the old server's UIDLs
//!     uidl_format: "%08Xu%08Xv",         // Dovecot's pop3_uidl_format, with "dovecot"
//! )
//! ```
//!
//! Observability: each open logs, at debug level, `maildir {path}: {n} sizes from cache,
//! {m} computed, {k} from file names`; with `RUST_LOG=poppet_store_maildir=debug` an end-to-end
//! test can check that a second open computed none. In Rust, [`MaildirDrop::stats`] says the same.
//!
//! Migration: with `uidl_source: "dovecot"` or `"courier"` the store serves the UIDLs the old
//! server served, read (never written) from its `dovecot-uidlist` or `courierpop3dsizelist`, and
//! uses its recorded sizes where they can be trusted. The `poppet-maildir` tool ([`tools`]) reports
//! per mail tree how many UIDLs would change under a setting, and warms every maildir's sizes
//! cache before the first login. The crate is also an rlib only so that tool shares this code.
//!
//! Unix only: it relies on file modes, inode numbers and byte file names.

mod body;
mod chunks;
mod files;
mod import;
mod lock;
mod maildrop;
mod name;
mod pool;
mod quota;
mod readahead;
mod refresh;
mod settings;
mod sizes;
mod snapshot;
mod store;
pub mod tools;

#[cfg(test)]
mod tests;

pub use body::CrlfReader;
pub use import::{
    COURIER_SIZELIST, DOVECOT_DEFAULT_FORMAT, DOVECOT_UIDLIST, Imported, UidlFormat, UidlSource,
};
pub use lock::LOCK_FILE;
pub use maildrop::{Body, MaildirDrop};
pub use settings::{RawSettings, Settings};
pub use sizes::CACHE_FILE;
pub use snapshot::SizeStats;
pub use store::Maildir;

/// The file-name rules, the size counter and the old servers' UIDL lists alone, for the fuzz
/// targets in `fuzz/`; not API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::body::Reading;
    pub use crate::import::{Vars, parse_courier, parse_dovecot};
    pub use crate::name::{base, cur_name, uidl, w_size, with_seen};
    pub use crate::sizes::{CrlfCounter, completion};
}

poppet_sdk::export_plugin! {
    name: "store-maildir",
    version: env!("CARGO_PKG_VERSION"),
    factories: [ store "maildir" => Maildir::from_settings ],
}
