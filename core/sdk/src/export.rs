//! Plugin-side shims: the `extern "C"` functions behind each vtable, generated for the author's types
//! by [`export_plugin!`](crate::export_plugin). Each runs the author's code inside a panic guard.
//!
//! Not public API: the macro reaches these through `$crate::__private`.

use crate::abi::{
    self, AuthVTable, BodyVTable, ExtensionVTable, FfiAuthOutcome, FfiAuthRequest, FfiCatalog,
    FfiCommitReport, FfiExtensionCall, FfiLoginDecision, FfiMessageInfo, FfiOpenRequest,
    FfiQuitReport, FfiReply, FfiSessionView, FfiStoredSecret, FfiVerbSpec, HostApi, MaildropVTable,
    PluginDecl, PluginFuture, RawObject, StoreVTable, VTableHeader, to_ffi_result,
};
use crate::error::PluginError;
use crate::ffi::{FfiOption, FfiResult, FfiSlice, FfiStr};
use crate::guard::{guard, guard_future, guard_or};
use crate::traits::{AuthBackend, CommandExtension, MailStore, Maildrop};
use crate::types::{
    AuthRequest, BoxedReader, Catalog, ExtensionCall, OpenRequest, Secret, VerbSpec,
};
use async_ffi::{BorrowingFfiFuture, FfiContext, FfiPoll, FutureExt as _};
use std::ffi::c_void;
use std::future::Future;
use std::pin::Pin;

/// Called by the generated entry point: installs log forwarding and returns the declaration.
pub fn entry(host: &'static HostApi, decl: &'static PluginDecl) -> &'static PluginDecl {
    crate::logging::install(host);
    decl
}

/// Boxes `value` and returns it as an object with `vtable`.
fn into_object<T>(value: T, vtable: &'static VTableHeader) -> RawObject {
    RawObject {
        this: Box::into_raw(Box::new(value)).cast(),
        vtable,
    }
}

unsafe extern "C" fn drop_object<T>(this: *mut c_void) {
    guard_or("drop", (), || {
        // SAFETY: `this` came from `into_object::<T>` and the host drops each object exactly once.
        drop(unsafe { Box::from_raw(this.cast::<T>()) });
    });
}

/// Borrows the object behind `this`.
///
/// # Safety
/// `this` must come from `into_object::<T>` and not be dropped yet.
unsafe fn object<'a, T>(this: *const c_void) -> &'a T {
    // SAFETY: guaranteed by the caller.
    unsafe { &*this.cast::<T>() }
}

/// Converts a guarded future borrowing a plugin object into the `'static` boundary type.
///
/// # Safety
/// The host must not drop the object before the future (the host wrappers tie each future to a
/// borrow of its object, see `abi`).
unsafe fn erase<'a, T>(fut: impl Future<Output = FfiResult<T>> + Send + 'a) -> PluginFuture<T> {
    let fut: BorrowingFfiFuture<'a, FfiResult<T>> = fut.into_ffi();
    // SAFETY: only the lifetime changes (same type otherwise); the caller's contract keeps the
    // borrowed object alive for as long as the future exists.
    unsafe { std::mem::transmute::<BorrowingFfiFuture<'a, FfiResult<T>>, PluginFuture<T>>(fut) }
}

/// A future that is already complete with `result`.
fn ready<T: Send + 'static>(result: Result<T, PluginError>) -> PluginFuture<T> {
    std::future::ready(to_ffi_result(result)).into_ffi()
}

fn create<T>(
    what: &'static str,
    settings: FfiStr<'_>,
    ctor: impl FnOnce(&str) -> Result<T, PluginError>,
    vtable: &'static VTableHeader,
) -> FfiResult<RawObject> {
    to_ffi_result(guard(what, || ctor(settings.as_str())).map(|v| into_object(v, vtable)))
}

/// Auth backend shims.
pub mod auth {
    use super::*;

    /// The kind code.
    pub const KIND: u32 = abi::kind::AUTH;

