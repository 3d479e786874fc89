//! The versioned C ABI between the server and its plugins, defined here and nowhere else.
//!
//! A plugin library exports two symbols:
//! - [`ABI_VERSION_SYMBOL`] (`poppet_plugin_abi_version() -> u32`), frozen forever: the host reads it
//!   first and refuses a mismatch with one clear line;
//! - [`ENTRY_SYMBOL`] (`poppet_plugin_entry(&'static HostApi) -> &'static PluginDecl`), resolved only
//!   after the version matched.
//!
//! Objects are `{ this, vtable }` ([`RawObject`]); every vtable starts with a [`VTableHeader`] (size and
//! drop). Within one ABI version methods are only appended, and a host checks `size` before calling a
//! method newer than the vtable. Anything else is a breaking change and a new [`ABI_VERSION`].
//!
//! Async methods return async-ffi futures polled by the host's executor. Futures that borrow the object
//! are typed `'static` here; the host-side wrappers (feature `host`) tie them to a borrow of the object,
//! which is the contract: an object outlives every future it returned.

use crate::error::PluginError;
use crate::ffi::{FfiOption, FfiResult, FfiSlice, FfiStr, FfiString, FfiVec};
use crate::types::{
    Accepted, AuthOutcome, Catalog, CommitReport, Expire, LoginDecision, QuitReport, Reply,
    ScramKeys, Secret, SessionChange, SessionView, StoredSecret, VerbSpec,
};
use async_ffi::{FfiContext, FfiFuture, FfiPoll};
use std::ffi::c_void;

/// The ABI version this SDK speaks. Bumped on any breaking change of the types in this module.
pub const ABI_VERSION: u32 = 1;

/// Name of the frozen `extern "C" fn() -> u32` that reports a library's ABI version.
pub const ABI_VERSION_SYMBOL: &[u8] = b"poppet_plugin_abi_version\0";

/// Name of the `extern "C" fn(&'static HostApi) -> &'static PluginDecl` entry point.
pub const ENTRY_SYMBOL: &[u8] = b"poppet_plugin_entry\0";

/// Signature of [`ABI_VERSION_SYMBOL`].
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;

/// Signature of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn(host: &'static HostApi) -> &'static PluginDecl;

/// What the host offers every plugin.
#[repr(C)]
#[derive(Debug)]
pub struct HostApi {
    /// `size_of::<HostApi>()` as the host built it; fields are only appended.
    pub size: usize,
    /// The host's ABI version.
    pub abi_version: u32,
    /// The most verbose level the host logs (`log::LevelFilter as u32`: 0 off .. 5 trace).
    pub max_log_level: u32,
    /// Forwards one log record to the host's logger.
    pub log: extern "C" fn(record: &LogRecord<'_>),
}

/// One log record forwarded from a plugin.
#[repr(C)]
#[derive(Debug)]
pub struct LogRecord<'a> {
    /// `log::Level as u32`: 1 error .. 5 trace.
    pub level: u32,
    /// The record's target (the plugin's module path by default).
    pub target: FfiStr<'a>,
    /// The formatted message.
    pub message: FfiStr<'a>,
    /// Source file, or empty.
    pub file: FfiStr<'a>,
    /// Source line, or 0.
    pub line: u32,
}

/// Plugin kinds, as carried in [`Factory::kind`].
pub mod kind {
    /// An [`AuthBackend`](crate::AuthBackend).
    pub const AUTH: u32 = 1;
    /// A [`MailStore`](crate::MailStore).
    pub const STORE: u32 = 2;
    /// A [`CommandExtension`](crate::CommandExtension).
    pub const EXTENSION: u32 = 3;

    /// The config-file name of a kind.
    pub fn name(kind: u32) -> &'static str {
        match kind {
            AUTH => "auth",
            STORE => "store",
            EXTENSION => "extension",
            _ => "unknown",
        }
    }
}

/// What a plugin library declares about itself.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDecl {
    /// Must equal the host's [`ABI_VERSION`].
    pub abi_version: u32,
    /// `async_ffi::ABI_VERSION` the plugin was built with.
    pub async_ffi_abi_version: u32,
    /// The poppet-sdk version the plugin was built with.
    pub sdk_version: FfiStr<'static>,
    /// The plugin's name.
    pub name: FfiStr<'static>,
    /// The plugin's version.
    pub version: FfiStr<'static>,
    /// The instances it can make.
    pub factories: FfiSlice<'static, Factory>,
}

