//! Keeps the book's reference pages true to the code.
//!
//! - The configuration reference: for every section of the server's config and every shipped
//!   plugin's settings, the real `poppet check` is asked which keys it accepts (a config with an
//!   unknown key makes the serde types list them all), and the book's table for that section must
//!   list exactly those keys. Then a config that writes out every default the tables give as a
//!   literal must be accepted, so a documented default is at least a valid value of its key; for
//!   the server's own sections it must also parse to the same settings as leaving the keys out,
//!   so the documented default is the code's default.
//! - The standards page: every test it names as `path::function` exists.

#![allow(clippy::unwrap_used)]

use poppet_testkit::{TestServer, artifacts, check_text, workspace_root};
use std::collections::BTreeSet;
use std::path::Path;

/// A key that no section accepts.
const UNKNOWN: &str = "zz_not_a_key";

/// One section of the config and where the book documents it.
struct Section {
    /// For messages.
    name: &'static str,
    /// The page (relative to the repository root) and the heading the key table follows.
    page: &'static str,
    heading: &'static str,
    /// A whole config with `{}` where keys of this section go (after its required keys).
    template: fn(&Path) -> String,
}

fn lib(package: &str) -> String {
    artifacts().library(package).display().to_string()
}

/// The parts of a valid config a section's template fills in.
#[derive(Default)]
struct Parts<'a> {
    top: &'a str,
    listener: &'a str,
    passwd: &'a str,
    maildir: &'a str,
    plugins: &'a str,
}

/// A valid config: the passwd-file and maildir plugins, one listener, and `parts`.
fn base(dir: &Path, parts: Parts<'_>) -> String {
    let users = workspace_root().join("examples/demo/users");
    format!(
        r#"(
    listeners: [(address: "127.0.0.1:0", {listener})],
    plugins: [
        (library: "{passwd}", kind: auth, name: "passwd", settings: (file: "{users}", {passwd_extra})),
        (library: "{maildir}", kind: store, name: "maildir", settings: (path: "{mail}/%u/Maildir", {maildir_extra})),
        {plugins}
    ],
    auth: "passwd",
    store: "maildir",
    {top}
)"#,
        listener = parts.listener,
        passwd_extra = parts.passwd,
        maildir_extra = parts.maildir,
        plugins = parts.plugins,
        top = parts.top,
        passwd = lib("poppet-auth-passwd"),
        maildir = lib("poppet-store-maildir"),
        users = users.display(),
        mail = dir.join("mail").display(),
    )
}

fn plugin(package: &str, kind: &str, name: &str, settings: &str) -> String {
    format!(
        r#"(library: "{}", kind: {kind}, name: "{name}", settings: ({settings})),"#,
        lib(package)
    )
}

/// `base` with only `plugins` set.
fn with_plugin(dir: &Path, entry: &str) -> String {
    base(
        dir,
        Parts {
            plugins: entry,
            ..Parts::default()
        },
    )
}

