//! Command extensions end to end, through real dlopen of the real plugins: the hello-extension
//! example, LOGIN-DELAY enforcement across a restart, the audit trail, verb collisions refused at
//! load, and a panicking extension contained to one command.

#![allow(clippy::unwrap_used)]

use poppet_testkit::{
    Client, TestServer, artifacts, copy_dir, demo_maildir, maildir_messages, workspace_root,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// A plugin entry for `library` (a package name) as extension `name` with `settings`.
fn entry(package: &str, name: &str, settings: &str) -> String {
    format!(
        r#"(library: "{}", kind: extension, name: "{name}", settings: {settings}),"#,
        artifacts().library(package).display()
    )
}

/// Writes users (`demo`, and `slow` with a per-user LOGIN-DELAY of 60 s) and maildirs for both
/// into `dir`, and returns a config loading `extensions` (plugin entries) with `active` enabled.
fn setup(dir: &Path, extensions: &str, active: &[&str]) -> String {
    let demo = std::fs::read_to_string(workspace_root().join("examples/demo/users")).unwrap();
    let users = dir.join("users");
    std::fs::write(
        &users,
        format!("{demo}slow:{{PLAIN}}slow-secret::::::userdb_login_delay=60\n"),
    )
    .unwrap();
    for user in ["demo", "slow"] {
        let maildir = dir.join(format!("mail/{user}/Maildir"));
        if !maildir.exists() {
            copy_dir(&demo_maildir(), &maildir);
        }
    }
    let active: Vec<String> = active.iter().map(|a| format!("{a:?}")).collect();
    format!(
        r#"(
    listeners: [(address: "127.0.0.1:0")],
    plugins: [
        (library: "{auth}", kind: auth, name: "passwd", settings: (file: "{users}")),
        (library: "{store}", kind: store, name: "maildir", settings: (path: "{mail}/%u/Maildir")),
        {extensions}
    ],
    auth: "passwd",
    store: "maildir",
    extensions: [{active}],
)"#,
        auth = artifacts().library("poppet-auth-passwd").display(),
        store = artifacts().library("poppet-store-maildir").display(),
        users = users.display(),
        mail = dir.join("mail").display(),
        active = active.join(", "),
    )
}

fn capa(c: &mut Client) -> Vec<String> {
    let (_, body) = c.multi("CAPA");
    String::from_utf8(body)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// USER/PASS; the answer to PASS.
fn try_login(c: &mut Client, user: &str, password: &str) -> String {
    let r = c.cmd(&format!("USER {user}"));
    assert!(r.starts_with("+OK"), "USER: {r}");
    c.cmd(&format!("PASS {password}"))
}

#[test]
fn xhello_greets_the_user_and_is_advertised() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(
        dir.path(),
        &entry("poppet-hello-extension", "hello", "()"),
        &["hello"],
    );
    let (ok, text) = poppet_testkit::check_text(dir.path(), "check.ron", &config);
    assert!(ok, "{text}");
    assert!(
        text.contains("plugin extension `hello`: hello-extension") && text.contains("(active)"),
        "{text}"
    );
    // The book's config for the tutorial loads it too (bare library names, found next to the binary).
    let (ok, text) = poppet_testkit::check_file(Path::new("examples/hello-extension/poppet.ron"));
    assert!(ok, "{text}");
    assert!(text.contains("plugin extension `hello`"), "{text}");

    let server = TestServer::start(dir.path(), &config);
    let n = maildir_messages(&dir.path().join("mail/demo/Maildir")).len();
    let mut c = Client::connect(server.addr);
    assert!(capa(&mut c).contains(&"XHELLO".to_owned()));
    // TRANSACTION only.
    assert!(c.cmd("XHELLO").starts_with("-ERR"));
    c.login("demo", "demo");
    assert_eq!(
        c.cmd("xhello"),
        format!("+OK hello demo, you have {n} messages")
    );
    assert!(capa(&mut c).contains(&"XHELLO".to_owned()));
    // max_args 0: the core refuses extra arguments without calling the plugin.
    assert_eq!(
        c.cmd("XHELLO there"),
        "-ERR XHELLO takes at most 0 arguments"
    );
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

#[test]
fn login_delay_refuses_a_quick_second_login_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("login-delay.state");
    let settings = format!(
        r#"(state_file: "{}", default_delay: "2s", expire: "30")"#,
        state.display()
    );
    let config = setup(
        dir.path(),
        &entry("poppet-ext-login-delay", "login-delay", &settings),
        &["login-delay"],
    );
    let server = TestServer::start(dir.path(), &config);

    // The default reaches CAPA: tagged USER before login, the user's own value after.
    let mut c = Client::connect(server.addr);
    let before = capa(&mut c);
    assert!(
        before.contains(&"LOGIN-DELAY 2 USER".to_owned()),
        "{before:?}"
    );
    assert!(before.contains(&"EXPIRE 30 USER".to_owned()), "{before:?}");
    let first = Instant::now();
    c.login("demo", "demo");
    let after = capa(&mut c);
    assert!(after.contains(&"LOGIN-DELAY 2".to_owned()), "{after:?}");
    assert!(c.cmd("QUIT").starts_with("+OK"));

    let mut c = Client::connect(server.addr);
    let refused = try_login(&mut c, "demo", "demo");
    assert!(refused.starts_with("-ERR [LOGIN-DELAY]"), "{refused}");
    // Still in AUTHORIZATION: the client may try again on the same connection.
    assert!(c.cmd("NOOP").starts_with("-ERR"));

    // Never before the delay has passed; then within a bounded number of tries.
    let allowed_from = first + Duration::from_secs(2);
    std::thread::sleep(allowed_from.saturating_duration_since(Instant::now()));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let answer = try_login(&mut c, "demo", "demo");
        if answer.starts_with("+OK") {
            break;
        }
        assert!(answer.starts_with("-ERR [LOGIN-DELAY]"), "{answer}");
        assert!(Instant::now() < deadline, "still refused after the delay");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(c.cmd("QUIT").starts_with("+OK"));

    // The per-user value (60 s from the passwd-file) wins over the default and outlives a restart.
    let mut c = Client::connect(server.addr);
    c.login("slow", "slow-secret");
    assert!(capa(&mut c).contains(&"LOGIN-DELAY 60".to_owned()));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    drop(server);
    assert!(
        std::fs::read_to_string(&state)
            .unwrap()
            .contains("\tslow\n")
    );
    let server = TestServer::start(dir.path(), &config);
    let mut c = Client::connect(server.addr);
    let refused = try_login(&mut c, "slow", "slow-secret");
    assert!(refused.starts_with("-ERR [LOGIN-DELAY]"), "{refused}");
    // The log line is written before the reply, but read by the testkit's thread: wait for it.
    assert!(
        server.wait_for_log(
            "refused by an extension: [LOGIN-DELAY]",
            Duration::from_secs(10)
        ),
        "{}",
        server.log()
    );
}

