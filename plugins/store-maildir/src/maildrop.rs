//! An open maildrop: the locked snapshot, body streams, and the UPDATE-state commit.
//!
//! RFC 1939 §6: in UPDATE "the POP3 server removes all messages marked as deleted from the
//! maildrop and replies as to the status of this operation"; here that is one unlink per message.
//!
//! A message is its file's identity recorded in the snapshot (inode, length, mtime:
//! [`FileId`]), not its name: another program may rename it during the session (an IMAP server
//! changing flags keeps the unique part and all of these), and two files may share a unique part
//! (the spec forbids it; copies make it happen). So a file is looked up by its unique part and
//! then recognised by its identity, and only that file is ever sent, deleted or flagged. One that
//! is really gone counts as deleted, since the client's wish is fulfilled; one that changed, or is
//! gone while a file outside the snapshot now carries its unique part, is left alone (RETR fails,
//! DELE counts as failed) rather than guessed at. The `S` flag is added by
//! link-then-unlink, which never replaces another file ([`crate::files`]).
//!
//! A commit first checks that the session lock is still ours ([`SessionLock::verify`]); after a
//! takeover it changes nothing. Dropping the maildrop without a commit changes nothing but the
//! lock.

use crate::body::{CHUNK, CrlfReader, Fill, ReadFlag};
use crate::chunks::{Buffers, FileChunks};
use crate::files::{self, FileId};
use crate::lock::SessionLock;
use crate::name::{self, FxHashSet};
use crate::pool::FILES;
use crate::quota;
use crate::readahead::{self, Found, Shared, Start, Whole};
use crate::sizes::{self, FileStamp};
use crate::snapshot::{self, Entry, SizeStats, Snapshot};
use async_task::Task;
use futures_io::AsyncRead;
use poppet_sdk::{CommitReport, ErrorCode, MessageInfo, PluginError};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::future::Future;
use std::io::{self, ErrorKind};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

/// The body stream of one message. File reads run on the store's thread pool (`pool::FILES`), so a
/// slow disk never stalls the host's executor.
///
/// When the file turns out not to be the advertised size (a wrong Maildir++ `W=`, a file changed
/// on disk), the stream fails, after recording the file's true size in the sizes cache, so the
/// next session advertises that instead of trusting the name again.
#[derive(Debug)]
pub struct Body {
    reader: CrlfReader<Source>,
    /// Taken at the first size mismatch.
    recorder: Option<Recorder>,
    /// The recording under way, and the error to return once it is done.
    recording: Option<(Task<()>, io::Error)>,
    /// Where the buffer of a message read whole goes when the body is dropped: the session's
    /// read-ahead, which reads the next messages into it.
    recycle: Arc<Shared>,
}

impl Drop for Body {
    fn drop(&mut self) {
        if matches!(self.reader.source(), Source::Drained) {
            let buf = self.reader.take_buffer();
            self.recycle.lock().recycle(buf);
        }
    }
}

/// Where a body's octets come from after what the retrieval job read. A message of at most
/// [`CHUNK`] octets is read whole by the retrieval job, which already runs on the store's pool, so
/// serving it costs no further thread handoffs: the benchmark showed those handoffs (futex
/// wake-ups) dominating pipelined RETRs of small messages. Larger messages are read in pieces,
/// one ahead of the reader ([`FileChunks`]), so memory stays flat.
#[derive(Debug)]
enum Source {
    /// Everything was read by the retrieval job.
    Drained,
    File(FileChunks),
}

impl Fill for Source {
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<io::Result<usize>> {
        match self {
            Source::Drained => Poll::Ready(Ok(0)),
            Source::File(f) => f.poll_fill(cx, buf),
        }
    }
}

