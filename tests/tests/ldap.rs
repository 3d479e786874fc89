//! The LDAP auth plugin end to end: a real OpenLDAP slapd of the test's own (temporary config,
//! database and certificates, loopback ports, no system service), the real `poppet` binary, the
//! real plugin through dlopen, the maildir store, and POP3 over a socket.
//!
//! The directory is `examples/ldap/slapd.conf` + `people.ldif` + `poppet.schema`, and the plugin
//! settings are `examples/ldap/auth-ldap.ron`, the files the book chapter shows; only paths and
//! the address are replaced. Each test prints "SKIP: slapd not installed" and passes when
//! `/usr/sbin/slapd` is missing (`.ci/run` installs Debian's `slapd` and `ldap-utils`).

#![allow(clippy::unwrap_used)]

use poppet_testkit::{Client, TestServer, artifacts, copy_dir, demo_maildir, workspace_root};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";

fn have_slapd() -> bool {
    let ok = Path::new(SLAPD).exists() && Path::new(SLAPADD).exists();
    if !ok {
        poppet_testkit::skip("slapd not installed");
    }
    ok
}

/// A free loopback port (bound, then released for slapd to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `condition` every 20 ms for up to `limit`.
fn eventually(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A slapd of the test's own.
struct Slapd {
    dir: tempfile::TempDir,
    port: u16,
    tls_port: u16,
    child: Option<Child>,
}

impl Slapd {
    /// Writes config, certificates and database under a temp dir, then starts slapd. `extra_ldif`
    /// is appended to the example people.
    fn start(extra_ldif: &str) -> Slapd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let examples = workspace_root().join("examples/ldap");
        let here = root.display().to_string();
        std::fs::copy(examples.join("poppet.schema"), root.join("poppet.schema")).unwrap();
        let conf = std::fs::read_to_string(examples.join("slapd.conf")).unwrap();
        std::fs::write(
            root.join("slapd.conf"),
            conf.replace("/srv/poppet-ldap", &here),
        )
        .unwrap();
        make_certificates(root);
        let people = std::fs::read_to_string(examples.join("people.ldif")).unwrap();
        let people = people.replace("/var/mail/", &format!("{here}/mail/"));
        std::fs::write(root.join("people.ldif"), format!("{people}\n{extra_ldif}")).unwrap();
        std::fs::create_dir(root.join("db")).unwrap();
        run(Command::new(SLAPADD)
            .arg("-q")
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-l")
            .arg(root.join("people.ldif")));
        let mut slapd = Slapd {
            dir,
            port: free_port(),
            tls_port: free_port(),
            child: None,
        };
        slapd.run();
        slapd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts (or restarts) slapd in the foreground (`-d 0`) and waits until it accepts.
    fn run(&mut self) {
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.port, self.tls_port
        );
        let child = Command::new(SLAPD)
            .arg("-f")
            .arg(self.path("slapd.conf"))
            .args(["-h", &urls, "-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        eventually("slapd to listen", Duration::from_secs(20), || {
            TcpStream::connect(addr).is_ok()
        });
    }

    /// Stops slapd and waits until it has exited.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGSTOP or SIGCONT: a directory that accepts connections but never answers. Returns
    /// once every thread of slapd is stopped (or running again): `kill` returns when the signal is
    /// sent, and a thread still running could answer one more request (a CI run saw a login
    /// succeed right after `-STOP`).
    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        run(Command::new("kill").args([signal, &pid]));
        let want_stopped = signal == "-STOP";
        let stopped = |stat: String| {
            // The state follows the `(comm)` field, which may itself hold spaces.
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        };
        let settled = || {
            std::fs::read_dir(format!("/proc/{pid}/task"))
                .unwrap()
                .filter_map(|task| std::fs::read_to_string(task.unwrap().path().join("stat")).ok())
                .all(|stat| stopped(stat) == want_stopped)
        };
        eventually(
            &format!("slapd to take {signal}"),
            Duration::from_secs(10),
            settled,
        );
    }

    /// The example plugin settings, pointed at this slapd; `more` is added at the end.
    fn settings(&self, more: &str) -> String {
        let example =
            std::fs::read_to_string(workspace_root().join("examples/ldap/auth-ldap.ron")).unwrap();
        std::fs::write(self.path("ldap-password"), "service-secret\n").unwrap();
        let settings = example
            .replace(
                "ldap://ldap.example.org",
                &format!("ldap://127.0.0.1:{}", self.port),
            )
            .replace(
                "/etc/poppet/ldap-ca.pem",
                &self.path("ca.pem").display().to_string(),
            )
            .replace(
                "/etc/poppet/ldap-password",
                &self.path("ldap-password").display().to_string(),
            );
        let body = settings.trim_end().strip_suffix(')').unwrap();
        format!("{body}    {more}\n)")
    }

    /// Starts poppet with the LDAP plugin (settings text as given) and the maildir store.
    fn poppet(&self, settings: &str) -> TestServer {
        TestServer::start(self.dir.path(), &self.config(settings))
    }

    fn config(&self, settings: &str) -> String {
        format!(
            r#"(
    listeners: [(address: "127.0.0.1:0")],
    plugins: [
        (library: "{ldap}", kind: auth, name: "ldap", settings: {settings}),
        (library: "{store}", kind: store, name: "maildir", settings: (path: "{mail}/%u/Maildir")),
    ],
    auth: "ldap",
    store: "maildir",
    apop: true,
    limits: (auth_failure_delay: "10ms"),
)"#,
            ldap = ldap_plugin().display(),
            store = artifacts().library("poppet-store-maildir").display(),
            mail = self.path("mail").display(),
        )
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        // SIGKILL ends a slapd even while it is stopped by SIGSTOP.
        self.stop();
    }
}

