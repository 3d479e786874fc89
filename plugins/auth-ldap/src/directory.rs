//! The conversation with the directory: find the user's entry, check the password the way
//! `mode` says, and tell a wrong password from a directory in trouble.
//!
//! That last distinction is the heart of an auth backend. An LDAP *result* is an answer: no
//! entry, or `invalidCredentials` (49) to a bind, mean "reject". Anything else (the
//! connection refused or dropped, a timeout, `busy` (51), `unavailable` (52), an ACL that forbids
//! the service account to search) is not an answer about the user, and must not be reported as
//! a wrong password: it becomes a [`Failure`], which the caller logs with its LDAP result code
//! and turns into `-ERR [SYS/TEMP]`.
//!
//! Every operation runs under its own timeout (bind or search), on a connection from a bounded
//! [`Pool`]. An operation that fails on a connection taken from the idle list for any reason but
//! an LDAP result or a timeout is retried once on a new connection: that is the connection the
//! directory closed while idle (a restart, an idle timeout), and the login should not notice.

use crate::pool::{Conn, ConnectError, Pool};
use crate::settings::{Mode, Scope, Settings};
use ldap3::{LdapError, SearchEntry, SearchOptions};
use std::collections::HashMap;
use std::fmt;

/// The user's entry, with attribute names lowercased (LDAP attribute names are
/// case-insensitive; the server answers in the case of its schema).
#[derive(Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's DN.
    pub dn: String,
    attrs: HashMap<String, Vec<String>>,
}

impl Entry {
    fn from_search(entry: SearchEntry) -> Entry {
        let attrs = entry
            .attrs
            .into_iter()
            .map(|(name, values)| (name.to_ascii_lowercase(), values))
            .collect();
        Entry {
            dn: entry.dn,
            attrs,
        }
    }

    /// The values of `name` (any case); empty when the entry lacks it or it is not text.
    pub fn values(&self, name: &str) -> &[String] {
        self.attrs
            .get(&name.to_ascii_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name).first().map(String::as_str)
    }
}

impl fmt::Debug for Entry {
    /// The DN and attribute names only: values may include the password attribute.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.attrs.keys().collect();
        names.sort();
        f.debug_struct("Entry")
            .field("dn", &self.dn)
            .field("attributes", &names)
            .finish()
    }
}

/// Why the directory could not answer. Its `Display` is the log line's detail: ldap3 prints an
/// LDAP result as `rc=51 (busy), dn: "...", text: "..."`.
#[derive(Debug)]
pub struct Failure {
    /// What was being done (`search`, `bind as the user`, ...).
    pub during: &'static str,
    /// What went wrong.
    pub error: FailureKind,
}

/// The error behind a [`Failure`].
#[derive(Debug)]
pub enum FailureKind {
    /// No connection could be had.
    Connect(ConnectError),
    /// The operation failed (I/O, timeout, or an LDAP result that is not an answer).
    Ldap(LdapError),
    /// The search found several entries for one login: the filter is too wide.
    Ambiguous(usize),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            FailureKind::Connect(err) => write!(f, "{}: cannot connect: {err}", self.during),
            FailureKind::Ldap(err) => write!(f, "{}: {err}", self.during),
            FailureKind::Ambiguous(n) => write!(
                f,
                "{}: the filter matched {n} entries, expected one (make `user_filter` narrower)",
                self.during
            ),
        }
    }
}

/// The result of a password check.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// The password is right; here is the entry.
    Accept(Entry),
    /// Unknown user or wrong password.
    Reject,
}

/// One LDAP operation, as data, so that [`Directory::run`] can retry it on a new connection.
enum Op<'a> {
    Search {
        base: &'a str,
        scope: ldap3::Scope,
        filter: &'a str,
        attrs: &'a [String],
    },
    Bind {
        dn: &'a str,
        password: &'a str,
    },
}

/// What an operation answered.
enum Answer {
    Entries(Vec<Entry>),
    /// The bind succeeded.
    Yes,
    /// The bind said invalidCredentials.
    No,
}

