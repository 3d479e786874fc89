//! The body stream of one message: its stored bytes through the same [`Transform`] that counted
//! its size, read in bounded chunks on the `blocking` thread pool.
//!
//! It yields exactly the size advertised in LIST or fails: a file that changed under the session
//! (another program rewrote the mbox in place) must not become a stream cut to length that looks
//! complete to the client; an error lets the core answer `-ERR` or drop the connection.

use crate::parse::CHUNK;
use crate::transform::{Transform, Unquote};
use std::fs::File;
use std::io::{self, Read};

/// Reads a message's content range as POP3 sends it.
#[derive(Debug)]
pub struct MessageReader {
    input: io::Take<File>,
    transform: Transform,
    inbuf: Box<[u8]>,
    out: Vec<u8>,
    out_pos: usize,
    finished: bool,
    emitted: u64,
    size: u64,
}

impl MessageReader {
    /// `file` positioned at the content's start; `len` stored bytes become `size` octets.
    pub fn new(file: File, len: u64, unquote: Unquote, size: u64) -> Self {
        MessageReader {
            input: file.take(len),
            transform: Transform::new(unquote),
            inbuf: vec![0; CHUNK].into_boxed_slice(),
            out: Vec::with_capacity(CHUNK + CHUNK / 2),
            out_pos: 0,
            finished: false,
            emitted: 0,
            size,
        }
    }

    /// Refills `out` from the file; false at the end.
    fn refill(&mut self) -> io::Result<bool> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.is_empty() {
            if self.finished {
                return Ok(false);
            }
            let n = loop {
                match self.input.read(&mut self.inbuf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            let out = &mut self.out;
            if n == 0 {
                self.finished = true;
                self.transform.finish(&mut |b| out.extend_from_slice(b));
                if self.input.limit() > 0 {
                    return Err(changed("shorter than"));
                }
            } else {
                self.transform
                    .feed(&self.inbuf[..n], &mut |b| out.extend_from_slice(b));
            }
        }
        Ok(true)
    }
}

impl Read for MessageReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.out_pos == self.out.len() && !self.refill()? {
            if self.emitted != self.size {
                return Err(changed("not"));
            }
            return Ok(0);
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        self.emitted += n as u64;
        if self.emitted > self.size {
            return Err(changed("longer than"));
        }
        Ok(n)
    }
}

fn changed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the message is {what} its advertised size: the mbox changed under the session"),
    )
}
