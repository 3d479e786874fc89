//! A conformance suite any mail store plugin can run end to end: the real server binary, the real
//! plugin through dlopen, real sockets. A store describes how its mailboxes are made and read back
//! by implementing [`StoreFixture`]; each `check_*` function then starts a server on a fresh
//! mailbox and checks one promise of DESIGN.md's mail store contract:
//!
//! - LIST sizes equal the octets RETR sends, and bodies are the stored messages with CRLF line
//!   ends (LF-only lines, lines starting with `.`, `From ` lines in a body, no final newline,
//!   UTF-8 headers, a CRLF message, a multi-chunk message, identical duplicates);
//! - TOP sends the headers, the blank line and the first lines of the body;
//! - UIDLs are valid, distinct, and stable across sessions and across other messages' deletion;
//! - DELE then QUIT removes exactly those; DELE then a dropped connection, or RSET, removes none;
//! - a second session on the mailbox gets `[IN-USE]` and the first goes on;
//! - mail delivered during a session is kept by the commit and appears in the next session.

use crate::{Client, TestServer, artifacts, crlf, workspace_root};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The login the suite uses: the demo user of `examples/demo/users`.
pub const USER: &str = "demo";
const PASSWORD: &str = "demo";

/// How one store plugin makes and reads its mailboxes, for the suite.
pub trait StoreFixture {
    /// The plugin's cargo package, e.g. `"poppet-store-maildir"`.
    fn package(&self) -> &'static str;
    /// The store factory's name in that library, e.g. `"maildir"`.
    fn factory(&self) -> &'static str;
    /// The store's RON settings for mailboxes under `mail`.
    fn settings(&self, mail: &Path) -> String;
    /// Creates `user`'s mailbox under `mail` holding `messages`, in this order.
    fn create_mailbox(&self, mail: &Path, user: &str, messages: &[Vec<u8>]);
    /// Delivers one more message, as the store's MDA would (while a session may be open).
    fn deliver(&self, mail: &Path, user: &str, message: &[u8]);
    /// The messages still stored, in order, as they were given (before any CRLF conversion).
    fn remaining(&self, mail: &Path, user: &str) -> Vec<Vec<u8>>;
}

/// A running server over a fresh mailbox.
pub struct Setup {
    /// The server.
    pub server: TestServer,
    /// Where the mailboxes are.
    pub mail: PathBuf,
    /// The scratch directory (removed on drop).
    pub dir: tempfile::TempDir,
}

impl std::fmt::Debug for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup").field("mail", &self.mail).finish()
    }
}

impl Setup {
    /// Connects and logs in as [`USER`].
    pub fn login(&self) -> Client {
        let mut c = Client::connect(self.server.addr);
        c.login(USER, PASSWORD);
        c
    }
}

/// Starts a server whose user [`USER`] has a mailbox holding `messages`.
pub fn start(fixture: &dyn StoreFixture, messages: &[Vec<u8>]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mail = dir.path().join("mail");
    std::fs::create_dir_all(&mail).unwrap();
    fixture.create_mailbox(&mail, USER, messages);
    let server = TestServer::start(dir.path(), &config(fixture, dir.path(), &mail));
    Setup { server, mail, dir }
}

/// The server config: the passwd-file auth plugin with the demo users, and the store under test.
pub fn config(fixture: &dyn StoreFixture, dir: &Path, mail: &Path) -> String {
    let users = dir.join("users");
    std::fs::copy(workspace_root().join("examples/demo/users"), &users).unwrap();
    format!(
        r#"(
    listeners: [(address: "127.0.0.1:0")],
    plugins: [
        (library: "{auth}", kind: auth, name: "passwd", settings: (file: "{users}")),
        (library: "{store}", kind: store, name: "{factory}", settings: {settings}),
    ],
    auth: "passwd",
    store: "{factory}",
)"#,
        auth = artifacts().library("poppet-auth-passwd").display(),
        store = artifacts().library(fixture.package()).display(),
        users = users.display(),
        factory = fixture.factory(),
        settings = fixture.settings(mail),
    )
}

