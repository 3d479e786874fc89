//! The parsed passwd-file: one [`Account`] per user, with everything a login needs worked out at load
//! time, so a mistake in a line shows up in the log when the file is read, not at the user's login.
//!
//! Extra fields this plugin reads (all others are ignored, as Dovecot ignores fields it does not
//! know for the service at hand):
//!
//! | field | meaning |
//! |---|---|
//! | `userdb_mail=LOCATION` | the mailbox: a `maildir:` prefix and any Dovecot `:OPTION=...` suffix are dropped, a leading `~` becomes the home directory; other formats (`mbox:...`) are passed on with `~` expanded, for a store that understands them |
//! | `userdb_login_delay=N` | RFC 2449 LOGIN-DELAY for this user, in seconds |
//! | `userdb_expire=N` or `userdb_expire=never` | RFC 2449 EXPIRE for this user, in days |
//! | `nologin` | Dovecot's passdb flag: the user may not log in, even with the right password |
//!
//! The `userdb_` prefix is Dovecot's way of saying "this field describes the user, not the
//! password", which lets one file serve both Dovecot and Poppet. A line whose fields cannot be
//! understood (a `~` without a home, a login delay that is not a number) is skipped like any other
//! bad line, with a warning naming the line.

use poppet_password::{Entry, PasswordHash, Scheme};
use poppet_sdk::{AuthCapabilities, Expire};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// One user, ready for login.
/// `Debug` shows the hash's scheme only.
#[derive(Clone, Debug)]
pub struct Account {
    /// The stored password hash.
    pub hash: PasswordHash,
    /// Where the mail is, if the file says.
    pub mailbox: Option<String>,
    /// Per-user LOGIN-DELAY in seconds.
    pub login_delay: Option<u32>,
    /// Per-user EXPIRE.
    pub expire: Option<Expire>,
    /// The `nologin` flag.
    pub nologin: bool,
}

/// All users of one version of the file.
#[derive(Default)]
pub struct Table {
    accounts: HashMap<String, Account>,
    /// The hash an unknown user's password is checked against (for timing only); `None` when the
    /// file has no users, and `poppet_password::dummy_verify` stands in.
    dummy: Option<PasswordHash>,
    /// What `lookup_secret` can offer for this version of the file.
    capabilities: AuthCapabilities,
}

impl Table {
    /// Builds the table from parsed entries. Returns the table and, for each entry that was
    /// skipped, its user name and the reason.
    pub fn build(entries: Vec<Entry>, mailbox_from_home: bool) -> (Table, Vec<(String, String)>) {
        let mut accounts = HashMap::with_capacity(entries.len());
        let mut errors = Vec::new();
        // Unknown users are timed like the most common scheme in the file, so that the usual case
        // (every user hashed the same way) matches exactly.
        let mut by_scheme: Vec<(Scheme, usize, PasswordHash)> = Vec::new();
        for entry in entries {
            match account(&entry, mailbox_from_home) {
                Ok(account) => {
                    let scheme = account.hash.scheme();
                    match by_scheme.iter_mut().find(|(s, _, _)| *s == scheme) {
                        Some((_, count, _)) => *count += 1,
                        None => by_scheme.push((scheme, 1, account.hash.clone())),
                    }
                    accounts.insert(entry.user, account);
                }
                Err(reason) => errors.push((entry.user, reason)),
            }
        }
        // `max_by_key` keeps the last of equals; reversing makes the first-seen scheme win ties.
        let dummy = by_scheme
            .into_iter()
            .rev()
            .max_by_key(|(_, count, _)| *count)
            .map(|(_, _, hash)| hash);
        let has = |scheme| {
            accounts
                .values()
                .any(|a: &Account| a.hash.scheme() == scheme)
        };
        let plaintext_secrets = has(Scheme::Plain);
        // SCRAM-SHA-256 keys are stored for `{SCRAM-SHA-256}` users and derived for `{PLAIN}` ones.
        let capabilities = AuthCapabilities {
            plaintext_secrets,
            scram_sha256: plaintext_secrets || has(Scheme::ScramSha256),
        };
        (
            Table {
                accounts,
                dummy,
                capabilities,
            },
            errors,
        )
    }

    /// The account of `user` (compared byte for byte, as Dovecot does).
    pub fn get(&self, user: &str) -> Option<&Account> {
        self.accounts.get(user)
    }

    /// The timing template for unknown users.
    pub fn dummy(&self) -> Option<&PasswordHash> {
        self.dummy.as_ref()
    }