    struct Shim<T>(std::marker::PhantomData<T>);

    impl<T: AuthBackend> Shim<T> {
        const VTABLE: AuthVTable = AuthVTable {
            header: VTableHeader {
                size: size_of::<AuthVTable>(),
                drop: drop_object::<T>,
            },
            authenticate: authenticate::<T>,
            lookup_secret: lookup_secret::<T>,
            capabilities: capabilities::<T>,
        };
    }

    /// Creates an auth backend instance from its settings text.
    pub fn create<T: AuthBackend>(
        settings: FfiStr<'_>,
        ctor: impl FnOnce(&str) -> Result<T, PluginError>,
    ) -> FfiResult<RawObject> {
        super::create(
            "auth backend creation",
            settings,
            ctor,
            &Shim::<T>::VTABLE.header,
        )
    }

    fn request(req: &FfiAuthRequest<'_>) -> AuthRequest {
        AuthRequest {
            mechanism: req.mechanism.as_str().to_owned(),
            user: req.user.as_str().to_owned(),
            password: Secret::new(req.password.as_str().to_owned()),
            authzid: req.authzid.as_ref().map(|a| a.as_str().to_owned()),
            peer: req.peer.as_str().parse().ok(),
            local: req.local.as_str().parse().ok(),
            tls: req.tls,
            verified: req.verified,
        }
    }

    unsafe extern "C" fn authenticate<T: AuthBackend>(
        this: *const c_void,
        req: &FfiAuthRequest<'_>,
    ) -> PluginFuture<FfiAuthOutcome> {
        // SAFETY: the host passes the `this` of a live object made by `create::<T>`.
        let backend = unsafe { object::<T>(this) };
        match guard("authenticate", || Ok(backend.authenticate(request(req)))) {
            // SAFETY: the host keeps the object alive while the future exists.
            Ok(fut) => unsafe {
                erase(guard_future("authenticate", fut, |outcome| {
                    outcome.map(FfiAuthOutcome::from_outcome)
                }))
            },
            Err(e) => ready(Err(e)),
        }
    }

    unsafe extern "C" fn lookup_secret<T: AuthBackend>(
        this: *const c_void,
        user: FfiStr<'_>,
    ) -> PluginFuture<FfiOption<FfiStoredSecret>> {
        // SAFETY: as in `authenticate`.
        let backend = unsafe { object::<T>(this) };
        let user = user.as_str().to_owned();
        match guard("lookup_secret", || Ok(backend.lookup_secret(user))) {
            // SAFETY: as in `authenticate`.
            Ok(fut) => unsafe {
                erase(guard_future("lookup_secret", fut, |secret| {
                    Ok(secret?.map(FfiStoredSecret::from_secret).into())
                }))
            },
            Err(e) => ready(Err(e)),
        }
    }

    unsafe extern "C" fn capabilities<T: AuthBackend>(this: *const c_void) -> u32 {
        // SAFETY: as in `authenticate`.
        let backend = unsafe { object::<T>(this) };
        guard_or("capabilities", 0, || {
            let c = backend.capabilities();
            (if c.plaintext_secrets {
                abi::capability::PLAINTEXT_SECRETS
            } else {
                0
            }) | (if c.scram_sha256 {
                abi::capability::SCRAM_SHA256
            } else {
                0
            })
        })
    }
}

/// Mail store shims.
pub mod store {
    use super::*;
    use futures_io::AsyncRead;

    /// The kind code.
    pub const KIND: u32 = abi::kind::STORE;

    struct Shim<T>(std::marker::PhantomData<T>);

    impl<T: MailStore> Shim<T> {
        const VTABLE: StoreVTable = StoreVTable {
            header: VTableHeader {
                size: size_of::<StoreVTable>(),
                drop: drop_object::<T>,
            },
            open: open::<T>,
        };
    }

    struct DropShim<M>(std::marker::PhantomData<M>);

