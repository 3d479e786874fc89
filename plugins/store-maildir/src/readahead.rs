//! Reading small messages ahead of a client that retrieves them in order.
//!
//! File operations run on the `blocking` thread pool so a slow disk never stalls the host's
//! executor, but every trip there and back costs futex wake-ups and context switches on both
//! sides. For pipelined RETRs of small messages (RFC 2449 PIPELINING: a client "may elect to
//! transmit a group of commands in batches") those handoffs were most of the server's time, one
//! per message. So once a client retrieves message `n + 1` right after message `n`, a batch of the
//! next small messages is read in one pool job, and their RETRs are answered from memory.
//!
//! That batch is read while the client is being served: a retrieval that misses or takes a
//! message from memory starts the next batch at once ([`ReadAhead::prefetch_from`]), so reading
//! files and writing to the client overlap instead of taking turns (one batch ahead at most).
//!
//! What is read ahead is bounded ([`BYTES`], [`COUNT`]) and kept only briefly ([`KEEP`]): a
//! message read ahead but asked for later than that is read again, so a message deleted or
//! replaced meanwhile by another program is noticed as it would be without read-ahead. A message
//! is read ahead only from its snapshot name and only when the open file is the snapshot's
//! ([`FileId`]); anything else (renamed, gone, large) ends the batch and is left to the normal
//! retrieval, which looks for it properly.

use crate::body::CHUNK;
use crate::files::FileId;
use crate::snapshot::Entry;
use blocking::Task;
use nix::fcntl::{OFlag, openat};
use nix::sys::stat::Mode;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::path::Path;
use std::time::{Duration, Instant};

/// Octets read ahead at most per batch, four body buffers: a session holds at most two batches
/// (one being sent, one being read) and [`BYTES`] of buffers to reuse, so its memory stays bounded
/// whatever it retrieves (768 KiB at most, and buffers are kept for reuse only while it retrieves
/// in order). Larger batches mean fewer handoffs to the pool, and more slack between the reading and
/// the sending: 64 KiB batches read one after the other made 105k pipelined 4 KiB RETRs per second
/// in the benchmark, 128 KiB batches read one ahead 140-150k, 256 KiB ones 15% more than that
/// (704 -> 811 MiB/s, 4 alternating runs).
pub const BYTES: usize = 4 * CHUNK;
/// Messages read ahead at most in one batch.
pub const COUNT: usize = 128;
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

/// Reads messages from `from` on, as many as the bounds allow, stopping at the first one that is
/// large or not simply where the snapshot saw it.
///
/// Files are opened relative to `cur/`, opened once per batch: a full path per file had the kernel
/// walk every component each time (`openat` was 18% of the server's time in pipelined RETRs).
/// Messages are read into buffers from `spare` while there are any.
pub fn read_from(
    cur: &Path,
    entries: &[Entry],
    from: usize,
    spare: &mut Vec<Vec<u8>>,
) -> Vec<(usize, Whole)> {
    let mut budget = BYTES;
    let mut read = Vec::new();
    let Ok(dir) = File::open(cur) else {
        return read;
    };
    for (at, entry) in entries.iter().enumerate().skip(from).take(COUNT) {
        let Ok(len) = usize::try_from(entry.id.len) else {
            break;
        };
        if len >= budget {
            break;
        }
        let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
        let Ok(mut file) =
            openat(&dir, entry.name.as_os_str(), flags, Mode::empty()).map(File::from)
        else {
            break;
        };
        if !FileId::of_file(&file).is_ok_and(|id| id == entry.id) {
            break;
        }
        // A reused buffer longer than what is left of the budget is not taken: the buffers' whole
        // length counts, so a batch stays within BYTES.
        let buf = spare
            .pop()
            .filter(|b| b.capacity() <= budget)
            .unwrap_or_default();
        match read_whole_into(&mut file, entry.id.len, buf) {
            Ok(Some(whole)) => {
                budget = budget.saturating_sub(whole.data.capacity().max(len + 1));
                read.push((at, whole));
            }
            _ => break,
        }
    }
    read
}

/// Messages read ahead, and when their reading began: what counts for [`KEEP`], however long the
/// batch then waited to be asked for.
pub type ReadBatch = (Instant, Vec<(usize, Whole)>);

/// A batch being read ahead on the blocking pool.
pub type Batch = Task<ReadBatch>;

/// Reads a batch from `from` on (see [`read_from`]), noting when it began.
pub fn read_batch(cur: &Path, entries: &[Entry], from: usize, spare: Vec<Vec<u8>>) -> ReadBatch {
    let began = Instant::now();
    let mut spare = spare;
    (began, read_from(cur, entries, from, &mut spare))
}

