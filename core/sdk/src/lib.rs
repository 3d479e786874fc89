//! # poppet-sdk
//!
//! The one crate a Poppet plugin depends on. A plugin implements ordinary Rust traits —
//! [`AuthBackend`], [`MailStore`] + [`Maildrop`], [`CommandExtension`] — and declares itself with
//! [`export_plugin!`]. The macro generates the versioned C ABI (see [`abi`]): two exported symbols,
//! vtables that start with size and drop, FFI-safe types, async-ffi futures, and a panic guard around
//! every call, so a panicking plugin fails one session instead of the server.
//!
//! ```
//! use poppet_sdk::{AuthBackend, AuthOutcome, AuthRequest, PluginError, config};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings { password: String }
//!
//! struct OnePassword(Settings);
//!
//! impl AuthBackend for OnePassword {
//!     async fn authenticate(&self, req: AuthRequest) -> Result<AuthOutcome, PluginError> {
//!         Ok(if req.password.expose() == &self.0.password {
//!             AuthOutcome::Accept(Default::default())
//!         } else {
//!             AuthOutcome::Reject
//!         })
//!     }
//! }
//!
//! poppet_sdk::export_plugin! {
//!     name: "one-password",
//!     version: env!("CARGO_PKG_VERSION"),
//!     factories: [ auth "one-password" => |s| Ok(OnePassword(config::parse(s)?)) ],
//! }
//! ```
//!
//! The host side of the same ABI (loading libraries, safe wrappers) is behind the `host` feature.

mod error;
mod export;
mod ffi;
mod guard;
mod logging;
mod traits;
mod types;

pub mod abi;
pub mod config;
#[cfg(feature = "host")]
pub mod host;
pub mod mailbox;
#[cfg(feature = "tokio")]
pub mod runtime;

pub use error::{ErrorCode, PluginError, Position};
pub use ffi::{FfiError, FfiOption, FfiResult, FfiSlice, FfiStr, FfiString, FfiVec};
pub use logging::{level, level_filter};
pub use traits::{AuthBackend, CommandExtension, MailStore, Maildrop};
pub use types::{
    Accepted, AuthCapabilities, AuthOutcome, AuthRequest, BoxedReader, Catalog, CommitReport,
    Expire, ExtensionCall, LoginDecision, MessageInfo, OpenRequest, QuitReport, Reply, ReplyStream,
    ScramKeys, Secret, SessionChange, SessionView, StoredSecret, VerbSpec, mechanism, states,
};

/// The version of this SDK, recorded in every plugin's declaration.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Used by [`export_plugin!`]; not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{auth, entry, extension, store};

    /// async-ffi's ABI version this SDK was built with.
    pub const ASYNC_FFI_ABI_VERSION: u32 = async_ffi::ABI_VERSION;
}
