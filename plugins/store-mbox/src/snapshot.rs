//! The snapshot a session works on, and the UIDLs of its messages.
//!
//! UIDL (RFC 1939 §7: "unique-id ... a string of characters ... in the range 0x21 to 0x7E", at
//! most 70, and it "persists across sessions"): an mbox has no per-message name, so
//! - a valid `X-UIDL` header (written by earlier POP3 servers such as qpopper) is used as it is,
//!   unless an earlier message in the file already has it;
//! - otherwise it is the SHA-256 of the message's From_ line and content as sent, without the
//!   headers mail readers rewrite (`Status:` and friends), in 32 hex digits. Deleting other
//!   messages or converting the file's line ends does not change it.
//! - Identical messages (same From_ line to the second and same content) get `-2`, `-3`, ... after
//!   the digest, in file order. If the first of them is deleted, the second takes its UIDL: a
//!   client that thinks it has that message has an identical copy of it.

use crate::parse::{self, Message, Options, Parsed};
use poppet_sdk::{MessageInfo, PluginError};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Digest characters used in a UIDL: 16 bytes, 128 bits, ample for one mailbox.
const DIGEST_BYTES: usize = 16;

/// The messages of one session.
#[derive(Debug)]
pub struct Snapshot {
    /// Device and inode of the mbox when read; `None` when it did not exist.
    pub id: Option<(u64, u64)>,
    /// What was read.
    pub parsed: Parsed,
    /// What the core sees, index for index with `parsed.messages`.
    pub infos: Vec<MessageInfo>,
}

impl Snapshot {
    /// Reads the snapshot from `file` (the locked mbox), or an empty one when there is none.
    pub fn read(
        mbox: &Path,
        file: Option<&File>,
        options: Options,
    ) -> Result<Snapshot, PluginError> {
        let Some(file) = file else {
            return Ok(Snapshot::empty());
        };
        let fail = |e: &std::io::Error| PluginError::io(format!("reading {}", mbox.display()), e);
        let meta = file.metadata().map_err(|e| fail(&e))?;
        let parsed = parse::parse(file, meta.len(), options).map_err(|e| fail(&e))?;
        let uidls = assign_uidls(&parsed.messages);
        let infos = parsed
            .messages
            .iter()
            .zip(uidls)
            .map(|(m, uidl)| MessageInfo { size: m.size, uidl })
            .collect();
        Ok(Snapshot {
            id: Some((meta.dev(), meta.ino())),
            parsed,
            infos,
        })
    }

    fn empty() -> Snapshot {
        Snapshot {
            id: None,
            parsed: Parsed {
                messages: Vec::new(),
                len: 0,
                hash: [0; 32],
            },
            infos: Vec::new(),
        }
    }
}

/// Whether `value` can be sent as a UIDL.
pub fn valid_uidl(value: &str) -> bool {
    (1..=70).contains(&value.len()) && value.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// The UIDLs of `messages`, in order (see the module docs).
pub fn assign_uidls(messages: &[Message]) -> Vec<String> {
    let mut used = HashSet::new();
    let mut taken: Vec<Option<String>> = messages
        .iter()
        .map(|m| {
            let x = m.x_uidl.as_deref().filter(|v| valid_uidl(v))?;
            used.insert(x.to_owned()).then(|| x.to_owned())
        })
        .collect();
    let mut seen: HashMap<[u8; 32], u32> = HashMap::new();
    for (m, slot) in messages.iter().zip(taken.iter_mut()) {
        if slot.is_some() {
            continue;
        }
        let hex: String = m.digest[..DIGEST_BYTES]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let count = seen.entry(m.digest).or_insert(0);
        loop {
            *count += 1;
            let uidl = if *count == 1 {
                hex.clone()
            } else {
                format!("{hex}-{count}")
            };
            if used.insert(uidl.clone()) {
                *slot = Some(uidl);
                break;
            }
        }
    }
    taken.into_iter().map(Option::unwrap_or_default).collect()
}
