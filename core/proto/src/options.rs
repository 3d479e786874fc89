//! What a session is configured with, and where each default comes from.
//!
//! The server builds one [`SessionOptions`] per connection from its validated config.
//! Every default below cites its source, as the style guide asks.

use std::fmt;
use std::time::Duration;

use crate::state::StateSet;

/// The EXPIRE policy advertised in CAPA (RFC 2449 §6.7): how long the server keeps
/// messages after they were retrieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expire {
    /// `EXPIRE NEVER`: messages stay until the client deletes them.
    Never,
    /// `EXPIRE <days>`: messages may be removed that many days after retrieval
    /// (0 means they may be removed as soon as the session ends).
    Days(u32),
}

impl fmt::Display for Expire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Never => f.write_str("NEVER"),
            Self::Days(days) => write!(f, "{days}"),
        }
    }
}

/// A command verb provided by an extension plugin.
///
/// A verb that names a core command (USER, RETR, ...) is never dispatched to the
/// extension: the core verb wins. The server refuses such plugins at load time; the
/// session simply ignores them so that it stays correct either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionVerb {
    /// The keyword, matched case-insensitively (reported upper-case in events).
    pub name: String,
    /// The states in which the verb is accepted; elsewhere it gets `-ERR`.
    pub states: StateSet,
    /// The line this verb adds to the CAPA response, if any.
    pub capability: Option<String>,
}

/// Per-session configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// The APOP timestamp, e.g. `<1896.697170952@host>`. `Some` puts it in the greeting
    /// and enables APOP (RFC 1939 §7). Default `None`: APOP needs plaintext-equivalent
    /// secrets, which most deployments do not have.
    pub apop_timestamp: Option<String>,
    /// Whether USER/PASS is allowed (and `USER` is listed in CAPA, RFC 2449 §6.2).
    /// Default `true`: it is the one mechanism every client supports.
    pub user_pass: bool,
    /// The CAPA IMPLEMENTATION text (RFC 2449 §6.9). Default `None`: RFC 2449 notes it
    /// can help attackers find vulnerable versions, so it is opt-in.
    pub implementation: Option<String>,
    /// The server-wide EXPIRE policy for CAPA (RFC 2449 §6.7). Default `None` (not
    /// advertised): the store decides retention, not the protocol core.
    pub expire: Option<Expire>,
    /// The server-wide LOGIN-DELAY in seconds for CAPA (RFC 2449 §6.5). Default `None`.
    pub login_delay: Option<u32>,
    /// The autologout timer. RFC 1939 §3: "Such a timer MUST be of at least 10 minutes'
    /// duration." Default 10 minutes, the RFC minimum (also Dovecot's value).
    pub idle_timeout: Duration,
    /// How many consecutive bad commands close the session before login. Default 3,
    /// the limit of Dovecot's login process: a client that has not logged in has no
    /// reason to fumble, and a scanner should free its slot quickly. 0 disables it.
    pub max_bad_commands_authorization: u32,
    /// How many consecutive bad commands close the session after login. Default 20,
    /// Dovecot's limit for logged-in POP3 sessions. 0 disables it.
    pub max_bad_commands_transaction: u32,
    /// The time a client has from connecting to logging in. It is absolute, not reset
    /// by commands, so a client trickling commands cannot hold a connection slot
    /// (slow-loris). Default 3 minutes, Dovecot's login timeout; `Duration::ZERO`
    /// switches it off (the idle timer still applies). After login only the idle timer
    /// counts.
    pub login_timeout: Duration,
    /// Offer STLS (RFC 2595 §4): the listener is plain text and the server has a TLS
    /// configuration. Default `false`: the engine cannot know whether TLS is configured.
    pub stls: bool,
    /// The connection is already encrypted (an implicit-TLS listener, RFC 8314).
    /// Default `false`. [`crate::Session::tls_started`] sets it after STLS.
    pub tls_active: bool,
    /// Refuse USER/PASS, `AUTH PLAIN` and `AUTH LOGIN` and leave them out of CAPA, like
    /// Dovecot's `disable_plaintext_auth`; the server sets it on unencrypted connections
    /// from outside loopback. APOP and challenge-response SASL mechanisms stay allowed.
    /// Default `false`, so that the engine on its own behaves as RFC 1939 describes;
    /// the server's default configuration turns it on. TLS clears it.
    pub plaintext_disallowed: bool,
    /// The SASL mechanisms the server can serve, upper case (RFC 5034, e.g. `PLAIN`,
    /// `SCRAM-SHA-256`), in the order CAPA lists them. Default empty: the auth backend
    /// decides what can be served, and without one no AUTH is offered.
    pub sasl_mechanisms: Vec<String>,
    /// The longest SASL continuation line, CRLF included. Default 8192 octets: SCRAM
    /// and GSSAPI messages do not fit the 255 octets of a command line (RFC 2449 §4),
    /// and Dovecot's limit for an authentication line is in that range; a client cannot
    /// make the session buffer more.
    pub max_sasl_line: usize,
    /// Verbs provided by extension plugins.
    pub extension_verbs: Vec<ExtensionVerb>,
    /// RFC 6856: user names with non-ASCII characters need the `UTF8` command first
    /// ([`crate::Session::enable_utf8`]). Set when an extension offers `UTF8`; off, such
    /// names are accepted as they are (what servers without RFC 6856 do).
    pub utf8_users_need_command: bool,
    /// Extra lines for the CAPA response (e.g. from configuration).
    pub extra_capabilities: Vec<String>,
    /// The greeting text after `+OK`. Default "Poppet ready".
    pub greeting_text: String,
}

impl SessionOptions {
    /// RFC 1939 §3's minimum autologout time.
    pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
    /// Dovecot's login timeout, the default of [`SessionOptions::login_timeout`].
    pub const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(180);
}

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            apop_timestamp: None,
            user_pass: true,
            implementation: None,
            expire: None,
            login_delay: None,
            idle_timeout: Self::MIN_IDLE_TIMEOUT,
            max_bad_commands_authorization: 3,
            max_bad_commands_transaction: 20,
            login_timeout: Self::DEFAULT_LOGIN_TIMEOUT,
            stls: false,
            tls_active: false,
            plaintext_disallowed: false,
            sasl_mechanisms: Vec::new(),
            max_sasl_line: 8192,
            extension_verbs: Vec::new(),
            utf8_users_need_command: false,
            extra_capabilities: Vec::new(),
            greeting_text: String::from("Poppet ready"),
        }
    }
}
