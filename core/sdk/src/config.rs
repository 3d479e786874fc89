//! Plugin settings: the plugin's section of the server's RON file arrives as its exact text, and the
//! plugin parses it here with the same RON options as the host, so both accept the same syntax and a
//! mistake is reported with its position.

use crate::error::{ErrorCode, PluginError, Position};
use serde::de::DeserializeOwned;
use std::time::Duration;

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

/// Parses a duration as people write it in the config (`"250ms"`, `"30s"`, `"10m"`, `"1h"`,
/// `"1d"`), for the server and every plugin alike.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like \"10m\" or \"30s\", found {text:?}"))?;
    let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs);
    let d = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => {
            return Err(format!(
                "unknown duration unit {unit:?} in {text:?} (use ms, s, m, h or d)"
            ));
        }
    };
    d.ok_or_else(|| format!("duration {text:?} is too large"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod duration_tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn errors_say_what_was_expected() {
        assert!(
            parse_duration("ten minutes")
                .unwrap_err()
                .contains("expected a duration")
        );
        assert!(
            parse_duration("10y")
                .unwrap_err()
                .contains("unknown duration unit")
        );
        for bad in ["", "5", "s", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_duration("99999999999999999999d").is_err());
    }
}
