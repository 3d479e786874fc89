//! Taking the snapshot a session works on: move `new/` into `cur/`, list `cur/`, and find every
//! message's UIDL and exact size.
//!
//! The maildir spec: a reader "looks through the new directory for new messages", moves each to
//! `cur/` and adds `:2,`; readers must skip names starting with a dot. The snapshot is fixed here:
//! mail delivered later stays in `new/` until the next session, as RFC 1939 §8 expects (the
//! maildrop is the one the session locked).

use crate::files::{self, FileId};
use crate::import::{self, UidlSource};
use crate::name::{self, FxHashSet};
use crate::sizes::{self, DirStamp, FileStamp, ListedFile, Loaded, Row, SizeCache};
use poppet_sdk::{MessageInfo, PluginError};
use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

/// Where each message's size came from in one open; the cache is working when a second open shows
/// `computed == 0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeStats {
    /// Sizes read from a Maildir++ `,W=` in the file name.
    pub from_names: usize,
    /// Sizes read from the `poppet-sizes` cache.
    pub from_cache: usize,
    /// Sizes computed by reading the message.
    pub computed: usize,
    /// Sizes recorded by the old server (`uidl_source`: Dovecot's `W`, Courier's size list).
    pub from_imported: usize,
}

/// One message file in `cur/`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its file name in `cur/` when the snapshot was taken.
    pub name: OsString,
    /// The native UIDL: the key of the sizes cache, whatever UIDL is served.
    pub key: String,
    /// Length and mtime.
    pub stamp: FileStamp,
    /// Device, inode, length and mtime: how the message is found again after another reader
    /// renamed it, and what makes sure we never send, delete or flag another file that took its
    /// name or unique part.
    pub id: FileId,
}

impl Entry {
    /// The unique part of the name (a prefix of it: kept once, not copied per message).
    pub fn base(&self) -> &[u8] {
        name::base(self.name.as_bytes())
    }
}

/// The messages of one session, in message-number order.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The files.
    pub entries: Vec<Entry>,
    /// What the core sees, index for index with `entries`.
    pub messages: Vec<MessageInfo>,
    /// Where the sizes came from.
    pub stats: SizeStats,
    /// `cur/` was listed: it changed since the cache's listing (or there was none).
    pub listed_cur: bool,
}

/// The delivery time in seconds at the start of a maildir file name, if it has one.
fn delivery_time(name: &[u8]) -> Option<i64> {
    let digits = name.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || name.get(digits) != Some(&b'.') {
        return None;
    }
    std::str::from_utf8(&name[..digits]).ok()?.parse().ok()
}

/// Sorts entries into delivery order, so message numbers are stable between sessions: the
/// delivery time that the maildir spec puts at the start of every file name ("time.unique.host"),
/// then mtime, then name. The name's time comes first because copies (backups, git checkouts,
/// migrations) reset mtimes but keep names.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by_cached_key(sort_key);
}

/// The key [`sort_entries`] sorts by.
pub fn sort_key(e: &Entry) -> (i64, i64, i64, OsString) {
    (
        delivery_time(e.name.as_bytes()).unwrap_or(e.stamp.mtime_sec),
        e.stamp.mtime_sec,
        e.stamp.mtime_nsec,
        e.name.clone(),
    )
}

/// Gives every (sorted) entry its native UIDL, the sizes cache key: the unique part when RFC 1939
/// allows it, and for a second file with the same unique part (the spec forbids it; copies make
/// it happen) a hash of its full name.
pub fn assign_keys(entries: &mut [Entry]) {
    let mut keys = FxHashSet::default();
    for entry in entries {
        let mut key = name::uidl(entry.base());
        if !keys.insert(key.clone()) {
            key = name::hex_sha256(entry.name.as_bytes());
            keys.insert(key.clone());
        }
        entry.key = key;
    }
}

/// The UIDL served for each (sorted, keyed) entry: the old server's when `imported` lists the
/// message with a valid UIDL, else the native one; one that would repeat an earlier message's
/// becomes a hash of the full file name, so UIDLs stay unique.
pub fn served_uidls(dir: &Path, entries: &[Entry], imported: &import::ImportedList) -> Vec<String> {
    // Borrowed, not cloned: this runs for every message of every open.
    let mut served: FxHashSet<&str> = FxHashSet::default();
    served.reserve(entries.len());
    let mut fallbacks: FxHashSet<String> = FxHashSet::default();
    let mut uidls = Vec::with_capacity(entries.len());
    for entry in entries {
        let old = if imported.is_empty() {
            None
        } else {
            imported.get(entry.base())
        };
        let uidl = match old {
            Some(old) if import::valid_uidl(&old.uidl) => old.uidl.as_str(),
            Some(old) => {
                log::warn!(
                    "{}: the old UIDL {:?} of {} is not a valid POP3 UIDL; serving the native one",
                    dir.display(),
                    old.uidl,
                    entry.key
                );
                entry.key.as_str()
            }
            None => entry.key.as_str(),
        };
        if !fallbacks.contains(uidl) && served.insert(uidl) {
            uidls.push(uidl.to_owned());
        } else {
            let fallback = name::hex_sha256(entry.name.as_bytes());
            fallbacks.insert(fallback.clone());
            uidls.push(fallback);
        }
    }
    uidls
}