/// Makes instances of one plugin kind from their RON settings text.
#[repr(C)]
#[derive(Debug)]
pub struct Factory {
    /// One of [`kind`].
    pub kind: u32,
    /// The factory's name, as the config refers to it.
    pub name: FfiStr<'static>,
    /// Creates an instance; the vtable behind the object matches `kind`.
    pub create: unsafe extern "C" fn(settings: FfiStr<'_>) -> FfiResult<RawObject>,
}

/// A plugin object: opaque data and the vtable that knows it.
#[repr(C)]
#[derive(Debug)]
pub struct RawObject {
    /// The plugin's data.
    pub this: *mut c_void,
    /// Points to the kind's vtable, which starts with a [`VTableHeader`].
    pub vtable: *const VTableHeader,
}

// SAFETY: every object kind is built from a type bounded `Send` by its trait (AuthBackend, MailStore,
// Maildrop, CommandExtension, Maildrop::Body are all Send), so moving the handle between threads is fine.
unsafe impl Send for RawObject {}

/// The start of every vtable.
#[repr(C)]
#[derive(Debug)]
pub struct VTableHeader {
    /// `size_of` the whole vtable as the plugin built it.
    pub size: usize,
    /// Frees the object (in the plugin, with the plugin's allocator).
    pub drop: unsafe extern "C" fn(this: *mut c_void),
}

/// A plugin future as it crosses the boundary.
pub type PluginFuture<T> = FfiFuture<FfiResult<T>>;

/// The vtable of an auth backend.
#[repr(C)]
#[derive(Debug)]
pub struct AuthVTable {
    /// Size and drop.
    pub header: VTableHeader,
    /// [`AuthBackend::authenticate`](crate::AuthBackend::authenticate).
    pub authenticate: unsafe extern "C" fn(
        this: *const c_void,
        req: &FfiAuthRequest<'_>,
    ) -> PluginFuture<FfiAuthOutcome>,
    /// [`AuthBackend::lookup_secret`](crate::AuthBackend::lookup_secret).
    pub lookup_secret: unsafe extern "C" fn(
        this: *const c_void,
        user: FfiStr<'_>,
    ) -> PluginFuture<FfiOption<FfiStoredSecret>>,
    /// [`AuthBackend::capabilities`](crate::AuthBackend::capabilities) as bits of [`capability`].
    pub capabilities: unsafe extern "C" fn(this: *const c_void) -> u32,
}

/// Bits of [`AuthVTable::capabilities`].
pub mod capability {
    /// Plaintext secrets.
    pub const PLAINTEXT_SECRETS: u32 = 1;
    /// Stored SCRAM-SHA-256 keys.
    pub const SCRAM_SHA256: u32 = 2;
}

/// [`StoredSecret`] at the boundary: `kind` 1 = plaintext (in `plaintext`), 2 = SCRAM-SHA-256 keys.
#[repr(C)]
#[derive(Debug)]
pub struct FfiStoredSecret {
    /// 1 plaintext, 2 SCRAM-SHA-256.
    pub kind: u32,
    /// The password for kind 1.
    pub plaintext: FfiString,
    /// SCRAM iteration count.
    pub iterations: u32,
    /// SCRAM salt.
    pub salt: FfiVec<u8>,
    /// SCRAM StoredKey.
    pub stored_key: [u8; 32],
    /// SCRAM ServerKey.
    pub server_key: [u8; 32],
}

impl FfiStoredSecret {
    /// Converts from the Rust form (plugin side).
    pub fn from_secret(secret: StoredSecret) -> Self {
        match secret {
            StoredSecret::Plaintext(p) => FfiStoredSecret {
                kind: 1,
                plaintext: FfiString::from(p.expose().as_str()),
                iterations: 0,
                salt: FfiVec::from(Vec::new()),
                stored_key: [0; 32],
                server_key: [0; 32],
            },
            StoredSecret::ScramSha256(k) => FfiStoredSecret {
                kind: 2,
                plaintext: FfiString::from(""),
                iterations: k.iterations,
                salt: FfiVec::from(k.salt),
                stored_key: k.stored_key,
                server_key: k.server_key,
            },
        }
    }

