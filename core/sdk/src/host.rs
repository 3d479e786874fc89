//! Host-side safe wrappers for the ABI (feature `host`): loading a library, checking its ABI, creating
//! instances and calling them. The server uses only these; it never touches a raw vtable.

use crate::abi::{
    self, AbiVersionFn, AuthVTable, BodyVTable, EntryFn, ExtensionVTable, FfiAuthRequest,
    FfiExtensionCall, FfiOpenRequest, FfiQuitReport, FfiSessionView, HostApi, LogRecord,
    MaildropVTable, PluginDecl, RawObject, StoreVTable, from_ffi_result,
};
use crate::error::{ErrorCode, PluginError};
use crate::ffi::{FfiSlice, FfiStr};
use crate::types::{
    AuthCapabilities, AuthOutcome, AuthRequest, Catalog, CommitReport, ExtensionCall,
    LoginDecision, MessageInfo, OpenRequest, QuitReport, Reply, SessionView, StoredSecret,
    VerbSpec,
};
use async_ffi::ContextExt;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why a library could not be used as a plugin. Each message is one line naming the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be loaded as a shared library at all.
    #[error("{path}: not a loadable plugin library: {reason}")]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },
    /// The library lacks the plugin symbols.
    #[error("{path}: not a Poppet plugin (no `poppet_plugin_abi_version` symbol)")]
    NotAPlugin {
        /// The file.
        path: PathBuf,
    },
    /// Built against another ABI version.
    #[error(
        "{path}: plugin ABI {found}, server supports {supported}: rebuild it against poppet-sdk {sdk}"
    )]
    AbiMismatch {
        /// The file.
        path: PathBuf,
        /// The plugin's ABI version.
        found: u32,
        /// The server's ABI version.
        supported: u32,
        /// The server's SDK version.
        sdk: &'static str,
    },
    /// The declaration is inconsistent.
    #[error("{path}: invalid plugin declaration: {reason}")]
    BadDeclaration {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Why an instance could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// No factory of that kind and name.
    #[error("{path}: has no {kind} factory named `{name}` (it offers: {offered})")]
    MissingFactory {
        /// The library.
        path: PathBuf,
        /// The kind asked for.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// What the library offers.
        offered: String,
    },
    /// The factory refused (bad settings, a panic, ...).
    #[error("{path}: {kind} `{name}`: {error}")]
    Failed {
        /// The library.
        path: PathBuf,
        /// The kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// The plugin's error, with a position inside the settings text for config errors.
        error: PluginError,
    },
    /// The plugin's vtable is older than this host needs.
    #[error("{path}: {kind} `{name}`: vtable of {found} bytes, this server needs {needed}")]
    VTableTooSmall {
        /// The library.
        path: PathBuf,
        /// The kind.
        kind: &'static str,
        /// The name.
        name: String,
        /// The plugin's vtable size.
        found: usize,
        /// What this host calls.
        needed: usize,
    },
}

/// RTLD_NODELETE: the library is never unmapped, even if a handle were closed (glibc's value).
#[cfg(target_os = "linux")]
const RTLD_NODELETE: std::ffi::c_int = 0x1000;
#[cfg(not(target_os = "linux"))]
const RTLD_NODELETE: std::ffi::c_int = 0;

extern "C" fn host_log(record: &LogRecord<'_>) {
    // A panic must not unwind into the plugin; a failed log line is dropped.
    let _ = std::panic::catch_unwind(|| {
        let file = record.file.as_str();
        log::logger().log(
            &log::Record::builder()
                .level(crate::logging::level(record.level))
                .target(record.target.as_str())
                .args(format_args!("{}", record.message.as_str()))
                .file((!file.is_empty()).then_some(file))
                .line((record.line != 0).then_some(record.line))
                .build(),
        );
    });
}

/// A loaded plugin library. Libraries are never unloaded (unloading after use crashed in tests, and
/// futures or threads of the plugin may outlive any handle), so this is a cheap, copyable reference.
#[derive(Debug, Clone)]
pub struct Library {
    path: PathBuf,
    decl: &'static PluginDecl,
}

