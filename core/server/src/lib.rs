#![cfg_attr(test, allow(clippy::unwrap_used))]
//! # poppet
//!
//! The Poppet POP3 server: a smol network loop around the sans-I/O engine `poppet-proto`, the RON
//! config, the plugin host (via `poppet-sdk`'s `host` feature), limits, logging and the CLI. It is the
//! only crate that knows about sockets and the operating system.

mod apop;
pub mod config;
pub mod metrics;
pub mod penalty;
pub mod plugins;
pub mod privilege;
pub mod proxy;
pub mod server;
pub mod session;
pub mod shared;
pub mod stream;
pub mod systemd;
pub mod tls;

pub use config::{Config, ConfigError};
pub use shared::Shared;
