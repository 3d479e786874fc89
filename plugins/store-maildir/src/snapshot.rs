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
    /// `cur/`'s stamp when it was last changed well before the snapshot was taken
    /// ([`DirStamp::settled`]): as long as `cur/` still has it, each name of the snapshot is still
    /// the file the snapshot saw (creating, renaming or removing a name changes the stamp).
    pub settled_cur: Option<DirStamp>,
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
            let mut entries = one_name_per_file(&cur, scan_cur(dir)?);
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
    // The sizes not in the cache, found concurrently: on a cold page cache each is a disk read.
    let uncached: Vec<usize> = (0..entries.len())
        .filter(|&i| cached.get(i).is_some_and(Option::is_none))
        .collect();
    let mut found =
        map_concurrently(&uncached, |&i| size_of(&cur, &entries[i], &imported)).into_iter();
    let mut snapshot = Snapshot {
        listed_cur: !from_listing,
        settled_cur: cur_stamp.settled(read_at).then_some(cur_stamp),
        ..Snapshot::default()
    };
    snapshot.entries.reserve(entries.len());
    snapshot.messages.reserve(entries.len());
    let mut cache_it = Vec::with_capacity(entries.len());
    for ((entry, uidl), cached) in entries.into_iter().zip(uidls).zip(cached) {
        let sized = match cached {
            Some(size) => Sized::Cache(size),
            None => found.next().unwrap_or(Sized::Gone),
        };
        // The cache comes first: it holds a size only when we computed it (or checked an imported
        // one), and after a `W=` turned out wrong at read time (see `maildrop::Body`) it holds the
        // true size, so that `W=` is never trusted again for this version of the file.
        // The size, whether the cache is to keep it (a `W=` is not cached), and what it counts as.
        let stats = &mut snapshot.stats;
        let (size, keep, counted) = match sized {
            Sized::Cache(size) => (size, true, &mut stats.from_cache),
            Sized::Imported(size) => (size, true, &mut stats.from_imported),
            Sized::Name(w) => (w, false, &mut stats.from_names),
            Sized::Computed(size) => (size, true, &mut stats.computed),
            // Expunged by another reader since we listed it: not part of this snapshot.
            Sized::Gone => continue,
            Sized::Failed(e) => return Err(PluginError::io(format!("reading {uidl}"), &e)),
        };
        *counted += 1;
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

/// Where a message's size came from, or why it has none.
#[derive(Debug)]
enum Sized {
    /// The `poppet-sizes` cache.
    Cache(u64),
    /// The old server's records, checked against the file.
    Imported(u64),
    /// A plausible Maildir++ `,W=` in the name.
    Name(u64),
    /// Read from the file.
    Computed(u64),
    /// The file is gone (another reader expunged it).
    Gone,
    /// The file cannot be read.
    Failed(std::io::Error),
}

/// The size of a message the cache does not know: imported, from its name, or read from the file.
fn size_of(cur: &Path, entry: &Entry, imported: &import::ImportedList) -> Sized {
    let path = || cur.join(&entry.name);
    let imported_size = imported.get(entry.base()).and_then(|i| i.size);
    if let Some(size) =
        imported_size.filter(|&s| import::usable_size(s, &path(), entry.stamp.len).unwrap_or(false))
    {
        return Sized::Imported(size);
    }
    match name::w_size(entry.base()) {
        Some(w) if plausible_w(w, entry.stamp.len) => Sized::Name(w),
        _ => match sizes::compute(&path()) {
            Ok(size) => Sized::Computed(size),
            Err(e) if e.kind() == ErrorKind::NotFound => Sized::Gone,
            Err(e) => Sized::Failed(e),
        },
    }
}

/// Files read (or `stat`ed) at once when a maildir is opened without its cache. On a cold page
/// cache each one is a disk read, and a disk serves several at once: reading 30,000 cold 4 KiB
/// message files took 2.2 s one after the other and 0.77 s eight at a time on the benchmark's
/// virtual disk.
const CONCURRENT_READS: usize = 8;
/// Below this many files, one thread does it all (starting threads costs more than it saves).
const CONCURRENT_FROM: usize = 256;

/// `f` of every item, in order, on up to [`CONCURRENT_READS`] threads when there are many. A
/// thread that cannot be started leaves its share to the caller's thread.
pub fn map_concurrently<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() < CONCURRENT_FROM {
        return items.iter().map(f).collect();
    }
    let f = &f;
    let share = items.len().div_ceil(CONCURRENT_READS);
    std::thread::scope(|scope| {
        let started: Vec<_> = items
            .chunks(share)
            .map(|chunk| {
                let spawned = std::thread::Builder::new()
                    .name("poppet-maildir-read".into())
                    .spawn_scoped(scope, move || chunk.iter().map(f).collect::<Vec<R>>());
                (chunk, spawned.ok())
            })
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for (chunk, thread) in started {
            match thread.map(std::thread::ScopedJoinHandle::join) {
                Some(Ok(part)) => out.extend(part),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => out.extend(chunk.iter().map(f)),
            }
        }
        out
    })
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
pub fn plausible_w(w: u64, len: u64) -> bool {
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

/// One entry per message file. A file with two names in `cur/` is what a reader killed between
/// the link and the unlink of a rename leaves behind, ours among them: the seen flag is added with
/// `files::rename_no_replace`, a link then an unlink. Listed as it was, one message was served as
/// two (the second under a hashed UIDL: a client downloaded it twice), and deleting it removed one
/// name, so it came back in the next session. The rename is completed instead: the name with the
/// most flags (the one it was renamed to) stays, and the other names of the same file are
/// unlinked, which loses nothing; this runs under the session lock, like the move from `new/`.
fn one_name_per_file(cur: &Path, entries: Vec<Entry>) -> Vec<Entry> {
    let flags = |e: &Entry| {
        let name = e.name.as_bytes();
        name.iter()
            .position(|&b| b == b':')
            .map_or(0, |i| name.len() - i)
    };
    let mut at: std::collections::HashMap<(u64, u64), usize> = std::collections::HashMap::new();
    let mut kept: Vec<Entry> = Vec::with_capacity(entries.len());
    for entry in entries {
        let Some(&i) = at.get(&(entry.id.dev, entry.id.ino)) else {
            at.insert((entry.id.dev, entry.id.ino), kept.len());
            kept.push(entry);
            continue;
        };
        let extra = if (flags(&entry), &entry.name) > (flags(&kept[i]), &kept[i].name) {
            std::mem::replace(&mut kept[i], entry)
        } else {
            entry
        };
        let path = cur.join(&extra.name);
        // Checked again just before the unlink: only a second name of this very file goes.
        if FileId::at(&path).is_ok_and(|id| id == extra.id) {
            log::info!(
                "{}: {:?} is a second name of {:?} (an interrupted rename); removing it",
                cur.display(),
                extra.name,
                kept[i].name
            );
            if let Err(e) = fs::remove_file(&path) {
                log::warn!("{}: cannot remove {:?}: {e}", cur.display(), extra.name);
            }
        }
    }
    kept
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
    let names = list(&cur)?;
    let metas = map_concurrently(&names, |name| fs::metadata(cur.join(name)));
    let mut entries = Vec::with_capacity(names.len());
    for (name, meta) in names.into_iter().zip(metas) {
        let meta = match meta {
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

#[cfg(test)]
mod tests {
    use super::{CONCURRENT_FROM, map_concurrently};

    #[test]
    fn many_items_are_mapped_in_order_on_several_threads() {
        let items: Vec<usize> = (0..CONCURRENT_FROM * 3).collect();
        let out = map_concurrently(&items, |&i| {
            let me = std::thread::current();
            (i * 2, me.id(), me.name().map(str::to_owned))
        });
        assert_eq!(
            out.iter().map(|(v, _, _)| *v).collect::<Vec<_>>(),
            items.iter().map(|i| i * 2).collect::<Vec<_>>()
        );
        let mut threads: Vec<_> = out.iter().map(|(_, id, _)| *id).collect();
        threads.dedup();
        assert!(threads.len() > 1, "one thread did it all");
        assert!(
            out.iter()
                .all(|(_, _, name)| name.as_deref() == Some("poppet-maildir-read"))
        );
        // Few items: the caller's thread, no others.
        let few = map_concurrently(&items[..10], |_| std::thread::current().id());
        assert!(few.iter().all(|id| *id == std::thread::current().id()));
    }
}
