//! An optional cache of password-check results, off by default.
//!
//! Some directories are slow or far away, and some clients check mail every minute; a cache
//! answers those repeated logins without a round trip. The price is staleness: a password
//! changed or an account disabled in the directory takes effect only when the entry expires,
//! which is why it is off unless asked for and why failed checks are kept shorter
//! (`negative_ttl`) than successful ones (`ttl`).
//!
//! What is cached is "this user with this password got this answer". The key is a SHA-256 of
//! the user, the password and a random salt made when the plugin starts, so the cache never holds
//! a password, and its keys are useless outside this process. A temporary failure is never
//! cached: the point of `[SYS/TEMP]` is that trying again may work.

use crate::settings::CacheSettings;
use poppet_sdk::AuthOutcome;
use rand::Rng;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

type Key = [u8; 32];

/// The result cache.
pub struct Cache {
    settings: CacheSettings,
    salt: [u8; 16],
    entries: Mutex<HashMap<Key, (Instant, AuthOutcome)>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("settings", &self.settings)
            .field("entries", &self.lock().len())
            .finish()
    }
}

impl Cache {
    /// An empty cache.
    pub fn new(settings: CacheSettings) -> Cache {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        Cache {
            settings,
            salt,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, AuthOutcome)>> {
        // Inserts and removes only: a panic elsewhere cannot leave the map inconsistent.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn key(&self, user: &str, password: &str, verified: bool) -> Key {
        // Lengths first, so that ("ab", "c") and ("a", "bc") differ.
        Sha256::new()
            .chain_update(self.salt)
            .chain_update([u8::from(verified)])
            .chain_update((user.len() as u64).to_be_bytes())
            .chain_update(user.as_bytes())
            .chain_update(password.as_bytes())
            .finalize()
            .into()
    }

    /// The cached answer, if there is one that has not expired.
    pub fn get(
        &self,
        user: &str,
        password: &str,
        verified: bool,
        now: Instant,
    ) -> Option<AuthOutcome> {
        let key = self.key(user, password, verified);
        let mut entries = self.lock();
        match entries.get(&key) {
            Some((expires, outcome)) if *expires > now => Some(outcome.clone()),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers `outcome` (not a temporary failure) for its TTL.
    pub fn put(
        &self,
        user: &str,
        password: &str,
        verified: bool,
        outcome: &AuthOutcome,
        now: Instant,
    ) {
        let ttl = match outcome {
            AuthOutcome::Accept(_) => self.settings.ttl,
            AuthOutcome::Reject => self.settings.negative_ttl,
            AuthOutcome::TempFail(_) => return,
        };
        let key = self.key(user, password, verified);
        let mut entries = self.lock();
        if entries.len() >= self.settings.size {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.settings.size {
                // Still full of live entries: start over rather than track usage order. A
                // cache this busy refills within one TTL.
                entries.clear();
            }
        }
        entries.insert(key, (now + ttl, outcome.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poppet_sdk::Accepted;
    use std::time::Duration;

    #[test]
    fn ttls_and_keys() {
        let cache = Cache::new(CacheSettings {
            ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            size: 2,
        });
        let t0 = Instant::now();
        let ok = AuthOutcome::Accept(Accepted::default());
        cache.put("a", "pw", false, &ok, t0);
        cache.put("a", "bad", false, &AuthOutcome::Reject, t0);
        cache.put("a", "x", false, &AuthOutcome::TempFail("down".into()), t0);
        assert_eq!(cache.get("a", "pw", false, t0), Some(ok.clone()));
        assert_eq!(
            cache.get("a", "pw", true, t0),
            None,
            "verified is part of the key"
        );
        assert_eq!(cache.get("ap", "w", false, t0), None);
        assert_eq!(
            cache.get("a", "x", false, t0),
            None,
            "TempFail is never cached"
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            cache.get("a", "bad", false, later),
            None,
            "negative TTL is shorter"
        );
        assert_eq!(cache.get("a", "pw", false, later), Some(ok.clone()));
        // Full: a third entry evicts the expired ones (or everything), never grows past size.
        cache.put("b", "pw", false, &ok, later);
        cache.put("c", "pw", false, &ok, later);
        assert!(cache.lock().len() <= 2);
        assert_eq!(
            cache.get("a", "pw", false, t0 + Duration::from_secs(61)),
            None
        );
    }
}
