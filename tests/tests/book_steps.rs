//! Follows the book's tutorials the way a reader does: the shell blocks of the quick start and the
//! tutorial pages, marked with an HTML comment the rendered page does not show, run in order
//! against the real build, byte for byte as the page prints them.
//!
//! ```text
//! <!-- step -->                                           run it; it must exit 0
//! <!-- step: needs fetchmail -->                           the same, when fetchmail (or any tool
//!                                                        named there) is installed
//!                                                        (otherwise the step is skipped, and says so)
//! <!-- step: serve, wait for "listening on 127.0.0.1:11995" -->
//!                                                        start it in the background, go on once
//!                                                        its output contains that text
//! ```
//!
//! The steps run from the repository root (the pages say so) inside fresh PID, network and mount
//! namespaces, with an empty tmpfs on `/tmp`: the fixed ports and `/tmp` paths of the pages cannot
//! meet another test's or another user's, and every process a page started ends with it.

#![allow(clippy::unwrap_used)]

use poppet_testkit::workspace_root;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The pages whose shell steps are run.
const PAGES: &[&str] = &["quickstart.md", "auth-plugin.md", "extensions.md"];

/// How long a background step may take to print what the page says it prints (the first step of
/// the quick start may have to build the workspace).
const SERVE_TIMEOUT_SECS: u32 = 900;

#[derive(Debug, PartialEq)]
enum Step {
    /// Run it; with a tool name, only where that tool is installed.
    Run(String, Option<String>),
    Serve {
        code: String,
        wait_for: String,
    },
}

/// The marked shell blocks of a page, in order.
fn steps(page: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .trim()
            .strip_prefix("<!-- step")
            .and_then(|m| m.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert_eq!(
            fence, "```sh",
            "a step marker must be followed by a ```sh block"
        );
        let mut code = String::new();
        for line in lines.by_ref().take_while(|l| *l != "```") {
            code.push_str(line);
            code.push('\n');
        }
        let marker = marker.trim();
        out.push(if marker.is_empty() {
            Step::Run(code, None)
        } else if let Some(tool) = marker.strip_prefix(": needs ") {
            Step::Run(code, Some(tool.trim().to_owned()))
        } else {
            let wait_for = marker
                .strip_prefix(": serve, wait for \"")
                .and_then(|m| m.strip_suffix('"'))
                .unwrap_or_else(|| panic!("unknown step marker {marker:?}"));
            Step::Serve {
                code,
                wait_for: wait_for.to_owned(),
            }
        });
    }
    out
}

/// A bash script that sets up the namespace's loopback and `/tmp`, then runs each step from its own
/// file in `dir` (so what runs is exactly the block's text).
fn runner(steps: &[Step], dir: &Path) -> String {
    let mut script = String::from(
        "set -euo pipefail\nip link set lo up\n\
         # A repository under /tmp (a CI checkout there) would vanish under the empty /tmp: keep a\n\
         # descriptor to it and bind it back at its own path (--no-canonicalize: the path no longer\n\
         # names it).\n\
         exec 9<.\nmount -t tmpfs tmpfs /tmp\n\
         if [ ! -e \"$PWD/book\" ]; then\n\
         mkdir -p \"$PWD\"; mount --no-canonicalize --bind /proc/self/fd/9 \"$PWD\"; cd \"$PWD\"\n\
         fi\nexec 9<&-\necho '== namespace ready'\n",
    );
    for (i, step) in steps.iter().enumerate() {
        let file = dir.join(format!("step-{i}.sh"));
        let (code, wait_for, needs) = match step {
            Step::Run(code, needs) => (code, None, needs.as_deref()),
            Step::Serve { code, wait_for } => (code, Some(wait_for), None),
        };
        std::fs::write(&file, code).unwrap();
        let file = file.display();
        writeln!(script, "echo '== step {i}'; cat '{file}'").unwrap();
        match wait_for {
            None => match needs {
                None => writeln!(script, "bash -euo pipefail '{file}'").unwrap(),
                Some(tool) => writeln!(
                    script,
                    "if command -v {tool} >/dev/null; then bash -euo pipefail '{file}'; \
                     else echo '== skipped step {i}: {tool} is not installed'; fi"
                )
                .unwrap(),
            },
            Some(text) => {
                let log = dir.join(format!("step-{i}.log"));
                let log = log.display();
                // The background step's output goes to a file; `tail -F` follows it and grep stops
                // at the first match. `timeout` bounds the wait; a step that dies early is reported
                // with its output.
                writeln!(
                    script,
                    "bash -euo pipefail '{file}' >'{log}' 2>&1 & bg=$!\n\
                     if ! timeout {SERVE_TIMEOUT_SECS} grep -q -m1 -F '{text}' <(tail -n +1 -F --pid=$bg '{log}' 2>/dev/null); then\n\
                     echo 'step {i} never printed: {text}'; cat '{log}'; exit 1; fi"
                )
                .unwrap();
            }
        }
    }
    script.push_str("echo '== all steps passed'\n");
    script
}

