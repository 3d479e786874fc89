//! Fault injection: `kill -9` of the server at random points (seeded; the seed is printed, and
//! `POPPET_FAULT_SEED=N` replays a run's kill plan) while a client logs in, RETRs, DELEs and QUITs
//! in a loop and an MDA delivers, for maildir (the MDA writes `tmp/` then renames into `new/`) and
//! mbox (the dotlock + fcntl writer of `common::mda`). After every kill the server is restarted and
//! the mailbox checked:
//!
//! - every delivered message is still in the mailbox, exactly once and intact byte for byte, unless
//!   a QUIT the client saw `+OK` for deleted it (then it is gone and never served again), or the
//!   server died between the QUIT and its answer (then either is right);
//! - a session killed before its QUIT deleted nothing;
//! - the mbox file parses after every kill;
//! - no lock left by the dead server keeps the user out longer than the stale bound.

#![allow(clippy::unwrap_used)]

mod common;

use common::mda::{load_message, maildir_deliver, mbox_spool, mbox_writer, test_id};
use common::stores::{STALE_AFTER, Store};
use poppet_testkit::conformance::{self, StoreFixture, as_sent};
use poppet_testkit::{Client, TestServer, have_tool};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Server restarts per store at least (each after one kill); more while the MDA is still
/// delivering.
const ROUNDS: usize = 14;
/// Messages the MDA delivers during the run, one every [`PACE`].
const DELIVERED: usize = 160;
/// Paced like incoming mail, so deliveries spread over all rounds (about 6 s in all).
const PACE: Duration = Duration::from_millis(40);

/// The seed: `POPPET_FAULT_SEED` or a random one, printed so a failing run can be replayed.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("POPPET_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("{test}: seed {seed} (replay with POPPET_FAULT_SEED={seed})");
    seed
}

/// `kill -9` (kill(1): no `unsafe` in the tests).
fn kill_9(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

/// Where in a session the server is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Just after PASS is sent: while the store opens the mailbox and takes its locks.
    Login,
    /// Just after a RETR is sent: while the body streams.
    Retr,
    /// Just after a DELE is sent.
    Dele,
    /// Just after QUIT is sent: while the commit deletes (an mbox rewrite).
    Quit,
    /// From another thread, after a delay counted from the server's start.
    Timer,
}

/// One round's kill: in which session, where, and how long after the command was sent.
#[derive(Debug, Clone, Copy)]
struct Plan {
    session: usize,
    phase: Phase,
    delay: Duration,
}

impl Plan {
    fn random(rng: &mut StdRng) -> Plan {
        let phases = [
            Phase::Login,
            Phase::Retr,
            Phase::Dele,
            Phase::Quit,
            Phase::Quit,
            Phase::Timer,
        ];
        let phase = phases[rng.random_range(0..phases.len())];
        let delay = if phase == Phase::Timer {
            Duration::from_millis(rng.random_range(0..400))
        } else {
            Duration::from_micros(rng.random_range(0..3000))
        };
        Plan {
            session: rng.random_range(0..3),
            phase,
            delay,
        }
    }
}

/// A login refused after a restart: a lock left by the dead server may refuse us, but not for longer
/// than the stale bound (plus room for a slow machine). Pauses briefly before the caller retries.
fn refused_until_stale(reply: &str, restarted: Instant) {
    assert!(
        reply.contains("[IN-USE]") || reply.contains("[SYS/TEMP]"),
        "{reply}"
    );
    assert!(
        restarted.elapsed() < STALE_AFTER + Duration::from_secs(10),
        "still refused {:?} after the restart: {reply}",
        restarted.elapsed()
    );
    // Bounded by the assertion above; a short pause keeps the retry from spinning.
    std::thread::sleep(Duration::from_millis(50));
}

/// What the client knows, across all rounds.
#[derive(Default)]
struct Books {
    /// Deleted by a QUIT answered `+OK`: how many times (more than once would be a duplicate).
    confirmed: BTreeMap<usize, usize>,
    /// Marked by a session whose QUIT was sent but never answered.
    uncertain: BTreeSet<usize>,
    /// Kills that landed inside a logged-in session, and those between a QUIT and its answer.
    killed_in_session: usize,
    killed_in_commit: usize,
    /// Kills between PASS and its answer (while the store opens the mailbox).
    killed_at_login: usize,
    /// Kills between sessions (the planned point was never reached).
    killed_between: usize,
    sessions: usize,
}

