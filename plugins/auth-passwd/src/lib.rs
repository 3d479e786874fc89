//! # poppet-auth-passwd
//!
//! An auth backend that reads Dovecot's passwd-file
//! (`user:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields`), so a site moving from Dovecot can
//! point Poppet at the file it already has. The formats and schemes are `poppet-password`'s; this
//! crate adds what a running server needs around them:
//!
//! - **Settings** ([`settings`]): `file` (required), `mailbox_from_home`, `watch`,
//!   `check_interval`. A file that cannot be read when the backend is created is a config error,
//!   so a typo in the path stops `poppet check` instead of rejecting every login.
//! - **Users** ([`table`]): lines that cannot be used are logged with file and line number and
//!   skipped; the rest still log in. Extra fields give the mailbox (`userdb_mail`, else
//!   `<home>/Maildir`), a per-user LOGIN-DELAY and EXPIRE, and `nologin`.
//! - **Timing**: an unknown user's password is checked against a hash of the scheme most users
//!   have, and answers [`AuthOutcome::Reject`] like a wrong password, so login names cannot be
//!   probed. Hash checks cost milliseconds of CPU (SHA-crypt, bcrypt, Argon2), so they run on
//!   `blocking`'s thread pool, never on the executor that serves the other sessions.
//! - **Reload** ([`source`], [`watch`]): the file is re-read when it changes, with no restart; a
//!   file that cannot be read keeps the users loaded before.
//! - **APOP and SCRAM-SHA-256**: [`AuthBackend::lookup_secret`] offers the password for `{PLAIN}`
//!   entries (the one scheme from which it can be recovered; it serves APOP, and SCRAM by deriving
//!   keys) and the stored keys for `{SCRAM-SHA-256}` entries (SCRAM only), and nothing for other
//!   schemes, unknown users or `nologin` users. [`AuthBackend::capabilities`] follows the file as
//!   loaded now: `plaintext_secrets` when at least one user is `{PLAIN}`, `scram_sha256` when at
//!   least one is `{PLAIN}` or `{SCRAM-SHA-256}`, so the server advertises APOP and SCRAM only
//!   when someone could use them. USER/PASS and `AUTH PLAIN` work for every scheme, SCRAM keys
//!   included (the password is checked by deriving the keys with the stored salt).

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod settings;
pub mod source;
pub mod table;
pub mod watch;

#[cfg(test)]
mod tests;

use crate::settings::Settings;
use crate::source::Source;
use crate::watch::Watcher;
use poppet_password::{dummy_verify, dummy_verify_like, plaintext_equivalent, scram_keys, verify};
use poppet_sdk::{
    Accepted, AuthBackend, AuthCapabilities, AuthOutcome, AuthRequest, PluginError, ScramKeys,
    Secret, StoredSecret,
};
use std::fmt;
use std::sync::Arc;

/// The passwd-file auth backend.
pub struct PasswdFile {
    // Declared first so it is dropped first: the watch thread stops before the table goes.
    watcher: Option<Watcher>,
    source: Arc<Source>,
}

impl PasswdFile {
    /// Creates the backend from its settings text: reads the file and starts watching it.
    ///
    /// Fails with a [`poppet_sdk::ErrorCode::CONFIG`] error for bad settings (with the position)
    /// and for a file that cannot be read (naming the file). Failing to start the watcher is only
    /// a warning: logins still notice changes by `check_interval`.
    pub fn from_settings(text: &str) -> Result<PasswdFile, PluginError> {
        let settings = Settings::parse(text)?;
        Self::new(settings)
    }

