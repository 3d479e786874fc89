//! Dovecot's passwd-file format: `user:{SCHEME}hash:uid:gid:(gecos):home:(shell):extra_fields`.
//!
//! The rules follow Dovecot's `db-passwd-file.c`:
//! - Lines are split on `:`. Only user and password are required; missing or empty uid, gid and home are absent.
//! - Empty lines and lines starting with `#` are skipped (we also skip lines of only whitespace).
//! - Everything after the shell field is joined back with `:` and split on spaces into `key=value` extra fields,
//!   so `userdb_mail=maildir:~/Maildir` survives; a field without `=` is a flag with an empty value (`nologin`).
//!   The old format, an empty eighth field followed by a mail location, becomes `userdb_mail=...`.
//! - A UID or GID of 0 is refused (Dovecot will not run a mail user as root); names instead of numbers would need
//!   `getpwnam()`, which this crate does not do, so they are refused too.
//! - A user listed twice keeps the first entry; the later line is an error.
//!
//! A bad line becomes a [`LineError`] and is skipped; it never stops the rest of the file from loading. Unlike
//! Dovecot, a user without a password is an error: this crate serves password databases, and an empty password
//! field must never mean "any password".

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use crate::error::ParseError;
use crate::hash::PasswordHash;

/// One user of a passwd-file.
#[derive(Clone)]
pub struct Entry {
    /// The login name, exactly as written (Dovecot compares it byte for byte).
    pub user: String,
    /// The stored password hash.
    pub hash: PasswordHash,
    /// Numeric user ID for the mail files, if given.
    pub uid: Option<u32>,
    /// Numeric group ID for the mail files, if given.
    pub gid: Option<u32>,
    /// Home directory, if given.
    pub home: Option<PathBuf>,
    /// Dovecot extra fields in file order, `key=value` (a bare `key` has an empty value).
    pub extra: Vec<(String, String)>,
}

impl fmt::Debug for Entry {
    /// Shows everything but the hash and the extra fields' values (a proxy `pass=` would be a secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let extra_keys: Vec<&str> = self.extra.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("Entry")
            .field("user", &self.user)
            .field("hash", &self.hash)
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("home", &self.home)
            .field("extra_keys", &extra_keys)
            .finish()
    }
}

/// A passwd-file line that was skipped, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with the line.
    pub reason: LineErrorReason,
}

/// What is wrong with a passwd-file line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LineErrorReason {
    /// The line starts with `:`.
    #[error("empty user name")]
    EmptyUser,
    /// The password field is missing or empty.
    #[error("user {0:?} has no password")]
    MissingPassword(String),
    /// The password field could not be read.
    #[error("user {user:?}: {error}")]
    BadHash {
        /// The user on that line.
        user: String,
        /// Why the hash was refused.
        error: ParseError,
    },
    /// The UID is not a number above 0.
    #[error("user {user:?} has invalid UID {value:?} (a number above 0 is required)")]
    BadUid {
        /// The user on that line.
        user: String,
        /// The field as written.
        value: String,
    },
    /// The GID is not a number above 0.
    #[error("user {user:?} has invalid GID {value:?} (a number above 0 is required)")]
    BadGid {
        /// The user on that line.
        user: String,
        /// The field as written.
        value: String,
    },
    /// The user already appeared on an earlier line, which wins.
    #[error("user {user:?} already defined on line {first_line}")]
    DuplicateUser {
        /// The user on that line.
        user: String,
        /// The line that defined the user first.
        first_line: usize,
    },
}

/// Parses a whole passwd-file. Good lines become [`Entry`]s in file order; bad lines are reported and skipped.
pub fn parse_passwd_file(text: &str) -> (Vec<Entry>, Vec<LineError>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (idx, line) in text.lines().enumerate() {
        let line_no = idx + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = parse_line(line).and_then(|entry| match first_seen.get(&entry.user) {
            Some(&first_line) => Err(LineErrorReason::DuplicateUser {
                user: entry.user,
                first_line,
            }),
            None => Ok(entry),
        });
        match parsed {
            Ok(entry) => {
                first_seen.insert(entry.user.clone(), line_no);
                entries.push(entry);
            }
            Err(reason) => errors.push(LineError {
                line: line_no,
                reason,
            }),
        }
    }
    (entries, errors)
}

fn parse_line(line: &str) -> Result<Entry, LineErrorReason> {
    let fields: Vec<&str> = line.split(':').collect();
    let user = fields.first().copied().unwrap_or_default();
    if user.is_empty() {
        return Err(LineErrorReason::EmptyUser);
    }
    let user = user.to_owned();
    let password = fields.get(1).copied().unwrap_or_default();
    if password.is_empty() {
        return Err(LineErrorReason::MissingPassword(user));
    }
    let hash = match PasswordHash::parse(password) {
        Ok(hash) => hash,
        Err(error) => return Err(LineErrorReason::BadHash { user, error }),
    };
    let uid = match parse_id(fields.get(2).copied()) {
        Ok(uid) => uid,
        Err(value) => return Err(LineErrorReason::BadUid { user, value }),
    };
    let gid = match parse_id(fields.get(3).copied()) {
        Ok(gid) => gid,
        Err(value) => return Err(LineErrorReason::BadGid { user, value }),
    };
    // Field 4 is gecos and field 6 the shell; Dovecot ignores both.
    let home = fields
        .get(5)
        .filter(|home| !home.is_empty())
        .map(PathBuf::from);
    let extra = parse_extra(fields.get(7..).unwrap_or_default());
    Ok(Entry {
        user,
        hash,
        uid,
        gid,
        home,
        extra,
    })
}

