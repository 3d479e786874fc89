//! Reading small messages ahead of a client that retrieves them in order.
//!
//! File operations run on the store's thread pool so a slow disk never stalls the host's
//! executor, but every trip there and back costs futex wake-ups and context switches on both
//! sides. For pipelined RETRs of small messages (RFC 2449 PIPELINING: a client "may elect to
//! transmit a group of commands in batches") those handoffs were most of the server's time, one
//! per message. So once a client retrieves message `n + 1` right after message `n`, a reading job
//! on the store's own pool ([`crate::pool::FILES`], which keeps its threads warm) reads the next
//! small messages one after the other into the session's queue, and their RETRs are answered from
//! memory.
//!
//! The job runs while the client is being served and hands over each message as soon as it is
//! read ([`Shared::read`] wakes a retrieval waiting for it), so reading files and writing to the
//! client overlap. It stops when the queue holds [`BYTES`] or [`COUNT`] messages and is started
//! again once the client has taken half of them, so one job usually streams a whole mailbox: with
//! batches of 256 KiB read one at a time, each next one started by the session, the pool sat idle
//! between batches (it read for 78% of the time and the session waited at 72% of the batch
//! boundaries).
//!
//! What is read ahead is bounded ([`BYTES`], [`COUNT`]) and kept only briefly ([`KEEP`]): a
//! message read ahead but asked for later than that is read again, so a message deleted or
//! replaced meanwhile by another program is noticed as it would be without read-ahead. A message
//! is read ahead only from its snapshot name, only with the snapshot's length, and only when the
//! file is the snapshot's: either `cur/` still has the stamp it had, long settled, when the
//! snapshot was taken (then no name in it was replaced, renamed or removed since, and one `statx`
//! of `cur/` after a batch of [`BATCH`] files vouches for all of them), or the open file's
//! identity ([`FileId`]) is the snapshot's. Anything else (renamed, gone, another file, larger
//! than [`LARGEST`]) ends the job, and is left to the normal retrieval, which looks for it
//! properly. A file rewritten in place with the same length under an unchanged `cur/` (which no
//! maildir program does: delivered files are never modified) is the one case read-ahead does not
//! tell from the snapshot's.

use crate::body::CHUNK;
use crate::files::FileId;
use crate::sizes::DirStamp;
use crate::snapshot::Entry;
use event_listener::{Event, EventListener};
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Octets read ahead and not yet taken, at most (counting whole buffers). A session holds at most
/// that, as many again of buffers to reuse, and the message it is sending: 640 KiB, and buffers are
/// kept for reuse only while it retrieves in order.
pub const BYTES: usize = 4 * CHUNK;
/// Messages read ahead and not yet taken, at most.
pub const COUNT: usize = 128;
/// Messages of more octets than this are not read ahead (their retrieval streams them). Half of
/// [`BYTES`], so one always fits once the job is due to start again.
pub const LARGEST: usize = BYTES / 2 - 1;
/// A retrieval that finds the job still reading its message is woken once the job has read this
/// many from it on (or stopped), not at every message: each wake-up costs both threads a context
/// switch, and a session that waits per message waits again at the next one.
pub const WAKE_AFTER: usize = 8;
/// How long a message read ahead is served from memory. A pipelining client asks for it within
/// milliseconds; a client that waits longer gets it read again.
pub const KEEP: Duration = Duration::from_secs(1);

/// A small message read whole: `data[..filled]` is the file.
#[derive(Debug)]
pub struct Whole {
    /// The bytes read, with room for one more (a file that grew shows as `filled > len`); longer
    /// when the buffer was one of an earlier message.
    pub data: Vec<u8>,
    /// Octets of `data` read.
    pub filled: usize,
}

/// Reads a file of `len` octets (from `fstat` on the open file) whole, or `None` when it has grown
/// past `len` meanwhile (the caller streams it instead).
///
/// One `read` of `len + 1` octets that comes back short by exactly that one octet has reached the
/// end: a regular file only reads short at its end. So the common case is one system call.
pub fn read_whole(file: &mut File, len: u64) -> io::Result<Option<Whole>> {
    read_whole_into(file, len, Vec::new())
}

