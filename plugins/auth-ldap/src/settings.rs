//! The plugin's settings: what serde reads ([`RawSettings`]) and what the plugin runs on
//! ([`Settings`]), with every default and the reason for it beside the field.
//!
//! Everything that can be wrong without talking to the directory is checked here, when the server
//! starts (and by `poppet check`): the URL, the base DN, the templates, the timeouts, which
//! combinations of mode and options make sense. An error names the key and, where it can be
//! found in the text, its line and column. Whether the directory is reachable is *not* checked:
//! a server that refuses to start because LDAP is down for a minute would turn a short outage
//! into a long one; logins answer `[SYS/TEMP]` until it is back.
//!
//! The example in `examples/ldap/poppet.ron` is loaded by the end-to-end test, so it stays valid.

use crate::template::{Context, Template};
use poppet_sdk::config::parse_duration;
use poppet_sdk::{PluginError, Position, Secret};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long to wait for a TCP connection and TLS handshake (StartTLS included). A directory on
/// the local network answers in milliseconds; one that has not answered in 3 s is down or
/// overloaded, and the POP3 client waiting for `+OK` should hear `[SYS/TEMP]` well before its own
/// timeout (commonly 30-60 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a bind may take: a slow password hash on the server (`{ARGON2}`, high-cost `{CRYPT}`)
/// takes tens of milliseconds, so 5 s only trips on a directory in trouble.
pub const DEFAULT_BIND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a search may take (between two answers of a search): an indexed equality
/// search is fast; 5 s for the same reason as [`DEFAULT_BIND_TIMEOUT`].
pub const DEFAULT_SEARCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The most connections to the directory at once. Each login holds one for a few milliseconds, so
/// 8 serve hundreds of logins a second, and a flood of logins queues here instead of opening
/// hundreds of connections to a directory that other services share.
pub const DEFAULT_POOL_SIZE: usize = 8;
/// Dovecot's `auth_cache_negative_ttl` is an hour, which suits a cache of user lookups; ours
/// caches password checks, so a wrong password is kept briefly (30 s): long enough to absorb a
/// client retrying in a loop, short enough that a password just fixed in the directory works.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Cached results at most: at ~200 bytes each, 10 000 is 2 MB.
pub const DEFAULT_CACHE_SIZE: usize = 10_000;
/// The filter when none is given: the login name is the `uid` attribute, as in RFC 2307 and
/// `inetOrgPerson` directories (and slapd's own examples).
pub const DEFAULT_USER_FILTER: &str = "(uid=%u)";

/// How passwords are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Find the user's DN, then bind as that DN with the password: the directory checks it, and
    /// the service account never needs to read passwords. Dovecot's `auth_bind = yes`; the
    /// default, because it works with every directory and every password scheme it supports.
    Bind,
    /// Find the user, read the password attribute and compare the password with it here, with
    /// the same scheme code as the passwd-file plugin (`{SSHA}`, `{CRYPT}`, `{ARGON2ID}`, ...).
    /// The service account needs `read` access to the attribute. The only mode that can serve
    /// APOP and SCRAM-SHA-256 (`apop`, `scram`), since it alone sees the stored secret.
    ///
    /// (An LDAP Compare operation is no substitute: OpenLDAP compares the stored value as
    /// octets, so it never matches a hashed `userPassword`.)
    Hash,
}

/// RFC 4511 search scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The base DN only.
    Base,
    /// Entries directly below the base DN.
    One,
    /// The base DN and everything below it (the default).
    Subtree,
}

/// Which attributes of the user's entry become part of the login.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// The mailbox location, as the store takes it (an absolute maildir path, `maildir:...`),
    /// e.g. `mailMessageStore`.
    pub mailbox: Option<String>,
    /// A home directory, e.g. `homeDirectory`: the mailbox is `<home>/Maildir`, as Dovecot's
    /// `mail_location = maildir:~/Maildir`. Used when `mailbox` is unset or the entry lacks it.
    pub home: Option<String>,
    /// RFC 2449 LOGIN-DELAY for this user, in seconds.
    pub login_delay: Option<String>,
    /// RFC 2449 EXPIRE for this user: days, or `NEVER`.
    pub expire: Option<String>,
}

