//! The core's response texts, in one table that a [`Catalog`] can translate.
//!
//! Every human-readable text the core sends after `+OK` or `-ERR` has a stable id and an
//! English template in [`TEMPLATES`]; placeholders are written `{name}`. A response built
//! from a [`Text`] remembers it, so a session with a language selected (RFC 6856 §3, the
//! `LANG` command an extension provides) renders the same response from the catalog
//! instead: the wire format (status, response code, protocol data such as the `2 320` of
//! STAT) never changes, only the words do.
//!
//! Arguments that are themselves English phrases ("a message number") are [`Arg::Term`]s,
//! which a catalog translates through its own small table of [`TERMS`]. Texts that come
//! from a plugin (a store's error message) have no id and are sent as they are.

use std::collections::HashMap;
use std::fmt;

use crate::error::ProtoError;

/// One entry of the text table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The stable id catalogs use, e.g. `no-such-message`.
    pub id: &'static str,
    /// The English text, with `{name}` placeholders.
    pub english: &'static str,
}

const fn t(id: &'static str, english: &'static str) -> Template {
    Template { id, english }
}

/// Every text of the core, in English. Catalogs translate these ids.
pub const TEMPLATES: &[Template] = &[
    // The client's framing and syntax.
    t(
        "line-too-long",
        "line too long (at most 255 octets including CRLF)",
    ),
    t(
        "control-character",
        "command contains control character 0x{byte}",
    ),
    t("invalid-utf8", "command is not valid UTF-8"),
    t("empty-command", "empty command"),
    t("unknown-command", "unknown command {verb}"),
    t("missing-argument", "{verb} needs {what}"),
    t("too-many-arguments", "too many arguments for {verb}"),
    t("argument-too-long", "argument too long (at most 40 octets)"),
    t(
        "invalid-number",
        "{what} must be a decimal number, got {value}",
    ),
    t(
        "invalid-digest",
        "APOP digest must be 32 hexadecimal digits",
    ),
    t(
        "sasl-line-too-long",
        "authentication line too long (at most {max} octets including CRLF)",
    ),
    // The client's timing.
    t("wrong-state", "{verb} is not valid in the {state} state"),
    t("pass-without-user", "PASS must follow a successful USER"),
    t("user-pass-disabled", "USER/PASS login is disabled"),
    t("apop-disabled", "APOP is not available"),
    t("tls-active", "Command not permitted when TLS active"),
    t("stls-not-offered", "STLS is not available"),
    t("stls-after-user", "STLS is not allowed after USER"),
    t(
        "plaintext-disallowed",
        "Plaintext authentication disallowed on non-secure (SSL/TLS) connections.",
    ),
    t(
        "unsupported-mechanism",
        "Unsupported authentication mechanism",
    ),
    t(
        "utf8-user-needs-utf8",
        "a user name with non-ASCII characters needs the UTF8 command first",
    ),
    t("no-such-message", "no such message"),
    t("already-deleted", "message {msg} already deleted"),
    t(
        "too-many-bad-commands",
        "too many bad commands, closing connection",
    ),
    t("idle-timeout", "autologout: idle for too long"),
    t("login-timeout", "Disconnected: login took too long"),
    // The login outcome.
    t("auth-failed", "Authentication failed"),
    t("mailbox-in-use", "maildrop is locked by another session"),
    t("login-too-soon", "logged in too recently, try again later"),
    t("sasl-cancelled", "Authentication cancelled"),
    // The server or a plugin.
    t(
        "commit-partial",
        "some deleted messages not removed ({failed} failed)",
    ),
    t(
        "commit-failed",
        "some deleted messages not removed: {reason}",
    ),
    t("nothing-pending", "internal error: no such action pending"),
    t("extension-failed", "command failed, try again later"),
    t(
        "extension-arguments",
        "{verb} takes at most {max} arguments",
    ),
    t("shutting-down", "server shutting down, try again later"),
    // Positive replies.
    t("user-accepted", "send PASS"),
    t(
        "logged-in",
        "Logged in, maildrop has {count} messages ({octets} octets)",
    ),
    t("capability-list", "Capability list follows"),
    t("sasl-mechanisms", "Supported SASL mechanisms follow"),
    t("begin-tls", "Begin TLS negotiation"),
    t("list-summary", "{count} messages ({octets} octets)"),
    t("message-octets", "{octets} octets"),
    t("uidl-listing", "unique-id listing follows"),
    t("message-deleted", "message {msg} deleted"),
    t(
        "maildrop-reset",
        "maildrop has {count} messages ({octets} octets)",
    ),
    t("signing-off", "Poppet signing off"),
    t(
        "signing-off-deleted",
        "Poppet signing off ({deleted} messages deleted)",
    ),
];

