//! The file watcher: reloads the table when an event in the file's directory touches the file.
//!
//! The watcher runs its own thread (inotify on Linux); the reload happens on that thread, so the
//! async executor never waits for it. Dropping the [`Watcher`] stops the thread; the backend owns
//! it, so a backend replaced by a config reload stops watching.

use crate::source::Source;
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

/// A running watch; dropping it stops the watch.
#[derive(Debug)]
pub struct Watcher {
    _inner: RecommendedWatcher,
}

impl Watcher {
    /// Starts watching `source`'s file. An error (say, the inotify instance limit is reached) is
    /// returned for the caller to log: the stat check during logins still notices changes.
    pub fn start(source: Arc<Source>) -> notify::Result<Watcher> {
        let path = source.path().to_owned();
        let name: Option<OsString> = path.file_name().map(ToOwned::to_owned);
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => Path::new(".").to_owned(),
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
                Ok(event) if touches(&event, name.as_deref()) => source.reload_if_changed(),
                Ok(_) => {}
                Err(err) => log::warn!(
                    "passwd-file {}: watcher error (logins still check the file): {err}",
                    source.path().display()
                ),
            })?;
        // Not recursive: only entries of this directory matter, and a recursive watch of, say,
        // /etc would spend thousands of inotify watches.
        watcher.watch(&dir, RecursiveMode::NonRecursive)?;
        Ok(Watcher { _inner: watcher })
    }
}

/// Whether `event` may have changed the file called `name` in the watched directory.
fn touches(event: &notify::Event, name: Option<&std::ffi::OsStr>) -> bool {
    let relevant = match event.kind {
        // Reads (our own included) change nothing; the end of a write does.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    // The watch is on one directory, not recursive, so the file name alone identifies the file.
    // An event without paths (a rescan after lost events) may concern anything.
    relevant && (event.paths.is_empty() || event.paths.iter().any(|p| p.file_name() == name))
}
