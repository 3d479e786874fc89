//! The server's RON config: parsed raw (serde, `deny_unknown_fields`), then validated into typed
//! settings. Every error names the file, line and column and says what was expected.
//!
//! Plugin sections are not parsed here: each travels to its plugin as its exact text, and a plugin's
//! error position inside that text is translated back to the file (see [`PluginSpec::locate`]).

mod raw;

use poppet_sdk::config::parse_duration;

use raw::{Located, RawConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A config error: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct ConfigError {
    /// The config file.
    pub file: PathBuf,
    /// 1-based line (0 when the error has no position, such as a file that cannot be read).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The kinds of plugin, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// An auth backend.
    Auth,
    /// A mail store.
    Store,
    /// A command extension.
    Extension,
}

impl PluginKind {
    /// The name used in the config and in messages.
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Auth => "auth",
            PluginKind::Store => "store",
            PluginKind::Extension => "extension",
        }
    }
}

/// How a listener uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain POP3, no STLS.
    None,
    /// Plain POP3 offering STLS (RFC 2595); the default when a `tls` section exists.
    Starttls,
    /// TLS from the first byte (RFC 8314, port 995).
    Implicit,
}

/// When USER/PASS, AUTH PLAIN and AUTH LOGIN are allowed without TLS (Dovecot's
/// `disable_plaintext_auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlaintextAuth {
    /// Only on encrypted connections.
    Never,
    /// On encrypted connections and from loopback addresses (the default, as Dovecot treats
    /// localhost as secure).
    Loopback,
    /// Always (only for networks you trust end to end).
    Always,
}

/// One listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Address and port; port 0 picks a free port (tests).
    pub address: SocketAddr,
    /// TLS mode.
    pub tls: TlsMode,
    /// Cleartext password policy.
    pub plaintext_auth: PlaintextAuth,
    /// When set, the listener sits behind load balancers that speak the PROXY protocol (v1 or v2):
    /// connections from these networks must start with a PROXY header, and connections from anywhere
    /// else are refused. `None` (the default) means no PROXY protocol.
    pub proxy_protocol: Option<Vec<ipnet::IpNet>>,
}

/// Certificate and key files (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Create a self-signed certificate for `localhost` at these paths when they do not exist yet
    /// (quickstart); off by default because clients must be told to trust it.
    pub generate_self_signed: bool,
}

/// One plugin instance to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// A path (contains `/`) or a bare library name looked up in the plugin directory.
    pub library: String,
    /// Its kind.
    pub kind: PluginKind,
    /// The factory name, which is also the instance's name in `auth`/`store`/`extensions`.
    pub name: String,
    /// The exact RON text of its `settings` (`()` when absent).
    pub settings: String,
    /// Where `settings` starts in the file (1-based line, column).
    pub settings_at: (usize, usize),
    /// Where the entry's `library` value is, for load errors.
    pub library_at: (usize, usize),
}

impl PluginSpec {
    /// Translates a position inside [`PluginSpec::settings`] to the config file.
    pub fn locate(&self, line: u32, column: u32) -> (usize, usize) {
        let (l0, c0) = self.settings_at;
        let (line, column) = (line as usize, column as usize);
        if line <= 1 {
            (l0, c0 + column.saturating_sub(1))
        } else {
            (l0 + line - 1, column)
        }
    }
}

/// Unanswered keepalive probes after which the kernel cuts a connection (`TCP_KEEPCNT`).
pub const KEEPALIVE_PROBES: u32 = 4;
/// The shortest `tcp_keepalive`: the probes go a quarter of it apart, and the kernel counts whole
/// seconds.
const KEEPALIVE_MIN: Duration = Duration::from_secs(4);
/// The longest `tcp_keepalive`, within Linux's bound for `TCP_KEEPIDLE` (32,767 s).
const KEEPALIVE_MAX: Duration = Duration::from_secs(9 * 3600);