/// A test CA and a server certificate for 127.0.0.1 signed by it, with openssl.
fn make_certificates(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(Command::new("openssl")
        .current_dir(dir)
        .args(["req", "-x509"])
        .args(ec)
        .args(["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"])
        .args(["-subj", "/CN=Poppet LDAP test CA"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]));
    run(Command::new("openssl")
        .current_dir(dir)
        .arg("req")
        .args(ec)
        .args(["-keyout", "server.key", "-out", "server.csr"])
        .args(["-subj", "/CN=127.0.0.1"]));
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(Command::new("openssl")
        .current_dir(dir)
        .args([
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
        ])
        .args(["-CAcreateserial", "-out", "server.pem", "-days", "2"])
        .args(["-extfile", "server.ext"]));
}

/// The plugin library (built by the testkit with the other plugins).
fn ldap_plugin() -> &'static PathBuf {
    artifacts().library("poppet-auth-ldap")
}

/// USER + PASS on a fresh connection; the answer to PASS.
fn try_login(server: &TestServer, user: &str, password: &str) -> String {
    let mut c = Client::connect(server.addr);
    let r = c.cmd(&format!("USER {user}"));
    assert!(r.starts_with("+OK"), "USER {user}: {r}");
    c.cmd(&format!("PASS {password}"))
}

/// A successful login, closed with QUIT so the mailbox is free for the next one.
fn assert_ok(server: &TestServer, user: &str, password: &str) {
    let mut c = Client::connect(server.addr);
    assert!(c.cmd(&format!("USER {user}")).starts_with("+OK"));
    let r = c.cmd(&format!("PASS {password}"));
    assert!(r.starts_with("+OK"), "{user}: {r}\n{}", server.log());
    assert!(c.cmd("QUIT").starts_with("+OK"));
}

fn assert_auth_err(server: &TestServer, user: &str, password: &str) {
    let r = try_login(server, user, password);
    assert!(
        r.starts_with("-ERR [AUTH]"),
        "{user}: {r}\n{}",
        server.log()
    );
}

/// The example as it is: StartTLS with the test CA, a service account, bind mode.
#[test]
fn starttls_bind_mode_logins() {
    if !have_slapd() {
        return;
    }
    let slapd = Slapd::start("");
    let server = slapd.poppet(&slapd.settings(""));
    // alice: {SSHA} in the directory, checked by slapd's bind.
    assert_ok(&server, "alice", "wonderland");
    assert_auth_err(&server, "alice", "Wonderland");
    assert_auth_err(&server, "nobody", "wonderland");
    // The special characters are escaped, so the filter finds exactly this entry.
    assert_ok(&server, "o'neil*(ops)\\+1@example.org", "special-pw");
    assert_auth_err(&server, "o'neil*(ops)\\+1@example.org", "wonderland");
    // Injection: unescaped, `*)(uid=*` would match every person (and with alice's password,
    // whichever entry came first). Escaped, it is a uid nobody has: a plain [AUTH] failure,
    // not an ambiguous search.
    for attempt in ["*)(uid=*", "*", "alice)(|(uid=*", "*)(objectClass=*"] {
        assert_auth_err(&server, attempt, "wonderland");
    }
    assert!(
        !server.log().contains("entries, expected one"),
        "{}",
        server.log()
    );
}

