//! An open maildrop: the snapshot, body streams read by offset, and the commit.
//!
//! Between the snapshot and the commit the session holds only its POP3 session lock, so MDAs
//! append freely; they only ever add after the snapshot's end, so the snapshot's offsets stay
//! valid. A retrieval checks that the path still names the same file, at least as long as it was.
//! With `lock_session` the delivery locks stay held from open to commit (and the dotlock is kept
//! fresh by a small thread), as tpop3d does.

use crate::body::MessageReader;
use crate::commit;
use crate::lock::{DeliveryLocks, SessionLock, Toucher};
use crate::parse::CHUNK;
use crate::settings::Settings;
use crate::snapshot::Snapshot;
use crate::transform::Unquote;
use blocking::Unblock;
use poppet_sdk::{CommitReport, ErrorCode, MessageInfo, PluginError};
use std::fs::File;
use std::future::Future;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::Duration;

/// The body stream of one message; file reads run on the `blocking` thread pool.
pub type Body = Unblock<MessageReader>;

/// An open, locked snapshot of one mbox.
#[derive(Debug)]
pub struct MboxDrop {
    path: PathBuf,
    settings: Arc<Settings>,
    snapshot: Arc<Snapshot>,
    /// Released at commit or drop.
    session: Option<SessionLock>,
    /// Held for the whole session with `lock_session`.
    held: Option<DeliveryLocks>,
    /// Stops the dotlock refresher when dropped.
    _refresher: Option<Sender<()>>,
}

impl MboxDrop {
    pub(crate) fn new(
        path: PathBuf,
        settings: Arc<Settings>,
        snapshot: Snapshot,
        session: SessionLock,
        held: Option<DeliveryLocks>,
    ) -> MboxDrop {
        let toucher = held
            .as_ref()
            .and_then(|h| h.dotlock.as_ref())
            .map(|d| d.toucher());
        let refresher = toucher.map(|t| refresh(t, settings.dotlock_stale_after));
        MboxDrop {
            path,
            settings,
            snapshot: Arc::new(snapshot),
            session: Some(session),
            held,
            _refresher: refresher,
        }
    }

    /// The mbox's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Touches a dotlock held for a whole session every third of the stale bound (at most every
/// 30 s, inside Dovecot's 2-minute change timeout) until the returned sender is dropped.
fn refresh(toucher: Toucher, stale_after: Duration) -> Sender<()> {
    let period = (stale_after / 3).min(Duration::from_secs(30));
    let (stop, stopped) = mpsc::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("poppet-mbox-dotlock".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                toucher.touch();
            }
        });
    if let Err(e) = spawned {
        log::warn!("mbox: cannot start the dotlock refresher: {e}");
    }
    stop
}

impl poppet_sdk::Maildrop for MboxDrop {
    type Body = Body;

    fn messages(&self) -> &[MessageInfo] {
        &self.snapshot.infos
    }

    fn retrieve(&self, index: usize) -> impl Future<Output = Result<Body, PluginError>> + Send {
        let path = self.path.clone();
        let snapshot = Arc::clone(&self.snapshot);
        let unquote = Unquote::from(self.settings.variant);
        async move {
            blocking::unblock(move || {
                let (Some(message), Some(info)) = (
                    snapshot.parsed.messages.get(index),
                    snapshot.infos.get(index),
                ) else {
                    return Err(PluginError::new(
                        ErrorCode::NOT_FOUND,
                        format!("no message {}", index.saturating_add(1)),
                    ));
                };
                let fail =
                    |e: &std::io::Error| PluginError::io(format!("reading {}", path.display()), e);
                let mut file = File::open(&path).map_err(|e| fail(&e))?;
                let meta = file.metadata().map_err(|e| fail(&e))?;
                if snapshot.id != Some((meta.dev(), meta.ino())) || meta.len() < snapshot.parsed.len
                {
                    return Err(PluginError::temporary(format!(
                        "{} was rewritten by another program during the session",
                        path.display()
                    )));
                }
                file.seek(SeekFrom::Start(message.content_start))
                    .map_err(|e| fail(&e))?;
                let len = message.content_end - message.content_start;
                let reader = MessageReader::new(file, len, unquote, info.size);
                Ok(Unblock::with_capacity(CHUNK, reader))
            })
            .await
        }
    }

    fn commit(
        &mut self,
        deleted: Vec<usize>,
    ) -> impl Future<Output = Result<CommitReport, PluginError>> + Send {
        let path = self.path.clone();
        let settings = Arc::clone(&self.settings);
        let snapshot = Arc::clone(&self.snapshot);
        let held = self.held.take();
        let session = self.session.take();
        async move {
            blocking::unblock(move || {
                if session.is_none() {
                    return Err(PluginError::new(
                        ErrorCode::OTHER,
                        "commit without the session lock (committed twice?); nothing was changed",
                    ));
                }
                let locks = match held {
                    Some(locks) => locks,
                    None if deleted.is_empty() => return Ok(CommitReport::default()),
                    None => DeliveryLocks::acquire(
                        &path,
                        &settings.locks,
                        settings.lock_timeout,
                        settings.dotlock_stale_after,
                    )?,
                };
                let report = commit::commit(&path, &snapshot, &deleted, &locks);
                // The delivery locks go first, then the session lock, so the next session sees
                // every change.
                drop(locks);
                drop(session);
                report
            })
            .await
        }
    }
}