/// The optional result cache as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// How long a successful check is remembered, like `"5m"`.
    pub ttl: String,
    /// How long a failed check is remembered; default [`DEFAULT_NEGATIVE_TTL`], never longer than
    /// `ttl`.
    pub negative_ttl: Option<String>,
    /// The most results kept; default [`DEFAULT_CACHE_SIZE`].
    pub size: Option<usize>,
}

/// The settings as written in the server's RON file. See the book chapter for a walk-through.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// `ldap://host[:port]` or `ldaps://host[:port]` (implicit TLS, port 636 by default).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (RFC 4513 §3) before anything else is sent.
    /// Default false. Without TLS, `mode: bind` sends every user's password in clear to the
    /// directory (and `mode: hash` the stored hashes back), which the plugin logs as a warning at
    /// start unless the host is loopback.
    pub starttls: Option<bool>,
    /// PEM file with the CA certificates that sign the directory's certificate. Default: the
    /// system's trust store.
    pub ca_file: Option<String>,
    /// Check the directory's certificate and host name. Default true; turning it off lets anyone
    /// on the path read the passwords, and is logged as a warning at start.
    pub tls_verify: Option<bool>,
    /// Service account for searches; anonymous when unset (slapd allows anonymous search by
    /// default, many directories do not).
    pub bind_dn: Option<String>,
    /// The service account's password.
    pub bind_password: Option<String>,
    /// A file holding the service account's password (one line), so the config file itself need
    /// not be secret. Wins over `bind_password`.
    pub bind_password_file: Option<String>,
    /// Where user entries are searched. Required unless `user_dn` names the entry directly.
    pub base_dn: Option<String>,
    /// Search scope; default `subtree`.
    pub scope: Option<Scope>,
    /// The filter that finds a user's entry; default [`DEFAULT_USER_FILTER`].
    pub user_filter: Option<String>,
    /// A DN template (`uid=%u,ou=people,dc=example,dc=org`) that names the user's entry without a
    /// search. Saves a round trip per login where every user sits in one branch.
    pub user_dn: Option<String>,
    /// How passwords are checked; default `bind`.
    pub mode: Option<Mode>,
    /// The attribute `mode: hash` reads; default `userPassword`.
    pub password_attribute: Option<String>,
    /// Attributes mapped to the login.
    pub attributes: Option<Attributes>,
    /// Offer APOP (needs `{PLAIN}` values in the password attribute; `hash` mode only).
    pub apop: Option<bool>,
    /// Offer SASL SCRAM-SHA-256 (needs `{SCRAM-SHA-256}` or `{PLAIN}` values; `hash` mode only).
    pub scram: Option<bool>,
    /// The most connections at once; default [`DEFAULT_POOL_SIZE`].
    pub pool_size: Option<usize>,
    /// Default [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Option<String>,
    /// Default [`DEFAULT_BIND_TIMEOUT`].
    pub bind_timeout: Option<String>,
    /// Default [`DEFAULT_SEARCH_TIMEOUT`].
    pub search_timeout: Option<String>,
    /// Cache check results; off by default, so a password changed or an account disabled in
    /// the directory takes effect at once.
    pub cache: Option<RawCache>,
}

/// Where the directory is and how to talk to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as ldap3 takes it.
    pub url: String,
    /// `ldaps://`.
    pub implicit_tls: bool,
    /// Whether the host is a loopback address or `localhost`.
    pub loopback: bool,
}

/// The validated cache settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    /// See [`RawCache::ttl`].
    pub ttl: Duration,
    /// See [`RawCache::negative_ttl`].
    pub negative_ttl: Duration,
    /// See [`RawCache::size`].
    pub size: usize,
}

