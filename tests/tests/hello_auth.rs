//! The book's auth-plugin tutorial crate (`examples/hello-auth`) end to end: loaded by the real server
//! through dlopen, logged into by real clients (curl and Python's poplib), and its settings errors
//! reported with their position.

#![allow(clippy::unwrap_used)]

use poppet_testkit::{
    Client, TestServer, artifacts, copy_dir, demo_maildir, have_tool, maildir_messages,
    workspace_root,
};
use std::path::Path;
use std::process::Command;

/// The demo user's hash (password "demo"), taken from the committed passwd-file.
fn demo_hash() -> String {
    let users = std::fs::read_to_string(workspace_root().join("examples/demo/users")).unwrap();
    let line = users.lines().find(|l| l.starts_with("demo:")).unwrap();
    line.split(':').nth(1).unwrap().to_owned()
}

/// A config with the hello-auth table `users` (RON list entries) and a maildir store under `dir`.
fn config(dir: &Path, users: &str) -> String {
    format!(
        r#"(
    listeners: [(address: "127.0.0.1:0")],
    plugins: [
        (library: "{auth}", kind: auth, name: "table", settings: (users: [{users}])),
        (library: "{store}", kind: store, name: "maildir", settings: (path: "{mail}/%u/Maildir")),
    ],
    auth: "table",
    store: "maildir",
)"#,
        auth = artifacts().library("poppet-hello-auth").display(),
        store = artifacts().library("poppet-store-maildir").display(),
        mail = dir.join("mail").display(),
    )
}

#[test]
fn the_table_logs_users_in_and_names_their_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&demo_maildir(), &dir.path().join("mail/demo/Maildir"));
    // alice's mail is somewhere the path template would not find it: the table says where.
    let alice_mail = dir.path().join("elsewhere/alice");
    copy_dir(&demo_maildir(), &alice_mail);
    let hash = demo_hash();
    let users = format!(
        r#"(name: "demo", password: "{hash}"), (name: "alice", password: "{{PLAIN}}wonderland", mailbox: "{}")"#,
        alice_mail.display()
    );
    let server = TestServer::start(dir.path(), &config(dir.path(), &users));
    assert!(
        server.log().contains("users in the table: 2"),
        "{}",
        server.log()
    );

    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    let n = maildir_messages(&dir.path().join("mail/demo/Maildir")).len();
    assert!(c.cmd("STAT").starts_with(&format!("+OK {n} ")));
    c.cmd("QUIT");

    // Wrong password and unknown user get the same answer.
    let mut c = Client::connect(server.addr);
    assert!(c.cmd("USER demo").starts_with("+OK"));
    let wrong = c.cmd("PASS nope");
    let mut c = Client::connect(server.addr);
    assert!(c.cmd("USER nobody").starts_with("+OK"));
    let unknown = c.cmd("PASS demo");
    assert!(wrong.starts_with("-ERR [AUTH]"), "{wrong}");
    assert_eq!(wrong, unknown);

    // curl, a real client, reads alice's mail from the mailbox the table named.
    if have_tool("curl") {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "60"])
            .arg(format!("pop3://alice:wonderland@{}/", server.addr))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            list.lines().count(),
            maildir_messages(&alice_mail).len(),
            "{list}"
        );
    } else {
        poppet_testkit::skip("curl is not installed");
    }
    // And so does Python's poplib.
    if have_tool("python3") {
        let script = format!(
            "import poplib\np = poplib.POP3('127.0.0.1', {})\np.user('demo')\np.pass_('demo')\nprint(p.stat()[0])\np.quit()\n",
            server.addr.port()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), n.to_string());
    } else {
        poppet_testkit::skip("python3 is not installed");
    }
}

#[test]
fn bad_settings_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"(name: "x", password: "{MD5}abc")"#,
            "user \"x\": password",
        ),
        (
            r#"(name: "x", password: "{PLAIN}a"), (name: "x", password: "{PLAIN}b")"#,
            "listed twice",
        ),
        (r#"(name: "x", pasword: "{PLAIN}a")"#, "pasword"),
    ];
    for (users, needle) in cases {
        let (ok, text) =
            poppet_testkit::check_text(dir.path(), "bad.ron", &config(dir.path(), users));
        assert!(!ok, "{users}: {text}");
        assert!(text.contains(needle), "{users}: {text}");
    }
}

#[test]
fn the_tutorial_config_checks() {
    // The book's config (bare library names, found next to the binary) is valid as committed.
    let (ok, text) = poppet_testkit::check_file(Path::new("examples/hello-auth/poppet.ron"));
    assert!(ok, "{text}");
    assert!(text.contains("plugin auth `table`: hello-auth"), "{text}");
}
