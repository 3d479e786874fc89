//! The accept loop: connection caps, one task per session, graceful shutdown.
//!
//! Sessions run on [`Workers`]: one executor per worker thread, each session on one of them for its
//! whole life.
//!
//! `run` takes already-bound listeners (so tests and the CLI can bind port 0 and learn the port) and a
//! stop future. On stop it closes the listeners, tells sessions to end at their next wait for input
//! (idle ones at once), waits up to `shutdown_grace` for busy ones, and then drops whatever is left:
//! a dropped session commits nothing.

use crate::config::{Listener, PlaintextAuth, TlsMode};
use crate::session::{self, Connection};
use crate::shared::Shared;
use crate::stream::Stream;
use crate::tls::TlsInfo;
use futures_lite::{AsyncWriteExt, future};
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Timer};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The executors the server runs on, one per worker thread; the first is the main thread's, which
/// also runs the accept loops and the control tasks.
///
/// A session stays on the executor it was given, so its task, its buffers and its socket stay on
/// one thread, and a wake-up (a plugin's pool job done, the socket ready) goes to that thread only.
/// With one executor shared by all threads a task woke on whichever thread was free, and a message
/// being streamed moved between cores with it: one executor per thread made RETRs of a 50 MiB
/// message 13% faster in the benchmark (2,283 -> 2,574 MiB/s, 3 alternating runs). The price is
/// that threads do not take over each other's sessions: each new session goes to the executor with
/// the fewest, which evens out the load when there are many, as in a server of one process per
/// CPU.
#[derive(Debug)]
pub struct Workers {
    executors: Vec<(Arc<Executor<'static>>, Arc<AtomicUsize>)>,
}

impl Workers {
    /// `threads` executors (at least one).
    pub fn new(threads: usize) -> Workers {
        Workers {
            executors: (0..threads.max(1))
                .map(|_| (Arc::new(Executor::new()), Arc::default()))
                .collect(),
        }
    }

    /// How many executors (and worker threads) there are.
    pub fn threads(&self) -> usize {
        self.executors.len()
    }

    /// Runs executors `from..threads()` on threads of their own until `stop` closes (or sends);
    /// the caller runs those before `from` (the main thread runs executor 0).
    pub fn run_threads(
        &self,
        from: usize,
        stop: &smol::channel::Receiver<()>,
    ) -> Vec<std::thread::JoinHandle<()>> {
        self.executors
            .iter()
            .skip(from)
            .map(|(ex, _)| {
                let (ex, stop) = (Arc::clone(ex), stop.clone());
                std::thread::spawn(move || {
                    let _ = smol::block_on(ex.run(stop.recv()));
                })
            })
            .collect()
    }

    /// The main thread's executor: accept loops and control tasks.
    pub fn main(&self) -> &Arc<Executor<'static>> {
        &self.executors[0].0
    }

    /// Sessions running on each executor, in order.
    pub fn sessions(&self) -> Vec<usize> {
        self.executors
            .iter()
            .map(|(_, n)| n.load(Ordering::Relaxed))
            .collect()
    }

    /// Runs a session on the executor with the fewest sessions. The session gets the guard that
    /// counts it there and holds it to its end: a wrapping `async` block that held the guard and
    /// awaited the session stored the session's state twice (once as the captured future, once as
    /// the future being awaited), 5 KiB more per idle connection.
    fn spawn_session<F: Future<Output = ()> + Send + 'static>(
        &self,
        session: impl FnOnce(Counted) -> F,
    ) -> smol::Task<()> {
        let (ex, count) = self
            .executors
            .iter()
            .min_by_key(|(_, n)| n.load(Ordering::Relaxed))
            .unwrap_or(&self.executors[0]);
        ex.spawn(session(Counted::new(Arc::clone(count))))
    }
}