/// The service account's DN and password.
pub type ServiceAccount = (String, Secret<String>);

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// See [`RawSettings::url`].
    pub endpoint: Endpoint,
    /// See [`RawSettings::starttls`].
    pub starttls: bool,
    /// See [`RawSettings::ca_file`].
    pub ca_file: Option<PathBuf>,
    /// See [`RawSettings::tls_verify`].
    pub tls_verify: bool,
    /// The service account; `None` for anonymous searches.
    pub service: Option<ServiceAccount>,
    /// See [`RawSettings::base_dn`].
    pub base_dn: String,
    /// See [`RawSettings::scope`].
    pub scope: Scope,
    /// See [`RawSettings::user_filter`].
    pub user_filter: Template,
    /// See [`RawSettings::user_dn`].
    pub user_dn: Option<Template>,
    /// See [`RawSettings::mode`].
    pub mode: Mode,
    /// See [`RawSettings::password_attribute`].
    pub password_attribute: String,
    /// See [`RawSettings::attributes`].
    pub attributes: Attributes,
    /// See [`RawSettings::apop`].
    pub apop: bool,
    /// See [`RawSettings::scram`].
    pub scram: bool,
    /// See [`RawSettings::pool_size`].
    pub pool_size: usize,
    /// See [`RawSettings::connect_timeout`].
    pub connect_timeout: Duration,
    /// See [`RawSettings::bind_timeout`].
    pub bind_timeout: Duration,
    /// See [`RawSettings::search_timeout`].
    pub search_timeout: Duration,
    /// See [`RawSettings::cache`].
    pub cache: Option<CacheSettings>,
}

impl Settings {
    /// Parses and validates the settings text. Errors carry the position of the offending key,
    /// or of the start of the settings when the key is missing.
    pub fn parse(text: &str) -> Result<Settings, PluginError> {
        let raw: RawSettings = poppet_sdk::config::parse(text)?;
        Settings::validate(raw).map_err(|(key, message)| {
            let mut err = PluginError::config(format!("`{key}`: {message}"));
            err.position = key_position(text, key).or(Some(Position { line: 1, column: 1 }));
            err
        })
    }

