//! Network namespaces and veth pairs for the tests that need more than loopback (run as root).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs `ip ARGS`; the error is its stderr.
pub fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A 10.x.y.0/24 that no interface on this machine uses (other tests may make networks too);
/// `salt` (the process id, say) spreads concurrent callers apart.
pub fn free_subnet(salt: u32) -> Result<String, String> {
    for k in 0..64 {
        let n = salt + k * 7919;
        let prefix = format!("10.{}.{}", 100 + (n / 256) % 100, n % 256);
        let out = Command::new("ip")
            .args(["-4", "-o", "addr", "show", "to", &format!("{prefix}.0/24")])
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() && out.stdout.is_empty() {
            return Ok(prefix);
        }
    }
    Err("no free 10.x.y.0/24".into())
}

/// A network namespace joined to this one by a veth pair on a /24 of its own: `.1` here, `.2` in
/// the namespace. Removed on drop, also when the test fails half-way through making it.
pub struct Peer {
    /// The namespace's name (`ip netns exec NAME ...`).
    pub namespace: String,
    /// This side's address.
    pub here: String,
    /// The namespace's address.
    pub there: String,
    link: Option<String>,
    made_namespace: bool,
}

impl Peer {
    /// Makes the namespace and the pair; `tag` goes into the namespace's name.
    pub fn create(tag: &str) -> Result<Peer, String> {
        static MADE: AtomicU32 = AtomicU32::new(0);
        let k = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let prefix = free_subnet(pid + k * 131)?;
        let mut peer = Peer {
            namespace: format!("poppet-{tag}-{pid}-{k}"),
            here: format!("{prefix}.1"),
            there: format!("{prefix}.2"),
            link: None,
            made_namespace: false,
        };
        ip(&["netns", "add", &peer.namespace])?;
        peer.made_namespace = true;
        // Interface names have at most 15 characters.
        let n = pid % 100_000;
        let (outer, inner) = (format!("ppo{n}x{k}"), format!("ppi{n}x{k}"));
        ip(&[
            "link", "add", &outer, "type", "veth", "peer", "name", &inner,
        ])?;
        peer.link = Some(outer.clone());
        ip(&["link", "set", &inner, "netns", &peer.namespace])?;
        ip(&["addr", "add", &format!("{}/24", peer.here), "dev", &outer])?;
        ip(&["link", "set", &outer, "up"])?;
        let there = format!("{}/24", peer.there);
        ip(&["-n", &peer.namespace, "addr", "add", &there, "dev", &inner])?;
        ip(&["-n", &peer.namespace, "link", "set", &inner, "up"])?;
        ip(&["-n", &peer.namespace, "link", "set", "lo", "up"])?;
        Ok(peer)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(link) = &self.link {
            let _ = ip(&["link", "del", link]);
        }
        if self.made_namespace {
            let _ = ip(&["netns", "del", &self.namespace]);
        }
    }
}