/// The messages every check starts from (see the module docs for what each one exercises).
pub fn sample_messages() -> Vec<Vec<u8>> {
    let mut big = String::from("Subject: big\nX-Note: longer than one 64 KiB read\n\n");
    for i in 0..3000 {
        big.push_str(&format!("line {i:05} {}\n", "x".repeat(60)));
    }
    big.push_str(&format!("{}\n", "y".repeat(100_000)));
    let utf8 = "From: Jörg Müller <joerg@example.org>\nSubject: Grüße aus Köln\nContent-Type: \
                text/plain; charset=utf-8\n\nHallo, schöne Grüße!\n";
    vec![
        utf8.as_bytes().to_vec(),
        b"From: a@example.org\nSubject: dots\n\n.\n..\n.leading dot\nlast\n".to_vec(),
        b"From: b@example.org\nSubject: from lines\n\nFrom here\n>From there\n>>From elsewhere\nFrom\n"
            .to_vec(),
        b"From: c@example.org\nSubject: no final newline\n\nno newline at the end".to_vec(),
        b"From: d@example.org\r\nSubject: crlf\r\n\r\nalready CRLF\r\n".to_vec(),
        b"From: e@example.org\nSubject: trailing blank line\n\nbody\n\n".to_vec(),
        utf8.as_bytes().to_vec(),
        big.into_bytes(),
    ]
}

/// A stored message as POP3 sends it: CRLF line ends, and a last line always ended.
pub fn as_sent(message: &[u8]) -> Vec<u8> {
    let mut out = crlf(message);
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        if out.ends_with(b"\r") {
            out.push(b'\n');
        } else {
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

fn uidls(c: &mut Client) -> Vec<String> {
    let (_, body) = c.multi("UIDL");
    String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_owned())
        .collect()
}

fn remaining_as_sent(fixture: &dyn StoreFixture, s: &Setup) -> Vec<Vec<u8>> {
    fixture
        .remaining(&s.mail, USER)
        .iter()
        .map(|m| as_sent(m))
        .collect()
}

/// Compares stored messages with what is expected, printing only the start of any that differ.
pub fn assert_same(got: &[Vec<u8>], want: &[Vec<u8>]) {
    let short = |m: &[u8]| String::from_utf8_lossy(&m[..m.len().min(200)]).into_owned();
    assert_eq!(
        got.len(),
        want.len(),
        "message count: got {:?}",
        got.iter().map(|m| short(m)).collect::<Vec<_>>()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g == w,
            "stored message {} differs:\n got {:?}\nwant {:?}",
            i + 1,
            short(g),
            short(w)
        );
    }
}

