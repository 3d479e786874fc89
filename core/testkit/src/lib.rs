//! Test harness for Poppet's end-to-end tests: builds the real plugin libraries and server binary with
//! cargo, starts the server on 127.0.0.1 port 0 with a temporary config, and talks POP3 to it over a
//! real socket. Nothing here is mocked.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod artifacts;
mod client;
pub mod conformance;
mod server;

pub use artifacts::{Artifacts, artifacts, workspace_root};
pub use client::Client;
pub use server::TestServer;

use std::path::{Path, PathBuf};

/// The committed demo maildir (never modified by tests: copy it with [`copy_dir`]).
pub fn demo_maildir() -> PathBuf {
    workspace_root().join("examples/demo/Maildir")
}

/// Recursively copies a directory (files and subdirectories).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// All regular files under `cur/` and `new/` of a maildir, as (base name before `:`, full path).
pub fn maildir_messages(maildir: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for sub in ["cur", "new"] {
        let Ok(dir) = std::fs::read_dir(maildir.join(sub)) else {
            continue;
        };
        for entry in dir {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let base = name.split(':').next().unwrap_or(&name).to_owned();
            out.push((base, entry.path()));
        }
    }
    out.sort();
    out
}

/// Converts bare LF line ends to CRLF (leaving existing CRLF alone), as POP3 sends messages.
pub fn crlf(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 40);
    let mut prev = 0u8;
    for &b in data {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Runs `poppet check --config PATH` from the workspace root; success and everything it printed.
pub fn check_file(path: &Path) -> (bool, String) {
    let out = std::process::Command::new(&artifacts().poppet)
        .current_dir(workspace_root())
        .arg("check")
        .arg("--config")
        .arg(path)
        .output()
        .unwrap();
    (out.status.success(), output_text(&out))
}

/// Everything a finished command printed: its standard output, then its standard error.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Like [`check_file`] for config text, written to `dir/name`.
pub fn check_text(dir: &Path, name: &str, config: &str) -> (bool, String) {
    let path = dir.join(name);
    std::fs::write(&path, config).unwrap();
    check_file(&path)
}

/// Records that a test (or part of one) could not run, with the reason: printed on stderr, and
/// appended to `target/poppet-test-skips.txt`, which `.ci/run` prints at the end so a skip is never
/// silent (cargo hides the output of passing tests).
pub fn skip(reason: &str) {
    use std::io::Write as _;
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    eprintln!("SKIP: {test}: {reason}");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), Into::into);
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("poppet-test-skips.txt"))
    {
        let _ = writeln!(f, "{test}: {reason}");
    }
}

/// Whether the tests run as root (`id -u` is 0): network namespaces, mounts and running the server
/// as another user need it; tests that do print why they skip when not.
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Removes from `cmd`'s environment the variables cargo sets for the test crate being run
/// (`CARGO_PKG_NAME`, `CARGO_MANIFEST_DIR` and the like), so that what it starts sees the
/// environment of a shell. A reader's shell has none of them; and a cargo started with them saw a
/// different environment from the one it last built in: ring's build script asks to be rerun when
/// `CARGO_MANIFEST_DIR` or `CARGO_PKG_NAME` change, so each such build compiled ring, rustls and
/// everything above them again (about 20 s), and the next `cargo build` from a shell did it back.
pub fn without_test_crate_env(cmd: &mut std::process::Command) -> &mut std::process::Command {
    const SET_FOR_CRATES: &[&str] = &[
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_PRIMARY_",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if SET_FOR_CRATES.iter().any(|p| key.starts_with(p)) {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// Whether a command-line tool is installed; tests that need it print why they skip when it is not.
pub fn have_tool(name: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