    /// Converts to the Rust form (host side); an unknown kind from a newer plugin reads as none.
    pub fn into_secret(self) -> Option<StoredSecret> {
        match self.kind {
            1 => Some(StoredSecret::Plaintext(Secret::new(
                self.plaintext.as_str().to_owned(),
            ))),
            2 => Some(StoredSecret::ScramSha256(ScramKeys {
                iterations: self.iterations,
                salt: self.salt.as_slice().to_vec(),
                stored_key: self.stored_key,
                server_key: self.server_key,
            })),
            _ => None,
        }
    }
}

/// [`crate::AuthRequest`] at the boundary. Addresses are strings (`ip:port`), empty when unknown.
#[repr(C)]
#[derive(Debug)]
pub struct FfiAuthRequest<'a> {
    /// Mechanism name.
    pub mechanism: FfiStr<'a>,
    /// Login name.
    pub user: FfiStr<'a>,
    /// Password.
    pub password: FfiStr<'a>,
    /// SASL authzid.
    pub authzid: FfiOption<FfiStr<'a>>,
    /// Client address.
    pub peer: FfiStr<'a>,
    /// Server address.
    pub local: FfiStr<'a>,
    /// Encrypted connection.
    pub tls: bool,
    /// Credentials already verified by the core (see [`crate::AuthRequest::verified`]).
    pub verified: bool,
}

/// Outcome codes of [`FfiAuthOutcome::kind`].
pub mod outcome {
    /// Accepted.
    pub const ACCEPT: u32 = 1;
    /// Rejected.
    pub const REJECT: u32 = 2;
    /// Temporary failure.
    pub const TEMPFAIL: u32 = 3;
}

/// [`AuthOutcome`] at the boundary.
#[repr(C)]
#[derive(Debug)]
pub struct FfiAuthOutcome {
    /// One of [`outcome`].
    pub kind: u32,
    /// Canonical user name.
    pub user: FfiOption<FfiString>,
    /// Mailbox location.
    pub mailbox: FfiOption<FfiString>,
    /// LOGIN-DELAY seconds.
    pub login_delay: FfiOption<u32>,
    /// EXPIRE: 0 unset, 1 never, 2 days.
    pub expire_kind: u32,
    /// EXPIRE days when `expire_kind == 2`.
    pub expire_days: u32,
    /// Reason for a temporary failure.
    pub message: FfiString,
}

impl FfiAuthOutcome {
    /// Converts from the Rust form (plugin side).
    pub fn from_outcome(o: AuthOutcome) -> Self {
        let mut out = FfiAuthOutcome {
            kind: outcome::REJECT,
            user: FfiOption::None,
            mailbox: FfiOption::None,
            login_delay: FfiOption::None,
            expire_kind: 0,
            expire_days: 0,
            message: FfiString::from(""),
        };
        match o {
            AuthOutcome::Accept(a) => {
                out.kind = outcome::ACCEPT;
                out.user = a.user.map(FfiString::from).into();
                out.mailbox = a.mailbox.map(FfiString::from).into();
                out.login_delay = a.login_delay.into();
                (out.expire_kind, out.expire_days) = match a.expire {
                    None => (0, 0),
                    Some(Expire::Never) => (1, 0),
                    Some(Expire::Days(d)) => (2, d),
                };
            }
            AuthOutcome::Reject => {}
            AuthOutcome::TempFail(reason) => {
                out.kind = outcome::TEMPFAIL;
                out.message = FfiString::from(reason);
            }
        }
        out
    }

    /// Converts to the Rust form (host side). An unknown kind from a newer plugin is a temporary failure.
    pub fn into_outcome(self) -> AuthOutcome {
        match self.kind {
            outcome::ACCEPT => AuthOutcome::Accept(Accepted {
                user: self.user.into_option().map(|s| s.as_str().to_owned()),
                mailbox: self.mailbox.into_option().map(|s| s.as_str().to_owned()),
                login_delay: self.login_delay.into_option(),
                expire: match self.expire_kind {
                    1 => Some(Expire::Never),
                    2 => Some(Expire::Days(self.expire_days)),
                    _ => None,
                },
            }),
            outcome::REJECT => AuthOutcome::Reject,
            outcome::TEMPFAIL => AuthOutcome::TempFail(self.message.as_str().to_owned()),
            other => AuthOutcome::TempFail(format!("plugin answered unknown outcome {other}")),
        }
    }
}