    impl<M: Maildrop> DropShim<M> {
        const VTABLE: MaildropVTable = MaildropVTable {
            header: VTableHeader {
                size: size_of::<MaildropVTable>(),
                drop: drop_object::<M>,
            },
            len: len::<M>,
            message: message::<M>,
            retrieve: retrieve::<M>,
            commit: commit::<M>,
        };
    }

    pub(super) struct BodyShim<B>(std::marker::PhantomData<B>);

    impl<B: AsyncRead + Send + Unpin + 'static> BodyShim<B> {
        pub(super) const VTABLE: BodyVTable = BodyVTable {
            header: VTableHeader {
                size: size_of::<BodyVTable>(),
                drop: drop_object::<B>,
            },
            poll_read: poll_read::<B>,
        };
    }

    /// Creates a mail store instance from its settings text.
    pub fn create<T: MailStore>(
        settings: FfiStr<'_>,
        ctor: impl FnOnce(&str) -> Result<T, PluginError>,
    ) -> FfiResult<RawObject> {
        super::create(
            "mail store creation",
            settings,
            ctor,
            &Shim::<T>::VTABLE.header,
        )
    }

    unsafe extern "C" fn open<T: MailStore>(
        this: *const c_void,
        req: &FfiOpenRequest<'_>,
    ) -> PluginFuture<RawObject> {
        // SAFETY: the host passes the `this` of a live object made by `create::<T>`.
        let store = unsafe { object::<T>(this) };
        let request = OpenRequest {
            user: req.user.as_str().to_owned(),
            mailbox: req.mailbox.as_ref().map(|m| m.as_str().to_owned()),
        };
        match guard("open", || Ok(store.open(request))) {
            // SAFETY: the host keeps the store alive while the future exists.
            Ok(fut) => unsafe {
                erase(guard_future("open", fut, |maildrop| {
                    Ok(into_object(
                        maildrop?,
                        &DropShim::<T::Maildrop>::VTABLE.header,
                    ))
                }))
            },
            Err(e) => ready(Err(e)),
        }
    }

    unsafe extern "C" fn len<M: Maildrop>(this: *const c_void) -> usize {
        // SAFETY: `this` is a live maildrop made by `open`.
        let maildrop = unsafe { object::<M>(this) };
        guard_or("messages", 0, || maildrop.messages().len())
    }

    unsafe extern "C" fn message<M: Maildrop>(
        this: *const c_void,
        index: usize,
    ) -> FfiMessageInfo<'static> {
        // SAFETY: `this` is a live maildrop made by `open`; the returned borrow is valid while it lives
        // and the snapshot does not change (the host copies it right after open).
        let maildrop = unsafe { object::<M>(this) };
        let empty = FfiMessageInfo {
            size: 0,
            uidl: FfiStr::new(""),
        };
        guard_or("messages", empty, || match maildrop.messages().get(index) {
            Some(m) => {
                // SAFETY: widening the borrow to 'static is the ABI's contract (see above).
                let uidl: &'static str = unsafe { &*(m.uidl.as_str() as *const str) };
                FfiMessageInfo {
                    size: m.size,
                    uidl: FfiStr::new(uidl),
                }
            }
            None => FfiMessageInfo {
                size: 0,
                uidl: FfiStr::new(""),
            },
        })
    }

    unsafe extern "C" fn retrieve<M: Maildrop>(
        this: *const c_void,
        index: usize,
    ) -> PluginFuture<RawObject> {
        // SAFETY: `this` is a live maildrop made by `open`.
        let maildrop = unsafe { object::<M>(this) };
        match guard("retrieve", || Ok(maildrop.retrieve(index))) {
            // SAFETY: the host keeps the maildrop alive while the future exists.
            Ok(fut) => unsafe {
                erase(guard_future("retrieve", fut, |body| {
                    Ok(into_object(body?, &BodyShim::<M::Body>::VTABLE.header))
                }))
            },
            Err(e) => ready(Err(e)),
        }
    }

    unsafe extern "C" fn commit<M: Maildrop>(
        this: *mut c_void,
        deleted: FfiSlice<'_, usize>,
    ) -> PluginFuture<FfiCommitReport> {
        // SAFETY: `this` is a live maildrop made by `open`; the host holds `&mut` to its handle for
        // the duration of the commit, so this is the only access.
        let maildrop = unsafe { &mut *this.cast::<M>() };
        let deleted = deleted.as_slice().to_vec();
        match guard("commit", || Ok(maildrop.commit(deleted))) {
            // SAFETY: the host keeps the maildrop alive while the future exists.
            Ok(fut) => unsafe {
                erase(guard_future("commit", fut, |report| {
                    report.map(FfiCommitReport::from)
                }))
            },
            Err(e) => ready(Err(e)),
        }
    }

    unsafe extern "C" fn poll_read<B: AsyncRead + Unpin>(
        this: *mut c_void,
        cx: &mut FfiContext<'_>,
        buf: *mut u8,
        len: usize,
    ) -> FfiPoll<FfiResult<usize>> {
        // SAFETY: `this` is a live body made by `retrieve`, polled by one task at a time.
        let body = unsafe { &mut *this.cast::<B>() };
        // SAFETY: the host passes a buffer it owns of `len` writable bytes for this call.
        let buf = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        let polled = guard("body read", || {
            Ok(cx.with_context(|cx| Pin::new(&mut *body).poll_read(cx, buf)))
        });
        match polled {
            Ok(std::task::Poll::Pending) => FfiPoll::Pending,
            Ok(std::task::Poll::Ready(Ok(n))) => FfiPoll::Ready(FfiResult::Ok(n.min(len))),
            Ok(std::task::Poll::Ready(Err(e))) => {
                FfiPoll::Ready(to_ffi_result(Err(PluginError::io("reading message", &e))))
            }
            Err(e) => FfiPoll::Ready(to_ffi_result(Err(e))),
        }
    }
}

