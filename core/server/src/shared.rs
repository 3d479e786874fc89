//! What every session shares: the plugins, the limits and the per-server session options.

use crate::config::Config;
use crate::penalty::Penalties;
use crate::plugins::Plugins;
use crate::session::Connection;
use crate::tls::TlsInfo;
use futures_rustls::TlsAcceptor;
use futures_rustls::rustls::ServerConfig;
use poppet_proto::{
    Expire, ExtensionVerb, LoginOutcome, Response, ResponseCode, SessionOptions, StateSet,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Shared, read-only server state.
/// (Debug is implemented by hand: the TLS acceptor has none.)
pub struct Shared {
    /// Loaded plugins.
    pub plugins: Plugins,
    /// The config.
    pub config: Config,
    /// The TLS acceptor, when a certificate is configured.
    pub tls: Option<TlsAcceptor>,
    /// Per-address auth failure penalties.
    pub penalties: Penalties,
    state: Arc<LongLived>,
    hostname: String,
    extension_verbs: Vec<ExtensionVerb>,
    extension_capabilities: ExtensionCapabilities,
    /// An extension offers RFC 6856's `UTF8`, so non-ASCII user names need it first.
    utf8_offered: bool,
}

/// What the extensions' verb-less CAPA lines add to every session's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ExtensionCapabilities {
    /// From a `LOGIN-DELAY n` line: the server-wide default.
    login_delay: Option<u32>,
    /// From an `EXPIRE n|NEVER` line: the server-wide default.
    expire: Option<Expire>,
    /// Every other line, as it is.
    lines: Vec<String>,
}

impl ExtensionCapabilities {
    /// Sorts the lines. `LOGIN-DELAY` and `EXPIRE` become defaults rather than lines, because RFC 2449
    /// §6.5 and §6.7 want them tagged `USER` before login when they may vary per user and the user's
    /// own value after login, which only the core knows how to do. The first extension to give one
    /// wins (config order); a malformed value is passed through as a line so it stays visible.
    fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Self {
        let mut caps = ExtensionCapabilities::default();
        for line in lines {
            let mut words = line.split_ascii_whitespace();
            let (keyword, value) = (words.next().unwrap_or(""), words.next());
            let extra = words.next().is_some();
            match (keyword.to_ascii_uppercase().as_str(), value, extra) {
                ("LOGIN-DELAY", Some(v), false) if v.parse::<u32>().is_ok() => {
                    caps.login_delay = caps.login_delay.or(v.parse().ok());
                }
                ("EXPIRE", Some(v), false) if v.eq_ignore_ascii_case("NEVER") => {
                    caps.expire = caps.expire.or(Some(Expire::Never));
                }
                ("EXPIRE", Some(v), false) if v.parse::<u32>().is_ok() => {
                    caps.expire = caps.expire.or(v.parse().ok().map(Expire::Days));
                }
                _ => caps.lines.push(line.to_owned()),
            }
        }
        caps
    }
}

/// What outlives a config reload: auth penalties and per-user session counts.
#[derive(Debug, Default)]
pub struct LongLived {
    /// Counters for the metrics endpoint.
    pub metrics: Arc<crate::metrics::Metrics>,
    penalties: Arc<crate::penalty::PenaltyTable>,
    users: Arc<Mutex<HashMap<String, u32>>>,
}

/// A logged-in session's claim on its user's connection count; released on drop.
#[derive(Debug)]
pub struct UserSlot {
    users: Arc<Mutex<HashMap<String, u32>>>,
    user: String,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut map = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

impl Shared {
    /// Builds the shared state.
    pub fn new(
        config: Config,
        plugins: Plugins,
        tls: Option<Arc<ServerConfig>>,
        state: Arc<LongLived>,
    ) -> Shared {
        let extension_verbs = plugins
            .extensions
            .iter()
            .flat_map(|e| e.verbs().iter())
            .map(|v| ExtensionVerb {
                name: v.verb.to_ascii_uppercase(),
                states: state_set(v.states),
                capability: v.capability.clone(),
            })
            .collect();
        let extension_capabilities = ExtensionCapabilities::from_lines(
            plugins
                .extensions
                .iter()
                .flat_map(|e| e.capabilities().iter().map(String::as_str)),
        );
        let utf8_offered = plugins.offers_utf8();
        let hostname = gethostname::gethostname().to_string_lossy().into_owned();
        let penalties = Penalties::with_table(
            config.limits.auth_penalty_max,
            config.limits.trusted_networks.clone(),
            Arc::clone(&state.penalties),
        );
        Shared {
            plugins,
            config,
            tls: tls.map(TlsAcceptor::from),
            penalties,
            state,
            hostname,
            utf8_offered,
            extension_verbs,
            extension_capabilities,
        }
    }

    /// The metrics counters.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.state.metrics
    }

    /// Claims one of `user`'s `max_connections_per_user` session slots.
    pub fn claim_user(&self, user: &str) -> Option<UserSlot> {
        let mut map = self.state.users.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(user.to_owned()).or_insert(0);
        if *n >= self.config.limits.max_connections_per_user {
            return None;
        }
        *n += 1;
        Some(UserSlot {
            users: Arc::clone(&self.state.users),
            user: user.to_owned(),
        })
    }