/// bob's entry says where his mail is and asks for his own LOGIN-DELAY and EXPIRE.
#[test]
fn mailbox_login_delay_and_expire_come_from_attributes() {
    if !have_slapd() {
        return;
    }
    let slapd = Slapd::start("");
    // The directory puts bob's mail at <dir>/mail/bob/Maildir; the store's template would say
    // the same for "bob", so give the store a template that points elsewhere.
    let maildir = slapd.path("mail/bob/Maildir");
    copy_dir(&demo_maildir(), &maildir);
    let text = slapd
        .config(&slapd.settings(""))
        .replace("/mail/%u/Maildir", "/elsewhere/%u/Maildir");
    let server = TestServer::start(slapd.dir.path(), &text);
    let mut c = Client::connect(server.addr);
    c.login("bob", "builder");
    let n_msgs = poppet_testkit::maildir_messages(&maildir).len();
    let stat = c.cmd("STAT");
    assert!(stat.starts_with(&format!("+OK {n_msgs} ")), "{stat}");
    let (_, capa) = c.multi("CAPA");
    let capa = String::from_utf8(capa).unwrap();
    assert!(capa.contains("LOGIN-DELAY 300"), "{capa}");
    assert!(capa.contains("EXPIRE 31"), "{capa}");
    assert!(!slapd.path("elsewhere/bob").exists());
}

/// `mode: hash`: the plugin reads userPassword ({SSHA} from slappasswd, {PLAIN} for APOP) and
/// checks it with poppet-password.
#[test]
fn hash_mode_reads_and_verifies_the_stored_password() {
    if !have_slapd() {
        return;
    }
    let carol = "dn: uid=carol,ou=people,dc=example,dc=org\nobjectClass: inetOrgPerson\n\
                 uid: carol\ncn: Carol\nsn: C\nuserPassword: {PLAIN}carol-secret\n";
    let slapd = Slapd::start(carol);
    let settings = slapd
        .settings("apop: true,")
        .replace("mode: bind,", "mode: hash,");
    let server = slapd.poppet(&settings);
    assert_ok(&server, "alice", "wonderland");
    assert_auth_err(&server, "alice", "wonderlan");
    assert_auth_err(&server, "nobody", "x");
    assert_ok(&server, "carol", "carol-secret");
    assert_ok(&server, "o'neil*(ops)\\+1@example.org", "special-pw");

    // APOP from the {PLAIN} value; MD5 via Python, an independent implementation.
    let mut c = Client::connect(server.addr);
    let ts = c
        .greeting
        .split_whitespace()
        .find(|w| w.starts_with('<'))
        .unwrap()
        .to_owned();
    let Ok(out) = Command::new("python3")
        .args(["-c", "import hashlib,sys; print(hashlib.md5((sys.argv[1]+sys.argv[2]).encode()).hexdigest())", &ts, "carol-secret"])
        .output()
    else {
        poppet_testkit::skip("APOP part: python3 not found");
        return;
    };
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = c.cmd(&format!("APOP carol {digest}"));
    assert!(r.starts_with("+OK"), "{r}\n{}", server.log());
    // alice has only a one-way hash: APOP cannot work for her.
    let mut c = Client::connect(server.addr);
    let r = c.cmd("APOP alice 0123456789abcdef0123456789abcdef");
    assert!(r.starts_with("-ERR [AUTH]"), "{r}");
}

/// ldaps:// with the test CA works; without it (system roots only) the certificate is refused,
/// which is a temporary failure, not a wrong password.
#[test]
fn ldaps_with_the_test_ca_and_verification_on() {
    if !have_slapd() {
        return;
    }
    let slapd = Slapd::start("");
    let ldaps = |settings: String| {
        settings
            .replace(
                &format!("ldap://127.0.0.1:{}", slapd.port),
                &format!("ldaps://127.0.0.1:{}", slapd.tls_port),
            )
            .replace("starttls: true,", "")
    };
    let server = slapd.poppet(&ldaps(slapd.settings("")));
    assert_ok(&server, "alice", "wonderland");
    assert_auth_err(&server, "alice", "nope");
    drop(server);

    let ca = slapd.path("ca.pem").display().to_string();
    let untrusted = ldaps(slapd.settings("")).replace(&format!("ca_file: \"{ca}\","), "");
    let server = slapd.poppet(&untrusted);
    let r = try_login(&server, "alice", "wonderland");
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}\n{}", server.log());
    assert!(
        server.wait_for_log("rustls", Duration::from_secs(5)),
        "{}",
        server.log()
    );
}

