//! What the `poppet-maildir` command does, before any client connects to a migrated mail tree:
//!
//! - [`uidl_report`]: for every maildir under a root, how many messages keep the UIDL the old
//!   server served, how many would change (clients download those again), and how many the old
//!   server never listed, under a proposed `uidl_source` / `uidl_format`;
//! - [`warm`]: builds every maildir's sizes cache (`poppet-sizes`), so the first login reads no
//!   message bodies, and reports broken maildirs: a missing `cur/`, `new/` or `tmp/`, files that
//!   cannot be read, and `tmp/` files older than 36 hours (deliveries that never finished).
//!
//! Neither changes mail: `new/` stays as it is (names in `new/` are keyed as they will be in
//! `cur/`, and a rename keeps length and mtime, so their cache entries stay valid), nothing is
//! deleted, the old servers' files are only read, and no session lock is taken (the cache is
//! written atomically; a session running meanwhile at worst writes its own).
//!
//! A maildir is a directory with a `cur/` or `new/` subdirectory; the walk does not descend into
//! one (its Maildir++ folders are not served over POP3) and does not follow symbolic links.

use crate::import::{self, ImportedList, UidlSource};
use crate::name;
use crate::sizes::{self, FileStamp, SizeCache};
use crate::snapshot::{self, Entry};
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use walkdir::WalkDir;

/// Age after which a file in `tmp/` is a delivery that never finished. The maildir spec: a
/// reader should delete `tmp/` files "that have not been accessed in 36 hours".
pub const STALE_TMP: Duration = Duration::from_secs(36 * 60 * 60);

/// The maildirs under `root` (the root itself may be one), in name order.
pub fn find_maildirs(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut walk = WalkDir::new(root).sort_by_file_name().into_iter();
    while let Some(item) = walk.next() {
        let item = item.map_err(io::Error::other)?;
        if !item.file_type().is_dir() {
            continue;
        }
        let dir = item.path();
        if dir.join("cur").is_dir() || dir.join("new").is_dir() {
            found.push(dir.to_path_buf());
            walk.skip_current_dir();
        }
    }
    Ok(found)
}

/// The messages of a maildir as a session would see them after moving `new/` to `cur/`, sorted
/// and keyed, each with the path it has now. Unreadable directories are reported in `problems`.
fn messages(dir: &Path, problems: &mut Vec<String>) -> Vec<(Entry, PathBuf)> {
    let mut found = Vec::new();
    for sub in ["cur", "new"] {
        let path = dir.join(sub);
        let names = match snapshot::list(&path) {
            Ok(names) => names,
            // Reported by `warm` as a missing subdirectory.
            Err(_) if !path.exists() => continue,
            Err(e) => {
                problems.push(format!("{}: {}", path.display(), e.message));
                continue;
            }
        };
        for file in names {
            let full = path.join(&file);
            let meta = match fs::metadata(&full) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => continue,
                Err(e) => {
                    problems.push(format!("{}: {e}", full.display()));
                    continue;
                }
            };
            let name = if sub == "new" {
                OsString::from_vec(name::cur_name(file.as_encoded_bytes()))
            } else {
                file
            };
            let entry = Entry {
                name,
                key: String::new(),
                stamp: FileStamp::of(&meta),
                id: crate::files::FileId::of(&meta),
            };
            found.push((entry, full));
        }
    }
    found.sort_by_cached_key(|(e, _)| snapshot::sort_key(e));
    let (mut entries, paths): (Vec<Entry>, Vec<PathBuf>) = found.into_iter().unzip();
    snapshot::assign_keys(&mut entries);
    entries.into_iter().zip(paths).collect()
}

/// What [`uidl_report`] compares against: the server whose files say what it served.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The mail tree.
    pub root: PathBuf,
    /// The setting Poppet would run with.
    pub source: UidlSource,
    /// The old server and its UIDL format. `None`: the same as `source`, or for a native source,
    /// whichever file each maildir has (`dovecot-uidlist` first) with Dovecot's default format.
    pub old: Option<UidlSource>,
}

/// Counts for one maildir or the whole tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UidlCounts {
    /// Messages.
    pub messages: usize,
    /// Messages whose UIDL stays what the old server served.
    pub keep: usize,
    /// Messages whose UIDL would change: clients download them again.
    pub change: usize,
    /// Messages the old server's file does not list (it never served them).
    pub unlisted: usize,
}

