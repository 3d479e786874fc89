//! Maildir++ quota: the `maildirsize` file that Courier's `deliverquota` and `maildrop`, Dovecot's
//! quota plugin and other delivery agents keep at the top of a maildir (Courier's
//! `maildirquota(7)`). Its first line is the quota; every line after it is a change, "bytes
//! messages", and the usage is their sum. A program that removes messages must append their
//! removal: otherwise the delivery agent goes on counting them and refuses new mail as over quota
//! (a bounce) until it next counts the maildir itself, which Courier's does only once the file is
//! 15 minutes old.
//!
//! A maildir without the file has no quota, and none is made here.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::Path;

/// The quota file's name, in the maildir's top directory.
pub const FILE: &str = "maildirsize";

/// Appends the removal of `count` messages of `bytes` in all to `dir`'s `maildirsize`, if it has
/// one. Best effort: the messages are gone either way, and a quota file that cannot be written is
/// the delivery agent's to recount; logged.
pub fn record_removal(dir: &Path, bytes: u64, count: u64) {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt;
    if count == 0 {
        return;
    }
    let path = dir.join(FILE);
    let line = format!("-{bytes} -{count}\n");
    // Not through a symbolic link and without blocking on a fifo, whatever is there; never created.
    // One write(2) on an O_APPEND descriptor, as the format asks: lines of writers appending at the
    // same time never mix.
    let appended = OpenOptions::new()
        .append(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(&path)
        .and_then(|mut file| match file.write(line.as_bytes())? {
            n if n == line.len() => Ok(()),
            n => Err(std::io::Error::other(format!(
                "written short ({n} of {} octets)",
                line.len()
            ))),
        });
    match appended {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => log::warn!(
            "{}: cannot record the removal of {count} messages: {e}",
            path.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_is_appended_as_one_line_and_no_file_is_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        record_removal(dir.path(), 100, 2);
        assert!(!dir.path().join(FILE).exists());
        std::fs::write(dir.path().join(FILE), "1000S,10C\n 300 3\n").expect("write");
        record_removal(dir.path(), 0, 0);
        record_removal(dir.path(), 100, 2);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).expect("read"),
            "1000S,10C\n 300 3\n-100 -2\n"
        );
    }

    #[test]
    fn a_symbolic_link_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "x\n").expect("write");
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(FILE)).expect("symlink");
        record_removal(dir.path(), 100, 2);
        assert_eq!(std::fs::read_to_string(&elsewhere).expect("read"), "x\n");
    }
}