fn sections() -> Vec<Section> {
    const CONFIG: &str = "book/src/configuration.md";
    let section = |name, page, heading, template| Section {
        name,
        page,
        heading,
        template,
    };
    vec![
        section("top level", CONFIG, "## Top-level keys", |dir| {
            base(
                dir,
                Parts {
                    top: "{}",
                    ..Parts::default()
                },
            )
        }),
        section("listeners", CONFIG, "## listeners", |dir| {
            base(
                dir,
                Parts {
                    listener: "{}",
                    ..Parts::default()
                },
            )
        }),
        section("tls", CONFIG, "## tls", |dir| {
            let top = format!(
                r#"tls: (cert: "{d}/cert.pem", key: "{d}/key.pem", {{}}),"#,
                d = dir.display()
            );
            base(
                dir,
                Parts {
                    top: &top,
                    listener: "tls: none",
                    ..Parts::default()
                },
            )
        }),
        section("limits", CONFIG, "## limits", |dir| {
            base(
                dir,
                Parts {
                    top: "limits: ({}),",
                    ..Parts::default()
                },
            )
        }),
        section("logging", CONFIG, "## logging", |dir| {
            base(
                dir,
                Parts {
                    top: "logging: ({}),",
                    ..Parts::default()
                },
            )
        }),
        section("metrics", CONFIG, "## metrics", |dir| {
            let top = r#"metrics: (address: "127.0.0.1:0", {}),"#;
            base(
                dir,
                Parts {
                    top,
                    ..Parts::default()
                },
            )
        }),
        section("plugin entry", CONFIG, "## plugins", |dir| {
            let entry = format!(
                r#"(library: "{}", kind: extension, name: "hello", {{}}),"#,
                lib("poppet-hello-extension")
            );
            with_plugin(dir, &entry)
        }),
        section(
            "auth-passwd settings",
            CONFIG,
            "## The auth-passwd plugin",
            |dir| {
                base(
                    dir,
                    Parts {
                        passwd: "{}",
                        ..Parts::default()
                    },
                )
            },
        ),
        section(
            "store-maildir settings",
            CONFIG,
            "## The store-maildir plugin",
            |dir| {
                base(
                    dir,
                    Parts {
                        maildir: "{}",
                        ..Parts::default()
                    },
                )
            },
        ),
        section(
            "store-mbox settings",
            CONFIG,
            "## The store-mbox plugin",
            |dir| with_plugin(dir, &plugin("poppet-store-mbox", "store", "mbox", "{}")),
        ),
        section(
            "auth-ldap settings",
            "book/src/ldap.md",
            "## All settings",
            |dir| {
                let settings = r#"url: "ldap://127.0.0.1:1", base_dn: "dc=example,dc=org", {}"#;
                with_plugin(dir, &plugin("poppet-auth-ldap", "auth", "ldap", settings))
            },
        ),
        section(
            "login-delay settings",
            "book/src/extensions.md",
            "### login-delay",
            |dir| {
                let settings = format!(r#"state_file: "{}/ld", {{}}"#, dir.display());
                let entry = plugin(
                    "poppet-ext-login-delay",
                    "extension",
                    "login-delay",
                    &settings,
                );
                with_plugin(dir, &entry)
            },
        ),
        section(
            "ext-lang settings",
            "book/src/languages.md",
            "### Settings",
            |dir| with_plugin(dir, &plugin("poppet-ext-lang", "extension", "lang", "{}")),
        ),
        section(
            "audit settings",
            "book/src/extensions.md",
            "### audit",
            |dir| {
                let settings = format!(r#"file: "{}/audit.jsonl", {{}}"#, dir.display());
                with_plugin(
                    dir,
                    &plugin("poppet-ext-audit", "extension", "audit", &settings),
                )
            },
        ),
    ]
}

/// One row of a reference table: its keys and the default cell.
#[derive(Debug)]
struct Row {
    keys: Vec<String>,
    default: String,
}

/// The texts between backticks in `cell`.
fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The rows of the first table with a `key` column after `heading` on `page`.
fn table(page: &str, heading: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(workspace_root().join(page)).unwrap();
    let mut lines = text.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "{page}: no heading {heading:?}");
    let mut lines = lines.skip_while(|l| !l.starts_with("| key |"));
    let header = lines
        .next()
        .unwrap_or_else(|| panic!("{page}: no key table after {heading:?}"));
    let columns: Vec<&str> = header.split('|').map(str::trim).collect();
    let default_col = columns.iter().position(|c| *c == "default").unwrap();
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            Row {
                keys: backticked(cells[1]),
                default: cells[default_col].to_owned(),
            }
        })
        .collect()
}

/// The keys the section accepts, as the real binary lists them when it meets an unknown one.
fn accepted_keys(section: &Section, dir: &Path) -> BTreeSet<String> {
    let config = (section.template)(dir).replace("{}", &format!("{UNKNOWN}: 0,"));
    let (ok, text) = check_text(dir, "unknown.ron", &config);
    assert!(
        !ok,
        "{}: an unknown key was accepted:\n{config}",
        section.name
    );
    let expected = text
        .split_once(&format!("`{UNKNOWN}`"))
        .and_then(|(_, rest)| rest.split_once("expected"))
        .map(|(_, list)| list.lines().next().unwrap_or_default())
        .unwrap_or_else(|| panic!("{}: no list of expected keys in:\n{text}", section.name));
    backticked(expected).into_iter().collect()
}

