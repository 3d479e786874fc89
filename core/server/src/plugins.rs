//! The plugin host: finds the libraries the config names, loads each once, creates the instances with
//! their settings text and checks that extensions do not fight over verbs. Every refusal is one line
//! naming the config position and the file.

use crate::config::{Config, PluginKind, PluginSpec};
use poppet_proto::Catalog;
use poppet_sdk::host::{AuthPlugin, CreateError, ExtensionPlugin, Library, StorePlugin};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Verbs the core owns; an extension may not take them.
pub const CORE_VERBS: &[&str] = &[
    "USER", "PASS", "APOP", "QUIT", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL",
    "CAPA", "STLS", "AUTH",
];

/// A plugin problem, with the config position it comes from.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct PluginLoadError {
    /// The config file.
    pub file: PathBuf,
    /// Line of the offending entry.
    pub line: usize,
    /// Column.
    pub column: usize,
    /// One line: what, which library file, why.
    pub message: String,
}

/// What was loaded, for `poppet check` and the startup log.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    /// Kind.
    pub kind: PluginKind,
    /// Instance name.
    pub name: String,
    /// Library file.
    pub path: PathBuf,
    /// The library's declared name and version.
    pub library: String,
}

/// The active plugin instances.
#[derive(Debug)]
pub struct Plugins {
    /// The active auth backend.
    pub auth: AuthPlugin,
    /// The active mail store.
    pub store: StorePlugin,
    /// Active extensions, in config order.
    pub extensions: Vec<ExtensionPlugin>,
    /// Translations of the core's texts the extensions offer, checked at load, by lowercase tag.
    pub catalogs: HashMap<String, Arc<Catalog>>,
    /// Every instance created (active or not), in config order.
    pub loaded: Vec<LoadedPlugin>,
}