/// The directory, as the backend sees it.
#[derive(Debug)]
pub struct Directory {
    settings: Settings,
    /// Bound as the service account (or anonymous): searches.
    lookups: Pool,
    /// Not bound in advance: user binds (`mode: bind`), which change the connection's identity.
    binds: Option<Pool>,
    /// The attributes a search asks for.
    wanted: Vec<String>,
}

impl Directory {
    /// Sets up the pools; connects to nothing yet.
    pub fn new(settings: Settings, lookups: Pool, binds: Option<Pool>) -> Directory {
        let a = &settings.attributes;
        let mut wanted: Vec<String> = [&a.mailbox, &a.home, &a.login_delay, &a.expire]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        if settings.mode == Mode::Hash {
            wanted.push(settings.password_attribute.clone());
        }
        if wanted.is_empty() {
            // RFC 4511 §4.5.1.8: an empty list means "all user attributes"; "1.1" means none.
            wanted.push("1.1".to_owned());
        }
        Directory {
            settings,
            lookups,
            binds,
            wanted,
        }
    }

    /// The settings the directory was made from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Finds the user's entry: by the DN template when there is one, else by searching. `None`
    /// when there is no such user.
    pub async fn find(&self, user: &str) -> Result<Option<Entry>, Failure> {
        let s = &self.settings;
        let (base, scope, filter, during) = match &s.user_dn {
            // Reading the entry itself: a base search with a filter that every entry matches.
            Some(template) => (
                template.expand(user),
                ldap3::Scope::Base,
                "(objectClass=*)".to_owned(),
                "read the user's entry",
            ),
            None => (
                s.base_dn.clone(),
                match s.scope {
                    Scope::Base => ldap3::Scope::Base,
                    Scope::One => ldap3::Scope::OneLevel,
                    Scope::Subtree => ldap3::Scope::Subtree,
                },
                s.user_filter.expand(user),
                "search for the user",
            ),
        };
        let op = Op::Search {
            base: &base,
            scope,
            filter: &filter,
            attrs: &self.wanted,
        };
        let mut entries = match self.run(&self.lookups, &op, during).await? {
            Answer::Entries(entries) => entries,
            Answer::Yes | Answer::No => Vec::new(),
        };
        match entries.len() {
            0 => Ok(None),
            1 => Ok(entries.pop()),
            n => Err(Failure {
                during,
                error: FailureKind::Ambiguous(n),
            }),
        }
    }

    /// Checks `password` for `user` the way `mode` says. The caller has already refused an empty
    /// password (see [`crate::Ldap`]).
    pub async fn check(&self, user: &str, password: &str) -> Result<Checked, Failure> {
        let Some(entry) = self.find(user).await? else {
            if self.settings.mode == Mode::Hash {
                // An unknown user costs what a wrong password costs, so names cannot be probed
                // by timing. (In the other modes the directory does the work, and its round trip
                // dominates either way.)
                spend_a_hash_check(password.as_bytes().to_vec()).await;
            }
            return Ok(Checked::Reject);
        };
        let right = match self.settings.mode {
            Mode::Bind => {
                let pool = self.binds.as_ref().unwrap_or(&self.lookups);
                let op = Op::Bind {
                    dn: &entry.dn,
                    password,
                };
                matches!(self.run(pool, &op, "bind as the user").await?, Answer::Yes)
            }
            Mode::Hash => {
                let stored = entry.values(&self.settings.password_attribute).to_vec();
                verify_stored(&entry.dn, stored, password.as_bytes().to_vec()).await
            }
        };
        Ok(if right {
            Checked::Accept(entry)
        } else {
            Checked::Reject
        })
    }