/// One session counted on its executor, until dropped.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(count: Arc<AtomicUsize>) -> Counted {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts connections in total and per client address.
#[derive(Debug, Default)]
struct Slots {
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

/// Why a connection was turned away.
enum Refusal {
    Total,
    PerIp,
}

/// A held connection slot; released on drop.
struct Slot {
    slots: Arc<Slots>,
    ip: IpAddr,
}

impl Slots {
    fn take(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: u32,
        max_per_ip: u32,
    ) -> Result<Slot, Refusal> {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let total: u32 = map.values().sum();
        if total >= max_total {
            return Err(Refusal::Total);
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            return Err(Refusal::PerIp);
        }
        *n += 1;
        Ok(Slot {
            slots: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.slots.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// What the server is told to do from outside (signals, the config watcher).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Stop gracefully.
    Stop,
    /// Re-read the config and apply it to new sessions.
    Reload,
}

/// Builds a new generation of settings from the config file (parse, validate, load plugins, read
/// certificates). It runs on a blocking thread.
pub type Loader = Arc<dyn Fn() -> anyhow::Result<Shared> + Send + Sync>;

/// Prints `listening on ADDR` on stdout (and in the log), so scripts and tests learn ports chosen
/// with port 0.
pub fn announce(addr: SocketAddr) {
    use std::io::Write as _;
    log::info!("listening on {addr}");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

/// Serves until told to stop, then shuts down gracefully. `listeners` are already bound, in the order
/// of `shared.config.listeners`.
///
/// On [`Control::Reload`] the loader builds a complete new generation first; if anything is wrong the
/// running one stays and the error is logged. Otherwise listeners that disappeared are closed, new
/// ones are bound, and new sessions use the new settings, while running sessions finish on the
/// settings they started with (each holds its generation).
pub async fn run(
    workers: Arc<Workers>,
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    control: smol::channel::Receiver<Control>,
    loader: Loader,
) {
    let (shutdown_tx, shutdown_rx) = smol::channel::bounded::<()>(1);
    // Every session holds a clone of `alive_tx`; when all are gone, `alive_rx` reports closed.
    let (alive_tx, alive_rx) = smol::channel::bounded::<()>(1);
    let ctx = AcceptContext {
        workers: Arc::clone(&workers),
        current: Arc::new(RwLock::new(Arc::clone(&shared))),
        slots: Arc::new(Slots::default()),
        ids: Arc::new(AtomicU64::new(1)),
        shutdown: shutdown_rx,
        alive: alive_tx,
    };
    let mut tasks: HashMap<ListenerKey, smol::Task<()>> = HashMap::new();
    for (listener, key) in listeners.into_iter().zip(listener_keys(&shared.config)) {
        let accept = accept_loop(ctx.clone(), listener, key);
        tasks.insert(key, workers.main().spawn(accept));
    }
    crate::systemd::notify("READY=1");
    while let Ok(Control::Reload) = control.recv().await {
        crate::systemd::notify("RELOADING=1");
        let loader = Arc::clone(&loader);
        match blocking::unblock(move || loader()).await {
            Ok(next) => apply(&ctx, &mut tasks, Arc::new(next)).await,
            Err(e) => log::error!("reload failed; still serving the previous config: {e:#}"),
        }
        crate::systemd::notify("READY=1");
    }
    crate::systemd::notify("STOPPING=1");
    // Dropping the tasks cancels the accept loops and closes the listening sockets.
    drop(tasks);
    log::info!("shutting down: no new connections; sessions end at their next command");
    drop(shutdown_tx);
    let grace = read(&ctx.current).config.limits.shutdown_grace;
    drop(ctx);
    let finished = future::or(async { alive_rx.recv().await.is_err() }, async {
        Timer::after(grace).await;
        false
    })
    .await;
    if !finished {
        log::warn!(
            "shutdown: sessions still busy after {grace:?} were cut; they committed nothing"
        );
    }
}

/// Identifies a configured listener across reloads: its address, and which of the listeners with that
/// same address it is (several `127.0.0.1:0` entries are different listeners).
type ListenerKey = (SocketAddr, usize);

fn listener_keys(config: &crate::config::Config) -> Vec<ListenerKey> {
    let mut keys: Vec<ListenerKey> = Vec::new();
    for l in &config.listeners {
        let n = keys.iter().filter(|(a, _)| *a == l.address).count();
        keys.push((l.address, n));
    }
    keys
}

fn read(current: &RwLock<Arc<Shared>>) -> Arc<Shared> {
    Arc::clone(&current.read().unwrap_or_else(|p| p.into_inner()))
}

/// Switches to a new generation: listeners closed, opened, and the settings new sessions get.
async fn apply(
    ctx: &AcceptContext,
    tasks: &mut HashMap<ListenerKey, smol::Task<()>>,
    next: Arc<Shared>,
) {
    let wanted = listener_keys(&next.config);
    tasks.retain(|key, _| {
        let keep = wanted.contains(key);
        if !keep {
            log::info!("reload: no longer listening on {}", key.0);
        }
        keep
    });
    *ctx.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&next);
    for key in wanted {
        if tasks.contains_key(&key) {
            continue;
        }
        let addr = key.0;
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                if let Ok(local) = listener.local_addr() {
                    announce(local);
                }
                let accept = accept_loop(ctx.clone(), listener, key);
                tasks.insert(key, ctx.workers.main().spawn(accept));
            }
            Err(e) => log::error!("reload: cannot listen on {addr}: {e}"),
        }
    }
    log::info!(
        "reloaded {}: new sessions use the new settings",
        next.config.path.display()
    );
}

/// What every accept loop shares.
#[derive(Clone)]
struct AcceptContext {
    workers: Arc<Workers>,
    /// The settings new sessions get; replaced on reload.
    current: Arc<RwLock<Arc<Shared>>>,
    slots: Arc<Slots>,
    ids: Arc<AtomicU64>,
    shutdown: smol::channel::Receiver<()>,
    /// Cloned into every session; the server waits for all clones to go at shutdown.
    alive: smol::channel::Sender<()>,
}

/// Accepts on one listener, known by its configured address, until cancelled.
async fn accept_loop(ctx: AcceptContext, listener: TcpListener, key: ListenerKey) {
    let AcceptContext {
        workers,
        current,
        slots,
        ids,
        shutdown,
        alive,
    } = ctx;
    // The `tcp_keepalive` the listener passes on to the connections it accepts.
    let mut passed_on = None;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: log, back off briefly, keep serving the sessions we have.
                log::error!("accept failed: {e}");
                Timer::after(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Each connection gets the settings current when it arrives, and keeps them to its end.
        let shared = read(&current);
        // Linux copies a listener's socket options to the connections it accepts, so they are set
        // there, once per settings generation, and no connection pays system calls for them; the
        // connection that brings new settings gets them itself.
        let keepalive = shared.config.limits.tcp_keepalive;
        if passed_on != Some(keepalive) {
            passed_on = Some(keepalive);
            for (what, result) in [
                ("listener", socket_options(&listener, keepalive)),
                ("connection", socket_options(&stream, keepalive)),
            ] {
                if let Err(e) = result {
                    log::warn!("{}: cannot set TCP options on the {what}: {e}", key.0);
                }
            }
        }
        let keys = listener_keys(&shared.config);
        let Some(listener_config) = keys
            .iter()
            .position(|k| *k == key)
            .map(|i| shared.config.listeners[i].clone())
        else {
            continue;
        };
        let id = ids.fetch_add(1, Ordering::Relaxed);
        shared.metrics().connection();
        let conn = Accepted {
            id,
            stream,
            peer,
            listener: listener_config,
            shared,
        };
        let (slots, shutdown, alive) = (Arc::clone(&slots), shutdown.clone(), alive.clone());
        workers
            .spawn_session(|counted| async move {
                let _counted = counted;
                if let Some((stream, conn, slot)) = prepare(conn, &slots).await {
                    let shared = Arc::clone(&conn.shared);
                    session::run(stream, conn.info, &shared, shutdown).await;
                    drop(slot);
                }
                drop(alive);
            })
            .detach();
    }
}

/// A connection just accepted, with the settings generation it belongs to.
struct Accepted {
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    listener: Listener,
    shared: Arc<Shared>,
}

/// A connection ready for its session.
struct Prepared {
    info: Connection,
    shared: Arc<Shared>,
}

/// Everything between accept and the greeting: the PROXY header (which says who the client really
/// is), the connection caps (per real client), and the implicit-TLS handshake. `None` means the
/// connection was refused or failed and is already logged.
async fn prepare(c: Accepted, slots: &Arc<Slots>) -> Option<(Stream, Prepared, Slot)> {
    let Accepted {
        id,
        mut stream,
        peer: tcp_peer,
        listener,
        shared,
    } = c;
    let limits = &shared.config.limits;
    let mut peer = tcp_peer;
    let mut proxied_tls = false;
    if let Some(trusted) = &listener.proxy_protocol {
        if !trusted.iter().any(|n| n.contains(&tcp_peer.ip())) {
            log::warn!(
                "session {id}: refused {tcp_peer}: not a trusted PROXY protocol sender for {}",
                listener.address
            );
            return None;
        }
        let header = future::or(
            async { Some(crate::proxy::read_header(&mut stream).await) },
            async {
                Timer::after(limits.login_timeout).await;
                None
            },
        )
        .await;
        match header {
            Some(Ok(p)) => {
                peer = p.client.unwrap_or(tcp_peer);
                proxied_tls = p.tls;
            }
            Some(Err(e)) => {
                log::warn!("session {id}: refused {tcp_peer}: {e}");
                return None;
            }
            None => {
                log::info!(
                    "session {id}: no PROXY header from {tcp_peer} within the login timeout"
                );
                return None;
            }
        }
    }
    let slot = match slots.take(
        peer.ip(),
        limits.max_connections,
        limits.max_connections_per_ip,
    ) {
        Ok(s) => s,
        Err(refusal) => {
            let (why, line) = match refusal {
                Refusal::Total => (
                    "server connection limit",
                    "-ERR [SYS/TEMP] too many connections, try again later\r\n",
                ),
                Refusal::PerIp => (
                    "per-address connection limit",
                    "-ERR [SYS/TEMP] too many connections from your address\r\n",
                ),
            };
            log::warn!("session {id}: refused rip={}: {why} reached", peer.ip());
            shared.metrics().refused();
            refuse(stream, line).await;
            return None;
        }
    };
    let local = stream
        .local_addr()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    let refuses_plaintext = match listener.plaintext_auth {
        PlaintextAuth::Never => true,
        PlaintextAuth::Loopback => !is_loopback(peer.ip()),
        PlaintextAuth::Always => false,
    };
    let mut info = Connection {
        id,
        peer,
        local,
        tls: proxied_tls.then(TlsInfo::terminated_by_proxy),
        stls_offered: listener.tls == TlsMode::Starttls && shared.tls.is_some() && !proxied_tls,
        plaintext_refused_without_tls: refuses_plaintext,
    };
    if peer == tcp_peer {
        log::debug!("session {id}: connected rip={} lip={local}", peer.ip());
    } else {
        log::debug!(
            "session {id}: connected rip={} via proxy {tcp_peer} lip={local}",
            peer.ip()
        );
    }
    let mut stream = Stream::Plain(stream);
    if listener.tls == TlsMode::Implicit && !proxied_tls {
        match implicit_handshake(&mut stream, &shared).await {
            Ok(tls) => info.tls = Some(tls),
            Err(e) => {
                log::info!("session {id}: TLS handshake failed rip={}: {e}", peer.ip());
                return None;
            }
        }
    }
    Some((stream, Prepared { info, shared }, slot))
}

/// The TCP options of a client connection, on `socket` (a listener passes them on): no Nagle
/// delay (replies are whole lines, and a pipelined batch is one write), and keepalive (see
/// `limits.tcp_keepalive`): after `keepalive` without a packet the kernel probes the client's host
/// a quarter of that apart, and after [`KEEPALIVE_PROBES`](crate::config::KEEPALIVE_PROBES)
/// unanswered probes the next read fails with `ETIMEDOUT`. Zero turns keepalive off.
fn socket_options(
    socket: &impl std::os::fd::AsFd,
    keepalive: std::time::Duration,
) -> nix::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    setsockopt(socket, sockopt::TcpNoDelay, &true)?;
    if keepalive.is_zero() {
        return setsockopt(socket, sockopt::KeepAlive, &false);
    }
    // The config allows 4 s to 9 h in whole seconds.
    let secs = u32::try_from(keepalive.as_secs()).unwrap_or(u32::MAX);
    setsockopt(socket, sockopt::TcpKeepIdle, &secs)?;
    setsockopt(socket, sockopt::TcpKeepInterval, &(secs / 4).max(1))?;
    let probes = crate::config::KEEPALIVE_PROBES;
    setsockopt(socket, sockopt::TcpKeepCount, &probes)?;
    setsockopt(socket, sockopt::KeepAlive, &true)
}

/// An IPv4-mapped IPv6 loopback (`::ffff:127.0.0.1`) counts as loopback too.
fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        IpAddr::V4(v4) => v4.is_loopback(),
    }
}