/// Command extension shims.
pub mod extension {
    use super::*;

    /// The kind code.
    pub const KIND: u32 = abi::kind::EXTENSION;

    /// The author's extension plus its verbs in boundary form (borrowing `specs`' strings, whose heap
    /// buffers do not move).
    struct Object<T> {
        inner: T,
        ffi_specs: Vec<FfiVerbSpec<'static>>,
        _specs: Vec<VerbSpec>,
        ffi_capabilities: Vec<FfiStr<'static>>,
        _capabilities: Vec<String>,
        ffi_catalogs: Vec<FfiCatalog<'static>>,
        _catalog_pairs: Vec<(Vec<FfiStr<'static>>, Vec<FfiStr<'static>>)>,
        _catalogs: Vec<Catalog>,
    }

    struct Shim<T>(std::marker::PhantomData<T>);

    impl<T: CommandExtension> Shim<T> {
        const VTABLE: ExtensionVTable = ExtensionVTable {
            header: VTableHeader {
                size: size_of::<ExtensionVTable>(),
                drop: drop_object::<Object<T>>,
            },
            verbs: verbs::<T>,
            handle: handle::<T>,
            after_login: after_login::<T>,
            at_quit: at_quit::<T>,
            capabilities: capabilities::<T>,
            catalogs: catalogs::<T>,
        };
    }