/// An optional numeric ID; `Err` carries the text when it is present but not a number above 0.
fn parse_id(field: Option<&str>) -> Result<Option<u32>, String> {
    match field {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<u32>() {
            Ok(id) if id > 0 => Ok(Some(id)),
            _ => Err(text.to_owned()),
        },
    }
}

/// The fields after the shell: space-separated `key=value` pairs (new format) or a mail location (old format).
fn parse_extra(rest: &[&str]) -> Vec<(String, String)> {
    match rest {
        [] => Vec::new(),
        ["", location @ ..] => {
            let location = location.join(":");
            if location.is_empty() {
                Vec::new()
            } else {
                vec![("userdb_mail".to_owned(), location)]
            }
        }
        _ => rest
            .join(":")
            .split(' ')
            .filter(|field| !field.is_empty())
            .map(|field| match field.split_once('=') {
                Some((key, value)) => (key.to_owned(), value.to_owned()),
                None => (field.to_owned(), String::new()),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::verify;
    use crate::scheme::Scheme;

    const FILE: &str = "\
# Poppet test users
alice:{PLAIN}wonderland:1000:1000::/home/alice::userdb_mail=maildir:~/Maildir nologin
bob:{SHA256-CRYPT}$5$oTbHdqba2Z.RYKCu$k.G7chA3kUVEeIoD1ZQSLecMlWKOc1iGSyXsArBIpC0

:{PLAIN}nobody
carol
dave:{MD5-CRYPT}$1$abc$def
erin:{PLAIN}x:0:100
frank:{PLAIN}x:1001:staff
alice:{PLAIN}again
grace:{PLAIN}old:1002:1002:Grace:/home/grace:/bin/false::mbox:~/mail:INBOX=/var/mail/grace\r
   \t
heidi:$2y$04$EU.r6OstGWBmhUjBV0EAOOxG3ST7reej7zLBC0f.7HRi2FS.GKBHO
";

    #[test]
    fn good_lines_become_entries() {
        let (entries, _) = parse_passwd_file(FILE);
        let users: Vec<&str> = entries.iter().map(|e| e.user.as_str()).collect();
        assert_eq!(users, ["alice", "bob", "grace", "heidi"]);

        let alice = &entries[0];
        assert!(verify(&alice.hash, b"wonderland"));
        assert_eq!((alice.uid, alice.gid), (Some(1000), Some(1000)));
        assert_eq!(alice.home, Some(PathBuf::from("/home/alice")));
        assert_eq!(
            alice.extra,
            [
                ("userdb_mail".to_owned(), "maildir:~/Maildir".to_owned()),
                ("nologin".to_owned(), String::new())
            ]
        );

        let bob = &entries[1];
        assert_eq!((bob.uid, bob.gid, &bob.home), (None, None, &None));
        assert!(bob.extra.is_empty());
        assert!(verify(&bob.hash, b"correct horse"));

        // The old format: an empty eighth field, then a mail location; the line's CRLF end is not part of it.
        let grace = &entries[2];
        assert_eq!(
            grace.extra,
            [(
                "userdb_mail".to_owned(),
                "mbox:~/mail:INBOX=/var/mail/grace".to_owned()
            )]
        );

        assert_eq!(entries[3].hash.scheme(), Scheme::BlfCrypt);
    }

    #[test]
    fn bad_lines_are_reported_with_line_numbers() {
        let (_, errors) = parse_passwd_file(FILE);
        let summary: Vec<(usize, &LineErrorReason)> =
            errors.iter().map(|e| (e.line, &e.reason)).collect();
        assert_eq!(summary.len(), 6, "{errors:#?}");
        assert_eq!(summary[0], (5, &LineErrorReason::EmptyUser));
        assert_eq!(
            summary[1],
            (6, &LineErrorReason::MissingPassword("carol".into()))
        );
        assert!(matches!(
            summary[2],
            (
                7,
                LineErrorReason::BadHash {
                    error: ParseError::UnknownScheme(_),
                    ..
                }
            )
        ));
        assert_eq!(
            summary[3],
            (
                8,
                &LineErrorReason::BadUid {
                    user: "erin".into(),
                    value: "0".into()
                }
            )
        );
        assert_eq!(
            summary[4],
            (
                9,
                &LineErrorReason::BadGid {
                    user: "frank".into(),
                    value: "staff".into()
                }
            )
        );
        assert_eq!(
            summary[5],
            (
                10,
                &LineErrorReason::DuplicateUser {
                    user: "alice".into(),
                    first_line: 2
                }
            )
        );
        assert_eq!(
            errors[5].to_string(),
            "line 10: user \"alice\" already defined on line 2"
        );
        assert!(
            errors[2].to_string().contains("{MD5-CRYPT}"),
            "{}",
            errors[2]
        );
    }

    #[test]
    fn crlf_line_ends_are_stripped() {
        let (entries, errors) = parse_passwd_file("u:{PLAIN}pw:1:1::/home/u\r\nv:{PLAIN}pw\r\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(entries[0].home, Some(PathBuf::from("/home/u")));
        assert!(verify(&entries[1].hash, b"pw"));
    }

    #[test]
    fn debug_hides_hash_and_extra_values() {
        let (entries, _) = parse_passwd_file("p:{PLAIN}topsecret::::::proxy pass=alsosecret\n");
        let text = format!("{:?}", entries[0]);
        assert!(
            !text.contains("topsecret") && !text.contains("alsosecret"),
            "{text}"
        );
        assert!(text.contains("proxy") && text.contains("pass"), "{text}");
        let (_, errors) = parse_passwd_file("q:{SHA512-CRYPT}$6$x$tooshort\n");
        assert!(!format!("{errors:?}").contains("tooshort"));
    }
}
