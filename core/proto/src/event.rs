//! What the session asks of its driver, and what the driver answers.
//!
//! The session never does I/O. [`Event`]s tell the driver to write a reply, to check
//! credentials, to start TLS, to run a step of a SASL mechanism, to stream a message
//! body, to commit deletions, to run an extension verb, or to close. The actions are answered with the `*_completed` methods of
//! [`crate::Session`], which take the outcome types defined here. Until the answer
//! arrives the session holds back further input, so pipelined commands are answered
//! strictly in order (RFC 2449 §6.6, PIPELINING).

use crate::options::Expire;
use crate::response::Response;
use crate::secret::Secret;
use crate::uidl::Uidl;

/// Something the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Write this response.
    Reply(Response),
    /// USER+PASS or APOP arrived: check them, then call
    /// [`crate::Session::auth_completed`].
    AuthRequested(AuthRequest),
    /// RETR or TOP of a valid, undeleted message: open its body, then call
    /// [`crate::Session::transfer_started`] (and stream it through a
    /// [`crate::BodyEncoder`], then [`crate::Session::transfer_completed`]) or
    /// [`crate::Session::transfer_failed`].
    TransferRequested {
        /// The message's 0-based index in the maildrop snapshot.
        index: usize,
        /// The message size as reported by the store.
        size: u64,
        /// `None` for RETR; `Some(k)` for TOP: headers, blank line, `k` body lines.
        top_lines: Option<u64>,
    },
    /// QUIT in TRANSACTION: the session is in UPDATE. Delete these messages, release the
    /// maildrop, then call [`crate::Session::commit_completed`].
    CommitRequested {
        /// 0-based indices of the messages marked as deleted, sorted.
        deleted: Vec<usize>,
    },
    /// An extension verb valid in the current state: run it, then call
    /// [`crate::Session::extension_completed`].
    ExtensionCommand {
        /// The verb in upper case.
        verb: String,
        /// The arguments, each at most 40 octets.
        args: Vec<String>,
    },
    /// STLS was accepted (RFC 2595 §4). Write and flush every earlier reply (the last
    /// is `+OK Begin TLS negotiation`), run the TLS handshake on the connection, then
    /// call [`crate::Session::tls_started`]; if the handshake fails, close. The session
    /// has discarded all input received after the STLS line and ignores input until
    /// then, so nothing sent in plain text is read as if it came through TLS. Bound the
    /// handshake by [`crate::Session::deadline`].
    StartTls,
    /// `AUTH <mechanism> [initial-response]` (RFC 5034) for a mechanism the session
    /// allows. Start the mechanism, then call [`crate::Session::sasl_challenge`],
    /// [`crate::Session::sasl_completed`] (or [`crate::Session::auth_completed`]) or
    /// [`crate::Session::sasl_failed`].
    SaslStarted {
        /// The mechanism name in upper case, one of
        /// [`crate::SessionOptions::sasl_mechanisms`].
        mechanism: String,
        /// The initial response as sent (base64, not decoded); `Some("")` for `=`, the
        /// empty response; `None` when the client sent none.
        initial_response: Option<String>,
    },
    /// The client answered a challenge; answer it like [`Event::SaslStarted`].
    SaslResponse {
        /// The line as sent (base64, not decoded; possibly empty).
        data: String,
    },
    /// The client cancelled the exchange with `*`, or its answer broke the line rules;
    /// the `-ERR` reply came just before. Drop the mechanism's state.
    SaslCancelled,
    /// Write `reply` if there is one (after all earlier replies), then close.
    Close {
        /// Why the session ends.
        reason: CloseReason,
        /// A last line to write before closing.
        reply: Option<Response>,
    },
}

/// Why the session asked to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client sent QUIT.
    Quit,
    /// The autologout timer expired (RFC 1939 §3).
    Timeout,
    /// Too many consecutive bad commands.
    TooManyErrors,
    /// The client did not log in within
    /// [`crate::SessionOptions::login_timeout`] of connecting.
    LoginTimeout,
}

/// A login attempt for the auth backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    /// How the client authenticated.
    pub mechanism: Mechanism,
    /// The user name as sent.
    pub user: String,
    /// The password (USER/PASS) or the lower-case hex MD5 digest (APOP).
    pub secret: Secret<String>,
    /// Whether `user` passed [`crate::validate_user`]. When `false`, do not give the
    /// name to any backend or path: answer [`LoginOutcome::Rejected`] after the usual
    /// failure delay, so that on the wire (reply and timing) an invalid name looks
    /// exactly like a wrong password. The session cannot refuse it earlier: USER
    /// answers `+OK` for every name so that names cannot be probed.
    pub valid_user: bool,
}

/// An authentication mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mechanism {
    /// USER then PASS (RFC 1939 §7).
    UserPass,
    /// APOP with the greeting's timestamp (RFC 1939 §7).
    Apop,
}

/// The auth backend's and mail store's verdict on a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Logged in; the maildrop is locked and this is its snapshot.
    Accepted {
        /// Every message in the maildrop, in order (message n is `messages[n - 1]`).
        messages: Vec<MessageMeta>,
        /// The user's EXPIRE policy, overriding the server default in CAPA.
        expire: Option<Expire>,
        /// The user's LOGIN-DELAY, overriding the server default in CAPA.
        login_delay: Option<u32>,
    },
    /// Wrong credentials: `-ERR [AUTH]`.
    Rejected,
    /// The maildrop is locked by another session: `-ERR [IN-USE]`.
    InUse,
    /// A temporary problem, e.g. the directory is down: `-ERR [SYS/TEMP] <text>`.
    TempFail(String),
    /// A permanent problem, e.g. the account is disabled: `-ERR [SYS/PERM] <text>`.
    PermFail(String),
    /// The user logged in too recently: `-ERR [LOGIN-DELAY]`.
    LoginDelay,
}

/// One message of the maildrop snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    /// Exact octets RETR sends, before byte-stuffing (CRLF line ends).
    pub size: u64,
    /// The message's unique-id.
    pub uidl: Uidl,
}

/// The store's verdict on the deletions requested at QUIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// All deletions done.
    Committed {
        /// How many messages were removed.
        deleted: usize,
    },
    /// Some deletions failed.
    Partial {
        /// How many failed.
        failed: usize,
    },
    /// The commit failed as a whole.
    Failed(String),
}

/// Why a message body could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// Worth retrying later: `-ERR [SYS/TEMP] <text>`.
    Temporary(String),
    /// Not worth retrying, e.g. the message vanished: `-ERR [SYS/PERM] <text>`.
    Permanent(String),
}

/// Counters for the session's log line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionStats {
    /// Command lines read (good and bad).
    pub commands: u64,
    /// Command lines answered with an engine `-ERR` (syntax, state, message number).
    pub bad_commands: u64,
    /// RETR transfers completed.
    pub retr: u64,
    /// Sum of the reported sizes of the messages RETR sent.
    pub retr_octets: u64,
    /// TOP transfers completed.
    pub top: u64,
    /// Successful DELE commands (RSET does not subtract).
    pub dele: u64,
    /// Messages the store reported as removed at QUIT.
    pub deleted: u64,
}
