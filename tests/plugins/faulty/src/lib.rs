//! A plugin that misbehaves on request, so end-to-end tests can check that a plugin panic or error
//! costs one session a `-ERR [SYS/TEMP]` and nothing else.
//!
//! - auth `faulty`: user `panic` panics, user `tempfail` answers a temporary failure, user `error`
//!   returns an error, user `hang` never answers; every other user is accepted with the password
//!   `secret`.
//! - store `faulty`: an in-memory maildrop of four messages; RETR 2 panics inside the plugin, RETR 3
//!   panics after 10 bytes of its body, RETR 4 (200 000 bytes) panics after 150 000 bytes, when part
//!   of it is already on the wire; user `panic-open` panics at open, user `hang-open` never opens.
//! - extension `faulty`: verb `XPANIC` panics in its handler, and the session-end hook panics.
//! - extension `streamer`: verb `XDUMP` answers with a streamed multi-line reply (`XDUMP n`: n generated lines; `fail-early`, `fail-late`).
//! - extensions `retr-thief` (declares the core's `RETR`) and `hello-twin` (declares `XHELLO`, as
//!   the hello-extension example does): both must be refused at load.

use poppet_sdk::{
    Accepted, AuthBackend, AuthOutcome, AuthRequest, CommandExtension, CommitReport, ExtensionCall,
    MailStore, Maildrop, MessageInfo, OpenRequest, PluginError, QuitReport, Reply, SessionView,
    VerbSpec, states,
};
use std::pin::Pin;
use std::task::{Context, Poll};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {}

struct FaultyAuth;

impl AuthBackend for FaultyAuth {
    async fn authenticate(&self, req: AuthRequest) -> Result<AuthOutcome, PluginError> {
        match req.user.as_str() {
            "panic" => panic!("faulty auth plugin panics on purpose"),
            "hang" => std::future::pending().await,
            "tempfail" => Ok(AuthOutcome::TempFail("directory down on purpose".into())),
            "error" => Err(PluginError::new(
                poppet_sdk::ErrorCode::IO,
                "error on purpose",
            )),
            _ if req.password.expose() == "secret" => Ok(AuthOutcome::Accept(Accepted::default())),
            _ => Ok(AuthOutcome::Reject),
        }
    }
}

struct FaultyStore;

const BODIES: [&[u8]; 3] = [
    b"Subject: one\r\n\r\nfirst message\r\n",
    b"Subject: two\r\n\r\nsecond message\r\n",
    b"Subject: three\r\n\r\nthird message, which panics while streaming\r\n",
];

/// Message 4: 200 000 bytes of 100-byte lines.
const BIG_LINE: &[u8; 100] =
    b"01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567\r\n";
const BIG_SIZE: usize = 200_000;

struct Drop3 {
    messages: Vec<MessageInfo>,
}

impl MailStore for FaultyStore {
    type Maildrop = Drop3;

    async fn open(&self, req: OpenRequest) -> Result<Drop3, PluginError> {
        if req.user == "panic-open" {
            panic!("faulty store panics at open on purpose");
        }
        if req.user == "hang-open" {
            std::future::pending::<()>().await;
        }
        let mut messages: Vec<MessageInfo> = BODIES
            .iter()
            .enumerate()
            .map(|(i, b)| MessageInfo {
                size: b.len() as u64,
                uidl: format!("faulty-{}", i + 1),
            })
            .collect();
        messages.push(MessageInfo {
            size: BIG_SIZE as u64,
            uidl: "faulty-4".into(),
        });
        Ok(Drop3 { messages })
    }
}

/// Yields `data` (or, when `data` is empty, `BIG_SIZE` bytes of `BIG_LINE`), panicking after
/// `panic_after` bytes if set.
struct Body {
    data: &'static [u8],
    pos: usize,
    panic_after: Option<usize>,
}

impl Body {
    fn len(&self) -> usize {
        if self.data.is_empty() {
            BIG_SIZE
        } else {
            self.data.len()
        }
    }

    fn byte(&self, i: usize) -> u8 {
        if self.data.is_empty() {
            BIG_LINE[i % BIG_LINE.len()]
        } else {
            self.data[i]
        }
    }
}

impl futures_lite::AsyncRead for Body {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(limit) = self.panic_after {
            if self.pos >= limit {
                panic!("faulty body panics mid-stream on purpose");
            }
        }
        let end = match self.panic_after {
            Some(limit) => limit.min(self.len()),
            None => self.len(),
        };
        let n = buf.len().min(end - self.pos);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = self.byte(self.pos + i);
        }
        self.pos += n;
        Poll::Ready(Ok(n))
    }
}

