//! # poppet-loadgen
//!
//! The load generator behind `tests/bench/compare.sh`, which measures Poppet against Dovecot on
//! the same maildirs. Every mode prints one JSON object per line on stdout, including the
//! generator's own CPU time (`loadgen_cpu_s`, from `/proc/self/stat`) so a run can show the
//! generator was not the bottleneck, and, given `--server-pid`, the CPU time and memory of the
//! server's whole process tree (Dovecot forks per login; Poppet is one process).
//!
//! Modes:
//! - `session`: connect, USER/PASS, STAT, LIST, UIDL, QUIT, at a concurrency, for a duration;
//!   with `--retr` also RETR of every message, with `--disconnect R` a fraction R of the sessions
//!   dropped at a random step (the soak test, `tests/soak/soak.sh`);
//! - `retr`: RETR of one message repeatedly, or of every message pipelined, with bytes/s;
//! - `open`: time from PASS sent to STAT answered, for consecutive sessions (cold, then warm);
//! - `idle`: N logged-in connections held open while the server's RSS and PSS are measured;
//! - `ceiling`: the same bytes as a RETR sent by a plain read/write file copy over loopback, the
//!   physical ceiling for RETR throughput on this machine;
//! - `hash-ceiling`: password checks per second with every CPU doing nothing else, through the
//!   same code as Poppet's passwd-file plugin (`poppet_password::verify`): the ceiling for the
//!   session rate of a server that checks that hash once per login with one-stream SHA-512
//!   code, on this machine;
//! - `maildir`: writes identical maildir fixtures for both servers;
//! - `free-port`: prints a free loopback TCP port.
//!
//! Any mode takes `--tls --ca FILE` for implicit TLS (POP3S) through rustls.
//!
//! Design: one POP3 client (`pop.rs`), written once as async code over two kinds of stream. The
//! `session` mode runs from 64 concurrent sessions up as tasks on one event loop per CPU over
//! non-blocking sockets (one wait then collects several answers) and below that a blocking thread
//! each; the other modes hold one or a few connections on blocking sockets, whose calls never
//! wait in an executor, and the `idle` mode keeps its connections in a plain vector after a few
//! login threads are done.

mod maildir;
mod pop;
mod procfs;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use pop::{Client, Conn, Target};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "POP3 load generator for Poppet's benchmarks (JSON lines on stdout)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

/// The modes.
#[derive(Debug, Subcommand)]
enum Mode {
    /// Full sessions (connect, USER/PASS, STAT, LIST, UIDL, QUIT) at a concurrency.
    Session(SessionArgs),
    /// RETR throughput: one message repeatedly, or all messages pipelined.
    Retr(RetrArgs),
    /// Open latency: PASS sent to STAT answered, for consecutive sessions.
    Open(OpenArgs),
    /// Hold N authenticated connections and measure the server's memory.
    Idle(IdleArgs),
    /// Loopback ceiling: a plain read/write copy of a file to a socket, read like a RETR.
    Ceiling(CeilingArgs),
    /// Hash ceiling: password checks per second on every CPU, nothing else.
    HashCeiling(HashCeilingArgs),
    /// Write maildir fixtures (identical bytes and names in every target).
    Maildir(MaildirArgs),
    /// Print a free TCP port on 127.0.0.1.
    FreePort,
}

/// Where and how to connect, and what to label the output with.
#[derive(Debug, Args)]
struct Common {
    /// Server address, e.g. 127.0.0.1:11110.
    #[arg(long)]
    addr: SocketAddr,
    /// Implicit TLS (POP3S) through rustls.
    #[arg(long)]
    tls: bool,
    /// PEM file with the CA (or self-signed) certificate to trust, for --tls.
    #[arg(long)]
    ca: Option<PathBuf>,
    /// Name to verify in the server certificate.
    #[arg(long, default_value = "localhost")]
    server_name: String,
    /// Allow TLS session resumption (off: every session pays a full handshake).
    #[arg(long)]
    tls_resume: bool,
    /// The server's main PID: its process tree's CPU time (and memory for `idle`) is reported.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Password for every user.
    #[arg(long, default_value = "bench")]
    password: String,
    /// Free text copied into every JSON line (server name, round, ...).
    #[arg(long, default_value = "")]
    label: String,
}

