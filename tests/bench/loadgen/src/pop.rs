//! A minimal, allocation-free-per-command POP3 client over plain TCP or rustls.
//!
//! The client owns one large receive buffer. Single-line answers are found with `memchr`, and
//! multi-line answers (LIST, UIDL, RETR) are consumed in place by searching for the terminator
//! `CRLF . CRLF` with `memchr::memmem`, so a RETR costs one `read` per buffer fill and a SIMD scan,
//! never a copy of the body. That keeps the generator's CPU far below the server's.

use anyhow::{Context, Result, bail};
use memchr::memmem;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Receive buffer size: big enough that a 50 MiB RETR needs few `read` calls.
pub const BUF: usize = 256 * 1024;

/// Receive buffer of the session workload, a new one per connection: its answers are a few lines
/// (with `--retr` a body streams through it). Zeroing a [`BUF`] per session was a seventh of the
/// generator's CPU at 1,500 sessions per second.
pub const SESSION_BUF: usize = 16 * 1024;

/// How long any single read or write may block before the session counts as failed.
const IO_TIMEOUT: Duration = Duration::from_secs(120);

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

/// The byte stream under a session.
enum Io {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Io {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf),
            Io::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Io {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Plain(s) => s.write(buf),
            Io::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.flush(),
            Io::Tls(s) => s.flush(),
        }
    }
}

/// One POP3 connection.
pub struct Client {
    io: Io,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    finder: memmem::Finder<'static>,
    /// Bytes received so far (application data, after TLS).
    pub received: u64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("received", &self.received)
            .finish()
    }
}

impl Client {
    /// Connects with a receive buffer of `buf` bytes (and for TLS, prepares the handshake, which
    /// runs on the first read). Does not read the greeting.
    pub fn connect(target: &Target, buf: usize) -> Result<Client> {
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
        Ok(Client {
            io,
            buf: vec![0; buf.max(512)].into_boxed_slice(),
            start: 0,
            end: 0,
            finder: memmem::Finder::new(TERMINATOR),
            received: 0,
        })
    }

    /// The negotiated TLS cipher suite, if this is a TLS connection past its handshake.
    pub fn cipher_suite(&self) -> Option<String> {
        match &self.io {
            Io::Tls(s) => s
                .conn
                .negotiated_cipher_suite()
                .map(|c| format!("{:?}", c.suite())),
            Io::Plain(_) => None,
        }
    }

    /// Reads more bytes into the buffer after `end`; compacts first if the buffer is full.
    fn fill(&mut self) -> Result<()> {
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
        let n = self.io.read(&mut self.buf[self.end..])?;
        if n == 0 {
            bail!("server closed the connection");
        }
        self.received += n as u64;
        self.end += n;
        Ok(())
    }