    /// Session options for a new connection.
    pub fn session_options(&self, conn: &Connection) -> SessionOptions {
        let caps = self.plugins.auth.capabilities();
        // APOP needs the password itself from the backend (RFC 1939 §7's shared secret).
        let apop_timestamp = (self.config.apop && caps.plaintext_secrets).then(|| {
            // RFC 1939 §7: "The syntax of the timestamp corresponds to the `msg-id' in [RFC822], and
            // MUST be different each time the POP3 server issues a banner greeting."
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!(
                "<{}.{}.{now}@{}>",
                std::process::id(),
                conn.id,
                self.hostname
            )
        });
        let limits = &self.config.limits;
        SessionOptions {
            apop_timestamp,
            stls: conn.stls_offered && conn.tls.is_none(),
            tls_active: conn.tls.is_some(),
            plaintext_disallowed: conn.tls.is_none() && conn.plaintext_refused_without_tls,
            sasl_mechanisms: self.sasl_mechanisms(conn.tls.as_ref()),
            idle_timeout: limits.idle_timeout,
            login_timeout: limits.login_timeout,
            max_bad_commands_transaction: limits.max_bad_commands,
            max_bad_commands_authorization: limits.max_bad_commands_before_login,
            extension_verbs: self.extension_verbs.clone(),
            utf8_users_need_command: self.utf8_offered,
            login_delay: self.extension_capabilities.login_delay,
            expire: self.extension_capabilities.expire,
            extra_capabilities: self.extension_capabilities.lines.clone(),
            greeting_text: self.config.greeting.clone(),
            ..SessionOptions::default()
        }
    }

    /// The SASL mechanisms the active backend can serve on a connection with this TLS state, strongest
    /// first. PLAIN and LOGIN only need a password check; SCRAM-SHA-256 needs plaintext secrets or
    /// stored keys; the -PLUS variant also needs TLS 1.3's exporter (RFC 9266).
    pub fn sasl_mechanisms(&self, tls: Option<&TlsInfo>) -> Vec<String> {
        let caps = self.plugins.auth.capabilities();
        let scram = caps.plaintext_secrets || caps.scram_sha256;
        let mut mechanisms = Vec::new();
        if scram && tls.is_some_and(|t| t.exporter.is_some()) {
            mechanisms.push("SCRAM-SHA-256-PLUS");
        }
        if scram {
            mechanisms.push("SCRAM-SHA-256");
        }
        mechanisms.extend(["PLAIN", "LOGIN"]);
        mechanisms.into_iter().map(String::from).collect()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

fn state_set(bits: u32) -> StateSet {
    let mut set = StateSet::NONE;
    if bits & poppet_sdk::states::AUTHORIZATION != 0 {
        set = set.union(StateSet::AUTHORIZATION);
    }
    if bits & poppet_sdk::states::TRANSACTION != 0 {
        set = set.union(StateSet::TRANSACTION);
    }
    set
}

/// The login outcome for an after-login hook's refusal: its response code decides (`LOGIN-DELAY`,
/// `IN-USE`, `SYS/TEMP`, `AUTH`); anything else, or none, is a permanent refusal (`SYS/PERM`).
pub fn refusal_outcome(reply: poppet_sdk::Reply) -> LoginOutcome {
    match reply.code.as_deref() {
        Some("LOGIN-DELAY") => LoginOutcome::LoginDelay,
        Some("IN-USE") => LoginOutcome::InUse,
        Some("SYS/TEMP") => LoginOutcome::TempFail(reply.text),
        Some("AUTH") => LoginOutcome::Rejected,
        _ => LoginOutcome::PermFail(reply.text),
    }
}

/// Converts an extension's reply into an engine response. An unknown response code from a plugin is
/// dropped rather than sent (the wire only carries codes this server knows).
pub fn reply_to_response(reply: poppet_sdk::Reply) -> Response {
    let code = reply.code.as_deref().and_then(|c| match c {
        "IN-USE" => Some(ResponseCode::InUse),
        "LOGIN-DELAY" => Some(ResponseCode::LoginDelay),
        "SYS/TEMP" => Some(ResponseCode::SysTemp),
        "SYS/PERM" => Some(ResponseCode::SysPerm),
        "AUTH" => Some(ResponseCode::Auth),
        _ => None,
    });
    let response = if reply.ok {
        Response::ok(reply.text)
    } else {
        Response::err(code, reply.text)
    };
    match reply.lines {
        Some(lines) => response.with_lines(lines),
        None => response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_delay_and_expire_lines_become_defaults() {
        let caps = ExtensionCapabilities::from_lines([
            "LOGIN-DELAY 900",
            "EXPIRE never",
            "LOGIN-DELAY 5",
            "X-SITE hello",
            "LOGIN-DELAY soon",
        ]);
        assert_eq!(caps.login_delay, Some(900));
        assert_eq!(caps.expire, Some(Expire::Never));
        assert_eq!(caps.lines, ["X-SITE hello", "LOGIN-DELAY soon"]);
        let days = ExtensionCapabilities::from_lines(["EXPIRE 30"]);
        assert_eq!(days.expire, Some(Expire::Days(30)));
    }

    #[test]
    fn refusal_codes_choose_the_outcome() {
        let refuse = |code: Option<&str>| {
            let mut r = poppet_sdk::Reply::err("no");
            r.code = code.map(String::from);
            refusal_outcome(r)
        };
        assert_eq!(refuse(Some("LOGIN-DELAY")), LoginOutcome::LoginDelay);
        assert_eq!(refuse(Some("IN-USE")), LoginOutcome::InUse);
        assert_eq!(
            refuse(Some("SYS/TEMP")),
            LoginOutcome::TempFail("no".into())
        );
        assert_eq!(refuse(Some("AUTH")), LoginOutcome::Rejected);
        assert_eq!(refuse(Some("X-ODD")), LoginOutcome::PermFail("no".into()));
        assert_eq!(refuse(None), LoginOutcome::PermFail("no".into()));
    }
}
