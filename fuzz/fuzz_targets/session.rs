//! The whole sans-I/O engine (`poppet_proto::Session`) driven by arbitrary client bytes against an
//! in-memory auth backend and maildrop.
//!
//! Input: a flags byte (options), a chunk-size byte, then client bytes. A 0xFF byte is never sent:
//! it advances the clock by five minutes and checks the timers (so idle and login timeouts are
//! reachable). The driver answers every event like a real one would: `alice`/`secret` (or the APOP
//! digest below) logs in, `busy`, `temp`, `perm` and `soon` get the other verdicts, message 4 fails
//! to open, a commit with message 3 among the deletions is partial.
//!
//! Invariants: no panic; every line written ends with CRLF and no CR or LF stands alone; every
//! status line is at most 512 octets (RFC 2449 §4); a RETR stream un-stuffs to exactly the message
//! and its size, a TOP stream to a prefix of it; transfers only name live messages with their
//! listed size; the store is asked to delete only after a QUIT line, from UPDATE, exactly the
//! messages marked deleted, at most once; a session closed any other way commits nothing; once
//! closed the session stays silent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poppet_proto::{
    BodyEncoder, CloseReason, CommitOutcome, Event, ExtensionVerb, Failure, LoginOutcome,
    Mechanism, MessageMeta, Progress, Response, Session, SessionOptions, State, StateSet, Status,
    Uidl,
};
use std::time::{Duration, Instant};

/// The maildrop: CRLF text as a store yields it (dot lines, an empty message, a long line).
const BODIES: [&[u8]; 5] = [
    b"Subject: one\r\n\r\nHello\r\n.dot line\r\n..two dots\r\n.\r\n",
    b"Subject: two\r\n\r\nline1\r\nline2\r\nline3\r\n",
    b"",
    b"Subject: four (fails to open)\r\n\r\nx\r\n",
    b"From: a\r\nSubject: five\r\n\r\n.\r\n\r\n.\r\n",
];
/// Index of the message whose body cannot be opened.
const VANISHED: usize = 3;
/// Index of the message whose deletion fails at commit.
const UNDELETABLE: usize = 2;
const APOP_STAMP: &str = "<1896.697170952@dbc.mtview.ca.us>";
const GOOD_DIGEST: &str = "c4c9334bac560ecc979e58001b3e22fb";
/// Base64 of `\0alice\0secret`.
const PLAIN_ALICE: &str = "AGFsaWNlAHNlY3JldA==";
/// The clock step of a 0xFF byte.
const TICK: Duration = Duration::from_secs(300);

fn messages() -> Vec<MessageMeta> {
    BODIES
        .iter()
        .enumerate()
        .map(|(i, body)| MessageMeta {
            size: body.len() as u64,
            uidl: Uidl::new(&format!("uid-{i}")).expect("a valid UIDL"),
        })
        .collect()
}

fn accepted() -> LoginOutcome {
    LoginOutcome::Accepted {
        messages: messages(),
        expire: None,
        login_delay: Some(60),
    }
}

fn options(flags: u8) -> SessionOptions {
    let bit = |n: u8| flags & (1 << n) != 0;
    SessionOptions {
        apop_timestamp: bit(0).then(|| APOP_STAMP.to_owned()),
        plaintext_disallowed: bit(1),
        stls: bit(2),
        user_pass: !bit(3),
        extension_verbs: if bit(4) {
            vec![ExtensionVerb {
                name: "XECHO".into(),
                states: StateSet::BOTH,
                capability: Some("X-ECHO".into()),
            }]
        } else {
            Vec::new()
        },
        sasl_mechanisms: if bit(5) {
            ["PLAIN", "LOGIN", "XFAIL"].map(String::from).to_vec()
        } else {
            Vec::new()
        },
        max_bad_commands_authorization: if bit(6) { 0 } else { 3 },
        max_sasl_line: if bit(7) { 64 } else { 8192 },
        ..SessionOptions::default()
    }
}

struct Driver {
    session: Session,
    now: Instant,
    /// Every byte fed so far (to check that a commit follows a QUIT line).
    fed: Vec<u8>,
    out: Vec<u8>,
    closed: Option<CloseReason>,
    committed: bool,
    /// The running fake SASL exchange: mechanism and client messages so far.
    sasl: Option<(String, u32)>,
    /// Messages the `+OK message N deleted` replies marked, less those RSET restored.
    shadow_deleted: Vec<usize>,
}

impl Driver {
    fn write(&mut self, reply: &Response) {
        self.follow(reply);
        let start = self.out.len();
        reply.encode(&mut self.out);
        let wire = &self.out[start..];
        let first = wire
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a reply line ends with CRLF");
        if reply.status() != Status::Continuation {
            assert!(
                first + 2 <= Response::MAX_LINE,
                "status line of {} octets",
                first + 2
            );
        }
        assert!(wire.ends_with(b"\r\n"));
        if reply.lines().is_some() {
            assert!(
                wire.ends_with(b".\r\n"),
                "multi-line reply without terminator"
            );
        }
    }