    /// What challenge-response secrets this file can serve: `plaintext_secrets` when some user is
    /// `{PLAIN}` (APOP, and SCRAM-SHA-256 by deriving keys), `scram_sha256` when some user is
    /// `{PLAIN}` or `{SCRAM-SHA-256}`. Worked out when the file is loaded; `nologin` users count
    /// too, though `lookup_secret` gives nothing for them.
    pub fn capabilities(&self) -> AuthCapabilities {
        self.capabilities
    }

    /// Whether no user can log in.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// How many users can log in.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }
}

impl fmt::Debug for Table {
    /// The user count only: a log line should not list every user of the site.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Table")
            .field("users", &self.accounts.len())
            .finish_non_exhaustive()
    }
}

fn account(entry: &Entry, mailbox_from_home: bool) -> Result<Account, String> {
    let home = entry.home.as_deref();
    let mut account = Account {
        hash: entry.hash.clone(),
        mailbox: None,
        login_delay: None,
        expire: None,
        nologin: false,
    };
    for (key, value) in &entry.extra {
        match key.as_str() {
            "userdb_mail" => account.mailbox = Some(mail_location(value, home)?),
            "userdb_login_delay" => {
                account.login_delay = Some(value.parse().map_err(|_| {
                    format!("userdb_login_delay={value:?} is not a number of seconds")
                })?);
            }
            "userdb_expire" => account.expire = Some(expire(value)?),
            "nologin" => account.nologin = true,
            _ => {}
        }
    }
    if account.mailbox.is_none() && mailbox_from_home {
        account.mailbox = home.map(|home| home.join("Maildir").to_string_lossy().into_owned());
    }
    Ok(account)
}

/// Turns a Dovecot mail location into the mailbox the store gets (see the module table).
fn mail_location(value: &str, home: Option<&Path>) -> Result<String, String> {
    let (prefix, rest) = match value.strip_prefix("maildir:") {
        // Dovecot options follow the path after another colon (`maildir:~/Maildir:LAYOUT=fs`).
        Some(rest) => ("", rest.split(':').next().unwrap_or(rest)),
        None => match value.split_once(':') {
            Some((format, rest)) if is_format(format) => (&value[..=format.len()], rest),
            _ => ("", value),
        },
    };
    let expanded = match rest.strip_prefix('~') {
        Some(after) if after.is_empty() || after.starts_with('/') => {
            let Some(home) = home else {
                return Err(format!(
                    "userdb_mail={value:?} uses ~ but the line has no home directory"
                ));
            };
            format!("{}{after}", home.to_string_lossy())
        }
        _ => rest.to_owned(),
    };
    if expanded.is_empty() {
        return Err("userdb_mail is empty".to_owned());
    }
    Ok(format!("{prefix}{expanded}"))
}

/// Whether `word` looks like a Dovecot mailbox format name (`mbox`, `mdbox`, `sdbox`, `imapc`).
fn is_format(word: &str) -> bool {
    !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase())
}

fn expire(value: &str) -> Result<Expire, String> {
    if value.eq_ignore_ascii_case("never") {
        return Ok(Expire::Never);
    }
    value
        .parse()
        .map(Expire::Days)
        .map_err(|_| format!("userdb_expire={value:?} is neither a number of days nor \"never\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_locations() {
        let home = Some(Path::new("/home/a"));
        let check = |value: &str, home: Option<&Path>, want: Result<&str, ()>| {
            let got = mail_location(value, home);
            assert_eq!(got.as_deref().map_err(|_| ()), want, "{value:?}");
        };
        check("maildir:~/Maildir", home, Ok("/home/a/Maildir"));
        check("maildir:~/Maildir:LAYOUT=fs", home, Ok("/home/a/Maildir"));
        check("maildir:/var/mail/a", None, Ok("/var/mail/a"));
        check("/srv/mail/a", None, Ok("/srv/mail/a"));
        check("~", home, Ok("/home/a"));
        check(
            "mbox:~/mail:INBOX=/var/mail/a",
            home,
            Ok("mbox:/home/a/mail:INBOX=/var/mail/a"),
        );
        check("maildir:~/Maildir", None, Err(()));
        check("maildir:", home, Err(()));
        // `~user` is another user's home, which a passwd-file cannot resolve; it stays as written.
        check("~bob/Maildir", home, Ok("~bob/Maildir"));
    }

    #[test]
    fn expire_values() {
        assert_eq!(expire("never"), Ok(Expire::Never));
        assert_eq!(expire("30"), Ok(Expire::Days(30)));
        assert!(expire("soon").is_err());
    }
}
