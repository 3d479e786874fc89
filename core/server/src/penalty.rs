//! Slowing down password guessing, as Dovecot does: every failed login is answered only after
//! `auth_failure_delay`, and each client address collects a penalty that doubles with every failure
//! (1 s, 2 s, 4 s, ... up to `auth_penalty_max`) and is served before its next attempt is even checked.
//! A success clears it; an hour without failures forgets it. Trusted networks get no penalty.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a penalty is remembered after the last failure (Dovecot's `AUTH_PENALTY_TIMEOUT`, 1 h).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// Most addresses remembered; beyond this, expired entries are pruned and then the oldest dropped, so
/// a flood of addresses cannot grow memory without bound.
const MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Instant,
}

/// The failure counts themselves, kept across config reloads (a reload must not forgive a guesser).
#[derive(Debug, Default)]
pub struct PenaltyTable(Mutex<HashMap<IpAddr, Entry>>);

/// Per-address failure counts with the current settings.
#[derive(Debug)]
pub struct Penalties {
    entries: Arc<PenaltyTable>,
    max: Duration,
    trusted: Vec<IpNet>,
}

impl Penalties {
    /// An empty table with the given cap and trusted networks.
    pub fn new(max: Duration, trusted: Vec<IpNet>) -> Penalties {
        Self::with_table(max, trusted, Arc::default())
    }

    /// The given (shared) table with the given cap and trusted networks.
    pub fn with_table(max: Duration, trusted: Vec<IpNet>, table: Arc<PenaltyTable>) -> Penalties {
        Penalties {
            entries: table,
            max,
            trusted,
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// The wait to serve before checking this address's next login.
    pub fn penalty(&self, ip: IpAddr, now: Instant) -> Duration {
        if self.trusted(ip) {
            return Duration::ZERO;
        }
        let entries = self.entries.0.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(&ip) {
            Some(e) if now.duration_since(e.last) < FORGET_AFTER && e.failures > 0 => {
                let secs = 1u64 << (e.failures - 1).min(20);
                Duration::from_secs(secs).min(self.max)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failed login.
    pub fn failed(&self, ip: IpAddr, now: Instant) {
        if self.trusted(ip) {
            return;
        }
        let mut entries = self.entries.0.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&ip) {
            entries.retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
            if entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.last)
                    .map(|(ip, _)| *ip)
                {
                    entries.remove(&oldest);
                }
            }
        }
        let e = entries.entry(ip).or_insert(Entry {
            failures: 0,
            last: now,
        });
        if now.duration_since(e.last) >= FORGET_AFTER {
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        e.last = now;
    }

    /// Records a successful login: the address's penalty is cleared.
    pub fn succeeded(&self, ip: IpAddr) {
        self.entries
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn penalty_doubles_caps_clears_and_decays() {
        let p = Penalties::new(Duration::from_secs(15), vec![]);
        let t = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(p.penalty(a, t), Duration::ZERO);
        let expected = [1, 2, 4, 8, 15, 15];
        for want in expected {
            p.failed(a, t);
            assert_eq!(p.penalty(a, t), Duration::from_secs(want));
        }
        assert_eq!(
            p.penalty(ip("192.0.2.2"), t),
            Duration::ZERO,
            "other addresses are not slowed"
        );
        assert_eq!(
            p.penalty(a, t + FORGET_AFTER),
            Duration::ZERO,
            "forgotten after an hour"
        );
        p.succeeded(a);
        assert_eq!(p.penalty(a, t), Duration::ZERO);
    }

    #[test]
    fn trusted_networks_get_no_penalty() {
        let p = Penalties::new(Duration::from_secs(15), vec!["10.0.0.0/8".parse().unwrap()]);
        let t = Instant::now();
        p.failed(ip("10.1.2.3"), t);
        assert_eq!(p.penalty(ip("10.1.2.3"), t), Duration::ZERO);
    }

    #[test]
    fn the_table_is_bounded() {
        let p = Penalties::new(Duration::from_secs(15), vec![]);
        let t = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 10) {
            p.failed(IpAddr::from(std::net::Ipv4Addr::from(i)), t);
        }
        assert!(p.entries.0.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
