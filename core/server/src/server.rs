//! The accept loop: connection caps, one task per session, graceful shutdown.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

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
    ex: Arc<Executor<'static>>,
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    control: smol::channel::Receiver<Control>,
    loader: Loader,
) {
    let (shutdown_tx, shutdown_rx) = smol::channel::bounded::<()>(1);
    // Every session holds a clone of `alive_tx`; when all are gone, `alive_rx` reports closed.
    let (alive_tx, alive_rx) = smol::channel::bounded::<()>(1);
    let ctx = AcceptContext {
        ex: Arc::clone(&ex),
        current: Arc::new(RwLock::new(Arc::clone(&shared))),
        slots: Arc::new(Slots::default()),
        ids: Arc::new(AtomicU64::new(1)),
        shutdown: shutdown_rx,
        alive: alive_tx,
    };
    let mut tasks: HashMap<ListenerKey, smol::Task<()>> = HashMap::new();
    for (listener, key) in listeners.into_iter().zip(listener_keys(&shared.config)) {
        tasks.insert(key, ex.spawn(accept_loop(ctx.clone(), listener, key)));
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
                tasks.insert(key, ctx.ex.spawn(accept_loop(ctx.clone(), listener, key)));
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
    ex: Arc<Executor<'static>>,
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
        ex,
        current,
        slots,
        ids,
        shutdown,
        alive,
    } = ctx;
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
        ex.spawn(async move {
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
    let _ = stream.set_nodelay(true);
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
