//! The TRANSACTION state: STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL.
//!
//! RFC 1939 §5: "Once the client has successfully identified itself to the POP3 server
//! and the POP3 server has locked and opened the appropriate maildrop, the POP3 session
//! is now in the TRANSACTION state." On deleted messages, RFC 1939 §5 says under STAT
//! "Note that messages marked as deleted are not counted in either total", under LIST
//! (and UIDL, §7) "Note that messages marked as deleted are not listed", and under DELE
//! "Any future reference to the message-number associated with the message in a POP3
//! command generates an error". RSET: "If any messages have been marked as deleted by
//! the POP3 server, they are unmarked."
//!
//! The maildrop is a read-only snapshot taken at login plus one deleted flag per
//! message; nothing changes on disk until UPDATE.

use crate::command::Command;
use crate::error::ProtoError;
use crate::event::{Event, Failure, MessageMeta};
use crate::response::Response;
use crate::session::{Pending, Phase, Session};
use crate::state::State;
use crate::text::Text;

/// The snapshot taken at login and the messages marked as deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Maildrop {
    messages: Vec<MessageMeta>,
    deleted: Vec<bool>,
}

impl Maildrop {
    pub(crate) fn new(messages: Vec<MessageMeta>) -> Self {
        let deleted = vec![false; messages.len()];
        Self { messages, deleted }
    }

    pub(crate) fn messages(&self) -> &[MessageMeta] {
        &self.messages
    }

    pub(crate) fn is_deleted(&self, index: usize) -> bool {
        self.deleted.get(index).copied().unwrap_or(false)
    }

    /// Count and total size of the messages not marked as deleted.
    pub(crate) fn totals(&self) -> (usize, u64) {
        self.live().fold((0, 0), |(count, octets), (_, meta)| {
            (count + 1, octets.saturating_add(meta.size))
        })
    }

    /// 0-based indices of the messages marked as deleted, ascending.
    pub(crate) fn deleted_indices(&self) -> Vec<usize> {
        (0..self.messages.len())
            .filter(|&index| self.deleted[index])
            .collect()
    }

    /// Undeleted messages with their 1-based numbers.
    fn live(&self) -> impl Iterator<Item = (usize, &MessageMeta)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(index, _)| !self.deleted[*index])
            .map(|(index, meta)| (index + 1, meta))
    }

    /// Resolves a 1-based message number to an index of an undeleted message.
    fn lookup(&self, msg: u64) -> Result<(usize, &MessageMeta), ProtoError> {
        let index = usize::try_from(msg).ok().and_then(|n| n.checked_sub(1));
        let Some((index, meta)) = index.and_then(|i| self.messages.get(i).map(|meta| (i, meta)))
        else {
            return Err(ProtoError::NoSuchMessage);
        };
        if self.deleted[index] {
            return Err(ProtoError::AlreadyDeleted(msg));
        }
        Ok((index, meta))
    }

    fn command(&mut self, command: Command) -> Result<Response, ProtoError> {
        let response = match command {
            Command::Stat => {
                let (count, octets) = self.totals();
                Response::ok(format!("{count} {octets}"))
            }
            Command::List(None) => {
                let (count, octets) = self.totals();
                let lines = self.live().map(|(n, meta)| Pair(n, meta.size));
                Response::ok_text(
                    Text::new("list-summary")
                        .arg("count", count)
                        .arg("octets", octets),
                )
                .with_lines(lines)
            }
            Command::List(Some(msg)) => {
                let (_, meta) = self.lookup(msg)?;
                Response::ok(format!("{msg} {}", meta.size))
            }
            Command::Uidl(None) => {
                let lines = self.live().map(|(n, meta)| Pair(n, &meta.uidl));
                Response::ok_text(Text::new("uidl-listing")).with_lines(lines)
            }
            Command::Uidl(Some(msg)) => {
                let (_, meta) = self.lookup(msg)?;
                Response::ok(format!("{msg} {}", meta.uidl))
            }
            Command::Dele(msg) => {
                let (index, _) = self.lookup(msg)?;
                self.deleted[index] = true;
                Response::ok_text(Text::new("message-deleted").arg("msg", msg))
            }
            Command::Rset => {
                self.deleted.fill(false);
                let (count, octets) = self.totals();
                Response::ok_text(
                    Text::new("maildrop-reset")
                        .arg("count", count)
                        .arg("octets", octets),
                )
            }
            Command::Noop => Response::ok(""),
            _ => {
                return Err(ProtoError::WrongState {
                    verb: "this command".into(),
                    state: State::Transaction,
                });
            }
        };
        Ok(response)
    }
}

impl Session {
    /// The TRANSACTION commands.
    pub(crate) fn transaction(&mut self, command: Command) -> Result<Event, ProtoError> {
        let Phase::Transaction(account) = &mut self.phase else {
            return Err(ProtoError::WrongState {
                verb: "this command".into(),
                state: self.state(),
            });
        };
        let (msg, top_lines) = match command {
            Command::Retr(msg) => (msg, None),
            Command::Top { msg, lines } => (msg, Some(lines)),
            command => {
                let is_dele = matches!(command, Command::Dele(_));
                let response = account.maildrop.command(command)?;
                if is_dele {
                    self.stats.dele += 1;
                }
                return Ok(Event::Reply(response));
            }
        };
        let (index, meta) = account.maildrop.lookup(msg)?;
        let size = meta.size;
        self.pending = Some(Pending::Transfer {
            top: top_lines.is_some(),
            size,
        });
        Ok(Event::TransferRequested {
            index,
            size,
            top_lines,
        })
    }

    /// Answers [`Event::TransferRequested`] once the body is open: the first line to
    /// write (`+OK <size> octets` for RETR, `+OK` for TOP). Then stream the body through
    /// a [`crate::BodyEncoder`] and call [`Session::transfer_completed`].
    pub fn transfer_started(&mut self) -> Response {
        let response = match self.pending {
            Some(Pending::Transfer { top: false, size }) => {
                Response::ok_text(Text::new("message-octets").arg("octets", size))
            }
            Some(Pending::Transfer { top: true, .. }) => Response::ok(""),
            _ => ProtoError::NothingPending.to_response(),
        };
        self.localize(response)
    }

    /// Answers [`Event::TransferRequested`] when the body could not be opened: the
    /// `-ERR` line to write. The session goes on with the next command.
    pub fn transfer_failed(&mut self, failure: Failure) -> Response {
        if !matches!(self.pending, Some(Pending::Transfer { .. })) {
            return ProtoError::NothingPending.to_response();
        }
        self.pending = None;
        self.touch_on_next = true;
        let response = match failure {
            Failure::Temporary(text) => ProtoError::Temporary(text).to_response(),
            Failure::Permanent(text) => ProtoError::Permanent(text).to_response(),
        };
        self.localize(response)
    }

    /// The body (and its terminating `.` line) has been written. Ignored if no
    /// transfer is pending.
    pub fn transfer_completed(&mut self) {
        let Some(Pending::Transfer { top, size }) = self.pending else {
            return;
        };
        self.pending = None;
        self.touch_on_next = true;
        if top {
            self.stats.top += 1;
        } else {
            self.stats.retr += 1;
            self.stats.retr_octets = self.stats.retr_octets.saturating_add(size);
        }
    }
}

/// A listing line, `<message number> <value>`, written without a `String` of its own.
struct Pair<A, B>(A, B);

impl<A: std::fmt::Display, B: std::fmt::Display> std::fmt::Display for Pair<A, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.0, self.1)
    }
}