/// `session` options.
#[derive(Debug, Args)]
struct SessionArgs {
    #[command(flatten)]
    common: Common,
    /// User name pattern; `{}` is replaced by the thread number modulo --users, so concurrent
    /// sessions use different mailboxes (POP3 locks a mailbox per session).
    #[arg(long, default_value = "u{}")]
    user_pattern: String,
    /// Number of distinct users.
    #[arg(long, default_value_t = 256)]
    users: u32,
    /// Concurrent sessions (a thread each below 64, else tasks on one event loop per CPU).
    #[arg(long, default_value_t = 1)]
    concurrency: u32,
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Stop after this many sessions (whichever comes first).
    #[arg(long)]
    count: Option<u64>,
    /// Also RETR every message before QUIT.
    #[arg(long)]
    retr: bool,
    /// Fraction of sessions (0 to 1) that close the connection at a random step instead of
    /// finishing: before the greeting, after USER, with PASS unanswered, mid-LIST, mid-RETR, after
    /// a DELE. They count as `dropped`, not as errors.
    #[arg(long, default_value_t = 0.0)]
    disconnect: f64,
    /// Seed for the disconnect choices (default: from the clock); printed in the JSON line.
    #[arg(long)]
    seed: Option<u64>,
}

/// `retr` options.
#[derive(Debug, Args)]
struct RetrArgs {
    #[command(flatten)]
    common: Common,
    /// The mailbox's user.
    #[arg(long)]
    user: String,
    /// Message number to retrieve repeatedly in one session.
    #[arg(long, conflicts_with = "all")]
    msg: Option<u32>,
    /// Retrieve every message, pipelined, in sessions repeated until the duration is over.
    #[arg(long)]
    all: bool,
    /// RETR commands in flight when pipelining.
    #[arg(long, default_value_t = 64)]
    window: u32,
    /// Seconds to run (at least one retrieval or session always completes).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Stop after this many retrievals (or sessions with --all).
    #[arg(long)]
    count: Option<u64>,
}

/// `open` options.
#[derive(Debug, Args)]
struct OpenArgs {
    #[command(flatten)]
    common: Common,
    /// The mailbox's user.
    #[arg(long)]
    user: String,
    /// Consecutive sessions to time (the first is cold if the caches were cleared).
    #[arg(long, default_value_t = 2)]
    sessions: u32,
}

/// `idle` options.
#[derive(Debug, Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// User name pattern; `{}` is replaced by the connection number (one mailbox each).
    #[arg(long, default_value = "u{}")]
    user_pattern: String,
    /// Connections to open and log in.
    #[arg(long, default_value_t = 100)]
    connections: u32,
    /// Threads opening connections in parallel.
    #[arg(long, default_value_t = 16)]
    threads: u32,
    /// Seconds to wait after the last login before measuring (lets forked processes settle).
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
    /// Seconds to keep the connections open after measuring.
    #[arg(long, default_value_t = 0.0)]
    hold: f64,
}

