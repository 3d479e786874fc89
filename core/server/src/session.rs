//! One client connection: the driver between a socket and the sans-I/O `poppet_proto::Session`.
//!
//! The engine decides everything POP3; this file only moves bytes, calls the plugins the engine asks
//! for, streams bodies through a bounded buffer and writes the log lines operators grep for. It is
//! generic over the stream so TLS can wrap it without changes here.

use crate::shared::Shared;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, future};
use poppet_proto::{
    AuthRequest, CloseReason, CommitOutcome, Event, Failure, LoginOutcome, Mechanism, MessageMeta,
    Response, ResponseCode, Session, Uidl,
};
use poppet_sdk::host::MaildropHandle;
use poppet_sdk::{
    AuthOutcome, ErrorCode, LoginDecision, OpenRequest, PluginError, Secret, SessionView,
};
use std::net::SocketAddr;
use std::time::Instant;

/// Bytes read from the socket at a time; commands are at most 255 octets, so this holds many.
const READ_CHUNK: usize = 4096;
/// Output is flushed when it reaches this size; with `BODY_CHUNK` it bounds a session's buffers
/// whatever the message size.
const FLUSH_AT: usize = 64 * 1024;
/// Bytes read from a message body at a time.
const BODY_CHUNK: usize = 64 * 1024;

/// How a session ended, for the logout line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// QUIT.
    Quit,
    /// Client closed the connection without QUIT (nothing committed).
    Dropped,
    /// Autologout timer.
    Timeout,
    /// Too many bad commands.
    TooManyErrors,
    /// Server shutting down (nothing committed).
    Shutdown,
    /// A socket or body-stream error.
    Error,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Quit => "quit",
            Ending::Dropped => "disconnected",
            Ending::Timeout => "timeout",
            Ending::TooManyErrors => "too-many-errors",
            Ending::Shutdown => "shutdown",
            Ending::Error => "error",
        }
    }
}

/// Facts about the connection.
#[derive(Debug, Clone)]
pub struct Connection {
    /// Session id for log lines.
    pub id: u64,
    /// Client address.
    pub peer: SocketAddr,
    /// Local address.
    pub local: SocketAddr,
    /// Encrypted.
    pub tls: bool,
}

struct Driver<'a, S> {
    stream: S,
    session: Session,
    out: Vec<u8>,
    shared: &'a Shared,
    conn: Connection,
    maildrop: Option<MaildropHandle>,
    user: Option<String>,
    mechanism: &'static str,
    sent_octets: u64,
}

/// Runs one session to its end. `shutdown` completes when the server is stopping.
pub async fn run<S>(
    stream: S,
    conn: Connection,
    shared: &Shared,
    shutdown: smol::channel::Receiver<()>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let session = Session::new(shared.session_options(conn.id), Instant::now());
    let mut d = Driver {
        stream,
        session,
        out: Vec::with_capacity(1024),
        shared,
        conn,
        maildrop: None,
        user: None,
        mechanism: "",
        sent_octets: 0,
    };
    let ending = d.serve(shutdown).await;
    d.log_logout(ending);
}

enum Wake {
    Read(std::io::Result<usize>),
    Timeout,
    Shutdown,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Driver<'_, S> {
    async fn serve(&mut self, shutdown: smol::channel::Receiver<()>) -> Ending {
        self.session.greeting().encode(&mut self.out);
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            while let Some(event) = self.session.next(Instant::now()) {
                match self.handle(event).await {
                    Ok(Some(ending)) => {
                        let _ = self.flush().await;
                        return ending;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        log::info!("session {}: connection error: {e}", self.conn.id);
                        return Ending::Error;
                    }
                }
            }
            if self.flush().await.is_err() {
                return Ending::Dropped;
            }
            let deadline = self.session.deadline();
            let wake = future::or(
                async { Wake::Read(self.stream.read(&mut buf).await) },
                future::or(
                    async {
                        smol::Timer::at(deadline).await;
                        Wake::Timeout
                    },
                    async {
                        let _ = shutdown.recv().await;
                        Wake::Shutdown
                    },
                ),
            )
            .await;
            match wake {
                Wake::Read(Ok(0)) => return Ending::Dropped,
                Wake::Read(Ok(n)) => self.session.enqueue_input(&buf[..n]),
                Wake::Read(Err(e)) => {
                    log::debug!("session {}: read error: {e}", self.conn.id);
                    return Ending::Dropped;
                }
                Wake::Timeout => {
                    if let Some(event) = self.session.handle_timeout(Instant::now()) {
                        let _ = self.handle(event).await;
                        let _ = self.flush().await;
                        return Ending::Timeout;
                    }
                }
                Wake::Shutdown => {
                    Response::err(
                        Some(ResponseCode::SysTemp),
                        "server shutting down, try again later",
                    )
                    .encode(&mut self.out);
                    let _ = self.flush().await;
                    return Ending::Shutdown;
                }
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.sent_octets += self.out.len() as u64;
            self.out.clear();
        }
        self.stream.flush().await
    }

