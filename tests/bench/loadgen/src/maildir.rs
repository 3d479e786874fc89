//! Fast, deterministic maildir fixtures: the same bytes and file names in every target directory,
//! so both servers read identical mailboxes.
//!
//! Messages have LF line ends (as MTAs store them, so both servers convert to CRLF and count CRLF
//! sizes), realistic headers, 72-column body lines and a line starting with a dot every 40 lines
//! (so dot-stuffing is exercised). Files go straight into `cur/` with the `:2,S` flag, the state
//! after a first POP3 session, so no server renames anything during the benchmark. By default the
//! names carry no `,S=`/`,W=` sizes (as Postfix and most MTAs deliver), so a server must read a
//! message once to learn its POP3 size; `--sizes-in-names` adds Dovecot-LDA style sizes instead.

use anyhow::{Context, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Target directories; a `{}` in one is replaced by the user number, 0..users.
    pub dirs: Vec<String>,
    /// Number of mailboxes per pattern (only meaningful with `{}` in the patterns).
    pub users: u32,
    /// Messages per mailbox.
    pub count: u32,
    /// Size of each message file in bytes (at least the headers).
    pub size: u64,
    /// Put `,S=<file size>,W=<CRLF size>` in the names.
    pub sizes_in_names: bool,
}

/// Builds one message: headers naming the message number, then body lines up to `size` bytes.
/// Returns the bytes and the CRLF size (file size plus one per LF).
fn message(n: u32, size: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(size as usize + 512);
    let _ = write!(
        m,
        "Return-Path: <sender@example.org>\n\
         Delivered-To: user@example.org\n\
         Received: from mx.example.org (mx.example.org [192.0.2.1])\n\
         \tby mail.example.org with ESMTPS id bench{n}\n\
         \tfor <user@example.org>; Tue, 14 Nov 2023 22:13:20 +0000\n\
         From: Sender <sender@example.org>\n\
         To: User <user@example.org>\n\
         Subject: Benchmark message {n}\n\
         Date: Tue, 14 Nov 2023 22:13:20 +0000\n\
         Message-ID: <bench.{n}@example.org>\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=us-ascii\n\n"
    );
    const WORDS: &[&str] = &[
        "lorem",
        "ipsum",
        "dolor",
        "sit",
        "amet",
        "consectetur",
        "adipiscing",
        "elit",
        "sed",
        "do",
        "eiusmod",
        "tempor",
        "incididunt",
        "ut",
        "labore",
        "et",
        "dolore",
        "magna",
        "aliqua",
    ];
    let mut line_no: u64 = 0;
    let mut w = (n as usize) % WORDS.len();
    let mut line = String::with_capacity(80);
    while (m.len() as u64) < size {
        line.clear();
        if line_no % 40 == 39 {
            line.push('.');
        }
        while line.len() < 66 {
            line.push_str(WORDS[w]);
            line.push(' ');
            w = (w + 7) % WORDS.len();
        }
        line.push('\n');
        let room = (size - m.len() as u64) as usize;
        if line.len() <= room {
            m.extend_from_slice(line.as_bytes());
        } else if room > 0 {
            // Pad the last line so the file has the exact size and ends with LF.
            m.extend(std::iter::repeat_n(b'x', room - 1));
            m.push(b'\n');
        }
        line_no += 1;
    }
    m
}

/// The CRLF size of `m` (it has LF line ends only).
fn crlf_size(m: &[u8]) -> u64 {
    m.len() as u64 + memchr::memchr_iter(b'\n', m).count() as u64
}

/// Creates `dir/{cur,new,tmp}` and writes the messages into `cur/`.
fn write_maildir(dir: &Path, messages: &[(String, Vec<u8>)]) -> Result<()> {
    for sub in ["cur", "new", "tmp"] {
        fs::create_dir_all(dir.join(sub))
            .with_context(|| format!("creating {}", dir.join(sub).display()))?;
    }
    let cur = dir.join("cur");
    for (name, body) in messages {
        fs::write(cur.join(name), body).with_context(|| format!("writing {name}"))?;
    }
    Ok(())
}

/// Generates the fixture; returns the number of files written.
pub fn generate(spec: &Spec) -> Result<u64> {
    // Messages are the same for every mailbox: build them once (a 50 MiB message is built once,
    // not once per target).
    let mut messages = Vec::with_capacity(spec.count as usize);
    for i in 0..spec.count {
        let body = message(i + 1, spec.size);
        let base = format!("{}.M{}P4242.bench", 1_700_000_000 + u64::from(i), i + 1);
        let name = if spec.sizes_in_names {
            format!("{base},S={},W={}:2,S", body.len(), crlf_size(&body))
        } else {
            format!("{base}:2,S")
        };
        messages.push((name, body));
    }
    let mut files = 0;
    for pattern in &spec.dirs {
        let users = if pattern.contains("{}") {
            spec.users
        } else {
            1
        };
        for u in 0..users {
            let dir = PathBuf::from(pattern.replace("{}", &u.to_string()));
            write_maildir(&dir, &messages)?;
            files += messages.len() as u64;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_has_exact_size_and_lf_end() {
        for size in [600, 2000, 5 * 1024 * 1024] {
            let m = message(3, size);
            assert_eq!(m.len() as u64, size);
            assert_eq!(m.last(), Some(&b'\n'));
            assert!(!m.contains(&b'\r'));
        }
        let m = message(1, 10_000);
        assert!(m.windows(2).any(|w| w == b"\n."), "a dot line exists");
    }
}
