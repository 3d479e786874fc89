//! Builds the server binary and plugin libraries with cargo and reports where they are.
//!
//! cargo does not build cdylib members for `cargo test`, so the harness runs
//! `cargo build --message-format=json` for the packages it needs and reads the artifact paths from
//! cargo's own output. That honours `CARGO_TARGET_DIR` and the profile. It runs without the
//! variables cargo sets for the test crate ([`crate::without_test_crate_env`]), so what it builds
//! stays fresh for the next test binary and for a `cargo build` from a shell: once built, it is a
//! no-op.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The packages end-to-end tests use.
const PACKAGES: &[&str] = &[
    "poppet",
    "poppet-store-maildir",
    "poppet-store-mbox",
    "poppet-auth-passwd",
    "poppet-auth-ldap",
    "poppet-test-faulty",
    "poppet-test-wrong-abi",
    "poppet-ext-login-delay",
    "poppet-ext-audit",
    "poppet-ext-lang",
    "poppet-hello-extension",
    "poppet-hello-auth",
];

/// Paths of built artifacts.
#[derive(Debug)]
pub struct Artifacts {
    /// The `poppet` binary.
    pub poppet: PathBuf,
    /// Plugin libraries by package name.
    pub libraries: HashMap<String, PathBuf>,
}

impl Artifacts {
    /// The library of `package`, e.g. `poppet-store-maildir`.
    pub fn library(&self, package: &str) -> &PathBuf {
        self.libraries
            .get(package)
            .unwrap_or_else(|| panic!("no library built for {package}"))
    }
}

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Builds (once per test process) and returns the artifacts.
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(build)
}

fn build() -> Artifacts {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut cmd = Command::new(cargo);
    crate::without_test_crate_env(&mut cmd)
        .current_dir(workspace_root())
        .args(["build", "--message-format=json-render-diagnostics"]);
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .expect("running cargo build");
    assert!(
        output.status.success(),
        "cargo build of the test artifacts failed"
    );
    let mut poppet = None;
    let mut libraries = HashMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let kinds: Vec<&str> = msg["target"]["kind"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str())
            .collect();
        let files: Vec<PathBuf> = msg["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str())
            .map(PathBuf::from)
            .collect();
        let package = msg["target"]["name"]
            .as_str()
            .unwrap_or_default()
            .replace('_', "-");
        if kinds.contains(&"bin") && package == "poppet" {
            poppet = msg["executable"].as_str().map(PathBuf::from);
        } else if kinds.contains(&"cdylib") {
            if let Some(so) = files
                .into_iter()
                .find(|f| f.extension().is_some_and(|e| e == "so"))
            {
                libraries.insert(package, so);
            }
        }
    }
    Artifacts {
        poppet: poppet.expect("cargo reported no poppet binary"),
        libraries,
    }
}