/// English phrases that appear as arguments of texts ([`Arg::Term`]); catalogs translate
/// them in their `terms` table.
pub const TERMS: &[&str] = &[
    "a user name",
    "a user name and a digest",
    "a password",
    "a message number",
    "a message number and a line count",
    "message number",
    "line count",
];

/// The English template of `id`.
pub fn english(id: &str) -> Option<&'static str> {
    TEMPLATES
        .iter()
        .find(|template| template.id == id)
        .map(|template| template.english)
}

/// An argument of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// Data sent as it is: a number, a verb, a user's input.
    Plain(String),
    /// An English phrase from [`TERMS`], translated by a catalog.
    Term(&'static str),
}

impl From<String> for Arg {
    fn from(value: String) -> Self {
        Arg::Plain(value)
    }
}

/// A core text: an id of [`TEMPLATES`] and its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    id: &'static str,
    args: Vec<(&'static str, Arg)>,
}

impl Text {
    /// The text `id` with no arguments.
    pub fn new(id: &'static str) -> Text {
        debug_assert!(english(id).is_some(), "unknown text id {id}");
        Text {
            id,
            args: Vec::new(),
        }
    }

    /// Adds the argument `name` (sent as it is).
    pub fn arg(mut self, name: &'static str, value: impl fmt::Display) -> Text {
        self.args.push((name, Arg::Plain(value.to_string())));
        self
    }

    /// Adds the argument `name`, an English phrase of [`TERMS`] that catalogs translate.
    pub fn term(mut self, name: &'static str, phrase: &'static str) -> Text {
        debug_assert!(TERMS.contains(&phrase), "unknown term {phrase}");
        self.args.push((name, Arg::Term(phrase)));
        self
    }

    /// The id.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// Renders the text in English, or from `catalog` when given (ids it lacks stay
    /// English).
    pub fn render(&self, catalog: Option<&Catalog>) -> String {
        let template = catalog
            .and_then(|catalog| catalog.texts.get(self.id))
            .map(String::as_str)
            .or_else(|| english(self.id))
            .unwrap_or(self.id);
        let mut out = String::with_capacity(template.len() + 16);
        for (literal, placeholder) in Pieces(template) {
            out.push_str(literal);
            let Some(name) = placeholder else { continue };
            match self.args.iter().find(|(arg, _)| *arg == name) {
                Some((_, Arg::Plain(value))) => out.push_str(value),
                Some((_, Arg::Term(phrase))) => out.push_str(
                    catalog
                        .and_then(|catalog| catalog.terms.get(*phrase))
                        .map_or(phrase, String::as_str),
                ),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            }
        }
        out
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(None))
    }
}

/// Splits a template into (literal, placeholder) pairs without allocating (a RETR's `+OK` line
/// is rendered from one); `{{` and `}}` are literal braces.
struct Pieces<'a>(&'a str);

impl<'a> Iterator for Pieces<'a> {
    type Item = (&'a str, Option<&'a str>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let rest = self.0;
        let Some(open) = rest.find('{') else {
            self.0 = "";
            return Some((rest, None));
        };
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) if !after[..close].is_empty() && !after[..close].contains('{') => {
                self.0 = &after[close + 1..];
                Some((&rest[..open], Some(&after[..close])))
            }
            _ => {
                self.0 = after;
                Some((&rest[..=open], None))
            }
        }
    }
}