    /// Handles one engine event; `Ok(Some(_))` ends the session.
    async fn handle(&mut self, event: Event) -> std::io::Result<Option<Ending>> {
        match event {
            Event::Reply(r) => {
                r.encode(&mut self.out);
                if self.out.len() >= FLUSH_AT {
                    self.flush().await?;
                }
            }
            Event::AuthRequested(req) => {
                // Answer earlier pipelined replies before a possibly slow backend.
                self.flush().await?;
                let outcome = self.login(req).await;
                self.session.auth_completed(outcome);
            }
            Event::TransferRequested {
                index,
                size,
                top_lines,
            } => {
                self.transfer(index, size, top_lines).await?;
            }
            Event::CommitRequested { deleted } => {
                let outcome = self.commit(&deleted).await;
                self.session.commit_completed(outcome);
            }
            Event::ExtensionCommand { verb, args } => {
                let reply = self.extension(verb, args).await;
                self.session.extension_completed(reply);
            }
            Event::Close { reason, reply } => {
                if let Some(r) = reply {
                    r.encode(&mut self.out);
                }
                return Ok(Some(match reason {
                    CloseReason::Quit => Ending::Quit,
                    CloseReason::Timeout => Ending::Timeout,
                    CloseReason::TooManyErrors => Ending::TooManyErrors,
                    _ => Ending::Error,
                }));
            }
            other => {
                log::error!("session {}: unhandled engine event {other:?}", self.conn.id);
                return Ok(Some(Ending::Error));
            }
        }
        Ok(None)
    }

    fn plugin_error(&self, op: &str, e: &PluginError) {
        log::error!(
            "session {}: plugin error in {op}: {} ({})",
            self.conn.id,
            e,
            e.code.name()
        );
    }