/// [`read_whole`] into `data`, a buffer to reuse (grown if it is too short).
pub fn read_whole_into(file: &mut File, len: u64, mut data: Vec<u8>) -> io::Result<Option<Whole>> {
    let Ok(len) = usize::try_from(len) else {
        return Ok(None);
    };
    if data.len() <= len {
        // Exactly: a buffer grown with room to spare would count for more than the message in
        // the read-ahead's bound.
        data.reserve_exact(len + 1 - data.len());
        data.resize(len + 1, 0);
    }
    let room = len + 1;
    let mut filled = 0;
    while filled < room {
        match file.read(&mut data[filled..room]) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == len {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((filled <= len).then_some(Whole { data, filled }))
}

/// Why the job did not read a message ahead.
#[derive(Debug)]
pub enum Skipped {
    /// It does not fit in what is left of [`BYTES`] now; the next job reads it.
    NoRoom,
    /// Large, renamed, gone, changed or unreadable: its retrieval reads it, the job stops there.
    Unsuitable,
}

/// A message read by the job and not yet handed over: its file stays open until it is known to
/// be the snapshot's.
#[derive(Debug)]
pub struct Held {
    whole: Whole,
    file: File,
}

/// Reads the message at `entry` in `dir` (the maildir's `cur/`) whole, into `buf` if it is long
/// enough, when it is small, fits in `room` octets and still has the snapshot's length. Whether
/// the file is the snapshot's is checked by [`hand_over`], for a batch at a time.
pub fn read_one(dir: &File, entry: &Entry, buf: Vec<u8>, room: usize) -> Result<Held, Skipped> {
    let len = usize::try_from(entry.id.len).map_err(|_| Skipped::Unsuitable)?;
    if len > LARGEST {
        return Err(Skipped::Unsuitable);
    }
    if len >= room {
        return Err(Skipped::NoRoom);
    }
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let mut file = openat(dir, entry.name.as_os_str(), flags, Mode::empty())
        .map(File::from)
        .map_err(|_| Skipped::Unsuitable)?;
    match read_whole_into(&mut file, entry.id.len, buf) {
        Ok(Some(whole)) if whole.filled == len => Ok(Held { whole, file }),
        _ => Err(Skipped::Unsuitable),
    }
}

/// Messages the job reads before it checks them and hands them over together.
pub const BATCH: usize = WAKE_AFTER;

/// The reading job: reads from where run `run` of `shared` stands, one message after the other,
/// until [`ReadAhead::next_for`] says stop. Runs on [`crate::pool::FILES`].
///
/// What it reads is handed over [`BATCH`] messages at a time, once they are known to be the
/// snapshot's files: when the stamp `cur/` had, long settled, when the snapshot was taken
/// ([`Shared::new`]) is still `cur/`'s after they were opened, no name in it was replaced, renamed
/// or removed since, and one `statx` of the directory does for the batch; otherwise each file's
/// identity is checked, as the retrieval without read-ahead does (that `statx` per file was a
/// fifth of the job's time).
pub fn run_job(shared: &Shared, cur: &Path, entries: &[Entry], run: u64) {
    let dir = File::open(cur);
    let mut batch: Vec<(usize, Result<Held, Skipped>)> = Vec::with_capacity(BATCH);
    loop {
        let held_bytes = batch
            .iter()
            .map(|(_, read)| read.as_ref().map_or(0, |h| h.whole.data.capacity()))
            .sum();
        let next = shared.lock().next_for(run, batch.len(), held_bytes);
        let stop = match next {
            Next::Read { at, buf, room } => {
                let read = match (&dir, entries.get(at)) {
                    (Ok(dir), Some(entry)) => read_one(dir, entry, buf, room),
                    _ => Err(Skipped::Unsuitable),
                };
                let failed = read.is_err();
                batch.push((at, read));
                if batch.len() < BATCH && !failed {
                    continue;
                }
                None
            }
            Next::Flush => None,
            Next::Stop { wake } => Some(wake),
        };
        let more = hand_over(shared, &dir, entries, run, &mut batch);
        match stop {
            Some(wake) => {
                if wake {
                    shared.read.notify(usize::MAX);
                }
                return;
            }
            None if !more => return,
            None => {}
        }
    }
}

/// Checks the messages of `batch` (see [`run_job`]) and hands them over in order; whether the job
/// goes on.
fn hand_over(
    shared: &Shared,
    dir: &io::Result<File>,
    entries: &[Entry],
    run: u64,
    batch: &mut Vec<(usize, Result<Held, Skipped>)>,
) -> bool {
    if batch.is_empty() {
        return true;
    }
    let names_hold = shared.settled_cur.is_some_and(|stamp| {
        dir.as_ref().is_ok_and(|dir| {
            dir.metadata()
                .is_ok_and(|meta| DirStamp::of(&meta) == stamp)
        })
    });
    // Checked before the state is locked: the session waits on that lock.
    let mut ours = [false; BATCH];
    for ((at, read), ours) in batch.iter().zip(&mut ours) {
        *ours = read.as_ref().is_ok_and(|held| {
            names_hold
                || entries
                    .get(*at)
                    .is_some_and(|entry| FileId::of_file(&held.file).is_ok_and(|id| id == entry.id))
        });
    }
    let (mut more, mut wake) = (true, false);
    for ((at, read), ours) in batch.drain(..).zip(ours) {
        // The file is closed here, before the state is locked.
        let read = read.and_then(|held| {
            if ours {
                Ok(held.whole)
            } else {
                Err(Skipped::Unsuitable)
            }
        });
        let step = shared.lock().push(run, at, read);
        wake |= step.wake;
        more = step.more;
        if !more {
            break;
        }
    }
    if wake {
        shared.read.notify(usize::MAX);
    }
    more
}

/// What the job does next ([`ReadAhead::next_for`]).
#[derive(Debug)]
pub enum Next {
    /// Read message `at` into `buf`; `room` octets are left in the queue.
    Read {
        /// The message.
        at: usize,
        /// A buffer to reuse (maybe empty).
        buf: Vec<u8>,
        /// What is left of [`BYTES`].
        room: usize,
    },
    /// Hand over what was read first (the queue is full or the maildrop's end is reached with
    /// what the job holds), then ask again.
    Flush,
    /// Stop, waking the retrieval waiting for the job if `wake`.
    Stop {
        /// A retrieval waits: notify [`Shared::read`].
        wake: bool,
    },
}

/// What the job does after a message ([`ReadAhead::push`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// It goes on with the next message.
    pub more: bool,
    /// A retrieval waits for what it read (or for it to stop): notify [`Shared::read`].
    pub wake: bool,
}

/// A session's read-ahead, shared by its retrievals, its bodies (which give their buffers back)
/// and its reading job.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<ReadAhead>,
    /// Notified when the job has read a message or stopped.
    pub read: Event,
    /// The snapshot's stamp of `cur/`, if it had settled (see [`run_job`]).
    settled_cur: Option<DirStamp>,
}