#[test]
fn audit_writes_json_lines_for_logins_deletions_and_logouts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.jsonl");
    let settings = format!(r#"(file: "{}")"#, file.display());
    let config = setup(
        dir.path(),
        &entry("poppet-ext-audit", "audit", &settings),
        &["audit"],
    );
    let server = TestServer::start(dir.path(), &config);

    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    let uidl = c.cmd("UIDL 1");
    let uidl = uidl.rsplit(' ').next().unwrap().to_owned();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    let (_, _) = c.multi("RETR 2");
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // A dropped connection commits nothing: a logout line, no deletion.
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    c.drop_connection();

    let deadline = Instant::now() + Duration::from_secs(15);
    let lines: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= 5 {
            break lines;
        }
        assert!(Instant::now() < deadline, "audit file: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["login", "delete", "logout", "login", "logout"]);
    for l in &lines {
        assert_eq!(l["user"], "demo");
        assert_eq!(l["rip"], "127.0.0.1");
        assert!(l["session"].as_u64().is_some(), "{l}");
        assert!(l["time"].as_str().unwrap().ends_with('Z'), "{l}");
    }
    assert_eq!(lines[1]["uidl"], uidl.as_str());
    assert_eq!(lines[1]["session"], lines[0]["session"]);
    assert_eq!(lines[2]["reason"], "quit");
    assert_eq!(lines[2]["retrieved"], 1);
    assert_eq!(lines[2]["deleted"], 1);
    assert_eq!(lines[4]["reason"], "disconnected");
    assert_eq!(lines[4]["deleted"], 0);
    assert_ne!(lines[3]["session"], lines[0]["session"]);
}

#[test]
fn verbs_that_collide_are_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let twin = entry("poppet-test-faulty", "hello-twin", "()");
    let hello = entry("poppet-hello-extension", "hello", "()");
    let config = setup(
        dir.path(),
        &format!("{hello}\n{twin}"),
        &["hello", "hello-twin"],
    );
    let (ok, text) = poppet_testkit::check_text(dir.path(), "check.ron", &config);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "extension `hello-twin` declares verb XHELLO, which extension `hello` already provides"
        ),
        "{text}"
    );
    // Loaded but inactive, the twin is harmless.
    let config = setup(dir.path(), &format!("{hello}\n{twin}"), &["hello"]);
    let (ok, text) = poppet_testkit::check_text(dir.path(), "check.ron", &config);
    assert!(ok, "{text}");

    let thief = entry("poppet-test-faulty", "retr-thief", "()");
    let config = setup(dir.path(), &thief, &["retr-thief"]);
    let (ok, text) = poppet_testkit::check_text(dir.path(), "check.ron", &config);
    assert!(!ok, "{text}");
    assert!(
        text.contains("extension `retr-thief` declares verb RETR, which the core already provides"),
        "{text}"
    );
    // One line, pointing at the entry in the config.
    let line = text.lines().find(|l| l.contains("declares verb")).unwrap();
    assert!(line.contains("check.ron:"), "{line}");
}

