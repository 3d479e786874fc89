//! A small, strict POP3 client for tests: it reads exactly what the server sends and checks framing.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A POP3 connection.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The greeting line.
    pub greeting: String,
}

impl Client {
    /// Connects and reads the greeting.
    pub fn connect(addr: SocketAddr) -> Client {
        Self::try_connect(addr)
            .unwrap_or_else(|| panic!("no POP3 greeting from {addr} (refused or closed)"))
    }

    /// Connects and reads the greeting; `None` if the server is not there (refused, or closed
    /// before greeting), for tests that kill the server under their clients.
    pub fn try_connect(addr: SocketAddr) -> Option<Client> {
        let stream = TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        let writer = stream.try_clone().ok()?;
        let mut c = Client {
            reader: BufReader::new(stream),
            writer,
            greeting: String::new(),
        };
        c.greeting = c.try_full_line()?;
        Some(c)
    }

    /// Reads one CRLF-terminated line (without the CRLF). Panics on a bare LF or EOF.
    pub fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf).unwrap();
        assert!(
            buf.ends_with(b"\r\n"),
            "line not CRLF-terminated: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.truncate(buf.len() - 2);
        String::from_utf8(buf).unwrap()
    }

    /// Reads a line, or `None` at EOF.
    pub fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(
                String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
        }
    }

    /// Reads one complete CRLF-terminated line; `None` at EOF or on a connection error, including
    /// a line cut short by the server dying.
    pub fn try_full_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(_) if buf.ends_with(b"\r\n") => {
                buf.truncate(buf.len() - 2);
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
            _ => None,
        }
    }

    /// Sends a command line and reads the one-line answer; `None` if the connection is gone.
    pub fn try_cmd(&mut self, line: &str) -> Option<String> {
        if !self.try_send(format!("{line}\r\n").as_bytes()) {
            return None;
        }
        self.try_full_line()
    }

    /// Like [`Client::body`], but `None` if the connection ends before the terminating ".".
    pub fn try_body(&mut self) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut buf = Vec::new();
            match self.reader.read_until(b'\n', &mut buf) {
                Ok(n) if n > 0 && buf.ends_with(b"\r\n") => {}
                _ => return None,
            }
            if buf == b".\r\n" {
                return Some(out);
            }
            let line = if buf.starts_with(b".") {
                &buf[1..]
            } else {
                &buf[..]
            };
            out.extend_from_slice(line);
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Sends raw bytes; `false` if the server has closed the connection.
    pub fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.writer.write_all(bytes).is_ok()
    }

    /// Sends a command line and reads the one-line answer.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.line()
    }

    /// Reads the body of a multi-line answer up to the terminating ".", undoing dot-stuffing; returns
    /// the bytes with CRLF line ends.
    pub fn body(&mut self) -> Vec<u8> {
        self.try_body()
            .unwrap_or_else(|| panic!("EOF or a line without CRLF inside a multi-line reply"))
    }

    /// Sends a command expecting a multi-line answer; returns the status line and the body.
    pub fn multi(&mut self, line: &str) -> (String, Vec<u8>) {
        let status = self.cmd(line);
        assert!(status.starts_with("+OK"), "{line}: {status}");
        let body = self.body();
        (status, body)
    }

    /// Logs in with USER/PASS, asserting success.
    pub fn login(&mut self, user: &str, password: &str) {
        let r = self.cmd(&format!("USER {user}"));
        assert!(r.starts_with("+OK"), "USER: {r}");
        let r = self.cmd(&format!("PASS {password}"));
        assert!(r.starts_with("+OK"), "PASS: {r}");
    }

    /// Closes the connection without QUIT.
    pub fn drop_connection(self) {
        let _ = self.writer.shutdown(std::net::Shutdown::Both);
    }
}