/// The vtable of a mail store.
#[repr(C)]
#[derive(Debug)]
pub struct StoreVTable {
    /// Size and drop.
    pub header: VTableHeader,
    /// [`MailStore::open`](crate::MailStore::open); the object is a maildrop ([`MaildropVTable`]).
    pub open: unsafe extern "C" fn(
        this: *const c_void,
        req: &FfiOpenRequest<'_>,
    ) -> PluginFuture<RawObject>,
}

/// [`crate::OpenRequest`] at the boundary.
#[repr(C)]
#[derive(Debug)]
pub struct FfiOpenRequest<'a> {
    /// User name.
    pub user: FfiStr<'a>,
    /// Mailbox location from the auth backend.
    pub mailbox: FfiOption<FfiStr<'a>>,
}

/// One message's metadata at the boundary, borrowed from the maildrop.
#[repr(C)]
#[derive(Debug)]
pub struct FfiMessageInfo<'a> {
    /// Size in octets as sent.
    pub size: u64,
    /// Unique id.
    pub uidl: FfiStr<'a>,
}

/// The vtable of an open maildrop.
#[repr(C)]
#[derive(Debug)]
pub struct MaildropVTable {
    /// Size and drop (drop without commit deletes nothing and releases the lock).
    pub header: VTableHeader,
    /// Number of messages in the snapshot.
    pub len: unsafe extern "C" fn(this: *const c_void) -> usize,
    /// Metadata of message `index` (< len).
    pub message: unsafe extern "C" fn(this: *const c_void, index: usize) -> FfiMessageInfo<'static>,
    /// Opens a body ([`BodyVTable`]).
    pub retrieve:
        unsafe extern "C" fn(this: *const c_void, index: usize) -> PluginFuture<RawObject>,
    /// Commits deletions.
    pub commit: unsafe extern "C" fn(
        this: *mut c_void,
        deleted: FfiSlice<'_, usize>,
    ) -> PluginFuture<FfiCommitReport>,
}

/// [`CommitReport`] at the boundary.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct FfiCommitReport {
    /// Removed.
    pub deleted: u64,
    /// Not removed.
    pub failed: u64,
}

impl From<CommitReport> for FfiCommitReport {
    fn from(r: CommitReport) -> Self {
        FfiCommitReport {
            deleted: r.deleted,
            failed: r.failed,
        }
    }
}

impl From<FfiCommitReport> for CommitReport {
    fn from(r: FfiCommitReport) -> Self {
        CommitReport {
            deleted: r.deleted,
            failed: r.failed,
        }
    }
}

/// The vtable of a message body stream: `poll_read` into a host-owned buffer, no allocation per read.
#[repr(C)]
#[derive(Debug)]
pub struct BodyVTable {
    /// Size and drop.
    pub header: VTableHeader,
    /// `futures_io::AsyncRead::poll_read`; `Ready(Ok(0))` is the end.
    pub poll_read: unsafe extern "C" fn(
        this: *mut c_void,
        cx: &mut FfiContext<'_>,
        buf: *mut u8,
        len: usize,
    ) -> FfiPoll<FfiResult<usize>>,
}

/// The vtable of a command extension.
#[repr(C)]
#[derive(Debug)]
pub struct ExtensionVTable {
    /// Size and drop.
    pub header: VTableHeader,
    /// The verbs, borrowed from the object.
    pub verbs: unsafe extern "C" fn(this: *const c_void) -> FfiSlice<'static, FfiVerbSpec<'static>>,
    /// Handles a verb.
    pub handle: unsafe extern "C" fn(
        this: *const c_void,
        call: &FfiExtensionCall<'_>,
    ) -> PluginFuture<FfiReply>,
    /// After-login hook.
    pub after_login: unsafe extern "C" fn(
        this: *const c_void,
        session: &FfiSessionView<'_>,
    ) -> PluginFuture<FfiLoginDecision>,
    /// Session-end hook (appended in ABI 1 before its first release); the result is only logged.
    pub at_quit: unsafe extern "C" fn(
        this: *const c_void,
        session: &FfiSessionView<'_>,
        report: &FfiQuitReport<'_>,
    ) -> PluginFuture<bool>,
    /// CAPA lines that belong to no verb, borrowed from the object (appended like `at_quit`).
    pub capabilities:
        unsafe extern "C" fn(this: *const c_void) -> FfiSlice<'static, FfiStr<'static>>,
    /// Translations of the core's texts, borrowed from the object (appended like `at_quit`).
    pub catalogs:
        unsafe extern "C" fn(this: *const c_void) -> FfiSlice<'static, FfiCatalog<'static>>,
}

