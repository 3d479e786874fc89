//! Architecture invariants from DESIGN.md, read from `cargo metadata`: plugins depend on the SDK and
//! never on the server; nothing depends on a plugin crate; the SDK and the engine stay free of the
//! server and of I/O runtimes.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

/// Normal (non-dev) dependencies of every workspace package; optional ones are marked with a `?` suffix.
fn dependencies() -> HashMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(poppet_testkit::workspace_root())
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() || d["kind"] == "normal")
                .map(|d| {
                    let name = d["name"].as_str().unwrap();
                    if d["optional"] == true {
                        format!("{name}?")
                    } else {
                        name.to_owned()
                    }
                })
                .collect();
            (p["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

fn is_plugin(name: &str) -> bool {
    name.starts_with("poppet-store-")
        || name.starts_with("poppet-auth-")
        || name.starts_with("poppet-ext-")
        || name.starts_with("poppet-test-")
}

#[test]
fn plugins_depend_on_the_sdk_and_never_on_the_server() {
    let deps = dependencies();
    let plugins: Vec<_> = deps.keys().filter(|n| is_plugin(n)).collect();
    assert!(plugins.len() >= 3, "found plugins {plugins:?}");
    for p in plugins {
        let d = &deps[p];
        assert!(
            !d.iter()
                .any(|x| x == "poppet" || x == "poppet-proto" || x == "poppet-testkit"),
            "{p} depends on {d:?}"
        );
    }
}

#[test]
fn nothing_depends_on_a_plugin_crate() {
    for (name, d) in dependencies() {
        assert!(
            !d.iter().any(|x| is_plugin(x)),
            "{name} depends on a plugin: {d:?}"
        );
    }
}

#[test]
fn sdk_and_engine_stay_small() {
    let deps = dependencies();
    for forbidden in ["poppet", "poppet-proto", "smol", "tokio", "libloading"] {
        assert!(
            !deps["poppet-sdk"].iter().any(|x| x == forbidden),
            "sdk must not depend on {forbidden}"
        );
    }
    // The host-side loader is optional, behind the `host` feature, so plugins never link it.
    assert!(
        deps["poppet-sdk"].iter().any(|x| x == "libloading?"),
        "{:?}",
        deps["poppet-sdk"]
    );
    for forbidden in ["poppet", "poppet-sdk", "smol", "tokio", "serde", "ron"] {
        assert!(
            !deps["poppet-proto"].iter().any(|x| x == forbidden),
            "proto must not depend on {forbidden}"
        );
    }
}
