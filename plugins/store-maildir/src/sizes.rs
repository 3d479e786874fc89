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
//! poppet-sizes 3
//! listing <cur/ dev> <cur/ inode> <cur/ mtime seconds> <cur/ mtime nanoseconds>   (or `listing -`)
//! <uidl> <file length> <mtime seconds> <mtime nanoseconds> <CRLF size or -> [<dev> <inode> <name>]
//! ...
//! sha256 <hex SHA-256 of every byte above this line>
//! ```
//! The key is the message's UIDL (printable and unique in the maildrop, derived from the file
//! name's unique part). An entry is used only while the file's length and mtime still match, and a
//! file whose version line or checksum is wrong is ignored entirely and rebuilt: a cache is never
//! trusted blindly, because a wrong size breaks the client. It is written to a temporary file and
//! renamed, so a reader never sees half of one.
//!
//! The listing line makes the rows, in message order with their file names and identities, the
//! complete contents of `cur/` as long as `cur/` itself is unchanged (same inode and mtime): then
//! a session needs neither to list `cur/` nor to stat every file, which was most of the time of a
//! warm open of a large maildir. This is what Dovecot's uidlist and index do for maildir. Adding,
//! removing or renaming a file changes the directory's mtime. A listing is only written when
//! `cur/` was last changed well before it was read ([`LISTING_SETTLED`]), so a change in the same
//! clock tick as the listing cannot go unnoticed. Message files are never changed in place in a
//! maildir; one that is anyway (a `touch`) no longer matches its identity when it is opened, and
//! then the listing is dropped ([`forget_listing`]) so the next session lists `cur/` again.
//!
//! Version 2 (no listing) caches are read as they are; version 1 caches (which did not count the
//! completed last line) are ignored and rebuilt. An entry is also written when a Maildir++ `W=`
//! turned out wrong while reading, so the next session uses the computed size instead of that
//! name's.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The cache file's name inside the maildir.
pub const CACHE_FILE: &str = "poppet-sizes";

/// Version 1 sizes did not count the completion of a last line without a line end; version 2 has
/// no listing.
const VERSION_LINE: &str = "poppet-sizes 3";
const VERSION_2_LINE: &str = "poppet-sizes 2";
const LISTING_PREFIX: &str = "listing ";
const CHECKSUM_PREFIX: &str = "sha256 ";

/// How long before it is read `cur/` must have been changed last for its listing to be kept:
/// directory mtimes come from a coarse clock (a few milliseconds on Linux), and Dovecot waits the
/// same way before trusting a maildir's mtime. Far above any clock tick, far below the time
/// between a delivery and the next session of a busy mailbox.
pub const LISTING_SETTLED: Duration = Duration::from_secs(2);

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

/// Which version of `cur/` a listing describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_mtime`, seconds.
    pub mtime_sec: i64,
    /// `st_mtime`, nanoseconds.
    pub mtime_nsec: i64,
}

impl DirStamp {
    /// The stamp in `meta`.
    pub fn of(meta: &fs::Metadata) -> DirStamp {
        DirStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_sec: meta.mtime(),
            mtime_nsec: meta.mtime_nsec(),
        }
    }

    /// Whether a listing read after `read_at` may be kept for this version of the directory: it
    /// was changed last at least [`LISTING_SETTLED`] before.
    pub fn settled(&self, read_at: SystemTime) -> bool {
        let Ok(secs) = u64::try_from(self.mtime_sec) else {
            return false;
        };
        let nanos = u32::try_from(self.mtime_nsec).unwrap_or(0);
        let mtime = UNIX_EPOCH + Duration::new(secs, nanos);
        mtime + LISTING_SETTLED <= read_at
    }
}

/// A listed message file: its device, inode and name in `cur/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// The file name in `cur/`.
    pub name: OsString,
}

/// One row of the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The native UIDL.
    pub key: String,
    /// The file version the size belongs to.
    pub stamp: FileStamp,
    /// The CRLF size; `None` in a listing row whose size comes from elsewhere (a `W=`).
    pub size: Option<u64>,
    /// The file, in a listing.
    pub file: Option<ListedFile>,
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
    listing: Option<DirStamp>,
    rows: Vec<Row>,
    /// Rows with a size, by key; built on first use (a listed open does not need it).
    index: OnceCell<HashMap<String, (FileStamp, u64)>>,
}