/// `ceiling` options.
#[derive(Debug, Args)]
struct CeilingArgs {
    /// The file to send (the message file in the maildir, read through the page cache).
    #[arg(long)]
    file: PathBuf,
    /// Copy buffer of the sending side, in bytes (coreutils `cp` uses 128 KiB).
    #[arg(long, default_value_t = 128 * 1024)]
    buffer: usize,
    /// Seconds to run (at least one copy always completes).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Free text copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

/// `hash-ceiling` options.
#[derive(Debug, Args)]
struct HashCeilingArgs {
    /// The stored hash as a passwd-file holds it (`{SHA512-CRYPT}$6$...`).
    #[arg(long)]
    hash: String,
    /// The password the hash was made from (a check that fails is an error).
    #[arg(long, default_value = "bench")]
    password: String,
    /// Threads checking at once (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds to run (every thread completes at least one check).
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Free text copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

/// `maildir` options.
#[derive(Debug, Args)]
struct MaildirArgs {
    /// Target maildir; repeat for identical copies; `{}` is replaced by 0..--users.
    #[arg(long = "dir", required = true)]
    dirs: Vec<String>,
    /// Mailboxes per `{}` pattern.
    #[arg(long, default_value_t = 1)]
    users: u32,
    /// Messages per mailbox.
    #[arg(long)]
    count: u32,
    /// Bytes per message file (LF line ends).
    #[arg(long)]
    size: u64,
    /// Put Maildir++ `,S=` and `,W=` sizes in the file names.
    #[arg(long)]
    sizes_in_names: bool,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.mode {
        Mode::Session(a) => session(&a),
        Mode::Retr(a) => retr(&a),
        Mode::Open(a) => open(&a),
        Mode::Idle(a) => idle(&a),
        Mode::Ceiling(a) => ceiling(&a),
        Mode::HashCeiling(a) => hash_ceiling(&a),
        Mode::Maildir(a) => {
            let t = Instant::now();
            let files = maildir::generate(&maildir::Spec {
                dirs: a.dirs,
                users: a.users,
                count: a.count,
                size: a.size,
                sizes_in_names: a.sizes_in_names,
            })?;
            emit(
                json!({"mode": "maildir", "files": files, "elapsed_s": t.elapsed().as_secs_f64()}),
            );
            Ok(())
        }
        Mode::FreePort => {
            let l = TcpListener::bind("127.0.0.1:0")?;
            println!("{}", l.local_addr()?.port());
            Ok(())
        }
    }
}

/// Prints one JSON line.
fn emit(v: Value) {
    println!("{v}");
}

/// The connection target from the common options.
fn target(c: &Common) -> Result<Target> {
    let tls = if c.tls {
        let ca = c.ca.as_deref().context("--tls needs --ca FILE")?;
        Some(pop::tls_config(ca, c.tls_resume)?)
    } else {
        None
    };
    Ok(Target {
        addr: c.addr,
        tls,
        server_name: rustls::pki_types::ServerName::try_from(c.server_name.clone())
            .context("--server-name")?,
    })
}

/// CPU counters at the start of a measurement.
struct Meter {
    wall: Instant,
    self_cpu: f64,
    server_pid: Option<u32>,
    server_cpu: f64,
}

impl Meter {
    fn start(server_pid: Option<u32>) -> Meter {
        Meter {
            wall: Instant::now(),
            self_cpu: procfs::self_cpu(),
            server_pid,
            server_cpu: server_pid.map_or(0.0, procfs::tree_cpu),
        }
    }

