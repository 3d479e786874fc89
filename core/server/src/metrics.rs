//! Prometheus metrics on an optional loopback HTTP endpoint: connections, logins by outcome and
//! mechanism, commands, bytes sent, plugin calls (count, errors, latency) and sessions in progress.
//!
//! The counters are plain atomics kept across config reloads. The endpoint answers `GET /metrics`
//! with the text exposition format (version 0.0.4) and nothing else; it is a dozen lines of HTTP/1.0,
//! not a web server, and only listens on loopback (config validation refuses anything else).

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use smol::net::TcpListener;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Calls and time spent in one plugin operation.
#[derive(Debug, Default, Clone, Copy)]
struct Calls {
    count: u64,
    errors: u64,
    seconds: f64,
}

/// All counters.
#[derive(Debug, Default)]
pub struct Metrics {
    connections: AtomicU64,
    refused: AtomicU64,
    sessions: AtomicI64,
    commands: AtomicU64,
    bytes_sent: AtomicU64,
    deleted: AtomicU64,
    logins: Mutex<BTreeMap<(String, &'static str), u64>>,
    plugin_calls: Mutex<BTreeMap<&'static str, Calls>>,
}

impl Metrics {
    /// A connection was accepted.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was refused by a cap.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// A session started (`+1`) or ended (`-1`).
    pub fn session(&self, delta: i64) {
        self.sessions.fetch_add(delta, Ordering::Relaxed);
    }

    /// A session ended having read `commands`, sent `bytes` and deleted `deleted` messages.
    pub fn session_totals(&self, commands: u64, bytes: u64, deleted: u64) {
        self.commands.fetch_add(commands, Ordering::Relaxed);
        self.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        self.deleted.fetch_add(deleted, Ordering::Relaxed);
    }

    /// A login attempt ended with `outcome` (`ok`, `failed`, `tempfail`, `in-use`, ...).
    pub fn login(&self, mechanism: &str, outcome: &'static str) {
        let mut map = self.logins.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry((mechanism.to_owned(), outcome)).or_insert(0) += 1;
    }

    /// A plugin call (`op` such as `authenticate`, `open`, `retrieve`, `commit`) took `elapsed`.
    pub fn plugin_call(&self, op: &'static str, elapsed: Duration, failed: bool) {
        let mut map = self.plugin_calls.lock().unwrap_or_else(|p| p.into_inner());
        let c = map.entry(op).or_default();
        c.count += 1;
        c.errors += u64::from(failed);
        c.seconds += elapsed.as_secs_f64();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut counter = |name: &str, help: &str, value: String| {
            let kind = if name.ends_with("_total") {
                "counter"
            } else {
                "gauge"
            };
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        counter(
            "poppet_connections_total",
            "Connections accepted.",
            self.connections.load(Ordering::Relaxed).to_string(),
        );
        counter(
            "poppet_connections_refused_total",
            "Connections refused by a connection cap.",
            self.refused.load(Ordering::Relaxed).to_string(),
        );
        counter(
            "poppet_sessions",
            "Sessions in progress.",
            self.sessions.load(Ordering::Relaxed).to_string(),
        );
        counter(
            "poppet_commands_total",
            "Commands read, by finished sessions.",
            self.commands.load(Ordering::Relaxed).to_string(),
        );
        counter(
            "poppet_bytes_sent_total",
            "Bytes sent to clients, by finished sessions.",
            self.bytes_sent.load(Ordering::Relaxed).to_string(),
        );
        counter(
            "poppet_messages_deleted_total",
            "Messages deleted at QUIT.",
            self.deleted.load(Ordering::Relaxed).to_string(),
        );
        out.push_str("# HELP poppet_logins_total Login attempts by mechanism and outcome.\n# TYPE poppet_logins_total counter\n");
        for ((mechanism, outcome), n) in
            self.logins.lock().unwrap_or_else(|p| p.into_inner()).iter()
        {
            let _ = writeln!(
                out,
                "poppet_logins_total{{mechanism=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(mechanism)
            );
        }
        out.push_str("# HELP poppet_plugin_calls_total Plugin calls by operation.\n# TYPE poppet_plugin_calls_total counter\n");
        let calls = self
            .plugin_calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (op, c) in &calls {
            let _ = writeln!(out, "poppet_plugin_calls_total{{op=\"{op}\"}} {}", c.count);
        }
        out.push_str("# HELP poppet_plugin_errors_total Plugin calls that failed, by operation.\n# TYPE poppet_plugin_errors_total counter\n");
        for (op, c) in &calls {
            let _ = writeln!(
                out,
                "poppet_plugin_errors_total{{op=\"{op}\"}} {}",
                c.errors
            );
        }
        out.push_str("# HELP poppet_plugin_seconds_total Time spent in plugin calls, by operation.\n# TYPE poppet_plugin_seconds_total counter\n");
        for (op, c) in &calls {
            let _ = writeln!(
                out,
                "poppet_plugin_seconds_total{{op=\"{op}\"}} {}",
                c.seconds
            );
        }
        out
    }
}

/// Escapes a label value (Prometheus text format: backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = std::sync::Arc::clone(&metrics);
        smol::spawn(async move {
            // Read the request head (bounded); only the request line matters.
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
            let (status, body) = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?") {
                ("200 OK", metrics.render())
            } else {
                ("404 Not Found", "only /metrics is here\n".to_owned())
            };
            let response = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.close().await;
        })
        .detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_labels() {
        let m = Metrics::default();
        m.connection();
        m.login("PLAIN", "ok");
        m.login("PL\"AIN", "failed");
        m.plugin_call("authenticate", Duration::from_millis(500), false);
        m.plugin_call("authenticate", Duration::from_millis(500), true);
        let text = m.render();
        assert!(text.contains("poppet_connections_total 1\n"), "{text}");
        assert!(
            text.contains("poppet_logins_total{mechanism=\"PLAIN\",outcome=\"ok\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("poppet_logins_total{mechanism=\"PL\\\"AIN\",outcome=\"failed\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("poppet_plugin_calls_total{op=\"authenticate\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("poppet_plugin_errors_total{op=\"authenticate\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("poppet_plugin_seconds_total{op=\"authenticate\"} 1\n"),
            "{text}"
        );
    }
}
