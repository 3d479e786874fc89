//! The `poppet` command: serve, check a config, hash a password.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use poppet::plugins;
use poppet::server::Control;
use poppet::shared::LongLived;
use poppet::{Config, Shared};
use std::path::PathBuf;
use std::sync::Arc;

/// Poppet, a POP3 server built from plugins.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The RON config file (for serving).
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Parse the config, load the plugins, print what was loaded and the listeners; exit non-zero on
    /// any problem.
    Check,
    /// Print a password hash for a passwd-file, like `doveadm pw`.
    Pw {
        /// Scheme: SHA512-CRYPT (default), SHA256-CRYPT, BLF-CRYPT, ARGON2ID, SCRAM-SHA-256, SSHA,
        /// SSHA256, SSHA512, PLAIN.
        #[arg(short, long, default_value = "SHA512-CRYPT")]
        scheme: String,
        /// The password; read from standard input when absent (so it stays out of shell history).
        #[arg(short, long)]
        password: Option<String>,
        /// Rounds / cost for the schemes that have one.
        #[arg(short, long)]
        rounds: Option<u32>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Pw {
            scheme,
            password,
            rounds,
        }) => pw(&scheme, password, rounds),
        Some(Command::Check) => config_path(&cli.config).and_then(|p| check(&p)),
        None => config_path(&cli.config).and_then(|p| serve(&p)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("poppet: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn config_path(config: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    config
        .clone()
        .context("no config given: use --config FILE (see examples/quickstart.ron)")
}

/// Starts logging: `RUST_LOG` if set, else the config's `logging.level`.
fn init_logging(default: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default)).init();
}

fn load(path: &std::path::Path) -> anyhow::Result<(Config, plugins::Plugins)> {
    let config = Config::load(path)?;
    // Before the plugins load: each plugin reads the host's log level once, when it is loaded.
    init_logging(&config.log_level);
    let plugins = plugins::load(&config)?;
    Ok((config, plugins))
}

fn check(path: &std::path::Path) -> anyhow::Result<()> {
    let (config, plugins) = load(path)?;
    if let Some(files) = &config.tls {
        if files.generate_self_signed && !files.cert.exists() && !files.key.exists() {
            println!(
                "tls certificate {}: will be generated at first start",
                files.cert.display()
            );
        } else {
            poppet::tls::load(files)?;
            println!("tls certificate {}: ok", files.cert.display());
        }
    }
    println!("config {}: ok", path.display());
    for p in &plugins.loaded {
        let active = match p.kind {
            poppet::config::PluginKind::Auth => p.name == config.auth,
            poppet::config::PluginKind::Store => p.name == config.store,
            poppet::config::PluginKind::Extension => config.extensions.contains(&p.name),
        };
        println!(
            "plugin {} `{}`: {} from {}{}",
            p.kind.name(),
            p.name,
            p.library,
            p.path.display(),
            if active { " (active)" } else { "" }
        );
    }
    let mut languages: Vec<_> = plugins.catalogs.values().collect();
    languages.sort_by(|a, b| a.tag().cmp(b.tag()));
    for catalog in languages {
        let total = poppet_proto::text::TEMPLATES.len();
        let missing = catalog.untranslated();
        println!(
            "language {} ({}): {} of {total} texts translated{}",
            catalog.tag(),
            catalog.name(),
            total - missing.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!(", English for: {}", missing.join(", "))
            }
        );
    }
    for l in &config.listeners {
        let tls = match l.tls {
            poppet::config::TlsMode::None => "plain",
            poppet::config::TlsMode::Starttls => "plain + STLS",
            poppet::config::TlsMode::Implicit => "implicit TLS",
        };
        println!("listener {} ({tls})", l.address);
    }
    Ok(())
}

