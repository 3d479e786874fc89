//! File identity and renames that never replace anything.
//!
//! `rename(2)` silently replaces an existing target, and in a maildir the target of a rename can
//! be another message: two files may share a unique part (the spec forbids it, copies and buggy
//! deliverers make it happen), so `x:2,` flagged seen becomes `x:2,S`, which may already be a
//! different message. Everything here moves files with `link(2)` then `unlink(2)`, as the maildir
//! spec itself recommends for delivery: `link` fails with `EEXIST` instead of replacing.
//!
//! A file is recognised by its device and inode number rather than its name, since other maildir
//! readers rename files (flag changes) while a session is open, but never change their inode. The
//! inode alone is not enough: a freed inode number is reused at once by the next file created
//! (ext4 and tmpfs do it), so a message deleted and replaced by another would look the same. Its
//! length and mtime tell them apart, and a rename changes neither.

use std::fs::{self, File};
use std::io::{self, ErrorKind};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Device, inode number, length and mtime: which file, in which version, whatever it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub len: u64,
    /// `st_mtime`, seconds and nanoseconds.
    pub mtime: (i64, i64),
}

impl FileId {
    /// The identity in `meta`.
    pub fn of(meta: &fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        }
    }

    /// The identity of the file at `path` (following symbolic links, as opening it does).
    pub fn at(path: &Path) -> io::Result<FileId> {
        fs::metadata(path).map(|m| FileId::of(&m))
    }

    /// The identity of an open file.
    pub fn of_file(file: &File) -> io::Result<FileId> {
        file.metadata().map(|m| FileId::of(&m))
    }
}

/// Renames `from` to `to` without ever replacing an existing `to` (then it fails with
/// [`ErrorKind::AlreadyExists`] and changes nothing).
///
/// With `expect`, only the file with that identity is moved: a `from` that is now another file
/// fails with [`ErrorKind::NotFound`], and a swap between our checks is undone.
pub fn rename_no_replace(from: &Path, to: &Path, expect: Option<FileId>) -> io::Result<()> {
    let is_expected = |path: &Path| match expect {
        Some(id) => FileId::at(path).is_ok_and(|found| found == id),
        None => true,
    };
    if !is_expected(from) {
        return Err(changed(from));
    }
    match fs::hard_link(from, to) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), ErrorKind::AlreadyExists | ErrorKind::NotFound) => {
            return Err(e);
        }
        // No hard links on this filesystem (vfat, some FUSE mounts): EPERM, ENOTSUP, ...
        Err(_) => return rename_if_absent(from, to),
    }
    if !is_expected(to) {
        // `from` was swapped between our check and the link: `to` is a name we just gave to some
        // other file, which still has its own name, so taking ours back loses nothing.
        let _ = fs::remove_file(to);
        return Err(changed(from));
    }
    if !is_expected(from) {
        // Our file was renamed away after the link and something else now has its old name:
        // leave that alone and take back our extra name, so our file keeps exactly one.
        let _ = fs::remove_file(to);
        return Err(changed(from));
    }
    fs::remove_file(from)
}

/// The fallback without hard links: a rename after checking that `to` does not exist. The
/// check and the rename are two steps, so a `to` created in between would still be replaced;
/// without `renameat2(RENAME_NOREPLACE)` (not in `std`) this is the narrowest we can make it.
pub fn rename_if_absent(from: &Path, to: &Path) -> io::Result<()> {
    match fs::symlink_metadata(to) {
        Ok(_) => Err(io::Error::new(
            ErrorKind::AlreadyExists,
            format!("{} exists", to.display()),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => fs::rename(from, to),
        Err(e) => Err(e),
    }
}

fn changed(path: &Path) -> io::Error {
    io::Error::new(
        ErrorKind::NotFound,
        format!("{} is no longer the file we meant", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f1_rename_no_replace_never_replaces_the_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("x:2,"), dir.path().join("x:2,S"));
        fs::write(&a, b"A").expect("write");
        fs::write(&b, b"B").expect("write");
        let err = rename_no_replace(&a, &b, None).expect_err("target exists");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        let err = rename_if_absent(&a, &b).expect_err("target exists");
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&a).expect("a"), b"A");
        assert_eq!(fs::read(&b).expect("b"), b"B");
    }

    #[test]
    fn f1_rename_no_replace_moves_only_the_expected_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        fs::write(&a, b"A").expect("write");
        fs::write(&b, b"B").expect("write");
        let id_b = FileId::at(&b).expect("id");
        let err = rename_no_replace(&a, &c, Some(id_b)).expect_err("not b");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!c.exists());
        let id_a = FileId::at(&a).expect("id");
        rename_no_replace(&a, &c, Some(id_a)).expect("move");
        assert!(!a.exists());
        assert_eq!(FileId::at(&c).expect("id"), id_a);
        rename_if_absent(&c, &a).expect("move back");
        assert_eq!(fs::read(&a).expect("a"), b"A");
    }
}
