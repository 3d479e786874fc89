//! A minimal, allocation-free-per-command POP3 client over plain TCP or rustls.
//!
//! The client owns one receive buffer. Single-line answers are found with `memchr`, and
//! multi-line answers (LIST, UIDL, RETR) are consumed in place by searching for the terminator
//! `CRLF . CRLF` with `memchr::memmem`, so a RETR costs one `read` per buffer fill and a SIMD scan,
//! never a copy of the body. That keeps the generator's CPU far below the server's.
//!
//! The client is written once, async, over two kinds of stream: [`Blocking`] (a blocking socket
//! whose calls are always ready, for the thread-per-connection modes, driven by `block_on`) and
//! [`Evented`] (a non-blocking socket on smol's reactor, for many sessions on one thread).

use anyhow::{Context, Result, bail};
use memchr::memmem;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{self, Poll};
use std::time::Duration;

/// Receive buffer size: big enough that a 50 MiB RETR needs few `read` calls.
pub const BUF: usize = 256 * 1024;

/// Receive buffer of the session workload, a new one per connection: its answers are a few lines
/// (with `--retr` a body streams through it). Zeroing a [`BUF`] per session was a seventh of the
/// generator's CPU at 1,500 sessions per second.
pub const SESSION_BUF: usize = 16 * 1024;

/// How long a single read or write on a blocking socket may block before the session counts as
/// failed; the event loops allow their sessions as long past the end of the run.
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);

/// The end of a multi-line answer, including the line end before the dot.
const TERMINATOR: &[u8] = b"\r\n.\r\n";