    /// Adds elapsed time and CPU figures to `v`; `units` is what to divide CPU by for per-unit
    /// figures (sessions, retrievals).
    fn finish(&self, v: &mut Value, units: u64) {
        let elapsed = self.wall.elapsed().as_secs_f64();
        let own = procfs::self_cpu() - self.self_cpu;
        v["elapsed_s"] = json!(round(elapsed, 4));
        v["loadgen_cpu_s"] = json!(round(own, 3));
        // Percent of one core; 200 on a 2-core machine would mean the generator used everything.
        v["loadgen_cpu_pct"] = json!(round(100.0 * own / elapsed.max(1e-9), 1));
        if let Some(pid) = self.server_pid {
            let server = procfs::tree_cpu(pid) - self.server_cpu;
            v["server_cpu_s"] = json!(round(server, 3));
            v["server_cpu_pct"] = json!(round(100.0 * server / elapsed.max(1e-9), 1));
            if units > 0 {
                v["server_cpu_per_unit_ms"] = json!(round(1000.0 * server / units as f64, 4));
            }
        }
        if units > 0 {
            v["loadgen_cpu_per_unit_ms"] = json!(round(1000.0 * own / units as f64, 4));
        }
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// Percentiles (in milliseconds) of durations in microseconds.
fn percentiles(mut us: Vec<u32>) -> Value {
    if us.is_empty() {
        return Value::Null;
    }
    us.sort_unstable();
    let at = |q: f64| {
        let i = ((us.len() - 1) as f64 * q).round() as usize;
        round(f64::from(us[i]) / 1000.0, 3)
    };
    json!({"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": at(1.0)})
}

fn base(mode: &str, c: &Common) -> Value {
    json!({"mode": mode, "label": c.label, "tls": c.tls})
}

/// Where a dropped session closes its connection (see `SessionArgs::disconnect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DropAt {
    BeforeGreeting,
    AfterUser,
    PassUnanswered,
    MidList,
    MidRetr,
    AfterDele,
}

const DROPS: [DropAt; 6] = [
    DropAt::BeforeGreeting,
    DropAt::AfterUser,
    DropAt::PassUnanswered,
    DropAt::MidList,
    DropAt::MidRetr,
    DropAt::AfterDele,
];

/// One full session for the `session` mode on a connected client; `drop` ends it early by
/// closing the socket (which is what dropping the client does), `Ok(false)` then.
async fn one_session<S: Conn>(
    mut c: Client<S>,
    user: &str,
    pass: &str,
    retr: bool,
    drop: Option<DropAt>,
) -> Result<bool> {
    if drop == Some(DropAt::BeforeGreeting) {
        return Ok(false);
    }
    c.greeting().await?;
    c.simple(format!("USER {user}\r\n").as_bytes(), "USER")
        .await?;
    if drop == Some(DropAt::AfterUser) {
        return Ok(false);
    }
    c.send(format!("PASS {pass}\r\n").as_bytes()).await?;
    if drop == Some(DropAt::PassUnanswered) {
        return Ok(false);
    }
    c.status_text("PASS").await?;
    let n: u64 = {
        c.send(b"STAT\r\n").await?;
        let line = c.status_text("STAT").await?;
        line.split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    if drop == Some(DropAt::MidList) {
        c.send(b"LIST\r\n").await?;
        return Ok(false);
    }
    c.multi(b"LIST\r\n", "LIST").await?;
    c.multi(b"UIDL\r\n", "UIDL").await?;
    if drop == Some(DropAt::MidRetr) && n > 0 {
        c.send(b"RETR 1\r\n").await?;
        return Ok(false);
    }
    if retr {
        for i in 1..=n {
            c.multi(format!("RETR {i}\r\n").as_bytes(), "RETR").await?;
        }
    }
    if drop.is_some() {
        // AfterDele (and MidRetr on an empty mailbox): a DELE that no QUIT ever commits.
        if n > 0 {
            c.simple(b"DELE 1\r\n", "DELE").await?;
        }
        return Ok(false);
    }
    c.quit().await?;
    Ok(true)
}

/// Per-slot results.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    dropped: u64,
    in_use: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.latencies_us.extend(other.latencies_us);
        self.errors += other.errors;
        self.dropped += other.dropped;
        self.in_use += other.in_use;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// From this many concurrent sessions up, the `session` mode runs them as tasks on one event loop
/// per CPU (smol's executor over non-blocking sockets) instead of a blocking thread each: with
/// many connections one wait collects several answers, where a thread each sleeps and wakes per
/// answer. Measured against Poppet on this 2-CPU machine (SHA512-CRYPT users, A/B alternating):
/// the generator's CPU per session is about a fifth lower with loops at 64 and 256 sessions
/// (0.08-0.10 against 0.10-0.13 ms), and the session rate at 256 a few percent higher (1,645-1,675
/// against 1,590-1,628 per second; TLS 1,247-1,272 against 1,175-1,202 with two loops). At 16 the
/// rates were as good or better with threads (TLS 1,189-1,202 against 1,108-1,148 on one loop),
/// and with one or two sessions there is nothing to batch. One loop per CPU rather than one in all,
/// so that next to a server whose hash checks keep every CPU busy, the generator's share of the
/// CPUs does not shrink to one thread's.
const EVENT_LOOP_FROM: u32 = 64;

/// One concurrent session slot: which mailboxes it uses, and its share of the run.
struct Slot {
    index: u32,
    concurrency: u32,
    users: u32,
    /// With --disconnect the slot moves on to the next of its mailboxes after every session, so
    /// the server's cleanup of a dropped session is not raced by the same slot's next login.
    rotate: bool,
    pattern: String,
    pass: String,
    retr: bool,
    disconnect: f64,
    rng: StdRng,
    started: Arc<AtomicU64>,
    limit: u64,
    deadline: Instant,
}

impl Slot {
    /// Runs sessions one after another until the deadline or the run's session limit.
    async fn run<S, F, Fut>(mut self, connect: F) -> Tally
    where
        S: Conn,
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Client<S>>>,
    {
        let mut tally = Tally::default();
        let mut round = 0u32;
        while Instant::now() < self.deadline
            && self.started.fetch_add(1, Ordering::Relaxed) < self.limit
        {
            let t0 = Instant::now();
            let drop = (self.disconnect > 0.0 && self.rng.random_bool(self.disconnect.min(1.0)))
                .then(|| DROPS[self.rng.random_range(0..DROPS.len())]);
            // Each slot starts on its own mailbox (POP3 locks one per session).
            let k = if self.rotate {
                (self.index + round * self.concurrency) % self.users
            } else {
                self.index % self.users
            };
            round = round.wrapping_add(1);
            let user = self.pattern.replace("{}", &k.to_string());
            let outcome = match connect().await {
                Ok(c) => one_session(c, &user, &self.pass, self.retr, drop).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(false) => tally.dropped += 1,
                Ok(true) => tally
                    .latencies_us
                    .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32),
                // With --disconnect: the mailbox still locked by a dropped session the server
                // has not yet seen close, POP3's exclusive lock working, not a failure.
                // Without, an error as before (the benchmark fails on any).
                Err(e) if self.disconnect > 0.0 && format!("{e:#}").contains("[IN-USE]") => {
                    tally.in_use += 1;
                }
                Err(e) => {
                    tally.errors += 1;
                    tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                    // A refused connection must not turn into a busy loop.
                    smol::Timer::after(Duration::from_millis(10)).await;
                }
            }
        }
        tally
    }
}

/// Runs `slots` as tasks on this thread until all are done, or fails once they overrun the end
/// of the run by [`pop::IO_TIMEOUT`] (one bound in place of the blocking sockets' per-call ones).
fn event_loop(slots: Vec<Slot>, target: &Target, deadline: Instant) -> Result<Tally> {
    let ex = smol::LocalExecutor::new();
    let tasks: Vec<_> = slots
        .into_iter()
        .map(|slot| ex.spawn(slot.run(move || Client::connect_evented(target, pop::SESSION_BUF))))
        .collect();
    let run = ex.run(async {
        let mut all = Tally::default();
        for task in tasks {
            all.add(task.await);
        }
        Ok(all)
    });
    let overdue = async {
        smol::Timer::at(deadline + pop::IO_TIMEOUT).await;
        bail!(
            "sessions still running {}s after the end of the run",
            pop::IO_TIMEOUT.as_secs()
        )
    };
    smol::block_on(smol::future::or(run, overdue))
}

fn session(a: &SessionArgs) -> Result<()> {
    let target = target(&a.common)?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
    let started = Arc::new(AtomicU64::new(0));
    let seed = a.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let users = a.users.max(1);
    let slots = (0..a.concurrency).map(|index| Slot {
        index,
        concurrency: a.concurrency,
        users,
        rotate: a.disconnect > 0.0 && users > a.concurrency,
        pattern: a.user_pattern.clone(),
        pass: a.common.password.clone(),
        retr: a.retr,
        disconnect: a.disconnect,
        rng: StdRng::seed_from_u64(seed ^ u64::from(index)),
        started: Arc::clone(&started),
        limit: a.count.unwrap_or(u64::MAX),
        deadline,
    });
    let meter = Meter::start(a.common.server_pid);
    let mut all = Tally::default();
    // Event loops (0: a blocking thread per session).
    let loops = if a.concurrency >= EVENT_LOOP_FROM {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(a.concurrency as usize)
    } else {
        0
    };
    let handles: Vec<std::thread::JoinHandle<Result<Tally>>> = if loops > 0 {
        let mut shares: Vec<Vec<Slot>> = (0..loops).map(|_| Vec::new()).collect();
        for (i, slot) in slots.enumerate() {
            shares[i % loops].push(slot);
        }
        shares
            .into_iter()
            .map(|share| {
                let target = target.clone();
                std::thread::spawn(move || event_loop(share, &target, deadline))
            })
            .collect()
    } else {
        slots
            .map(|slot| {
                let target = target.clone();
                std::thread::spawn(move || {
                    let connect = || std::future::ready(Client::connect(&target, pop::SESSION_BUF));
                    Ok(smol::block_on(slot.run(connect)))
                })
            })
            .collect()
    };
    for h in handles {
        all.add(
            h.join()
                .map_err(|_| anyhow::anyhow!("session thread panicked"))??,
        );
    }
    let sessions = all.latencies_us.len() as u64;
    let mut v = base("session", &a.common);
    meter.finish(&mut v, sessions);
    let elapsed = v["elapsed_s"].as_f64().unwrap_or(1.0);
    v["concurrency"] = json!(a.concurrency);
    v["event_loops"] = json!(loops);
    v["sessions"] = json!(sessions);
    v["errors"] = json!(all.errors);
    v["dropped"] = json!(all.dropped);
    v["in_use"] = json!(all.in_use);
    v["seed"] = json!(seed);
    v["sessions_per_s"] = json!(round(sessions as f64 / elapsed, 1));
    v["latency_ms"] = percentiles(all.latencies_us);
    if let Some(e) = all.first_error {
        v["first_error"] = json!(e);
    }
    emit(v);
    Ok(())
}

fn retr(a: &RetrArgs) -> Result<()> {
    let target = target(&a.common)?;
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
    let limit = a.count.unwrap_or(u64::MAX);
    let meter = Meter::start(a.common.server_pid);
    let mut bytes: u64 = 0;
    let mut messages: u64 = 0;
    let mut sessions: u64 = 0;
    let mut retr_time = Duration::ZERO;
    // The blocking client never waits in the executor: `block_on` polls each call once.
    let cipher = smol::block_on(async {
        Ok::<_, anyhow::Error>(match (a.msg, a.all) {
            (Some(n), false) => {
                let mut c = Client::connect(&target, pop::BUF)?;
                c.greeting().await?;
                c.login(&a.user, &a.common.password).await?;
                let cipher = c.cipher_suite();
                let command = format!("RETR {n}\r\n");
                let t0 = Instant::now();
                loop {
                    bytes += c.multi(command.as_bytes(), "RETR").await?;
                    messages += 1;
                    if Instant::now() >= deadline || messages >= limit {
                        break;
                    }
                }
                retr_time = t0.elapsed();
                c.quit().await?;
                sessions = 1;
                cipher
            }
            (None, true) => loop {
                let mut c = Client::connect(&target, pop::BUF)?;
                c.greeting().await?;
                c.login(&a.user, &a.common.password).await?;
                let cipher = c.cipher_suite();
                c.send(b"STAT\r\n").await?;
                let stat = c.status_text("STAT").await?;
                let total: u32 = stat
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse().ok())
                    .with_context(|| format!("cannot read the message count in {stat:?}"))?;
                let t0 = Instant::now();
                let mut sent = 0u32;
                let mut done = 0u32;
                let mut commands = Vec::with_capacity(16 * a.window as usize);
                while done < total {
                    // Keep up to `window` commands in flight; top up when half have been answered.
                    if sent < total && sent - done <= a.window / 2 {
                        commands.clear();
                        while sent < total && sent - done < a.window.max(1) {
                            sent += 1;
                            commands.extend_from_slice(format!("RETR {sent}\r\n").as_bytes());
                        }
                        c.send(&commands).await?;
                    }
                    bytes += c.read_multi("RETR").await?;
                    done += 1;
                }
                retr_time += t0.elapsed();
                messages += u64::from(total);
                c.quit().await?;
                sessions += 1;
                if Instant::now() >= deadline || sessions >= limit {
                    break cipher;
                }
            },
            _ => bail!("give --msg N or --all"),
        })
    })?;
    let mut v = base("retr", &a.common);
    meter.finish(&mut v, messages);
    let secs = retr_time.as_secs_f64().max(1e-9);
    v["user"] = json!(a.user);
    v["msg"] = json!(a.msg);
    v["sessions"] = json!(sessions);
    v["messages"] = json!(messages);
    v["bytes"] = json!(bytes);
    v["retr_s"] = json!(round(secs, 4));
    v["mib_per_s"] = json!(round(bytes as f64 / secs / 1048576.0, 1));
    v["messages_per_s"] = json!(round(messages as f64 / secs, 1));
    if let Some(c) = cipher {
        v["cipher"] = json!(c);
    }
    emit(v);
    Ok(())
}

fn open(a: &OpenArgs) -> Result<()> {
    let target = target(&a.common)?;
    smol::block_on(async {
        for s in 1..=a.sessions {
            let meter = Meter::start(a.common.server_pid);
            let mut retries = 0u32;
            // Poppet releases the POP3 lock after answering QUIT; wait briefly for it (bounded).
            let (mut c, took, stat) = loop {
                let mut c = Client::connect(&target, pop::BUF)?;
                c.greeting().await?;
                c.simple(format!("USER {}\r\n", a.user).as_bytes(), "USER")
                    .await?;
                let t0 = Instant::now();
                c.send(format!("PASS {}\r\n", a.common.password).as_bytes())
                    .await?;
                match c.status_text("PASS").await {
                    Ok(_) => {}
                    Err(e) if format!("{e}").contains("IN-USE") && retries < 250 => {
                        retries += 1;
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
                let pass = t0.elapsed();
                c.send(b"STAT\r\n").await?;
                let stat = c.status_text("STAT").await?;
                break (c, (pass, t0.elapsed()), stat);
            };
            c.simple(b"NOOP\r\n", "NOOP").await?;
            let messages: u64 = stat
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut v = base("open", &a.common);
            v["user"] = json!(a.user);
            v["session"] = json!(s);
            v["messages"] = json!(messages);
            v["pass_ms"] = json!(round(took.0.as_secs_f64() * 1000.0, 3));
            v["open_ms"] = json!(round(took.1.as_secs_f64() * 1000.0, 3));
            v["in_use_retries"] = json!(retries);
            meter.finish(&mut v, 1);
            c.quit().await?;
            emit(v);
        }
        Ok(())
    })
}

fn idle(a: &IdleArgs) -> Result<()> {
    let target = target(&a.common)?;
    let pid = a.common.server_pid;
    let before = pid.map(procfs::tree_memory).unwrap_or_default();
    let meter = Meter::start(pid);
    let next = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for _ in 0..a.threads.max(1) {
        let target = target.clone();
        let next = Arc::clone(&next);
        let pattern = a.user_pattern.clone();
        let pass = a.common.password.clone();
        let n = u64::from(a.connections);
        handles.push(std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let user = pattern.replace("{}", &i.to_string());
                let t0 = Instant::now();
                let r = Client::connect(&target, 4096).and_then(|mut c| {
                    smol::block_on(async {
                        c.greeting().await?;
                        c.login(&user, &pass).await
                    })?;
                    Ok(c)
                });
                match r {
                    Ok(c) => {
                        tally
                            .latencies_us
                            .push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                        held.push(c);
                    }
                    Err(e) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (held, tally)
        }));
    }
    let mut held = Vec::new();
    let mut all = Tally::default();
    for h in handles {
        let (c, t) = h
            .join()
            .map_err(|_| anyhow::anyhow!("login thread panicked"))?;
        held.extend(c);
        all.latencies_us.extend(t.latencies_us);
        all.errors += t.errors;
        if all.first_error.is_none() {
            all.first_error = t.first_error;
        }
    }
    let login_s = meter.wall.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs_f64(a.settle));
    let after = pid.map(procfs::tree_memory).unwrap_or_default();
    let open = held.len() as u64;
    let mut v = base("idle", &a.common);
    meter.finish(&mut v, open);
    v["connections"] = json!(open);
    v["errors"] = json!(all.errors);
    v["login_s"] = json!(round(login_s, 3));
    v["login_latency_ms"] = percentiles(all.latencies_us);
    if let Some(e) = all.first_error {
        v["first_error"] = json!(e);
    }
    if pid.is_some() {
        let per = |x: u64, y: u64| round((x as f64 - y as f64) / open.max(1) as f64, 2);
        v["processes_before"] = json!(before.processes);
        v["processes_after"] = json!(after.processes);
        v["rss_before_kib"] = json!(before.rss_kib);
        v["rss_after_kib"] = json!(after.rss_kib);
        v["pss_before_kib"] = json!(before.pss_kib);
        v["pss_after_kib"] = json!(after.pss_kib);
        v["rss_per_conn_kib"] = json!(per(after.rss_kib, before.rss_kib));
        v["pss_per_conn_kib"] = json!(per(after.pss_kib, before.pss_kib));
    }
    emit(v);
    std::thread::sleep(Duration::from_secs_f64(a.hold));
    drop(held);
    Ok(())
}

fn ceiling(a: &CeilingArgs) -> Result<()> {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let file = a.file.clone();
    let buffer = a.buffer.max(4096);
    // The "server": per request line, open the file and copy it with read/write, then the
    // terminator, exactly the bytes a server adds to a message with no dot lines.
    let server = std::thread::spawn(move || -> Result<()> {
        let (mut sock, _) = listener.accept()?;
        sock.set_nodelay(true)?;
        let mut buf = vec![0u8; buffer];
        let mut line = [0u8; 64];
        sock.write_all(b"+OK ceiling\r\n")?;
        loop {
            let n = sock.read(&mut line)?;
            if n == 0 || line[..n].starts_with(b"QUIT") {
                sock.write_all(b"+OK\r\n")?;
                return Ok(());
            }
            sock.write_all(b"+OK\r\n")?;
            let mut f = std::fs::File::open(&file)?;
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                sock.write_all(&buf[..n])?;
            }
            sock.write_all(b"\r\n.\r\n")?;
        }
    });
    let target = Target {
        addr,
        tls: None,
        server_name: rustls::pki_types::ServerName::try_from("localhost")?,
    };
    let deadline = Instant::now() + Duration::from_secs_f64(a.duration);
    let meter = Meter::start(None);
    let mut c = Client::connect(&target, pop::BUF)?;
    let (bytes, copies, secs) = smol::block_on(async {
        c.greeting().await?;
        let t0 = Instant::now();
        let mut bytes = 0;
        let mut copies = 0u64;
        loop {
            bytes += c.multi(b"RETR\r\n", "copy").await?;
            copies += 1;
            if Instant::now() >= deadline {
                break;
            }
        }
        let secs = t0.elapsed().as_secs_f64().max(1e-9);
        c.quit().await?;
        Ok::<_, anyhow::Error>((bytes, copies, secs))
    })?;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("copy thread panicked"))??;
    let mut v = json!({"mode": "ceiling", "label": a.label, "tls": false});
    // Includes the in-process "server" thread: this is the whole copy's CPU.
    meter.finish(&mut v, copies);
    v["file"] = json!(a.file.display().to_string());
    v["messages"] = json!(copies);
    v["bytes"] = json!(bytes);
    v["retr_s"] = json!(round(secs, 4));
    v["mib_per_s"] = json!(round(bytes as f64 / secs / 1048576.0, 1));
    emit(v);
    Ok(())
}