    /// Reads one answer line and fails unless it starts with `+OK`.
    fn status(&mut self, what: &str) -> Result<()> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line = &self.buf[self.start..self.start + i + 1];
                self.start += i + 1;
                if line.starts_with(b"+OK") {
                    return Ok(());
                }
                let text = String::from_utf8_lossy(line);
                bail!("{what}: {}", text.trim_end());
            }
            self.fill()
                .with_context(|| format!("{what}: reading answer"))?;
        }
    }

    /// Reads one `+OK` line and returns its text (for STAT).
    pub fn status_text(&mut self, what: &str) -> Result<String> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let line = String::from_utf8_lossy(&self.buf[self.start..self.start + i + 1])
                    .trim_end()
                    .to_owned();
                self.start += i + 1;
                if line.starts_with("+OK") {
                    return Ok(line);
                }
                bail!("{what}: {line}");
            }
            self.fill()
                .with_context(|| format!("{what}: reading answer"))?;
        }
    }

    /// Consumes the rest of a multi-line answer whose `+OK` line has been read, up to and
    /// including the terminating dot line. Returns the bytes consumed (body + terminator).
    fn body(&mut self) -> Result<u64> {
        // The status line's CRLF counts as the CRLF before a dot on the first line, so an empty
        // body (".\r\n" right away) is found too: check a line-start dot first.
        let mut consumed: u64 = 0;
        // `tail` holds the last up to 4 bytes of what was already scanned, to find a terminator
        // split across two reads. It starts as CRLF: the body starts at a line start.
        let mut tail = [0u8; 4];
        let mut tail_len = 2;
        tail[..2].copy_from_slice(b"\r\n");
        loop {
            let data = &self.buf[self.start..self.end];
            if !data.is_empty() {
                // A terminator that starts in `tail` and ends in `data`.
                let mut joined = [0u8; 8];
                let head = data.len().min(4);
                joined[..tail_len].copy_from_slice(&tail[..tail_len]);
                joined[tail_len..tail_len + head].copy_from_slice(&data[..head]);
                if let Some(i) = self.finder.find(&joined[..tail_len + head]) {
                    let end = i + TERMINATOR.len() - tail_len;
                    self.start += end;
                    return Ok(consumed + end as u64);
                }
                if let Some(i) = self.finder.find(data) {
                    let end = i + TERMINATOR.len();
                    self.start += end;
                    return Ok(consumed + end as u64);
                }
                // Keep the last 4 bytes (from data, or tail + data when data is short).
                if data.len() >= 4 {
                    tail.copy_from_slice(&data[data.len() - 4..]);
                    tail_len = 4;
                } else {
                    let mut t = [0u8; 8];
                    t[..tail_len].copy_from_slice(&tail[..tail_len]);
                    t[tail_len..tail_len + data.len()].copy_from_slice(data);
                    let n = tail_len + data.len();
                    let keep = n.min(4);
                    tail[..keep].copy_from_slice(&t[n - keep..n]);
                    tail_len = keep;
                }
                consumed += data.len() as u64;
                self.start = self.end;
            }
            self.fill().context("reading multi-line answer")?;
        }
    }

    /// Sends raw bytes (one or more command lines).
    pub fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.io.write_all(bytes).context("sending command")?;
        self.io.flush()?;
        Ok(())
    }

    /// Reads the greeting.
    pub fn greeting(&mut self) -> Result<()> {
        self.status("greeting")
    }

    /// Sends a command and expects a single `+OK` line.
    pub fn simple(&mut self, command: &[u8], what: &str) -> Result<()> {
        self.send(command)?;
        self.status(what)
    }

    /// Sends a command and consumes its multi-line answer; returns the body bytes.
    pub fn multi(&mut self, command: &[u8], what: &str) -> Result<u64> {
        self.send(command)?;
        self.status(what)?;
        self.body()
    }

    /// Reads one multi-line answer to a command sent earlier (pipelining).
    pub fn read_multi(&mut self, what: &str) -> Result<u64> {
        self.status(what)?;
        self.body()
    }

    /// USER and PASS.
    pub fn login(&mut self, user: &str, pass: &str) -> Result<()> {
        self.simple(format!("USER {user}\r\n").as_bytes(), "USER")?;
        self.simple(format!("PASS {pass}\r\n").as_bytes(), "PASS")
    }

    /// QUIT, then waits for the server to close so the TIME_WAIT state stays on the server's side
    /// and the client never runs out of ephemeral ports.
    pub fn quit(mut self) -> Result<()> {
        self.simple(b"QUIT\r\n", "QUIT")?;
        if let Io::Tls(s) = &mut self.io {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
        let mut scratch = [0u8; 512];
        loop {
            match self.io.read(&mut scratch) {
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

    /// Multi-line answers are found whatever the read boundaries, including an empty body and a
    /// terminator split over reads, and pipelined answers stay in the buffer for the next call.
    #[test]
    fn terminator_across_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let script: Vec<u8> =
            b"+OK hi\r\n+OK\r\n.\r\n+OK x\r\na\r\n..b\r\n.\r\n+OK\r\nline\r\n.\r\n+OK 2 3\r\n"
                .to_vec();
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
        let target = Target {
            addr,
            tls: None,
            server_name: rustls::pki_types::ServerName::try_from("localhost").expect("name"),
        };
        // A tiny buffer forces many fills and compactions.
        let mut c = Client::connect(&target, 16).expect("connect");
        c.greeting().expect("greeting");
        assert_eq!(c.read_multi("a").expect("empty"), 3);
        assert_eq!(c.read_multi("b").expect("body"), 11);
        assert_eq!(c.read_multi("c").expect("body"), 9);
        assert_eq!(c.status_text("STAT").expect("stat"), "+OK 2 3");
        server.join().expect("server");
    }
}
