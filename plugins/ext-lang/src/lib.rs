//! Poppet command extension for RFC 6856: the `UTF8` command and the `LANG` command, with the
//! core's response texts in other languages.
//!
//! - `UTF8` (AUTHORIZATION state, CAPA `UTF8 USER`): switches UTF-8 mode on. While this extension
//!   is loaded, the core refuses user names with non-ASCII characters in USER and APOP until the
//!   client has said `UTF8` (RFC 6856 §2); SASL names are UTF-8 by definition and not affected.
//! - `LANG` (both states, CAPA `LANG`): without an argument lists the languages, one per line as
//!   `tag name`; with a language range (RFC 4647 basic filtering: `de` matches `de` and `de-CH`)
//!   or `*` (the configured default) selects the language of the core's texts from now on and
//!   answers `+OK <tag> <text>` in the new language. Texts from plugins (a store's error message)
//!   stay as the plugin wrote them.
//!
//! English is the core's own table; this plugin ships German (`catalogs/de.ron`) and reads more
//! catalogs from files in the same format (`catalog_files`), so a site can add a language without
//! building anything. The server checks every catalog against its text table when the plugin loads.
//!
//! Settings:
//! ```ron
//! (
//!     // More languages, each a RON file like catalogs/de.ron. Default: none.
//!     catalog_files: ["/etc/poppet/lang/sv.ron"],
//!     // The language `LANG *` selects. Default "en".
//!     default_language: "en",
//! )
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use poppet_sdk::{
    Catalog, CommandExtension, ExtensionCall, PluginError, Reply, SessionChange, VerbSpec, states,
};

/// The German catalog, built in.
const GERMAN: &str = include_str!("../catalogs/de.ron");

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    catalog_files: Vec<PathBuf>,
    #[serde(default)]
    default_language: Option<String>,
}

/// A catalog file: the core's texts plus this extension's own replies.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    tag: String,
    name: String,
    /// `LANG`'s listing line, e.g. "Language listing follows".
    listing: Option<String>,
    /// `LANG`'s answer when the language changed.
    changed: Option<String>,
    /// `LANG`'s answer for a range that matches no language.
    unknown: Option<String>,
    /// `UTF8`'s answer.
    utf8: Option<String>,
    #[serde(default)]
    texts: BTreeMap<String, String>,
    #[serde(default)]
    terms: BTreeMap<String, String>,
}

/// One language this extension offers.
#[derive(Debug, Clone)]
struct Language {
    tag: String,
    name: String,
    listing: String,
    changed: String,
    unknown: String,
    utf8: String,
    texts: Vec<(String, String)>,
    terms: Vec<(String, String)>,
}

impl Language {
    fn english() -> Language {
        Language {
            tag: "en".into(),
            name: "English".into(),
            listing: "Language listing follows".into(),
            changed: "Language changed".into(),
            unknown: "no such language".into(),
            utf8: "UTF-8 mode enabled".into(),
            texts: Vec::new(),
            terms: Vec::new(),
        }
    }

    fn parse(text: &str, origin: &str) -> Result<Language, PluginError> {
        let file: CatalogFile = poppet_sdk::config::parse(text)
            .map_err(|e| PluginError::config(format!("catalog {origin}: {e}")))?;
        let english = Language::english();
        Ok(Language {
            tag: file.tag.to_ascii_lowercase(),
            name: file.name,
            listing: file.listing.unwrap_or(english.listing),
            changed: file.changed.unwrap_or(english.changed),
            unknown: file.unknown.unwrap_or(english.unknown),
            utf8: file.utf8.unwrap_or(english.utf8),
            texts: file.texts.into_iter().collect(),
            terms: file.terms.into_iter().collect(),
        })
    }
}

/// The extension: English first, then the catalogs in the order given.
#[derive(Debug)]
struct Lang {
    languages: Vec<Language>,
    default: usize,
}