/// Opens a message's body stream (on the store's pool): a small one is read whole here. `len` is
/// the file's length from the identity check just made on the open file, so no second `fstat` is
/// needed.
fn reader(
    mut file: File,
    len: u64,
    size: u64,
    flag: Option<ReadFlag>,
    buffers: Arc<Buffers>,
) -> io::Result<CrlfReader<Source>> {
    if len <= CHUNK as u64 {
        if let Some(whole) = readahead::read_whole(&mut file, len)? {
            return Ok(preloaded(whole, size, flag));
        }
        // It grew meanwhile: stream it from the start like any large message.
        use std::io::Seek as _;
        file.seek(std::io::SeekFrom::Start(0))?;
    }
    Ok(CrlfReader::swapping(
        Source::File(FileChunks::new(file, buffers)),
        size,
        flag,
    ))
}

/// The body stream of a message read whole.
fn preloaded(whole: Whole, size: u64, flag: Option<ReadFlag>) -> CrlfReader<Source> {
    CrlfReader::preloaded(Source::Drained, whole.data, whole.filled, size, flag)
}

/// What a retrieval needs to read ahead.
struct Ahead {
    paths: Arc<Paths>,
    entries: Arc<[Entry]>,
    shared: Arc<Shared>,
}

impl Ahead {
    /// Starts the reading job `start` on the pool.
    fn start(&self, start: Option<Start>) {
        let Some(Start { run, from: _ }) = start else {
            return;
        };
        let (paths, entries, shared) = (
            Arc::clone(&self.paths),
            Arc::clone(&self.entries),
            Arc::clone(&self.shared),
        );
        FILES
            .run(move || readahead::run_job(&shared, &paths.cur, &entries, run))
            .detach();
    }

    /// Finds message `index` (a retrieval in order, whose first look was [`Found::Pending`]) once
    /// the job has read it, or `None` when the job stopped before it.
    async fn wait_for(
        &self,
        index: usize,
        mut listener: event_listener::EventListener,
    ) -> Option<Whole> {
        loop {
            listener.await;
            let (found, start) = self.shared.lock().look_again(index, &self.shared.read);
            self.start(start);
            match found {
                Found::Ready(whole) => return Some(whole),
                Found::Pending(next) => listener = next,
                Found::Missed => return None,
            }
        }
    }
}

/// A maildir's path and its `cur/`, shared by a session's retrievals.
#[derive(Debug)]
struct Paths {
    dir: PathBuf,
    cur: PathBuf,
}

/// What is needed to record a message's true size: shared references and an index, so a retrieval
/// copies nothing (the paths, name and UIDL copied per RETR were most of its allocations).
#[derive(Debug)]
struct Recorder {
    paths: Arc<Paths>,
    entries: Arc<[Entry]>,
    messages: Arc<[MessageInfo]>,
    /// Valid in both `entries` and `messages` (checked when made).
    index: usize,
}

/// An open, locked snapshot of one maildir.
#[derive(Debug)]
pub struct MaildirDrop {
    paths: Arc<Paths>,
    /// Shared with retrieval jobs, which read ahead from it.
    entries: Arc<[Entry]>,
    messages: Arc<[MessageInfo]>,
    stats: SizeStats,
    /// Per message: the body was read to its end (for the `S` flag at commit).
    read_through: Arc<[AtomicBool]>,
    mark_seen: bool,
    /// `None` once committed. Shared with running retrievals, which touch it, and (weakly) with
    /// the store's refresher.
    lock: Option<Arc<SessionLock>>,
    /// Small messages read ahead for a client retrieving in order.
    read_ahead: Arc<Shared>,
    /// The store's read buffers for large messages.
    buffers: Arc<Buffers>,
}