impl SizeCache {
    /// Reads `dir/poppet-sizes`. A missing or corrupt file gives an empty cache.
    pub fn load(dir: &Path) -> (SizeCache, Loaded) {
        match fs::read(dir.join(CACHE_FILE)) {
            Ok(bytes) => match parse(&bytes) {
                Ok((listing, rows)) => (
                    SizeCache {
                        listing,
                        rows,
                        index: OnceCell::new(),
                    },
                    Loaded::Valid,
                ),
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
        let index = self.index.get_or_init(|| {
            self.rows
                .iter()
                .filter_map(|r| Some((r.key.clone(), (r.stamp, r.size?))))
                .collect()
        });
        match index.get(key) {
            Some((cached, size)) if *cached == stamp => Some(*size),
            _ => None,
        }
    }

    /// The number of rows with a size.
    pub fn len(&self) -> usize {
        self.rows.iter().filter(|r| r.size.is_some()).count()
    }

    /// Takes the listing, in message order, when it describes `cur/` as it is now (`cur`).
    pub fn take_listing(&mut self, cur: DirStamp) -> Option<Vec<Row>> {
        if self.listing != Some(cur) {
            return None;
        }
        self.index = OnceCell::new();
        Some(std::mem::take(&mut self.rows))
    }

    /// Which `cur/` the listing describes, if there is one.
    pub fn listed_dir(&self) -> Option<DirStamp> {
        self.listing
    }
}

/// Checks and parses a cache file's bytes.
fn parse(bytes: &[u8]) -> Result<(Option<DirStamp>, Vec<Row>), String> {
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
    let mut lines = body.split_terminator('\n');
    let listing = match lines.next() {
        Some(VERSION_LINE) => {
            let line = lines.next().ok_or("no listing line")?;
            let stamp = line
                .strip_prefix(LISTING_PREFIX)
                .ok_or_else(|| format!("bad listing line {line:?}"))?;
            match stamp {
                "-" => None,
                _ => Some(parse_dir_stamp(stamp).ok_or_else(|| format!("bad listing {stamp:?}"))?),
            }
        }
        Some(VERSION_2_LINE) => None,
        _ => return Err("unknown version line".into()),
    };
    let mut rows = Vec::new();
    for line in lines {
        let row = parse_row(line).ok_or_else(|| format!("bad entry {line:?}"))?;
        if listing.is_some() && row.file.is_none() {
            return Err(format!("listing entry without a file {line:?}"));
        }
        rows.push(row);
    }
    Ok((listing, rows))
}

fn parse_dir_stamp(text: &str) -> Option<DirStamp> {
    let mut fields = text.split(' ');
    let stamp = DirStamp {
        dev: fields.next()?.parse().ok()?,
        ino: fields.next()?.parse().ok()?,
        mtime_sec: fields.next()?.parse().ok()?,
        mtime_nsec: fields.next()?.parse().ok()?,
    };
    fields.next().is_none().then_some(stamp)
}

/// The text up to the next space, and what follows the space (`None`: there was none). A plain
/// loop: fields are a few octets long, shorter than a `memchr` call is worth.
fn field(text: &str) -> (&str, Option<&str>) {
    match text.bytes().position(|b| b == b' ') {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    }
}

fn parse_row(line: &str) -> Option<Row> {
    let (key, rest) = field(line);
    let (len, rest) = field(rest?);
    let (mtime_sec, rest) = field(rest?);
    let (mtime_nsec, rest) = field(rest?);
    let (size, rest) = field(rest?);
    let stamp = FileStamp {
        len: len.parse().ok()?,
        mtime_sec: mtime_sec.parse().ok()?,
        mtime_nsec: mtime_nsec.parse().ok()?,
    };
    let size = match size {
        "-" => None,
        n => Some(n.parse().ok()?),
    };
    let file = match rest {
        None => None,
        Some(rest) => {
            let (dev, rest) = field(rest);
            let (ino, rest) = field(rest?);
            // The name comes last and may contain spaces.
            let name = rest.filter(|n| !n.is_empty())?;
            Some(ListedFile {
                dev: dev.parse().ok()?,
                ino: ino.parse().ok()?,
                name: OsString::from(name),
            })
        }
    };
    if key.is_empty() || (size.is_none() && file.is_none()) {
        return None;
    }
    Some(Row {
        key: key.to_owned(),
        stamp,
        size,
        file,
    })
}

/// Whether a file name can be written in a listing row (UTF-8, no line breaks).
pub fn listable(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_some_and(|n| !n.is_empty() && !n.contains(['\n', '\r']))
}

/// Writes the cache for exactly `rows`, atomically: with `listing`, they are `cur/`'s complete
/// contents in message order (every row must have its file); without, only rows with a size are
/// written.
pub fn write<'a>(
    dir: &Path,
    listing: Option<DirStamp>,
    rows: impl Iterator<Item = &'a Row>,
) -> io::Result<()> {
    use std::fmt::Write as _;
    let mut text = format!("{VERSION_LINE}\n{LISTING_PREFIX}");
    match listing {
        Some(d) => {
            let _ = writeln!(text, "{} {} {} {}", d.dev, d.ino, d.mtime_sec, d.mtime_nsec);
        }
        None => text.push_str("-\n"),
    }
    for row in rows {
        let s = row.stamp;
        let file = row.file.as_ref().filter(|_| listing.is_some());
        if row.size.is_none() && file.is_none() {
            continue;
        }
        let _ = write!(
            text,
            "{} {} {} {} ",
            row.key, s.len, s.mtime_sec, s.mtime_nsec
        );
        match row.size {
            Some(n) => {
                let _ = write!(text, "{n}");
            }
            None => text.push('-'),
        }
        if let Some(f) = file {
            let name = f.name.to_str().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "file name not listable")
            })?;
            let _ = write!(text, " {} {} {name}", f.dev, f.ino);
        }
        text.push('\n');
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