fn hash_ceiling(a: &HashCeilingArgs) -> Result<()> {
    let hash = poppet_password::PasswordHash::parse(&a.hash)
        .map_err(|err| anyhow::anyhow!("--hash: {err}"))?;
    let threads = match a.threads {
        Some(n) => n.max(1),
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let hash = Arc::new(hash);
    let password = Arc::new(a.password.clone());
    let meter = Meter::start(None);
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(a.duration);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (hash, password) = (Arc::clone(&hash), Arc::clone(&password));
            std::thread::spawn(move || -> Result<u64> {
                let mut checks = 0u64;
                loop {
                    if !poppet_password::verify(&hash, password.as_bytes()) {
                        bail!("the password does not match --hash");
                    }
                    checks += 1;
                    if Instant::now() >= deadline {
                        return Ok(checks);
                    }
                }
            })
        })
        .collect();
    let mut checks = 0;
    for worker in workers {
        checks += worker
            .join()
            .map_err(|_| anyhow::anyhow!("hash thread panicked"))??;
    }
    // The slowest thread's last check ends the run.
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let mut v = json!({"mode": "hash_ceiling", "label": a.label, "tls": false});
    meter.finish(&mut v, checks);
    v["scheme"] = json!(hash.scheme().name());
    v["threads"] = json!(threads);
    v["checks"] = json!(checks);
    // Named like the session workloads' rate: one check per login is what a session needs.
    v["sessions_per_s"] = json!(round(checks as f64 / secs, 1));
    emit(v);
    Ok(())
}