fn serve(path: &std::path::Path) -> anyhow::Result<()> {
    let (config, plugins) = load(path)?;
    // Watch before announcing the listeners, so a change made as soon as the server is up is seen.
    let (control_tx, control_rx) = smol::channel::unbounded();
    let _watcher = watch_config(path, control_tx.clone());
    let listeners = bind(&config)?;
    // Certificates are read while still privileged (keys are usually readable by root only).
    let tls = config.tls.as_ref().map(poppet::tls::load).transpose()?;
    poppet::privilege::drop_privileges(&config)?;
    for l in &listeners {
        poppet::server::announce(l.local_addr()?);
    }
    let state = Arc::new(LongLived::default());
    let metrics = match config.metrics {
        Some(addr) => {
            let listener = smol::block_on(smol::net::TcpListener::bind(addr))
                .with_context(|| format!("cannot listen for metrics on {addr}"))?;
            log::info!("metrics on http://{}/metrics", listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };
    let counters = Arc::clone(&state.metrics);
    let shared = Arc::new(Shared::new(config, plugins, tls, Arc::clone(&state)));
    let loader: poppet::server::Loader = {
        let path = path.to_owned();
        Arc::new(move || {
            let config = Config::load(&path)?;
            let plugins = plugins::load(&config)?;
            let tls = config.tls.as_ref().map(poppet::tls::load).transpose()?;
            Ok(Shared::new(config, plugins, tls, Arc::clone(&state)))
        })
    };
    let signals = async_signal::Signals::new([
        async_signal::Signal::Term,
        async_signal::Signal::Int,
        async_signal::Signal::Hup,
    ])
    .context("cannot install signal handlers")?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = Arc::new(poppet::server::Workers::new(threads));
    let ex = Arc::clone(workers.main());
    ex.spawn(forward_signals(signals, control_tx)).detach();
    if let Some(listener) = metrics {
        ex.spawn(poppet::metrics::serve(listener, counters))
            .detach();
    }
    let (done_tx, done_rx) = smol::channel::bounded::<()>(1);
    let threads = workers.run_threads(1, &done_rx);
    smol::block_on(ex.run(poppet::server::run(
        Arc::clone(&workers),
        shared,
        listeners,
        control_rx,
        loader,
    )));
    drop(done_tx);
    for t in threads {
        let _ = t.join();
    }
    log::info!("stopped");
    Ok(())
}

/// SIGTERM/SIGINT stop the server, SIGHUP reloads the config.
async fn forward_signals(
    mut signals: async_signal::Signals,
    control: smol::channel::Sender<Control>,
) {
    use futures_lite::StreamExt as _;
    while let Some(Ok(sig)) = signals.next().await {
        log::info!("received {sig:?}");
        let action = if sig == async_signal::Signal::Hup {
            Control::Reload
        } else {
            Control::Stop
        };
        if control.send(action).await.is_err() || action == Control::Stop {
            return;
        }
    }
}

/// Reloads when the config file changes. Editors save by writing a new file and renaming it, so the
/// directory is watched, and a burst of events within `DEBOUNCE` becomes one reload.
fn watch_config(
    path: &std::path::Path,
    control: smol::channel::Sender<Control>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    /// Long enough to cover an editor's write-rename-chmod burst, short enough to feel immediate.
    const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(300);
    let file = path.file_name()?.to_owned();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            let ours = event
                .paths
                .iter()
                .any(|p| p.file_name() == Some(file.as_os_str()));
            if ours && !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|e| log::warn!("not watching the config for changes ({e}); SIGHUP still reloads"))
    .ok()?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| log::warn!("not watching {} ({e}); SIGHUP still reloads", dir.display()))
        .ok()?;
    std::thread::spawn(move || {
        while rx.recv().is_ok() {
            // Swallow the rest of the burst, then reload once.
            while rx.recv_timeout(DEBOUNCE).is_ok() {}
            log::info!("config file changed; reloading");
            if control.send_blocking(Control::Reload).is_err() {
                return;
            }
        }
    });
    Some(watcher)
}

/// Binds the configured listeners, or takes them from systemd socket activation (`LISTEN_FDS`), in
/// config order, so Poppet never needs root to get ports 110 and 995.
fn bind(config: &Config) -> anyhow::Result<Vec<smol::net::TcpListener>> {
    let mut fds = listenfd::ListenFd::from_env();
    let mut bound = Vec::new();
    for (i, l) in config.listeners.iter().enumerate() {
        let listener = match fds
            .take_tcp_listener(i)
            .context("reading systemd's LISTEN_FDS")?
        {
            Some(std_listener) => {
                log::info!(
                    "listener {} comes from systemd socket activation",
                    l.address
                );
                smol::net::TcpListener::try_from(std_listener)?
            }
            None => smol::block_on(smol::net::TcpListener::bind(l.address))
                .with_context(|| format!("cannot listen on {}", l.address))?,
        };
        bound.push(listener);
    }
    Ok(bound)
}

fn pw(scheme: &str, password: Option<String>, rounds: Option<u32>) -> anyhow::Result<()> {
    init_logging("warn");
    let scheme = poppet_password::Scheme::from_name(scheme)?;
    let password = match password {
        Some(p) => p,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let hash = match rounds {
        Some(r) => poppet_password::hash_with_rounds(scheme, password.as_bytes(), r)?,
        None => poppet_password::hash(scheme, password.as_bytes())?,
    };
    println!("{hash}");
    Ok(())
}