/// [`Catalog`] at the boundary; `texts` and `terms` are flattened pairs (key, value, ...).
#[repr(C)]
#[derive(Debug)]
pub struct FfiCatalog<'a> {
    /// Language tag.
    pub tag: FfiStr<'a>,
    /// Language name.
    pub name: FfiStr<'a>,
    /// Id, template, id, template, ...
    pub texts: FfiSlice<'a, FfiStr<'a>>,
    /// Phrase, translation, ...
    pub terms: FfiSlice<'a, FfiStr<'a>>,
}

impl FfiCatalog<'_> {
    /// Copies into the Rust form.
    pub fn to_catalog(&self) -> Catalog {
        let pairs = |flat: &FfiSlice<'_, FfiStr<'_>>| {
            flat.as_slice()
                .chunks_exact(2)
                .map(|pair| (pair[0].as_str().to_owned(), pair[1].as_str().to_owned()))
                .collect()
        };
        Catalog {
            tag: self.tag.as_str().to_owned(),
            name: self.name.as_str().to_owned(),
            texts: pairs(&self.texts),
            terms: pairs(&self.terms),
        }
    }
}

/// [`VerbSpec`] at the boundary.
#[repr(C)]
#[derive(Debug)]
pub struct FfiVerbSpec<'a> {
    /// Keyword.
    pub verb: FfiStr<'a>,
    /// State bit set.
    pub states: u32,
    /// CAPA line.
    pub capability: FfiOption<FfiStr<'a>>,
    /// Most arguments.
    pub max_args: u32,
}

impl FfiVerbSpec<'_> {
    /// Copies into the Rust form.
    pub fn to_spec(&self) -> VerbSpec {
        VerbSpec {
            verb: self.verb.as_str().to_owned(),
            states: self.states,
            capability: self.capability.as_ref().map(|c| c.as_str().to_owned()),
            max_args: self.max_args,
        }
    }
}

/// [`SessionView`] at the boundary.
#[repr(C)]
#[derive(Debug)]
pub struct FfiSessionView<'a> {
    /// User, once logged in.
    pub user: FfiOption<FfiStr<'a>>,
    /// Client address or empty.
    pub peer: FfiStr<'a>,
    /// Encrypted.
    pub tls: bool,
    /// Message sizes.
    pub message_sizes: FfiSlice<'a, u64>,
    /// The server's session id (appended in ABI 1 before its first release).
    pub session_id: u64,
    /// The user's LOGIN-DELAY from the auth backend (appended like `session_id`).
    pub login_delay: FfiOption<u32>,
    /// RFC 6856 UTF-8 mode (appended like `session_id`).
    pub utf8: bool,
    /// The language of the core's texts, empty for English (appended like `session_id`).
    pub language: FfiStr<'a>,
}

impl FfiSessionView<'_> {
    /// Copies into the Rust form.
    pub fn to_view(&self) -> SessionView {
        SessionView {
            user: self.user.as_ref().map(|u| u.as_str().to_owned()),
            peer: self.peer.as_str().parse().ok(),
            tls: self.tls,
            message_sizes: self.message_sizes.as_slice().to_vec(),
            session_id: self.session_id,
            login_delay: self.login_delay.as_ref().copied(),
            utf8: self.utf8,
            language: Some(self.language.as_str())
                .filter(|tag| !tag.is_empty())
                .map(str::to_owned),
        }
    }
}

/// [`QuitReport`] at the boundary, borrowed from the host for the duration of the call.
#[repr(C)]
#[derive(Debug)]
pub struct FfiQuitReport<'a> {
    /// UIDLs of the removed messages.
    pub deleted_uidls: FfiSlice<'a, FfiStr<'a>>,
    /// Messages sent with RETR.
    pub retrieved: u64,
    /// Messages removed.
    pub deleted: u64,
    /// How the session ended.
    pub ended: FfiStr<'a>,
}