impl Shared {
    /// The read-ahead of a maildrop of `messages` messages, whose snapshot found `cur/` settled
    /// with the stamp `settled_cur` ([`crate::snapshot::Snapshot::settled_cur`]).
    pub fn new(messages: usize, settled_cur: Option<DirStamp>) -> Shared {
        Shared {
            state: Mutex::new(ReadAhead::new(messages)),
            read: Event::new(),
            settled_cur,
        }
    }

    /// Locks the state (a panic elsewhere leaves it consistent: every change is a few fields).
    pub fn lock(&self) -> MutexGuard<'_, ReadAhead> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A message read ahead.
#[derive(Debug)]
struct Ahead {
    index: usize,
    whole: Whole,
    /// When it was read: what counts for [`KEEP`].
    at: Instant,
}

/// The job of the current run, and the message it reads next.
#[derive(Debug, Clone, Copy)]
struct Job {
    run: u64,
    next: usize,
}

/// A reading job to start on the pool: run `run`, reading from message `from` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// The run the job belongs to; it stops as soon as the session has moved on to another.
    pub run: u64,
    /// The first message it reads.
    pub from: usize,
}

/// What a retrieval finds in the read-ahead state.
#[derive(Debug)]
pub enum Found {
    /// Read ahead: served from memory.
    Ready(Whole),
    /// The job is reading it right now: wait for the listener, then look again with
    /// [`ReadAhead::look_again`].
    Pending(EventListener),
    /// Not read ahead: the retrieval reads it.
    Missed,
}

/// The read-ahead state of one session.
#[derive(Debug)]
pub struct ReadAhead {
    /// Messages in the maildrop.
    messages: usize,
    /// The message retrieved last.
    last: Option<usize>,
    /// Read ahead and not yet asked for, in message order, without gaps.
    ready: VecDeque<Ahead>,
    /// The buffers' length in `ready`.
    ready_bytes: usize,
    /// The current run; a job of an earlier one stops at its next message.
    run: u64,
    /// The running job, if any.
    job: Option<Job>,
    /// The message the current run stopped at because it cannot be read ahead: not tried again.
    stopped_at: Option<usize>,
    /// Buffers of messages already sent, for the job to read into: allocating one per message on
    /// the pool and freeing it on the executor's thread was a tenth of the server's time in
    /// pipelined RETRs. At most [`COUNT`] of them, [`BYTES`] together.
    spare: Vec<Vec<u8>>,
    spare_bytes: usize,
    /// A retrieval waits until this message is read (or the job stops).
    wake_at: Option<usize>,
    /// The maildrop is gone: the job stops.
    closed: bool,
}

impl ReadAhead {
    /// The state of a maildrop of `messages` messages.
    pub fn new(messages: usize) -> ReadAhead {
        ReadAhead {
            messages,
            last: None,
            ready: VecDeque::new(),
            ready_bytes: 0,
            run: 0,
            job: None,
            stopped_at: None,
            spare: Vec::new(),
            spare_bytes: 0,
            wake_at: None,
            closed: false,
        }
    }

