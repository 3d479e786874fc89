//! Log forwarding from a plugin to the host.
//!
//! A plugin is a separate library with its own copy of the `log` crate, which has no logger. When the
//! host calls the entry point, the SDK installs [`Forwarder`] there, which hands every record (level,
//! target, message, file, line) to the host's callback, so `RUST_LOG=poppet_auth_passwd=debug` filters
//! plugin logs exactly like the server's own.

use crate::abi::{HostApi, LogRecord};
use crate::ffi::FfiStr;
use std::sync::OnceLock;

static HOST: OnceLock<&'static HostApi> = OnceLock::new();

struct Forwarder;

static FORWARDER: Forwarder = Forwarder;

impl log::Log for Forwarder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        let Some(host) = HOST.get() else { return };
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        (host.log)(&LogRecord {
            level: record.level() as u32,
            target: FfiStr::new(record.target()),
            message: FfiStr::new(&message),
            file: FfiStr::new(record.file().unwrap_or("")),
            line: record.line().unwrap_or(0),
        });
    }

    fn flush(&self) {}
}

/// Remembers the host and installs the forwarding logger in this library's `log`. Idempotent.
pub(crate) fn install(host: &'static HostApi) {
    if HOST.set(host).is_ok() {
        // Fails only if this library already has a logger, in which case it keeps it.
        let _ = log::set_logger(&FORWARDER);
        log::set_max_level(level_filter(host.max_log_level));
        // This library has its own copy of std and so its own panic hook, which would print to stderr
        // with a backtrace. Route panics through the log instead: one line with the location. The
        // panic itself is caught by the SDK's guard and becomes an error for the one session.
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            log::error!(target: "poppet_sdk::panic", "plugin panic at {location}: {}", crate::guard::payload_text(info.payload()));
        }));
    }
}

/// `log::LevelFilter` from its `u32` form.
pub fn level_filter(n: u32) -> log::LevelFilter {
    match n {
        0 => log::LevelFilter::Off,
        1 => log::LevelFilter::Error,
        2 => log::LevelFilter::Warn,
        3 => log::LevelFilter::Info,
        4 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

/// `log::Level` from its `u32` form; unknown values read as `Trace`.
pub fn level(n: u32) -> log::Level {
    match n {
        1 => log::Level::Error,
        2 => log::Level::Warn,
        3 => log::Level::Info,
        4 => log::Level::Debug,
        _ => log::Level::Trace,
    }
}
