//! Test helpers: a fake driver that answers every action from an in-memory maildrop,
//! so tests read as transcripts (input script in, server bytes out). Its SASL
//! mechanisms are fakes that compare base64 text (the crate has no base64 decoder):
//! PLAIN takes [`PLAIN_ALICE`], LOGIN takes `alice`/`secret`, and SCRAM-SHA-256 runs
//! two challenges (the second standing for the server-final message) and logs in bob.

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

/// Base64 of the PLAIN message `\0alice\0secret` (RFC 4616).
pub(crate) const PLAIN_ALICE: &str = "AGFsaWNlAHNlY3JldA==";

/// The failure text of the fake driver for a response that is not base64.
pub(crate) const BAD_BASE64: &str = "Invalid base64 data in continued response";

/// A running fake SASL exchange.
#[derive(Debug)]
pub(crate) struct SaslRun {
    mechanism: String,
    step: u32,
    /// LOGIN's user name (base64).
    user: Option<String>,
}

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
    /// STLS was accepted and the fake handshake has not run yet.
    pub(crate) tls_requested: bool,
    /// The running fake SASL exchange.
    pub(crate) sasl: Option<SaslRun>,
    /// Exchanges the client cancelled (`Event::SaslCancelled`).
    pub(crate) sasl_cancelled: u32,
    /// Logins that reached the backend with an invalid user name.
    pub(crate) invalid_users: u32,
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
            tls_requested: false,
            sasl: None,
            sasl_cancelled: 0,
            invalid_users: 0,
        }
    }

    /// Completes the fake TLS handshake after STLS and runs on.
    pub(crate) fn handshake(&mut self) -> &mut Self {
        if std::mem::take(&mut self.tls_requested) {
            self.session.tls_started();
        }
        self.drive();
        self
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
            Event::AuthRequested(request) if !request.valid_user => {
                self.invalid_users += 1;
                self.session.auth_completed(LoginOutcome::Rejected);
            }
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
            Event::StartTls => self.tls_requested = true,
            Event::SaslStarted {
                mechanism,
                initial_response,
            } => {
                self.sasl = Some(SaslRun {
                    mechanism,
                    step: 0,
                    user: None,
                });
                self.sasl_step(initial_response);
            }
            Event::SaslResponse { data } => self.sasl_step(Some(data)),
            Event::SaslCancelled => {
                self.sasl = None;
                self.sasl_cancelled += 1;
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

/// What a fake mechanism does with a client message.
enum Step {
    Challenge(&'static str),
    /// Log in, naming the user (`sasl_completed`) or not (`auth_completed`).
    Login(Option<&'static str>),
    Reject,
}

impl Driver {
    /// One step of a fake mechanism; `data` is the client's (base64) message.
    fn sasl_step(&mut self, data: Option<String>) {
        let Some(run) = self.sasl.as_mut() else {
            return;
        };
        let Some(data) = data else {
            // No initial response: an empty challenge; LOGIN asks for the user name.
            let challenge = if run.mechanism == "LOGIN" {
                "VXNlcm5hbWU6"
            } else {
                ""
            };
            self.session.sasl_challenge(challenge);
            return;
        };
        if !is_base64(&data) {
            self.sasl = None;
            self.session.sasl_failed(BAD_BASE64);
            return;
        }
        run.step += 1;
        let step = match (run.mechanism.as_str(), run.step) {
            ("PLAIN", 1) if data == PLAIN_ALICE => Step::Login(Some("alice")),
            ("LOGIN", 1) => {
                run.user = Some(data);
                Step::Challenge("UGFzc3dvcmQ6")
            }
            ("LOGIN", 2) if run.user.as_deref() == Some("YWxpY2U=") && data == "c2VjcmV0" => {
                Step::Login(Some("alice"))
            }
            ("SCRAM-SHA-256", 1) if !data.is_empty() => Step::Challenge("cj1zZXJ2ZXItZmlyc3Q="),
            ("SCRAM-SHA-256", 2) if !data.is_empty() => Step::Challenge("dj1zZXJ2ZXItZmluYWw="),
            ("SCRAM-SHA-256", 3) if data.is_empty() => Step::Login(None),
            _ => Step::Reject,
        };
        match step {
            Step::Challenge(challenge) => self.session.sasl_challenge(challenge),
            Step::Login(Some(user)) => {
                self.sasl = None;
                self.session.sasl_completed(user, accepted());
            }
            Step::Login(None) => {
                self.sasl = None;
                self.session.auth_completed(accepted());
            }
            Step::Reject => {
                self.sasl = None;
                self.session.auth_completed(LoginOutcome::Rejected);
            }
        }
    }
}

fn accepted() -> LoginOutcome {
    LoginOutcome::Accepted {
        messages: messages(),
        expire: None,
        login_delay: None,
    }
}

fn is_base64(data: &str) -> bool {
    data.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
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