impl MaildirDrop {
    /// Builds the maildrop from a snapshot taken under `lock`.
    pub(crate) fn new(
        dir: PathBuf,
        snapshot: Snapshot,
        lock: Arc<SessionLock>,
        mark_seen: bool,
        buffers: Arc<Buffers>,
    ) -> Self {
        let read_through = (0..snapshot.entries.len())
            .map(|_| AtomicBool::new(false))
            .collect();
        let read_ahead = Arc::new(Shared::new(snapshot.entries.len(), snapshot.settled_cur));
        MaildirDrop {
            paths: Arc::new(Paths {
                cur: dir.join("cur"),
                dir,
            }),
            read_ahead,
            entries: snapshot.entries.into(),
            messages: snapshot.messages.into(),
            stats: snapshot.stats,
            read_through,
            mark_seen,
            lock: Some(lock),
            buffers,
        }
    }

    /// Where this session's sizes came from (the cache is in use when `computed` is 0).
    pub fn stats(&self) -> SizeStats {
        self.stats
    }

    /// The maildir's path.
    pub fn path(&self) -> &Path {
        &self.paths.dir
    }
}

impl Drop for MaildirDrop {
    fn drop(&mut self) {
        // At once, even while the refresher briefly holds a reference, so the next session of
        // this user is not turned away by a lock that is about to go.
        if let Some(lock) = &self.lock {
            lock.release();
        }
        self.read_ahead.lock().close();
    }
}

impl poppet_sdk::Maildrop for MaildirDrop {
    type Body = Body;

    fn messages(&self) -> &[MessageInfo] {
        &self.messages
    }

    fn retrieve(&self, index: usize) -> impl Future<Output = Result<Body, PluginError>> + Send {
        let found = (index < self.entries.len() && index < self.messages.len()).then(|| {
            let flag = Some(ReadFlag::new(Arc::clone(&self.read_through), index));
            let recorder = Recorder {
                paths: Arc::clone(&self.paths),
                entries: Arc::clone(&self.entries),
                messages: Arc::clone(&self.messages),
                index,
            };
            (recorder, flag)
        });
        let ahead = Ahead {
            paths: Arc::clone(&self.paths),
            entries: Arc::clone(&self.entries),
            shared: Arc::clone(&self.read_ahead),
        };
        // The next messages are read while this one is served.
        let (found_ahead, start) = ahead.shared.lock().retrieving(index, &ahead.shared.read);
        ahead.start(start);
        let lock = self.lock.clone();
        let buffers = Arc::clone(&self.buffers);
        async move {
            let Some((recorder, flag)) = found else {
                return Err(PluginError::new(
                    ErrorCode::NOT_FOUND,
                    format!("no message {}", index.saturating_add(1)),
                ));
            };
            let size = recorder.advertised();
            let whole = match found_ahead {
                Found::Ready(whole) => Some(whole),
                Found::Pending(listener) => ahead.wait_for(index, listener).await,
                Found::Missed => None,
            };
            if let Some(whole) = whole {
                let recycle = Arc::clone(&ahead.shared);
                return Ok(Body::new(preloaded(whole, size, flag), recorder, recycle));
            }
            FILES
                .run(move || -> Result<Body, PluginError> {
                    // The lock is kept fresh by the store's refresher thread, not per retrieval (a
                    // utimensat per RETR showed up in the benchmark's syscall counts).
                    drop(lock);
                    let file = open_message(&ahead.paths.cur, recorder.entry())?;
                    let reader = reader(file, recorder.entry().id.len, size, flag, buffers)
                        .map_err(|e| PluginError::io("reading a message", &e))?;
                    Ok(Body::new(reader, recorder, ahead.shared))
                })
                .await
        }
    }

