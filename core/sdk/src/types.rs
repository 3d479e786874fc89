//! The plain Rust values plugin authors see: requests, outcomes, message metadata, replies.
//!
//! They never cross the boundary as they are; `abi` converts them to and from their `#[repr(C)]` forms.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A secret (password, plaintext-equivalent key) whose `Debug` output is redacted, so that it cannot
/// reach a log line by accident. Read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// Reads the secret. Call sites are easy to audit by searching for `expose`.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// Mechanism names as they appear in [`AuthRequest::mechanism`].
pub mod mechanism {
    /// RFC 1939 USER followed by PASS.
    pub const USER_PASS: &str = "USER";
    /// SASL PLAIN (RFC 4616).
    pub const PLAIN: &str = "PLAIN";
    /// SASL LOGIN.
    pub const LOGIN: &str = "LOGIN";
}

/// A request to check a user's password.
#[derive(Debug, Clone)]
pub struct AuthRequest {
    /// How the client authenticated (see [`mechanism`]).
    pub mechanism: String,
    /// The login name as the client sent it.
    pub user: String,
    /// The password.
    pub password: Secret<String>,
    /// SASL authorization identity, when the client asked to act as someone else.
    pub authzid: Option<String>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// The server address the client connected to.
    pub local: Option<SocketAddr>,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// The core has already verified the client's credentials with a challenge-response mechanism
    /// (SCRAM, from the secret `lookup_secret` gave). The backend must then only look the account up
    /// (mailbox, limits, disabled accounts) and must not check `password`, which is empty.
    pub verified: bool,
}

/// RFC 2449 §6.7 EXPIRE: how long the server keeps retrieved mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expire {
    /// `EXPIRE NEVER`.
    Never,
    /// `EXPIRE n`: days.
    Days(u32),
}

/// A plaintext-equivalent credential an auth backend can hand to the core for challenge-response
/// mechanisms (APOP needs the password itself; SCRAM-SHA-256 needs either the password or stored keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSecret {
    /// The password itself (for example a passwd-file `{PLAIN}` entry).
    Plaintext(Secret<String>),
    /// RFC 5802 SCRAM-SHA-256 keys, as Dovecot stores them (`{SCRAM-SHA-256}i,salt,stored,server`).
    ScramSha256(ScramKeys),
}

/// Stored SCRAM-SHA-256 keys (RFC 5802 §3). They let the server check a SCRAM proof without knowing
/// the password, but whoever has them can impersonate the server, so they are secrets too.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    /// PBKDF2 iteration count.
    pub iterations: u32,
    /// The salt.
    pub salt: Vec<u8>,
    /// `H(ClientKey)`.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: [u8; 32],
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKeys")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// What an auth backend can do beyond checking passwords; the core advertises mechanisms from this,
/// so CAPA lists exactly what the backend can serve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthCapabilities {
    /// `lookup_secret` can return plaintext passwords (enables APOP and SCRAM-SHA-256).
    pub plaintext_secrets: bool,
    /// `lookup_secret` can return stored SCRAM-SHA-256 keys (enables SCRAM-SHA-256).
    pub scram_sha256: bool,
}

/// A successful authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// The canonical user name, if the backend knows better than the login name (case, aliases).
    pub user: Option<String>,
    /// Where the mail is, if the backend says (passwd-file home, LDAP attribute); otherwise the store
    /// derives it from the user name.
    pub mailbox: Option<String>,
    /// Per-user RFC 2449 LOGIN-DELAY in seconds.
    pub login_delay: Option<u32>,
    /// Per-user RFC 2449 EXPIRE.
    pub expire: Option<Expire>,
}

/// What an auth backend decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// The credentials are right.
    Accept(Accepted),
    /// Unknown user or wrong password (the client must not be able to tell which).
    Reject,
    /// The backend could not decide now (directory down); the client gets `-ERR [SYS/TEMP]`.
    TempFail(String),
}

