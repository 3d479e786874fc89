//! RETR/TOP streaming and the commit at QUIT.

use super::{BATCH_FLUSH_AT, Driver, Streamed};
use poppet_proto::{CommitOutcome, Failure};
use poppet_sdk::ErrorCode;

/// Bytes read from a message body at a time.
const BODY_CHUNK: usize = 64 * 1024;

impl Driver<'_> {
    pub(super) async fn transfer(
        &mut self,
        index: usize,
        size: u64,
        top_lines: Option<u64>,
    ) -> std::io::Result<()> {
        let Some(maildrop) = self.maildrop.as_ref() else {
            let r = self
                .session
                .transfer_failed(Failure::Temporary("no maildrop".into()));
            r.encode(&mut self.out);
            return Ok(());
        };
        let started = std::time::Instant::now();
        let opened = maildrop.retrieve(index).await;
        self.shared
            .metrics()
            .plugin_call("retrieve", started.elapsed(), opened.is_err());
        let mut body = match opened {
            Ok(b) => b,
            Err(e) => {
                self.plugin_error("retrieve", &e);
                let failure = if e.code == ErrorCode::NOT_FOUND {
                    Failure::Permanent("message no longer exists".into())
                } else {
                    Failure::Temporary("cannot read message, try again later".into())
                };
                self.session.transfer_failed(failure).encode(&mut self.out);
                return Ok(());
            }
        };
        let mark = self.out.len();
        self.session.transfer_started().encode(&mut self.out);
        let mut encoder = poppet_proto::BodyEncoder::new(top_lines);
        // No larger than the message (plus one octet, so a longer file still shows in one read):
        // clearing a 64 KiB buffer for every 4 KiB message was a third of the instructions of
        // pipelined small RETRs.
        let chunk =
            usize::try_from(size.saturating_add(1)).map_or(BODY_CHUNK, |n| n.min(BODY_CHUNK));
        let read_total = match self
            .stream_body(&mut body, &mut encoder, mark, chunk)
            .await?
        {
            Streamed::Done { read } => read,
            Streamed::TakenBack(e) => {
                log::error!(
                    "session {}: message {} failed while reading: {e}",
                    self.conn.id,
                    index + 1
                );
                let failure = Failure::Temporary("cannot read message, try again later".into());
                self.session.transfer_failed(failure).encode(&mut self.out);
                return Ok(());
            }
            Streamed::Broken(e) => {
                log::error!(
                    "session {}: message {} failed mid-transfer: {e}",
                    self.conn.id,
                    index + 1
                );
                return Err(e);
            }
        };
        if top_lines.is_none() && read_total != size {
            log::warn!(
                "session {}: message {} is {read_total} octets, store said {size}",
                self.conn.id,
                index + 1
            );
        }
        encoder.finish(&mut self.out);
        // Pipelined RETRs of small messages are answered in one write: the serve loop flushes once
        // the engine has no more queued commands, and here only when the buffer is full (one
        // sendto per message was the benchmark's worst gap against Dovecot).
        if self.out.len() >= BATCH_FLUSH_AT {
            self.flush().await?;
        }
        self.session.transfer_completed();
        Ok(())
    }

    pub(super) async fn commit(&mut self, deleted: &[usize]) -> CommitOutcome {
        let Some(mut maildrop) = self.maildrop.take() else {
            return CommitOutcome::Committed { deleted: 0 };
        };
        let started = std::time::Instant::now();
        let committed = maildrop.commit(deleted).await;
        let failed = committed.as_ref().map_or(true, |r| r.failed > 0);
        self.shared
            .metrics()
            .plugin_call("commit", started.elapsed(), failed);
        if committed.as_ref().is_ok_and(|r| r.failed == 0) {
            // Only a complete commit says which messages went; a partial one reports a count.
            let messages = self.session.messages();
            self.deleted_uidls = deleted
                .iter()
                .filter_map(|&i| messages.get(i))
                .map(|m| m.uidl.as_str().to_owned())
                .collect();
        }
        let outcome = match committed {
            Ok(r) if r.failed == 0 => CommitOutcome::Committed {
                deleted: r.deleted as usize,
            },
            Ok(r) => {
                log::error!(
                    "session {}: {} of {} deletions failed",
                    self.conn.id,
                    r.failed,
                    deleted.len()
                );
                CommitOutcome::Partial {
                    failed: r.failed as usize,
                }
            }
            Err(e) => {
                self.plugin_error("commit", &e);
                CommitOutcome::Failed("could not remove deleted messages".into())
            }
        };
        drop(maildrop);
        outcome
    }
}