impl Lang {
    fn new(settings: Settings) -> Result<Lang, PluginError> {
        let mut languages = vec![
            Language::english(),
            Language::parse(GERMAN, "de (built in)")?,
        ];
        for path in &settings.catalog_files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| PluginError::io(format_args!("catalog {}", path.display()), &e))?;
            let language = Language::parse(&text, &path.display().to_string())?;
            if let Some(other) = languages.iter().position(|l| l.tag == language.tag) {
                if other == 0 {
                    return Err(PluginError::config(format!(
                        "catalog {}: English is the core's own language",
                        path.display()
                    )));
                }
                // A site's file replaces the built-in catalog of the same language.
                languages[other] = language;
            } else {
                languages.push(language);
            }
        }
        let wanted = settings.default_language.as_deref().unwrap_or("en");
        let default = languages
            .iter()
            .position(|l| l.tag.eq_ignore_ascii_case(wanted))
            .ok_or_else(|| {
                PluginError::config(format!(
                    "default_language {wanted:?} is none of the languages offered ({})",
                    tags(&languages)
                ))
            })?;
        Ok(Lang { languages, default })
    }

    /// The session's current language (English if the core reports one this plugin lacks).
    fn current(&self, call: &ExtensionCall) -> &Language {
        let tag = call.session.language.as_deref().unwrap_or("en");
        self.languages
            .iter()
            .find(|l| l.tag.eq_ignore_ascii_case(tag))
            .unwrap_or(&self.languages[0])
    }

    /// RFC 4647 §3.3.1 basic filtering: the first language whose tag equals the range or starts
    /// with it followed by `-`; `*` is the default.
    fn matching(&self, range: &str) -> Option<&Language> {
        if range == "*" {
            return self.languages.get(self.default);
        }
        let range = range.to_ascii_lowercase();
        self.languages.iter().find(|l| {
            l.tag == range
                || l.tag
                    .strip_prefix(&range)
                    .is_some_and(|rest| rest.starts_with('-'))
        })
    }

    fn lang(&self, call: &ExtensionCall) -> Reply {
        let current = self.current(call);
        let Some(range) = call.args.first() else {
            let lines = self
                .languages
                .iter()
                .map(|l| format!("{} {}", l.tag, l.name))
                .collect();
            return Reply::multi(current.listing.clone(), lines);
        };
        match self.matching(range) {
            Some(language) => Reply::ok(format!("{} {}", language.tag, language.changed))
                .with_change(SessionChange {
                    language: Some(language.tag.clone()),
                    ..SessionChange::default()
                }),
            None => Reply::err(format!("{}: {range}", current.unknown)),
        }
    }
}