/// Limits, each with the reason for its default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// RFC 1939 §3: "an inactivity autologout timer ... of at least 10 minutes". Default 10 minutes.
    pub idle_timeout: Duration,
    /// Total concurrent connections. Default 1000, Dovecot's `default_client_limit`.
    pub max_connections: u32,
    /// Concurrent connections from one IP address. Default 20: a household or office behind one NAT
    /// with several clients polling, while one host cannot take every slot.
    pub max_connections_per_ip: u32,
    /// How long sessions may run on after SIGTERM before they are cut (committing nothing). Default
    /// 10 s: enough to finish a typical RETR, short enough for a service manager's stop timeout (90 s).
    pub shutdown_grace: Duration,
    /// Consecutive bad commands before the server hangs up after login. Default 20, Dovecot's value.
    pub max_bad_commands: u32,
    /// Consecutive bad commands before login. Default 3, Dovecot's login processes: a client that
    /// cannot form a command before logging in is not a POP3 client.
    pub max_bad_commands_before_login: u32,
    /// How long a client may take from connecting to logging in, however active. Default 3 minutes,
    /// Dovecot's login timeout: a slow-loris client cannot hold a slot longer.
    pub login_timeout: Duration,
    /// Pause before answering a failed login. Default 2 s, Dovecot's `auth_failure_delay`.
    pub auth_failure_delay: Duration,
    /// Upper bound of the per-address penalty that doubles with each failed login (1 s, 2 s, 4 s, ...)
    /// and is forgotten after an hour without failures. Default 15 s, Dovecot's auth penalty cap.
    pub auth_penalty_max: Duration,
    /// How long one call of a plugin (authenticate, open, commit, an extension verb, ...) may take
    /// before the client gets `-ERR [SYS/TEMP]` and the session goes on without it. Default 60 s:
    /// longer than any healthy LDAP search or maildir scan, shorter than clients wait (Thunderbird
    /// gives up after 100 s), so a hung directory server costs a retry, not a hung client.
    pub plugin_timeout: Duration,
    /// Silence on a connection before TCP keepalive probes ask the client's host whether it is still
    /// there; [`KEEPALIVE_PROBES`] unanswered probes a quarter of this apart cut the connection, so a
    /// vanished client (a phone that left its network, a laptop that slept: no FIN, no RST) is gone
    /// about twice this after its last packet, and its maildrop lock with it. Zero turns probing
    /// off. Default 1 minute: without it such a session holds the lock until `idle_timeout` (10
    /// minutes), and the client's next poll gets `[IN-USE]`; a live client's kernel answers the
    /// probes, so it only costs a few packets a minute per idle connection.
    pub tcp_keepalive: Duration,
    /// Failed logins on one connection before it is closed. Default 3, as Dovecot's login processes:
    /// a guesser must reconnect (and serve the address penalty) every three tries.
    pub max_auth_failures: u32,
    /// Logged-in sessions of one user at once. Default 10, Dovecot's `mail_max_userip_connections`.
    pub max_connections_per_user: u32,
    /// Networks whose clients get no auth penalty (monitoring, webmail). Default: loopback only.
    pub trusted_networks: Vec<ipnet::IpNet>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Duration::from_secs(600),
            max_connections: 1000,
            max_connections_per_ip: 20,
            shutdown_grace: Duration::from_secs(10),
            max_bad_commands: 20,
            max_bad_commands_before_login: 3,
            login_timeout: Duration::from_secs(180),
            auth_failure_delay: Duration::from_secs(2),
            auth_penalty_max: Duration::from_secs(15),
            plugin_timeout: Duration::from_secs(60),
            tcp_keepalive: Duration::from_secs(60),
            max_auth_failures: 3,
            max_connections_per_user: 10,
            trusted_networks: vec![
                ipnet::IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                ipnet::IpNet::V6(ipnet::Ipv6Net::new_assert(
                    std::net::Ipv6Addr::LOCALHOST,
                    128,
                )),
            ],
        }
    }
}