    fn commit(
        &mut self,
        deleted: Vec<usize>,
    ) -> impl Future<Output = Result<CommitReport, PluginError>> + Send {
        let paths = Arc::clone(&self.paths);
        let entries = self.entries.clone();
        let seen: Vec<bool> = self
            .read_through
            .iter()
            .map(|f| self.mark_seen && f.load(Ordering::Relaxed))
            .collect();
        let lock = self.lock.take();
        async move {
            FILES.run(move || {
                let Some(lock) = lock else {
                    return Err(PluginError::new(
                        ErrorCode::OTHER,
                        "commit without the session lock (committed twice?); nothing was changed",
                    ));
                };
                // After a takeover another session may be working on this maildrop: our snapshot's
                // deletes are no longer ours to make. The lock file is left to its new owner.
                // Nothing to change (the usual QUIT), nothing to check: release looks for itself.
                if !deleted.is_empty() || seen.contains(&true) {
                    lock.verify()?;
                }
                let (report, removed) = apply(&paths.cur, &entries, &deleted, &seen);
                quota::record_removal(&paths.dir, removed.bytes, removed.count);
                // Released only after every change is on disk, so the next session sees them all.
                lock.release();
                Ok(report)
            })
            .await
        }
    }
}

impl AsyncRead for Body {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if let Some((task, _)) = &mut this.recording {
                ready!(Pin::new(task).poll(cx));
                if let Some((_, err)) = this.recording.take() {
                    return Poll::Ready(Err(err));
                }
            }
            match ready!(Pin::new(&mut this.reader).poll_read(cx, out)) {
                Err(e) if this.reader.size_mismatch() => match this.recorder.take() {
                    // Recorded before failing, so the next session is right even if the host
                    // closes the connection at once.
                    Some(recorder) => {
                        log::warn!(
                            "{}: message {} ({:?}): {e}",
                            recorder.paths.dir.display(),
                            recorder.uidl(),
                            recorder.entry().name
                        );
                        this.recording = Some((FILES.run(move || recorder.record()), e));
                    }
                    None => return Poll::Ready(Err(e)),
                },
                other => return Poll::Ready(other),
            }
        }
    }
}

impl Body {
    fn new(reader: CrlfReader<Source>, recorder: Recorder, recycle: Arc<Shared>) -> Body {
        Body {
            reader,
            recorder: Some(recorder),
            recording: None,
            recycle,
        }
    }
}

impl Recorder {
    fn entry(&self) -> &Entry {
        &self.entries[self.index]
    }

    fn info(&self) -> &MessageInfo {
        &self.messages[self.index]
    }

    fn uidl(&self) -> &str {
        &self.info().uidl
    }

    fn advertised(&self) -> u64 {
        self.info().size
    }

    /// Computes the file's true size and puts it in the sizes cache, where the next snapshot
    /// finds it before looking at the name's `W=`.
    fn record(self) {
        let (dir, entry) = (&self.paths.dir, self.entry());
        let learnt = open_message(&self.paths.cur, entry)
            .map_err(|e| e.to_string())
            .and_then(|mut file| {
                let stamp = file.metadata().map(|m| FileStamp::of(&m));
                let stamp = stamp.map_err(|e| e.to_string())?;
                let size = sizes::compute_from(&mut file).map_err(|e| e.to_string())?;
                sizes::remember(dir, &entry.key, stamp, size).map_err(|e| e.to_string())?;
                Ok(size)
            });
        match learnt {
            Ok(size) => log::warn!(
                "{}: message {} is {size} octets, not the {} advertised; the next session uses \
                 {size}",
                dir.display(),
                self.uidl(),
                self.advertised()
            ),
            Err(e) => log::warn!(
                "{}: recording the size of message {}: {e}",
                dir.display(),
                self.uidl()
            ),
        }
    }
}

/// Opens a message, following a rename by another reader (a flag change keeps the unique part and
/// the identity). Only the snapshot's file is ever opened: when another file now has its name or
/// its unique part, that is an error, never a substitute.
fn open_message(cur: &Path, entry: &Entry) -> Result<File, PluginError> {
    let uidl = || name::uidl(entry.base());
    let is_ours = |file: &File| FileId::of_file(file).is_ok_and(|id| id == entry.id);
    match File::open(cur.join(&entry.name)) {
        Ok(file) if is_ours(&file) => return Ok(file),
        Ok(_) => changed_in_place(cur),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(PluginError::io(format!("opening {}", cur.display()), &e)),
    }
    let vanished = |what: &str| {
        PluginError::new(
            ErrorCode::NOT_FOUND,
            format!("{}: message {} {what}", cur.display(), uidl()),
        )
    };
    let listing = by_base(cur).map_err(|_| vanished("vanished"))?;
    let mut others = false;
    for name in listing.get(entry.base()).into_iter().flatten() {
        match File::open(cur.join(name)) {
            Ok(file) if is_ours(&file) => return Ok(file),
            Ok(_) => others = true,
            Err(_) => {}
        }
    }
    Err(if others {
        vanished("changed, or was replaced by another file with its unique part; not sending that")
    } else {
        vanished("vanished")
    })
}

