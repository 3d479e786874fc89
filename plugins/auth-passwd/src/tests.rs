//! Tests through the public behaviour: settings text in, `authenticate` / `lookup_secret` out, with
//! real files in a temp directory and the real watcher. Waits are bounded polls, never fixed sleeps.

use super::*;
use futures_lite::future::block_on;
use poppet_password::{Scheme, hash};
use poppet_sdk::{ErrorCode, Expire};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Collects every log line of the test process; each test looks only for its own file's path.
struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {}", record.level(), record.args());
        self.0.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

fn logs_about(path: &Path) -> Vec<String> {
    // A second test setting the logger gets an error, which is fine: it is the same logger.
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
    let needle = path.display().to_string();
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|line| line.contains(&needle))
        .cloned()
        .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    file: PathBuf,
}

impl Fixture {
    fn new(text: &str) -> Fixture {
        logs_about(Path::new("")); // installs the logger before anything logs
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users");
        std::fs::write(&file, text).unwrap();
        Fixture { dir, file }
    }

    fn settings(&self, more: &str) -> String {
        format!("(file: {:?}, {more})", self.file.display().to_string())
    }

    fn backend(&self, more: &str) -> PasswdFile {
        PasswdFile::from_settings(&self.settings(more)).unwrap()
    }

    /// Writes a new version by renaming a sibling over the file, as editors and `install` do.
    fn replace(&self, text: &str) {
        let tmp = self.dir.path().join(".users.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }
}

fn request(user: &str, password: &str) -> AuthRequest {
    AuthRequest {
        mechanism: poppet_sdk::mechanism::USER_PASS.to_owned(),
        user: user.to_owned(),
        password: Secret::new(password.to_owned()),
        authzid: None,
        peer: None,
        local: None,
        tls: true,
        verified: false,
    }
}

fn login(backend: &PasswdFile, user: &str, password: &str) -> AuthOutcome {
    block_on(backend.authenticate(request(user, password))).unwrap()
}

fn accepted(backend: &PasswdFile, user: &str, password: &str) -> Accepted {
    match login(backend, user, password) {
        AuthOutcome::Accept(accepted) => accepted,
        other => panic!("{user}: expected Accept, got {other:?}"),
    }
}

/// Polls `condition` every 20 ms for up to 5 s.
fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Watching only, so that a passing reload test proves the watcher works.
const WATCH_ONLY: &str = "check_interval: \"1h\"";
/// Stat checks only, on every login.
const STAT_ONLY: &str = "watch: false, check_interval: \"0s\"";

#[test]
fn accepts_the_right_password_for_several_schemes() {
    let sha = hash(Scheme::Sha512Crypt, b"s3cret").unwrap();
    let ssha = hash(Scheme::Ssha256, b"salty").unwrap();
    let fx = Fixture::new(&format!(
        "alice:{{PLAIN}}wonderland\nbob:{sha}\ncarol:{ssha}\n"
    ));
    let backend = fx.backend("");
    assert_eq!(
        accepted(&backend, "alice", "wonderland"),
        Accepted::default()
    );
    accepted(&backend, "bob", "s3cret");
    accepted(&backend, "carol", "salty");
}

#[test]
fn wrong_password_and_unknown_user_are_rejected_alike() {
    let sha = hash(Scheme::Sha512Crypt, b"s3cret").unwrap();
    let fx = Fixture::new(&format!("bob:{sha}\nalice:{{PLAIN}}wonderland\n"));
    let backend = fx.backend("");
    assert_eq!(login(&backend, "bob", "wrong"), AuthOutcome::Reject);
    assert_eq!(login(&backend, "mallory", "s3cret"), AuthOutcome::Reject);
    assert_eq!(login(&backend, "Bob", "s3cret"), AuthOutcome::Reject);
    assert_eq!(login(&backend, "alice", ""), AuthOutcome::Reject);
    // The unknown user is timed against the file's scheme, not PLAIN's microseconds.
    let table = backend.source.table();
    assert_eq!(table.dummy().map(|h| h.scheme()), Some(Scheme::Sha512Crypt));
}

#[test]
fn an_empty_file_rejects_everyone() {
    let fx = Fixture::new("# nobody yet\n");
    let backend = fx.backend("");
    assert_eq!(login(&backend, "root", "root"), AuthOutcome::Reject);
    assert!(logs_about(&fx.file).iter().any(|l| l.contains("no users")));
}

#[test]
fn malformed_lines_are_logged_and_skipped() {
    let fx = Fixture::new(
        "alice:{PLAIN}wonderland\n\
         carol\n\
         dave:{MD5-CRYPT}$1$abc$def\n\
         erin:{PLAIN}x::::::userdb_login_delay=soon\n\
         bob:{PLAIN}builder\n",
    );
    let backend = fx.backend("");
    accepted(&backend, "alice", "wonderland");
    accepted(&backend, "bob", "builder");
    assert_eq!(login(&backend, "erin", "x"), AuthOutcome::Reject);
    let logs = logs_about(&fx.file);
    let file = fx.file.display();
    for line in 2..=4 {
        let prefix = format!("WARN passwd-file {file}:{line}: ");
        assert!(
            logs.iter().any(|l| l.starts_with(&prefix)),
            "{prefix} in {logs:#?}"
        );
    }
    assert!(
        logs.iter().any(|l| l.contains("userdb_login_delay")),
        "{logs:#?}"
    );
}

#[test]
fn mailbox_and_per_user_limits_come_from_the_line() {
    let fx = Fixture::new(
        "a:{PLAIN}pw:1000:1000::/home/a::userdb_mail=maildir:~/Mail:LAYOUT=fs userdb_login_delay=300 userdb_expire=30\n\
         b:{PLAIN}pw:1001:1001::/home/b::userdb_expire=never\n\
         c:{PLAIN}pw\n\
         d:{PLAIN}pw::::::userdb_mail=/srv/mail/d\n",
    );
    let backend = fx.backend("");
    let a = accepted(&backend, "a", "pw");
    assert_eq!(a.mailbox.as_deref(), Some("/home/a/Mail"));
    assert_eq!(
        (a.login_delay, a.expire),
        (Some(300), Some(Expire::Days(30)))
    );
    let b = accepted(&backend, "b", "pw");
    assert_eq!(b.mailbox.as_deref(), Some("/home/b/Maildir"));
    assert_eq!((b.login_delay, b.expire), (None, Some(Expire::Never)));
    assert_eq!(accepted(&backend, "c", "pw").mailbox, None);
    assert_eq!(
        accepted(&backend, "d", "pw").mailbox.as_deref(),
        Some("/srv/mail/d")
    );

    let no_home_default = fx.backend("mailbox_from_home: false");
    assert_eq!(accepted(&no_home_default, "b", "pw").mailbox, None);
    assert_eq!(
        accepted(&no_home_default, "a", "pw").mailbox.as_deref(),
        Some("/home/a/Mail")
    );
}

#[test]
fn nologin_and_foreign_authzid_are_rejected() {
    let fx = Fixture::new("a:{PLAIN}pw::::::nologin\nb:{PLAIN}pw\n");
    let backend = fx.backend("");
    assert_eq!(login(&backend, "a", "pw"), AuthOutcome::Reject);
    let mut req = request("b", "pw");
    req.authzid = Some("a".to_owned());
    assert_eq!(
        block_on(backend.authenticate(req)).unwrap(),
        AuthOutcome::Reject
    );
    let mut req = request("b", "pw");
    req.authzid = Some("b".to_owned());
    assert!(matches!(
        block_on(backend.authenticate(req)).unwrap(),
        AuthOutcome::Accept(_)
    ));
}

/// `doveadm pw -s SCRAM-SHA-256 -p 'correct horse'` (Dovecot 2.3.19.1).
const DOVEADM_SCRAM: &str = "{SCRAM-SHA-256}4096,tDGxrBYWdGq3K9lMgeQ43w==,\
    n+fJy3sIJLKPzCOl0LGZim8eCRUYqf4mtOOEjvYAoCA=,OYlfCpBTBjUq+JG+rmb4tUSacIkwowaTkXio10CEGno=";

#[test]
fn lookup_secret_for_plain_and_scram_only() {
    let sha = hash(Scheme::Sha512Crypt, b"s3cret").unwrap();
    let fx = Fixture::new(&format!(
        "alice:{{PLAIN}}wonderland\nbob:{sha}\nnol:{{PLAIN}}x::::::nologin\n\
         carol:{DOVEADM_SCRAM}\nnoscram:{DOVEADM_SCRAM}::::::nologin\n"
    ));
    let backend = fx.backend("");
    let secret = |user: &str| block_on(backend.lookup_secret(user.to_owned())).unwrap();
    assert_eq!(
        secret("alice"),
        Some(StoredSecret::Plaintext(Secret::new(
            "wonderland".to_owned()
        )))
    );
    let Some(StoredSecret::ScramSha256(keys)) = secret("carol") else {
        panic!("carol: expected SCRAM keys");
    };
    let want = poppet_password::ScramCredentials::parse_dovecot(DOVEADM_SCRAM).unwrap();
    assert_eq!(
        keys,
        ScramKeys {
            iterations: 4096,
            salt: want.salt,
            stored_key: want.stored_key,
            server_key: want.server_key,
        }
    );
    assert_eq!(secret("bob"), None);
    assert_eq!(secret("nol"), None);
    assert_eq!(secret("noscram"), None);
    assert_eq!(secret("nobody"), None);
}

#[test]
fn scram_entries_log_in_with_user_pass() {
    let made = hash(Scheme::ScramSha256, b"pencil").unwrap();
    let fx = Fixture::new(&format!(
        "carol:{DOVEADM_SCRAM}:1000:1000::/home/carol\ndave:{made}\n"
    ));
    let backend = fx.backend("");
    assert_eq!(
        accepted(&backend, "carol", "correct horse")
            .mailbox
            .as_deref(),
        Some("/home/carol/Maildir")
    );
    accepted(&backend, "dave", "pencil");
    assert_eq!(
        login(&backend, "carol", "correct horsE"),
        AuthOutcome::Reject
    );
    assert_eq!(
        login(&backend, "dave", "correct horse"),
        AuthOutcome::Reject
    );
    assert_eq!(login(&backend, "erin", "pencil"), AuthOutcome::Reject);
    // An unknown user costs a PBKDF2 run at the file's iteration count, like a wrong password.
    let table = backend.source.table();
    assert_eq!(table.dummy().map(|h| h.scheme()), Some(Scheme::ScramSha256));
}

#[test]
fn capabilities_follow_the_schemes_in_the_file() {
    let sha = hash(Scheme::Sha512Crypt, b"s3cret").unwrap();
    let caps = |text: &str| {
        let fx = Fixture::new(text);
        fx.backend(STAT_ONLY).capabilities()
    };
    let none = AuthCapabilities::default();
    let scram_only = AuthCapabilities {
        plaintext_secrets: false,
        scram_sha256: true,
    };
    let both = AuthCapabilities {
        plaintext_secrets: true,
        scram_sha256: true,
    };
    assert_eq!(caps(""), none);
    assert_eq!(caps(&format!("bob:{sha}\n")), none);
    assert_eq!(
        caps(&format!("bob:{sha}\ncarol:{DOVEADM_SCRAM}\n")),
        scram_only
    );
    assert_eq!(caps(&format!("bob:{sha}\nalice:{{PLAIN}}pw\n")), both);
    assert_eq!(
        caps(&format!("alice:{{PLAIN}}pw\ncarol:{DOVEADM_SCRAM}\n")),
        both
    );
    // A skipped line offers nothing.
    assert_eq!(caps("alice:{PLAIN}pw::::::userdb_expire=soon\n"), none);
}

#[test]
fn capabilities_change_with_the_file() {
    let fx = Fixture::new("alice:{PLAIN}pw\n");
    let backend = fx.backend(STAT_ONLY);
    assert!(backend.capabilities().plaintext_secrets);
    fx.replace(&format!("carol:{DOVEADM_SCRAM}\n"));
    // A login (or lookup) notices the change; capabilities() then reports the new table.
    accepted(&backend, "carol", "correct horse");
    assert_eq!(
        backend.capabilities(),
        AuthCapabilities {
            plaintext_secrets: false,
            scram_sha256: true,
        }
    );
    fx.replace(&format!("bob:{}\n", hash(Scheme::Ssha256, b"pw").unwrap()));
    assert_eq!(
        block_on(backend.lookup_secret("bob".to_owned())).unwrap(),
        None
    );
    assert_eq!(backend.capabilities(), AuthCapabilities::default());
}

#[test]
fn reloads_when_the_file_is_written_in_place() {
    let fx = Fixture::new("alice:{PLAIN}old\n");
    let backend = fx.backend(WATCH_ONLY);
    accepted(&backend, "alice", "old");
    std::fs::write(&fx.file, "alice:{PLAIN}new\nbob:{PLAIN}pw\n").unwrap();
    eventually("the new password", || {
        login(&backend, "alice", "new") != AuthOutcome::Reject
    });
    accepted(&backend, "bob", "pw");
    assert_eq!(login(&backend, "alice", "old"), AuthOutcome::Reject);
}

#[test]
fn reloads_when_the_file_is_replaced_by_rename() {
    let fx = Fixture::new("alice:{PLAIN}old\n");
    let backend = fx.backend(WATCH_ONLY);
    fx.replace("alice:{PLAIN}new\n");
    eventually("the new password", || {
        login(&backend, "alice", "new") != AuthOutcome::Reject
    });
    // The watch survives the replacement: a second one is seen too.
    fx.replace("alice:{PLAIN}newer\n");
    eventually("the newer password", || {
        login(&backend, "alice", "newer") != AuthOutcome::Reject
    });
}

#[test]
fn stat_check_notices_changes_without_a_watcher() {
    let fx = Fixture::new("alice:{PLAIN}old\n");
    let backend = fx.backend(STAT_ONLY);
    assert!(backend.watcher.is_none());
    fx.replace("alice:{PLAIN}new\n");
    // No waiting: the login itself stats the file and reloads it.
    accepted(&backend, "alice", "new");
}

#[test]
fn an_unreadable_file_keeps_the_old_users() {
    let fx = Fixture::new("alice:{PLAIN}pw\n");
    let backend = fx.backend(STAT_ONLY);
    std::fs::remove_file(&fx.file).unwrap();
    accepted(&backend, "alice", "pw");
    let logs = logs_about(&fx.file);
    assert!(
        logs.iter()
            .any(|l| l.starts_with("ERROR") && l.contains("keeping the 1 users")),
        "{logs:#?}"
    );
    // Once the file is back, it is read again.
    std::fs::write(&fx.file, "alice:{PLAIN}pw2\n").unwrap();
    accepted(&backend, "alice", "pw2");
}

#[test]
fn the_watch_ends_when_the_backend_is_dropped() {
    let fx = Fixture::new("alice:{PLAIN}pw\n");
    let backend = fx.backend(WATCH_ONLY);
    assert!(backend.watcher.is_some());
    let source = Arc::downgrade(&backend.source);
    drop(backend);
    // The watcher's thread held the only other reference; it lets go when the thread stops.
    eventually("the watch thread to stop", || source.upgrade().is_none());
}

#[test]
fn bad_settings_are_config_errors_with_a_position() {
    let err = PasswdFile::from_settings("(\n  file: \"/x\",\n  colour: true,\n)").unwrap_err();
    assert_eq!(err.code, ErrorCode::CONFIG);
    assert_eq!(err.position.map(|p| p.line), Some(3), "{err}");

    let err = PasswdFile::from_settings("(file: \"/x\", check_interval: \"5\")").unwrap_err();
    assert_eq!(err.code, ErrorCode::CONFIG);
    assert!(err.message.contains("check_interval"), "{err}");

    let err = PasswdFile::from_settings("()").unwrap_err();
    assert_eq!(err.code, ErrorCode::CONFIG);
    assert!(err.message.contains("file"), "{err}");
}

#[test]
fn a_missing_file_is_a_config_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("userz");
    let text = format!("(file: {:?})", file.display().to_string());
    let err = PasswdFile::from_settings(&text).unwrap_err();
    assert_eq!(err.code, ErrorCode::CONFIG);
    assert!(err.message.contains(&file.display().to_string()), "{err}");
    assert!(err.message.contains("No such file"), "{err}");
}

#[test]
fn the_plugin_exports_the_sdk_abi_version() {
    assert_eq!(poppet_plugin_abi_version(), poppet_sdk::abi::ABI_VERSION);
}

#[test]
fn a_verified_request_only_looks_the_account_up() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users");
    std::fs::write(
        &file,
        "ann:{PLAIN}secret::::/home/ann::\nbob:{PLAIN}x::::::nologin\n",
    )
    .unwrap();
    let backend =
        PasswdFile::from_settings(&format!("(file: {:?})", file.display().to_string())).unwrap();
    let verified = |user: &str| {
        let mut r = request(user, "");
        r.verified = true;
        block_on(backend.authenticate(r)).unwrap()
    };
    assert!(matches!(verified("ann"), AuthOutcome::Accept(_)));
    assert_eq!(verified("nobody"), AuthOutcome::Reject);
    assert_eq!(
        verified("bob"),
        AuthOutcome::Reject,
        "nologin still applies"
    );
    // Without the flag an empty password is just wrong.
    assert_eq!(
        block_on(backend.authenticate(request("ann", ""))).unwrap(),
        AuthOutcome::Reject
    );
}
