//! A real HAProxy (Debian's `haproxy`) run by a test, stopped on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released for HAProxy to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running HAProxy, killed on drop.
pub struct Haproxy(Child);

impl Haproxy {
    /// Starts `haproxy -f config` in the foreground and waits (bounded) until every address in
    /// `frontends` accepts connections.
    pub fn start(config: &Path, frontends: &[SocketAddr]) -> Haproxy {
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(config)
            .arg("-db")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut h = Haproxy(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        for addr in frontends {
            while TcpStream::connect(addr).is_err() {
                if let Some(status) = h.0.try_wait().unwrap() {
                    panic!("haproxy exited ({status}); its errors are above");
                }
                assert!(Instant::now() < deadline, "haproxy did not start");
                std::thread::yield_now();
            }
        }
        h
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
