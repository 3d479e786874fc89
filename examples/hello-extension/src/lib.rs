//! # hello-extension
//!
//! The smallest useful Poppet command extension, and the model the book's tutorial builds step by
//! step: a new command, `XHELLO`, valid after login, that greets the user and counts their messages.
//!
//! ```text
//! C: XHELLO
//! S: +OK hello demo, you have 5 messages
//! ```
//!
//! Load it as `examples/hello-extension/poppet.ron` does (by convention a verb starting with X is
//! private to a site, not a standard one):
//!
//! ```ron
//! plugins: [
//!     // ... auth and store ...
//!     (library: "poppet_hello_extension", kind: extension, name: "hello"),
//! ],
//! extensions: ["hello"],
//! ```

// ANCHOR: imports
use poppet_sdk::{CommandExtension, ExtensionCall, PluginError, Reply, VerbSpec, states};
// ANCHOR_END: imports

// ANCHOR: settings
/// The extension takes no settings; `deny_unknown_fields` makes a typo in the config an error
/// instead of a silently ignored key.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}
// ANCHOR_END: settings

// ANCHOR: struct
/// One instance per `extensions` entry; the server shares it between all sessions, so it must be
/// `Send + Sync` (a struct without fields is).
struct Hello;
// ANCHOR_END: struct

// ANCHOR: impl
impl CommandExtension for Hello {
    // ANCHOR: verbs
    /// Called once, when the server creates the instance: which verbs, in which states, and what
    /// CAPA shows. The server refuses to start if another extension or the core already has the verb.
    fn verbs(&self) -> Vec<VerbSpec> {
        vec![VerbSpec {
            verb: "XHELLO".into(),
            // After login only: before it there is no user to greet.
            states: states::TRANSACTION,
            capability: Some("XHELLO".into()),
            // `XHELLO foo` gets `-ERR` from the core without reaching `handle`.
            max_args: 0,
        }]
    }
    // ANCHOR_END: verbs

    // ANCHOR: handle
    /// Called for every `XHELLO`. `call.session` is a read-only copy of the session: user, client
    /// address, TLS, message sizes. A panic here costs this one command a `-ERR [SYS/TEMP]`.
    async fn handle(&self, call: ExtensionCall) -> Result<Reply, PluginError> {
        let user = call.session.user.as_deref().unwrap_or("stranger");
        let n = call.session.message_sizes.len();
        Ok(Reply::ok(format!("hello {user}, you have {n} messages")))
    }
    // ANCHOR_END: handle
}
// ANCHOR_END: impl

// ANCHOR: export
poppet_sdk::export_plugin! {
    name: "hello-extension",
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        // `extension "hello"`: the config names the instance `hello`. The closure gets the entry's
        // `settings` text; `config::parse` reports errors with their line and column.
        extension "hello" => |settings| {
            let _: Settings = poppet_sdk::config::parse(settings)?;
            Ok(Hello)
        },
    ],
}
// ANCHOR_END: export
