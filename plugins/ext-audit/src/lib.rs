//! # poppet-ext-audit
//!
//! Writes one JSON line per login, logout and deleted message, so that a support desk can answer
//! "did my client delete that message?" from a file rather than from debug logs:
//!
//! ```text
//! {"time":"2025-01-31T09:12:44.120Z","event":"login","user":"demo","rip":"192.0.2.7","session":4}
//! {"time":"2025-01-31T09:12:45.002Z","event":"delete","user":"demo","rip":"192.0.2.7","session":4,"uidl":"1700000000.M1P1.host"}
//! {"time":"2025-01-31T09:12:45.003Z","event":"logout","user":"demo","rip":"192.0.2.7","session":4,"reason":"quit","retrieved":3,"deleted":1}
//! ```
//!
//! - A `delete` line is written only for a message the store really removed at QUIT; a dropped
//!   connection deletes nothing and logs only `logout` with its `reason`.
//! - Each line is one `write(2)` to a file opened with `O_APPEND`, so lines from concurrent sessions
//!   never interleave. The file is opened per line, so rotating it by renaming (logrotate's default)
//!   needs no signal: the next line creates the new file.
//! - List this extension after policy extensions (such as login-delay) in `extensions`: it logs a
//!   login when its own after-login hook runs, so anything listed after it could still refuse.
//!
//! ```ron
//! (library: "poppet_ext_audit", kind: extension, name: "audit", settings: (
//!     file: "/var/log/poppet/audit.jsonl",
//! )),
//! ```

// Tests may unwrap: a panic there is a failed test, not a crashed server.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod time;

use poppet_sdk::{
    CommandExtension, ErrorCode, ExtensionCall, LoginDecision, PluginError, QuitReport, Reply,
    SessionView, VerbSpec,
};
use serde_json::{Map, Value, json};
use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    file: PathBuf,
}

/// The extension.
#[derive(Debug)]
pub struct Audit {
    file: Arc<PathBuf>,
}

impl Audit {
    /// Checks that the file can be opened for appending, so a wrong path fails `poppet check`.
    fn new(settings: Settings) -> Result<Audit, PluginError> {
        open(&settings.file).map_err(|e| {
            PluginError::new(
                ErrorCode::CONFIG,
                format!(
                    "`file`: cannot open {} for appending: {e}",
                    settings.file.display()
                ),
            )
        })?;
        Ok(Audit {
            file: Arc::new(settings.file),
        })
    }

    /// Appends `lines`, one `write` each, on `blocking`'s thread pool. Failures are logged: an
    /// audit problem must not cost the user a login.
    async fn append(&self, lines: Vec<String>) {
        let file = Arc::clone(&self.file);
        let written = blocking::unblock(move || -> std::io::Result<()> {
            let mut f = open(&file)?;
            for line in lines {
                f.write_all(line.as_bytes())?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = written {
            log::error!("cannot append to {}: {e}", self.file.display());
        }
    }
}

fn open(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The fields every line has.
fn base(event: &str, session: &SessionView) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("time".into(), json!(time::rfc3339_now()));
    m.insert("event".into(), json!(event));
    m.insert("user".into(), json!(session.user));
    m.insert(
        "rip".into(),
        json!(session.peer.map(|p| p.ip().to_string())),
    );
    if session.session_id != 0 {
        m.insert("session".into(), json!(session.session_id));
    }
    m
}

fn line(fields: Map<String, Value>) -> String {
    let mut text = Value::Object(fields).to_string();
    text.push('\n');
    text
}

/// The lines for a session's end: its deletions, then the logout.
pub fn quit_lines(session: &SessionView, report: &QuitReport) -> Vec<String> {
    let mut lines: Vec<String> = report
        .deleted_uidls
        .iter()
        .map(|uidl| {
            let mut m = base("delete", session);
            m.insert("uidl".into(), json!(uidl));
            line(m)
        })
        .collect();
    let mut m = base("logout", session);
    m.insert("reason".into(), json!(report.ended));
    m.insert("retrieved".into(), json!(report.retrieved));
    m.insert("deleted".into(), json!(report.deleted));
    lines.push(line(m));
    lines
}

impl CommandExtension for Audit {
    fn verbs(&self) -> Vec<VerbSpec> {
        Vec::new()
    }

    async fn handle(&self, call: ExtensionCall) -> Result<Reply, PluginError> {
        Ok(Reply::err(format!("{} is not handled here", call.verb)))
    }

    async fn after_login(&self, session: SessionView) -> Result<LoginDecision, PluginError> {
        self.append(vec![line(base("login", &session))]).await;
        Ok(LoginDecision::Allow)
    }

    async fn at_quit(&self, session: SessionView, report: QuitReport) {
        self.append(quit_lines(&session, &report)).await;
    }
}

poppet_sdk::export_plugin! {
    name: "ext-audit",
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        extension "audit" => |s| Audit::new(poppet_sdk::config::parse(s)?),
    ],
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::future::block_on;

    #[test]
    fn login_delete_and_logout_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let audit = Audit::new(Settings { file: path.clone() }).unwrap();
        let session = SessionView {
            user: Some("ann".into()),
            peer: Some("192.0.2.7:4242".parse().unwrap()),
            session_id: 9,
            ..SessionView::default()
        };
        block_on(audit.after_login(session.clone())).unwrap();
        let report = QuitReport {
            deleted_uidls: vec!["u1".into(), "u2".into()],
            retrieved: 3,
            deleted: 2,
            ended: "quit".into(),
        };
        block_on(audit.at_quit(session, report));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
        assert_eq!(events, ["login", "delete", "delete", "logout"]);
        assert_eq!(lines[1]["uidl"], "u1");
        assert_eq!(lines[3]["reason"], "quit");
        assert_eq!(lines[3]["deleted"], 2);
        assert_eq!(lines[0]["rip"], "192.0.2.7");
        assert_eq!(lines[0]["session"], 9);
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn an_unwritable_file_is_a_config_error() {
        let err = Audit::new(Settings {
            file: "/no/such/dir/audit".into(),
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::CONFIG);
    }
}