impl Library {
    /// Loads `path` with `RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE`, checks the ABI version, then calls the
    /// entry point.
    pub fn load(path: &Path) -> Result<Library, LoadError> {
        let flags =
            libloading::os::unix::RTLD_NOW | libloading::os::unix::RTLD_LOCAL | RTLD_NODELETE;
        // SAFETY: loading runs the library's initialisers; the server loads only libraries its operator
        // named in the config, which is the trust model of every plugin system.
        let lib =
            unsafe { libloading::os::unix::Library::open(Some(path), flags) }.map_err(|e| {
                // libloading puts dlerror()'s text in the error's source; keep it.
                let detail = std::error::Error::source(&e)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                LoadError::NotALibrary {
                    path: path.to_owned(),
                    reason: format!("{e}{detail}"),
                }
            })?;
        // SAFETY: the symbol's type is frozen forever by the ABI (`extern "C" fn() -> u32`).
        let version_fn =
            unsafe { lib.get::<AbiVersionFn>(abi::ABI_VERSION_SYMBOL) }.map_err(|_| {
                LoadError::NotAPlugin {
                    path: path.to_owned(),
                }
            })?;
        // SAFETY: as above; the function takes nothing and returns a plain integer.
        let found = unsafe { version_fn() };
        if found != abi::ABI_VERSION {
            return Err(LoadError::AbiMismatch {
                path: path.to_owned(),
                found,
                supported: abi::ABI_VERSION,
                sdk: crate::SDK_VERSION,
            });
        }
        // SAFETY: same ABI version, so the entry symbol has the type this SDK declares.
        let entry = unsafe { lib.get::<EntryFn>(abi::ENTRY_SYMBOL) }.map_err(|_| {
            LoadError::BadDeclaration {
                path: path.to_owned(),
                reason: "ABI version symbol present but no `poppet_plugin_entry`".into(),
            }
        })?;
        static HOST: std::sync::OnceLock<HostApi> = std::sync::OnceLock::new();
        let host = HOST.get_or_init(|| HostApi {
            size: size_of::<HostApi>(),
            abi_version: abi::ABI_VERSION,
            max_log_level: log::max_level() as u32,
            log: host_log,
        });
        // SAFETY: the entry point of a same-ABI plugin, given a 'static host API; the SDK-generated
        // entry catches nothing that can panic (it only installs a logger and returns a static).
        let decl = unsafe { entry(host) };
        // Never unload: the handle is forgotten, and RTLD_NODELETE keeps the mapping even if the same
        // path is opened and closed elsewhere.
        std::mem::forget(lib);
        if decl.abi_version != abi::ABI_VERSION {
            return Err(LoadError::BadDeclaration {
                path: path.to_owned(),
                reason: format!(
                    "declares ABI {} but exports {}",
                    decl.abi_version,
                    abi::ABI_VERSION
                ),
            });
        }
        if decl.async_ffi_abi_version != async_ffi::ABI_VERSION {
            return Err(LoadError::BadDeclaration {
                path: path.to_owned(),
                reason: format!(
                    "built with async-ffi ABI {}, server has {}",
                    decl.async_ffi_abi_version,
                    async_ffi::ABI_VERSION
                ),
            });
        }
        Ok(Library {
            path: path.to_owned(),
            decl,
        })
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The plugin's declared name.
    pub fn name(&self) -> &str {
        self.decl.name.as_str()
    }

    /// The plugin's declared version.
    pub fn version(&self) -> &str {
        self.decl.version.as_str()
    }

    /// The SDK version the plugin was built with.
    pub fn sdk_version(&self) -> &str {
        self.decl.sdk_version.as_str()
    }

    /// `(kind, name)` of every factory.
    pub fn factories(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.decl
            .factories
            .as_slice()
            .iter()
            .map(|f| (abi::kind::name(f.kind), f.name.as_str()))
    }

    fn create<V>(&self, kind: u32, name: &str, settings: &str) -> Result<Handle<V>, CreateError> {
        let kind_name = abi::kind::name(kind);
        let factory = self
            .decl
            .factories
            .as_slice()
            .iter()
            .find(|f| f.kind == kind && f.name.as_str() == name);
        let Some(factory) = factory else {
            let offered: Vec<String> = self
                .factories()
                .map(|(k, n)| format!("{k} `{n}`"))
                .collect();
            return Err(CreateError::MissingFactory {
                path: self.path.clone(),
                kind: kind_name,
                name: name.to_owned(),
                offered: if offered.is_empty() {
                    "nothing".into()
                } else {
                    offered.join(", ")
                },
            });
        };
        // SAFETY: a factory of a checked same-ABI library; the settings borrow lives for the call.
        let made = unsafe { (factory.create)(FfiStr::new(settings)) };
        let object = from_ffi_result(made).map_err(|error| CreateError::Failed {
            path: self.path.clone(),
            kind: kind_name,
            name: name.to_owned(),
            error,
        })?;
        Handle::new(object).map_err(|found| CreateError::VTableTooSmall {
            path: self.path.clone(),
            kind: kind_name,
            name: name.to_owned(),
            found,
            needed: size_of::<V>(),
        })
    }

    /// Creates an auth backend from its RON settings text.
    pub fn create_auth(&self, name: &str, settings: &str) -> Result<AuthPlugin, CreateError> {
        Ok(AuthPlugin(self.create(abi::kind::AUTH, name, settings)?))
    }

    /// Creates a mail store from its RON settings text.
    pub fn create_store(&self, name: &str, settings: &str) -> Result<StorePlugin, CreateError> {
        Ok(StorePlugin(self.create(
            abi::kind::STORE,
            name,
            settings,
        )?))
    }

    /// Creates a command extension from its RON settings text.
    pub fn create_extension(
        &self,
        name: &str,
        settings: &str,
    ) -> Result<ExtensionPlugin, CreateError> {
        let handle: Handle<ExtensionVTable> = self.create(abi::kind::EXTENSION, name, settings)?;
        // SAFETY: live object of the extension kind; the slice borrows it and is copied at once.
        let specs = unsafe { (handle.vtable().verbs)(handle.this) };
        let verbs = specs.as_slice().iter().map(|s| s.to_spec()).collect();
        // SAFETY: as above.
        let lines = unsafe { (handle.vtable().capabilities)(handle.this) };
        let capabilities = lines
            .as_slice()
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        // SAFETY: as above.
        let catalogs = unsafe { (handle.vtable().catalogs)(handle.this) };
        let catalogs = catalogs.as_slice().iter().map(|c| c.to_catalog()).collect();
        Ok(ExtensionPlugin {
            handle,
            verbs,
            capabilities,
            catalogs,
        })
    }
}

/// An owned plugin object whose vtable is `V`; dropping it calls the plugin's drop.
struct Handle<V: 'static> {
    this: *mut c_void,
    vtable: &'static V,
}