    /// Authenticates, opens the maildrop and runs after-login hooks.
    async fn login(&mut self, req: AuthRequest) -> LoginOutcome {
        let mechanism = match req.mechanism {
            Mechanism::Apop => "APOP",
            _ => poppet_sdk::mechanism::USER_PASS,
        };
        let password = match req.mechanism {
            Mechanism::Apop => match self.apop_secret(&req).await {
                Ok(Some(secret)) => secret,
                Ok(None) => return self.rejected(&req.user, mechanism),
                Err(outcome) => return outcome,
            },
            _ => Secret::new(req.secret.expose().clone()),
        };
        let auth_req = poppet_sdk::AuthRequest {
            mechanism: mechanism.to_owned(),
            user: req.user.clone(),
            password,
            authzid: None,
            peer: Some(self.conn.peer),
            local: Some(self.conn.local),
            tls: self.conn.tls,
        };
        let accepted = match self.shared.plugins.auth.authenticate(&auth_req).await {
            Ok(AuthOutcome::Accept(a)) => a,
            Ok(AuthOutcome::Reject) => return self.rejected(&req.user, mechanism),
            Ok(AuthOutcome::TempFail(reason)) => {
                log::warn!(
                    "session {}: auth backend temporary failure: {reason}",
                    self.conn.id
                );
                return LoginOutcome::TempFail(
                    "authentication service unavailable, try again later".into(),
                );
            }
            Err(e) => {
                self.plugin_error("authenticate", &e);
                return LoginOutcome::TempFail(
                    "authentication service unavailable, try again later".into(),
                );
            }
        };
        let user = accepted.user.clone().unwrap_or_else(|| req.user.clone());
        let open = OpenRequest {
            user: user.clone(),
            mailbox: accepted.mailbox.clone(),
        };
        let maildrop = match self.shared.plugins.store.open(&open).await {
            Ok(m) => m,
            Err(e) if e.code == ErrorCode::LOCKED => {
                log::info!(
                    "session {}: mailbox of {user:?} is in use: {e}",
                    self.conn.id
                );
                return LoginOutcome::InUse;
            }
            Err(e) => {
                self.plugin_error("open", &e);
                return if e.code == ErrorCode::PERMANENT {
                    LoginOutcome::PermFail("mailbox unavailable".into())
                } else {
                    LoginOutcome::TempFail("mailbox unavailable, try again later".into())
                };
            }
        };
        let mut messages = Vec::with_capacity(maildrop.messages().len());
        for (i, m) in maildrop.messages().iter().enumerate() {
            match Uidl::new(&m.uidl) {
                Ok(uidl) => messages.push(MessageMeta { size: m.size, uidl }),
                Err(e) => {
                    log::error!(
                        "session {}: store gave message {} an invalid UIDL: {e}",
                        self.conn.id,
                        i + 1
                    );
                    return LoginOutcome::TempFail("mailbox unavailable, try again later".into());
                }
            }
        }
        let view = SessionView {
            user: Some(user.clone()),
            peer: Some(self.conn.peer),
            tls: self.conn.tls,
            message_sizes: messages.iter().map(|m| m.size).collect(),
        };
        for ext in &self.shared.plugins.extensions {
            match ext.after_login(&view).await {
                Ok(LoginDecision::Allow) => {}
                Ok(LoginDecision::Refuse(reply)) => {
                    log::info!(
                        "session {}: login of {user:?} refused by an extension: {}",
                        self.conn.id,
                        reply.text
                    );
                    return LoginOutcome::PermFail(reply.text);
                }
                Err(e) => {
                    self.plugin_error("after_login", &e);
                    return LoginOutcome::TempFail("try again later".into());
                }
            }
        }
        let total: u64 = messages.iter().map(|m| m.size).sum();
        log::info!(
            "session {}: login user={user:?} rip={} lip={} mechanism={mechanism} tls={} messages={} octets={total}",
            self.conn.id,
            self.conn.peer.ip(),
            self.conn.local,
            if self.conn.tls { "yes" } else { "no" },
            messages.len(),
        );
        self.maildrop = Some(maildrop);
        self.user = Some(user);
        self.mechanism = mechanism;
        LoginOutcome::Accepted {
            messages,
            expire: accepted.expire.map(|e| match e {
                poppet_sdk::Expire::Never => poppet_proto::Expire::Never,
                poppet_sdk::Expire::Days(d) => poppet_proto::Expire::Days(d),
            }),
            login_delay: accepted.login_delay,
        }
    }

    fn rejected(&self, user: &str, mechanism: &str) -> LoginOutcome {
        // One line per failure with the remote address, for fail2ban.
        log::warn!(
            "session {}: authentication failed: user={user:?} rip={} mechanism={mechanism}",
            self.conn.id,
            self.conn.peer.ip()
        );
        LoginOutcome::Rejected
    }