impl FfiQuitReport<'_> {
    /// Copies into the Rust form.
    pub fn to_report(&self) -> QuitReport {
        QuitReport {
            deleted_uidls: self
                .deleted_uidls
                .as_slice()
                .iter()
                .map(|u| u.as_str().to_owned())
                .collect(),
            retrieved: self.retrieved,
            deleted: self.deleted,
            ended: self.ended.as_str().to_owned(),
        }
    }
}

/// [`crate::ExtensionCall`] at the boundary.
#[repr(C)]
#[derive(Debug)]
pub struct FfiExtensionCall<'a> {
    /// Verb.
    pub verb: FfiStr<'a>,
    /// Arguments.
    pub args: FfiSlice<'a, FfiStr<'a>>,
    /// The session.
    pub session: FfiSessionView<'a>,
}

/// [`Reply`] at the boundary.
#[repr(C)]
#[derive(Debug)]
pub struct FfiReply {
    /// +OK or -ERR.
    pub ok: bool,
    /// Response code.
    pub code: FfiOption<FfiString>,
    /// Text.
    pub text: FfiString,
    /// Multi-line body.
    pub lines: FfiOption<FfiVec<FfiString>>,
    /// [`SessionChange::utf8`].
    pub utf8: bool,
    /// [`SessionChange::language`].
    pub language: FfiOption<FfiString>,
    /// [`Reply::stream`]: a body object ([`BodyVTable`]) the host takes and drops.
    pub stream: FfiOption<RawObject>,
}

impl From<Reply> for FfiReply {
    fn from(r: Reply) -> Self {
        FfiReply {
            ok: r.ok,
            code: r.code.map(FfiString::from).into(),
            text: FfiString::from(r.text),
            lines: r
                .lines
                .map(|l| FfiVec::from(l.into_iter().map(FfiString::from).collect::<Vec<_>>()))
                .into(),
            utf8: r.change.utf8,
            language: r.change.language.map(FfiString::from).into(),
            // A stream crosses only from `handle` (the extension shim converts it); anywhere else
            // it is dropped on the plugin's side.
            stream: FfiOption::None,
        }
    }
}

impl From<FfiReply> for Reply {
    fn from(r: FfiReply) -> Self {
        Reply {
            ok: r.ok,
            code: r.code.as_ref().map(|c| c.as_str().to_owned()),
            text: r.text.as_str().to_owned(),
            lines: r
                .lines
                .as_ref()
                .map(|l| l.as_slice().iter().map(|s| s.as_str().to_owned()).collect()),
            change: SessionChange {
                utf8: r.utf8,
                language: r.language.as_ref().map(|l| l.as_str().to_owned()),
            },
            // The host wraps the body object itself (`host::ExtensionPlugin::handle`).
            stream: None,
        }
    }
}

/// [`LoginDecision`] at the boundary.
#[repr(C)]
#[derive(Debug)]
pub struct FfiLoginDecision {
    /// Allowed.
    pub allow: bool,
    /// The refusal reply when not allowed.
    pub reply: FfiOption<FfiReply>,
}

impl From<LoginDecision> for FfiLoginDecision {
    fn from(d: LoginDecision) -> Self {
        match d {
            LoginDecision::Allow => FfiLoginDecision {
                allow: true,
                reply: FfiOption::None,
            },
            LoginDecision::Refuse(r) => FfiLoginDecision {
                allow: false,
                reply: FfiOption::Some(r.into()),
            },
        }
    }
}

impl From<FfiLoginDecision> for LoginDecision {
    fn from(d: FfiLoginDecision) -> Self {
        match (d.allow, d.reply.into_option()) {
            (true, _) => LoginDecision::Allow,
            (false, Some(r)) => LoginDecision::Refuse(r.into()),
            (false, None) => LoginDecision::Refuse(Reply::err("login refused")),
        }
    }
}

/// Converts a boundary result into a Rust one.
pub fn from_ffi_result<T>(r: FfiResult<T>) -> Result<T, PluginError> {
    match r {
        FfiResult::Ok(v) => Ok(v),
        FfiResult::Err(e) => Err(PluginError::from_ffi(e)),
    }
}

/// Converts a Rust result into a boundary one.
pub fn to_ffi_result<T>(r: Result<T, PluginError>) -> FfiResult<T> {
    match r {
        Ok(v) => FfiResult::Ok(v),
        Err(e) => FfiResult::Err(e.into_ffi()),
    }
}