/// One session under `plan` (if this is the session it names). Returns `false` once the server is
/// gone. Panics on anything a dying server must never cause: a wrong size, a corrupted body, a
/// message served again after its deletion was confirmed.
fn session(
    addr: SocketAddr,
    pid: u32,
    plan: Option<Plan>,
    rng: &mut StdRng,
    books: &mut Books,
    restarted: Instant,
) -> bool {
    let kill_at = |phase: Phase| {
        if let Some(p) = plan.filter(|p| p.phase == phase) {
            std::thread::sleep(p.delay);
            kill_9(pid);
        }
    };
    let Some(mut c) = Client::try_connect(addr) else {
        return false;
    };
    if c.try_cmd("USER demo").is_none() || !c.try_send(b"PASS demo\r\n") {
        return false;
    }
    kill_at(Phase::Login);
    let Some(reply) = c.try_full_line() else {
        books.killed_at_login += 1;
        return false;
    };
    if !reply.starts_with("+OK") {
        refused_until_stale(&reply, restarted);
        return true;
    }
    books.sessions += 1;
    let Some(stat) = c.try_cmd("STAT") else {
        books.killed_in_session += 1;
        return false;
    };
    let n: usize = stat.split_whitespace().nth(1).unwrap().parse().unwrap();
    let kill_retr = rng.random_range(1..=n.max(1));
    let mut marked = Vec::new();
    for i in 1..=n {
        if !c.try_send(format!("RETR {i}\r\n").as_bytes()) {
            books.killed_in_session += 1;
            return false;
        }
        if i == kill_retr {
            kill_at(Phase::Retr);
        }
        let Some(status) = c.try_full_line() else {
            books.killed_in_session += 1;
            return false;
        };
        // Only this test's sessions delete, so every message of the snapshot is still there.
        assert!(status.starts_with("+OK"), "RETR {i}: {status}");
        let Some(body) = c.try_body() else {
            books.killed_in_session += 1;
            return false;
        };
        assert_eq!(status, format!("+OK {} octets", body.len()));
        let id = test_id(&body);
        assert!(body == as_sent(&load_message(id)), "message {id} corrupted");
        assert!(
            !books.confirmed.contains_key(&id),
            "message {id} served again after a QUIT confirmed its deletion"
        );
        // Served again, so the commit that may have deleted it did not.
        books.uncertain.remove(&id);
        if rng.random_bool(0.5) {
            if !c.try_send(format!("DELE {i}\r\n").as_bytes()) {
                books.killed_in_session += 1;
                return false;
            }
            kill_at(Phase::Dele);
            match c.try_full_line() {
                Some(r) => assert!(r.starts_with("+OK"), "DELE {i}: {r}"),
                None => {
                    books.killed_in_session += 1;
                    return false;
                }
            }
            marked.push(id);
        }
    }
    if !c.try_send(b"QUIT\r\n") {
        books.killed_in_session += 1;
        return false;
    }
    kill_at(Phase::Quit);
    let Some(reply) = c.try_full_line() else {
        books.killed_in_session += 1;
        books.killed_in_commit += 1;
        books.uncertain.extend(marked);
        return false;
    };
    assert_eq!(
        reply,
        format!("+OK Poppet signing off ({} messages deleted)", marked.len())
    );
    for id in marked {
        *books.confirmed.entry(id).or_default() += 1;
    }
    true
}

/// Reads the mailbox from disk: every message intact, none twice. Returns the ids.
///
/// In a maildir, one file under two names (a server killed between the `link` into `cur/` and the
/// `unlink` from `new/` of its move) is one stored message, which the next session's move
/// completes; two files with the same message are a duplicate.
fn stored_ids(store: Store, mail: &Path) -> BTreeSet<usize> {
    let mut ids = BTreeSet::new();
    let messages: Vec<Vec<u8>> = match store {
        Store::Maildir => {
            use std::os::unix::fs::MetadataExt as _;
            let mut files = BTreeSet::new();
            poppet_testkit::maildir_messages(&mail.join("demo/Maildir"))
                .into_iter()
                .filter(|(_, path)| {
                    let meta = std::fs::metadata(path).unwrap();
                    files.insert((meta.dev(), meta.ino()))
                })
                .map(|(_, path)| std::fs::read(path).unwrap())
                .collect()
        }
        Store::Mbox => store.remaining(mail, "demo"),
    };
    for m in messages {
        let id = test_id(&m);
        assert!(m == load_message(id), "stored message {id} corrupted");
        assert!(ids.insert(id), "message {id} stored twice");
    }
    ids
}

