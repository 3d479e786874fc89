//! The plugin's settings and the mbox path they lead to.
//!
//! Two layers, as everywhere in Poppet: [`RawSettings`] is what serde reads from the RON text
//! (unknown keys are errors), [`Settings`] is the validated form, so a bad template, lock name or
//! duration is refused when the server loads its config, not at the first login.
//!
//! The user name is the one input here that comes from a client; it is checked before any path is
//! built, so no login name can make the template point outside the directory it was meant for.

use poppet_sdk::PluginError;
use poppet_sdk::config::parse_duration;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long to wait for the delivery locks before giving up (the login gets `-ERR [SYS/TEMP]`, a
/// commit deletes nothing). Postfix's local(8) gives up after `deliver_lock_attempts` (20) times
/// `deliver_lock_delay` (1s); a lock held much longer than that is not a delivery in progress.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Age after which a `file.lock` whose holder we cannot see is stale: liblockfile's, Debian's
/// reference implementation of mail spool locking, is 5 minutes. We keep our own dotlock's mtime
/// fresh while we hold it (Dovecot breaks a dotlock whose mbox and lock have not changed for
/// `mbox_dotlock_change_timeout`, 2 minutes), so only a dead holder's lock gets this old.
const DEFAULT_DOTLOCK_STALE_AFTER: Duration = Duration::from_secs(5 * 60);

/// How `>From ` lines are read. The names are the usual ones (qmail's mbox(5), Dovecot's
/// MboxFormat page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Body lines matching `^>+From ` lose one `>`: the writer quoted every such line, so the
    /// reading is exact. A mboxo file read this way loses one `>` from lines that had one already,
    /// as it would with any reader. The default: it is exact for mboxrd and no worse than the
    /// alternative for mboxo.
    Mboxrd,
    /// Only lines matching `^>From ` (exactly one `>`) lose it: the classic reading of files
    /// written by quoting `From ` alone (Postfix local, procmail).
    Mboxo,
    /// Like `mboxo`, and a `Content-Length:` header is what Solaris' mail writes: the name makes
    /// the intent explicit; Content-Length is honoured in every variant where it is consistent.
    Mboxcl,
    /// Nothing is quoted: `From ` lines inside a body are protected by `Content-Length:` alone,
    /// so no `>` is ever removed.
    Mboxcl2,
}

/// A lock to take, in the order listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// `file.lock`, created with `O_EXCL`.
    Dotlock,
    /// A whole-file `fcntl` write lock (an open file description lock on Linux, which conflicts
    /// with the classic `F_SETLK` locks MDAs take, and is not dropped when another descriptor of
    /// the same file is closed in this process).
    Fcntl,
}

/// The settings as written in the server's RON file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Path template, e.g. `"/var/mail/%u"`: `%u` user, `%n` local part, `%d` domain, `%%` a
    /// percent sign. No default: without it the auth backend must name the mailbox.
    pub path: Option<String>,
    /// How `>From ` lines are unquoted. Default `mboxrd` (see [`Variant::Mboxrd`]).
    pub variant: Option<Variant>,
    /// Locks taken while the snapshot is read and while deletions are written, in this order.
    /// Default `[dotlock, fcntl]`: the order Postfix local (`mailbox_delivery_lock = fcntl,
    /// dotlock` on Debian, applied dotlock first by `mbox_open`), procmail (`dotlocking, fcntl()`)
    /// and Dovecot (`mbox_write_locks = dotlock fcntl`) all use.
    pub locks: Option<Vec<LockKind>>,
    /// How long to wait for all the locks, like `"30s"`. Default 30 seconds (see the source).
    pub lock_timeout: Option<String>,
    /// Age after which a `file.lock` is stale. Default 5 minutes, liblockfile's.
    pub dotlock_stale_after: Option<String>,
    /// Hold the delivery locks for the whole session, as tpop3d does, instead of only while
    /// reading the snapshot and committing. Default false: a POP3 session (a slow client, a
    /// 10-minute idle timer) must not hold up delivery.
    pub lock_session: Option<bool>,
    /// Honour `Content-Length:` headers where they are consistent with the file (the length
    /// lands on the end of the file or on a `From ` line). Default true.
    pub content_length: Option<bool>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The path template.
    pub path: Option<String>,
    /// See [`RawSettings::variant`].
    pub variant: Variant,
    /// See [`RawSettings::locks`].
    pub locks: Vec<LockKind>,
    /// See [`RawSettings::lock_timeout`].
    pub lock_timeout: Duration,
    /// See [`RawSettings::dotlock_stale_after`].
    pub dotlock_stale_after: Duration,
    /// See [`RawSettings::lock_session`].
    pub lock_session: bool,
    /// See [`RawSettings::content_length`].
    pub content_length: bool,
}

impl Default for Settings {
    fn default() -> Self {
        // Validating the empty settings cannot fail.
        Settings {
            path: None,
            variant: Variant::Mboxrd,
            locks: vec![LockKind::Dotlock, LockKind::Fcntl],
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            dotlock_stale_after: DEFAULT_DOTLOCK_STALE_AFTER,
            lock_session: false,
            content_length: true,
        }
    }
}