#[test]
fn a_panicking_extension_costs_one_command_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(
        dir.path(),
        &entry("poppet-test-faulty", "faulty", "()"),
        &["faulty"],
    );
    let server = TestServer::start(dir.path(), &config);
    let mut c = Client::connect(server.addr);
    let before = c.cmd("XPANIC");
    assert!(before.starts_with("-ERR [SYS/TEMP]"), "{before}");
    c.login("demo", "demo");
    let r = c.cmd("XPANIC now");
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}");
    assert!(c.cmd("STAT").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    // The session-end hook panics too: logged, and the server carries on.
    assert!(server.wait_for_log("plugin error in at_quit", Duration::from_secs(15)));
    assert!(server.log().contains("plugin error in extension"));
    let mut c = Client::connect(server.addr);
    assert!(c.greeting.starts_with("+OK"));
    c.login("demo", "demo");
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

/// RFC 6856 through the real ext-lang plugin: UTF8 gates UTF-8 user names, LANG lists and selects
/// languages, the core's own texts (errors, +OK lines, the QUIT line) come out in German while
/// protocol data and plugin texts do not change, and `poppet check` reports the catalog complete.
#[test]
fn lang_and_utf8_translate_the_core_and_admit_utf8_user_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(
        dir.path(),
        &entry("poppet-ext-lang", "lang", "()"),
        &["lang"],
    );
    // A UTF-8 user, with a maildir of its own.
    let users = dir.path().join("users");
    let mut text = std::fs::read_to_string(&users).unwrap();
    text.push_str("jürgen:{PLAIN}geheim::::::\n");
    std::fs::write(&users, text).unwrap();
    copy_dir(&demo_maildir(), &dir.path().join("mail/jürgen/Maildir"));

    let (ok, report) = poppet_testkit::check_text(dir.path(), "check.ron", &config);
    assert!(ok, "{report}");
    let total = poppet_proto::text::TEMPLATES.len();
    assert!(
        report.contains(&format!(
            "language de (Deutsch): {total} of {total} texts translated\n"
        )),
        "{report}"
    );

    let server = TestServer::start(dir.path(), &config);
    let mut c = Client::connect(server.addr);
    let caps = capa(&mut c);
    assert!(caps.contains(&"UTF8 USER".to_owned()), "{caps:?}");
    assert!(caps.contains(&"LANG".to_owned()), "{caps:?}");
    // Before UTF8, a non-ASCII user name is refused with the reason; ASCII names are not affected.
    assert_eq!(
        c.cmd("USER jürgen"),
        "-ERR a user name with non-ASCII characters needs the UTF8 command first"
    );
    let (first, listing) = c.multi("LANG");
    assert_eq!(first, "+OK Language listing follows");
    assert_eq!(
        String::from_utf8(listing).unwrap(),
        "en English\r\nde Deutsch\r\n"
    );
    assert_eq!(c.cmd("LANG de-CH"), "-ERR no such language: de-CH");
    assert_eq!(c.cmd("LANG de"), "+OK de Sprache gewechselt");
    assert_eq!(
        c.cmd("RETR 1"),
        "-ERR RETR ist im Zustand AUTHORIZATION nicht erlaubt"
    );
    assert_eq!(c.cmd("UTF8"), "+OK UTF-8-Modus eingeschaltet");
    assert_eq!(c.cmd("USER jürgen"), "+OK PASS senden");
    let n = maildir_messages(&dir.path().join("mail/jürgen/Maildir")).len();
    let r = c.cmd("PASS geheim");
    assert!(
        r.starts_with(&format!(
            "+OK Angemeldet, das Postfach enthält {n} Nachrichten"
        )),
        "{r}"
    );
    // STAT is protocol data: numbers only, whatever the language.
    let stat = c.cmd("STAT");
    assert!(stat.starts_with(&format!("+OK {n} ")), "{stat}");
    assert_eq!(c.cmd("RETR"), "-ERR RETR braucht eine Nachrichtennummer");
    assert_eq!(c.cmd("DELE 99"), "-ERR keine solche Nachricht");
    assert_eq!(c.cmd("DELE 1"), "+OK Nachricht 1 gelöscht");
    // Back to English mid-session.
    assert_eq!(c.cmd("LANG en"), "+OK en Language changed");
    assert_eq!(c.cmd("DELE 1"), "-ERR message 1 already deleted");
    assert_eq!(c.cmd("LANG *"), "+OK en Language changed");
    assert_eq!(c.cmd("LANG de"), "+OK de Sprache gewechselt");
    assert_eq!(
        c.cmd("UTF8"),
        "-ERR UTF8 ist im Zustand TRANSACTION nicht erlaubt"
    );
    assert_eq!(
        c.cmd("QUIT"),
        "+OK Poppet verabschiedet sich (1 Nachrichten gelöscht)"
    );
    assert_eq!(
        maildir_messages(&dir.path().join("mail/jürgen/Maildir")).len(),
        n - 1
    );
    // Other sessions are English.
    let mut c = Client::connect(server.addr);
    assert_eq!(
        c.cmd("DELE 1"),
        "-ERR DELE is not valid in the AUTHORIZATION state"
    );
}

