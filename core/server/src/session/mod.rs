//! One client connection: the driver between a socket and the sans-I/O `poppet_proto::Session`.
//!
//! The engine decides everything POP3; the driver moves bytes, runs TLS, calls the plugins the engine
//! asks for, streams bodies through bounded buffers and writes the log lines operators grep for.
//! `login.rs` authenticates (with failure delays and penalties), `sasl.rs` runs SASL exchanges,
//! `transfer.rs` streams messages, commits and runs extension verbs.

mod extension;
mod login;
mod sasl;
mod transfer;

use crate::shared::{Shared, UserSlot};
use crate::stream::Stream;
use crate::tls::TlsInfo;
use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use poppet_proto::{CloseReason, Event, Response, ResponseCode, Session, Text};
use poppet_sdk::PluginError;
use poppet_sdk::host::MaildropHandle;
use smol::Timer;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

/// Bytes read from the socket at a time; commands are at most 255 octets, so this holds many.
const READ_CHUNK: usize = 4096;
/// A body being streamed is flushed each time it has added this much output; with
/// `transfer::BODY_CHUNK` it bounds a session's buffers whatever the message size (writes of 256
/// KiB made 5 and 50 MiB RETRs 8-12% slower).
const FLUSH_AT: usize = 64 * 1024;
/// Between the replies of a pipelined batch, output is flushed once it reaches this size. Each
/// write to a client that waits wakes it, and on a busy machine the woken client takes the CPU from
/// the session: 256 KiB writes instead of 64 KiB cut those switches in pipelined RETRs of small
/// messages (+6% median and fewer slow runs, 6 alternating runs; large RETRs unchanged).
const BATCH_FLUSH_AT: usize = 4 * FLUSH_AT;
/// An output buffer larger than this is freed when the session waits for the client, so a session
/// that retrieved mail and went idle holds none of [`BATCH_FLUSH_AT`].
const IDLE_OUT: usize = 4096;

/// How streaming a multi-line body ([`Driver::stream_body`]) ended.
enum Streamed {
    /// The body was encoded whole (its terminating line not yet written); `read` octets came in.
    Done { read: u64 },
    /// Reading failed before anything of the reply was flushed: the output was cut back to the
    /// reply's start, so the caller can answer `-ERR` instead.
    TakenBack(io::Error),
    /// Reading failed after part of the reply was on the wire: the connection must close, so the
    /// client cannot take a short reply for a whole one.
    Broken(io::Error),
}

/// How a session ended, for the logout line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// QUIT.
    Quit,
    /// Client closed the connection without QUIT (nothing committed).
    Dropped,
    /// Autologout timer after login.
    Timeout,
    /// No login within the login timeout.
    LoginTimeout,
    /// Too many bad commands.
    TooManyErrors,
    /// Too many failed logins on this connection.
    TooManyAuthFailures,
    /// Server shutting down (nothing committed).
    Shutdown,
    /// The TLS handshake failed.
    TlsFailed,
    /// The client stopped reading what the server sends.
    WriteTimeout,
    /// The client's host stopped answering TCP keepalive probes (or acknowledging what was sent):
    /// it left its network, slept or lost power (nothing committed).
    Lost,
    /// A socket or body-stream error.
    Error,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Quit => "quit",
            Ending::Dropped => "disconnected",
            Ending::Timeout => "timeout",
            Ending::LoginTimeout => "login-timeout",
            Ending::TooManyErrors => "too-many-errors",
            Ending::TooManyAuthFailures => "too-many-auth-failures",
            Ending::Shutdown => "shutdown",
            Ending::TlsFailed => "tls-failed",
            Ending::WriteTimeout => "write-timeout",
            Ending::Lost => "lost",
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
    /// TLS parameters once encrypted.
    pub tls: Option<TlsInfo>,
    /// Whether this listener offers STLS.
    pub stls_offered: bool,
    /// Whether cleartext passwords are refused while the connection is unencrypted (the listener's
    /// `plaintext_auth` policy applied to this client's address).
    pub plaintext_refused_without_tls: bool,
}

