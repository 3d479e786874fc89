//! What every session shares: the plugins, the limits and the per-server session options.

use crate::config::Config;
use crate::plugins::Plugins;
use poppet_proto::{ExtensionVerb, Response, ResponseCode, SessionOptions, StateSet};
use std::time::{SystemTime, UNIX_EPOCH};

/// Shared, read-only server state.
#[derive(Debug)]
pub struct Shared {
    /// Loaded plugins.
    pub plugins: Plugins,
    /// The config.
    pub config: Config,
    hostname: String,
    extension_verbs: Vec<ExtensionVerb>,
}

impl Shared {
    /// Builds the shared state.
    pub fn new(config: Config, plugins: Plugins) -> Shared {
        let extension_verbs = plugins
            .extensions
            .iter()
            .flat_map(|e| e.verbs().iter())
            .map(|v| ExtensionVerb {
                name: v.verb.to_ascii_uppercase(),
                states: state_set(v.states),
                capability: v.capability.clone(),
            })
            .collect();
        let hostname = gethostname::gethostname().to_string_lossy().into_owned();
        Shared {
            plugins,
            config,
            hostname,
            extension_verbs,
        }
    }

    /// Session options for a new connection.
    pub fn session_options(&self, session_id: u64) -> SessionOptions {
        let apop_timestamp = self.config.apop.then(|| {
            // RFC 1939 §7: "The syntax of the timestamp corresponds to the `msg-id' in [RFC822], and
            // MUST be different each time the POP3 server issues a banner greeting."
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!(
                "<{}.{session_id}.{now}@{}>",
                std::process::id(),
                self.hostname
            )
        });
        SessionOptions {
            apop_timestamp,
            idle_timeout: self.config.limits.idle_timeout,
            max_bad_commands: self.config.limits.max_bad_commands,
            extension_verbs: self.extension_verbs.clone(),
            greeting_text: self.config.greeting.clone(),
            ..SessionOptions::default()
        }
    }
}

fn state_set(bits: u32) -> StateSet {
    let mut set = StateSet::NONE;
    if bits & poppet_sdk::states::AUTHORIZATION != 0 {
        set = set.union(StateSet::AUTHORIZATION);
    }
    if bits & poppet_sdk::states::TRANSACTION != 0 {
        set = set.union(StateSet::TRANSACTION);
    }
    set
}

/// Converts an extension's reply into an engine response. An unknown response code from a plugin is
/// dropped rather than sent (the wire only carries codes this server knows).
pub fn reply_to_response(reply: poppet_sdk::Reply) -> Response {
    let code = reply.code.as_deref().and_then(|c| match c {
        "IN-USE" => Some(ResponseCode::InUse),
        "LOGIN-DELAY" => Some(ResponseCode::LoginDelay),
        "SYS/TEMP" => Some(ResponseCode::SysTemp),
        "SYS/PERM" => Some(ResponseCode::SysPerm),
        "AUTH" => Some(ResponseCode::Auth),
        _ => None,
    });
    let response = if reply.ok {
        Response::ok(reply.text)
    } else {
        Response::err(code, reply.text)
    };
    match reply.lines {
        Some(lines) => response.with_lines(lines),
        None => response,
    }
}