fn tags(languages: &[Language]) -> String {
    languages
        .iter()
        .map(|l| l.tag.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl CommandExtension for Lang {
    fn verbs(&self) -> Vec<VerbSpec> {
        vec![
            VerbSpec {
                verb: "UTF8".into(),
                states: states::AUTHORIZATION,
                // RFC 6856 §2: USER means UTF-8 user names and passwords are accepted.
                capability: Some("UTF8 USER".into()),
                max_args: 0,
            },
            VerbSpec {
                verb: "LANG".into(),
                states: states::AUTHORIZATION | states::TRANSACTION,
                capability: Some("LANG".into()),
                max_args: 1,
            },
        ]
    }

    async fn handle(&self, call: ExtensionCall) -> Result<Reply, PluginError> {
        Ok(match call.verb.as_str() {
            "UTF8" => Reply::ok(self.current(&call).utf8.clone()).with_change(SessionChange {
                utf8: true,
                ..SessionChange::default()
            }),
            "LANG" => self.lang(&call),
            other => Reply::err(format!("{other} is not a verb of ext-lang")),
        })
    }

    fn catalogs(&self) -> Vec<Catalog> {
        self.languages[1..]
            .iter()
            .map(|l| Catalog {
                tag: l.tag.clone(),
                name: l.name.clone(),
                texts: l.texts.clone(),
                terms: l.terms.clone(),
            })
            .collect()
    }
}

poppet_sdk::export_plugin! {
    name: "ext-lang",
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        extension "lang" => |settings| {
            let settings: Settings = poppet_sdk::config::parse(settings)?;
            Lang::new(settings)
        },
    ],
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{Lang, Settings};
    use futures_lite::future::block_on;
    use poppet_sdk::{CommandExtension, ExtensionCall, SessionView};

    fn call(verb: &str, args: &[&str], language: Option<&str>) -> ExtensionCall {
        ExtensionCall {
            verb: verb.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            session: SessionView {
                language: language.map(str::to_owned),
                ..SessionView::default()
            },
        }
    }

    fn lang() -> Lang {
        Lang::new(Settings::default()).expect("built-in catalogs parse")
    }

    #[test]
    fn listing_names_every_language_in_the_current_one() {
        let reply = block_on(lang().handle(call("LANG", &[], Some("de")))).unwrap();
        assert!(reply.ok);
        assert_eq!(reply.text, "Sprachen folgen");
        assert_eq!(
            reply.lines.as_deref(),
            Some(&["en English".to_owned(), "de Deutsch".to_owned()][..])
        );
    }

    #[test]
    fn ranges_match_by_basic_filtering() {
        let lang = lang();
        let select = |range: &str| {
            let reply = block_on(lang.handle(call("LANG", &[range], None))).unwrap();
            (reply.ok, reply.change.language, reply.text)
        };
        assert_eq!(
            select("DE"),
            (true, Some("de".into()), "de Sprache gewechselt".into())
        );
        assert_eq!(select("en").1.as_deref(), Some("en"));
        assert_eq!(select("*").1.as_deref(), Some("en"));
        // A longer range does not match a shorter tag (RFC 4647 §3.3.1), nor does a prefix
        // that is not a whole subtag.
        assert_eq!(
            select("de-CH"),
            (false, None, "no such language: de-CH".into())
        );
        assert!(!select("d").0);
    }

    #[test]
    fn site_catalogs_add_and_replace_languages() {
        let dir = tempfile::tempdir().unwrap();
        let sv = dir.path().join("sv.ron");
        std::fs::write(
            &sv,
            r#"(tag: "sv-SE", name: "Svenska", changed: "Språket ändrat",
                texts: {"no-such-message": "inget sådant meddelande"})"#,
        )
        .unwrap();
        let lang = Lang::new(Settings {
            catalog_files: vec![sv],
            default_language: Some("sv-se".into()),
        })
        .unwrap();
        let catalogs = lang.catalogs();
        assert_eq!(
            catalogs.iter().map(|c| c.tag.as_str()).collect::<Vec<_>>(),
            ["de", "sv-se"]
        );
        let reply = block_on(lang.handle(call("LANG", &["sv"], None))).unwrap();
        assert_eq!(reply.text, "sv-se Språket ändrat");
        let reply = block_on(lang.handle(call("LANG", &["*"], None))).unwrap();
        assert_eq!(reply.change.language.as_deref(), Some("sv-se"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let err = Lang::new(Settings {
            catalog_files: vec!["/nonexistent/xx.ron".into()],
            default_language: None,
        })
        .unwrap_err();
        assert!(err.message.contains("/nonexistent/xx.ron"), "{err}");
        let err = Lang::new(Settings {
            catalog_files: vec![],
            default_language: Some("fr".into()),
        })
        .unwrap_err();
        assert!(err.message.contains("en, de"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("broken.ron");
        std::fs::write(&broken, "(tag: \"fr\", name: )").unwrap();
        let err = Lang::new(Settings {
            catalog_files: vec![broken],
            default_language: None,
        })
        .unwrap_err();
        assert!(err.message.contains("broken.ron"), "{err}");
    }

    #[test]
    fn utf8_asks_the_core_for_utf8_mode() {
        let reply = block_on(lang().handle(call("UTF8", &[], None))).unwrap();
        assert!(reply.ok && reply.change.utf8);
        assert_eq!(reply.change.language, None);
    }
}