/// The handshake of an implicit-TLS listener, bounded by the login timeout.
async fn implicit_handshake(stream: &mut Stream, shared: &Shared) -> std::io::Result<TlsInfo> {
    let Some(acceptor) = shared.tls.clone() else {
        return Err(std::io::Error::other(
            "implicit TLS listener without a TLS configuration",
        ));
    };
    let timeout = shared.config.limits.login_timeout;
    future::or(stream.start_tls(&acceptor), async {
        Timer::after(timeout).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "handshake took too long",
        ))
    })
    .await
}

async fn refuse(mut stream: TcpStream, line: &'static str) {
    let _ = stream.write_all(line.as_bytes()).await;
    let _ = stream.close().await;
}

#[cfg(test)]
mod tests {
    use super::Workers;
    use std::sync::Arc;

    /// A connection accepted after the options were set on its listener has them (Linux copies
    /// them at accept), and setting them again with keepalive off turns it off.
    #[test]
    fn connections_inherit_the_tcp_options_set_on_their_listener() {
        use nix::sys::socket::{getsockopt, sockopt};
        use std::time::Duration;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let accept = |keepalive: Duration| {
            super::socket_options(&listener, keepalive).expect("set");
            let client = std::net::TcpStream::connect(listener.local_addr().expect("addr"));
            (client, listener.accept().expect("accept").0)
        };
        let (_client, on) = accept(Duration::from_secs(60));
        assert!(getsockopt(&on, sockopt::TcpNoDelay).expect("get"));
        assert!(getsockopt(&on, sockopt::KeepAlive).expect("get"));
        assert_eq!(getsockopt(&on, sockopt::TcpKeepIdle).expect("get"), 60);
        assert_eq!(getsockopt(&on, sockopt::TcpKeepInterval).expect("get"), 15);
        assert_eq!(getsockopt(&on, sockopt::TcpKeepCount).expect("get"), 4);
        let (_client, off) = accept(Duration::ZERO);
        assert!(getsockopt(&off, sockopt::TcpNoDelay).expect("get"));
        assert!(!getsockopt(&off, sockopt::KeepAlive).expect("get"));
    }