/// The MDA, delivering [`DELIVERED`] messages paced over the run; `wait` joins it.
enum Mda {
    Thread(std::thread::JoinHandle<()>),
    Process(std::process::Child),
}

impl Mda {
    fn start(store: Store, mail: &Path, spool: &Path) -> Mda {
        match store {
            Store::Maildir => {
                let dir = mail.join("demo/Maildir");
                Mda::Thread(std::thread::spawn(move || {
                    for id in 0..DELIVERED {
                        maildir_deliver(&dir, id, &load_message(id)).unwrap();
                        std::thread::sleep(PACE);
                    }
                }))
            }
            Store::Mbox => {
                let files = mbox_spool(spool, 0..DELIVERED);
                let pace = format!("{}", PACE.as_secs_f64());
                Mda::Process(mbox_writer(&mail.join("demo"), &files, &pace))
            }
        }
    }

    fn done(&mut self) -> bool {
        match self {
            Mda::Thread(t) => t.is_finished(),
            Mda::Process(p) => p.try_wait().unwrap().is_some(),
        }
    }

    fn wait(self) {
        match self {
            Mda::Thread(t) => t.join().unwrap(),
            Mda::Process(mut p) => assert!(p.wait().unwrap().success(), "the MDA failed"),
        }
    }
}

fn kill_9_at_random_points(store: Store, test: &str) {
    let mut rng = StdRng::seed_from_u64(seed(test));
    let setup = conformance::start(&store, &[]);
    let conformance::Setup { server, mail, dir } = setup;
    let config = conformance::config(&store, dir.path(), &mail);
    let mut mda = Mda::start(store, &mail, &dir.path().join("spool"));
    let mut books = Books::default();
    let mut server = Some(server);
    let started = Instant::now();
    let mut round = 0;
    // Every round ends in a kill; the rounds go on until the MDA is done too, so deliveries and
    // kills overlap throughout.
    while round < ROUNDS || !mda.done() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the run did not finish"
        );
        let s = server
            .take()
            .unwrap_or_else(|| TestServer::start(dir.path(), &config));
        let restarted = Instant::now();
        let plan = Plan::random(&mut rng);
        let pid = s.pid();
        let timer = (plan.phase == Phase::Timer).then(|| {
            std::thread::spawn(move || {
                std::thread::sleep(plan.delay);
                kill_9(pid);
            })
        });
        let mut k = 0;
        loop {
            let this = (k == plan.session).then_some(plan);
            if !session(s.addr, pid, this, &mut rng, &mut books, restarted) {
                break;
            }
            k += 1;
            if k > plan.session && timer.is_none() {
                // The planned kill did not happen (its session was refused or had no mail to
                // RETR or DELE): kill now, between sessions.
                kill_9(pid);
                books.killed_between += 1;
            }
        }
        if let Some(t) = timer {
            t.join().unwrap();
        }
        drop(s);
        // Whatever the kill interrupted, the mailbox on disk is whole.
        stored_ids(store, &mail);
        round += 1;
    }
    mda.wait();
    // A last session after the last delivery, on a fresh server, with nothing planned. The last
    // kill may have left a lock that refuses it until the stale bound, as in the rounds: a kill
    // between the recycled lock file's rename and the write of its text leaves a file that does
    // not parse, judged by its fresh mtime alone.
    let s = TestServer::start(dir.path(), &config);
    let restarted = Instant::now();
    let mut c = loop {
        let mut c = Client::connect(s.addr);
        assert!(c.cmd("USER demo").starts_with("+OK"));
        let reply = c.cmd("PASS demo");
        if reply.starts_with("+OK") {
            break c;
        }
        refused_until_stale(&reply, restarted);
    };
    let stat = c.cmd("STAT");
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
    let left = stored_ids(store, &mail);
    assert!(
        stat.starts_with(&format!("+OK {} ", left.len())),
        "{stat}: {} stored",
        left.len()
    );
    // Nothing a killed server was writing is left behind once a session has run since.
    let (dir_of_box, expected_files): (PathBuf, &[&str]) = match store {
        Store::Maildir => (
            mail.join("demo/Maildir"),
            &[
                "cur",
                "new",
                "poppet-pop3.lock.spare",
                "poppet-sizes",
                "tmp",
            ],
        ),
        Store::Mbox => (mail.clone(), &[".demo.poppet-session", "demo"]),
    };
    // A temporary file of a kill during a cache write or a lock takeover stays while it is young:
    // the store removes those only once they are an hour old, since a young one may belong to a
    // live writer on another host (the leftovers test below checks that old ones are removed).
    let young_leftover = |entry: &std::fs::DirEntry| {
        let name = entry.file_name().to_string_lossy().into_owned();
        let leftover =
            name.starts_with("poppet-sizes.tmp.") || name.starts_with("poppet-pop3.lock.stale.");
        let age = entry.metadata().unwrap().modified().unwrap().elapsed();
        leftover && age.is_ok_and(|age| age < Duration::from_secs(3600))
    };
    let mut files: Vec<String> = std::fs::read_dir(&dir_of_box)
        .unwrap()
        .map(Result::unwrap)
        .filter(|e| !young_leftover(e))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".demo.spool"))
        .collect();
    files.sort();
    assert_eq!(files, expected_files, "in {}", dir_of_box.display());
    for (&id, &n) in &books.confirmed {
        assert_eq!(n, 1, "message {id} deleted {n} times");
    }
    for id in 0..DELIVERED {
        let confirmed = books.confirmed.contains_key(&id);
        let kept = left.contains(&id);
        if confirmed {
            assert!(
                !kept,
                "message {id}: its deletion was confirmed, it is still there"
            );
        } else if !books.uncertain.contains(&id) {
            assert!(kept, "message {id} lost: never deleted, not in the mailbox");
        }
    }
    assert!(left.iter().all(|&id| id < DELIVERED), "{left:?}");
    eprintln!(
        "{test}: {round} kills, {} sessions; kills: {} at login, {} inside a session ({} between \
         QUIT and its answer), {} between sessions; {} deletions confirmed, {} uncertain, {} left",
        books.sessions,
        books.killed_at_login,
        books.killed_in_session,
        books.killed_in_commit,
        books.killed_between,
        books.confirmed.len(),
        books.uncertain.len(),
        left.len()
    );
    assert!(
        books.killed_in_session > 0,
        "no kill landed inside a session; the test did not test it"
    );
}