/// A request to open a user's maildrop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRequest {
    /// The authenticated user name.
    pub user: String,
    /// The mailbox location the auth backend gave, if any.
    pub mailbox: Option<String>,
}

/// One message of a maildrop snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    /// Exactly the number of octets the body stream yields (CRLF line ends, no dot-stuffing).
    pub size: u64,
    /// RFC 1939 unique-id: 1 to 70 characters in 0x21..=0x7E, stable across sessions.
    pub uidl: String,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitReport {
    /// Messages removed (including ones that had already vanished).
    pub deleted: u64,
    /// Messages that could not be removed.
    pub failed: u64,
}

/// Session states in which an extension verb is valid (a bit set).
pub mod states {
    /// RFC 1939 AUTHORIZATION state.
    pub const AUTHORIZATION: u32 = 1;
    /// RFC 1939 TRANSACTION state.
    pub const TRANSACTION: u32 = 2;
}

/// A verb a command extension provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerbSpec {
    /// The keyword, 3-4 letters by RFC 1939 convention, matched case-insensitively.
    pub verb: String,
    /// Bit set of [`states`] in which the verb is valid.
    pub states: u32,
    /// The line it adds to CAPA, if any.
    pub capability: Option<String>,
    /// The most arguments the verb takes.
    pub max_args: u32,
}

/// A read-only view of a session, given to command extensions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionView {
    /// The authenticated user, once logged in.
    pub user: Option<String>,
    /// The client's address.
    pub peer: Option<SocketAddr>,
    /// Whether the connection is encrypted.
    pub tls: bool,
    /// Sizes of the messages in the snapshot (empty before login).
    pub message_sizes: Vec<u64>,
    /// The server's id of this session, as its log lines show it (`session 42: ...`); 0 if unknown.
    pub session_id: u64,
    /// The user's RFC 2449 LOGIN-DELAY from the auth backend ([`Accepted::login_delay`]), once
    /// logged in; `None` when the backend gave none (an extension then applies its own default).
    pub login_delay: Option<u32>,
    /// Whether RFC 6856 UTF-8 mode is on ([`SessionChange::utf8`]).
    pub utf8: bool,
    /// The language of the core's texts ([`SessionChange::language`]); `None` is English.
    pub language: Option<String>,
}

/// What a session did, given to [`crate::CommandExtension::at_quit`] when a logged-in session ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuitReport {
    /// UIDLs of the messages the store removed at QUIT (empty when nothing was committed: a dropped
    /// connection, a timeout or a failed commit deletes nothing).
    pub deleted_uidls: Vec<String>,
    /// Messages sent in full with RETR.
    pub retrieved: u64,
    /// Messages the store reported as removed.
    pub deleted: u64,
    /// How the session ended: `quit`, `disconnected`, `timeout`, `shutdown`, `error`, ... (the
    /// `reason=` of the server's logout line).
    pub ended: String,
}

/// A call of an extension verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionCall {
    /// The verb, uppercase.
    pub verb: String,
    /// The arguments.
    pub args: Vec<String>,
    /// The session it came from.
    pub session: SessionView,
}

/// A POP3 reply from an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// `+OK` (true) or `-ERR` (false).
    pub ok: bool,
    /// An RFC 2449 response code without brackets, such as `SYS/TEMP`.
    pub code: Option<String>,
    /// The text after the status.
    pub text: String,
    /// For a multi-line reply, its lines (the core dot-stuffs and terminates them).
    pub lines: Option<Vec<String>>,
    /// What the core should change in the session after sending this reply.
    pub change: SessionChange,
    /// For a multi-line reply too long to build in memory, its body as a stream of CRLF text
    /// (like a message body: the core dot-stuffs and terminates it, memory stays flat). Only read
    /// for a `+OK` reply; `lines` is ignored when this is set.
    pub stream: Option<ReplyStream>,
}

