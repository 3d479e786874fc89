//! # poppet-ext-login-delay
//!
//! Enforces RFC 2449 LOGIN-DELAY, which POP3 servers usually only advertise. RFC 2449 §6.5: "POP3
//! clients often login frequently to check for new mail. Each login requires server resources ...
//! the server may enforce this [minimum time between logins] by rejecting logins which occur too
//! soon after the previous login, with the [LOGIN-DELAY] response code."
//!
//! - The delay is the user's own value from the auth backend (a passwd-file's
//!   `userdb_login_delay`, an LDAP attribute), else `default_delay` from the settings, else none.
//! - A login sooner than that after the user's previous successful login is refused with
//!   `-ERR [LOGIN-DELAY]`; the refused attempt does not restart the clock.
//! - The instants survive restarts in `state_file`, replaced crash-safely on every login (see
//!   [`state`]). Writing the whole file per login is fine for the thousands of users a site logs in
//!   within one delay; the file holds only users still waiting.
//! - CAPA: `default_delay` is declared as `LOGIN-DELAY n`, which the server advertises by RFC 2449's
//!   rules: `LOGIN-DELAY n USER` before login (the value may vary per user), and after login the
//!   user's own value. `expire` (days, or `"never"`) is declared the same way as `EXPIRE`, so one
//!   extension holds a site's retention policy; the server itself does not delete old mail.
//!
//! ```ron
//! (library: "poppet_ext_login_delay", kind: extension, name: "login-delay", settings: (
//!     state_file: "/var/lib/poppet/login-delay",
//!     default_delay: "15m",
//!     expire: "30",
//! )),
//! ```

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod state;

use poppet_sdk::config::parse_duration;
use poppet_sdk::{
    CommandExtension, ErrorCode, ExtensionCall, LoginDecision, PluginError, Reply, SessionView,
    VerbSpec,
};
use state::{StateFile, Table, Verdict};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The settings as written in the config.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    state_file: PathBuf,
    default_delay: Option<String>,
    expire: Option<String>,
}

/// Validated settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Where the next-allowed instants are kept.
    pub state_file: PathBuf,
    /// Seconds between logins for users the auth backend gives no value for. Default none: only
    /// per-user values are enforced, as a site that sets none expects.
    pub default_delay: Option<u32>,
    /// The EXPIRE line's value (`NEVER` or days), if the site wants one advertised.
    pub expire: Option<String>,
}

impl Settings {
    /// Parses and checks the settings text.
    pub fn parse(text: &str) -> Result<Settings, PluginError> {
        let raw: RawSettings = poppet_sdk::config::parse(text)?;
        let default_delay = raw
            .default_delay
            .map(|d| {
                let d = parse_duration(&d).map_err(|e| config(format!("`default_delay`: {e}")))?;
                u32::try_from(d.as_secs())
                    .map_err(|_| config("`default_delay`: too long".to_owned()))
            })
            .transpose()?;
        let expire = raw
            .expire
            .map(|e| {
                if e.eq_ignore_ascii_case("never") {
                    Ok("NEVER".to_owned())
                } else {
                    e.parse::<u32>().map(|d| d.to_string()).map_err(|_| {
                        config(format!("`expire`: expected days or \"never\", found {e:?}"))
                    })
                }
            })
            .transpose()?;
        let dir = match raw.state_file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(config(format!(
                "`state_file`: directory {} does not exist",
                dir.display()
            )));
        }
        Ok(Settings {
            state_file: raw.state_file,
            default_delay,
            expire,
        })
    }
}

fn config(message: String) -> PluginError {
    PluginError::new(ErrorCode::CONFIG, message)
}

/// The extension.
#[derive(Debug)]
pub struct LoginDelay {
    settings: Settings,
    table: Arc<Mutex<Table>>,
    file: Arc<StateFile>,
}

impl LoginDelay {
    /// Loads the state file (a missing one is empty; an unreadable one is an error, so `poppet
    /// check` reports it rather than every login forgetting the delay).
    pub fn new(settings: Settings) -> Result<LoginDelay, PluginError> {
        let file = StateFile::new(settings.state_file.clone());
        let table = file.load().map_err(|e| {
            config(format!(
                "`state_file`: cannot read {}: {e}",
                file.path().display()
            ))
        })?;
        Ok(LoginDelay {
            settings,
            table: Arc::new(Mutex::new(table)),
            file: Arc::new(file),
        })
    }