impl Maildrop for Drop3 {
    type Body = Body;

    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    async fn retrieve(&self, index: usize) -> Result<Body, PluginError> {
        match index {
            1 => panic!("faulty store panics in retrieve on purpose"),
            2 => Ok(Body {
                data: BODIES[2],
                pos: 0,
                panic_after: Some(10),
            }),
            3 => Ok(Body {
                data: b"",
                pos: 0,
                panic_after: Some(150_000),
            }),
            _ => Ok(Body {
                data: BODIES[index.min(2)],
                pos: 0,
                panic_after: None,
            }),
        }
    }

    async fn commit(&mut self, deleted: Vec<usize>) -> Result<CommitReport, PluginError> {
        Ok(CommitReport {
            deleted: deleted.len() as u64,
            failed: 0,
        })
    }
}

/// An extension that declares one verb and panics when it runs.
struct FaultyExtension(&'static str);

impl CommandExtension for FaultyExtension {
    fn verbs(&self) -> Vec<VerbSpec> {
        vec![VerbSpec {
            verb: self.0.into(),
            states: states::AUTHORIZATION | states::TRANSACTION,
            capability: None,
            max_args: 1,
        }]
    }

    async fn handle(&self, call: ExtensionCall) -> Result<Reply, PluginError> {
        panic!("faulty extension panics in {} on purpose", call.verb)
    }

    async fn at_quit(&self, _session: SessionView, _report: QuitReport) {
        panic!("faulty extension panics at quit on purpose")
    }
}

/// An extension whose `XDUMP` answers with a streamed multi-line reply: `XDUMP n` streams the n
/// lines of [`dump_line`]; `XDUMP fail-early` fails before the first byte, `XDUMP fail-late` after
/// about 1 MB.
struct Streamer;

/// Line `i` of `XDUMP`: every third starts with a dot, which the core must stuff.
pub fn dump_line(i: usize) -> String {
    match i % 3 {
        0 => format!(".dot line {i}\r\n"),
        1 => format!("line {i} {}\r\n", "x".repeat(i % 70)),
        _ => ".\r\n".to_owned(),
    }
}

/// The body of `XDUMP`: generated lines, then optionally an error.
struct Dump {
    next: usize,
    lines: usize,
    fail_after: Option<usize>,
    pending: Vec<u8>,
}

impl futures_lite::AsyncRead for Dump {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        while this.pending.len() < buf.len() && this.next < this.lines {
            if this.fail_after.is_some_and(|after| this.next >= after) {
                return Poll::Ready(Err(std::io::Error::other("dump fails on purpose")));
            }
            this.pending
                .extend_from_slice(dump_line(this.next).as_bytes());
            this.next += 1;
        }
        let n = this.pending.len().min(buf.len());
        buf[..n].copy_from_slice(&this.pending[..n]);
        this.pending.drain(..n);
        Poll::Ready(Ok(n))
    }
}

impl CommandExtension for Streamer {
    fn verbs(&self) -> Vec<VerbSpec> {
        vec![VerbSpec {
            verb: "XDUMP".into(),
            states: states::TRANSACTION,
            capability: None,
            max_args: 1,
        }]
    }

    async fn handle(&self, call: ExtensionCall) -> Result<Reply, PluginError> {
        let arg = call.args.first().map_or("10", String::as_str);
        let (lines, fail_after) = match arg {
            "fail-early" => (10, Some(0)),
            "fail-late" => (1_000_000, Some(40_000)),
            n => (
                n.parse().map_err(|_| PluginError::permanent("XDUMP n"))?,
                None,
            ),
        };
        let body = Dump {
            next: 0,
            lines,
            fail_after,
            pending: Vec::new(),
        };
        Ok(Reply::streamed(format!("{lines} lines follow"), body))
    }
}

fn extension(s: &str, verb: &'static str) -> Result<FaultyExtension, PluginError> {
    let _: Settings = poppet_sdk::config::parse(s)?;
    Ok(FaultyExtension(verb))
}

poppet_sdk::export_plugin! {
    name: "test-faulty",
    version: env!("CARGO_PKG_VERSION"),
    factories: [
        auth "faulty" => |s| {
            let _: Settings = poppet_sdk::config::parse(s)?;
            Ok(FaultyAuth)
        },
        store "faulty" => |s| {
            let _: Settings = poppet_sdk::config::parse(s)?;
            Ok(FaultyStore)
        },
        extension "faulty" => |s| extension(s, "XPANIC"),
        extension "retr-thief" => |s| extension(s, "RETR"),
        extension "hello-twin" => |s| extension(s, "XHELLO"),
        extension "streamer" => |s| {
            let _: Settings = poppet_sdk::config::parse(s)?;
            Ok(Streamer)
        },
    ],
}