/// The placeholders of a template.
fn placeholders(template: &str) -> Vec<&str> {
    Pieces(template).filter_map(|(_, name)| name).collect()
}

/// A translation of the core's texts into one language (RFC 6856 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    tag: String,
    name: String,
    texts: HashMap<&'static str, String>,
    terms: HashMap<&'static str, String>,
}

/// Why a catalog was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The language tag is not an RFC 5646 tag of letters, digits and hyphens.
    #[error("language tag {0:?} is not a language tag (letters, digits and '-', e.g. \"de\")")]
    BadTag(String),
    /// The catalog names a text the core does not have.
    #[error("catalog {tag}: no core text has the id {id:?}")]
    UnknownId {
        /// The language.
        tag: String,
        /// The id.
        id: String,
    },
    /// A translation uses a placeholder the English text does not have.
    #[error(
        "catalog {tag}: text {id:?} uses {{{placeholder}}}, which the English text does not have"
    )]
    UnknownPlaceholder {
        /// The language.
        tag: String,
        /// The id.
        id: String,
        /// The placeholder.
        placeholder: String,
    },
    /// The catalog translates a phrase that is not a core term.
    #[error("catalog {tag}: {term:?} is not a term of the core")]
    UnknownTerm {
        /// The language.
        tag: String,
        /// The phrase.
        term: String,
    },
    /// A translation contains a control character, which would break the line.
    #[error("catalog {tag}: text {id:?} contains a control character")]
    ControlCharacter {
        /// The language.
        tag: String,
        /// The id or term.
        id: String,
    },
}

impl Catalog {
    /// A catalog for language `tag` (its name in that language is `name`), checked against
    /// the core's table: every id and term must exist, placeholders must be the English
    /// text's, no control characters. Ids it does not translate stay English.
    pub fn new(
        tag: &str,
        name: &str,
        texts: impl IntoIterator<Item = (String, String)>,
        terms: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Catalog, CatalogError> {
        if !is_language_tag(tag) {
            return Err(CatalogError::BadTag(tag.to_owned()));
        }
        let control = |id: &str, text: &str| {
            if text.chars().any(char::is_control) {
                Err(CatalogError::ControlCharacter {
                    tag: tag.to_owned(),
                    id: id.to_owned(),
                })
            } else {
                Ok(())
            }
        };
        let mut checked_texts = HashMap::new();
        for (id, text) in texts {
            let Some(template) = TEMPLATES.iter().find(|template| template.id == id) else {
                return Err(CatalogError::UnknownId {
                    tag: tag.to_owned(),
                    id,
                });
            };
            control(&id, &text)?;
            let known = placeholders(template.english);
            if let Some(unknown) = placeholders(&text).into_iter().find(|p| !known.contains(p)) {
                return Err(CatalogError::UnknownPlaceholder {
                    tag: tag.to_owned(),
                    id,
                    placeholder: unknown.to_owned(),
                });
            }
            checked_texts.insert(template.id, text);
        }
        let mut checked_terms = HashMap::new();
        for (term, text) in terms {
            let Some(known) = TERMS.iter().find(|known| **known == term) else {
                return Err(CatalogError::UnknownTerm {
                    tag: tag.to_owned(),
                    term,
                });
            };
            control(&term, &text)?;
            checked_terms.insert(*known, text);
        }
        control("name", name)?;
        Ok(Catalog {
            tag: tag.to_ascii_lowercase(),
            name: name.to_owned(),
            texts: checked_texts,
            terms: checked_terms,
        })
    }

    /// The language tag, lowercase.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The language's name in that language.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ids of the core's texts this catalog leaves in English.
    pub fn untranslated(&self) -> Vec<&'static str> {
        TEMPLATES
            .iter()
            .map(|template| template.id)
            .filter(|id| !self.texts.contains_key(id))
            .collect()
    }
}

