//! # hello-auth
//!
//! A small, complete Poppet auth backend, and the model the book's tutorial builds step by step: the
//! users and their password hashes are a table in the plugin's own settings.
//!
//! ```ron
//! (library: "poppet_hello_auth", kind: auth, name: "table", settings: (
//!     users: [
//!         (name: "demo", password: "{SHA512-CRYPT}$6$..."),
//!         (name: "alice", password: "{ARGON2ID}$argon2id$...", mailbox: "/srv/mail/alice"),
//!     ],
//! )),
//! ```
//!
//! It is the shape every auth backend has: parse settings once, answer `authenticate` with
//! Accept / Reject / TempFail, and keep slow work off the server's executor. To talk to your own
//! directory, replace the table lookup in `Table::decide`; the LDAP plugin (`plugins/auth-ldap`)
//! is the full model of a backend that talks to a server.

// ANCHOR: imports
use poppet_password::PasswordHash;
use poppet_sdk::{Accepted, AuthBackend, AuthOutcome, AuthRequest, PluginError, config};
use std::collections::HashMap;
use std::sync::Arc;
// ANCHOR_END: imports

// ANCHOR: settings
/// The plugin's settings, exactly as written in its `settings: (...)` section of the config.
/// `deny_unknown_fields` makes a misspelt key an error with its line and column.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The users. Required: a table with nobody in it is a mistake, not a default.
    users: Vec<UserSettings>,
}

/// One user.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSettings {
    /// The login name, compared byte for byte.
    name: String,
    /// A hash as `poppet pw` prints it, such as `{SHA512-CRYPT}$6$...`.
    password: String,
    /// Where this user's mail is. Optional: without it the store's `path` template decides.
    #[serde(default)]
    mailbox: Option<String>,
}
// ANCHOR_END: settings

// ANCHOR: struct
/// One user, ready for logins: the hash is parsed once, at start-up, not at every login.
struct User {
    hash: PasswordHash,
    mailbox: Option<String>,
}

/// The backend. The server shares one instance between all sessions (and threads), so it must be
/// `Send + Sync`; the table sits behind an `Arc` so a login can take it to a worker thread.
struct Table {
    users: Arc<HashMap<String, User>>,
}
// ANCHOR_END: struct

// ANCHOR: new
impl Table {
    /// Checks the settings: every hash must parse, and a name may appear once. A mistake here stops
    /// the server (or a reload) with the plugin's name and the user's name in the message.
    fn new(settings: Settings) -> Result<Table, PluginError> {
        let mut users = HashMap::new();
        for user in settings.users {
            let hash = PasswordHash::parse(&user.password)
                .map_err(|e| PluginError::config(format!("user {:?}: password: {e}", user.name)))?;
            let entry = User {
                hash,
                mailbox: user.mailbox,
            };
            if users.insert(user.name.clone(), entry).is_some() {
                return Err(PluginError::config(format!(
                    "user {:?} is listed twice",
                    user.name
                )));
            }
        }
        log::info!("users in the table: {}", users.len());
        Ok(Table {
            users: Arc::new(users),
        })
    }
}
// ANCHOR_END: new

// ANCHOR: decide
impl Table {
    /// The decision itself, synchronous and slow on purpose (a password hash costs milliseconds).
    fn decide(users: &HashMap<String, User>, request: &AuthRequest) -> AuthOutcome {
        let password = request.password.expose().as_bytes();
        let Some(user) = users.get(&request.user) else {
            // Spend the time a real check would, so a client cannot tell unknown users from
            // wrong passwords by the clock.
            poppet_password::dummy_verify(password);
            return AuthOutcome::Reject;
        };
        if poppet_password::verify(&user.hash, password) {
            AuthOutcome::Accept(Accepted {
                mailbox: user.mailbox.clone(),
                ..Accepted::default()
            })
        } else {
            AuthOutcome::Reject
        }
    }
}
// ANCHOR_END: decide

// ANCHOR: impl
impl AuthBackend for Table {
    /// Called for every login (USER/PASS, AUTH PLAIN, AUTH LOGIN). The core has already checked that
    /// a cleartext password is allowed on this connection, and does the failure delay, the penalty
    /// and the wire answer: the backend only decides.
    async fn authenticate(&self, request: AuthRequest) -> Result<AuthOutcome, PluginError> {
        let users = Arc::clone(&self.users);
        // Hashing on the server's executor would stall every other session meanwhile: run it on
        // a worker thread and await the answer.
        Ok(blocking::unblock(move || Table::decide(&users, &request)).await)
    }
}
// ANCHOR_END: impl

// ANCHOR: export
poppet_sdk::export_plugin! {
    name: "hello-auth",
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        // `auth "table"`: the config names the instance `table`. The closure gets the entry's
        // `settings` text; `config::parse` reports errors with their line and column.
        auth "table" => |settings| Table::new(config::parse(settings)?),
    ],
}
// ANCHOR_END: export
