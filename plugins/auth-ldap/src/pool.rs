//! A bounded pool of LDAP connections that heals itself after the directory comes back.
//!
//! Why a pool: opening a connection costs a TCP handshake, often a TLS handshake and a bind, i.e.
//! several round trips, which a login should not pay each time. Why bounded: a burst of logins
//! must not turn into hundreds of connections to a directory that other services share; the
//! extra logins wait for a free connection, at most `connect_timeout`, then fail temporarily.
//!
//! Why it heals: a connection is only ever returned to the pool after an operation on it
//! succeeded (or failed with an LDAP result, which proves the connection works). One that failed
//! any other way (I/O error, timeout, the directory restarted) is dropped, and the next login
//! opens a fresh one. An idle connection that died meanwhile is noticed by ldap3
//! (`is_closed`) before it is handed out, and an operation that fails on a reused connection is
//! retried once on a new one (see [`crate::directory`]), so a restart of the directory costs no
//! login an error.
//!
//! Each connection is bound once, when it is opened, as the identity the pool was made for: the
//! service account (or anonymous) for searches. Binds as *users* change a connection's identity,
//! so they use a second pool whose connections are not bound in advance.

use crate::settings::{ServiceAccount, Settings};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError};
use poppet_sdk::PluginError;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A connection taken from a [`Pool`]. Give it back with [`Conn::release`] after a successful
/// operation; dropping it closes it.
pub struct Conn {
    ldap: ldap3::Ldap,
    pool: Arc<Shared>,
    /// Whether it came from the idle list (and so may have died unnoticed).
    pub reused: bool,
    _permit: OwnedSemaphorePermit,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("url", &self.pool.url)
            .field("reused", &self.reused)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// The ldap3 handle.
    pub fn ldap(&mut self) -> &mut ldap3::Ldap {
        &mut self.ldap
    }

    /// Puts the connection back for the next login (and frees its slot).
    pub fn release(self) {
        self.pool.idle().push(self.ldap);
    }
}

/// Where the pool connects and as whom.
struct Shared {
    url: String,
    conn_settings: LdapConnSettings,
    /// The service account (DN, password) each connection binds as when opened; `None` leaves
    /// it anonymous (RFC 4513 §5.1.1), for anonymous searches and for user binds.
    service: Option<ServiceAccount>,
    connect_timeout: Duration,
    bind_timeout: Duration,
    idle: Mutex<Vec<ldap3::Ldap>>,
}

impl Shared {
    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<ldap3::Ldap>> {
        // A panic while holding this lock cannot leave the list inconsistent (push and pop only).
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A bounded set of connections to one directory.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("url", &self.shared.url)
            .field("idle", &self.shared.idle().len())
            .field("available", &self.permits.available_permits())
            .finish()
    }
}

/// Why a connection could not be had.
#[derive(Debug)]
pub enum ConnectError {
    /// Every connection was busy for longer than the connect timeout.
    Exhausted,
    /// Connecting, the TLS handshake or the service bind failed.
    Ldap(LdapError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Exhausted => f.write_str("every connection to the directory is busy"),
            ConnectError::Ldap(err) => write!(f, "{err}"),
        }
    }
}

impl Pool {
    /// A pool of at most `size` connections, each bound as `service` when opened (`None`: left
    /// anonymous).
    pub fn new(
        settings: &Settings,
        conn_settings: LdapConnSettings,
        service: Option<ServiceAccount>,
        size: usize,
    ) -> Pool {
        Pool {
            shared: Arc::new(Shared {
                url: settings.endpoint.url.clone(),
                conn_settings,
                service,
                connect_timeout: settings.connect_timeout,
                bind_timeout: settings.bind_timeout,
                idle: Mutex::new(Vec::new()),
            }),
            permits: Arc::new(Semaphore::new(size)),
        }
    }

    /// A live connection: an idle one if there is one, else a new one. Waits at most the connect
    /// timeout for a free slot. Must run on the plugin's runtime (it spawns the connection's
    /// driver task there).
    pub async fn get(&self) -> Result<Conn, ConnectError> {
        let wait = self.shared.connect_timeout;
        let permit = tokio::time::timeout(wait, Arc::clone(&self.permits).acquire_owned())
            .await
            .map_err(|_| ConnectError::Exhausted)?
            .map_err(|_| ConnectError::Exhausted)?;
        self.get_with(permit, true).await
    }

    /// Like [`Pool::get`], but always a new connection: for the retry after a reused one failed.
    pub async fn fresh(&self, old: Conn) -> Result<Conn, ConnectError> {
        let Conn { _permit, .. } = old;
        self.get_with(_permit, false).await
    }

    async fn get_with(
        &self,
        permit: OwnedSemaphorePermit,
        reuse: bool,
    ) -> Result<Conn, ConnectError> {
        if reuse {
            while let Some(mut ldap) = self.shared.idle().pop() {
                if !ldap.is_closed() {
                    return Ok(Conn {
                        ldap,
                        pool: Arc::clone(&self.shared),
                        reused: true,
                        _permit: permit,
                    });
                }
            }
        }
        let ldap = self.connect().await.map_err(ConnectError::Ldap)?;
        Ok(Conn {
            ldap,
            pool: Arc::clone(&self.shared),
            reused: false,
            _permit: permit,
        })
    }

    async fn connect(&self) -> Result<ldap3::Ldap, LdapError> {
        let shared = &self.shared;
        // The connect timeout covers TCP, StartTLS and the TLS handshake.
        let settings = shared
            .conn_settings
            .clone()
            .set_conn_timeout(shared.connect_timeout);
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &shared.url).await?;
        // The connection's I/O runs as its own task on the plugin's runtime; it ends when the
        // last handle is dropped or the directory closes the connection.
        let url = shared.url.clone();
        tokio::spawn(async move {
            if let Err(err) = conn.drive().await {
                log::debug!("{url}: connection closed: {err}");
            }
        });
        if let Some((dn, password)) = &shared.service {
            ldap.with_timeout(shared.bind_timeout)
                .simple_bind(dn, password.expose())
                .await?
                .success()?;
        }
        log::debug!("{}: new connection", shared.url);
        Ok(ldap)
    }
}

/// ldap3's connection settings for `settings`: StartTLS, and a rustls configuration that trusts
/// `ca_file` (or the system's roots) and checks the certificate unless `tls_verify` is off.
pub fn conn_settings(settings: &Settings) -> Result<LdapConnSettings, PluginError> {
    let mut conn = LdapConnSettings::new().set_starttls(settings.starttls);
    if !settings.tls() {
        return Ok(conn);
    }
    if !settings.tls_verify {
        log::warn!(
            "{}: tls_verify is off: anyone between here and the directory can read the passwords",
            settings.endpoint.url
        );
        return Ok(conn.set_no_tls_verify(true));
    }
    if let Some(path) = &settings.ca_file {
        conn = conn.set_config(Arc::new(tls_config(path)?));
    }
    // Without `ca_file`, ldap3 builds a configuration from the system's trust store.
    Ok(conn)
}

/// A rustls client configuration trusting the certificates in the PEM file at `path`.
fn tls_config(path: &std::path::Path) -> Result<rustls::ClientConfig, PluginError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let bad = |what: String| PluginError::config(format!("`ca_file`: {}: {what}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| bad(format!("not a PEM certificate file ({e})")))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("unusable certificate ({e})")))?;
    }
    if roots.is_empty() {
        return Err(bad("contains no certificate".into()));
    }
    // The provider is named explicitly rather than taken from a process default, which a plugin
    // must not install (the host owns the process).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
