//! The mail store: from a user to an open maildrop.
//!
//! Opening takes the POP3 session lock, then the delivery locks, removes what a crashed commit
//! left behind, reads the snapshot and (unless `lock_session`) lets the delivery locks go. All of
//! it is blocking file I/O, so it runs on the `blocking` thread pool.

use crate::commit;
use crate::lock::{DeliveryLocks, SessionLock};
use crate::maildrop::MboxDrop;
use crate::parse::Options;
use crate::settings::Settings;
use crate::snapshot::Snapshot;
use crate::transform::Unquote;
use poppet_sdk::{OpenRequest, PluginError};
use std::future::Future;
use std::sync::Arc;

/// The mbox mail store.
#[derive(Debug, Clone)]
pub struct Mbox {
    settings: Arc<Settings>,
}

impl Mbox {
    /// Creates the store from its RON settings text (see [`crate::RawSettings`]).
    pub fn from_settings(text: &str) -> Result<Mbox, PluginError> {
        Ok(Mbox::new(Settings::parse(text)?))
    }

    /// Creates the store from validated settings.
    pub fn new(settings: Settings) -> Mbox {
        Mbox {
            settings: Arc::new(settings),
        }
    }
}

impl poppet_sdk::MailStore for Mbox {
    type Maildrop = MboxDrop;

    fn open(
        &self,
        request: OpenRequest,
    ) -> impl Future<Output = Result<MboxDrop, PluginError>> + Send {
        let settings = Arc::clone(&self.settings);
        async move { blocking::unblock(move || open_blocking(settings, &request)).await }
    }
}

fn open_blocking(settings: Arc<Settings>, request: &OpenRequest) -> Result<MboxDrop, PluginError> {
    let path = settings.mailbox_path(&request.user, request.mailbox.as_deref())?;
    let session = SessionLock::acquire(&path)?;
    let locks = DeliveryLocks::acquire(
        &path,
        &settings.locks,
        settings.lock_timeout,
        settings.dotlock_stale_after,
    )?;
    commit::remove_leftovers(&path);
    let options = Options {
        unquote: Unquote::from(settings.variant),
        content_length: settings.content_length,
    };
    let snapshot = Snapshot::read(&path, locks.file.as_ref(), options)?;
    log::debug!(
        "mbox {}: {} messages in {} bytes",
        path.display(),
        snapshot.infos.len(),
        snapshot.parsed.len
    );
    let held = if settings.lock_session {
        Some(locks)
    } else {
        drop(locks);
        None
    };
    Ok(MboxDrop::new(path, settings, snapshot, session, held))
}
