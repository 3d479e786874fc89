//! The plugin's settings and the mailbox path they lead to.
//!
//! Settings come in two layers, as everywhere in Poppet: [`RawSettings`] is what serde reads from the
//! RON text (unknown keys are errors), [`Settings`] is the validated form the store works with, so a
//! bad template or duration is refused when the server loads its config, not at the first login.
//!
//! The user name is the one input here that comes from a client. It is checked before any path is
//! built, so no login name can make the template point outside the directory it was meant for.

use crate::import::{DOVECOT_DEFAULT_FORMAT, UidlFormat, UidlSource};
use poppet_sdk::PluginError;
use poppet_sdk::config::parse_duration;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long a lock file may go without being written or touched before another session may take
/// it over: longer than RFC 1939 §3's minimum autologout timer of 10 minutes with room for a slow
/// download. A live session's lock is touched every third of this in the background (and on every
/// retrieval), so only a crashed or stopped session's lock grows this old.
const DEFAULT_LOCK_STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// The settings as written in the server's RON file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Path template, e.g. `"/var/mail/%u/Maildir"`: `%u` user, `%n` local part, `%d` domain,
    /// `%%` a percent sign. No default: without it the auth backend must name the mailbox.
    pub path: Option<String>,
    /// A directory copied into a user's maildir when it does not exist yet. No default: a new
    /// maildir normally starts empty.
    pub skeleton: Option<String>,
    /// Age after which a lock file is stale, like `"30m"`. Default 30 minutes: longer than
    /// RFC 1939 §3's 10-minute minimum autologout timer with room for a slow download; a live
    /// session's lock is touched every third of this in the background, so only a dead session's
    /// lock gets this old.
    pub lock_stale_after: Option<String>,
    /// Whether a message read to its end (RETR, or a TOP long enough to cover it all) gets the
    /// maildir `S` (seen) flag on commit. Default true,
    /// as Dovecot (`pop3_no_flag_updates = no`) and Courier do, so IMAP clients see it as read.
    pub mark_seen: Option<bool>,
    /// Which UIDLs to serve: `"native"` (the file name's unique part, as qmail-pop3d and Courier
    /// without a size list do), `"dovecot"` (what Dovecot served, from its `dovecot-uidlist` and
    /// `uidl_format`) or `"courier"` (what Courier served, from its `courierpop3dsizelist`).
    /// Default `"native"`: it needs no other server's files and is stable on its own. Messages
    /// the old server's file does not list (mail that arrived after it last saw the mailbox) get
    /// the native UIDL. The old server's files are only read, never written.
    pub uidl_source: Option<String>,
    /// Dovecot's `pop3_uidl_format` the old server used, for `uidl_source: "dovecot"`. Default
    /// `"%08Xu%08Xv"`, Dovecot's own default.
    pub uidl_format: Option<String>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The path template, checked for unknown `%` escapes and for being absolute.
    pub path: Option<String>,
    /// The skeleton directory.
    pub skeleton: Option<PathBuf>,
    /// See [`RawSettings::lock_stale_after`].
    pub lock_stale_after: Duration,
    /// See [`RawSettings::mark_seen`].
    pub mark_seen: bool,
    /// See [`RawSettings::uidl_source`].
    pub uidl_source: UidlSource,
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
        if let Some(template) = &raw.path {
            // Expanding with a harmless user finds unknown escapes now rather than at login.
            let probe = poppet_sdk::mailbox::expand(template, "user@example.org")
                .map_err(|e| config("path", &e))?;
            if !probe.is_absolute() {
                return Err(config("path", "must be an absolute path"));
            }
        }
        let lock_stale_after = match &raw.lock_stale_after {
            Some(text) => parse_duration(text).map_err(|e| config("lock_stale_after", &e))?,
            None => DEFAULT_LOCK_STALE_AFTER,
        };
        if lock_stale_after.is_zero() {
            return Err(config("lock_stale_after", "must be at least 1s"));
        }
        let uidl_source = uidl_source(raw.uidl_source.as_deref(), raw.uidl_format.as_deref())?;
        Ok(Settings {
            uidl_source,
            path: raw.path,
            skeleton: raw.skeleton.map(PathBuf::from),
            lock_stale_after,
            mark_seen: raw.mark_seen.unwrap_or(true),
        })
    }

    /// Where `user`'s maildir is: the auth backend's `mailbox` when given (a plain absolute path,
    /// optionally prefixed `maildir:` as in Dovecot's `userdb_mail`; anything after a further `:`
    /// is Dovecot option syntax and ignored), else the template expanded for `user`.
    ///
    /// A user name that could escape the template is refused with [`poppet_sdk::ErrorCode::PERMANENT`]:
    /// retrying cannot fix it, and it is not an authentication failure (the password was right).
    pub fn mailbox_path(&self, user: &str, mailbox: Option<&str>) -> Result<PathBuf, PluginError> {
        if let Some(mailbox) = mailbox {
            let plain = match mailbox.strip_prefix("maildir:") {
                Some(rest) => rest.split(':').next().unwrap_or(rest),
                None => mailbox,
            };
            let path = PathBuf::from(plain);
            if !path.is_absolute() {
                return Err(PluginError::permanent(format!(
                    "mailbox {mailbox:?} from the auth backend is not an absolute path"
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

/// Validates `uidl_source` and `uidl_format` together.
pub fn uidl_source(source: Option<&str>, format: Option<&str>) -> Result<UidlSource, PluginError> {
    let source = match source.unwrap_or("native") {
        "native" => UidlSource::Native,
        "courier" => UidlSource::Courier,
        "dovecot" => {
            let text = format.unwrap_or(DOVECOT_DEFAULT_FORMAT);
            let format = UidlFormat::parse(text).map_err(|e| config("uidl_format", &e))?;
            UidlSource::Dovecot(format)
        }
        other => {
            return Err(config(
                "uidl_source",
                &format!("{other:?} is not one of \"native\", \"dovecot\", \"courier\""),
            ));
        }
    };
    if format.is_some() && !matches!(source, UidlSource::Dovecot(_)) {
        return Err(config(
            "uidl_format",
            "only applies to uidl_source: \"dovecot\"",
        ));
    }
    Ok(source)
}

fn config(key: &str, message: &str) -> PluginError {
    PluginError::config(format!("{key}: {message}"))
}