pub(crate) struct Driver<'a> {
    stream: Stream,
    session: Session,
    out: Vec<u8>,
    shared: &'a Shared,
    conn: Connection,
    maildrop: Option<MaildropHandle>,
    user_slot: Option<UserSlot>,
    user: Option<String>,
    mechanism: &'static str,
    sent_octets: u64,
    sasl: Option<sasl::Pending>,
    auth_failures: u32,
    close_after_reply: bool,
    /// The user's LOGIN-DELAY from the auth backend, for extensions' session views.
    login_delay: Option<u32>,
    /// UIDLs the store removed at QUIT, for extensions' `at_quit`.
    deleted_uidls: Vec<String>,
    /// The buffer bodies are read into, kept from one RETR to the next while a pipelined batch
    /// is answered (a cleared allocation per message was measurable) and freed when the session
    /// waits for the client again, so an idle session holds none.
    body_buf: Vec<u8>,
}

/// Runs one session to its end. `shutdown` completes when the server is stopping.
pub async fn run(
    stream: Stream,
    conn: Connection,
    shared: &Shared,
    shutdown: smol::channel::Receiver<()>,
) {
    let session = Session::new(shared.session_options(&conn), Instant::now());
    let mut d = Driver {
        stream,
        session,
        out: Vec::with_capacity(1024),
        shared,
        conn,
        maildrop: None,
        user_slot: None,
        user: None,
        mechanism: "",
        sent_octets: 0,
        sasl: None,
        auth_failures: 0,
        close_after_reply: false,
        login_delay: None,
        deleted_uidls: Vec::new(),
        body_buf: Vec::new(),
    };
    shared.metrics().session(1);
    let ending = d.serve(shutdown).await;
    let stats = d.session.stats();
    shared
        .metrics()
        .session_totals(stats.commands, d.sent_octets, stats.deleted);
    shared.metrics().session(-1);
    // Release the maildrop (and its lock) and the user's slot before the logout line, which tests and
    // operators read as "the session is over".
    drop(d.maildrop.take());
    drop(d.user_slot.take());
    d.log_logout(ending);
    d.at_quit(ending).await;
}

/// How long session-end hooks may take together. The client has its last reply already; this only
/// bounds how long a slow hook can hold the session's task (and so a graceful shutdown).
const AT_QUIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

enum Wake {
    Read(io::Result<usize>),
    Timeout,
    Shutdown,
}

