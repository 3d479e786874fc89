//! QUIT, and the UPDATE state it leads to from TRANSACTION.
//!
//! RFC 1939 §6: "When the client issues the QUIT command from the TRANSACTION state,
//! the POP3 session enters the UPDATE state." RFC 1939 §6 (QUIT in UPDATE): "The POP3 server removes all messages
//! marked as deleted from the maildrop and replies as to the status of this operation.
//! If there is an error, such as a resource shortage, encountered while removing
//! messages, the maildrop may result in having some or none of the messages marked as
//! deleted be removed." Its responses: "+OK" or "-ERR some deleted messages not removed".
//! QUIT in AUTHORIZATION (RFC 1939 §4) just says goodbye and closes: nothing was opened,
//! so nothing is committed.
//!
//! Deletions happen only here (DESIGN.md): a timeout or a dropped connection never
//! reaches UPDATE.

use crate::error::ProtoError;
use crate::event::{CloseReason, CommitOutcome, Event};
use crate::response::Response;
use crate::session::{Pending, Phase, Session};
use crate::text::Text;

impl Session {
    /// QUIT in AUTHORIZATION (reply, close) or TRANSACTION (enter UPDATE, commit).
    pub(crate) fn quit(&mut self) -> Event {
        match std::mem::replace(&mut self.phase, Phase::Closed(None)) {
            Phase::Transaction(account) => {
                let deleted = account.maildrop.deleted_indices();
                self.phase = Phase::Update(account);
                self.pending = Some(Pending::Commit);
                Event::CommitRequested { deleted }
            }
            phase => {
                self.phase = phase;
                let close = self.close(CloseReason::Quit, None);
                self.queued.push_back(close);
                Event::Reply(Response::ok_text(Text::new("signing-off")))
            }
        }
    }

    /// Answers [`Event::CommitRequested`]. The next [`Session::next`] calls hand out
    /// the QUIT reply and then [`Event::Close`] with [`CloseReason::Quit`]. Ignored if no
    /// commit is pending.
    pub fn commit_completed(&mut self, outcome: CommitOutcome) {
        if self.pending != Some(Pending::Commit) {
            return;
        }
        self.touch_on_next = true;
        let reply = match outcome {
            CommitOutcome::Committed { deleted } => {
                self.stats.deleted += deleted as u64;
                Response::ok_text(Text::new("signing-off-deleted").arg("deleted", deleted))
            }
            CommitOutcome::Partial { failed } => ProtoError::CommitPartial { failed }.to_response(),
            CommitOutcome::Failed(text) => ProtoError::CommitFailed(text).to_response(),
        };
        self.queued.push_back(Event::Reply(reply));
        let close = self.close(CloseReason::Quit, None);
        self.queued.push_back(close);
    }
}