    /// Creates the backend from validated settings.
    pub fn new(settings: Settings) -> Result<PasswdFile, PluginError> {
        let source = Source::open(
            settings.file.clone(),
            settings.mailbox_from_home,
            settings.check_interval,
        )
        .map_err(|err| {
            PluginError::config(format!(
                "`file`: cannot read passwd-file {}: {err}",
                settings.file.display()
            ))
        })?;
        let source = Arc::new(source);
        log::info!(
            "passwd-file {}: loaded, {} users",
            settings.file.display(),
            source.table().len()
        );
        let watcher = if settings.watch {
            match Watcher::start(Arc::clone(&source)) {
                Ok(watcher) => Some(watcher),
                Err(err) => {
                    log::warn!(
                        "passwd-file {}: cannot watch for changes, checking at logins every {:?} instead: {err}",
                        settings.file.display(),
                        settings.check_interval
                    );
                    None
                }
            }
        } else {
            None
        };
        Ok(PasswdFile { watcher, source })
    }
}

impl fmt::Debug for PasswdFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswdFile")
            .field("file", &self.source.path())
            .field("users", &self.source.table().len())
            .field("watching", &self.watcher.is_some())
            .finish()
    }
}

impl AuthBackend for PasswdFile {
    async fn authenticate(&self, request: AuthRequest) -> Result<AuthOutcome, PluginError> {
        let source = Arc::clone(&self.source);
        Ok(blocking::unblock(move || decide(&source, &request)).await)
    }

    async fn lookup_secret(&self, user: String) -> Result<Option<StoredSecret>, PluginError> {
        let source = Arc::clone(&self.source);
        Ok(blocking::unblock(move || stored_secret(&source, &user)).await)
    }

    /// From the table as loaded now, without a stat: this runs on the executor for every new
    /// connection, and the next login's check picks up a change soon enough.
    fn capabilities(&self) -> AuthCapabilities {
        self.source.table().capabilities()
    }
}

/// Checks one login. Blocking (a stat now and then, and the hash check).
fn decide(source: &Source, request: &AuthRequest) -> AuthOutcome {
    source.check_now_and_then();
    let table = source.table();
    let password = request.password.expose().as_bytes();
    let Some(account) = table.get(&request.user) else {
        match table.dummy() {
            Some(template) => dummy_verify_like(template, password),
            None => dummy_verify(password),
        }
        return AuthOutcome::Reject;
    };
    // `verified`: the core already checked a SCRAM proof against the secret `lookup_secret` gave,
    // so only the account is looked up here.
    if !request.verified && !verify(&account.hash, password) {
        return AuthOutcome::Reject;
    }
    // Both refusals below come after the hash check, so they take as long as a wrong password.
    if account.nologin {
        log::info!("user {:?} has the nologin flag", request.user);
        return AuthOutcome::Reject;
    }
    // A passwd-file has no notion of one user acting as another (Dovecot's master users live in a
    // separate passdb), so an authzid other than the user itself is refused.
    if let Some(authzid) = request.authzid.as_deref().filter(|a| !a.is_empty())
        && authzid != request.user
    {
        log::info!(
            "user {:?} asked to act as {authzid:?}, which a passwd-file cannot allow",
            request.user
        );
        return AuthOutcome::Reject;
    }
    AuthOutcome::Accept(Accepted {
        user: None,
        mailbox: account.mailbox.clone(),
        login_delay: account.login_delay,
        expire: account.expire,
    })
}

/// The password of a `{PLAIN}` user, or the keys of a `{SCRAM-SHA-256}` user, who may log in.
fn stored_secret(source: &Source, user: &str) -> Option<StoredSecret> {
    source.check_now_and_then();
    let table = source.table();
    let account = table.get(user).filter(|account| !account.nologin)?;
    if let Some(bytes) = plaintext_equivalent(&account.hash) {
        return String::from_utf8(bytes.to_vec())
            .ok()
            .map(|password| StoredSecret::Plaintext(Secret::new(password)));
    }
    let keys = scram_keys(&account.hash)?;
    Some(StoredSecret::ScramSha256(ScramKeys {
        iterations: keys.iterations,
        salt: keys.salt,
        stored_key: keys.stored_key,
        server_key: keys.server_key,
    }))
}

poppet_sdk::export_plugin! {
    name: "auth-passwd",
    version: env!("CARGO_PKG_VERSION"),
    factories: [ auth "passwd" => PasswdFile::from_settings ],
}
