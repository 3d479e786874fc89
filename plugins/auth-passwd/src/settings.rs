//! The plugin's settings.
//!
//! Two layers, as everywhere in Poppet: [`RawSettings`] is what serde reads from the RON text
//! (unknown keys are errors, so a misspelt key stops `poppet check`), [`Settings`] is the validated
//! form. Example:
//!
//! ```ron
//! (file: "/etc/poppet/users", check_interval: "5s", mailbox_from_home: true, watch: true)
//! ```

use poppet_sdk::PluginError;
use poppet_sdk::config::parse_duration;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How often `authenticate` may stat the file to notice a change that the watcher missed. A stat
/// costs microseconds, so this only bounds how stale the table can get when file events are lost
/// (inotify watch limit reached, NFS, a file behind a symlink that is switched elsewhere); five
/// seconds is about how long an admin takes to switch from the editor to a mail client.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The settings as written in the server's RON file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    /// Path of the passwd-file. Required: there is no sensible default location, and a relative
    /// path is taken relative to the server's working directory.
    pub file: String,
    /// Whether a user whose line has a home directory but no `userdb_mail` gets the mailbox
    /// `<home>/Maildir`. Default true: `maildir:~/Maildir` is the location Dovecot's documentation
    /// suggests and what most passwd-files with a home field expect.
    pub mailbox_from_home: Option<bool>,
    /// Whether to watch the file's directory for changes (inotify and friends). Default true: edits
    /// take effect at once. Turn it off where file events do not work (network file systems);
    /// `check_interval` still notices changes.
    pub watch: Option<bool>,
    /// The most time between two checks of the file's modification time, size and inode during
    /// logins, like `"5s"`; `"0s"` checks on every login, as Dovecot does. Default
    /// [`DEFAULT_CHECK_INTERVAL`].
    pub check_interval: Option<String>,
}

/// Validated settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// See [`RawSettings::file`].
    pub file: PathBuf,
    /// See [`RawSettings::mailbox_from_home`].
    pub mailbox_from_home: bool,
    /// See [`RawSettings::watch`].
    pub watch: bool,
    /// See [`RawSettings::check_interval`].
    pub check_interval: Duration,
}

impl Settings {
    /// Parses and validates the settings text.
    pub fn parse(text: &str) -> Result<Settings, PluginError> {
        let raw: RawSettings = poppet_sdk::config::parse(text)?;
        Settings::validate(raw)
    }

    /// Turns raw settings into validated ones.
    pub fn validate(raw: RawSettings) -> Result<Settings, PluginError> {
        if raw.file.is_empty() {
            return Err(PluginError::config("`file`: must not be empty"));
        }
        let check_interval = match &raw.check_interval {
            Some(text) => parse_duration(text)
                .map_err(|e| PluginError::config(format!("`check_interval`: {e}")))?,
            None => DEFAULT_CHECK_INTERVAL,
        };
        Ok(Settings {
            file: PathBuf::from(raw.file),
            mailbox_from_home: raw.mailbox_from_home.unwrap_or(true),
            watch: raw.watch.unwrap_or(true),
            check_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = Settings::parse(r#"(file: "/etc/poppet/users")"#).unwrap();
        assert!(s.mailbox_from_home && s.watch);
        assert_eq!(s.check_interval, DEFAULT_CHECK_INTERVAL);
    }
}