// SAFETY: the object behind `this` is Send (trait bounds of every kind), and the vtable is static data.
unsafe impl<V> Send for Handle<V> {}
// SAFETY: shared access only calls `&self` trait methods of Sync types (AuthBackend, MailStore, Maildrop,
// CommandExtension are Sync); the Body handle is never shared (its methods take &mut).
unsafe impl<V> Sync for Handle<V> {}

impl<V> Handle<V> {
    /// Takes ownership of `object`, whose vtable must be a `V`. Returns the vtable's size as an error
    /// (after dropping the object) if it is smaller than `V`: a typed reference to a shorter vtable
    /// would be undefined behaviour, so the size is read through the header before any cast.
    fn new(object: RawObject) -> Result<Self, usize> {
        // SAFETY: every vtable starts with a VTableHeader (ABI rule) and the object is live.
        let found = unsafe { (*object.vtable).size };
        if found < size_of::<V>() {
            // SAFETY: dropping the live object once, through its own header.
            unsafe { ((*object.vtable).drop)(object.this) };
            return Err(found);
        }
        // SAFETY: the object was made by a factory (or method) of the kind whose vtable is `V`, and
        // the vtable is at least as large as `V`, so the cast restores the real type.
        let vtable = unsafe { &*object.vtable.cast::<V>() };
        Ok(Handle {
            this: object.this,
            vtable,
        })
    }

    fn vtable(&self) -> &'static V {
        self.vtable
    }

    fn header(&self) -> &abi::VTableHeader {
        // SAFETY: every vtable is #[repr(C)] with the header as its first field.
        unsafe { &*(self.vtable as *const V).cast::<abi::VTableHeader>() }
    }
}

impl<V> Drop for Handle<V> {
    fn drop(&mut self) {
        // SAFETY: `this` is live and dropped exactly once, by the plugin's own drop shim.
        unsafe { (self.header().drop)(self.this) }
    }
}

fn addr(a: Option<std::net::SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

/// A loaded auth backend instance.
pub struct AuthPlugin(Handle<AuthVTable>);

impl std::fmt::Debug for AuthPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthPlugin")
    }
}

impl AuthPlugin {
    /// Checks a password.
    pub async fn authenticate(&self, req: &AuthRequest) -> Result<AuthOutcome, PluginError> {
        let (peer, local) = (addr(req.peer), addr(req.local));
        let ffi = FfiAuthRequest {
            mechanism: FfiStr::new(&req.mechanism),
            user: FfiStr::new(&req.user),
            password: FfiStr::new(req.password.expose()),
            authzid: req.authzid.as_deref().map(FfiStr::new).into(),
            peer: FfiStr::new(&peer),
            local: FfiStr::new(&local),
            tls: req.tls,
            verified: req.verified,
        };
        // SAFETY: live object; the request is copied by the shim before it returns, and `&self` keeps
        // the object alive for the future's lifetime.
        let fut = unsafe { (self.0.vtable().authenticate)(self.0.this, &ffi) };
        from_ffi_result(fut.await).map(|o| o.into_outcome())
    }