    /// Turns raw settings into validated ones; an error names the key at fault.
    pub fn validate(raw: RawSettings) -> Result<Settings, (&'static str, String)> {
        let endpoint = parse_url(&raw.url).map_err(|e| ("url", e))?;
        let starttls = raw.starttls.unwrap_or(false);
        if starttls && endpoint.implicit_tls {
            return Err((
                "starttls",
                "ldaps:// is already TLS; use ldap:// with StartTLS".into(),
            ));
        }
        let mode = raw.mode.unwrap_or(Mode::Bind);
        let user_dn = raw
            .user_dn
            .as_deref()
            .map(|t| Template::parse(t, Context::Dn))
            .transpose()
            .map_err(|e| ("user_dn", e))?;
        if user_dn.as_ref().is_some_and(|t| !t.mentions_user()) {
            return Err(("user_dn", "must contain %u, %n or %d".into()));
        }
        let base_dn = match (raw.base_dn, &user_dn) {
            (Some(base), _) if !base.trim().is_empty() => base,
            (Some(_), _) => return Err(("base_dn", "must not be empty".into())),
            // With a DN template the entry is read directly; the base is only for searching.
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err((
                    "base_dn",
                    "missing: where should users be searched? (or give a `user_dn` template)"
                        .into(),
                ));
            }
        };
        let user_filter = Template::parse(
            raw.user_filter.as_deref().unwrap_or(DEFAULT_USER_FILTER),
            Context::Filter,
        )
        .map_err(|e| ("user_filter", e))?;
        if !user_filter.mentions_user() {
            return Err((
                "user_filter",
                "must contain %u, %n or %d, or every login would find the same entries".into(),
            ));
        }
        let service = service_account(raw.bind_dn, raw.bind_password, raw.bind_password_file)?;
        let apop = raw.apop.unwrap_or(false);
        let scram = raw.scram.unwrap_or(false);
        if mode != Mode::Hash && (apop || scram) {
            let key = if apop { "apop" } else { "scram" };
            return Err((
                key,
                "needs `mode: hash`: only then does the plugin see the stored secret".into(),
            ));
        }
        let pool_size = raw.pool_size.unwrap_or(DEFAULT_POOL_SIZE);
        if pool_size == 0 {
            return Err(("pool_size", "must be at least 1".into()));
        }
        let timeout = |key: &'static str, text: &Option<String>, default| match text {
            Some(text) => match parse_duration(text) {
                Ok(d) if d.is_zero() => Err((key, "must be more than zero".to_owned())),
                Ok(d) => Ok(d),
                Err(e) => Err((key, e)),
            },
            None => Ok(default),
        };
        let settings = Settings {
            starttls,
            ca_file: raw.ca_file.map(PathBuf::from),
            tls_verify: raw.tls_verify.unwrap_or(true),
            service,
            base_dn,
            scope: raw.scope.unwrap_or(Scope::Subtree),
            user_filter,
            user_dn,
            mode,
            password_attribute: raw
                .password_attribute
                .unwrap_or_else(|| "userPassword".to_owned()),
            attributes: raw.attributes.unwrap_or_default(),
            apop,
            scram,
            pool_size,
            connect_timeout: timeout(
                "connect_timeout",
                &raw.connect_timeout,
                DEFAULT_CONNECT_TIMEOUT,
            )?,
            bind_timeout: timeout("bind_timeout", &raw.bind_timeout, DEFAULT_BIND_TIMEOUT)?,
            search_timeout: timeout(
                "search_timeout",
                &raw.search_timeout,
                DEFAULT_SEARCH_TIMEOUT,
            )?,
            cache: raw.cache.map(cache_settings).transpose()?,
            endpoint,
        };
        if settings.ca_file.is_some() && !settings.endpoint.implicit_tls && !settings.starttls {
            return Err((
                "ca_file",
                "is only used with ldaps:// or `starttls: true`".into(),
            ));
        }
        Ok(settings)
    }

    /// Whether connections are encrypted.
    pub fn tls(&self) -> bool {
        self.endpoint.implicit_tls || self.starttls
    }
}

fn service_account(
    dn: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
) -> Result<Option<ServiceAccount>, (&'static str, String)> {
    let password = match password_file {
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| ("bind_password_file", format!("cannot read {path}: {e}")))?;
            Some(text.trim_end_matches(['\r', '\n']).to_owned())
        }
        None => password,
    };
    match (dn, password) {
        (Some(dn), Some(password)) if !password.is_empty() => Ok(Some((dn, Secret::new(password)))),
        // RFC 4513 §5.1.2: a bind with a DN and an empty password is an *unauthenticated* bind,
        // which succeeds as anonymous. Refuse it rather than search anonymously by surprise.
        (Some(_), _) => Err((
            "bind_dn",
            "needs a non-empty `bind_password` or `bind_password_file`".into(),
        )),
        (None, Some(_)) => Err((
            "bind_password",
            "is set but `bind_dn` is not (an anonymous search needs neither)".into(),
        )),
        (None, None) => Ok(None),
    }
}

fn cache_settings(raw: RawCache) -> Result<CacheSettings, (&'static str, String)> {
    let ttl = parse_duration(&raw.ttl).map_err(|e| ("ttl", e))?;
    let negative_ttl = match &raw.negative_ttl {
        Some(text) => parse_duration(text).map_err(|e| ("negative_ttl", e))?,
        None => DEFAULT_NEGATIVE_TTL.min(ttl),
    };
    if negative_ttl > ttl {
        return Err((
            "negative_ttl",
            "is longer than `ttl`: a failed check would outlive a successful one".into(),
        ));
    }
    Ok(CacheSettings {
        ttl,
        negative_ttl,
        size: raw.size.unwrap_or(DEFAULT_CACHE_SIZE).max(1),
    })
}