/// The body of a streamed multi-line reply ([`Reply::streamed`]): any `futures_io::AsyncRead`
/// yielding CRLF-terminated lines. A read error after part of the body is on the wire closes the
/// connection (a short reply must not look complete); before, the client gets `-ERR [SYS/TEMP]`.
///
/// Cloning shares the one stream, which the core takes once.
#[derive(Clone)]
pub struct ReplyStream(Arc<Mutex<Option<BoxedReader>>>);

/// A boxed body reader.
pub type BoxedReader = Box<dyn futures_io::AsyncRead + Send + Unpin + 'static>;

impl ReplyStream {
    /// Wraps a reader.
    pub fn new(reader: impl futures_io::AsyncRead + Send + Unpin + 'static) -> Self {
        ReplyStream(Arc::new(Mutex::new(Some(Box::new(reader)))))
    }

    /// Takes the reader out (once; later calls give `None`).
    pub fn take(&self) -> Option<BoxedReader> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl std::fmt::Debug for ReplyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReplyStream")
    }
}

impl PartialEq for ReplyStream {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ReplyStream {}

/// Session changes an extension's reply asks the core for: the RFC 6856 modes, which only
/// the core can apply (it renders the texts and checks the user names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionChange {
    /// Switch RFC 6856 UTF-8 mode on: user names with non-ASCII characters are accepted
    /// from now on (the `UTF8` command).
    pub utf8: bool,
    /// Render the core's texts in this language from now on (the `LANG` command): the tag
    /// of one of the extension's [`Catalog`]s, or `en` for English. An unknown tag is a
    /// plugin error.
    pub language: Option<String>,
}

/// A translation of the core's response texts (RFC 6856 `LANG`), which an extension offers
/// through [`crate::CommandExtension::catalogs`]. The server checks it when the plugin loads
/// (`poppet check` too): ids and terms must be the core's, placeholders those of the English
/// text. The core's table, with every id and its English text, is in the book's chapter on
/// languages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The language tag (RFC 5646), e.g. `de`.
    pub tag: String,
    /// The language's name in that language, e.g. `Deutsch`.
    pub name: String,
    /// Text id to translated template, e.g. `("no-such-message", "Keine solche Nachricht")`.
    pub texts: Vec<(String, String)>,
    /// English argument phrase to its translation, e.g. `("a password", "ein Passwort")`.
    pub terms: Vec<(String, String)>,
}

impl Reply {
    /// A single-line `+OK text`.
    pub fn ok(text: impl Into<String>) -> Self {
        Reply {
            ok: true,
            code: None,
            text: text.into(),
            lines: None,
            change: SessionChange::default(),
            stream: None,
        }
    }

    /// A multi-line `+OK text` whose body is streamed from `body` (CRLF text; see
    /// [`ReplyStream`]).
    pub fn streamed(
        text: impl Into<String>,
        body: impl futures_io::AsyncRead + Send + Unpin + 'static,
    ) -> Self {
        Reply {
            stream: Some(ReplyStream::new(body)),
            ..Reply::ok(text)
        }
    }

    /// A single-line `-ERR text`.
    pub fn err(text: impl Into<String>) -> Self {
        Reply {
            ok: false,
            code: None,
            text: text.into(),
            lines: None,
            change: SessionChange::default(),
            stream: None,
        }
    }

    /// A multi-line `+OK text` followed by `lines`.
    pub fn multi(text: impl Into<String>, lines: Vec<String>) -> Self {
        Reply {
            ok: true,
            code: None,
            text: text.into(),
            lines: Some(lines),
            change: SessionChange::default(),
            stream: None,
        }
    }

    /// This reply, asking the core to make `change` after sending it.
    pub fn with_change(mut self, change: SessionChange) -> Self {
        self.change = change;
        self
    }
}

/// What a command extension says after a successful login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginDecision {
    /// Let the session proceed.
    Allow,
    /// Refuse the login with this (error) reply; the session stays in AUTHORIZATION.
    Refuse(Reply),
}