    /// Keeps the shadow deletion list from the replies, and checks the login totals.
    fn follow(&mut self, reply: &Response) {
        if !reply.is_ok() {
            return;
        }
        let text = reply.text();
        let number = text
            .strip_prefix("message ")
            .and_then(|t| t.strip_suffix(" deleted"))
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(n) = number {
            assert!(
                n >= 1 && n <= BODIES.len(),
                "deleted message {n} does not exist"
            );
            assert!(
                !self.shadow_deleted.contains(&(n - 1)),
                "message {n} deleted twice"
            );
            self.shadow_deleted.push(n - 1);
            self.shadow_deleted.sort_unstable();
        } else if text.starts_with("maildrop has ") {
            self.shadow_deleted.clear();
        } else if text.starts_with("Logged in, ") {
            let total: usize = BODIES.iter().map(|b| b.len()).sum();
            let want = format!(
                "Logged in, maildrop has {} messages ({total} octets)",
                BODIES.len()
            );
            assert_eq!(text, want);
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.fed.extend_from_slice(bytes);
        self.session.enqueue_input(bytes);
        self.drive();
    }

    fn tick(&mut self) {
        self.now += TICK;
        if let Some(event) = self.session.handle_timeout(self.now) {
            assert!(matches!(
                event,
                Event::Close {
                    reason: CloseReason::Timeout | CloseReason::LoginTimeout,
                    ..
                }
            ));
            self.handle(event);
        }
        self.drive();
    }

    fn drive(&mut self) {
        while let Some(event) = self.session.next(self.now) {
            assert!(self.closed.is_none(), "event {event:?} after close");
            self.handle(event);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Reply(reply) => self.write(&reply),
            Event::AuthRequested(request) => {
                assert_eq!(self.session.state(), State::Authorization);
                let secret_ok = match request.mechanism {
                    Mechanism::UserPass => request.secret.expose() == "secret",
                    Mechanism::Apop => request.secret.expose() == GOOD_DIGEST,
                    _ => false,
                };
                let outcome = match request.user.as_str() {
                    _ if !request.valid_user => LoginOutcome::Rejected,
                    "busy" => LoginOutcome::InUse,
                    "temp" => LoginOutcome::TempFail("directory\r\ndown".into()),
                    "perm" => LoginOutcome::PermFail("x".repeat(600)),
                    "soon" => LoginOutcome::LoginDelay,
                    "alice" if secret_ok => accepted(),
                    _ => LoginOutcome::Rejected,
                };
                self.session.auth_completed(outcome);
            }
            Event::TransferRequested {
                index,
                size,
                top_lines,
            } => self.transfer(index, size, top_lines),
            Event::CommitRequested { deleted } => self.commit(deleted),
            Event::ExtensionCommand { verb, args } => {
                assert!(args.iter().all(|arg| arg.len() <= 40 && !arg.contains(' ')));
                let text = format!("{verb} {}", args.join("\r\n"));
                self.session.extension_completed(Response::ok(text));
            }
            Event::StartTls => {
                assert_eq!(self.session.state(), State::Authorization);
                self.session.tls_started();
            }
            Event::SaslStarted {
                mechanism,
                initial_response,
            } => {
                self.sasl = Some((mechanism, 0));
                self.sasl_step(initial_response);
            }
            Event::SaslResponse { data } => self.sasl_step(Some(data)),
            Event::SaslCancelled => self.sasl = None,
            Event::Close { reason, reply } => {
                if let Some(reply) = reply {
                    self.write(&reply);
                }
                if self.committed {
                    assert_eq!(
                        reason,
                        CloseReason::Quit,
                        "committed, then closed by {reason:?}"
                    );
                }
                assert_eq!(self.session.state(), State::Closed);
                self.closed = Some(reason);
            }
            other => panic!("unknown event {other:?}"),
        }
    }

    fn transfer(&mut self, index: usize, size: u64, top_lines: Option<u64>) {
        assert_eq!(self.session.state(), State::Transaction);
        let meta = &self.session.messages()[index];
        assert_eq!(meta.size, size, "transfer size differs from the listed one");
        assert!(
            !self.session.is_deleted(index),
            "transfer of a deleted message"
        );
        if index == VANISHED {
            let reply = self
                .session
                .transfer_failed(Failure::Permanent("gone".into()));
            assert!(!reply.is_ok());
            return self.write(&reply);
        }
        let first = self.session.transfer_started();
        assert!(first.is_ok());
        if top_lines.is_none() {
            assert_eq!(first.text(), format!("{size} octets"));
        }
        self.write(&first);
        let body = BODIES[index];
        let mut encoder = BodyEncoder::new(top_lines);
        let mut stuffed = Vec::new();
        for chunk in body.chunks(7) {
            if encoder.encode(chunk, &mut stuffed) == Progress::Done {
                break;
            }
        }
        encoder.finish(&mut stuffed);
        let sent = unstuff(&stuffed);
        match top_lines {
            None => assert_eq!(sent, body, "RETR sent other octets than the message"),
            Some(_) => assert!(body.starts_with(&sent), "TOP sent other octets"),
        }
        self.out.extend_from_slice(&stuffed);
        self.session.transfer_completed();
    }

    fn commit(&mut self, deleted: Vec<usize>) {
        assert!(!self.committed, "a second commit");
        assert_eq!(self.session.state(), State::Update);
        assert!(saw_quit_line(&self.fed), "commit without a QUIT line");
        let marked: Vec<usize> = (0..self.session.messages().len())
            .filter(|&i| self.session.is_deleted(i))
            .collect();
        assert_eq!(
            deleted, marked,
            "commit of other messages than those marked"
        );
        assert_eq!(
            deleted, self.shadow_deleted,
            "commit of other messages than DELE answered"
        );
        self.committed = true;
        let outcome = if deleted.contains(&UNDELETABLE) {
            CommitOutcome::Partial { failed: 1 }
        } else {
            CommitOutcome::Committed {
                deleted: deleted.len(),
            }
        };
        self.session.commit_completed(outcome);
    }

    /// A fake mechanism: PLAIN logs alice in, LOGIN asks twice then rejects, XFAIL fails.
    fn sasl_step(&mut self, data: Option<String>) {
        let Some((mechanism, step)) = self.sasl.as_mut() else {
            panic!("a SASL response outside an exchange");
        };
        *step += 1;
        match (mechanism.as_str(), data) {
            (_, None) => self.session.sasl_challenge(""),
            ("PLAIN", Some(data)) if data == PLAIN_ALICE => {
                self.sasl = None;
                self.session.sasl_completed("alice", accepted());
            }
            ("LOGIN", Some(_)) if *step < 3 => self.session.sasl_challenge("UGFzc3dvcmQ6"),
            ("XFAIL", Some(_)) => {
                self.sasl = None;
                self.session.sasl_failed("Invalid base64\r\ndata");
            }
            (_, Some(_)) => {
                self.sasl = None;
                self.session.auth_completed(LoginOutcome::Rejected);
            }
        }
    }
}

/// Whether some line fed so far is `QUIT` (any case, trailing spaces, CRLF or bare LF).
fn saw_quit_line(fed: &[u8]) -> bool {
    fed.split(|&b| b == b'\n').rev().skip(1).any(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let keyword = line.split(|&b| b == b' ').next().unwrap_or_default();
        keyword.eq_ignore_ascii_case(b"QUIT") && line[4..].iter().all(|&b| b == b' ')
    })
}

