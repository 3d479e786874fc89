//! Runs the real `poppet` binary with a temporary config and collects its log.

use crate::artifacts::artifacts;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The server's stderr, shared with the thread that reads it.
#[derive(Default)]
struct Log {
    text: Mutex<String>,
    grew: Condvar,
}

/// A running server. Killed on drop.
pub struct TestServer {
    child: Child,
    /// The first listener's address.
    pub addr: SocketAddr,
    /// All listeners.
    pub addrs: Vec<SocketAddr>,
    log: Arc<Log>,
    /// Scratch directory holding the config (and whatever the test puts there).
    pub dir: PathBuf,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TestServer {
    /// Writes `config` to `dir/poppet.ron` and starts the server on it, waiting (up to 60 s) for its
    /// "listening on" lines. Panics with the server's stderr if it exits instead.
    pub fn start(dir: &Path, config: &str) -> TestServer {
        match Self::try_start(dir, config) {
            Ok(s) => s,
            Err(log) => panic!("server did not start:\n{log}"),
        }
    }

    /// Like [`TestServer::start`] but returns the stderr text if the server exits before listening.
    pub fn try_start(dir: &Path, config: &str) -> Result<TestServer, String> {
        let path = dir.join("poppet.ron");
        std::fs::write(&path, config).unwrap();
        let mut child = Command::new(&artifacts().poppet)
            .arg("--config")
            .arg(&path)
            .env(
                "RUST_LOG",
                std::env::var("POPPET_TEST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning poppet");
        let log = Arc::new(Log::default());
        let mut stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.text
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
                sink.grew.notify_all();
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send(a.parse::<SocketAddr>().ok());
                }
            }
            let _ = tx.send(None);
        });
        let mut addrs = Vec::new();
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(a)) => addrs.push(a),
            _ => {
                let _ = child.wait();
                // Let the stderr thread drain.
                let deadline = Instant::now() + Duration::from_secs(5);
                let mut text = log.text.lock().unwrap();
                while text.is_empty() && Instant::now() < deadline {
                    text = log
                        .grew
                        .wait_timeout(text, Duration::from_millis(100))
                        .unwrap()
                        .0;
                }
                return Err(text.clone());
            }
        }
        while let Ok(Some(a)) = rx.recv_timeout(Duration::from_millis(200)) {
            addrs.push(a);
        }
        Ok(TestServer {
            child,
            addr: addrs[0],
            addrs,
            log,
            dir: dir.to_owned(),
        })
    }

    /// Everything the server wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.text.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle` (up to `timeout`); returns whether it did.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_for_log_count(needle, 1, timeout)
    }

    /// Waits until the log contains `needle` at least `n` times (up to `timeout`).
    pub fn wait_for_log_count(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.log.text.lock().unwrap();
        loop {
            if text.matches(needle).count() >= n {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            text = self.log.grew.wait_timeout(text, deadline - now).unwrap().0;
        }
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the process to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        // kill(1) rather than libc: no `unsafe` outside the plugin boundary.
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGTERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Bounded polling of the exit status: there is no portable way to wait with a timeout.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