/// The target directory the pages' `./target/debug` paths must point into.
fn pages_target_dir_is_ours() -> bool {
    match std::env::var_os("CARGO_TARGET_DIR") {
        None => true,
        Some(dir) => {
            let dir = PathBuf::from(dir);
            dir.canonicalize().ok() == workspace_root().join("target").canonicalize().ok()
        }
    }
}

fn run_page(name: &str) {
    let root = workspace_root();
    let page = std::fs::read_to_string(root.join("book/src").join(name)).unwrap();
    let steps = steps(&page);
    assert!(!steps.is_empty(), "{name} has no marked steps");
    if !pages_target_dir_is_ours() {
        poppet_testkit::skip("CARGO_TARGET_DIR is not ./target, which the book's steps use");
        return;
    }
    if !poppet_testkit::have_tool("unshare") || !poppet_testkit::have_tool("ip") {
        poppet_testkit::skip("unshare or ip (util-linux, iproute2) is not installed");
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("book-steps-")
        .tempdir_in(root.join("target"))
        .unwrap();
    let script = scratch.path().join("run.sh");
    std::fs::write(&script, runner(&steps, scratch.path())).unwrap();

    let mut cmd = Command::new("unshare");
    // As root the namespaces need no user namespace; otherwise map ourselves to root in one.
    if !nix_is_root() {
        cmd.arg("--map-root-user");
    }
    cmd.args(["--pid", "--fork", "--kill-child", "--net", "--mount"])
        .arg("bash")
        .arg(&script)
        .current_dir(&root);
    // cargo test sets variables describing this test crate; the reader's shell has none of them.
    poppet_testkit::without_test_crate_env(&mut cmd);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stdout.contains("== namespace ready") {
        poppet_testkit::skip(&format!("cannot create namespaces here: {stderr}"));
        return;
    }
    assert!(
        out.status.success() && stdout.contains("== all steps passed"),
        "{name}: a step failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for line in stdout.lines() {
        if let Some(reason) = line.strip_prefix("== skipped ") {
            poppet_testkit::skip(&format!("{name}: {reason}"));
        }
    }
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn step_markers_are_parsed() {
    let page = "text\n<!-- step -->\n```sh\necho a\n```\n<!-- step: serve, wait for \"x y\" -->\n```sh\nserve\n```\n```sh\nnot a step\n```\n<!-- step: needs nc -->\n```sh\nnc\n```\n";
    assert_eq!(
        steps(page),
        [
            Step::Run("echo a\n".into(), None),
            Step::Serve {
                code: "serve\n".into(),
                wait_for: "x y".into()
            },
            Step::Run("nc\n".into(), Some("nc".into())),
        ]
    );
}

#[test]
fn quickstart_steps_work() {
    run_page(PAGES[0]);
}

#[test]
fn auth_plugin_tutorial_steps_work() {
    run_page(PAGES[1]);
}

#[test]
fn extension_tutorial_steps_work() {
    run_page(PAGES[2]);
}