/// LIST sizes equal RETR octets, STAT adds them up, and every body is its message.
pub fn check_sizes_and_bodies(fixture: &dyn StoreFixture) {
    let messages = sample_messages();
    let s = start(fixture, &messages);
    let mut c = s.login();
    let expected: Vec<Vec<u8>> = messages.iter().map(|m| as_sent(m)).collect();
    let total: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(c.cmd("STAT"), format!("+OK {} {total}", expected.len()));
    let (_, list) = c.multi("LIST");
    let list = String::from_utf8(list).unwrap();
    for (i, want) in expected.iter().enumerate() {
        let n = i + 1;
        assert!(list.contains(&format!("{n} {}\r\n", want.len())), "{list}");
        let (status, body) = c.multi(&format!("RETR {n}"));
        assert_eq!(status, format!("+OK {} octets", want.len()), "message {n}");
        assert_eq!(
            body.len(),
            want.len(),
            "message {n}: RETR octets equal LIST size"
        );
        assert!(
            body == *want,
            "message {n} differs:\n got {:?}\nwant {:?}",
            String::from_utf8_lossy(&body[..body.len().min(300)]),
            String::from_utf8_lossy(&want[..want.len().min(300)])
        );
    }
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

/// TOP n 0 is the header block and the blank line; TOP n k adds k body lines.
pub fn check_top(fixture: &dyn StoreFixture) {
    let messages = sample_messages();
    let s = start(fixture, &messages);
    let mut c = s.login();
    for (i, message) in messages.iter().enumerate() {
        let n = i + 1;
        let sent = as_sent(message);
        let header_end = sent.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let (_, top0) = c.multi(&format!("TOP {n} 0"));
        assert_eq!(top0, &sent[..header_end], "TOP {n} 0");
        let mut end = header_end;
        for _ in 0..2 {
            if let Some(j) = sent[end..].windows(2).position(|w| w == b"\r\n") {
                end += j + 2;
            }
        }
        let (_, top2) = c.multi(&format!("TOP {n} 2"));
        assert_eq!(
            String::from_utf8_lossy(&top2),
            String::from_utf8_lossy(&sent[..end]),
            "TOP {n} 2"
        );
    }
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

/// UIDLs are valid and distinct (identical duplicates too), the same in the next session, and
/// unchanged for the messages that remain after others were deleted.
pub fn check_uidl_stable(fixture: &dyn StoreFixture) {
    let s = start(fixture, &sample_messages());
    let mut c = s.login();
    let first = uidls(&mut c);
    assert_eq!(first.len(), sample_messages().len());
    let distinct: HashSet<&String> = first.iter().collect();
    assert_eq!(distinct.len(), first.len(), "distinct UIDLs: {first:?}");
    for u in &first {
        assert!(
            (1..=70).contains(&u.len()) && u.bytes().all(|b| (0x21..=0x7e).contains(&b)),
            "RFC 1939 unique-id: {u:?}"
        );
    }
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let mut c = s.login();
    assert_eq!(uidls(&mut c), first, "stable across sessions");
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 3").starts_with("+OK"));
    assert!(c.cmd("QUIT").starts_with("+OK"));
    let mut c = s.login();
    let kept: Vec<String> = first
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 0 && *i != 2)
        .map(|(_, u)| u.clone())
        .collect();
    assert_eq!(
        uidls(&mut c),
        kept,
        "stable across other messages' deletion"
    );
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

/// DELE then QUIT removes exactly the deleted messages.
pub fn check_dele_quit(fixture: &dyn StoreFixture) {
    let messages = sample_messages();
    let s = start(fixture, &messages);
    let mut c = s.login();
    for n in [2, 5, 8] {
        assert!(c.cmd(&format!("DELE {n}")).starts_with("+OK"));
    }
    assert!(
        c.cmd("RETR 2").starts_with("-ERR"),
        "a deleted message is refused"
    );
    assert!(c.cmd("DELE 2").starts_with("-ERR"));
    assert!(
        c.cmd("STAT")
            .starts_with(&format!("+OK {} ", messages.len() - 3))
    );
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (3 messages deleted)");
    let want: Vec<Vec<u8>> = messages
        .iter()
        .enumerate()
        .filter(|(i, _)| ![1, 4, 7].contains(i))
        .map(|(_, m)| as_sent(m))
        .collect();
    assert_same(&remaining_as_sent(fixture, &s), &want);
}

/// DELE then a dropped connection removes nothing, and releases the mailbox.
pub fn check_dropped_connection(fixture: &dyn StoreFixture) {
    let messages = sample_messages();
    let s = start(fixture, &messages);
    let mut c = s.login();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    c.drop_connection();
    assert!(
        s.server
            .wait_for_log("reason=disconnected", Duration::from_secs(10)),
        "{}",
        s.server.log()
    );
    let want: Vec<Vec<u8>> = messages.iter().map(|m| as_sent(m)).collect();
    assert_same(&remaining_as_sent(fixture, &s), &want);
    let mut c = s.login();
    assert!(
        c.cmd("STAT")
            .starts_with(&format!("+OK {} ", messages.len()))
    );
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

/// RSET undoes DELE.
pub fn check_rset(fixture: &dyn StoreFixture) {
    let messages = sample_messages();
    let s = start(fixture, &messages);
    let mut c = s.login();
    assert!(c.cmd("DELE 1").starts_with("+OK"));
    assert!(c.cmd("RSET").starts_with("+OK"));
    assert!(
        c.cmd("STAT")
            .starts_with(&format!("+OK {} ", messages.len()))
    );
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
    assert_eq!(remaining_as_sent(fixture, &s).len(), messages.len());
}

/// A second session gets `[IN-USE]`; the first is unaffected and its QUIT frees the mailbox.
pub fn check_in_use(fixture: &dyn StoreFixture) {
    let messages = sample_messages();
    let s = start(fixture, &messages);
    let mut first = s.login();
    let mut second = Client::connect(s.server.addr);
    assert!(second.cmd(&format!("USER {USER}")).starts_with("+OK"));
    let r = second.cmd(&format!("PASS {PASSWORD}"));
    assert!(r.starts_with("-ERR [IN-USE]"), "{r}");
    assert!(
        first
            .cmd("STAT")
            .starts_with(&format!("+OK {} ", messages.len()))
    );
    assert!(first.cmd("DELE 1").starts_with("+OK"));
    assert_eq!(
        first.cmd("QUIT"),
        "+OK Poppet signing off (1 messages deleted)"
    );
    second.login(USER, PASSWORD);
    assert!(
        second
            .cmd("STAT")
            .starts_with(&format!("+OK {} ", messages.len() - 1))
    );
    assert!(second.cmd("QUIT").starts_with("+OK"));
}

/// Mail delivered during a session is not in its snapshot, survives its commit, and appears in
/// the next session.
pub fn check_delivery_during_session(fixture: &dyn StoreFixture) {
    let messages = sample_messages();
    let s = start(fixture, &messages);
    let mut c = s.login();
    let late = b"From: late@example.org\nSubject: late\n\nFrom the middle of a session\n".to_vec();
    fixture.deliver(&s.mail, USER, &late);
    assert!(
        c.cmd("STAT")
            .starts_with(&format!("+OK {} ", messages.len())),
        "the snapshot does not change"
    );
    // Message 2 has no identical twin (deleting one of twins may pin the other's UIDL in it).
    assert!(c.cmd("DELE 2").starts_with("+OK"));
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (1 messages deleted)");
    let mut want: Vec<Vec<u8>> = messages.iter().map(|m| as_sent(m)).collect();
    want.remove(1);
    want.push(as_sent(&late));
    assert_same(&remaining_as_sent(fixture, &s), &want);
    let mut c = s.login();
    assert!(
        c.cmd("STAT")
            .starts_with(&format!("+OK {} ", messages.len()))
    );
    let n = messages.len();
    let (_, body) = c.multi(&format!("RETR {n}"));
    assert_eq!(body, as_sent(&late));
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

/// One check of the suite.
pub type Check = fn(&dyn StoreFixture);

/// Every check, by name, for a test file that wants one `#[test]` each (see
/// `tests/tests/store_conformance.rs`).
pub const CHECKS: &[(&str, Check)] = &[
    ("sizes_and_bodies", check_sizes_and_bodies),
    ("top", check_top),
    ("uidl_stable", check_uidl_stable),
    ("dele_quit", check_dele_quit),
    ("dropped_connection", check_dropped_connection),
    ("rset", check_rset),
    ("in_use", check_in_use),
    ("delivery_during_session", check_delivery_during_session),
];

/// An independent, deliberately simple mboxrd writer and reader for fixtures and tests, so the
/// mbox plugin is never checked against its own parser.
pub mod mboxrd {
    use std::path::Path;

    /// The From_ line every test message gets (identical messages stay identical).
    pub const FROM_LINE: &str = "From test@example.org Mon Jan  1 00:00:00 2024";

    /// One message as an mboxrd writer stores it: From_ line, `^>*From ` lines quoted with one
    /// more `>`, a line end after a last line without one, and the separating empty line.
    pub fn entry(message: &[u8]) -> Vec<u8> {
        let mut out = format!("{FROM_LINE}\n").into_bytes();
        for line in message.split_inclusive(|&b| b == b'\n') {
            let quotes = line.iter().take_while(|&&b| b == b'>').count();
            if line[quotes..].starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line);
        }
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
        out
    }

    /// The whole file for `messages`.
    pub fn file(messages: &[Vec<u8>]) -> Vec<u8> {
        messages.iter().flat_map(|m| entry(m)).collect()
    }

    /// Reads an mboxrd file back: the messages' contents, unquoted, without the separators. A
    /// message given without a final line end comes back with one (as [`super::as_sent`] adds).
    pub fn read(path: &Path) -> Vec<Vec<u8>> {
        parse(&std::fs::read(path).unwrap_or_default())
    }

    /// [`read`] for the file's bytes.
    pub fn parse(data: &[u8]) -> Vec<Vec<u8>> {
        let mut messages: Vec<Vec<u8>> = Vec::new();
        for line in data.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b"From ") {
                if let Some(last) = messages.last_mut() {
                    strip_separator(last);
                }
                messages.push(Vec::new());
                continue;
            }
            let Some(current) = messages.last_mut() else {
                assert!(
                    line == b"\n" || line == b"\r\n",
                    "not an mbox: {:?}",
                    String::from_utf8_lossy(line)
                );
                continue;
            };
            let quotes = line.iter().take_while(|&&b| b == b'>').count();
            if quotes > 0 && line[quotes..].starts_with(b"From ") {
                current.extend_from_slice(&line[1..]);
            } else {
                current.extend_from_slice(line);
            }
        }
        if let Some(last) = messages.last_mut() {
            strip_separator(last);
        }
        messages
    }

    fn strip_separator(message: &mut Vec<u8>) {
        if message.ends_with(b"\n\n") {
            message.pop();
        } else if message.ends_with(b"\r\n\r\n") || message.ends_with(b"\n\r\n") {
            message.truncate(message.len() - 2);
        }
    }
}