impl Driver<'_> {
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
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ending::WriteTimeout,
                    Err(e) => {
                        log::info!("session {}: connection error: {e}", self.conn.id);
                        return Ending::Error;
                    }
                }
            }
            match self.flush().await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ending::WriteTimeout,
                Err(_) => return Ending::Dropped,
            }
            self.body_buf = Vec::new();
            if self.out.capacity() > IDLE_OUT {
                self.out = Vec::new();
            }
            let deadline = self.session.deadline();
            let wake = future::or(
                async { Wake::Read(self.stream.read(&mut buf).await) },
                future::or(
                    async {
                        Timer::at(deadline).await;
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
                // ETIMEDOUT on a read: the kernel gave up on the client's host (see
                // `limits.tcp_keepalive`).
                Wake::Read(Err(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    log::info!(
                        "session {}: the client's host stopped answering ({e}); closing",
                        self.conn.id
                    );
                    return Ending::Lost;
                }
                Wake::Read(Err(e)) => {
                    log::debug!("session {}: read error: {e}", self.conn.id);
                    return Ending::Dropped;
                }
                Wake::Timeout => {
                    if let Some(event) = self.session.handle_timeout(Instant::now()) {
                        let ending = self
                            .handle(event)
                            .await
                            .ok()
                            .flatten()
                            .unwrap_or(Ending::Timeout);
                        let _ = self.flush().await;
                        return ending;
                    }
                }
                Wake::Shutdown => {
                    let reply =
                        Response::err_text(Some(ResponseCode::SysTemp), Text::new("shutting-down"));
                    self.session.localize(reply).encode(&mut self.out);
                    let _ = self.flush().await;
                    return Ending::Shutdown;
                }
            }
        }
    }

    /// Writes pending output. A client that stops reading gets the idle timeout to drain it, then is
    /// cut: the server never buffers without bound for a stalled reader, and the stalled session does
    /// not keep its slot and maildrop lock for ever.
    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.shared.config.limits.idle_timeout;
        let (stream, out) = (&mut self.stream, &self.out);
        let written = future::or(
            async {
                stream.write_all(out).await?;
                stream.flush().await
            },
            async {
                Timer::after(timeout).await;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client stopped reading",
                ))
            },
        )
        .await;
        if let Err(e) = &written {
            if e.kind() == io::ErrorKind::TimedOut {
                log::info!(
                    "session {}: client stopped reading for {timeout:?}; closing",
                    self.conn.id
                );
            }
        }
        written?;
        self.sent_octets += self.out.len() as u64;
        self.out.clear();
        Ok(())
    }

    /// Handles one engine event; `Ok(Some(_))` ends the session.
    async fn handle(&mut self, event: Event) -> io::Result<Option<Ending>> {
        match event {
            Event::Reply(r) => {
                r.encode(&mut self.out);
                if self.close_after_reply {
                    return Ok(Some(Ending::TooManyAuthFailures));
                }
                if self.out.len() >= BATCH_FLUSH_AT {
                    self.flush().await?;
                }
            }
            Event::StartTls => return self.start_tls().await,
            Event::AuthRequested(req) => {
                // Answer earlier pipelined replies before a possibly slow backend.
                self.flush().await?;
                let outcome = self.login_user_pass(req).await;
                self.session.auth_completed(outcome);
            }
            Event::SaslStarted {
                mechanism,
                initial_response,
            } => {
                self.flush().await?;
                self.sasl_start(&mechanism, initial_response).await;
            }
            Event::SaslResponse { data } => self.sasl_continue(data).await,
            Event::SaslCancelled => self.sasl = None,
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
                let (reply, stream) = self.extension(verb, args).await;
                match stream {
                    Some(body) if reply.is_ok() => self.stream_reply(reply, body).await?,
                    _ => self.session.extension_completed(reply),
                }
            }
            Event::Close { reason, reply } => {
                if let Some(r) = reply {
                    r.encode(&mut self.out);
                }
                return Ok(Some(match reason {
                    CloseReason::Quit => Ending::Quit,
                    CloseReason::Timeout => Ending::Timeout,
                    CloseReason::LoginTimeout => Ending::LoginTimeout,
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

    /// STLS: the engine has queued `+OK Begin TLS negotiation`; send it, then run the handshake,
    /// bounded by the session's deadline (the login timeout).
    async fn start_tls(&mut self) -> io::Result<Option<Ending>> {
        self.flush().await?;
        let Some(acceptor) = self.shared.tls.clone() else {
            log::error!(
                "session {}: STLS offered without a TLS configuration",
                self.conn.id
            );
            return Ok(Some(Ending::Error));
        };
        let deadline = self.session.deadline();
        let handshake = future::or(
            async { Some(self.stream.start_tls(&acceptor).await) },
            async {
                Timer::at(deadline).await;
                None
            },
        )
        .await;
        match handshake {
            Some(Ok(info)) => {
                log::debug!(
                    "session {}: STLS done: {} {}",
                    self.conn.id,
                    info.protocol,
                    info.cipher
                );
                let mechanisms = self.shared.sasl_mechanisms(Some(&info));
                self.conn.tls = Some(info);
                self.session.tls_started_with(mechanisms);
                Ok(None)
            }
            Some(Err(e)) => {
                log::info!(
                    "session {}: TLS handshake failed rip={}: {e}",
                    self.conn.id,
                    self.conn.peer.ip()
                );
                Ok(Some(Ending::TlsFailed))
            }
            None => Ok(Some(Ending::LoginTimeout)),
        }
    }

    /// The session view extensions see.
    fn session_view(&self) -> poppet_sdk::SessionView {
        poppet_sdk::SessionView {
            user: self.user.clone(),
            peer: Some(self.conn.peer),
            tls: self.conn.tls.is_some(),
            message_sizes: self.session.messages().iter().map(|m| m.size).collect(),
            session_id: self.conn.id,
            login_delay: self.login_delay,
            utf8: self.session.utf8_enabled(),
            language: self.session.language().map(str::to_owned),
        }
    }

    /// Tells every extension that a logged-in session ended. Observe-only: errors and panics are
    /// logged, and the client (already answered) never sees them.
    async fn at_quit(&self, ending: Ending) {
        if self.user.is_none() || self.shared.plugins.extensions.is_empty() {
            return;
        }
        let view = self.session_view();
        let stats = self.session.stats();
        let report = poppet_sdk::QuitReport {
            deleted_uidls: self.deleted_uidls.clone(),
            retrieved: stats.retr,
            deleted: stats.deleted,
            ended: ending.as_str().to_owned(),
        };
        let hooks = async {
            for ext in &self.shared.plugins.extensions {
                if let Err(e) = ext.at_quit(&view, &report).await {
                    self.plugin_error("at_quit", &e);
                }
            }
        };
        let finished = future::or(
            async {
                hooks.await;
                true
            },
            async {
                Timer::after(AT_QUIT_TIMEOUT).await;
                false
            },
        )
        .await;
        if !finished {
            log::warn!(
                "session {}: session-end hooks took longer than {AT_QUIT_TIMEOUT:?}; abandoned",
                self.conn.id
            );
        }
    }

    /// Streams `body` through `encoder` into the output, whose reply starts at `mark`, reading
    /// `chunk` octets at a time and flushing whenever the body has added `FLUSH_AT` since the last
    /// flush or the buffer reaches `BATCH_FLUSH_AT` (memory stays flat in the body's size). The
    /// one loop for RETR/TOP and streamed extension replies.
    async fn stream_body(
        &mut self,
        body: &mut (impl futures_lite::AsyncRead + Unpin),
        encoder: &mut poppet_proto::BodyEncoder,
        mark: usize,
        chunk: usize,
    ) -> io::Result<Streamed> {
        let mut buf = std::mem::take(&mut self.body_buf);
        if buf.len() < chunk {
            buf.resize(chunk, 0);
        }
        let streamed = self
            .stream_body_through(body, encoder, mark, &mut buf[..chunk])
            .await;
        self.body_buf = buf;
        streamed
    }

    /// [`Driver::stream_body`] with the buffer in hand.
    async fn stream_body_through(
        &mut self,
        body: &mut (impl futures_lite::AsyncRead + Unpin),
        encoder: &mut poppet_proto::BodyEncoder,
        mark: usize,
        buf: &mut [u8],
    ) -> io::Result<Streamed> {
        let mut read = 0u64;
        let mut flushed = false;
        // Where this body's output since the last flush starts.
        let mut from = mark;
        loop {
            let n = match body.read(buf).await {
                Ok(n) => n,
                Err(e) if !flushed => {
                    self.out.truncate(mark);
                    return Ok(Streamed::TakenBack(e));
                }
                Err(e) => return Ok(Streamed::Broken(e)),
            };
            if n == 0 {
                return Ok(Streamed::Done { read });
            }
            // A full buffer is sent only once more of the body has come: when the body ends
            // instead, its terminator goes out with it (the caller flushes), rather than alone in
            // the next write, which left each pipelined batch's last message incomplete on the
            // client's side until a 3-octet write of its own.
            if self.out.len().saturating_sub(from) >= FLUSH_AT || self.out.len() >= BATCH_FLUSH_AT {
                self.flush().await?;
                flushed = true;
                from = 0;
            }
            read += n as u64;
            let progress = encoder.encode(&buf[..n], &mut self.out);
            if progress == poppet_proto::Progress::Done {
                return Ok(Streamed::Done { read });
            }
        }
    }

    /// Runs one plugin call, bounded by `limits.plugin_timeout`: a plugin that does not answer in
    /// time gets its call dropped (which cancels it) and becomes a temporary error, so the client
    /// hears `-ERR [SYS/TEMP]` and the session goes on.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, PluginError>>,
    ) -> Result<T, PluginError> {
        let bound = self.shared.config.limits.plugin_timeout;
        future::or(call, async {
            Timer::after(bound).await;
            Err(PluginError::temporary(format!(
                "no answer within {bound:?} (limits.plugin_timeout)"
            )))
        })
        .await
    }

    fn plugin_error(&self, op: &str, e: &PluginError) {
        log::error!(
            "session {}: plugin error in {op}: {} ({})",
            self.conn.id,
            e,
            e.code.name()
        );
    }

    fn tls_text(&self) -> String {
        match &self.conn.tls {
            Some(t) => format!("{}/{}", t.protocol, t.cipher),
            None => "no".to_owned(),
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
                "session {}: disconnected before login rip={} reason={} commands={} auth-failures={}",
                self.conn.id,
                self.conn.peer.ip(),
                ending.as_str(),
                s.commands,
                self.auth_failures
            ),
        }
    }
}