/// Checks an LDAP URL: `ldap://` or `ldaps://`, a host, an optional port, nothing after the path
/// `/`. An RFC 4516 URL's DN, attributes and filter parts would compete with `base_dn` and
/// `user_filter`, so they are refused rather than silently ignored.
pub fn parse_url(url: &str) -> Result<Endpoint, String> {
    let (implicit_tls, rest) = if let Some(rest) = url.strip_prefix("ldap://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("ldaps://") {
        (true, rest)
    } else {
        return Err(format!(
            "{url:?} is not an ldap:// or ldaps:// URL (for StartTLS use ldap:// and `starttls: true`)"
        ));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(format!(
            "{url:?}: only scheme, host and port are allowed; put the DN in `base_dn` and the filter in `user_filter`"
        ));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{url:?}: unclosed [ in the host"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| format!("{url:?}: expected :port after ]"))?,
                ),
            };
            (host, port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p != 0)
    {
        return Err(format!(
            "{url:?}: port {port:?} is not a number from 1 to 65535"
        ));
    }
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Ok(Endpoint {
        url: format!(
            "{}://{authority}",
            if implicit_tls { "ldaps" } else { "ldap" }
        ),
        implicit_tls,
        loopback,
    })
}

/// Where `key` is written in `text`, as `key:` at the start of a word. The RON parser only
/// reports positions for syntax errors; this finds the key a validation error is about, so the
/// host can say "poppet.ron line 12" for a bad URL too. Nested keys (`ttl` inside `cache`) are
/// found the same way, since no two keys here share a name.
pub fn key_position(text: &str, key: &str) -> Option<Position> {
    for (line_idx, line) in text.lines().enumerate() {
        let mut from = 0;
        while let Some(found) = line[from..].find(key) {
            let start = from + found;
            let end = start + key.len();
            let word_start = !line[..start]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
            if word_start && line[end..].trim_start().starts_with(':') {
                return Some(Position {
                    line: u32::try_from(line_idx + 1).ok()?,
                    column: u32::try_from(line[..start].chars().count() + 1).ok()?,
                });
            }
            from = end;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"(url: "ldap://127.0.0.1:3389", base_dn: "dc=example,dc=org")"#;

    #[test]
    fn defaults() {
        let s = Settings::parse(MINIMAL).unwrap();
        assert_eq!(s.mode, Mode::Bind);
        assert_eq!(s.scope, Scope::Subtree);
        assert!(s.tls_verify && !s.starttls && !s.tls() && s.endpoint.loopback);
        assert!(s.service.is_none() && s.cache.is_none());
        assert_eq!(s.password_attribute, "userPassword");
        assert_eq!(s.user_filter.expand("a"), "(uid=a)");
        assert_eq!(
            (
                s.pool_size,
                s.connect_timeout,
                s.bind_timeout,
                s.search_timeout
            ),
            (
                DEFAULT_POOL_SIZE,
                DEFAULT_CONNECT_TIMEOUT,
                DEFAULT_BIND_TIMEOUT,
                DEFAULT_SEARCH_TIMEOUT
            )
        );
    }

    #[test]
    fn urls() {
        let ok = |url: &str, tls: bool, loopback: bool, normal: &str| {
            let e = parse_url(url).unwrap();
            assert_eq!(
                (e.implicit_tls, e.loopback, e.url.as_str()),
                (tls, loopback, normal)
            );
        };
        ok("ldap://localhost", false, true, "ldap://localhost");
        ok(
            "ldaps://ldap.example.org:1636/",
            true,
            false,
            "ldaps://ldap.example.org:1636",
        );
        ok("ldap://[::1]:389", false, true, "ldap://[::1]:389");
        for bad in [
            "ldapi:///run/slapd.sock",
            "http://x",
            "ldap://",
            "ldap://host:0",
            "ldap://host:99999",
            "ldap://host:port",
            "ldap://host/dc=example,dc=org",
            "ldap://host/??sub?(uid=x)",
            "ldap://[::1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    /// Config errors name the key and point at it, as the issue asks for a bad URL and a missing
    /// base DN.
    #[test]
    fn errors_carry_key_and_position() {
        let text = "(\n    url: \"ldap:/oops\",\n    base_dn: \"dc=x\",\n)";
        let err = Settings::parse(text).unwrap_err();
        assert!(err.message.starts_with("`url`:"), "{}", err.message);
        assert_eq!(err.position, Some(Position { line: 2, column: 5 }));

        let err = Settings::parse("(\n  url: \"ldap://h\",\n)").unwrap_err();
        assert!(
            err.message.starts_with("`base_dn`: missing"),
            "{}",
            err.message
        );
        assert_eq!(err.position, Some(Position { line: 1, column: 1 }));

        // A syntax error gets its position from the RON parser.
        let err = Settings::parse("(url: \"ldap://h\", base_dn: \"x\", colour: 1)").unwrap_err();
        assert!(err.position.is_some(), "{err:?}");
    }

    #[test]
    fn combinations_that_make_no_sense_are_refused() {
        for (more, key) in [
            ("starttls: true, url: \"ldaps://h\"", "starttls"),
            ("url: \"ldap://h\", apop: true", "apop"),
            ("url: \"ldap://h\", mode: bind, scram: true", "scram"),
            ("url: \"ldap://h\", bind_dn: \"cn=svc\"", "bind_dn"),
            ("url: \"ldap://h\", bind_password: \"x\"", "bind_password"),
            (
                "url: \"ldap://h\", user_filter: \"(objectClass=*)\"",
                "user_filter",
            ),
            ("url: \"ldap://h\", pool_size: 0", "pool_size"),
            (
                "url: \"ldap://h\", search_timeout: \"0s\"",
                "search_timeout",
            ),
            ("url: \"ldap://h\", ca_file: \"/x.pem\"", "ca_file"),
            (
                "url: \"ldap://h\", cache: (ttl: \"1m\", negative_ttl: \"2m\")",
                "negative_ttl",
            ),
        ] {
            let text = format!("(base_dn: \"dc=x\", {more})");
            let err = Settings::parse(&text).unwrap_err();
            assert!(
                err.message.starts_with(&format!("`{key}`")),
                "{more}: {}",
                err.message
            );
            assert!(err.position.is_some(), "{more}");
        }
    }

    #[test]
    fn dn_template_needs_no_base() {
        let s = Settings::parse(
            r#"(url: "ldap://h", user_dn: "uid=%u,ou=people,dc=x", cache: (ttl: "10s"))"#,
        )
        .unwrap();
        assert_eq!(
            s.user_dn.unwrap().expand("a,b"),
            "uid=a\\2cb,ou=people,dc=x"
        );
        assert_eq!(
            s.cache,
            Some(CacheSettings {
                ttl: Duration::from_secs(10),
                negative_ttl: Duration::from_secs(10),
                size: DEFAULT_CACHE_SIZE
            })
        );
    }

    #[test]
    fn key_positions() {
        let text = "(\n  base_dn: \"x\",\n  url: \"y\", user_dn: \"z\"\n)";
        assert_eq!(
            key_position(text, "url"),
            Some(Position { line: 3, column: 3 })
        );
        assert_eq!(
            key_position(text, "user_dn"),
            Some(Position {
                line: 3,
                column: 13
            })
        );
        // `dn` is not found inside `base_dn` or `user_dn`.
        assert_eq!(key_position(text, "dn"), None);
    }
}