/// What a retrieval finds in the read-ahead state.
#[derive(Debug)]
pub enum Found {
    /// Read ahead: served from memory.
    Ready(Whole),
    /// Its batch is being read right now: wait for it, [`ReadAhead::store`] it and look again
    /// with [`ReadAhead::take`].
    Reading(Batch),
    /// Not read ahead; `in_order` says whether the client retrieves in order.
    Missed { in_order: bool },
}

/// The read-ahead state of one session.
#[derive(Debug, Default)]
pub struct ReadAhead {
    /// The message retrieved last.
    last: Option<usize>,
    /// Read ahead and not yet asked for, in message order.
    ready: VecDeque<(usize, Whole)>,
    /// When `ready` was read.
    read_at: Option<Instant>,
    /// The batch being read, and the message it starts at.
    reading: Option<(usize, Batch)>,
    /// Buffers of messages already sent, for the next batch to read into: allocating one per
    /// message on the pool and freeing it on the executor's thread was a tenth of the server's
    /// time in pipelined RETRs. At most [`COUNT`] of them, [`BYTES`] together.
    spare: Vec<Vec<u8>>,
    spare_bytes: usize,
}

impl ReadAhead {
    /// Notes a retrieval of `index` and finds it.
    pub fn retrieving(&mut self, index: usize) -> Found {
        let in_order = self
            .last
            .is_some_and(|last| last.checked_add(1) == Some(index));
        self.last = Some(index);
        if let Some(whole) = self.take(index) {
            return Found::Ready(whole);
        }
        match self.reading.take() {
            Some((from, batch)) if from == index && in_order => Found::Reading(batch),
            // Dropping a batch nobody will ask for cancels it, or lets it finish unseen.
            _ => Found::Missed { in_order },
        }
    }

    /// Message `index` if it was read ahead (and recently); what comes before it is dropped.
    pub fn take(&mut self, index: usize) -> Option<Whole> {
        if self.read_at.is_none_or(|at| at.elapsed() >= KEEP) {
            self.ready.clear();
        }
        while self.ready.front().is_some_and(|(at, _)| *at < index) {
            self.ready.pop_front();
        }
        match self.ready.front() {
            Some((at, _)) if *at == index => self.ready.pop_front().map(|(_, w)| w),
            _ => {
                self.ready.clear();
                None
            }
        }
    }

    /// Keeps what was read ahead.
    pub fn store(&mut self, (read_at, read): ReadBatch) {
        if read.is_empty() {
            return;
        }
        self.ready = read.into();
        self.read_at = Some(read_at);
    }

    /// Where the next batch should start, if one should be read now: the client retrieves in
    /// order (it just took message `index` in order, from memory or not) and nothing is being
    /// read. The batch starts after what is ready (or after `index`): one batch ahead at most, so
    /// a session holds at most two batches ([`BYTES`] each). Starting it at once, not when half
    /// of the ready one is sent, gave 15% more pipelined RETRs.
    pub fn prefetch_from(&self, index: usize, in_order: bool) -> Option<usize> {
        if !in_order || self.reading.is_some() {
            return None;
        }
        let after = self.ready.back().map_or(index, |(at, _)| *at);
        Some(after.saturating_add(1))
    }

    /// Notes the batch now being read from `from` on.
    pub fn reading(&mut self, from: usize, batch: Batch) {
        self.reading = Some((from, batch));
    }

    /// Keeps the buffer of a message that was sent, if there is room and the client is still
    /// retrieving in order (a batch is ready or being read): a session that stopped keeps none.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        let bytes = buf.capacity();
        let active = self.reading.is_some() || !self.ready.is_empty();
        if active && bytes > 0 && self.spare.len() < COUNT && self.spare_bytes + bytes <= BYTES {
            self.spare_bytes += bytes;
            self.spare.push(buf);
        }
    }

    /// The buffers kept, for the batch about to be read.
    pub fn take_spare(&mut self) -> Vec<Vec<u8>> {
        self.spare_bytes = 0;
        std::mem::take(&mut self.spare)
    }
}

#[cfg(test)]
mod tests {
    use super::{BYTES, COUNT, Found, KEEP, ReadAhead, Whole};
    use std::time::Instant;

    fn now() -> Instant {
        Instant::now()
    }

    fn whole(byte: u8) -> Whole {
        Whole {
            data: vec![byte, 0],
            filled: 1,
        }
    }

    fn first_byte(found: Found) -> Option<u8> {
        match found {
            Found::Ready(w) => Some(w.data[0]),
            _ => None,
        }
    }

