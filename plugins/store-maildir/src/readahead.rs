//! Reading small messages ahead of a client that retrieves them in order.
//!
//! File operations run on the `blocking` thread pool so a slow disk never stalls the host's
//! executor, but every trip there and back costs futex wake-ups and context switches on both
//! sides. For pipelined RETRs of small messages (RFC 2449 PIPELINING: a client "may elect to
//! transmit a group of commands in batches") those handoffs were most of the server's time, one
//! per message. So once a client retrieves message `n + 1` right after message `n`, the retrieval
//! job also reads the next few small messages, and their RETRs are answered from memory.
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
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::path::Path;
use std::time::{Duration, Instant};

/// Octets read ahead at most per session: as much as one body buffer, so a session's memory stays
/// bounded by the same figure whatever it retrieves.
pub const BYTES: usize = CHUNK;
/// Messages read ahead at most in one batch.
pub const COUNT: usize = 32;
/// How long a message read ahead is served from memory. A pipelining client asks for it within
/// milliseconds; a client that waits longer gets it read again.
pub const KEEP: Duration = Duration::from_secs(1);

/// A small message read whole: `data[..filled]` is the file.
#[derive(Debug)]
pub struct Whole {
    /// The bytes read, with room for one more (a file that grew shows as `filled > len`).
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
    let Ok(len) = usize::try_from(len) else {
        return Ok(None);
    };
    let mut data = vec![0u8; len + 1];
    let mut filled = 0;
    while filled < data.len() {
        match file.read(&mut data[filled..]) {
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

/// Reads the messages after `index` ahead, as many as the bounds allow, stopping at the first one
/// that is large or not simply where the snapshot saw it.
pub fn read_after(cur: &Path, entries: &[Entry], index: usize) -> Vec<(usize, Whole)> {
    let mut budget = BYTES;
    let mut read = Vec::new();
    for (at, entry) in entries.iter().enumerate().skip(index + 1).take(COUNT) {
        let Ok(len) = usize::try_from(entry.id.len) else {
            break;
        };
        if len >= budget {
            break;
        }
        let Ok(mut file) = File::open(cur.join(&entry.name)) else {
            break;
        };
        if !FileId::of_file(&file).is_ok_and(|id| id == entry.id) {
            break;
        }
        match read_whole(&mut file, entry.id.len) {
            Ok(Some(whole)) => {
                budget -= whole.data.len();
                read.push((at, whole));
            }
            _ => break,
        }
    }
    read
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
}

impl ReadAhead {
    /// Notes a retrieval of `index`. Returns the message if it was read ahead (and recently), and
    /// whether the client is retrieving in order (so the retrieval job should read ahead).
    pub fn retrieving(&mut self, index: usize) -> (Option<Whole>, bool) {
        let in_order = self
            .last
            .is_some_and(|last| last.checked_add(1) == Some(index));
        self.last = Some(index);
        if self.read_at.is_none_or(|at| at.elapsed() >= KEEP) {
            self.ready.clear();
        }
        while self.ready.front().is_some_and(|(at, _)| *at < index) {
            self.ready.pop_front();
        }
        match self.ready.front() {
            Some((at, _)) if *at == index => (self.ready.pop_front().map(|(_, w)| w), in_order),
            _ => {
                self.ready.clear();
                (None, in_order)
            }
        }
    }

    /// Keeps what a retrieval job read ahead.
    pub fn store(&mut self, read: Vec<(usize, Whole)>) {
        if read.is_empty() {
            return;
        }
        self.ready = read.into();
        self.read_at = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::{ReadAhead, Whole};

    fn whole(byte: u8) -> Whole {
        Whole {
            data: vec![byte, 0],
            filled: 1,
        }
    }

    #[test]
    fn serves_in_order_and_forgets_on_a_jump() {
        let mut ahead = ReadAhead::default();
        assert!(matches!(ahead.retrieving(0), (None, false)));
        assert!(matches!(ahead.retrieving(1), (None, true)));
        ahead.store(vec![(2, whole(b'c')), (3, whole(b'd')), (4, whole(b'e'))]);
        let (hit, in_order) = ahead.retrieving(2);
        assert_eq!(hit.map(|w| w.data[0]), Some(b'c'));
        assert!(in_order);
        // Skipping one drops it; going back drops everything.
        let (hit, in_order) = ahead.retrieving(4);
        assert_eq!(hit.map(|w| w.data[0]), Some(b'e'));
        assert!(!in_order);
        ahead.store(vec![(5, whole(b'f'))]);
        assert!(matches!(ahead.retrieving(1), (None, false)));
        assert!(matches!(ahead.retrieving(5), (None, false)));
    }
}