/// A snapshot's file name now holds another version of the file, or another file: when that was
/// a change in place (which leaves `cur/`'s mtime alone), the cached listing no longer describes
/// `cur/`, so the next session lists it again.
fn changed_in_place(cur: &Path) {
    if let Some(dir) = cur.parent() {
        if let Err(e) = sizes::forget_listing(dir) {
            log::warn!("{}: dropping the cached listing: {e}", dir.display());
        }
    }
}

/// Where a snapshot's message is now.
#[derive(Debug)]
enum Whereabouts {
    /// Its current names: more than one only while another reader is between link and unlink.
    At(Vec<PathBuf>),
    /// Gone, and no other file has its unique part.
    Gone,
    /// Not found, and we cannot tell that it is gone: leave everything alone.
    Unsure(String),
}

/// The names in `cur/` by unique part. Every name is kept: unique parts can repeat.
type Listing = HashMap<Vec<u8>, Vec<OsString>>;

/// Finds `entry`'s file by its snapshot name, else by unique part, recognising it by its identity.
/// `listing` is filled at most once per commit, and only if some file is not where it was.
/// `known` are the snapshot's files: one of them sharing the unique part (a duplicate the snapshot
/// already told apart) does not make a vanished message doubtful, any other file does.
fn locate(
    cur: &Path,
    entry: &Entry,
    listing: &mut Option<Listing>,
    known: &FxHashSet<FileId>,
) -> Whereabouts {
    let path = cur.join(&entry.name);
    match FileId::at(&path) {
        Ok(id) if id == entry.id => return Whereabouts::At(vec![path]),
        Ok(_) => changed_in_place(cur),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Whereabouts::Unsure(format!("{}: {e}", path.display())),
    }
    let names = match listing {
        Some(names) => names,
        None => match by_base(cur) {
            Ok(names) => listing.insert(names),
            Err(e) => return Whereabouts::Unsure(e.to_string()),
        },
    };
    let mut found = Vec::new();
    let mut others = Vec::new();
    for name in names.get(entry.base()).into_iter().flatten() {
        let path = cur.join(name);
        match FileId::at(&path) {
            Ok(id) if id == entry.id => found.push(path),
            Ok(id) if known.contains(&id) => {}
            Ok(_) => others.push(name.clone()),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Whereabouts::Unsure(format!("{}: {e}", path.display())),
        }
    }
    if !found.is_empty() {
        Whereabouts::At(found)
    } else if others.is_empty() {
        Whereabouts::Gone
    } else {
        Whereabouts::Unsure(format!(
            "it changed, or was replaced: {others:?} now carry its unique part"
        ))
    }
}

/// What a commit unlinked itself, as the `maildirsize` quota counts it.
#[derive(Debug, Default)]
struct Removed {
    /// The `,S=` sizes of the names, else the files' lengths.
    bytes: u64,
    count: u64,
}