    /// Notes a retrieval of `index`, finds it, and says which job to start, if one is due.
    /// `read` is the event the job notifies (for [`Found::Pending`]).
    pub fn retrieving(&mut self, index: usize, read: &Event) -> (Found, Option<Start>) {
        let in_order = self
            .last
            .is_some_and(|last| last.checked_add(1) == Some(index));
        self.last = Some(index);
        if !in_order {
            self.forget();
        }
        self.find(index, in_order, read)
    }

    /// Looks for `index` again after [`Found::Pending`].
    pub fn look_again(&mut self, index: usize, read: &Event) -> (Found, Option<Start>) {
        self.find(index, true, read)
    }

    fn find(&mut self, index: usize, in_order: bool, read: &Event) -> (Found, Option<Start>) {
        let found = self.look(index, read);
        let start = match found {
            Found::Missed if in_order => self.begin(index.saturating_add(1)),
            Found::Missed => None,
            Found::Ready(_) | Found::Pending(_) => self.resume(),
        };
        (found, start)
    }

    fn look(&mut self, index: usize, read: &Event) -> Found {
        while let Some(front) = self.ready.front() {
            if front.index >= index {
                break;
            }
            self.pop();
        }
        match self.ready.front() {
            Some(front) if front.index == index && front.at.elapsed() < KEEP => {
                self.pop().map_or(Found::Missed, Found::Ready)
            }
            Some(_) => {
                // Read too long ago (all that follows was read later, but the client is slow),
                // or not the message asked for: start over from here.
                self.forget();
                Found::Missed
            }
            None if self.job.is_some_and(|job| job.next == index) => {
                let last = index
                    .saturating_add(WAKE_AFTER - 1)
                    .min(self.messages.saturating_sub(1));
                self.wake_at = Some(last);
                Found::Pending(read.listen())
            }
            None => Found::Missed,
        }
    }

    fn pop(&mut self) -> Option<Whole> {
        let ahead = self.ready.pop_front()?;
        self.ready_bytes = self.ready_bytes.saturating_sub(ahead.whole.data.capacity());
        Some(ahead.whole)
    }

    /// Drops what was read ahead and ends the run (its job stops at its next message).
    fn forget(&mut self) {
        self.ready.clear();
        self.ready_bytes = 0;
        self.job = None;
        self.stopped_at = None;
        self.wake_at = None;
        self.run = self.run.wrapping_add(1);
    }

    /// Starts a new run from `from`.
    fn begin(&mut self, from: usize) -> Option<Start> {
        self.forget();
        self.start(from)
    }

    /// Starts the job again where the current run stands, once half of what it read was taken.
    fn resume(&mut self) -> Option<Start> {
        if self.job.is_some() || self.ready_bytes > BYTES / 2 || self.ready.len() > COUNT / 2 {
            return None;
        }
        let from = match self.ready.back() {
            Some(ahead) => ahead.index.checked_add(1)?,
            None => self.last?.checked_add(1)?,
        };
        if self.stopped_at.is_some_and(|at| at <= from) {
            return None;
        }
        self.start(from)
    }

    fn start(&mut self, from: usize) -> Option<Start> {
        if self.closed || from >= self.messages {
            return None;
        }
        self.job = Some(Job {
            run: self.run,
            next: from,
        });
        Some(Start {
            run: self.run,
            from,
        })
    }

    /// For the job of run `run`, which holds `held` messages read after the last it handed over
    /// (`held_bytes` of buffers): the message to read next, a buffer to read it into and the room
    /// left, or stop (the session moved on, the queue is full, the end).
    pub fn next_for(&mut self, run: u64, held: usize, held_bytes: usize) -> Next {
        let Some(job) = self.job.filter(|job| job.run == run && !self.closed) else {
            return Next::Stop { wake: false };
        };
        let at = job.next.saturating_add(held);
        let bytes = self.ready_bytes.saturating_add(held_bytes);
        if bytes >= BYTES || self.ready.len().saturating_add(held) >= COUNT || at >= self.messages {
            if held > 0 {
                return Next::Flush;
            }
            self.job = None;
            return Next::Stop {
                wake: self.wake_at.take().is_some(),
            };
        }
        let room = BYTES - bytes;
        // A reused buffer longer than the room is not taken: the buffers' whole length counts.
        let buf = match self.spare.pop() {
            Some(buf) if buf.capacity() <= room => {
                self.spare_bytes = self.spare_bytes.saturating_sub(buf.capacity());
                buf
            }
            Some(buf) => {
                self.spare.push(buf);
                Vec::new()
            }
            None => Vec::new(),
        };
        Next::Read { at, buf, room }
    }