impl UidlCounts {
    fn add(&mut self, other: UidlCounts) {
        self.messages += other.messages;
        self.keep += other.keep;
        self.change += other.change;
        self.unlisted += other.unlisted;
    }
}

/// Writes the UIDL report for `options` to `out`: one line per maildir, then the total. Returns
/// the total and whether anything needs attention (a UIDL that would change, an unreadable old
/// list or maildir).
pub fn uidl_report(options: &ReportOptions, out: &mut dyn Write) -> io::Result<(UidlCounts, bool)> {
    let mut total = UidlCounts::default();
    let mut attention = false;
    let maildirs = find_maildirs(&options.root)?;
    for dir in &maildirs {
        let mut problems = Vec::new();
        let mut entries = messages(dir, &mut problems);
        let (new_list, new_problem) = load_or_empty(dir, &options.source);
        let old_source = match &options.old {
            Some(old) => old.clone(),
            None => match &options.source {
                UidlSource::Native => detect_old(dir),
                other => other.clone(),
            },
        };
        let (old_list, old_problem) = load_or_empty(dir, &old_source);
        problems.extend(new_problem);
        problems.extend(old_problem.filter(|_| old_source != options.source));
        let bare: Vec<Entry> = entries.iter().map(|(e, _)| e.clone()).collect();
        let served = snapshot::served_uidls(dir, &bare, &new_list);
        let mut counts = UidlCounts::default();
        for ((entry, _), uidl) in entries.drain(..).zip(served) {
            counts.messages += 1;
            match old_list.get(entry.base()) {
                None => counts.unlisted += 1,
                Some(old) if old.uidl == uidl => counts.keep += 1,
                Some(_) => counts.change += 1,
            }
        }
        let old_file = old_source.file().unwrap_or("no old list");
        let listed = match old_source.file() {
            Some(file) if dir.join(file).exists() => file,
            Some(_) => "no old list",
            None => old_file,
        };
        writeln!(
            out,
            "{}: {} messages: {} keep their UIDL, {} change, {} not listed by the old server ({})",
            dir.display(),
            counts.messages,
            counts.keep,
            counts.change,
            counts.unlisted,
            listed
        )?;
        for problem in &problems {
            writeln!(out, "  problem: {problem}")?;
        }
        attention |= counts.change > 0 || !problems.is_empty();
        total.add(counts);
    }
    writeln!(
        out,
        "total: {} maildirs, {} messages: {} keep their UIDL, {} change, {} not listed by the old \
         server",
        maildirs.len(),
        total.messages,
        total.keep,
        total.change,
        total.unlisted
    )?;
    Ok((total, attention))
}

/// The old server a native setting is compared with: whichever list the maildir has.
fn detect_old(dir: &Path) -> UidlSource {
    if dir.join(import::DOVECOT_UIDLIST).exists() {
        let format = import::UidlFormat::parse(import::DOVECOT_DEFAULT_FORMAT);
        if let Ok(format) = format {
            return UidlSource::Dovecot(format);
        }
    }
    if dir.join(import::COURIER_SIZELIST).exists() {
        return UidlSource::Courier;
    }
    UidlSource::Native
}

fn load_or_empty(dir: &Path, source: &UidlSource) -> (ImportedList, Option<String>) {
    match import::load(dir, source) {
        Ok(list) => (list, None),
        Err(e) => (ImportedList::new(), Some(e)),
    }
}

/// What [`warm`] did for the whole tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WarmCounts {
    /// Maildirs found.
    pub maildirs: usize,
    /// Messages.
    pub messages: usize,
    /// Sizes computed now.
    pub computed: usize,
    /// Sizes the cache already had.
    pub cached: usize,
    /// Sizes a session takes from a Maildir++ `,W=` in the name (not read, not cached).
    pub from_names: usize,
    /// Problems reported.
    pub problems: usize,
}