/// Undoes byte-stuffing and drops the terminating `.` line; checks the framing on the way.
fn unstuff(stuffed: &[u8]) -> Vec<u8> {
    assert!(stuffed.ends_with(b".\r\n"));
    let body = &stuffed[..stuffed.len() - 3];
    assert!(body.is_empty() || body.ends_with(b"\r\n"));
    let mut out = Vec::with_capacity(body.len());
    for line in body.split_inclusive(|&b| b == b'\n') {
        assert_ne!(line, b".\r\n", "terminator inside the body");
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

/// The output is CRLF lines: no bare CR, no bare LF, nothing after the last CRLF.
fn check_crlf(out: &[u8]) {
    for (i, &b) in out.iter().enumerate() {
        match b {
            b'\r' => assert_eq!(out.get(i + 1), Some(&b'\n'), "bare CR at {i}"),
            b'\n' => assert!(i > 0 && out[i - 1] == b'\r', "bare LF at {i}"),
            _ => {}
        }
    }
    assert!(out.is_empty() || out.ends_with(b"\r\n"));
}

fuzz_target!(|data: &[u8]| {
    let [flags, chunk, input @ ..] = data else {
        return;
    };
    let now = Instant::now();
    let session = Session::new(options(*flags), now);
    let mut driver = Driver {
        out: Vec::new(),
        session,
        now,
        fed: Vec::new(),
        closed: None,
        committed: false,
        sasl: None,
        shadow_deleted: Vec::new(),
    };
    let greeting = driver.session.greeting();
    driver.write(&greeting);
    let chunk = usize::from(*chunk).max(1);
    for (i, part) in input.split(|&b| b == 0xFF).enumerate() {
        if i > 0 {
            driver.tick();
        }
        for piece in part.chunks(chunk) {
            driver.feed(piece);
        }
    }
    check_crlf(&driver.out);
    if driver.closed.is_some() {
        // Closed stays closed: new input is dropped, no more events.
        let buffered = driver.session.has_buffered_input();
        driver.session.enqueue_input(b"STAT\r\nQUIT\r\n");
        assert!(driver.session.next(driver.now).is_none());
        assert_eq!(driver.session.has_buffered_input(), buffered);
    }
    let stats = driver.session.stats();
    assert!(stats.deleted <= stats.dele);
});
