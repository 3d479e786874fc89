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
use std::sync::{Arc, Mutex};

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

/// Serves `listeners` until `stop` completes, then shuts down gracefully.
pub async fn run(
    ex: Arc<Executor<'static>>,
    shared: Arc<Shared>,
    listeners: Vec<TcpListener>,
    stop: impl Future<Output = ()>,
) {
    let (shutdown_tx, shutdown_rx) = smol::channel::bounded::<()>(1);
    // Every session holds a clone of `alive_tx`; when all are gone, `alive_rx` reports closed.
    let (alive_tx, alive_rx) = smol::channel::bounded::<()>(1);
    let slots = Arc::new(Slots::default());
    let ids = Arc::new(AtomicU64::new(1));
    let configs = shared.config.listeners.clone();
    let accept_tasks: Vec<smol::Task<()>> = listeners
        .into_iter()
        .zip(configs)
        .map(|(listener, listener_config)| {
            let ctx = AcceptContext {
                ex: Arc::clone(&ex),
                shared: Arc::clone(&shared),
                slots: Arc::clone(&slots),
                ids: Arc::clone(&ids),
                shutdown: shutdown_rx.clone(),
                alive: alive_tx.clone(),
            };
            ex.spawn(accept_loop(ctx, listener, listener_config))
        })
        .collect();
    stop.await;
    // Dropping the tasks cancels the accept loops and closes the listening sockets.
    drop(accept_tasks);
    log::info!("shutting down: no new connections; sessions end at their next command");
    drop(shutdown_tx);
    drop(alive_tx);
    let grace = shared.config.limits.shutdown_grace;
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

/// What every accept loop shares.
struct AcceptContext {
    ex: Arc<Executor<'static>>,
    shared: Arc<Shared>,
    slots: Arc<Slots>,
    ids: Arc<AtomicU64>,
    shutdown: smol::channel::Receiver<()>,
    /// Cloned into every session; the server waits for all clones to go at shutdown.
    alive: smol::channel::Sender<()>,
}

async fn accept_loop(ctx: AcceptContext, listener: TcpListener, listener_config: Listener) {
    let AcceptContext {
        ex,
        shared,
        slots,
        ids,
        shutdown,
        alive,
    } = ctx;
    let limits = shared.config.limits.clone();
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
        let id = ids.fetch_add(1, Ordering::Relaxed);
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
                ex.spawn(refuse(stream, line)).detach();
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let refuses_plaintext = match listener_config.plaintext_auth {
            PlaintextAuth::Never => true,
            PlaintextAuth::Loopback => !is_loopback(peer.ip()),
            PlaintextAuth::Always => false,
        };
        let conn = Connection {
            id,
            peer,
            local,
            tls: None,
            stls_offered: listener_config.tls == TlsMode::Starttls && shared.tls.is_some(),
            plaintext_refused_without_tls: refuses_plaintext,
        };
        log::debug!("session {id}: connected rip={} lip={local}", peer.ip());
        let shared = Arc::clone(&shared);
        let shutdown = shutdown.clone();
        let alive = alive.clone();
        let implicit_tls = listener_config.tls == TlsMode::Implicit;
        ex.spawn(async move {
            let mut stream = Stream::Plain(stream);
            let mut conn = conn;
            if implicit_tls {
                match implicit_handshake(&mut stream, &shared).await {
                    Ok(info) => conn.tls = Some(info),
                    Err(e) => {
                        log::info!("session {id}: TLS handshake failed rip={}: {e}", peer.ip());
                        return;
                    }
                }
            }
            session::run(stream, conn, &shared, shutdown).await;
            drop(slot);
            drop(alive);
        })
        .detach();
    }
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