/// Takes the snapshot of the (locked) maildir at `dir`, serving UIDLs from `source`.
pub fn take(dir: &Path, source: &UidlSource) -> Result<Snapshot, PluginError> {
    move_new(dir)?;
    let cur = dir.join("cur");
    // Before `cur/` is read: a change after this is newer than the stamp kept with the listing.
    let read_at = SystemTime::now();
    let cur_stamp = fs::metadata(&cur)
        .map(|m| DirStamp::of(&m))
        .map_err(|e| PluginError::io(format!("reading {}", cur.display()), &e))?;
    let (mut cache, loaded) = SizeCache::load(dir);
    if let Loaded::Corrupt(why) = &loaded {
        log::warn!("{}: ignoring the size cache ({why})", dir.display());
    }
    // With an unchanged `cur/`, the cache's listing is its contents, sorted and keyed already: no
    // listing of `cur/`, no stat per file (see the `sizes` module).
    let listed = cache.take_listing(cur_stamp);
    let from_listing = listed.is_some();
    let (entries, cached): (Vec<Entry>, Vec<Option<u64>>) = match listed {
        Some(rows) => rows.into_iter().filter_map(listed_entry).unzip(),
        None => {
            let mut entries = scan_cur(dir)?;
            sort_entries(&mut entries);
            assign_keys(&mut entries);
            let cached = entries.iter().map(|e| cache.get(&e.key, e.stamp)).collect();
            (entries, cached)
        }
    };
    let imported = import::load(dir, source).unwrap_or_else(|e| {
        log::warn!(
            "{}: serving native UIDLs, the {} list is unusable: {e}",
            dir.display(),
            source.name()
        );
        import::ImportedList::new()
    });
    let uidls = served_uidls(dir, &entries, &imported);
    let mut snapshot = Snapshot {
        listed_cur: !from_listing,
        ..Snapshot::default()
    };
    snapshot.entries.reserve(entries.len());
    snapshot.messages.reserve(entries.len());
    let mut cache_it = Vec::with_capacity(entries.len());
    for ((entry, uidl), cached) in entries.into_iter().zip(uidls).zip(cached) {
        let path = || cur.join(&entry.name);
        let imported_size = imported.get(entry.base()).and_then(|i| i.size);
        // The cache comes first: it holds a size only when we computed it (or checked an imported
        // one), and after a `W=` turned out wrong at read time (see `maildrop::Body`) it holds the
        // true size, so that `W=` is never trusted again for this version of the file.
        let (size, keep) = if let Some(size) = cached {
            snapshot.stats.from_cache += 1;
            (size, true)
        } else if let Some(size) = imported_size
            .filter(|&s| import::usable_size(s, &path(), entry.stamp.len).unwrap_or(false))
        {
            snapshot.stats.from_imported += 1;
            (size, true)
        } else {
            match name::w_size(entry.base()) {
                Some(w) if plausible_w(w, entry.stamp.len) => {
                    snapshot.stats.from_names += 1;
                    (w, false)
                }
                _ => match sizes::compute(&path()) {
                    Ok(size) => {
                        snapshot.stats.computed += 1;
                        (size, true)
                    }
                    // Expunged by another reader since we listed it: not part of this snapshot.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(PluginError::io(format!("reading {uidl}"), &e)),
                },
            }
        };
        cache_it.push(keep);
        snapshot.messages.push(MessageInfo { size, uidl });
        snapshot.entries.push(entry);
    }
    if !from_listing {
        store_cache(
            dir, &cache, &loaded, &snapshot, &cache_it, cur_stamp, read_at,
        );
    } else if snapshot.stats.computed > 0 || snapshot.stats.from_imported > 0 {
        // Sizes learnt for listed files (a `W=` that is not plausible): keep them, listing and all.
        let rows = rows_of(&snapshot, &cache_it);
        if let Err(e) = sizes::write(dir, Some(cur_stamp), rows.iter()) {
            log::warn!("{}: writing the size cache: {e}", dir.display());
        }
    }
    // The e2e tests read this line (RUST_LOG=poppet_store_maildir=debug) to see the cache work.
    log::debug!(
        "maildir {}: {} sizes from cache, {} computed, {} from file names, {} from the {} list{}",
        dir.display(),
        snapshot.stats.from_cache,
        snapshot.stats.computed,
        snapshot.stats.from_names,
        snapshot.stats.from_imported,
        source.name(),
        if from_listing {
            " (cur/ unchanged, not listed)"
        } else {
            ""
        }
    );
    Ok(snapshot)
}