/// Where a library named in the config is.
pub fn resolve_library(library: &str, plugin_dir: Option<&Path>) -> Result<PathBuf, String> {
    if library.contains('/') {
        return Ok(PathBuf::from(library));
    }
    let dir = match plugin_dir {
        Some(d) => d.to_owned(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find the running binary to locate plugins: {e}"))?
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default(),
    };
    let file = if library.ends_with(".so") {
        library.to_owned()
    } else {
        format!("lib{library}.so")
    };
    Ok(dir.join(file))
}

enum Instance {
    Auth(AuthPlugin),
    Store(StorePlugin),
    Extension(ExtensionPlugin),
}

/// Loads and creates every plugin of `config`.
pub fn load(config: &Config) -> Result<Plugins, PluginLoadError> {
    let mut libraries: HashMap<PathBuf, Library> = HashMap::new();
    let mut instances = Vec::new();
    let mut loaded = Vec::new();
    for spec in &config.plugins {
        let fail = |at: (usize, usize), message: String| PluginLoadError {
            file: config.path.clone(),
            line: at.0,
            column: at.1,
            message,
        };
        let path = resolve_library(&spec.library, config.plugin_dir.as_deref()).map_err(|m| {
            fail(
                spec.library_at,
                format!("{} plugin `{}`: {m}", spec.kind.name(), spec.name),
            )
        })?;
        let library = match libraries.get(&path) {
            Some(l) => l.clone(),
            None => {
                let l = Library::load(&path).map_err(|e| {
                    fail(
                        spec.library_at,
                        format!("{} plugin `{}`: {e}", spec.kind.name(), spec.name),
                    )
                })?;
                libraries.insert(path.clone(), l.clone());
                l
            }
        };
        let instance = create(&library, spec).map_err(|e| match &e {
            CreateError::Failed { error, .. } if error.position.is_some() => {
                let p = error
                    .position
                    .unwrap_or(poppet_sdk::Position { line: 1, column: 1 });
                fail(
                    spec.locate(p.line, p.column),
                    format!(
                        "settings of {} plugin `{}` ({}): {}",
                        spec.kind.name(),
                        spec.name,
                        path.display(),
                        error.message
                    ),
                )
            }
            _ => fail(spec.library_at, e.to_string()),
        })?;
        log::info!(
            "loaded {} plugin `{}` from {} ({} {}, sdk {})",
            spec.kind.name(),
            spec.name,
            path.display(),
            library.name(),
            library.version(),
            library.sdk_version()
        );
        loaded.push(LoadedPlugin {
            kind: spec.kind,
            name: spec.name.clone(),
            path: path.clone(),
            library: format!("{} {}", library.name(), library.version()),
        });
        instances.push((spec, instance));
    }
    assemble(config, instances, loaded)
}

fn create(library: &Library, spec: &PluginSpec) -> Result<Instance, CreateError> {
    Ok(match spec.kind {
        PluginKind::Auth => Instance::Auth(library.create_auth(&spec.name, &spec.settings)?),
        PluginKind::Store => Instance::Store(library.create_store(&spec.name, &spec.settings)?),
        PluginKind::Extension => {
            Instance::Extension(library.create_extension(&spec.name, &spec.settings)?)
        }
    })
}

fn assemble(
    config: &Config,
    instances: Vec<(&PluginSpec, Instance)>,
    loaded: Vec<LoadedPlugin>,
) -> Result<Plugins, PluginLoadError> {
    let (mut auth, mut store) = (None, None);
    let mut extensions: Vec<(String, ExtensionPlugin, &PluginSpec)> = Vec::new();
    for (spec, instance) in instances {
        match instance {
            Instance::Auth(a) if spec.name == config.auth => auth = Some(a),
            Instance::Store(s) if spec.name == config.store => store = Some(s),
            Instance::Extension(e) if config.extensions.contains(&spec.name) => {
                extensions.push((spec.name.clone(), e, spec))
            }
            _ => {}
        }
    }
    let missing = |what: &str| PluginLoadError {
        file: config.path.clone(),
        line: 0,
        column: 0,
        message: format!("no active {what} plugin"),
    };
    let auth = auth.ok_or_else(|| missing("auth"))?;
    let store = store.ok_or_else(|| missing("store"))?;
    // Extensions keep config order; verbs must not collide with the core or each other.
    extensions.sort_by_key(|(name, _, _)| config.extensions.iter().position(|e| e == name));
    let mut owners: HashMap<String, String> = HashMap::new();
    for (name, ext, spec) in &extensions {
        for v in ext.verbs() {
            let verb = v.verb.to_ascii_uppercase();
            let clash = if CORE_VERBS.contains(&verb.as_str()) {
                Some("the core".to_owned())
            } else {
                owners.get(&verb).map(|o| format!("extension `{o}`"))
            };
            if let Some(owner) = clash {
                return Err(PluginLoadError {
                    file: config.path.clone(),
                    line: spec.library_at.0,
                    column: spec.library_at.1,
                    message: format!(
                        "extension `{name}` declares verb {verb}, which {owner} already provides"
                    ),
                });
            }
            owners.insert(verb, name.clone());
        }
    }
    let mut catalogs: HashMap<String, Arc<Catalog>> = HashMap::new();
    for (name, ext, spec) in &extensions {
        for offered in ext.catalogs() {
            let refuse = |message: String| PluginLoadError {
                file: config.path.clone(),
                line: spec.library_at.0,
                column: spec.library_at.1,
                message: format!("extension `{name}`: {message}"),
            };
            let catalog = Catalog::new(
                &offered.tag,
                &offered.name,
                offered.texts.iter().cloned(),
                offered.terms.iter().cloned(),
            )
            .map_err(|e| refuse(e.to_string()))?;
            let tag = catalog.tag().to_owned();
            if tag == "en" || catalogs.contains_key(&tag) {
                return Err(refuse(format!(
                    "language {tag} is offered twice (English is the core's own)"
                )));
            }
            catalogs.insert(tag, Arc::new(catalog));
        }
    }
    Ok(Plugins {
        auth,
        store,
        extensions: extensions.into_iter().map(|(_, e, _)| e).collect(),
        catalogs,
        loaded,
    })
}

impl Plugins {
    /// The catalog a `LANG` reply selects: `Some(None)` for English (`en`), `None` for a tag no
    /// extension offers.
    pub fn catalog(&self, tag: &str) -> Option<Option<Arc<Catalog>>> {
        let tag = tag.to_ascii_lowercase();
        if tag == "en" {
            return Some(None);
        }
        self.catalogs.get(&tag).cloned().map(Some)
    }

    /// Whether an extension offers RFC 6856's `UTF8` command; then user names with non-ASCII
    /// characters need it first.
    pub fn offers_utf8(&self) -> bool {
        self.extensions.iter().any(|e| {
            e.verbs()
                .iter()
                .any(|v| v.verb.eq_ignore_ascii_case("UTF8"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_resolve_in_the_plugin_dir() {
        let p = resolve_library("poppet_store_maildir", Some(Path::new("/opt/poppet"))).unwrap();
        assert_eq!(p, Path::new("/opt/poppet/libpoppet_store_maildir.so"));
        let p = resolve_library("custom.so", Some(Path::new("/opt/poppet"))).unwrap();
        assert_eq!(p, Path::new("/opt/poppet/custom.so"));
        let p = resolve_library("./here/libx.so", Some(Path::new("/opt/poppet"))).unwrap();
        assert_eq!(p, Path::new("./here/libx.so"));
    }

    #[test]
    fn default_plugin_dir_is_the_binary_dir() {
        let p = resolve_library("x", None).unwrap();
        let exe = std::env::current_exe().unwrap();
        assert_eq!(p.parent(), exe.parent());
    }
}