    #[test]
    fn serves_in_order_and_forgets_on_a_jump() {
        let mut ahead = ReadAhead::default();
        assert!(matches!(
            ahead.retrieving(0),
            Found::Missed { in_order: false }
        ));
        assert!(matches!(
            ahead.retrieving(1),
            Found::Missed { in_order: true }
        ));
        ahead.store((
            now(),
            vec![(2, whole(b'c')), (3, whole(b'd')), (4, whole(b'e'))],
        ));
        assert_eq!(first_byte(ahead.retrieving(2)), Some(b'c'));
        // Skipping one drops it; going back drops everything.
        assert_eq!(first_byte(ahead.retrieving(4)), Some(b'e'));
        ahead.store((now(), vec![(5, whole(b'f'))]));
        assert!(matches!(
            ahead.retrieving(1),
            Found::Missed { in_order: false }
        ));
        assert!(matches!(
            ahead.retrieving(5),
            Found::Missed { in_order: false }
        ));
    }

    #[test]
    fn the_next_batch_is_read_while_one_is_ready_and_only_one_at_a_time() {
        let mut ahead = ReadAhead::default();
        // Out of order: nothing to read ahead.
        assert_eq!(ahead.prefetch_from(7, false), None);
        // A miss in order: read from the next message on.
        assert_eq!(ahead.prefetch_from(1, true), Some(2));
        // A batch ready: the next one starts after its last message.
        ahead.store((now(), (2..2 + COUNT).map(|i| (i, whole(i as u8))).collect()));
        assert_eq!(first_byte(ahead.retrieving(2)), Some(2));
        for i in 3..2 + COUNT / 2 {
            assert_eq!(first_byte(ahead.retrieving(i)), Some(i as u8));
        }
        assert_eq!(
            ahead.prefetch_from(COUNT / 2 + 1, true),
            Some(2 + COUNT),
            "the batch after the ready one"
        );
        // While a batch is being read, no second one.
        ahead.reading(2 + COUNT, blocking::unblock(|| (now(), Vec::new())));
        assert_eq!(ahead.prefetch_from(COUNT / 2 + 1, true), None);
        // The batch is waited for only by the retrieval it starts at, in order.
        for i in 2 + COUNT / 2..2 + COUNT {
            assert!(matches!(ahead.retrieving(i), Found::Ready(_)));
        }
        assert!(matches!(ahead.retrieving(2 + COUNT), Found::Reading(_)));
        ahead.reading(40, blocking::unblock(|| (now(), Vec::new())));
        assert!(matches!(ahead.retrieving(50), Found::Missed { .. }));
        assert!(
            ahead.prefetch_from(51, true).is_some(),
            "the skipped batch was dropped"
        );
    }

    #[test]
    fn a_batch_read_longer_ago_than_keep_is_not_served_however_late_it_was_stored() {
        let mut ahead = ReadAhead::default();
        ahead.retrieving(0);
        let long_ago = now()
            .checked_sub(KEEP * 2)
            .expect("the monotonic clock started more than 2 s ago");
        ahead.store((long_ago, vec![(1, whole(b'b'))]));
        assert!(matches!(
            ahead.retrieving(1),
            Found::Missed { in_order: true }
        ));
    }

    #[test]
    fn buffers_of_sent_messages_are_kept_for_the_next_batch_within_bounds() {
        let mut ahead = ReadAhead::default();
        ahead.recycle(vec![0; 16]);
        assert!(
            ahead.take_spare().is_empty(),
            "not kept: nothing is being read ahead"
        );
        ahead.store((now(), vec![(1, whole(b'b'))]));
        ahead.recycle(Vec::new());
        assert!(
            ahead.take_spare().is_empty(),
            "an empty buffer is not worth keeping"
        );
        for _ in 0..COUNT + 5 {
            ahead.recycle(vec![0; 16]);
        }
        let spare = ahead.take_spare();
        assert_eq!(spare.len(), COUNT, "at most COUNT buffers");
        assert!(ahead.take_spare().is_empty(), "taken once");
        ahead.recycle(vec![0; BYTES - 10]);
        ahead.recycle(vec![0; 20]);
        ahead.recycle(vec![0; 10]);
        let spare = ahead.take_spare();
        assert_eq!(spare.iter().map(Vec::capacity).sum::<usize>(), BYTES);
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
        // A file longer than its recorded length still shows as grown.
        file.rewind().expect("rewind");
        let grown = super::read_whole_into(&mut file, 4, vec![b'x'; 100]).expect("read");
        assert!(grown.is_none());
    }
}
