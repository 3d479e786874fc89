//! Mail delivery agents for the tests that deliver while sessions run: an mbox writer that locks
//! exactly as Debian's MDAs do, a maildir writer that delivers through `tmp/` as qmail's
//! maildir(5) says, and the numbered test messages both write.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Appends each file named on the command line to the mbox, locking as Debian's MDAs do (dotlock
/// `file.lock` created with `O_EXCL`, then a whole-file `fcntl` lock with `F_SETLKW`, the order of
/// Postfix local, procmail and Dovecot's LDA).
const MBOX_WRITER: &str = r#"
import fcntl, os, sys, time
mbox = sys.argv[1]
lock = mbox + ".lock"
for path in sys.argv[2:]:
    data = open(path, "rb").read()
    while True:
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"%d\n" % os.getpid())
            os.close(fd)
            break
        except FileExistsError:
            time.sleep(0.002)
    f = os.open(mbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    fcntl.lockf(f, fcntl.LOCK_EX)
    os.write(f, data)
    os.fsync(f)
    fcntl.lockf(f, fcntl.LOCK_UN)
    os.close(f)
    os.unlink(lock)
    # Paced like a trickle of incoming mail, so deliveries fall inside many sessions.
    time.sleep(float(os.environ.get("PACE", "0")))
"#;

/// Reads the whole mbox under a shared `fcntl` lock, which waits for the writer above to finish
/// an append (it holds an exclusive one while it writes), so a test never reads half a delivery.
pub fn mbox_read_locked(mbox: &Path) -> Vec<u8> {
    let script = "import fcntl, sys\n\
                  f = open(sys.argv[1], 'rb')\n\
                  fcntl.lockf(f, fcntl.LOCK_SH)\n\
                  sys.stdout.buffer.write(f.read())\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(mbox)
        .output()
        .expect("python3 reads the mbox under its lock");
    assert!(out.status.success(), "reading {}", mbox.display());
    out.stdout
}

/// Starts the mbox writer (python3) appending `files` (mbox entries, `From_` line included) to
/// `mbox`, pausing `pace` seconds between deliveries.
pub fn mbox_writer(mbox: &Path, files: &[PathBuf], pace: &str) -> Child {
    Command::new("python3")
        .env("PACE", pace)
        .args(["-c", MBOX_WRITER])
        .arg(mbox)
        .args(files)
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 runs the MDA-like writer")
}

/// Writes [`load_message`] `ids` into `spool` as mbox entries (`From_` line included), one file
/// each, for [`mbox_writer`]; returns the files in id order.
pub fn mbox_spool(spool: &Path, ids: std::ops::Range<usize>) -> Vec<PathBuf> {
    std::fs::create_dir_all(spool).unwrap();
    ids.map(|id| {
        let path = spool.join(format!("{id}.msg"));
        let entry = poppet_testkit::conformance::mboxrd::entry(&load_message(id));
        std::fs::write(&path, entry).unwrap();
        path
    })
    .collect()
}

/// Delivers `message` into the maildir at `dir` as maildir(5) says: written whole into `tmp/`,
/// then renamed into `new/`, so a reader never sees half a message. `id` makes the name unique.
pub fn maildir_deliver(dir: &Path, id: usize, message: &[u8]) -> std::io::Result<()> {
    let name = format!("{}.M{id}P{}.mda", 1_700_000_000 + id, std::process::id());
    let tmp = dir.join("tmp").join(&name);
    std::fs::write(&tmp, message)?;
    std::fs::rename(&tmp, dir.join("new").join(&name))
}

/// Message `id` as given to an MDA: quoted lines, dots, and a size that varies.
pub fn load_message(id: usize) -> Vec<u8> {
    format!(
        "From: mda@example.org\nSubject: load {id}\nX-Test-Id: {id}\n\nbody of {id}\nFrom a body line\n>From a quoted one\n.dot\n{}\n",
        "z".repeat(id % 997)
    )
    .into_bytes()
}

/// The `X-Test-Id` of a message written by [`load_message`].
pub fn test_id(body: &[u8]) -> usize {
    let text = String::from_utf8_lossy(body);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("X-Test-Id: "))
        .unwrap_or_else(|| panic!("no X-Test-Id in {text:?}"));
    line.trim().parse().unwrap()
}