/// The directory goes away (stopped, then hanging): logins answer [SYS/TEMP] quickly, a session
/// already logged in carries on, and logins work again once the directory is back.
#[test]
fn directory_outage_is_temporary_and_recovers() {
    if !have_slapd() {
        return;
    }
    let mut slapd = Slapd::start("");
    copy_dir(&demo_maildir(), &slapd.path("mail/bob/Maildir"));
    let settings =
        slapd.settings(r#"connect_timeout: "1s", bind_timeout: "1s", search_timeout: "1s","#);
    let server = slapd.poppet(&settings);
    // bob stays logged in throughout; alice's logins probe the directory.
    let mut session = Client::connect(server.addr);
    session.login("bob", "builder");
    let stat = session.cmd("STAT");

    // Stopped: connections are refused at once.
    slapd.stop();
    let started = Instant::now();
    let r = try_login(&server, "alice", "wonderland");
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}\n{}", server.log());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        session.cmd("STAT"),
        stat,
        "the logged-in session is unaffected"
    );
    // The log says why, for the administrator.
    assert!(
        server.wait_for_log("cannot connect", Duration::from_secs(5)),
        "{}",
        server.log()
    );

    // Back: the next login works (the pool drops the dead connections and opens new ones).
    slapd.run();
    assert_ok(&server, "alice", "wonderland");

    // Hanging: slapd accepts but never answers. The login waits out its timeout, no longer,
    // while the other session is served at once.
    slapd.signal("-STOP");
    let addr = server.addr;
    let waiting = std::thread::spawn(move || {
        let started = Instant::now();
        let mut c = Client::connect(addr);
        c.cmd("USER alice");
        let r = c.cmd("PASS wonderland");
        (r, started.elapsed())
    });
    let started = Instant::now();
    assert_eq!(session.cmd("STAT"), stat);
    assert!(started.elapsed() < Duration::from_millis(500));
    let (r, took) = waiting.join().unwrap();
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}\n{}", server.log());
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        server.wait_for_log("timeout", Duration::from_secs(5)),
        "{}",
        server.log()
    );

    slapd.signal("-CONT");
    assert_ok(&server, "alice", "wonderland");
    assert_eq!(
        session.cmd("QUIT"),
        "+OK Poppet signing off (0 messages deleted)"
    );
}

/// With the cache on, a login that succeeded is answered from it while the directory is down; a
/// different password is not.
#[test]
fn cache_answers_repeated_logins_during_an_outage() {
    if !have_slapd() {
        return;
    }
    let mut slapd = Slapd::start("");
    let server = slapd.poppet(&slapd.settings(r#"cache: (ttl: "5m"),"#));
    assert_ok(&server, "alice", "wonderland");
    slapd.stop();
    assert_ok(&server, "alice", "wonderland");
    let r = try_login(&server, "alice", "other");
    assert!(r.starts_with("-ERR [SYS/TEMP]"), "{r}");
}

/// Mistakes in the settings stop the server at start, naming the key and its line.
#[test]
fn config_errors_name_the_key_and_position() {
    if !have_slapd() {
        return;
    }
    let slapd = Slapd::start("");
    let bad_url = slapd.settings("").replace(
        &format!("ldap://127.0.0.1:{}", slapd.port),
        "ldap:/127.0.0.1",
    );
    let config = slapd.config(&bad_url);
    let log = TestServer::try_start(slapd.dir.path(), &config).unwrap_err();
    // The position is the `url:` key's, in the server's config file.
    let line = 1 + config
        .lines()
        .position(|l| l.trim_start().starts_with("url:"))
        .unwrap();
    let at = format!("poppet.ron:{line}:5: ");
    assert!(log.contains(&at) && log.contains("`url`"), "{at}: {log}");

    let no_base = slapd
        .settings("")
        .replace("base_dn: \"ou=people,dc=example,dc=org\",", "");
    let log = TestServer::try_start(slapd.dir.path(), &slapd.config(&no_base)).unwrap_err();
    assert!(log.contains("`base_dn`: missing"), "{log}");
}