    #[test]
    fn sessions_go_to_the_least_busy_executor_and_stay_on_its_thread() {
        let workers = Arc::new(Workers::new(3));
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        let threads = workers.run_threads(0, &stop_rx);
        assert_eq!(threads.len(), workers.threads());
        let (release_tx, release_rx) = smol::channel::unbounded::<()>();
        let (stayed_tx, stayed_rx) = smol::channel::unbounded::<bool>();
        let spawn = |n: usize| -> Vec<smol::Task<()>> {
            (0..n)
                .map(|_| {
                    let (release, stayed) = (release_rx.clone(), stayed_tx.clone());
                    workers.spawn_session(|counted| async move {
                        let _counted = counted;
                        let first = std::thread::current().id();
                        // Woken from a pool thread, then by the test's thread.
                        blocking::unblock(|| ()).await;
                        let _ = release.recv().await;
                        let _ = stayed.send(std::thread::current().id() == first).await;
                    })
                })
                .collect()
        };
        let tasks = spawn(6);
        assert_eq!(workers.sessions(), [2, 2, 2]);
        for _ in 0..6 {
            release_tx.send_blocking(()).expect("release");
        }
        for task in tasks {
            smol::block_on(task);
        }
        assert_eq!(workers.sessions(), [0, 0, 0]);
        for _ in 0..6 {
            assert!(
                stayed_rx.recv_blocking().expect("report"),
                "a session moved threads"
            );
        }
        let tasks = spawn(4);
        assert_eq!(workers.sessions().iter().sum::<usize>(), 4);
        assert!(workers.sessions().iter().all(|&n| n == 1 || n == 2));
        for _ in 0..4 {
            release_tx.send_blocking(()).expect("release");
        }
        for task in tasks {
            smol::block_on(task);
        }
        drop(stop_tx);
        for t in threads {
            t.join().expect("executor thread");
        }
    }
}