    /// Asks for a plaintext-equivalent credential (APOP, SCRAM).
    pub async fn lookup_secret(&self, user: &str) -> Result<Option<StoredSecret>, PluginError> {
        // SAFETY: as in `authenticate`.
        let fut = unsafe { (self.0.vtable().lookup_secret)(self.0.this, FfiStr::new(user)) };
        Ok(from_ffi_result(fut.await)?
            .into_option()
            .and_then(|s| s.into_secret()))
    }

    /// What `lookup_secret` can offer.
    pub fn capabilities(&self) -> AuthCapabilities {
        // SAFETY: live object; the call takes and returns plain data.
        let bits = unsafe { (self.0.vtable().capabilities)(self.0.this) };
        AuthCapabilities {
            plaintext_secrets: bits & abi::capability::PLAINTEXT_SECRETS != 0,
            scram_sha256: bits & abi::capability::SCRAM_SHA256 != 0,
        }
    }
}

/// A loaded mail store instance.
pub struct StorePlugin(Handle<StoreVTable>);

impl std::fmt::Debug for StorePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StorePlugin")
    }
}

impl StorePlugin {
    /// Locks and snapshots a maildrop. The snapshot is copied to the host once, here.
    pub async fn open(&self, req: &OpenRequest) -> Result<MaildropHandle, PluginError> {
        let ffi = FfiOpenRequest {
            user: FfiStr::new(&req.user),
            mailbox: req.mailbox.as_deref().map(FfiStr::new).into(),
        };
        // SAFETY: live object; request copied by the shim; `&self` outlives the future.
        let fut = unsafe { (self.0.vtable().open)(self.0.this, &ffi) };
        let object = from_ffi_result(fut.await)?;
        let handle = Handle::<MaildropVTable>::new(object).map_err(|_| {
            PluginError::new(ErrorCode::OTHER, "maildrop vtable older than this server")
        })?;
        let vt = handle.vtable();
        // SAFETY: live maildrop; `message` borrows are copied immediately.
        let n = unsafe { (vt.len)(handle.this) };
        let messages = (0..n)
            .map(|i| {
                // SAFETY: as above, i < len.
                let m = unsafe { (vt.message)(handle.this, i) };
                MessageInfo {
                    size: m.size,
                    uidl: m.uidl.as_str().to_owned(),
                }
            })
            .collect();
        Ok(MaildropHandle { handle, messages })
    }
}

/// An open maildrop; dropping it without `commit` deletes nothing and releases the lock.
pub struct MaildropHandle {
    handle: Handle<MaildropVTable>,
    messages: Vec<MessageInfo>,
}

impl std::fmt::Debug for MaildropHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaildropHandle")
            .field("messages", &self.messages.len())
            .finish()
    }
}

impl MaildropHandle {
    /// The snapshot.
    pub fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    /// Opens a message body.
    pub async fn retrieve(&self, index: usize) -> Result<BodyReader, PluginError> {
        // SAFETY: live maildrop; `&self` outlives the future.
        let fut = unsafe { (self.handle.vtable().retrieve)(self.handle.this, index) };
        let object = from_ffi_result(fut.await)?;
        let handle = Handle::<BodyVTable>::new(object).map_err(|_| {
            PluginError::new(ErrorCode::OTHER, "body vtable older than this server")
        })?;
        Ok(BodyReader(handle))
    }

    /// Commits deletions (0-based indexes).
    pub async fn commit(&mut self, deleted: &[usize]) -> Result<CommitReport, PluginError> {
        // SAFETY: live maildrop; `&mut self` gives the shim exclusive access for the future's lifetime,
        // and the slice is copied by the shim before it returns.
        let fut =
            unsafe { (self.handle.vtable().commit)(self.handle.this, FfiSlice::new(deleted)) };
        from_ffi_result(fut.await).map(CommitReport::from)
    }
}

/// A message body stream from a plugin, as `futures_io::AsyncRead`.
pub struct BodyReader(Handle<BodyVTable>);

impl std::fmt::Debug for BodyReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodyReader")
    }
}

