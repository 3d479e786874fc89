//! Test helpers: a fake driver that answers every action from an in-memory maildrop,
//! so tests read as transcripts (input script in, server bytes out).

use std::time::{Duration, Instant};

use crate::body::{BodyEncoder, Progress};
use crate::event::{
    CloseReason, CommitOutcome, Event, Failure, LoginOutcome, Mechanism, MessageMeta,
};
use crate::options::{Expire, ExtensionVerb, SessionOptions};
use crate::response::Response;
use crate::session::Session;
use crate::state::StateSet;
use crate::uidl::Uidl;

/// The fake maildrop: three messages, one with a dot line, one without final CRLF.
pub(crate) const BODIES: [&str; 3] = [
    "Subject: one\r\n\r\nHello\r\n.dot line\r\n",
    "Subject: two\r\n\r\nline1\r\nline2\r\nline3\r\n",
    "Subject: three\r\n\r\nno trailing newline",
];

/// The APOP digest the fake backend accepts (it has no MD5; tests only need a value).
pub(crate) const GOOD_DIGEST: &str = "c4c9334bac560ecc979e58001b3e22fb";

/// A driver with a fake auth backend, mail store and one extension verb (XECHO).
#[derive(Debug)]
pub(crate) struct Driver {
    pub(crate) session: Session,
    pub(crate) now: Instant,
    pub(crate) out: Vec<u8>,
    pub(crate) closed: Option<CloseReason>,
    /// What the next commit reports; `None` = every deletion succeeds.
    pub(crate) commit: Option<CommitOutcome>,
    /// Make the next transfer fail.
    pub(crate) transfer_failure: Option<Failure>,
    /// Deletions the fake store was asked for.
    pub(crate) committed: Option<Vec<usize>>,
}

/// Options with APOP and an extension verb enabled.
pub(crate) fn test_options() -> SessionOptions {
    SessionOptions {
        apop_timestamp: Some("<1896.697170952@dbc.mtview.ca.us>".into()),
        extension_verbs: vec![ExtensionVerb {
            name: "XECHO".into(),
            states: StateSet::TRANSACTION,
            capability: Some("X-ECHO".into()),
        }],
        ..SessionOptions::default()
    }
}

pub(crate) fn messages() -> Vec<MessageMeta> {
    BODIES
        .iter()
        .enumerate()
        .filter_map(|(i, body)| {
            let uidl = Uidl::new(&format!("uid-{}", i + 1)).ok()?;
            Some(MessageMeta {
                size: body.len() as u64,
                uidl,
            })
        })
        .collect()
}

impl Driver {
    pub(crate) fn new(options: SessionOptions) -> Self {
        let now = Instant::now();
        let session = Session::new(options, now);
        let out = session.greeting().to_bytes();
        Self {
            session,
            now,
            out,
            closed: None,
            commit: None,
            transfer_failure: None,
            committed: None,
        }
    }

    /// Feeds `input` in one piece and runs until the session needs more.
    pub(crate) fn feed(&mut self, input: &[u8]) -> &mut Self {
        self.session.enqueue_input(input);
        self.drive();
        self
    }

    /// Output so far, lossily as text, without the greeting line.
    pub(crate) fn replies(&self) -> String {
        let text = String::from_utf8_lossy(&self.out);
        text.split_once("\r\n")
            .map(|(_, rest)| rest.to_owned())
            .unwrap_or_default()
    }

    pub(crate) fn advance(&mut self, by: Duration) {
        self.now += by;
    }

    pub(crate) fn drive(&mut self) {
        while let Some(event) = self.session.next(self.now) {
            self.handle(event);
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Reply(reply) => reply.encode(&mut self.out),
            Event::AuthRequested(request) => {
                let password_ok =
                    request.mechanism == Mechanism::UserPass && request.secret.expose() == "secret";
                let digest_ok =
                    request.mechanism == Mechanism::Apop && request.secret.expose() == GOOD_DIGEST;
                let outcome = match request.user.as_str() {
                    "busy" => LoginOutcome::InUse,
                    "temp" => LoginOutcome::TempFail("directory unavailable".into()),
                    "perm" => LoginOutcome::PermFail("account disabled".into()),
                    "soon" => LoginOutcome::LoginDelay,
                    "alice" | "bob" if password_ok || digest_ok => LoginOutcome::Accepted {
                        messages: messages(),
                        expire: (request.user == "bob").then_some(Expire::Days(7)),
                        login_delay: None,
                    },
                    _ => LoginOutcome::Rejected,
                };
                self.session.auth_completed(outcome);
            }
            Event::TransferRequested {
                index, top_lines, ..
            } => {
                if let Some(failure) = self.transfer_failure.take() {
                    let reply = self.session.transfer_failed(failure);
                    reply.encode(&mut self.out);
                    return;
                }
                self.session.transfer_started().encode(&mut self.out);
                let mut encoder = BodyEncoder::new(top_lines);
                let body = BODIES.get(index).map_or(&b""[..], |body| body.as_bytes());
                for chunk in body.chunks(3) {
                    if encoder.encode(chunk, &mut self.out) == Progress::Done {
                        break;
                    }
                }
                encoder.finish(&mut self.out);
                self.session.transfer_completed();
            }
            Event::CommitRequested { deleted } => {
                let outcome = self.commit.take().unwrap_or(CommitOutcome::Committed {
                    deleted: deleted.len(),
                });
                self.committed = Some(deleted);
                self.session.commit_completed(outcome);
            }
            Event::ExtensionCommand { verb, args } => {
                self.session
                    .extension_completed(Response::ok(format!("{verb} {}", args.join(","))));
            }
            Event::Close { reason, reply } => {
                if let Some(reply) = reply {
                    reply.encode(&mut self.out);
                }
                self.closed = Some(reason);
            }
        }
    }
}

/// Runs `script` through a fresh driver with [`test_options`]; returns the replies.
pub(crate) fn run(script: &str) -> String {
    let mut driver = Driver::new(test_options());
    driver.feed(script.as_bytes());
    driver.replies()
}

/// Logs in as alice and returns the driver, replies cleared.
pub(crate) fn logged_in() -> Driver {
    let mut driver = Driver::new(test_options());
    driver.feed(b"USER alice\r\nPASS secret\r\n");
    driver.out.clear();
    driver
}

/// Replies of `script` run after logging in as alice.
pub(crate) fn run_logged_in(script: &str) -> String {
    let mut driver = logged_in();
    driver.feed(script.as_bytes());
    String::from_utf8_lossy(&driver.out).into_owned()
}