/// Builds the sizes cache of every maildir under `root`, reporting to `out` one line per maildir,
/// each problem, and the total. `now` is the time `tmp/` ages are measured from.
pub fn warm(root: &Path, now: SystemTime, out: &mut dyn Write) -> io::Result<WarmCounts> {
    let mut total = WarmCounts::default();
    for dir in find_maildirs(root)? {
        total.maildirs += 1;
        let mut problems = Vec::new();
        for sub in ["cur", "new", "tmp"] {
            if !dir.join(sub).is_dir() {
                problems.push(format!("missing {sub}/"));
            }
        }
        stale_tmp(&dir.join("tmp"), now, &mut problems);
        let entries = messages(&dir, &mut problems);
        let (cache, _) = SizeCache::load(&dir);
        let mut rows: Vec<(String, FileStamp, u64)> = Vec::new();
        let (mut computed, mut cached, mut from_names) = (0, 0, 0);
        let w_sized = |entry: &Entry| {
            name::w_size(entry.base()).is_some_and(|w| snapshot::plausible_w(w, entry.stamp.len))
        };
        // The sizes to compute, read concurrently (see `snapshot::map_concurrently`).
        let to_read: Vec<&(Entry, PathBuf)> = entries
            .iter()
            .filter(|(entry, _)| cache.get(&entry.key, entry.stamp).is_none() && !w_sized(entry))
            .collect();
        let mut read =
            snapshot::map_concurrently(&to_read, |(_, path)| sizes::compute(path)).into_iter();
        for (entry, path) in &entries {
            if let Some(size) = cache.get(&entry.key, entry.stamp) {
                cached += 1;
                rows.push((entry.key.clone(), entry.stamp, size));
                continue;
            }
            if w_sized(entry) {
                from_names += 1;
                continue;
            }
            match read.next() {
                Some(Ok(size)) => {
                    computed += 1;
                    rows.push((entry.key.clone(), entry.stamp, size));
                }
                Some(Err(e)) => problems.push(format!("cannot read {}: {e}", path.display())),
                None => problems.push(format!("cannot read {}", path.display())),
            }
        }
        if computed > 0 || rows.len() != cache.len() {
            let written = sizes::store(&dir, rows.iter().map(|(k, s, n)| (k.as_str(), *s, *n)));
            match written {
                Ok(()) => give_to_owner(&dir),
                Err(e) => problems.push(format!("writing {}: {e}", sizes::CACHE_FILE)),
            }
        }
        writeln!(
            out,
            "{}: {} messages: {computed} sizes computed, {cached} already cached, {from_names} \
             from file names",
            dir.display(),
            entries.len()
        )?;
        for problem in &problems {
            writeln!(out, "  problem: {problem}")?;
        }
        total.messages += entries.len();
        total.computed += computed;
        total.cached += cached;
        total.from_names += from_names;
        total.problems += problems.len();
    }
    writeln!(
        out,
        "total: {} maildirs, {} messages: {} sizes computed, {} already cached, {} from file \
         names; {} problems",
        total.maildirs,
        total.messages,
        total.computed,
        total.cached,
        total.from_names,
        total.problems
    )?;
    Ok(total)
}

/// Reports files in `tmp/` not modified for [`STALE_TMP`].
fn stale_tmp(tmp: &Path, now: SystemTime, problems: &mut Vec<String>) {
    let Ok(read) = fs::read_dir(tmp) else {
        return;
    };
    let mut stale = Vec::new();
    for item in read.flatten() {
        // Dot files are not deliveries (maildir readers skip them everywhere).
        if item.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let Ok(meta) = item.metadata() else { continue };
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if meta.is_file() && age > STALE_TMP {
            stale.push(format!(
                "stale tmp/{} ({} hours old: a delivery that never finished; not removed)",
                item.file_name().to_string_lossy(),
                age.as_secs() / 3600
            ));
        }
    }
    stale.sort();
    problems.extend(stale);
}

/// Gives a cache written by root to the maildir's owner, so the server (running as the mail
/// user) can read and replace it. Failing is harmless: the server then rebuilds it.
fn give_to_owner(dir: &Path) {
    let (Ok(owner), Ok(file)) = (fs::metadata(dir), fs::metadata(dir.join(sizes::CACHE_FILE)))
    else {
        return;
    };
    if (owner.uid(), owner.gid()) != (file.uid(), file.gid()) {
        let _ = std::os::unix::fs::chown(
            dir.join(sizes::CACHE_FILE),
            Some(owner.uid()),
            Some(owner.gid()),
        );
    }
}