impl futures_io::AsyncRead for BodyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let handle = &self.0;
        let polled = cx.with_ffi_context(|fcx| {
            // SAFETY: live body, polled through `&mut self` (one task); the buffer is ours for the call.
            unsafe { (handle.vtable().poll_read)(handle.this, fcx, buf.as_mut_ptr(), buf.len()) }
        });
        match polled.try_into_poll() {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(
                from_ffi_result(r)
                    .map(|n| n.min(buf.len()))
                    .map_err(|e| std::io::Error::other(e.to_string())),
            ),
            Err(_) => Poll::Ready(Err(std::io::Error::other(
                "plugin panicked while reading a message",
            ))),
        }
    }
}

/// A loaded command extension instance.
pub struct ExtensionPlugin {
    handle: Handle<ExtensionVTable>,
    verbs: Vec<VerbSpec>,
    capabilities: Vec<String>,
    catalogs: Vec<Catalog>,
}

impl std::fmt::Debug for ExtensionPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtensionPlugin")
            .field("verbs", &self.verbs)
            .field("capabilities", &self.capabilities)
            .field("catalogs", &self.catalogs.len())
            .finish()
    }
}

struct ViewParts {
    peer: String,
}

fn ffi_view<'a>(view: &'a SessionView, parts: &'a ViewParts) -> FfiSessionView<'a> {
    FfiSessionView {
        user: view.user.as_deref().map(FfiStr::new).into(),
        peer: FfiStr::new(&parts.peer),
        tls: view.tls,
        message_sizes: FfiSlice::new(&view.message_sizes),
        session_id: view.session_id,
        login_delay: view.login_delay.into(),
        utf8: view.utf8,
        language: FfiStr::new(view.language.as_deref().unwrap_or("")),
    }
}

impl ExtensionPlugin {
    /// The verbs it declared at creation.
    pub fn verbs(&self) -> &[VerbSpec] {
        &self.verbs
    }

    /// The CAPA lines it declared at creation that belong to no verb.
    pub fn capabilities(&self) -> &[String] {
        &self.capabilities
    }

    /// The translations of the core's texts it offered at creation.
    pub fn catalogs(&self) -> &[Catalog] {
        &self.catalogs
    }

    /// Runs a verb.
    pub async fn handle(&self, call: &ExtensionCall) -> Result<Reply, PluginError> {
        let parts = ViewParts {
            peer: addr(call.session.peer),
        };
        let args: Vec<FfiStr<'_>> = call.args.iter().map(|a| FfiStr::new(a)).collect();
        let ffi = FfiExtensionCall {
            verb: FfiStr::new(&call.verb),
            args: FfiSlice::new(&args),
            session: ffi_view(&call.session, &parts),
        };
        // SAFETY: live object; the call is copied by the shim; `&self` outlives the future.
        let fut = unsafe { (self.handle.vtable().handle)(self.handle.this, &ffi) };
        let mut answer = from_ffi_result(fut.await)?;
        let stream = std::mem::replace(&mut answer.stream, crate::FfiOption::None).into_option();
        let mut reply = Reply::from(answer);
        if let Some(object) = stream {
            // A body object whose vtable is too old is dropped by `Handle::new`, and the call fails.
            let body = Handle::<BodyVTable>::new(object).map_err(|_| {
                PluginError::new(ErrorCode::OTHER, "reply body vtable older than this server")
            })?;
            reply.stream = Some(crate::ReplyStream::new(BodyReader(body)));
        }
        Ok(reply)
    }

    /// Runs the after-login hook.
    pub async fn after_login(&self, view: &SessionView) -> Result<LoginDecision, PluginError> {
        let parts = ViewParts {
            peer: addr(view.peer),
        };
        let ffi = ffi_view(view, &parts);
        // SAFETY: as in `handle`.
        let fut = unsafe { (self.handle.vtable().after_login)(self.handle.this, &ffi) };
        from_ffi_result(fut.await).map(LoginDecision::from)
    }

    /// Runs the session-end hook. An error (a panic inside the plugin included) is only reported.
    pub async fn at_quit(
        &self,
        view: &SessionView,
        report: &QuitReport,
    ) -> Result<(), PluginError> {
        let parts = ViewParts {
            peer: addr(view.peer),
        };
        let ffi = ffi_view(view, &parts);
        let uidls: Vec<FfiStr<'_>> = report
            .deleted_uidls
            .iter()
            .map(|u| FfiStr::new(u))
            .collect();
        let ffi_report = FfiQuitReport {
            deleted_uidls: FfiSlice::new(&uidls),
            retrieved: report.retrieved,
            deleted: report.deleted,
            ended: FfiStr::new(&report.ended),
        };
        // SAFETY: as in `handle`; the view and report are copied by the shim before it returns.
        let fut = unsafe { (self.handle.vtable().at_quit)(self.handle.this, &ffi, &ffi_report) };
        from_ffi_result(fut.await).map(|_| ())
    }
}