/// Unlinks the deleted messages and flags the ones read through as seen; also says what it
/// unlinked itself (a message another program deleted first is that program's to count).
fn apply(
    cur: &Path,
    entries: &[Entry],
    deleted: &[usize],
    seen: &[bool],
) -> (CommitReport, Removed) {
    let mut report = CommitReport::default();
    let mut removed = Removed::default();
    let mut listing = None;
    let known: FxHashSet<FileId> = entries.iter().map(|e| e.id).collect();
    let mut is_deleted = vec![false; entries.len()];
    for &index in deleted {
        let Some(entry) = entries.get(index) else {
            log::warn!("{}: commit of unknown message index {index}", cur.display());
            report.failed += 1;
            continue;
        };
        is_deleted[index] = true;
        match delete(cur, entry, &mut listing, &known) {
            Ok(unlinked) => {
                report.deleted += 1;
                if unlinked {
                    removed.count += 1;
                    removed.bytes += name::s_size(entry.base()).unwrap_or(entry.id.len);
                }
            }
            Err(why) => {
                log::warn!("{}: not deleting {:?}: {why}", cur.display(), entry.name);
                report.failed += 1;
            }
        }
    }
    for (index, entry) in entries.iter().enumerate() {
        if is_deleted[index] || !seen.get(index).copied().unwrap_or(false) {
            continue;
        }
        if let Whereabouts::At(paths) = locate(cur, entry, &mut listing, &known) {
            if let Some(path) = paths.first() {
                flag_seen(cur, entry, path);
            }
        }
    }
    (report, removed)
}

/// Unlinks every name of `entry`'s file, and nothing else; `Ok(true)` when this call unlinked it,
/// `Ok(false)` when it was gone already.
fn delete(
    cur: &Path,
    entry: &Entry,
    listing: &mut Option<Listing>,
    known: &FxHashSet<FileId>,
) -> Result<bool, String> {
    let mut unlinked = false;
    // A name that disappears between finding and unlinking was renamed by another reader just
    // then: look again. Three rounds: a reader renaming the same file on every look is not
    // something to chase forever.
    for _ in 0..3 {
        let paths = match locate(cur, entry, listing, known) {
            Whereabouts::At(paths) => paths,
            Whereabouts::Gone => return Ok(unlinked),
            Whereabouts::Unsure(why) => return Err(why),
        };
        let mut raced = false;
        for path in paths {
            // Checked once more just before the unlink, which has no "only if" form.
            match FileId::at(&path) {
                Ok(id) if id == entry.id => match fs::remove_file(&path) {
                    Ok(()) => unlinked = true,
                    Err(e) if e.kind() == ErrorKind::NotFound => raced = true,
                    Err(e) => return Err(format!("{}: {e}", path.display())),
                },
                Ok(_) => raced = true,
                Err(e) if e.kind() == ErrorKind::NotFound => raced = true,
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
        }
        if !raced {
            return Ok(unlinked);
        }
        *listing = None;
    }
    Err("it keeps being renamed by another program".into())
}

/// Adds the `S` flag to `entry`'s file at `path`. Best effort: a missing flag costs an IMAP client
/// a bold line, nothing more; never at the price of another message, so a flagged name that
/// already exists (a file sharing the unique part) is left alone.
fn flag_seen(cur: &Path, entry: &Entry, path: &Path) {
    let Some(file_name) = path.file_name() else {
        return;
    };
    let Some(flagged) = name::with_seen(file_name.as_bytes()) else {
        return;
    };
    let target = cur.join(OsString::from_vec(flagged));
    match files::rename_no_replace(path, &target, Some(entry.id)) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => log::warn!(
            "{}: not flagging {:?} seen: {:?} is another file with the same unique part",
            cur.display(),
            entry.name,
            target.file_name().unwrap_or_default()
        ),
        Err(e) => log::debug!("{}: flagging {:?} seen: {e}", cur.display(), entry.name),
    }
}

/// The files of `cur/` by unique part.
fn by_base(cur: &Path) -> Result<Listing, PluginError> {
    let mut listing = Listing::new();
    for n in snapshot::list(cur)? {
        listing
            .entry(name::base(n.as_bytes()).to_vec())
            .or_default()
            .push(n);
    }
    Ok(listing)
}