/// A catalog that does not fit the core's table is refused at load with the plugin, the id and the
/// config position, by `poppet check` and at start alike.
#[test]
fn a_catalog_with_an_unknown_placeholder_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("xx.ron");
    std::fs::write(
        &catalog,
        r#"(tag: "fr", name: "Français", texts: {"already-deleted": "message {numéro} déjà supprimé"})"#,
    )
    .unwrap();
    let settings = format!("(catalog_files: [{:?}])", catalog.display().to_string());
    let config = setup(
        dir.path(),
        &entry("poppet-ext-lang", "lang", &settings),
        &["lang"],
    );
    let (ok, text) = poppet_testkit::check_text(dir.path(), "check.ron", &config);
    assert!(!ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("extension `lang`"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("check.ron:"), "{line}");
    assert!(
        line.contains("already-deleted") && line.contains("{numéro}"),
        "{line}"
    );
}

/// The expected body of `XDUMP n` from the test plugin (its `dump_line`, repeated here from the
/// plugin's documented rule so the test does not trust the code under test).
fn dump_body(lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        let line = match i % 3 {
            0 => format!(".dot line {i}\r\n"),
            1 => format!("line {i} {}\r\n", "x".repeat(i % 70)),
            _ => ".\r\n".to_owned(),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// A streamed multi-line extension reply: dot-stuffed and terminated by the core, byte-exact over
/// many flushes; a stream failing before its first byte is answered `-ERR [SYS/TEMP]` and the
/// session goes on; one failing mid-way closes that connection only.
#[test]
fn streamed_extension_replies_are_stuffed_bounded_and_fail_safely() {
    let dir = tempfile::tempdir().unwrap();
    let config = setup(
        dir.path(),
        &entry("poppet-test-faulty", "streamer", "()"),
        &["streamer"],
    );
    let server = TestServer::start(dir.path(), &config);
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    for lines in [0, 1, 3, 200_000] {
        let (first, body) = c.multi(&format!("XDUMP {lines}"));
        assert_eq!(first, format!("+OK {lines} lines follow"));
        assert_eq!(body.len(), dump_body(lines).len(), "{lines} lines");
        assert!(body == dump_body(lines), "{lines} lines differ");
    }
    assert_eq!(
        c.cmd("XDUMP fail-early"),
        "-ERR [SYS/TEMP] command failed, try again later"
    );
    assert!(c.cmd("NOOP").starts_with("+OK"));
    // Mid-way: the reply cannot be taken back, so the connection ends without a terminating dot.
    let first = c.cmd("XDUMP fail-late");
    assert!(first.starts_with("+OK"), "{first}");
    let mut last = None;
    let mut lines = 0;
    while let Some(line) = c.try_line() {
        last = Some(line);
        lines += 1;
    }
    assert!(lines > 1000, "part of the body was sent: {lines} lines");
    assert_ne!(
        last.as_deref(),
        Some("."),
        "a failed stream must not look complete"
    );
    assert!(server.wait_for_log("extension reply failed mid-stream", Duration::from_secs(10)));
    // Nothing was deleted, and others are served.
    let mut c = Client::connect(server.addr);
    c.login("demo", "demo");
    assert!(c.cmd("QUIT").starts_with("+OK"));
}