#[test]
fn the_configuration_reference_lists_exactly_the_accepted_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for section in sections() {
        let documented: BTreeSet<String> = table(section.page, section.heading)
            .into_iter()
            .flat_map(|r| r.keys)
            .collect();
        let accepted = accepted_keys(&section, dir.path());
        for key in accepted.difference(&documented) {
            problems.push(format!(
                "{}: `{key}` is accepted but not documented in {} under {:?}",
                section.name, section.page, section.heading
            ));
        }
        for key in documented.difference(&accepted) {
            problems.push(format!(
                "{}: `{key}` is documented in {} but not accepted",
                section.name, section.page
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// `key: value` for every row whose default cell is only literals: one for all its keys, or one each.
fn documented_defaults(rows: &[Row]) -> String {
    let mut out = String::new();
    for row in rows {
        let values = backticked(&row.default);
        let literal_only = !values.is_empty()
            && row.default.replace('`', "").replace(", ", "").trim()
                == values.concat().replace(", ", "");
        if !literal_only {
            continue;
        }
        for (i, key) in row.keys.iter().enumerate() {
            let value = if values.len() == row.keys.len() {
                &values[i]
            } else {
                &values[0]
            };
            out.push_str(&format!("{key}: {value}, "));
        }
    }
    out
}

#[test]
fn a_config_with_every_documented_default_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    // The tls section's documented default (`generate_self_signed: false`) needs the files to
    // exist: the server makes them at its first start, as in the quick start.
    let tls = &sections()[2];
    let config = (tls.template)(dir.path()).replace("{}", "generate_self_signed: true");
    drop(TestServer::start(dir.path(), &config));
    let mut problems = Vec::new();
    for section in sections() {
        let rows = table(section.page, section.heading);
        let defaults = documented_defaults(&rows);
        let config = (section.template)(dir.path()).replace("{}", &defaults);
        let (ok, text) = check_text(dir.path(), "defaults.ron", &config);
        if !ok {
            problems.push(format!("{} with `{defaults}`: {text}", section.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_standards_page_names_tests_that_exist() {
    let root = workspace_root();
    let page = std::fs::read_to_string(root.join("book/src/standards.md")).unwrap();
    let mut missing = Vec::new();
    let mut n = 0;
    for reference in backticked(&page) {
        let Some((path, function)) = reference.split_once("::") else {
            continue;
        };
        if !path.ends_with(".rs") {
            continue;
        }
        n += 1;
        let found = std::fs::read_to_string(root.join(path)).is_ok_and(|source| {
            source.contains(&format!("fn {function}("))
                || source.contains(&format!("fn {function}<"))
        });
        if !found {
            missing.push(reference);
        }
    }
    assert!(n >= 30, "only {n} test references found");
    assert!(
        missing.is_empty(),
        "tests named in standards.md that do not exist: {missing:?}"
    );
}

#[test]
fn the_documented_server_defaults_are_the_codes_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("poppet.ron");
    let parse = |text: &str| poppet::Config::parse(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    for section in sections() {
        // What each server section's keys turn into (plugin sections are the plugins' business,
        // checked above by parsing).
        let settings = |c: &poppet::Config| -> String {
            match section.name {
                "top level" => format!(
                    "{:?} {:?} {:?} {:?} {:?}",
                    c.extensions, c.apop, c.greeting, c.limits, c.log_level
                ),
                "listeners" => format!("{:?}", c.listeners),
                "tls" => format!("{:?}", c.tls),
                "limits" => format!("{:?}", c.limits),
                "logging" => c.log_level.clone(),
                _ => String::new(),
            }
        };
        let rows = table(section.page, section.heading);
        let written = (section.template)(dir.path()).replace("{}", &documented_defaults(&rows));
        let left_out = (section.template)(dir.path()).replace("{}", "");
        let (written, left_out) = (settings(&parse(&written)), settings(&parse(&left_out)));
        if !written.is_empty() {
            checked += 1;
        }
        assert_eq!(
            written, left_out,
            "{}: the documented defaults differ from the code's",
            section.name
        );
    }
    assert_eq!(checked, 5);
}

#[test]
fn every_include_names_a_file_and_an_anchor_that_exist() {
    // mdBook includes nothing, with only a warning, when an anchor was renamed in the code.
    let src = workspace_root().join("book/src");
    let mut n = 0;
    let mut broken = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let page = entry.unwrap().path();
        if page.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&page).unwrap();
        for include in text.split("{{#include ").skip(1) {
            let target = include.split("}}").next().unwrap().trim();
            n += 1;
            let (file, anchor) = match target.split_once(':') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target, None),
            };
            let Ok(included) = std::fs::read_to_string(src.join(file)) else {
                broken.push(format!("{}: {target}: no such file", page.display()));
                continue;
            };
            // Line ranges (`:3:`) need no anchor; named anchors must open and close.
            if let Some(anchor) = anchor.filter(|a| !a.starts_with(|c: char| c.is_ascii_digit())) {
                let has = |mark: &str| included.contains(&format!("{mark}: {anchor}\n"));
                if !has("ANCHOR") || !has("ANCHOR_END") {
                    broken.push(format!(
                        "{}: {target}: no anchor `{anchor}`",
                        page.display()
                    ));
                }
            }
        }
    }
    assert!(n >= 20, "only {n} includes found");
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