/// Where to connect and how.
#[derive(Clone)]
pub struct Target {
    /// Server address.
    pub addr: SocketAddr,
    /// Client TLS config for implicit TLS (POP3S), `None` for plain POP3.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Name checked against the server certificate.
    pub server_name: rustls::pki_types::ServerName<'static>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// Builds a rustls client config trusting the PEM certificates in `ca_file`.
///
/// Session resumption is off unless `resume` is set, so every TLS session pays a full handshake
/// (the conservative case, and the same for both servers).
pub fn tls_config(ca_file: &std::path::Path, resume: bool) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)
        .with_context(|| format!("reading CA file {}", ca_file.display()))?
    {
        roots.add(cert.context("parsing CA certificate")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// The blocking byte stream of the thread-per-connection modes.
enum Io {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

/// A blocking stream behind the async [`Conn`] interface: every call does the blocking system
/// call and is ready when it returns, so a [`Client`] over it never waits in an executor, and
/// `block_on` only polls once.
pub struct Blocking(Io);

impl AsyncRead for Blocking {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(match &mut self.get_mut().0 {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        })
    }
}

impl AsyncWrite for Blocking {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Poll::Ready(match &mut self.get_mut().0 {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        })
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(match &mut self.get_mut().0 {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        })
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// The non-blocking stream of the event-loop session mode: a socket registered with smol's
/// reactor, or rustls over one (`futures-rustls`, the TLS layer the server uses too).
pub enum Evented {
    Plain(smol::net::TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<smol::net::TcpStream>>),
}

impl AsyncRead for Evented {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Evented::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Evented::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Evented {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut task::Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Evented::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Evented::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Evented::Plain(s) => Pin::new(s).poll_flush(cx),
            Evented::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut task::Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Evented::Plain(s) => Pin::new(s).poll_close(cx),
            Evented::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// What a [`Client`] needs of its stream beyond reading and writing.
pub trait Conn: AsyncRead + AsyncWrite + Unpin {
    /// Queues a TLS close_notify (sent by the next flush); nothing for plain TCP.
    fn close_notify(&mut self);
    /// The negotiated TLS cipher suite, if this is a TLS connection past its handshake.
    fn cipher_suite(&self) -> Option<String>;
}

impl Conn for Blocking {
    fn close_notify(&mut self) {
        if let Io::Tls(s) = &mut self.0 {
            s.conn.send_close_notify();
        }
    }
    fn cipher_suite(&self) -> Option<String> {
        match &self.0 {
            Io::Tls(s) => suite_name(&s.conn),
            Io::Plain(_) => None,
        }
    }
}

impl Conn for Evented {
    fn close_notify(&mut self) {
        if let Evented::Tls(s) = self {
            s.get_mut().1.send_close_notify();
        }
    }
    fn cipher_suite(&self) -> Option<String> {
        match self {
            Evented::Tls(s) => suite_name(s.get_ref().1),
            Evented::Plain(_) => None,
        }
    }
}

fn suite_name(conn: &rustls::ClientConnection) -> Option<String> {
    conn.negotiated_cipher_suite()
        .map(|c| format!("{:?}", c.suite()))
}

/// The receive side of a connection, without I/O: one buffer, the unread part of it, and the
/// parsing of answers in place.
struct Inbox {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    finder: memmem::Finder<'static>,
}

impl Inbox {
    fn new(size: usize) -> Inbox {
        Inbox {
            buf: vec![0; size.max(512)].into_boxed_slice(),
            start: 0,
            end: 0,
            finder: memmem::Finder::new(TERMINATOR),
        }
    }

    /// The free space after the unread bytes, compacting first if the buffer is full.
    fn space(&mut self) -> Result<&mut [u8]> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if self.end == self.buf.len() {
                bail!("line longer than {} bytes", self.buf.len());
            }
        }
        Ok(&mut self.buf[self.end..])
    }

    /// Takes one complete answer line, if there is one: its text on `+OK`, an error naming
    /// `what` otherwise.
    fn line(&mut self, what: &str) -> Result<Option<&[u8]>> {
        let unread = &self.buf[self.start..self.end];
        let Some(i) = memchr::memchr(b'\n', unread) else {
            return Ok(None);
        };
        let line = &self.buf[self.start..self.start + i + 1];
        self.start += i + 1;
        if !line.starts_with(b"+OK") {
            bail!("{what}: {}", String::from_utf8_lossy(line).trim_end());
        }
        Ok(Some(line))
    }

    /// Consumes what has arrived of a multi-line answer's body; returns the bytes of the body and
    /// terminator once the terminator has been consumed.
    fn body(&mut self, scan: &mut BodyScan) -> Option<u64> {
        let data = &self.buf[self.start..self.end];
        if data.is_empty() {
            return None;
        }
        // A terminator that starts in `tail` and ends in `data`.
        let mut joined = [0u8; 8];
        let head = data.len().min(4);
        joined[..scan.tail_len].copy_from_slice(&scan.tail[..scan.tail_len]);
        joined[scan.tail_len..scan.tail_len + head].copy_from_slice(&data[..head]);
        if let Some(i) = self.finder.find(&joined[..scan.tail_len + head]) {
            let end = i + TERMINATOR.len() - scan.tail_len;
            self.start += end;
            return Some(scan.consumed + end as u64);
        }
        if let Some(i) = self.finder.find(data) {
            let end = i + TERMINATOR.len();
            self.start += end;
            return Some(scan.consumed + end as u64);
        }
        // Keep the last 4 bytes (from data, or tail + data when data is short).
        if data.len() >= 4 {
            scan.tail.copy_from_slice(&data[data.len() - 4..]);
            scan.tail_len = 4;
        } else {
            let mut t = [0u8; 8];
            t[..scan.tail_len].copy_from_slice(&scan.tail[..scan.tail_len]);
            t[scan.tail_len..scan.tail_len + data.len()].copy_from_slice(data);
            let n = scan.tail_len + data.len();
            let keep = n.min(4);
            scan.tail[..keep].copy_from_slice(&t[n - keep..n]);
            scan.tail_len = keep;
        }
        scan.consumed += data.len() as u64;
        self.start = self.end;
        None
    }
}

/// Where the search for a multi-line answer's terminator stands between reads.
struct BodyScan {
    /// Body bytes consumed so far.
    consumed: u64,
    /// The last up to 4 bytes already scanned, to find a terminator split across two reads.
    tail: [u8; 4],
    tail_len: usize,
}

impl BodyScan {
    /// The status line's CRLF counts as the CRLF before a dot on the first line, so an empty
    /// body (".\r\n" right away) is found too: the tail starts as CRLF.
    fn new() -> BodyScan {
        BodyScan {
            consumed: 0,
            tail: *b"\r\n\0\0",
            tail_len: 2,
        }
    }
}

/// One POP3 connection over a blocking ([`Blocking`]) or event-driven ([`Evented`]) stream.
pub struct Client<S> {
    io: S,
    inbox: Inbox,
    /// Bytes received so far (application data, after TLS).
    pub received: u64,
}

impl<S> std::fmt::Debug for Client<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("received", &self.received)
            .finish()
    }
}

impl Client<Blocking> {
    /// Connects with a blocking socket and a receive buffer of `buf` bytes (and for TLS,
    /// prepares the handshake, which runs on the first read). Does not read the greeting.
    pub fn connect(target: &Target, buf: usize) -> Result<Client<Blocking>> {
        let sock = TcpStream::connect(target.addr).context("connect")?;
        sock.set_nodelay(true)?;
        sock.set_read_timeout(Some(IO_TIMEOUT))?;
        sock.set_write_timeout(Some(IO_TIMEOUT))?;
        let io = match &target.tls {
            None => Io::Plain(sock),
            Some(config) => {
                let conn =
                    rustls::ClientConnection::new(Arc::clone(config), target.server_name.clone())?;
                Io::Tls(Box::new(rustls::StreamOwned::new(conn, sock)))
            }
        };
        Ok(Client::over(Blocking(io), buf))
    }
}

impl Client<Evented> {
    /// Connects with a non-blocking socket on smol's reactor (and for TLS, runs the handshake).
    /// Does not read the greeting. The event-loop session mode bounds the whole run's time
    /// instead of each call's.
    pub async fn connect_evented(target: &Target, buf: usize) -> Result<Client<Evented>> {
        let sock = smol::net::TcpStream::connect(target.addr)
            .await
            .context("connect")?;
        sock.set_nodelay(true)?;
        let io = match &target.tls {
            None => Evented::Plain(sock),
            Some(config) => {
                let tls = futures_rustls::TlsConnector::from(Arc::clone(config))
                    .connect(target.server_name.clone(), sock)
                    .await
                    .context("TLS handshake")?;
                Evented::Tls(Box::new(tls))
            }
        };
        Ok(Client::over(io, buf))
    }
}

impl<S: Conn> Client<S> {
    fn over(io: S, buf: usize) -> Client<S> {
        Client {
            io,
            inbox: Inbox::new(buf),
            received: 0,
        }
    }

    /// The negotiated TLS cipher suite, if this is a TLS connection past its handshake.
    pub fn cipher_suite(&self) -> Option<String> {
        self.io.cipher_suite()
    }

    /// Reads more bytes into the inbox.
    async fn fill(&mut self) -> Result<()> {
        let space = self.inbox.space()?;
        let n = self.io.read(space).await?;
        if n == 0 {
            bail!("server closed the connection");
        }
        self.received += n as u64;
        self.inbox.end += n;
        Ok(())
    }

    /// Reads one answer line and fails unless it starts with `+OK`.
    async fn status(&mut self, what: &str) -> Result<()> {
        while self.inbox.line(what)?.is_none() {
            self.fill()
                .await
                .with_context(|| format!("{what}: reading answer"))?;
        }
        Ok(())
    }

    /// Reads one `+OK` line and returns its text (for STAT).
    pub async fn status_text(&mut self, what: &str) -> Result<String> {
        loop {
            if let Some(line) = self.inbox.line(what)? {
                return Ok(String::from_utf8_lossy(line).trim_end().to_owned());
            }
            self.fill()
                .await
                .with_context(|| format!("{what}: reading answer"))?;
        }
    }

    /// Consumes the rest of a multi-line answer whose `+OK` line has been read, up to and
    /// including the terminating dot line. Returns the bytes consumed (body + terminator).
    async fn body(&mut self) -> Result<u64> {
        let mut scan = BodyScan::new();
        loop {
            if let Some(n) = self.inbox.body(&mut scan) {
                return Ok(n);
            }
            self.fill().await.context("reading multi-line answer")?;
        }
    }

    /// Sends raw bytes (one or more command lines).
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.io.write_all(bytes).await.context("sending command")?;
        self.io.flush().await?;
        Ok(())
    }

    /// Reads the greeting.
    pub async fn greeting(&mut self) -> Result<()> {
        self.status("greeting").await
    }

    /// Sends a command and expects a single `+OK` line.
    pub async fn simple(&mut self, command: &[u8], what: &str) -> Result<()> {
        self.send(command).await?;
        self.status(what).await
    }

    /// Sends a command and consumes its multi-line answer; returns the body bytes.
    pub async fn multi(&mut self, command: &[u8], what: &str) -> Result<u64> {
        self.send(command).await?;
        self.status(what).await?;
        self.body().await
    }

    /// Reads one multi-line answer to a command sent earlier (pipelining).
    pub async fn read_multi(&mut self, what: &str) -> Result<u64> {
        self.status(what).await?;
        self.body().await
    }

    /// USER and PASS.
    pub async fn login(&mut self, user: &str, pass: &str) -> Result<()> {
        self.simple(format!("USER {user}\r\n").as_bytes(), "USER")
            .await?;
        self.simple(format!("PASS {pass}\r\n").as_bytes(), "PASS")
            .await
    }

    /// QUIT, then waits for the server to close so the TIME_WAIT state stays on the server's side
    /// and the client never runs out of ephemeral ports.
    pub async fn quit(mut self) -> Result<()> {
        self.simple(b"QUIT\r\n", "QUIT").await?;
        self.io.close_notify();
        let _ = self.io.flush().await;
        let mut scratch = [0u8; 512];
        loop {
            match self.io.read(&mut scratch).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // A TLS server may close without close_notify, or reset: the session is over.
                Err(_) => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server thread that sends `script` in 3-byte pieces with pauses, so answers arrive split
    /// at every possible place.
    fn trickle(script: &'static [u8]) -> (SocketAddr, std::thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            s.set_nodelay(true).expect("nodelay");
            for (i, chunk) in script.chunks(3).enumerate() {
                s.write_all(chunk).expect("write");
                if i % 2 == 0 {
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        (addr, server)
    }

    const SCRIPT: &[u8] =
        b"+OK hi\r\n+OK\r\n.\r\n+OK x\r\na\r\n..b\r\n.\r\n+OK\r\nline\r\n.\r\n+OK 2 3\r\n-ERR no\r\n";

    /// What both kinds of client must make of [`SCRIPT`].
    async fn read_script<S: Conn>(mut c: Client<S>) {
        c.greeting().await.expect("greeting");
        assert_eq!(c.read_multi("a").await.expect("empty"), 3);
        assert_eq!(c.read_multi("b").await.expect("body"), 11);
        assert_eq!(c.read_multi("c").await.expect("body"), 9);
        assert_eq!(c.status_text("STAT").await.expect("stat"), "+OK 2 3");
        let err = c.status("DELE").await.expect_err("-ERR");
        assert_eq!(format!("{err:#}"), "DELE: -ERR no");
        assert_eq!(c.received, SCRIPT.len() as u64);
    }

    fn target(addr: SocketAddr) -> Target {
        Target {
            addr,
            tls: None,
            server_name: rustls::pki_types::ServerName::try_from("localhost").expect("name"),
        }
    }

    /// Multi-line answers are found whatever the read boundaries, including an empty body and a
    /// terminator split over reads, and pipelined answers stay in the buffer for the next call:
    /// over a blocking socket.
    #[test]
    fn terminator_across_reads_blocking() {
        let (addr, server) = trickle(SCRIPT);
        // A tiny buffer forces many fills and compactions.
        let c = Client::connect(&target(addr), 16).expect("connect");
        smol::block_on(read_script(c));
        server.join().expect("server");
    }

    /// The same over a non-blocking socket on smol's reactor, where reads wait for readiness.
    #[test]
    fn terminator_across_reads_evented() {
        let (addr, server) = trickle(SCRIPT);
        smol::block_on(async {
            let c = Client::connect_evented(&target(addr), 16)
                .await
                .expect("connect");
            read_script(c).await;
        });
        server.join().expect("server");
    }
}
