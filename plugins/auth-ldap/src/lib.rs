//! # poppet-auth-ldap
//!
//! An auth backend that checks logins against an LDAP directory (OpenLDAP, 389-ds, Active
//! Directory), the way Dovecot's LDAP passdb does. It is also meant as the example to copy when
//! writing a backend for another network service, so each concern has its own module:
//!
//! - [`settings`]: what the administrator writes, validated at start with the key and position of
//!   any mistake. Every default is documented with its reason.
//! - [`template`]: `%u`/`%n`/`%d` in filters and DN templates, escaped per RFC 4515 / RFC 4514 so
//!   a login name cannot change the filter (`*)(uid=*` finds nobody).
//! - [`pool`]: bounded connections that heal after the directory restarts; TLS (StartTLS or
//!   `ldaps://`, a CA file, verification on by default).
//! - [`directory`]: the operations, per mode (`bind`, `hash`), and the line between
//!   "wrong password" (reject) and "directory in trouble" (`[SYS/TEMP]`, logged with the LDAP
//!   result code).
//! - [`account`]: attributes to mailbox, LOGIN-DELAY and EXPIRE.
//! - [`cache`]: optional result cache, off by default.
//!
//! **Async.** ldap3 is built on tokio, the server on smol. The plugin owns a small tokio runtime
//! ([`poppet_sdk::runtime::Runtime`]) and runs every directory conversation on it; the host polls
//! only the join handle. A slow directory therefore occupies the plugin's threads at most until
//! its timeouts fire, and never the server's: other sessions, and other backends, carry on.

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod account;
pub mod cache;
pub mod directory;
pub mod pool;
pub mod settings;
pub mod template;

use crate::cache::Cache;
use crate::directory::{Checked, Directory, Failure};
use crate::pool::Pool;
use crate::settings::{Mode, Settings};
use poppet_password::{PasswordHash, plaintext_equivalent, scram_keys};
use poppet_sdk::runtime::Runtime;
use poppet_sdk::{
    AuthBackend, AuthCapabilities, AuthOutcome, AuthRequest, PluginError, ScramKeys, Secret,
    StoredSecret,
};
use std::sync::Arc;
use std::time::Instant;

/// What the client is told when the directory cannot answer; the log has the details.
const TEMP_FAIL: &str = "the user directory is not available, try again later";

/// The LDAP auth backend.
#[derive(Debug)]
pub struct Ldap {
    directory: Arc<Directory>,
    cache: Option<Arc<Cache>>,
    capabilities: AuthCapabilities,
    /// Declared last so it is dropped last: pending tasks still hold the directory.
    runtime: Runtime,
}

impl Ldap {
    /// Creates the backend from its settings text. Checks the settings (and reads `ca_file` and
    /// `bind_password_file`) but does not connect: a directory that is down at start is a
    /// temporary problem, reported at each login until it is back.
    pub fn from_settings(text: &str) -> Result<Ldap, PluginError> {
        Self::new(Settings::parse(text)?)
    }

    /// Creates the backend from validated settings.
    pub fn new(settings: Settings) -> Result<Ldap, PluginError> {
        let conn_settings = pool::conn_settings(&settings)?;
        let lookups = Pool::new(
            &settings,
            conn_settings.clone(),
            settings.service.clone(),
            settings.pool_size,
        );
        let binds = (settings.mode == Mode::Bind)
            .then(|| Pool::new(&settings, conn_settings, None, settings.pool_size));
        if !settings.tls() && !settings.endpoint.loopback && settings.mode != Mode::Hash {
            log::warn!(
                "{}: neither ldaps:// nor StartTLS: every password crosses the network in clear",
                settings.endpoint.url
            );
        }
        let capabilities = AuthCapabilities {
            plaintext_secrets: settings.apop,
            // Keys are stored for `{SCRAM-SHA-256}` values and derived for `{PLAIN}` ones.
            scram_sha256: settings.scram || settings.apop,
        };
        let cache = settings.cache.map(|c| Arc::new(Cache::new(c)));
        log::info!(
            "{}: mode {:?}, base {:?}, {} connections at most",
            settings.endpoint.url,
            settings.mode,
            settings.base_dn,
            settings.pool_size
        );
        Ok(Ldap {
            directory: Arc::new(Directory::new(settings, lookups, binds)),
            cache,
            capabilities,
            runtime: Runtime::new("auth-ldap")?,
        })
    }
}