/// The entry and cached size of a listing row.
fn listed_entry(row: Row) -> Option<(Entry, Option<u64>)> {
    let file = row.file?;
    let entry = Entry {
        name: file.name,
        key: row.key,
        stamp: row.stamp,
        id: FileId {
            dev: file.dev,
            ino: file.ino,
            len: row.stamp.len,
            mtime: (row.stamp.mtime_sec, row.stamp.mtime_nsec),
        },
    };
    Some((entry, row.size))
}

/// The cache rows for a snapshot, in message order: every file, with its size where `cache_it`.
fn rows_of(snapshot: &Snapshot, cache_it: &[bool]) -> Vec<Row> {
    snapshot
        .entries
        .iter()
        .zip(&snapshot.messages)
        .zip(cache_it)
        .map(|((entry, info), &sized)| Row {
            key: entry.key.clone(),
            stamp: entry.stamp,
            size: sized.then_some(info.size),
            file: Some(ListedFile {
                dev: entry.id.dev,
                ino: entry.id.ino,
                name: entry.name.clone(),
            }),
        })
        .collect()
}

/// Rewrites the cache after `cur/` was listed, only when the file would change: new sizes,
/// dropped entries, a bad file, or a listing worth keeping. The listing is kept only when `cur/`
/// had settled before it was read and every name can be written.
fn store_cache(
    dir: &Path,
    cache: &SizeCache,
    loaded: &Loaded,
    snapshot: &Snapshot,
    cache_it: &[bool],
    cur_stamp: DirStamp,
    read_at: SystemTime,
) {
    let listing = (cur_stamp.settled(read_at)
        && snapshot.entries.iter().all(|e| sizes::listable(&e.name)))
    .then_some(cur_stamp);
    let sized = cache_it.iter().filter(|&&c| c).count();
    let changed = snapshot.stats.computed > 0
        || snapshot.stats.from_imported > 0
        || sized != cache.len()
        || (listing.is_some() && listing != cache.listed_dir());
    if changed || matches!(loaded, Loaded::Corrupt(_)) {
        let rows = rows_of(snapshot, cache_it);
        if let Err(e) = sizes::write(dir, listing, rows.iter()) {
            log::warn!("{}: writing the size cache: {e}", dir.display());
        }
    }
}

/// Whether a Maildir++ `W=` can be the CRLF size of a file of `len` octets, judged without reading
/// it: conversion only adds octets (so not below `len`), at most one per octet plus the final CRLF
/// that completes a last line without one (so not above `2 * len + 2`). A `W=` that passes is
/// still checked as the message is read, where a mismatch fails the transfer.
fn plausible_w(w: u64, len: u64) -> bool {
    w >= len && w <= len.saturating_mul(2).saturating_add(2)
}

/// Moves every message in `new/` to `cur/` with an empty flag list.
///
/// The move links then unlinks rather than renaming, so a clashing name in `cur/` is never
/// overwritten (it stays in `new/` with a warning); a half-done earlier move (same file under both
/// names) is completed. Filesystems without hard links fall back to a rename after checking that
/// the target does not exist ([`files::rename_if_absent`]).
fn move_new(dir: &Path) -> Result<(), PluginError> {
    let new = dir.join("new");
    let cur = dir.join("cur");
    for name in list(&new)? {
        let from = new.join(&name);
        let to = cur.join(OsString::from_vec(name::cur_name(name.as_bytes())));
        let moved = match files::rename_no_replace(&from, &to, None) {
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if same_file(&from, &to) {
                    fs::remove_file(&from)
                } else {
                    log::warn!(
                        "{}: {} clashes with cur/, left in new/",
                        dir.display(),
                        to.display()
                    );
                    Ok(())
                }
            }
            moved => moved,
        };
        match moved {
            Ok(()) => {}
            // Another reader (an IMAP server) moved it first; we find it in cur/.
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(PluginError::io(format!("moving {}", from.display()), &e)),
        }
    }
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Lists the message files in `cur/` with their stamps.
pub fn scan_cur(dir: &Path) -> Result<Vec<Entry>, PluginError> {
    let cur = dir.join("cur");
    let mut entries = Vec::new();
    for name in list(&cur)? {
        let meta = match fs::metadata(cur.join(&name)) {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(PluginError::io(format!("reading {}", cur.display()), &e)),
        };
        let stamp = FileStamp::of(&meta);
        let id = FileId::of(&meta);
        entries.push(Entry {
            name,
            key: String::new(),
            stamp,
            id,
        });
    }
    Ok(entries)
}

/// The names in `dir` that may be messages: not starting with a dot, as the spec requires.
pub fn list(dir: &Path) -> Result<Vec<OsString>, PluginError> {
    let read =
        fs::read_dir(dir).map_err(|e| PluginError::io(format!("listing {}", dir.display()), &e))?;
    let mut names = Vec::new();
    for item in read {
        let item = item.map_err(|e| PluginError::io(format!("listing {}", dir.display()), &e))?;
        let name = item.file_name();
        if !name.as_bytes().starts_with(b".") {
            names.push(name);
        }
    }
    Ok(names)
}
