//! The state file: when each user may log in next, so that a restart does not reset the delay.
//!
//! One line per user, `<unix milliseconds>\t<user>`, holding the time before which a new login is
//! refused. Storing that instant (rather than the last login) keeps the file small: an entry whose
//! instant has passed says nothing and is dropped at the next write.
//!
//! The file is replaced, never edited in place: the new contents go to `<file>.tmp`, which is
//! fsynced and renamed over the old file, and then the directory is fsynced. A crash at any point
//! leaves either the old or the new file, never a torn one (POSIX `rename` is atomic).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Users and the instant (unix milliseconds) before which each may not log in again.
#[derive(Debug, Default)]
pub struct Table {
    next_allowed: HashMap<String, u64>,
    /// Bumped on every change, so a writer can tell whether its snapshot is the newest.
    generation: u64,
}

/// What [`Table::check_and_record`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Logged in; the next login is allowed from the recorded instant on.
    Allowed,
    /// Too soon: this many milliseconds remain.
    TooSoon(u64),
}

impl Table {
    /// Parses the file's text; lines that cannot be read are skipped and returned as their 1-based
    /// numbers, for a warning.
    pub fn parse(text: &str) -> (Table, Vec<usize>) {
        let mut table = Table::default();
        let mut bad = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            match line
                .split_once('\t')
                .and_then(|(t, u)| Some((t.parse::<u64>().ok()?, u)))
            {
                Some((until, user)) if !user.is_empty() => {
                    table.next_allowed.insert(user.to_owned(), until);
                }
                _ => bad.push(i + 1),
            }
        }
        (table, bad)
    }

    /// The file's text, leaving out entries that have expired by `now`.
    pub fn render(&self, now: u64) -> String {
        let mut entries: Vec<_> = self
            .next_allowed
            .iter()
            .filter(|(_, until)| **until > now)
            .collect();
        entries.sort();
        entries
            .into_iter()
            .map(|(user, until)| format!("{until}\t{user}\n"))
            .collect()
    }

    /// Refuses a login of `user` at `now` that comes before the recorded instant; otherwise records
    /// that the next one must wait `delay_ms`. Check and record happen under one borrow, so two
    /// logins at once cannot both pass.
    pub fn check_and_record(&mut self, user: &str, now: u64, delay_ms: u64) -> Verdict {
        if let Some(&until) = self.next_allowed.get(user) {
            if now < until {
                return Verdict::TooSoon(until - now);
            }
        }
        self.next_allowed
            .insert(user.to_owned(), now.saturating_add(delay_ms));
        self.generation += 1;
        Verdict::Allowed
    }

    /// The change counter.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether `user` can be stored (a tab or line end would break the format).
    pub fn storable(user: &str) -> bool {
        !user.is_empty() && !user.chars().any(char::is_control)
    }
}

/// The file and the newest generation written to it.
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    written: Mutex<u64>,
}

impl StateFile {
    /// The state file at `path` (not read or written yet).
    pub fn new(path: PathBuf) -> StateFile {
        StateFile {
            path,
            written: Mutex::new(0),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the table; a file that does not exist yet is an empty table.
    pub fn load(&self) -> io::Result<Table> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => {
                let (table, bad) = Table::parse(&text);
                for line in bad {
                    log::warn!(
                        "{}:{line}: not `<unix ms>\\t<user>`, ignored",
                        self.path.display()
                    );
                }
                Ok(table)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Table::default()),
            Err(e) => Err(e),
        }
    }

    /// Writes `snapshot()` (generation and text) unless a newer generation has already been
    /// written. Writers are serialised, so the file always ends with the newest snapshot.
    pub fn save(&self, snapshot: impl FnOnce() -> (u64, String)) -> io::Result<()> {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        let (generation, text) = snapshot();
        if generation <= *written {
            return Ok(());
        }
        replace(&self.path, text.as_bytes())?;
        *written = generation;
        Ok(())
    }
}

/// Replaces `path` with `data` crash-safely: temp file, fsync, rename, fsync of the directory.
fn replace(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp)?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_login_within_the_delay_is_too_soon() {
        let mut t = Table::default();
        assert_eq!(t.check_and_record("ann", 1_000, 2_000), Verdict::Allowed);
        assert_eq!(
            t.check_and_record("ann", 2_500, 2_000),
            Verdict::TooSoon(500)
        );
        assert_eq!(t.check_and_record("bob", 2_500, 2_000), Verdict::Allowed);
        assert_eq!(t.check_and_record("ann", 3_000, 2_000), Verdict::Allowed);
        assert_eq!(t.generation(), 3);
    }

    #[test]
    fn render_drops_expired_entries_and_parse_reads_it_back() {
        let mut t = Table::default();
        t.check_and_record("old", 0, 10);
        t.check_and_record("new user", 0, 5_000);
        let text = t.render(100);
        assert_eq!(text, "5000\tnew user\n");
        let (back, bad) = Table::parse(&format!("{text}junk\n\n7\t\n"));
        assert_eq!(bad, [2, 4]);
        assert_eq!(back.next_allowed.get("new user"), Some(&5_000));
    }

    #[test]
    fn save_replaces_the_file_and_skips_stale_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(dir.path().join("state"));
        assert!(file.load().unwrap().next_allowed.is_empty());
        file.save(|| (2, "9\tann\n".into())).unwrap();
        file.save(|| (1, "stale".into())).unwrap();
        assert_eq!(std::fs::read_to_string(file.path()).unwrap(), "9\tann\n");
        assert!(!dir.path().join("state.tmp").exists());
    }

    #[test]
    fn control_characters_are_not_storable() {
        assert!(Table::storable("ann@example.org"));
        assert!(!Table::storable("a\tb"));
        assert!(!Table::storable(""));
    }
}
