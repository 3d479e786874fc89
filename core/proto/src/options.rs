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
    /// How many consecutive bad commands close the session. Default 20, Dovecot's
    /// bad-command limit; 0 disables the limit.
    pub max_bad_commands: u32,
    /// Verbs provided by extension plugins.
    pub extension_verbs: Vec<ExtensionVerb>,
    /// Extra lines for the CAPA response (e.g. from configuration).
    pub extra_capabilities: Vec<String>,
    /// The greeting text after `+OK`. Default "Poppet ready".
    pub greeting_text: String,
}

impl SessionOptions {
    /// RFC 1939 §3's minimum autologout time.
    pub const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
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
            max_bad_commands: 20,
            extension_verbs: Vec::new(),
            extra_capabilities: Vec::new(),
            greeting_text: String::from("Poppet ready"),
        }
    }
}