    /// Creates a command extension instance from its settings text.
    pub fn create<T: CommandExtension>(
        settings: FfiStr<'_>,
        ctor: impl FnOnce(&str) -> Result<T, PluginError>,
    ) -> FfiResult<RawObject> {
        let made = guard("extension creation", || {
            let inner = ctor(settings.as_str())?;
            let specs = inner.verbs();
            let ffi_specs = specs
                .iter()
                .map(|s| {
                    // SAFETY: the strings live in `_specs`, owned by the same object and never
                    // mutated; String heap buffers do not move when the Vec or object moves.
                    let verb: &'static str = unsafe { &*(s.verb.as_str() as *const str) };
                    let capability = s.capability.as_deref().map(|c| {
                        // SAFETY: as above.
                        FfiStr::new(unsafe { &*(c as *const str) })
                    });
                    FfiVerbSpec {
                        verb: FfiStr::new(verb),
                        states: s.states,
                        capability: capability.into(),
                        max_args: s.max_args,
                    }
                })
                .collect();
            let capabilities = inner.capabilities();
            let ffi_capabilities = capabilities
                .iter()
                // SAFETY: as above; the strings live in `_capabilities`.
                .map(|c| FfiStr::new(unsafe { &*(c.as_str() as *const str) }))
                .collect();
            let catalogs = inner.catalogs();
            // SAFETY (for each `&*` below): the strings live in `_catalogs`, owned by the same
            // object and never mutated; String heap buffers do not move when the object moves.
            let borrow = |s: &String| FfiStr::new(unsafe { &*(s.as_str() as *const str) });
            let flatten = |pairs: &[(String, String)]| {
                pairs
                    .iter()
                    .flat_map(|(key, value)| [borrow(key), borrow(value)])
                    .collect::<Vec<_>>()
            };
            let catalog_pairs: Vec<_> = catalogs
                .iter()
                .map(|c| (flatten(&c.texts), flatten(&c.terms)))
                .collect();
            let ffi_catalogs = catalogs
                .iter()
                .zip(&catalog_pairs)
                .map(|(c, (texts, terms))| FfiCatalog {
                    tag: borrow(&c.tag),
                    name: borrow(&c.name),
                    // SAFETY: the vectors live in `_catalog_pairs`, owned by the object; their
                    // heap buffers do not move when the outer Vec or the object moves.
                    texts: FfiSlice::new(unsafe {
                        &*(texts.as_slice() as *const [FfiStr<'static>])
                    }),
                    // SAFETY: as above.
                    terms: FfiSlice::new(unsafe {
                        &*(terms.as_slice() as *const [FfiStr<'static>])
                    }),
                })
                .collect();
            Ok(Object {
                inner,
                ffi_specs,
                _specs: specs,
                ffi_capabilities,
                _capabilities: capabilities,
                ffi_catalogs,
                _catalog_pairs: catalog_pairs,
                _catalogs: catalogs,
            })
        });
        to_ffi_result(made.map(|o| into_object(o, &Shim::<T>::VTABLE.header)))
    }

    unsafe extern "C" fn verbs<T: CommandExtension>(
        this: *const c_void,
    ) -> FfiSlice<'static, FfiVerbSpec<'static>> {
        // SAFETY: `this` is a live object made by `create::<T>`; the slice lives as long as it.
        let object = unsafe { object::<Object<T>>(this) };
        FfiSlice::new(object.ffi_specs.as_slice())
    }

    unsafe extern "C" fn capabilities<T: CommandExtension>(
        this: *const c_void,
    ) -> FfiSlice<'static, FfiStr<'static>> {
        // SAFETY: as in `verbs`.
        let object = unsafe { object::<Object<T>>(this) };
        FfiSlice::new(object.ffi_capabilities.as_slice())
    }

    unsafe extern "C" fn catalogs<T: CommandExtension>(
        this: *const c_void,
    ) -> FfiSlice<'static, FfiCatalog<'static>> {
        // SAFETY: as in `verbs`.
        let object = unsafe { object::<Object<T>>(this) };
        FfiSlice::new(object.ffi_catalogs.as_slice())
    }

    unsafe extern "C" fn handle<T: CommandExtension>(
        this: *const c_void,
        call: &FfiExtensionCall<'_>,
    ) -> PluginFuture<FfiReply> {
        // SAFETY: `this` is a live object made by `create::<T>`.
        let object = unsafe { object::<Object<T>>(this) };
        let call = ExtensionCall {
            verb: call.verb.as_str().to_owned(),
            args: call
                .args
                .as_slice()
                .iter()
                .map(|a| a.as_str().to_owned())
                .collect(),
            session: call.session.to_view(),
        };
        match guard("handle", || Ok(object.inner.handle(call))) {
            // SAFETY: the host keeps the object alive while the future exists.
            Ok(fut) => unsafe {
                erase(guard_future("handle", fut, |reply| {
                    let mut reply = reply?;
                    let stream = reply.stream.take().and_then(|s| s.take());
                    let mut ffi = FfiReply::from(reply);
                    if let Some(body) = stream {
                        ffi.stream = FfiOption::Some(into_object(
                            body,
                            &super::store::BodyShim::<BoxedReader>::VTABLE.header,
                        ));
                    }
                    Ok(ffi)
                }))
            },
            Err(e) => ready(Err(e)),
        }
    }

    unsafe extern "C" fn after_login<T: CommandExtension>(
        this: *const c_void,
        session: &FfiSessionView<'_>,
    ) -> PluginFuture<FfiLoginDecision> {
        // SAFETY: `this` is a live object made by `create::<T>`.
        let object = unsafe { object::<Object<T>>(this) };
        let view = session.to_view();
        match guard("after_login", || Ok(object.inner.after_login(view))) {
            // SAFETY: the host keeps the object alive while the future exists.
            Ok(fut) => unsafe {
                erase(guard_future("after_login", fut, |decision| {
                    decision.map(FfiLoginDecision::from)
                }))
            },
            Err(e) => ready(Err(e)),
        }
    }

    unsafe extern "C" fn at_quit<T: CommandExtension>(
        this: *const c_void,
        session: &FfiSessionView<'_>,
        report: &FfiQuitReport<'_>,
    ) -> PluginFuture<bool> {
        // SAFETY: `this` is a live object made by `create::<T>`.
        let object = unsafe { object::<Object<T>>(this) };
        let (view, report) = (session.to_view(), report.to_report());
        match guard("at_quit", || Ok(object.inner.at_quit(view, report))) {
            // SAFETY: the host keeps the object alive while the future exists.
            Ok(fut) => unsafe { erase(guard_future("at_quit", fut, |()| Ok(true))) },
            Err(e) => ready(Err(e)),
        }
    }
}

/// Declares a plugin library: its name, version and factories.
///
/// Each factory is `kind "name" => constructor`, where `kind` is `auth`, `store` or `extension` and the
/// constructor is a `fn(&str) -> Result<T, PluginError>` receiving the plugin's RON settings text
/// (parse it with [`config::parse`](crate::config::parse)).
///
/// The [crate-level example](crate) shows a complete plugin.
#[macro_export]
macro_rules! export_plugin {
    (
        name: $name:expr,
        version: $version:expr,
        factories: [ $( $kind:ident $fname:literal => $ctor:expr ),+ $(,)? ] $(,)?
    ) => {
        /// Frozen forever: the host reads this first.
        #[unsafe(no_mangle)]
        pub extern "C" fn poppet_plugin_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        /// The plugin's entry point.
        #[unsafe(no_mangle)]
        pub extern "C" fn poppet_plugin_entry(
            host: &'static $crate::abi::HostApi,
        ) -> &'static $crate::abi::PluginDecl {
            static FACTORIES: &[$crate::abi::Factory] = &[ $(
                $crate::abi::Factory {
                    kind: $crate::__private::$kind::KIND,
                    name: $crate::FfiStr::new($fname),
                    create: {
                        unsafe extern "C" fn create(
                            settings: $crate::FfiStr<'_>,
                        ) -> $crate::FfiResult<$crate::abi::RawObject> {
                            $crate::__private::$kind::create(settings, $ctor)
                        }
                        create
                    },
                },
            )+ ];
            static DECL: $crate::abi::PluginDecl = $crate::abi::PluginDecl {
                abi_version: $crate::abi::ABI_VERSION,
                async_ffi_abi_version: $crate::__private::ASYNC_FFI_ABI_VERSION,
                sdk_version: $crate::FfiStr::new($crate::SDK_VERSION),
                name: $crate::FfiStr::new($name),
                version: $crate::FfiStr::new($version),
                factories: $crate::FfiSlice::new(FACTORIES),
            };
            $crate::__private::entry(host, &DECL)
        }
    };
}
