//! The three traits a plugin author implements. They are ordinary Rust: `export_plugin!` generates the
//! C ABI shims around them, with panic guards, so an author never writes `unsafe` or `extern "C"`.

use crate::error::PluginError;
use crate::types::{
    AuthCapabilities, AuthOutcome, AuthRequest, Catalog, CommitReport, ExtensionCall,
    LoginDecision, MessageInfo, OpenRequest, QuitReport, Reply, SessionView, StoredSecret,
    VerbSpec,
};
use std::future::Future;

/// Checks credentials. The core, not the backend, applies failure delays, rate limits and the wire
/// answer; a backend only decides.
pub trait AuthBackend: Send + Sync + 'static {
    /// Checks a password. Unknown users and wrong passwords must both answer [`AuthOutcome::Reject`] and
    /// should take the same time.
    fn authenticate(
        &self,
        request: AuthRequest,
    ) -> impl Future<Output = Result<AuthOutcome, PluginError>> + Send;

    /// Returns a plaintext-equivalent credential for challenge-response mechanisms (APOP, SCRAM), or
    /// `None` when the user is unknown or has only a one-way hash. The default offers none.
    fn lookup_secret(
        &self,
        user: String,
    ) -> impl Future<Output = Result<Option<StoredSecret>, PluginError>> + Send {
        let _ = user;
        async { Ok(None) }
    }

    /// What `lookup_secret` can offer, so the core advertises only mechanisms this backend can serve.
    /// Called for each new connection; the default is nothing.
    fn capabilities(&self) -> AuthCapabilities {
        AuthCapabilities::default()
    }
}

/// Opens maildrops.
pub trait MailStore: Send + Sync + 'static {
    /// The open maildrop type.
    type Maildrop: Maildrop;

    /// Takes the exclusive POP3 lock of the user's mailbox (failing with [`crate::ErrorCode::LOCKED`]
    /// when another session holds it) and a snapshot of its messages.
    fn open(
        &self,
        request: OpenRequest,
    ) -> impl Future<Output = Result<Self::Maildrop, PluginError>> + Send;
}

/// An open, locked snapshot of one mailbox. Dropping it without [`Maildrop::commit`] deletes nothing and
/// releases the lock.
pub trait Maildrop: Send + Sync + 'static {
    /// The stream a message body is read from: CRLF line ends, no dot-stuffing, exactly
    /// [`MessageInfo::size`] octets.
    type Body: futures_io::AsyncRead + Send + Unpin + 'static;

    /// The snapshot, in message-number order (index 0 is message 1).
    fn messages(&self) -> &[MessageInfo];

    /// Opens message `index` (0-based) for reading.
    fn retrieve(
        &self,
        index: usize,
    ) -> impl Future<Output = Result<Self::Body, PluginError>> + Send;

    /// Deletes the messages at `deleted` (0-based, sorted, unique) and releases the lock. A message that
    /// has already vanished counts as deleted. Called at most once, only on QUIT in TRANSACTION.
    fn commit(
        &mut self,
        deleted: Vec<usize>,
    ) -> impl Future<Output = Result<CommitReport, PluginError>> + Send;
}

/// Adds verbs and session hooks to the core.
pub trait CommandExtension: Send + Sync + 'static {
    /// The verbs this extension provides. Called once, when the instance is created.
    fn verbs(&self) -> Vec<VerbSpec>;

    /// Handles one of [`CommandExtension::verbs`].
    fn handle(
        &self,
        call: ExtensionCall,
    ) -> impl Future<Output = Result<Reply, PluginError>> + Send;

    /// Runs after a successful login, before TRANSACTION begins. The default allows every login.
    fn after_login(
        &self,
        session: SessionView,
    ) -> impl Future<Output = Result<LoginDecision, PluginError>> + Send {
        let _ = session;
        async { Ok(LoginDecision::Allow) }
    }

    /// Runs when a logged-in session ends, however it ends (QUIT with or without deletions, a
    /// dropped connection, a timeout, a shutdown). It only observes: the client has had its last
    /// reply, and an error or panic here is logged and changes nothing. The default does nothing.
    fn at_quit(&self, session: SessionView, report: QuitReport) -> impl Future<Output = ()> + Send {
        let _ = (session, report);
        async {}
    }

    /// CAPA lines this extension adds that belong to no verb. Called once, when the instance is
    /// created. `LOGIN-DELAY n` and `EXPIRE n|NEVER` are not copied as they are: they become the
    /// server-wide defaults the core advertises by RFC 2449's rules (tagged `USER` before login, the
    /// user's own value after). The default adds none.
    fn capabilities(&self) -> Vec<String> {
        Vec::new()
    }

    /// Translations of the core's response texts this extension offers (RFC 6856 `LANG`),
    /// which its replies select with [`crate::SessionChange::language`]. Called once, when the
    /// instance is created; the server checks each catalog against its text table and refuses
    /// the plugin with a clear message if one does not fit. The default offers none.
    fn catalogs(&self) -> Vec<Catalog> {
        Vec::new()
    }
}