/// Writes the cache for exactly `entries` (key, stamp, size), with no listing, atomically.
pub fn store<'a>(
    dir: &Path,
    entries: impl Iterator<Item = (&'a str, FileStamp, u64)>,
) -> io::Result<()> {
    let rows: Vec<Row> = entries
        .map(|(key, stamp, size)| Row {
            key: key.to_owned(),
            stamp,
            size: Some(size),
            file: None,
        })
        .collect();
    write(dir, None, rows.iter())
}

/// Records `size` for `key` at `stamp` in `dir`'s cache, keeping the other entries. Used when a
/// size is learnt outside a snapshot (a wrong `W=` found while reading). The listing is dropped
/// with it, so the next session lists `cur/` again.
pub fn remember(dir: &Path, key: &str, stamp: FileStamp, size: u64) -> io::Result<()> {
    let (cache, _) = SizeCache::load(dir);
    let mut sized: HashMap<&str, (FileStamp, u64)> = cache
        .rows
        .iter()
        .filter_map(|r| Some((r.key.as_str(), (r.stamp, r.size?))))
        .collect();
    sized.insert(key, (stamp, size));
    let mut rows: Vec<_> = sized.into_iter().collect();
    // A stable order keeps the file diffable and the checksum reproducible.
    rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
    store(dir, rows.into_iter().map(|(k, (s, n))| (k, s, n)))
}

/// Drops the listing from `dir`'s cache (keeping the sizes), so the next session lists `cur/`
/// again: a message file turned out changed in place, which the listing cannot notice.
pub fn forget_listing(dir: &Path) -> io::Result<()> {
    // Called for every message found changed, so a cache without a listing (the usual case after
    // the first call) is recognised from its first lines, not parsed whole each time.
    let mut head = [0u8; 128];
    let read = match fs::File::open(dir.join(CACHE_FILE)) {
        Ok(mut file) => file.read(&mut head)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let unlisted = format!("{VERSION_LINE}\n{LISTING_PREFIX}-\n");
    if head[..read].starts_with(unlisted.as_bytes())
        || head[..read].starts_with(format!("{VERSION_2_LINE}\n").as_bytes())
    {
        return Ok(());
    }
    let (cache, _) = SizeCache::load(dir);
    if cache.listing.is_none() {
        return Ok(());
    }
    write(dir, None, cache.rows.iter())
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