    /// APOP (RFC 1939 §7): the digest is MD5(timestamp + secret); the secret comes from the backend.
    async fn apop_secret(&self, req: &AuthRequest) -> Result<Option<Secret<String>>, LoginOutcome> {
        let Some(timestamp) = self.session.apop_timestamp() else {
            return Ok(None);
        };
        let secret = match self.shared.plugins.auth.lookup_secret(&req.user).await {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.plugin_error("lookup_secret", &e);
                return Err(LoginOutcome::TempFail(
                    "authentication service unavailable".into(),
                ));
            }
        };
        let ok = crate::apop::verify(timestamp, secret.expose(), req.secret.expose());
        Ok(ok.then_some(secret))
    }

    async fn transfer(
        &mut self,
        index: usize,
        size: u64,
        top_lines: Option<u64>,
    ) -> std::io::Result<()> {
        let Some(maildrop) = self.maildrop.as_ref() else {
            let r = self
                .session
                .transfer_failed(Failure::Temporary("no maildrop".into()));
            r.encode(&mut self.out);
            return Ok(());
        };
        let mut body = match maildrop.retrieve(index).await {
            Ok(b) => b,
            Err(e) => {
                self.plugin_error("retrieve", &e);
                let failure = if e.code == ErrorCode::NOT_FOUND {
                    Failure::Permanent("message no longer exists".into())
                } else {
                    Failure::Temporary("cannot read message, try again later".into())
                };
                self.session.transfer_failed(failure).encode(&mut self.out);
                return Ok(());
            }
        };
        // Until the first flush, a failing body can still be taken back and answered with -ERR.
        let mark = self.out.len();
        let mut flushed = false;
        self.session.transfer_started().encode(&mut self.out);
        let mut encoder = poppet_proto::BodyEncoder::new(top_lines);
        let mut buf = vec![0u8; BODY_CHUNK];
        let mut read_total = 0u64;
        loop {
            let n = match body.read(&mut buf).await {
                Ok(n) => n,
                Err(e) if !flushed => {
                    log::error!(
                        "session {}: message {} failed while reading: {e}",
                        self.conn.id,
                        index + 1
                    );
                    self.out.truncate(mark);
                    let failure = Failure::Temporary("cannot read message, try again later".into());
                    self.session.transfer_failed(failure).encode(&mut self.out);
                    return Ok(());
                }
                Err(e) => {
                    // Part of the reply is on the wire and cannot be taken back: close rather than let
                    // a short message look complete.
                    log::error!(
                        "session {}: message {} failed mid-transfer: {e}",
                        self.conn.id,
                        index + 1
                    );
                    return Err(e);
                }
            };
            if n == 0 {
                break;
            }
            read_total += n as u64;
            let progress = encoder.encode(&buf[..n], &mut self.out);
            if self.out.len() >= FLUSH_AT {
                self.flush().await?;
                flushed = true;
            }
            if progress == poppet_proto::Progress::Done {
                break;
            }
        }
        if top_lines.is_none() && read_total != size {
            log::warn!(
                "session {}: message {} is {read_total} octets, store said {size}",
                self.conn.id,
                index + 1
            );
        }
        encoder.finish(&mut self.out);
        self.flush().await?;
        self.session.transfer_completed();
        Ok(())
    }

    async fn commit(&mut self, deleted: &[usize]) -> CommitOutcome {
        let Some(mut maildrop) = self.maildrop.take() else {
            return CommitOutcome::Committed { deleted: 0 };
        };
        let outcome = match maildrop.commit(deleted).await {
            Ok(r) if r.failed == 0 => CommitOutcome::Committed {
                deleted: r.deleted as usize,
            },
            Ok(r) => {
                log::error!(
                    "session {}: {} of {} deletions failed",
                    self.conn.id,
                    r.failed,
                    deleted.len()
                );
                CommitOutcome::Partial {
                    failed: r.failed as usize,
                }
            }
            Err(e) => {
                self.plugin_error("commit", &e);
                CommitOutcome::Failed("could not remove deleted messages".into())
            }
        };
        drop(maildrop);
        outcome
    }

    async fn extension(&mut self, verb: String, args: Vec<String>) -> Response {
        let ext = self
            .shared
            .plugins
            .extensions
            .iter()
            .find(|e| e.verbs().iter().any(|v| v.verb.eq_ignore_ascii_case(&verb)));
        let Some(ext) = ext else {
            return Response::err(None, "unknown command");
        };
        let call = poppet_sdk::ExtensionCall {
            verb,
            args,
            session: SessionView {
                user: self.user.clone(),
                peer: Some(self.conn.peer),
                tls: self.conn.tls,
                message_sizes: self.session.messages().iter().map(|m| m.size).collect(),
            },
        };
        match ext.handle(&call).await {
            Ok(reply) => crate::shared::reply_to_response(reply),
            Err(e) => {
                self.plugin_error("extension", &e);
                Response::err(
                    Some(ResponseCode::SysTemp),
                    "command failed, try again later",
                )
            }
        }
    }

    fn log_logout(&self, ending: Ending) {
        let s = self.session.stats();
        match &self.user {
            Some(user) => log::info!(
                "session {}: logout user={user:?} rip={} reason={} mechanism={} retr={}/{} top={} dele={} deleted={} out={}",
                self.conn.id,
                self.conn.peer.ip(),
                ending.as_str(),
                self.mechanism,
                s.retr,
                s.retr_octets,
                s.top,
                s.dele,
                s.deleted,
                self.sent_octets,
            ),
            None => log::info!(
                "session {}: disconnected before login rip={} reason={} commands={}",
                self.conn.id,
                self.conn.peer.ip(),
                ending.as_str(),
                s.commands
            ),
        }
    }
}
