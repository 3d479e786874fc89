//! Exact message sizes as POP3 sends them, and the sidecar cache that keeps them between sessions.
//!
//! RFC 1939 §11: a maildrop's size counts "the message ... as it would be transmitted ... with
//! CRLF line ends"; maildir files normally have bare LF line ends, so the size is the file length
//! plus one for every LF not already preceded by CR. Finding that means reading the whole file,
//! which would make every login read every message. So sizes are computed once and kept in
//! `poppet-sizes` inside the maildir:
//! ```text
//! poppet-sizes 1
//! <uidl> <file length> <mtime seconds> <mtime nanoseconds> <CRLF size>
//! ...
//! sha256 <hex SHA-256 of every byte above this line>
//! ```
//! The key is the message's UIDL (printable and unique in the maildrop, derived from the file
//! name's unique part). An entry is used only while the file's length and mtime still match, and a
//! file whose version line or checksum is wrong is ignored entirely and rebuilt: a cache is never
//! trusted blindly, because a wrong size breaks the client. It is written to a temporary file and
//! renamed, so a reader never sees half of one.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The cache file's name inside the maildir.
pub const CACHE_FILE: &str = "poppet-sizes";

const VERSION_LINE: &str = "poppet-sizes 1";
const CHECKSUM_PREFIX: &str = "sha256 ";

/// Bytes read per system call while counting line ends: large enough that syscalls do not
/// dominate, small enough to be a trivial allocation.
const CHUNK: usize = 64 * 1024;

/// What identifies one version of a message file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Length in bytes.
    pub len: u64,
    /// Modification time, whole seconds since the epoch.
    pub mtime_sec: i64,
    /// Modification time, nanoseconds part.
    pub mtime_nsec: i64,
}

/// How loading the cache went, for the debug log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loaded {
    /// No cache file yet.
    Missing,
    /// A valid cache.
    Valid,
    /// A cache that failed a check and is ignored.
    Corrupt(String),
}

/// The sizes cache of one maildir.
#[derive(Debug, Default)]
pub struct SizeCache {
    entries: HashMap<String, (FileStamp, u64)>,
}

impl SizeCache {
    /// Reads `dir/poppet-sizes`. A missing or corrupt file gives an empty cache.
    pub fn load(dir: &Path) -> (SizeCache, Loaded) {
        match fs::read(dir.join(CACHE_FILE)) {
            Ok(bytes) => match parse(&bytes) {
                Ok(entries) => (SizeCache { entries }, Loaded::Valid),
                Err(why) => (SizeCache::default(), Loaded::Corrupt(why)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                (SizeCache::default(), Loaded::Missing)
            }
            Err(e) => (SizeCache::default(), Loaded::Corrupt(e.to_string())),
        }
    }

    /// The cached size for `key`, when the file is still the one it was computed for.
    pub fn get(&self, key: &str, stamp: FileStamp) -> Option<u64> {
        match self.entries.get(key) {
            Some((cached, size)) if *cached == stamp => Some(*size),
            _ => None,
        }
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// Checks and parses a cache file's bytes.
fn parse(bytes: &[u8]) -> Result<HashMap<String, (FileStamp, u64)>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or("no checksum line")?;
    let (body, last) = text.split_at(body_end);
    let sum = last
        .trim_end_matches('\n')
        .strip_prefix(CHECKSUM_PREFIX)
        .ok_or("no checksum line")?;
    if sum != crate::name::hex_sha256(body.as_bytes()) {
        return Err("checksum mismatch".into());
    }
    let mut lines = body.lines();
    if lines.next() != Some(VERSION_LINE) {
        return Err("unknown version line".into());
    }
    let mut entries = HashMap::new();
    for line in lines {
        let (key, entry) = parse_entry(line).ok_or_else(|| format!("bad entry {line:?}"))?;
        entries.insert(key, entry);
    }
    Ok(entries)
}

fn parse_entry(line: &str) -> Option<(String, (FileStamp, u64))> {
    let mut fields = line.split(' ');
    let key = fields.next()?.to_owned();
    let len = fields.next()?.parse().ok()?;
    let mtime_sec = fields.next()?.parse().ok()?;
    let mtime_nsec = fields.next()?.parse().ok()?;
    let size = fields.next()?.parse().ok()?;
    if fields.next().is_some() || key.is_empty() {
        return None;
    }
    let stamp = FileStamp {
        len,
        mtime_sec,
        mtime_nsec,
    };
    Some((key, (stamp, size)))
}

/// Writes the cache for exactly `entries` (key, stamp, size), atomically.
pub fn store<'a>(
    dir: &Path,
    entries: impl Iterator<Item = (&'a str, FileStamp, u64)>,
) -> io::Result<()> {
    let mut text = format!("{VERSION_LINE}\n");
    for (key, s, size) in entries {
        text.push_str(&format!(
            "{key} {} {} {} {size}\n",
            s.len, s.mtime_sec, s.mtime_nsec
        ));
    }
    let sum = crate::name::hex_sha256(text.as_bytes());
    text.push_str(&format!("{CHECKSUM_PREFIX}{sum}\n"));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tmp = dir.join(format!("{CACHE_FILE}.tmp.{}.{nanos}", std::process::id()));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| fs::rename(&tmp, dir.join(CACHE_FILE)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    // No fsync: after a crash a torn cache fails its checksum and is rebuilt, which is cheaper
    // than syncing on every login.
    written
}

/// The CRLF size of the file at `path`, reading it once in bounded chunks.
pub fn compute(path: &Path) -> io::Result<u64> {
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut counter = CrlfCounter::default();
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(counter.total),
            Ok(n) => counter.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Counts the octets of a byte stream after bare-LF -> CRLF conversion.
#[derive(Debug, Default)]
pub struct CrlfCounter {
    /// Octets so far, converted.
    pub total: u64,
    prev_cr: bool,
}

impl CrlfCounter {
    /// Adds the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut prev_cr = self.prev_cr;
        let mut bare_lf = 0u64;
        for &b in chunk {
            if b == b'\n' && !prev_cr {
                bare_lf += 1;
            }
            prev_cr = b == b'\r';
        }
        self.prev_cr = prev_cr;
        self.total += chunk.len() as u64 + bare_lf;
    }
}