/// Whether `tag` looks like an RFC 5646 language tag: subtags of 1-8 letters or digits
/// joined by `-`, the first made of letters.
pub fn is_language_tag(tag: &str) -> bool {
    let mut subtags = tag.split('-');
    let first_ok = subtags
        .next()
        .is_some_and(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic()));
    first_ok
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

impl ProtoError {
    /// This error as a core text; `None` for texts that come from a plugin or a SASL
    /// mechanism, which are sent as they are.
    pub fn text(&self) -> Option<Text> {
        let text = match self {
            Self::LineTooLong => Text::new("line-too-long"),
            Self::ControlCharacter(byte) => {
                Text::new("control-character").arg("byte", format_args!("{byte:02X}"))
            }
            Self::InvalidUtf8 => Text::new("invalid-utf8"),
            Self::EmptyCommand => Text::new("empty-command"),
            Self::UnknownCommand(verb) => Text::new("unknown-command").arg("verb", verb),
            Self::MissingArgument { verb, what } => Text::new("missing-argument")
                .arg("verb", verb)
                .term("what", what),
            Self::TooManyArguments(verb) => Text::new("too-many-arguments").arg("verb", verb),
            Self::ArgumentTooLong => Text::new("argument-too-long"),
            Self::InvalidNumber { what, value } => Text::new("invalid-number")
                .term("what", what)
                .arg("value", value),
            Self::InvalidDigest => Text::new("invalid-digest"),
            Self::SaslLineTooLong(max) => Text::new("sasl-line-too-long").arg("max", max),
            Self::WrongState { verb, state } => Text::new("wrong-state")
                .arg("verb", verb)
                .arg("state", state),
            Self::PassWithoutUser => Text::new("pass-without-user"),
            Self::UserPassDisabled => Text::new("user-pass-disabled"),
            Self::ApopDisabled => Text::new("apop-disabled"),
            Self::TlsActive => Text::new("tls-active"),
            Self::StlsNotOffered => Text::new("stls-not-offered"),
            Self::StlsAfterUser => Text::new("stls-after-user"),
            Self::PlaintextDisallowed => Text::new("plaintext-disallowed"),
            Self::UnsupportedMechanism => Text::new("unsupported-mechanism"),
            Self::Utf8UserNeedsUtf8 => Text::new("utf8-user-needs-utf8"),
            Self::NoSuchMessage => Text::new("no-such-message"),
            Self::AlreadyDeleted(msg) => Text::new("already-deleted").arg("msg", msg),
            Self::TooManyBadCommands => Text::new("too-many-bad-commands"),
            Self::IdleTimeout => Text::new("idle-timeout"),
            Self::LoginTimeout => Text::new("login-timeout"),
            Self::AuthFailed => Text::new("auth-failed"),
            Self::MailboxInUse => Text::new("mailbox-in-use"),
            Self::LoginTooSoon => Text::new("login-too-soon"),
            Self::SaslCancelled => Text::new("sasl-cancelled"),
            Self::CommitPartial { failed } => Text::new("commit-partial").arg("failed", failed),
            Self::CommitFailed(reason) => Text::new("commit-failed").arg("reason", reason),
            Self::NothingPending => Text::new("nothing-pending"),
            Self::SaslFailed(_) | Self::Temporary(_) | Self::Permanent(_) => return None,
        };
        Some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::{Catalog, CatalogError, TEMPLATES, TERMS, Text, is_language_tag, placeholders};

    fn german() -> Catalog {
        Catalog::new(
            "de",
            "Deutsch",
            [
                ("no-such-message".into(), "Nachricht gibt es nicht".into()),
                ("missing-argument".into(), "{verb} braucht {what}".into()),
            ],
            [("a message number".into(), "eine Nachrichtennummer".into())],
        )
        .expect("valid catalog")
    }

    #[test]
    fn ids_are_unique_and_placeholders_well_formed() {
        for (i, template) in TEMPLATES.iter().enumerate() {
            assert!(
                TEMPLATES[i + 1..]
                    .iter()
                    .all(|other| other.id != template.id),
                "{} twice",
                template.id
            );
            assert!(!template.english.chars().any(char::is_control));
            for name in placeholders(template.english) {
                assert!(name.bytes().all(|b| b.is_ascii_lowercase()), "{name}");
            }
        }
        assert!(TERMS.iter().all(|term| term.is_ascii()));
    }

    #[test]
    fn renders_english_and_translations_with_terms() {
        let text = Text::new("missing-argument")
            .arg("verb", "RETR")
            .term("what", "a message number");
        assert_eq!(text.to_string(), "RETR needs a message number");
        let de = german();
        assert_eq!(
            text.render(Some(&de)),
            "RETR braucht eine Nachrichtennummer"
        );
        // Ids the catalog lacks stay English.
        let other = Text::new("already-deleted").arg("msg", 3);
        assert_eq!(other.render(Some(&de)), "message 3 already deleted");
        assert!(de.untranslated().contains(&"already-deleted"));
        assert!(!de.untranslated().contains(&"no-such-message"));
    }

    #[test]
    fn catalogs_are_checked_against_the_table() {
        let err = |texts: Vec<(&str, &str)>, terms: Vec<(&str, &str)>| {
            Catalog::new(
                "de",
                "Deutsch",
                texts.into_iter().map(|(a, b)| (a.into(), b.into())),
                terms.into_iter().map(|(a, b)| (a.into(), b.into())),
            )
            .expect_err("refused")
        };
        assert!(matches!(
            err(vec![("no-such-id", "x")], vec![]),
            CatalogError::UnknownId { .. }
        ));
        assert!(matches!(
            err(
                vec![("already-deleted", "Nachricht {nummer} ist weg")],
                vec![]
            ),
            CatalogError::UnknownPlaceholder { .. }
        ));
        assert!(matches!(
            err(vec![], vec![("a mailbox", "ein Postfach")]),
            CatalogError::UnknownTerm { .. }
        ));
        assert!(matches!(
            err(vec![("no-such-message", "a\r\n+OK")], vec![]),
            CatalogError::ControlCharacter { .. }
        ));
        assert!(matches!(
            Catalog::new("d e", "x", [], []),
            Err(CatalogError::BadTag(_))
        ));
        // A translation may leave placeholders out, and braces that name nothing stay.
        let ok = Catalog::new(
            "de",
            "Deutsch",
            [("already-deleted".into(), "schon gelöscht {}".into())],
            [],
        )
        .expect("valid");
        assert_eq!(
            Text::new("already-deleted").arg("msg", 1).render(Some(&ok)),
            "schon gelöscht {}"
        );
    }

    #[test]
    fn the_book_lists_every_text_as_it_is() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../book/src/languages.md");
        let page = std::fs::read_to_string(path).expect("book/src/languages.md");
        let rows: Vec<&str> = page
            .lines()
            .skip_while(|l| *l != "## The core's texts")
            .filter(|l| l.starts_with("| `"))
            .collect();
        let expected: Vec<String> = TEMPLATES
            .iter()
            .map(|t| format!("| `{}` | {} |", t.id, t.english))
            .collect();
        assert_eq!(
            rows, expected,
            "book/src/languages.md's table differs from TEMPLATES"
        );
        for term in TERMS {
            assert!(page.contains(&format!("`{term}`")), "term {term} missing");
        }
    }

    #[test]
    fn language_tags() {
        for good in ["en", "de", "de-CH", "zh-Hant-TW", "i-default", "sgn-CH-DE"] {
            assert!(is_language_tag(good), "{good}");
        }
        for bad in ["", "-", "de-", "1de", "de_CH", "toolongtag", "de CH", "*"] {
            assert!(!is_language_tag(bad), "{bad}");
        }
    }
}