/// The validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The file it came from.
    pub path: PathBuf,
    /// Listening sockets.
    pub listeners: Vec<Listener>,
    /// Where bare library names are looked up; `None` = the running binary's directory.
    pub plugin_dir: Option<PathBuf>,
    /// Plugin instances, in file order.
    pub plugins: Vec<PluginSpec>,
    /// The active auth backend (a plugin `name` of kind auth).
    pub auth: String,
    /// The active mail store (a plugin `name` of kind store).
    pub store: String,
    /// Active command extensions, in order.
    pub extensions: Vec<String>,
    /// Limits.
    pub limits: Limits,
    /// Whether APOP is offered (needs a backend with plaintext-equivalent secrets). Default off:
    /// APOP's MD5 challenge needs the password stored in the clear.
    pub apop: bool,
    /// The greeting text after `+OK`.
    pub greeting: String,
    /// Log filter in `RUST_LOG` syntax (`"info"`, `"info,poppet_store_maildir=debug"`); the environment
    /// variable `RUST_LOG` overrides it. Default `"info"`: one line per login, logout and failure.
    pub log_level: String,
    /// Certificate and key, needed by any listener with TLS.
    pub tls: Option<TlsFiles>,
    /// Where the Prometheus endpoint listens (`metrics: (address: "127.0.0.1:9110")`); loopback only,
    /// because the counters are for the operator's scraper, not the world. Bound at start-up (a reload
    /// does not move it). Default: no endpoint.
    pub metrics: Option<SocketAddr>,
    /// The user to switch to after binding the listeners when started as root.
    pub user: Option<String>,
    /// The group to switch to (default: the user's primary group).
    pub group: Option<String>,
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: 0,
            column: 0,
            message: format!("cannot read config: {e}"),
        })?;
        Config::parse(path, &text)
    }

    /// Parses and validates config text (`path` is for messages).
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig<'_> = poppet_sdk::config::ron_options()
            .from_str(text)
            .map_err(|e| ConfigError {
                file: path.to_owned(),
                line: e.span.start.line,
                column: e.span.start.col,
                message: e.code.to_string(),
            })?;
        Validator { path, text }.validate(raw)
    }
}

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn error(&self, at: (usize, usize), message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.to_owned(),
            line: at.0,
            column: at.1,
            message: message.into(),
        }
    }

    fn value<T: serde::de::DeserializeOwned>(
        &self,
        v: &Located<'_>,
        what: &str,
    ) -> Result<T, ConfigError> {
        v.parse()
            .map_err(|e| self.error(v.at(self.text), format!("{what}: {e}")))
    }

    fn duration(
        &self,
        v: &Option<Located<'_>>,
        key: &str,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        let s: String = self.value(v, key)?;
        parse_duration(&s).map_err(|e| self.error(v.at(self.text), format!("{key}: {e}")))
    }

    fn network(&self, v: &Located<'_>, key: &str) -> Result<ipnet::IpNet, ConfigError> {
        let s: String = self.value(v, key)?;
        s.parse::<ipnet::IpNet>()
            .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map_err(|_| {
                self.error(v.at(self.text), format!("{key}: expected an address or CIDR network such as \"192.0.2.0/24\", found {s:?}"))
            })
    }

    fn validate(&self, raw: RawConfig<'_>) -> Result<Config, ConfigError> {
        let mut listeners = Vec::new();
        for l in &raw.listeners {
            let s: String = self.value(&l.address, "address")?;
            let address = s.parse().map_err(|_| {
                self.error(l.address.at(self.text), format!("address: expected \"ip:port\" such as \"127.0.0.1:11110\" or \"[::1]:11110\", found {s:?}"))
            })?;
            let tls = l.tls.unwrap_or(if raw.tls.is_some() {
                TlsMode::Starttls
            } else {
                TlsMode::None
            });
            if tls != TlsMode::None && raw.tls.is_none() {
                return Err(self.error(
                    l.address.at(self.text),
                    "listener uses TLS but the config has no `tls: (cert: ..., key: ...)` section",
                ));
            }
            let plaintext_auth = l.plaintext_auth.unwrap_or(PlaintextAuth::Loopback);
            let proxy_protocol = match &l.proxy_protocol {
                None => None,
                Some(nets) => Some(
                    nets.iter()
                        .map(|n| self.network(n, "proxy_protocol"))
                        .collect::<Result<_, _>>()?,
                ),
            };
            listeners.push(Listener {
                address,
                tls,
                plaintext_auth,
                proxy_protocol,
            });
        }
        if listeners.is_empty() {
            return Err(self.error(
                (1, 1),
                "listeners: expected at least one listener, e.g. [(address: \"127.0.0.1:11110\")]",
            ));
        }

        let mut plugins: Vec<PluginSpec> = Vec::new();
        for p in &raw.plugins {
            let library: String = self.value(&p.library, "library")?;
            let name: String = self.value(&p.name, "name")?;
            let at = p.name.at(self.text);
            if plugins.iter().any(|q| q.kind == p.kind && q.name == name) {
                return Err(self.error(
                    at,
                    format!("plugins: a second {} plugin named `{name}`", p.kind.name()),
                ));
            }
            let (settings, settings_at) = match &p.settings {
                Some(s) => (s.text().to_owned(), s.at(self.text)),
                None => ("()".to_owned(), at),
            };
            plugins.push(PluginSpec {
                library,
                kind: p.kind,
                name,
                settings,
                settings_at,
                library_at: p.library.at(self.text),
            });
        }

        let pick = |v: &Located<'_>, kind: PluginKind, key: &str| -> Result<String, ConfigError> {
            let name: String = self.value(v, key)?;
            if plugins.iter().any(|p| p.kind == kind && p.name == name) {
                return Ok(name);
            }
            let known: Vec<&str> = plugins
                .iter()
                .filter(|p| p.kind == kind)
                .map(|p| p.name.as_str())
                .collect();
            Err(self.error(
                v.at(self.text),
                format!(
                    "{key}: no {} plugin named `{name}` in `plugins` (expected one of: {})",
                    kind.name(),
                    if known.is_empty() {
                        "none defined".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            ))
        };
        let auth = pick(&raw.auth, PluginKind::Auth, "auth")?;
        let store = pick(&raw.store, PluginKind::Store, "store")?;
        let extensions = raw
            .extensions
            .iter()
            .map(|e| pick(e, PluginKind::Extension, "extensions"))
            .collect::<Result<_, _>>()?;

        let defaults = Limits::default();
        let l = &raw.limits;
        let limits = Limits {
            idle_timeout: self.duration(&l.idle_timeout, "idle_timeout", defaults.idle_timeout)?,
            max_connections: l.max_connections.unwrap_or(defaults.max_connections),
            max_connections_per_ip: l
                .max_connections_per_ip
                .unwrap_or(defaults.max_connections_per_ip),
            shutdown_grace: self.duration(
                &l.shutdown_grace,
                "shutdown_grace",
                defaults.shutdown_grace,
            )?,
            max_bad_commands: l.max_bad_commands.unwrap_or(defaults.max_bad_commands),
            max_bad_commands_before_login: l
                .max_bad_commands_before_login
                .unwrap_or(defaults.max_bad_commands_before_login),
            login_timeout: self.duration(
                &l.login_timeout,
                "login_timeout",
                defaults.login_timeout,
            )?,
            auth_failure_delay: self.duration(
                &l.auth_failure_delay,
                "auth_failure_delay",
                defaults.auth_failure_delay,
            )?,
            auth_penalty_max: self.duration(
                &l.auth_penalty_max,
                "auth_penalty_max",
                defaults.auth_penalty_max,
            )?,
            plugin_timeout: self.duration(
                &l.plugin_timeout,
                "plugin_timeout",
                defaults.plugin_timeout,
            )?,
            tcp_keepalive: self.duration(
                &l.tcp_keepalive,
                "tcp_keepalive",
                defaults.tcp_keepalive,
            )?,
            max_connections_per_user: l
                .max_connections_per_user
                .unwrap_or(defaults.max_connections_per_user),
            max_auth_failures: l.max_auth_failures.unwrap_or(defaults.max_auth_failures),
            trusted_networks: match &l.trusted_networks {
                None => defaults.trusted_networks,
                Some(nets) => nets
                    .iter()
                    .map(|n| self.network(n, "trusted_networks"))
                    .collect::<Result<_, _>>()?,
            },
        };
        for (key, value) in [
            ("max_connections", limits.max_connections),
            ("max_connections_per_ip", limits.max_connections_per_ip),
            ("max_connections_per_user", limits.max_connections_per_user),
            ("max_auth_failures", limits.max_auth_failures),
        ] {
            if value == 0 {
                return Err(self.error(
                    (1, 1),
                    format!("limits: {key} must be at least 1 (0 would refuse everyone)"),
                ));
            }
        }
        if limits.login_timeout.is_zero() {
            let at = l.login_timeout.as_ref().map_or((1, 1), |v| v.at(self.text));
            return Err(self.error(
                at,
                "login_timeout: must be at least 1s (it also bounds TLS handshakes)",
            ));
        }
        if limits.plugin_timeout.is_zero() {
            let at = l
                .plugin_timeout
                .as_ref()
                .map_or((1, 1), |v| v.at(self.text));
            return Err(self.error(at, "plugin_timeout: must be at least 1s"));
        }
        let keepalive = limits.tcp_keepalive;
        if !keepalive.is_zero()
            && (keepalive.subsec_nanos() != 0
                || keepalive < KEEPALIVE_MIN
                || keepalive > KEEPALIVE_MAX)
        {
            let at = l.tcp_keepalive.as_ref().map_or((1, 1), |v| v.at(self.text));
            return Err(self.error(
                at,
                "tcp_keepalive: must be \"0s\" (off) or whole seconds from \"4s\" to \"9h\"",
            ));
        }
        if limits.idle_timeout < Duration::from_secs(600) {
            let at = l.idle_timeout.as_ref().map_or((1, 1), |v| v.at(self.text));
            return Err(self.error(
                at,
                "idle_timeout: RFC 1939 §3 requires the autologout timer to be at least 10 minutes (\"10m\")",
            ));
        }

        let metrics = match &raw.metrics {
            None => None,
            Some(m) => {
                let text: String = self.value(&m.address, "metrics.address")?;
                let addr: SocketAddr = text.parse().map_err(|_| {
                    self.error(
                        m.address.at(self.text),
                        format!("metrics.address: expected \"ip:port\", found {text:?}"),
                    )
                })?;
                if !addr.ip().is_loopback() {
                    return Err(self.error(
                        m.address.at(self.text),
                        "metrics.address: must be a loopback address",
                    ));
                }
                Some(addr)
            }
        };
        if let Some(g) = &raw.greeting {
            if g.chars().any(char::is_control) {
                return Err(self.error(
                    (1, 1),
                    "greeting: must be one line without control characters",
                ));
            }
        }
        Ok(Config {
            path: self.path.to_owned(),
            listeners,
            plugin_dir: raw.plugin_dir.map(PathBuf::from),
            plugins,
            auth,
            store,
            extensions,
            limits,
            apop: raw.apop,
            greeting: raw.greeting.unwrap_or_else(|| "Poppet ready.".to_owned()),
            log_level: raw.logging.level.unwrap_or_else(|| "info".to_owned()),
            tls: raw.tls.map(|t| TlsFiles {
                cert: PathBuf::from(t.cert),
                key: PathBuf::from(t.key),
                generate_self_signed: t.generate_self_signed,
            }),
            metrics,
            user: raw.user,
            group: raw.group,
        })
    }
}

#[cfg(test)]
mod tests;
