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

/// Addresses the server announced on stdout (`listening on ADDR`), in order.
#[derive(Default)]
struct Announced {
    addrs: Mutex<Vec<SocketAddr>>,
    grew: Condvar,
}

/// A running server. Killed on drop.
pub struct TestServer {
    child: Child,
    announced: Arc<Announced>,
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
        Self::try_start_wrapped(dir, config, &[])
    }

    /// Like [`TestServer::start`], with the server run through `wrapper` (a command and its
    /// arguments that ends by exec'ing the rest of its command line, as `ip netns exec NAME` does),
    /// so the process the test kills and signals is still the server.
    pub fn start_wrapped(dir: &Path, config: &str, wrapper: &[String]) -> TestServer {
        match Self::try_start_wrapped(dir, config, wrapper) {
            Ok(s) => s,
            Err(log) => panic!("server did not start:\n{log}"),
        }
    }

    /// [`TestServer::try_start`] through `wrapper` (see [`TestServer::start_wrapped`]).
    pub fn try_start_wrapped(
        dir: &Path,
        config: &str,
        wrapper: &[String],
    ) -> Result<TestServer, String> {
        let path = dir.join("poppet.ron");
        std::fs::write(&path, config).unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(&artifacts().poppet);
                c
            }
            None => Command::new(&artifacts().poppet),
        };
        let mut child = command
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
        let announced = Arc::new(Announced::default());
        let sink = Arc::clone(&announced);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line
                    .strip_prefix("listening on ")
                    .and_then(|a| a.parse().ok())
                {
                    sink.addrs.lock().unwrap().push(a);
                    sink.grew.notify_all();
                }
            }
        });
        // Listeners are announced together at startup; the first one means the server is up.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let addrs = announced.addrs.lock().unwrap();
            if !addrs.is_empty() {
                break;
            }
            drop(addrs);
            if let Some(_status) = child.try_wait().unwrap() {
                return Err(Self::drain(&log));
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                return Err(format!(
                    "no `listening on` line within 60 s\n{}",
                    Self::drain(&log)
                ));
            }
            let addrs = announced.addrs.lock().unwrap();
            let _unused = announced
                .grew
                .wait_timeout(addrs, Duration::from_millis(100))
                .unwrap();
        }
        // The startup lines are written in one go; give the rest of them a moment to be read.
        let expected = config.matches("address:").count().max(1);
        let addrs = {
            let mut addrs = announced.addrs.lock().unwrap();
            let until = Instant::now() + Duration::from_secs(5);
            while addrs.len() < expected && Instant::now() < until {
                addrs = announced
                    .grew
                    .wait_timeout(addrs, Duration::from_millis(100))
                    .unwrap()
                    .0;
            }
            addrs.clone()
        };
        Ok(TestServer {
            child,
            announced,
            addr: addrs[0],
            addrs,
            log,
            dir: dir.to_owned(),
        })
    }

    fn drain(log: &Log) -> String {
        // Let the stderr thread catch up with a process that just exited.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut text = log.text.lock().unwrap();
        while text.is_empty() && Instant::now() < deadline {
            text = log
                .grew
                .wait_timeout(text, Duration::from_millis(100))
                .unwrap()
                .0;
        }
        text.clone()
    }

    /// Waits (up to `timeout`) until the server has announced at least `n` listeners in total
    /// (including ones opened by a reload) and returns them all.
    pub fn wait_for_listeners(&self, n: usize, timeout: Duration) -> Vec<SocketAddr> {
        let deadline = Instant::now() + timeout;
        let mut addrs = self.announced.addrs.lock().unwrap();
        while addrs.len() < n && Instant::now() < deadline {
            addrs = self
                .announced
                .grew
                .wait_timeout(addrs, deadline - Instant::now())
                .unwrap()
                .0;
        }
        addrs.clone()
    }

    /// Sends SIGHUP (reload).
    pub fn reload(&self) {
        let sent = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGHUP");
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