impl AuthBackend for Ldap {
    async fn authenticate(&self, request: AuthRequest) -> Result<AuthOutcome, PluginError> {
        let user = request.user.clone();
        let password = request.password.expose().clone();
        // A directory has no notion of one user acting as another that this plugin could check
        // (proxy authorization is a different mechanism), so an authzid other than the user
        // itself is refused, as in the passwd-file plugin.
        if let Some(authzid) = request.authzid.as_deref().filter(|a| !a.is_empty())
            && authzid != user
        {
            log::info!(
                "user {user:?} asked to act as {authzid:?}, which this backend cannot allow"
            );
            return Ok(AuthOutcome::Reject);
        }
        // RFC 4513 §5.1.2: a simple bind with a DN and an *empty* password is an unauthenticated
        // bind, which servers answer with success. Without this check, `mode: bind` would let
        // anyone in with an empty password. No mode accepts one.
        if !request.verified && password.is_empty() {
            return Ok(AuthOutcome::Reject);
        }
        if let Some(cache) = &self.cache
            && let Some(outcome) = cache.get(&user, &password, request.verified, Instant::now())
        {
            return Ok(outcome);
        }
        let directory = Arc::clone(&self.directory);
        let (task_user, verified) = (user.clone(), request.verified);
        let task_password = password.clone();
        let result = self
            .runtime
            .spawn(async move { decide(&directory, &task_user, &task_password, verified).await })
            .await?;
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(failure) => {
                log::warn!("login of {user:?}: {failure}");
                AuthOutcome::TempFail(TEMP_FAIL.to_owned())
            }
        };
        if let Some(cache) = &self.cache {
            cache.put(&user, &password, request.verified, &outcome, Instant::now());
        }
        Ok(outcome)
    }

    async fn lookup_secret(&self, user: String) -> Result<Option<StoredSecret>, PluginError> {
        if !(self.capabilities.plaintext_secrets || self.capabilities.scram_sha256) {
            return Ok(None);
        }
        let directory = Arc::clone(&self.directory);
        let task_user = user.clone();
        let found = self
            .runtime
            .spawn(async move { directory.find(&task_user).await })
            .await?;
        let entry = match found {
            Ok(Some(entry)) => entry,
            Ok(None) => return Ok(None),
            Err(failure) => {
                log::warn!("secret of {user:?}: {failure}");
                return Err(PluginError::temporary(TEMP_FAIL));
            }
        };
        let attribute = &self.directory.settings().password_attribute;
        Ok(entry
            .values(attribute)
            .iter()
            .filter_map(|value| PasswordHash::parse(value).ok())
            .find_map(|hash| stored_secret(&hash, self.capabilities)))
    }

    /// From the settings: a directory can hold any scheme for any user, so `apop` and `scram`
    /// say what the administrator knows the directory stores.
    fn capabilities(&self) -> AuthCapabilities {
        self.capabilities
    }
}

/// One login, on the plugin's runtime.
async fn decide(
    directory: &Directory,
    user: &str,
    password: &str,
    verified: bool,
) -> Result<AuthOutcome, Failure> {
    let attributes = &directory.settings().attributes;
    // `verified`: the core already checked a SCRAM proof against the secret `lookup_secret`
    // gave, so the account is only looked up (it may have been removed since).
    let entry = if verified {
        directory.find(user).await?
    } else {
        match directory.check(user, password).await? {
            Checked::Accept(entry) => Some(entry),
            Checked::Reject => None,
        }
    };
    Ok(match entry {
        Some(entry) => AuthOutcome::Accept(account::accepted(&entry, attributes)),
        None => AuthOutcome::Reject,
    })
}

/// What a stored password can serve, within what the settings offer.
fn stored_secret(hash: &PasswordHash, offered: AuthCapabilities) -> Option<StoredSecret> {
    if let Some(bytes) = plaintext_equivalent(hash).filter(|_| offered.plaintext_secrets) {
        return String::from_utf8(bytes.to_vec())
            .ok()
            .map(|password| StoredSecret::Plaintext(Secret::new(password)));
    }
    let keys = scram_keys(hash).filter(|_| offered.scram_sha256)?;
    Some(StoredSecret::ScramSha256(ScramKeys {
        iterations: keys.iterations,
        salt: keys.salt,
        stored_key: keys.stored_key,
        server_key: keys.server_key,
    }))
}

poppet_sdk::export_plugin! {
    name: "auth-ldap",
    version: env!("CARGO_PKG_VERSION"),
    factories: [ auth "ldap" => Ldap::from_settings ],
}