    /// For the job of run `run`: what it read of message `index`.
    pub fn push(&mut self, run: u64, index: usize, read: Result<Whole, Skipped>) -> Step {
        if !self
            .job
            .is_some_and(|job| job.run == run && job.next == index)
        {
            return Step {
                more: false,
                wake: false,
            };
        }
        let more = match read {
            Ok(whole) => {
                let len = whole.data.capacity().max(whole.filled + 1);
                self.ready_bytes += len;
                self.ready.push_back(Ahead {
                    index,
                    whole,
                    at: Instant::now(),
                });
                self.job = Some(Job {
                    run,
                    next: index + 1,
                });
                true
            }
            Err(Skipped::NoRoom) => {
                self.job = None;
                false
            }
            Err(Skipped::Unsuitable) => {
                self.job = None;
                self.stopped_at = Some(index);
                false
            }
        };
        let wake = if !more || self.wake_at.is_some_and(|at| index >= at) {
            self.wake_at.take().is_some()
        } else {
            false
        };
        Step { more, wake }
    }

    /// Keeps the buffer of a message that was sent for the job to reuse, while it reads ahead.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        let bytes = buf.capacity();
        let active = self.job.is_some() || !self.ready.is_empty();
        if active && bytes > 0 && self.spare.len() < COUNT && self.spare_bytes + bytes <= BYTES {
            self.spare_bytes += bytes;
            self.spare.push(buf);
        }
    }

    /// The maildrop is closed: the job stops at its next message and everything is let go.
    pub fn close(&mut self) {
        self.forget();
        self.closed = true;
        self.spare = Vec::new();
        self.spare_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::{
        BYTES, COUNT, DirStamp, Entry, Event, File, Found, KEEP, LARGEST, Mutex, Next, ReadAhead,
        Shared, Skipped, Start, Step, WAKE_AFTER, Whole, hand_over, read_one,
    };
    use std::time::Instant;

    fn whole(byte: u8) -> Whole {
        Whole {
            data: vec![byte, 0],
            filled: 1,
        }
    }

    fn first_byte(found: &Found) -> Option<u8> {
        match found {
            Found::Ready(w) => Some(w.data[0]),
            _ => None,
        }
    }

    /// A read-ahead of `messages` messages after retrievals of the first two, and the job they
    /// started (from message 2).
    fn in_order(messages: usize) -> (Event, ReadAhead, Start) {
        let event = Event::new();
        let mut ahead = ReadAhead::new(messages);
        ahead.retrieving(0, &event);
        let start = ahead.retrieving(1, &event).1.expect("in order: a job");
        assert_eq!(start.from, 2);
        (event, ahead, start)
    }

    /// Plays the job of `start` reading `n` messages (or until it is told to stop).
    fn job_reads(ahead: &mut ReadAhead, start: Start, n: usize) -> usize {
        let mut read = 0;
        while read < n {
            let Next::Read { at, .. } = ahead.next_for(start.run, 0, 0) else {
                break;
            };
            assert!(ahead.push(start.run, at, Ok(whole(at as u8))).more);
            read += 1;
        }
        read
    }

    /// The message the job reads next, and its room.
    fn next_at(ahead: &mut ReadAhead, run: u64) -> Option<(usize, usize, usize)> {
        match ahead.next_for(run, 0, 0) {
            Next::Read { at, buf, room } => Some((at, buf.capacity(), room)),
            Next::Flush | Next::Stop { .. } => None,
        }
    }

    #[test]
    fn in_order_retrievals_start_a_job_that_serves_them_from_memory() {
        let event = Event::new();
        let mut ahead = ReadAhead::new(1000);
        let (found, start) = ahead.retrieving(0, &event);
        assert!(matches!(found, Found::Missed));
        assert_eq!(start, None, "one retrieval is not an order yet");
        let (found, start) = ahead.retrieving(1, &event);
        assert!(matches!(found, Found::Missed));
        let start = start.expect("in order: a job from the next message");
        assert_eq!(start.from, 2);
        // The job has not got to message 2 yet: the retrieval waits for it.
        let (found, again) = ahead.retrieving(2, &event);
        assert!(matches!(found, Found::Pending(_)));
        assert_eq!(again, None, "one job at a time");
        assert_eq!(job_reads(&mut ahead, start, 3), 3);
        let (found, _) = ahead.look_again(2, &event);
        assert_eq!(first_byte(&found), Some(2));
        let (found, _) = ahead.retrieving(3, &event);
        assert_eq!(first_byte(&found), Some(3));
    }

    #[test]
    fn a_waiting_retrieval_is_woken_after_several_messages_or_when_the_job_stops() {
        let (event, mut ahead, start) = in_order(1000);
        assert!(matches!(ahead.retrieving(2, &event).0, Found::Pending(_)));
        for at in 2..2 + WAKE_AFTER {
            let (next, _, _) = next_at(&mut ahead, start.run).expect("reads on");
            assert_eq!(next, at);
            let step = ahead.push(start.run, at, Ok(whole(at as u8)));
            let woken = at == 2 + WAKE_AFTER - 1;
            assert_eq!(
                step,
                Step {
                    more: true,
                    wake: woken
                },
                "message {at}"
            );
        }
        // Nobody waits now: no wake-ups.
        let (at, _, _) = next_at(&mut ahead, start.run).expect("reads on");
        assert!(!ahead.push(start.run, at, Ok(whole(0))).wake);
        // Waiting again, the job stops before the wake-up point: woken all the same.
        let mut small = ReadAhead::new(1000);
        small.retrieving(0, &event);
        let start = small.retrieving(1, &event).1.expect("job");
        assert!(matches!(small.retrieving(2, &event).0, Found::Pending(_)));
        let (at, _, _) = next_at(&mut small, start.run).expect("message 2");
        let step = small.push(start.run, at, Err(Skipped::Unsuitable));
        assert_eq!(
            step,
            Step {
                more: false,
                wake: true
            }
        );
        // And near the end of the maildrop, at its last message.
        let mut end = ReadAhead::new(4);
        end.retrieving(0, &event);
        let start = end.retrieving(1, &event).1.expect("job");
        assert!(matches!(end.retrieving(2, &event).0, Found::Pending(_)));
        let (at, _, _) = next_at(&mut end, start.run).expect("message 2");
        assert!(!end.push(start.run, at, Ok(whole(2))).wake);
        let (at, _, _) = next_at(&mut end, start.run).expect("message 3");
        assert!(end.push(start.run, at, Ok(whole(3))).wake);
    }

    #[test]
    fn the_job_stops_when_the_queue_is_full_and_resumes_at_half() {
        let (event, mut ahead, start) = in_order(1000);
        assert_eq!(
            job_reads(&mut ahead, start, usize::MAX),
            COUNT,
            "at most COUNT"
        );
        assert!(next_at(&mut ahead, start.run).is_none(), "stopped");
        let mut index = 2;
        while ahead.ready.len() > COUNT / 2 + 1 {
            let (found, start) = ahead.retrieving(index, &event);
            assert_eq!(first_byte(&found), Some(index as u8));
            assert_eq!(start, None, "not due before half is taken");
            index += 1;
        }
        let (found, start) = ahead.retrieving(index, &event);
        assert_eq!(first_byte(&found), Some(index as u8));
        let start = start.expect("due again at half");
        assert_eq!(start.from, 2 + COUNT, "after the last message read");
        // And never past the end of the maildrop.
        let mut small = ReadAhead::new(3);
        small.retrieving(0, &event);
        let start = small.retrieving(1, &event).1.expect("job");
        assert_eq!(job_reads(&mut small, start, usize::MAX), 1);
        assert_eq!(small.retrieving(2, &event).1, None);
    }

    #[test]
    fn a_jump_ends_the_run_and_its_job() {
        let (event, mut ahead, old) = in_order(1000);
        assert_eq!(job_reads(&mut ahead, old, 2), 2);
        let (found, start) = ahead.retrieving(7, &event);
        assert!(matches!(found, Found::Missed));
        assert_eq!(start, None, "a jump is not an order");
        assert!(next_at(&mut ahead, old.run).is_none(), "the old job stops");
        assert!(
            !ahead.push(old.run, 4, Ok(whole(4))).more,
            "and what it read is dropped"
        );
        assert!(ahead.ready.is_empty());
        // Going back: message 2 was read ahead, but that run is over.
        ahead.retrieving(1, &event);
        let (found, start) = ahead.retrieving(2, &event);
        assert!(matches!(found, Found::Missed));
        assert_eq!(start.map(|s| s.from), Some(3));
    }

    #[test]
    fn a_message_that_cannot_be_read_ahead_stops_the_job_until_it_is_retrieved() {
        let (event, mut ahead, start) = in_order(1000);
        assert_eq!(job_reads(&mut ahead, start, 1), 1);
        let (at, _, _) = next_at(&mut ahead, start.run).expect("message 3");
        assert!(!ahead.push(start.run, at, Err(Skipped::Unsuitable)).more);
        // The retrieval of message 3 reads it itself.
        let (found, start) = ahead.retrieving(2, &event);
        assert_eq!(first_byte(&found), Some(2));
        assert_eq!(start, None, "not started again at message 3");
        let (found, start) = ahead.retrieving(3, &event);
        assert!(matches!(found, Found::Missed));
        assert_eq!(start.map(|s| s.from), Some(4), "on after it");
        // No room: the job stops, and starts again where it stopped once there is.
        let start = start.expect("job");
        assert_eq!(job_reads(&mut ahead, start, 1), 1);
        let (at, _, _) = next_at(&mut ahead, start.run).expect("message 5");
        assert!(!ahead.push(start.run, at, Err(Skipped::NoRoom)).more);
        let (found, start) = ahead.retrieving(4, &event);
        assert_eq!(first_byte(&found), Some(4));
        assert_eq!(start.map(|s| s.from), Some(5));
    }

    #[test]
    fn what_was_read_longer_ago_than_keep_is_not_served() {
        let (event, mut ahead, start) = in_order(1000);
        assert_eq!(job_reads(&mut ahead, start, 2), 2);
        let long_ago = Instant::now()
            .checked_sub(KEEP * 2)
            .expect("the monotonic clock started more than 2 s ago");
        for ahead in &mut ahead.ready {
            ahead.at = long_ago;
        }
        let (found, start) = ahead.retrieving(2, &event);
        assert!(matches!(found, Found::Missed));
        assert!(ahead.ready.is_empty(), "all of it dropped");
        assert_eq!(
            start.map(|s| s.from),
            Some(3),
            "read again from the next one"
        );
    }

    #[test]
    fn the_queue_and_the_buffers_to_reuse_stay_within_bounds() {
        let event = Event::new();
        let mut ahead = ReadAhead::new(1000);
        ahead.recycle(vec![0; 16]);
        assert!(
            ahead.spare.is_empty(),
            "not kept: nothing is being read ahead"
        );
        ahead.retrieving(0, &event);
        let start = ahead.retrieving(1, &event).1.expect("job");
        ahead.recycle(Vec::new());
        assert!(
            ahead.spare.is_empty(),
            "an empty buffer is not worth keeping"
        );
        for _ in 0..COUNT + 5 {
            ahead.recycle(vec![0; 16]);
        }
        assert_eq!(ahead.spare.len(), COUNT, "at most COUNT buffers");
        ahead.spare.clear();
        ahead.spare_bytes = 0;
        ahead.recycle(vec![0; BYTES - 10]);
        ahead.recycle(vec![0; 20]);
        assert_eq!(ahead.spare_bytes, BYTES - 10, "at most BYTES together");
        // The job takes a reused buffer only if it fits in the room left.
        let (at, capacity, room) = next_at(&mut ahead, start.run).expect("message 2");
        assert_eq!((capacity, room), (BYTES - 10, BYTES), "fits: taken");
        let big = Whole {
            data: vec![0; LARGEST + 1],
            filled: LARGEST,
        };
        assert!(ahead.push(start.run, at, Ok(big)).more);
        ahead.recycle(vec![0; BYTES / 2 + 1]);
        let (_, capacity, room) = next_at(&mut ahead, start.run).expect("message 3");
        assert_eq!(room, BYTES / 2);
        assert_eq!(capacity, 0, "longer than the room: kept back");
        assert_eq!(ahead.spare.len(), 1);
        // Closing lets everything go and stops the job.
        ahead.close();
        assert!(next_at(&mut ahead, start.run).is_none());
        assert!(ahead.spare.is_empty() && ahead.ready.is_empty());
    }

    #[test]
    fn a_job_holding_messages_reads_after_them_and_hands_them_over_before_it_stops() {
        let (_event, mut ahead, start) = in_order(12);
        // Holding three messages (of 100 octets of buffers): it reads the one after them, with
        // their room taken.
        let Next::Read { at, room, .. } = ahead.next_for(start.run, 3, 100) else {
            panic!("reads on");
        };
        assert_eq!((at, room), (5, BYTES - 100));
        // Nothing pushed yet: a full queue or the end with messages held means hand them over.
        assert!(matches!(ahead.next_for(start.run, 10, 100), Next::Flush));
        assert!(matches!(ahead.next_for(start.run, COUNT, 100), Next::Flush));
        assert!(matches!(ahead.next_for(start.run, 1, BYTES), Next::Flush));
        assert!(
            ahead.job.is_some(),
            "the job is not over while it holds messages"
        );
        for at in 2..12 {
            assert!(ahead.push(start.run, at, Ok(whole(at as u8))).more);
        }
        assert!(matches!(ahead.next_for(start.run, 0, 0), Next::Stop { .. }));
        assert!(ahead.job.is_none());
    }

    /// A maildir `cur/` with one message file per body, and the entries a snapshot of it has.
    fn cur_with(bodies: &[&[u8]]) -> (tempfile::TempDir, File, Vec<Entry>) {
        use crate::files::FileId;
        use crate::sizes::FileStamp;
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut entries = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            let path = tmp.path().join(format!("{i}.m:2,"));
            std::fs::write(&path, body).expect("write");
            let meta = std::fs::metadata(&path).expect("stat");
            entries.push(Entry {
                name: path.file_name().expect("name").to_owned(),
                key: format!("{i}.m"),
                stamp: FileStamp::of(&meta),
                id: FileId::of(&meta),
            });
        }
        let dir = File::open(tmp.path()).expect("open cur");
        (tmp, dir, entries)
    }

    /// Runs [`hand_over`] on a batch of all of `entries` read from `dir` in run `start`.
    fn hand_over_all(
        ahead: ReadAhead,
        start: Start,
        dir: File,
        entries: &[Entry],
        settled: Option<DirStamp>,
    ) -> Vec<Option<Vec<u8>>> {
        let shared = Shared {
            state: Mutex::new(ahead),
            read: Event::new(),
            settled_cur: settled,
        };
        let mut batch: Vec<_> = (2..entries.len())
            .map(|at| (at, read_one(&dir, &entries[at], Vec::new(), BYTES)))
            .collect();
        hand_over(&shared, &Ok(dir), entries, start.run, &mut batch);
        assert!(batch.is_empty());
        let mut state = shared.lock();
        let served = state
            .ready
            .drain(..)
            .map(|a| a.whole.data[..a.whole.filled].to_vec())
            .collect::<Vec<_>>();
        (2..entries.len())
            .map(|i| served.get(i - 2).cloned())
            .collect()
    }

    #[test]
    fn a_settled_cur_vouches_for_every_name_while_unchanged_else_each_file_is_checked() {
        let bodies: [&[u8]; 5] = [b"a\n", b"b\n", b"c\n", b"d\n", b"e\n"];
        let (tmp, dir, mut entries) = cur_with(&bodies);
        let stamp = DirStamp::of(&dir.metadata().expect("stat cur"));
        // The snapshot's identity of message 3 is not its file's (as if the file had been
        // replaced in place with the same length, which only a `statx` of the file shows).
        entries[3].id.ino ^= 1;
        let (_event, ahead, start) = in_order(5);
        let served = hand_over_all(ahead, start, dir, &entries, Some(stamp));
        assert_eq!(
            served,
            [
                Some(b"c\n".to_vec()),
                Some(b"d\n".to_vec()),
                Some(b"e\n".to_vec())
            ],
            "cur/ unchanged: the names are the snapshot's, one stat of cur/ for all"
        );
        // Without a settled stamp, or once cur/ changed, each file's identity decides: the run
        // stops at message 3 and nothing after it is handed over.
        for settled in [
            None,
            Some(DirStamp {
                mtime_nsec: stamp.mtime_nsec ^ 1,
                ..stamp
            }),
        ] {
            let dir = File::open(tmp.path()).expect("open cur");
            let (_event, ahead, start) = in_order(5);
            let served = hand_over_all(ahead, start, dir, &entries, settled);
            assert_eq!(served, [Some(b"c\n".to_vec()), None, None], "{settled:?}");
        }
    }

    #[test]
    fn a_file_that_is_not_the_snapshots_length_is_never_read_ahead() {
        let (tmp, dir, entries) = cur_with(&[b"short\n"]);
        let mut longer = entries[0].clone();
        longer.id.len += 1;
        assert!(matches!(
            read_one(&dir, &longer, Vec::new(), BYTES),
            Err(Skipped::Unsuitable)
        ));
        assert!(read_one(&dir, &entries[0], Vec::new(), BYTES).is_ok());
        drop(tmp);
    }

    #[test]
    fn a_reused_buffer_longer_than_the_file_reads_just_the_file() {
        use std::io::{Seek, Write};
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(b"hello\n").expect("write");
        file.rewind().expect("rewind");
        let whole = super::read_whole_into(&mut file, 6, vec![b'x'; 100])
            .expect("read")
            .expect("not grown");
        assert_eq!(&whole.data[..whole.filled], b"hello\n");
        // A reused buffer too short for the file grows to exactly the file and one octet (no
        // spare room the read-ahead's bound would not see).
        file.rewind().expect("rewind");
        let grown = super::read_whole_into(&mut file, 6, vec![b'x'; 4])
            .expect("read")
            .expect("not grown");
        assert_eq!((grown.filled, grown.data.capacity()), (6, 7));
        // A file longer than its recorded length still shows as grown.
        file.rewind().expect("rewind");
        let grown = super::read_whole_into(&mut file, 4, vec![b'x'; 100]).expect("read");
        assert!(grown.is_none());
    }
}