#[test]
fn maildir_kill_9_at_random_points_loses_and_duplicates_nothing() {
    kill_9_at_random_points(Store::Maildir, "maildir");
}

#[test]
fn mbox_kill_9_at_random_points_loses_and_duplicates_nothing() {
    if !have_tool("python3") {
        poppet_testkit::skip("python3 (the mbox MDA-like writer) is not installed");
        return;
    }
    kill_9_at_random_points(Store::Mbox, "mbox");
}

/// Regression: a server killed while writing the sizes cache (`poppet-sizes.tmp.*`, renamed over
/// the cache when complete) or while taking over a stale lock (`poppet-pop3.lock.stale.*`) left
/// that file in the maildir for good; nothing removed it. Now a login that takes over a crashed
/// session's lock or lists `cur/` (new mail; here the first login) removes them once they are an
/// hour old (they live for milliseconds; the hour covers clocks of hosts sharing the maildir). The
/// store's `leftovers_are_looked_for_after_a_crash_or_new_mail_not_on_every_login` covers each case.
#[test]
fn maildir_leftovers_of_a_killed_cache_write_or_lock_takeover_are_removed() {
    let d = common::demo();
    let root = d.maildir.clone();
    let plant = |name: &str, age: Duration| {
        let f = std::fs::File::create(root.join(name)).unwrap();
        f.set_modified(std::time::SystemTime::now() - age).unwrap();
    };
    let hours = Duration::from_secs(2 * 3600);
    plant("poppet-sizes.tmp.4242.1", hours);
    plant("poppet-pop3.lock.stale.4242.2", hours);
    // A young one may belong to a live writer on another host: kept.
    plant("poppet-sizes.tmp.4242.3", Duration::ZERO);
    let mut c = Client::connect(d.server.addr);
    c.login("demo", "demo");
    assert_eq!(c.cmd("QUIT"), "+OK Poppet signing off (0 messages deleted)");
    assert!(!root.join("poppet-sizes.tmp.4242.1").exists());
    assert!(!root.join("poppet-pop3.lock.stale.4242.2").exists());
    assert!(root.join("poppet-sizes.tmp.4242.3").exists());
}