    /// Runs `op` on a connection from `pool`, retrying once on a new connection when a reused
    /// one turns out to be dead.
    async fn run(&self, pool: &Pool, op: &Op<'_>, during: &'static str) -> Result<Answer, Failure> {
        let fail = |error| Failure { during, error };
        let mut conn = pool
            .get()
            .await
            .map_err(|e| fail(FailureKind::Connect(e)))?;
        let mut result = self.perform(&mut conn, op).await;
        if conn.reused
            && let Err(err) = &result
            && is_dead_connection(err)
        {
            log::debug!("{during}: idle connection was closed ({err}), retrying on a new one");
            conn = pool
                .fresh(conn)
                .await
                .map_err(|e| fail(FailureKind::Connect(e)))?;
            result = self.perform(&mut conn, op).await;
        }
        match result {
            Ok(answer) => {
                conn.release();
                Ok(answer)
            }
            // An LDAP result proves the connection works; anything else may have left it
            // half-read, so it is dropped.
            Err(err @ LdapError::LdapResult { .. }) => {
                conn.release();
                Err(fail(FailureKind::Ldap(err)))
            }
            Err(err) => Err(fail(FailureKind::Ldap(err))),
        }
    }

    async fn perform(&self, conn: &mut Conn, op: &Op<'_>) -> Result<Answer, LdapError> {
        let s = &self.settings;
        let ldap = conn.ldap();
        match *op {
            Op::Search {
                base,
                scope,
                filter,
                attrs,
            } => {
                // Two entries are enough to know the filter is ambiguous. The server-side time
                // limit (whole seconds, at least 1) backs up the client-side timeout.
                let time_limit =
                    i32::try_from(s.search_timeout.as_secs().max(1)).unwrap_or(i32::MAX);
                let options = SearchOptions::new().sizelimit(2).timelimit(time_limit);
                let result = ldap
                    .with_search_options(options)
                    .with_timeout(s.search_timeout)
                    .search(base, scope, filter, attrs)
                    .await?;
                let (entries, status) = (result.0, result.1);
                match status.rc {
                    // success, or sizeLimitExceeded with the entries that fitted.
                    0 | 4 => Ok(Answer::Entries(
                        entries
                            .into_iter()
                            .map(|e| Entry::from_search(SearchEntry::construct(e)))
                            .collect(),
                    )),
                    // noSuchObject: for a DN template, the user does not exist. For a search
                    // it means the base DN is missing, which is the directory's problem.
                    32 if s.user_dn.is_some() => Ok(Answer::Entries(Vec::new())),
                    _ => Err(LdapError::from(status)),
                }
            }
            Op::Bind { dn, password } => {
                let status = ldap
                    .with_timeout(s.bind_timeout)
                    .simple_bind(dn, password)
                    .await?;
                match status.rc {
                    0 => Ok(Answer::Yes),
                    // invalidCredentials; also what slapd answers for a DN that does not exist.
                    49 => Ok(Answer::No),
                    _ => Err(LdapError::from(status)),
                }
            }
        }
    }
}

/// Whether `err` means the connection itself is gone (as opposed to an answer or a timeout,
/// which a retry would only repeat).
fn is_dead_connection(err: &LdapError) -> bool {
    !matches!(
        err,
        LdapError::LdapResult { .. } | LdapError::Timeout { .. }
    )
}

/// Checks `password` against the stored values (several are allowed by the schema; any may
/// match), on tokio's blocking threads since a crypt or Argon2 check takes milliseconds of CPU.
async fn verify_stored(dn: &str, stored: Vec<String>, password: Vec<u8>) -> bool {
    let dn = dn.to_owned();
    let check = move || {
        let mut parsed = Vec::new();
        for value in &stored {
            match poppet_password::PasswordHash::parse(value) {
                Ok(hash) => parsed.push(hash),
                // The error names the scheme, never the value.
                Err(err) => log::warn!("{dn}: password value not usable: {err}"),
            }
        }
        if parsed.is_empty() {
            poppet_password::dummy_verify(&password);
            return false;
        }
        parsed
            .iter()
            .any(|hash| poppet_password::verify(hash, &password))
    };
    tokio::task::spawn_blocking(check).await.unwrap_or(false)
}

/// The time of a hash check against nothing, for unknown users.
async fn spend_a_hash_check(password: Vec<u8>) {
    let _ = tokio::task::spawn_blocking(move || poppet_password::dummy_verify(&password)).await;
}