    /// Writes the table on `blocking`'s thread pool, off the server's executor.
    async fn persist(&self) {
        let (table, file) = (Arc::clone(&self.table), Arc::clone(&self.file));
        let saved = blocking::unblock(move || {
            file.save(|| {
                let t = table.lock().unwrap_or_else(|p| p.into_inner());
                (t.generation(), t.render(now_ms()))
            })
        })
        .await;
        if let Err(e) = saved {
            // The login stands; only a restart before the next write could forget it.
            log::error!("cannot write {}: {e}", self.file.path().display());
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl CommandExtension for LoginDelay {
    fn verbs(&self) -> Vec<VerbSpec> {
        Vec::new()
    }

    async fn handle(&self, call: ExtensionCall) -> Result<Reply, PluginError> {
        Ok(Reply::err(format!("{} is not handled here", call.verb)))
    }

    fn capabilities(&self) -> Vec<String> {
        let delay = self
            .settings
            .default_delay
            .map(|d| format!("LOGIN-DELAY {d}"));
        let expire = self.settings.expire.as_ref().map(|e| format!("EXPIRE {e}"));
        delay.into_iter().chain(expire).collect()
    }

    async fn after_login(&self, session: SessionView) -> Result<LoginDecision, PluginError> {
        let Some(user) = session.user.as_deref() else {
            return Ok(LoginDecision::Allow);
        };
        let delay = session.login_delay.or(self.settings.default_delay);
        let Some(delay) = delay.filter(|d| *d > 0) else {
            return Ok(LoginDecision::Allow);
        };
        if !Table::storable(user) {
            log::warn!("user {user:?} cannot be stored in the state file; not delayed");
            return Ok(LoginDecision::Allow);
        }
        let verdict = self
            .table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check_and_record(user, now_ms(), u64::from(delay) * 1000);
        match verdict {
            Verdict::Allowed => {
                self.persist().await;
                Ok(LoginDecision::Allow)
            }
            Verdict::TooSoon(ms) => {
                log::info!(
                    "login of {user:?} refused: {}s before LOGIN-DELAY {delay} allows it",
                    ms.div_ceil(1000)
                );
                Ok(LoginDecision::Refuse(Reply {
                    code: Some("LOGIN-DELAY".into()),
                    ..Reply::err(format!("wait {}s between logins", delay))
                }))
            }
        }
    }
}

poppet_sdk::export_plugin! {
    name: "ext-login-delay",
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        extension "login-delay" => |s| LoginDelay::new(Settings::parse(s)?),
    ],
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    fn extension(dir: &std::path::Path, extra: &str) -> LoginDelay {
        let text = format!(
            r#"(state_file: "{}", {extra})"#,
            dir.join("state").display()
        );
        LoginDelay::new(Settings::parse(&text).unwrap()).unwrap()
    }

    fn view(user: &str, login_delay: Option<u32>) -> SessionView {
        SessionView {
            user: Some(user.into()),
            login_delay,
            ..SessionView::default()
        }
    }

    fn refused(d: &LoginDecision) -> bool {
        matches!(d, LoginDecision::Refuse(r) if r.code.as_deref() == Some("LOGIN-DELAY"))
    }

    #[test]
    fn settings_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s").display().to_string();
        let ok = Settings::parse(&format!(
            r#"(state_file: "{state}", default_delay: "15m", expire: "never")"#
        ))
        .unwrap();
        assert_eq!(ok.default_delay, Some(900));
        assert_eq!(ok.expire.as_deref(), Some("NEVER"));
        for bad in [
            r#"default_delay: "soon""#,
            r#"expire: "later""#,
            r#"delay: "1s""#,
        ] {
            let text = format!(r#"(state_file: "{state}", {bad})"#);
            assert!(Settings::parse(&text).is_err(), "{bad}");
        }
        assert!(Settings::parse(r#"(state_file: "/no/such/dir/state")"#).is_err());
    }

    #[test]
    fn per_user_values_win_and_the_state_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let ext = extension(dir.path(), r#"default_delay: "1h""#);
        assert_eq!(ext.capabilities(), ["LOGIN-DELAY 3600"]);
        assert_eq!(
            block_on(ext.after_login(view("ann", None))).unwrap(),
            LoginDecision::Allow
        );
        assert!(refused(
            &block_on(ext.after_login(view("ann", None))).unwrap()
        ));
        // A zero per-user value means no delay for that user, whatever the default.
        assert_eq!(
            block_on(ext.after_login(view("bob", Some(0)))).unwrap(),
            LoginDecision::Allow
        );
        assert_eq!(
            block_on(ext.after_login(view("bob", Some(0)))).unwrap(),
            LoginDecision::Allow
        );
        drop(ext);
        let again = extension(dir.path(), r#"default_delay: "1h""#);
        assert!(refused(
            &block_on(again.after_login(view("ann", None))).unwrap()
        ));
    }

    #[test]
    fn without_any_delay_nothing_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let ext = extension(dir.path(), r#"expire: "30""#);
        assert_eq!(ext.capabilities(), ["EXPIRE 30"]);
        for _ in 0..2 {
            assert_eq!(
                block_on(ext.after_login(view("ann", None))).unwrap(),
                LoginDecision::Allow
            );
        }
        assert!(!dir.path().join("state").exists());
    }
}
