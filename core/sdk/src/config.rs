//! Plugin settings: the plugin's section of the server's RON file arrives as its exact text, and the
//! plugin parses it here with the same RON options as the host, so both accept the same syntax and a
//! mistake is reported with its position.

use crate::error::{ErrorCode, PluginError, Position};
use serde::de::DeserializeOwned;

/// The RON options shared by the host and every plugin.
///
/// `implicit_some` lets an `Option` field be written as its value (`file: "x"` instead of
/// `file: Some("x")`), which is what people write by hand.
pub fn ron_options() -> ron::Options {
    ron::Options::default().with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME)
}

/// Parses a plugin's settings text. Errors carry the 1-based line and column inside `text`; the host
/// translates them to a position in the config file.
///
/// Use `#[serde(deny_unknown_fields)]` on the settings struct so a misspelt key is an error.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Settings { path: String }
///
/// let s: Settings = poppet_sdk::config::parse(r#"(path: "/var/mail/%u")"#).unwrap();
/// assert_eq!(s.path, "/var/mail/%u");
/// let err = poppet_sdk::config::parse::<Settings>("(paht: \"x\")").unwrap_err();
/// assert_eq!(err.position.unwrap().line, 1);
/// ```
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, PluginError> {
    ron_options().from_str(text).map_err(|e| PluginError {
        code: ErrorCode::CONFIG,
        message: e.code.to_string(),
        position: Some(Position {
            line: u32::try_from(e.span.start.line).unwrap_or(u32::MAX),
            column: u32::try_from(e.span.start.col).unwrap_or(u32::MAX),
        }),
    })
}