impl Settings {
    /// Parses and validates the settings text. Empty text means all defaults.
    pub fn parse(text: &str) -> Result<Settings, PluginError> {
        let raw: RawSettings = if text.trim().is_empty() {
            RawSettings::default()
        } else {
            poppet_sdk::config::parse(text)?
        };
        Settings::validate(raw)
    }

    /// Turns raw settings into validated ones.
    pub fn validate(raw: RawSettings) -> Result<Settings, PluginError> {
        let defaults = Settings::default();
        if let Some(template) = &raw.path {
            let probe = poppet_sdk::mailbox::expand(template, "user@example.org")
                .map_err(|e| config("path", &e))?;
            if !probe.is_absolute() {
                return Err(config("path", "must be an absolute path"));
            }
        }
        let duration = |key: &str, text: &Option<String>, default: Duration| match text {
            Some(text) => match parse_duration(text) {
                Ok(d) if d.is_zero() => Err(config(key, "must be more than 0s")),
                Ok(d) => Ok(d),
                Err(e) => Err(config(key, &e)),
            },
            None => Ok(default),
        };
        let locks = raw.locks.unwrap_or(defaults.locks);
        for (i, kind) in locks.iter().enumerate() {
            if locks[..i].contains(kind) {
                return Err(config("locks", &format!("{kind:?} is listed twice")));
            }
        }
        if locks.is_empty() {
            log::warn!("mbox: `locks: []`: deliveries are not kept out while mail is deleted");
        }
        Ok(Settings {
            path: raw.path,
            variant: raw.variant.unwrap_or(defaults.variant),
            locks,
            lock_timeout: duration("lock_timeout", &raw.lock_timeout, defaults.lock_timeout)?,
            dotlock_stale_after: duration(
                "dotlock_stale_after",
                &raw.dotlock_stale_after,
                defaults.dotlock_stale_after,
            )?,
            lock_session: raw.lock_session.unwrap_or(defaults.lock_session),
            content_length: raw.content_length.unwrap_or(defaults.content_length),
        })
    }

    /// Where `user`'s mbox is: the auth backend's `mailbox` when given (an absolute path,
    /// optionally prefixed `mbox:` as in Dovecot's `userdb_mail`; anything after a further `:` is
    /// Dovecot option syntax and ignored), else the template expanded for `user`.
    pub fn mailbox_path(&self, user: &str, mailbox: Option<&str>) -> Result<PathBuf, PluginError> {
        if let Some(mailbox) = mailbox {
            let plain = match mailbox.strip_prefix("mbox:") {
                Some(rest) => rest.split(':').next().unwrap_or(rest),
                None => mailbox,
            };
            let path = PathBuf::from(plain);
            if !path.is_absolute() || path.file_name().is_none() {
                return Err(PluginError::permanent(format!(
                    "mailbox {mailbox:?} from the auth backend is not an absolute file path"
                )));
            }
            return Ok(path);
        }
        let Some(template) = &self.path else {
            return Err(PluginError::permanent(
                "no mailbox: the auth backend gave none and no `path` template is set",
            ));
        };
        poppet_sdk::mailbox::template_path(template, user)
    }
}

fn config(key: &str, message: &str) -> PluginError {
    PluginError::config(format!("{key}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let s = Settings::parse("").expect("defaults");
        assert_eq!(s.variant, Variant::Mboxrd);
        assert_eq!(s.locks, vec![LockKind::Dotlock, LockKind::Fcntl]);
        assert!(!s.lock_session);
        let s = Settings::parse(
            r#"(path: "/var/mail/%u", variant: mboxo, locks: [fcntl], lock_timeout: "2s",
                lock_session: true, content_length: false)"#,
        )
        .expect("parse");
        assert_eq!(s.variant, Variant::Mboxo);
        assert_eq!(s.locks, vec![LockKind::Fcntl]);
        assert_eq!(s.lock_timeout, Duration::from_secs(2));
        assert!(s.lock_session && !s.content_length);
    }

    #[test]
    fn mistakes_are_config_errors() {
        for bad in [
            r#"(path: "relative/%u")"#,
            r#"(path: "/x/%q")"#,
            r#"(locks: [dotlock, dotlock])"#,
            r#"(locks: [flock])"#,
            r#"(lock_timeout: "0s")"#,
            r#"(variant: mmdf)"#,
            r#"(colour: "blue")"#,
        ] {
            let err = Settings::parse(bad).expect_err(bad);
            assert_eq!(err.code, poppet_sdk::ErrorCode::CONFIG, "{bad}");
        }
    }

    #[test]
    fn paths() {
        let s = Settings::parse(r#"(path: "/var/mail/%n")"#).expect("parse");
        assert_eq!(
            s.mailbox_path("bob@example.org", None).expect("path"),
            PathBuf::from("/var/mail/bob")
        );
        assert!(s.mailbox_path("../etc/passwd", None).is_err());
        assert!(s.mailbox_path("a/b", None).is_err());
        assert_eq!(
            s.mailbox_path("x", Some("mbox:/home/x/inbox:INDEX=/y"))
                .expect("backend"),
            PathBuf::from("/home/x/inbox")
        );
        assert!(s.mailbox_path("x", Some("relative")).is_err());
    }
}
