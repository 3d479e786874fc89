//! Exact message sizes as POP3 sends them, and the sidecar cache that keeps them between sessions.
//!
//! RFC 1939 §11: a maildrop's size counts "the message ... as it would be transmitted ... with
//! CRLF line ends"; maildir files normally have bare LF line ends, so the size is the file length
//! plus one for every LF not already preceded by CR, plus what completes a last line that has no
//! line end (CRLF, or only LF after a final bare CR): the core ends a body that does not end with
//! a line break with one before the terminating `.`, so the stream must already end with CRLF for
//! the octets sent to equal the size (DESIGN.md: sizes are exactly the octets RETR sends). Finding
//! that means reading the whole file, which would make every login read every message. So sizes
//! are computed once and kept in `poppet-sizes` inside the maildir:
//! ```text
//! poppet-sizes 2
//! <uidl> <file length> <mtime seconds> <mtime nanoseconds> <CRLF size>
//! ...
//! sha256 <hex SHA-256 of every byte above this line>
//! ```
//! The key is the message's UIDL (printable and unique in the maildrop, derived from the file
//! name's unique part). An entry is used only while the file's length and mtime still match, and a
//! file whose version line or checksum is wrong is ignored entirely and rebuilt: a cache is never
//! trusted blindly, because a wrong size breaks the client. It is written to a temporary file and
//! renamed, so a reader never sees half of one.
//!
//! Version 2 counts the completed last line; version 1 caches (which did not) are ignored and
//! rebuilt. An entry is also written when a Maildir++ `W=` turned out wrong while reading, so the
//! next session uses the computed size instead of that name's.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The cache file's name inside the maildir.
pub const CACHE_FILE: &str = "poppet-sizes";

/// Version 1 sizes did not count the completion of a last line without a line end.
const VERSION_LINE: &str = "poppet-sizes 2";
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

impl FileStamp {
    /// The stamp in `meta`.
    pub fn of(meta: &fs::Metadata) -> FileStamp {
        FileStamp {
            len: meta.len(),
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }
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

/// Records `size` for `key` at `stamp` in `dir`'s cache, keeping the other entries. Used when a
/// size is learnt outside a snapshot (a wrong `W=` found while reading).
pub fn remember(dir: &Path, key: &str, stamp: FileStamp, size: u64) -> io::Result<()> {
    let (mut cache, _) = SizeCache::load(dir);
    cache.entries.insert(key.to_owned(), (stamp, size));
    let mut rows: Vec<_> = cache.entries.iter().collect();
    // A stable order keeps the file diffable and the checksum reproducible.
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    store(
        dir,
        rows.into_iter().map(|(k, (s, n))| (k.as_str(), *s, *n)),
    )
}

/// The CRLF size of the file at `path`, reading it once in bounded chunks.
pub fn compute(path: &Path) -> io::Result<u64> {
    compute_from(&mut fs::File::open(path)?)
}

/// The CRLF size of what `file` holds from its current position on.
pub fn compute_from(file: &mut impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut counter = CrlfCounter::default();
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(counter.total()),
            Ok(n) => counter.feed(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Counts the octets of a byte stream after bare-LF -> CRLF conversion and the completion of an
/// unterminated last line (see the module docs).
#[derive(Debug, Default)]
pub struct CrlfCounter {
    /// Octets so far, converted, without the completion.
    converted: u64,
    /// The last byte fed, if any.
    last: Option<u8>,
}

impl CrlfCounter {
    /// Adds the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut prev_cr = self.last == Some(b'\r');
        let mut bare_lf = 0u64;
        for &b in chunk {
            if b == b'\n' && !prev_cr {
                bare_lf += 1;
            }
            prev_cr = b == b'\r';
        }
        if let Some(&b) = chunk.last() {
            self.last = Some(b);
        }
        self.converted += chunk.len() as u64 + bare_lf;
    }

    /// The size of everything fed, as the body stream yields it.
    pub fn total(&self) -> u64 {
        self.converted + completion(self.last).len() as u64
    }
}

/// What ends the stream after a file whose last byte is `last` (`None`: an empty file), so that it
/// ends with CRLF: nothing after LF (converted to CRLF already) or for an empty message, LF after a
/// bare CR, CRLF after anything else. The core's encoder does the same, so with this it never adds
/// anything itself.
pub fn completion(last: Option<u8>) -> &'static [u8] {
    match last {
        None | Some(b'\n') => b"",
        Some(b'\r') => b"\n",
        Some(_) => b"\r\n",
    }
}
