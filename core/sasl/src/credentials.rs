//! What the server must know to verify a SCRAM-SHA-256 proof, and how it gets it.
//!
//! RFC 5802 §3 defines the keys:
//!
//! ```text
//! SaltedPassword  := Hi(Normalize(password), salt, i)
//! ClientKey       := HMAC(SaltedPassword, "Client Key")
//! StoredKey       := H(ClientKey)
//! ServerKey       := HMAC(SaltedPassword, "Server Key")
//! ```
//!
//! `Hi` is PBKDF2 with HMAC-SHA-256 and `Normalize` is SASLprep (RFC 4013). The server keeps only the salt, the
//! iteration count, StoredKey and ServerKey: enough to verify a client and to prove itself, not enough to log in
//! as the user elsewhere. Backends that store plaintext-equivalent secrets derive the keys on the fly with
//! [`ScramCredentials::from_password`]; a passwd-file can hold the keys in Dovecot's `{SCRAM-SHA-256}` form.
//!
//! Unknown users get [`ScramCredentials::fake`]. The server-first message carries the user's salt, so answering an
//! unknown user differently (an error, or a fresh random salt each time) tells an attacker which users exist. A fake
//! user gets a salt derived from its name and a per-process random key: stable across attempts, indistinguishable
//! from a real one, and the exchange fails only at the proof, exactly like a wrong password.

use std::fmt;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::SaslError;

/// The iteration count for newly derived credentials. RFC 7677 §4: "the hash iteration-count announced by a server
/// SHOULD be at least 4096"; 4096 is also Dovecot's default for SCRAM-SHA-256.
pub const DEFAULT_ITERATIONS: u32 = 4096;

/// Salt length for new credentials: 16 bytes, as Dovecot and the RFC 7677 example use.
const SALT_LEN: usize = 16;

/// The scheme prefix of Dovecot's stored form.
const DOVECOT_PREFIX: &str = "{SCRAM-SHA-256}";

/// The server side of a SCRAM-SHA-256 secret: salt, iteration count, StoredKey and ServerKey (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredentials {
    /// The salt sent to the client in `s=`.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count sent to the client in `i=`.
    pub iterations: u32,
    /// `H(ClientKey)`: verifies the client's proof.
    pub stored_key: [u8; 32],
    /// `HMAC(SaltedPassword, "Server Key")`: signs the server's final message.
    pub server_key: [u8; 32],
}

impl ScramCredentials {
    /// Derives credentials from a plaintext-equivalent password with a fresh random 16-byte salt.
    ///
    /// `iterations` below RFC 7677's minimum of 4096 are raised to [`DEFAULT_ITERATIONS`], so a config typo cannot
    /// make the stored keys cheap to brute-force.
    pub fn from_password(password: &str, iterations: u32) -> ScramCredentials {
        let mut salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        ScramCredentials::from_password_with_salt(
            password,
            &salt,
            iterations.max(DEFAULT_ITERATIONS),
        )
    }

    /// Derives credentials from a password with the given salt and iteration count (no minimum is applied; this is
    /// for reproducing known keys, such as RFC test vectors or a client's stored salt).
    pub fn from_password_with_salt(
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> ScramCredentials {
        let salted = salted_password(password, salt, iterations);
        ScramCredentials {
            salt: salt.to_vec(),
            iterations,
            stored_key: sha256(&hmac(&salted, b"Client Key")),
            server_key: hmac(&salted, b"Server Key"),
        }
    }

    /// Fake credentials for an unknown user: deterministic in `user` within this process, random across processes.
    pub fn fake(user: &str) -> ScramCredentials {
        let key = fake_key();
        let derive = |label: &[u8]| {
            let mut data = label.to_vec();
            data.extend_from_slice(user.as_bytes());
            hmac(key, &data)
        };
        let salt = derive(b"poppet-sasl fake salt\0");
        ScramCredentials {
            salt: salt[..SALT_LEN].to_vec(),
            iterations: DEFAULT_ITERATIONS,
            stored_key: derive(b"poppet-sasl fake stored key\0"),
            server_key: derive(b"poppet-sasl fake server key\0"),
        }
    }

    /// Parses Dovecot's stored form `{SCRAM-SHA-256}<iterations>,<b64 salt>,<b64 StoredKey>,<b64 ServerKey>`
    /// (the `{SCRAM-SHA-256}` prefix may be omitted, as in Dovecot's scheme code, and its case is ignored).
    pub fn parse_dovecot(stored: &str) -> Result<ScramCredentials, SaslError> {
        let body = match stored.get(..DOVECOT_PREFIX.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(DOVECOT_PREFIX) => {
                &stored[DOVECOT_PREFIX.len()..]
            }
            _ if stored.starts_with('{') => {
                return Err(SaslError::InvalidStoredCredentials(
                    "scheme is not SCRAM-SHA-256",
                ));
            }
            _ => stored,
        };
        let mut parts = body.trim_end().split(',');
        let (Some(iterations), Some(salt), Some(stored_key), Some(server_key), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SaslError::InvalidStoredCredentials(
                "expected four comma-separated fields",
            ));
        };
        let iterations = match iterations.parse::<u32>() {
            Ok(n) if n > 0 => n,
            _ => {
                return Err(SaslError::InvalidStoredCredentials(
                    "iteration count is not a positive number",
                ));
            }
        };
        let salt = STANDARD
            .decode(salt)
            .map_err(|_| SaslError::InvalidStoredCredentials("salt is not base64"))?;
        if salt.is_empty() {
            return Err(SaslError::InvalidStoredCredentials("salt is empty"));
        }
        Ok(ScramCredentials {
            salt,
            iterations,
            stored_key: key32(stored_key, "StoredKey is not 32 bytes of base64")?,
            server_key: key32(server_key, "ServerKey is not 32 bytes of base64")?,
        })
    }

    /// Formats the credentials in Dovecot's stored form, `{SCRAM-SHA-256}` prefix included.
    pub fn to_dovecot(&self) -> String {
        format!(
            "{DOVECOT_PREFIX}{},{},{},{}",
            self.iterations,
            STANDARD.encode(&self.salt),
            STANDARD.encode(self.stored_key),
            STANDARD.encode(self.server_key)
        )
    }
}

impl fmt::Debug for ScramCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredentials")
            .field("salt", &STANDARD.encode(&self.salt))
            .field("iterations", &self.iterations)
            .field("stored_key", &"[REDACTED]")
            .field("server_key", &"[REDACTED]")
            .finish()
    }
}

/// `SaltedPassword := Hi(Normalize(password), salt, i)` (RFC 5802 §3).
///
/// RFC 5802 §2.2: "Normalize(str): Apply the SASLprep profile \[RFC4013\] of the "stringprep" algorithm". A password
/// that SASLprep rejects (prohibited or unassigned code points) is used as its raw UTF-8 bytes, as PostgreSQL does,
/// so such a password still works between two implementations that do the same instead of locking the user out.
pub(crate) fn salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let prepared = stringprep::saslprep(password);
    let normalized = match &prepared {
        Ok(prepared) => prepared.as_ref(),
        Err(_) => password,
    };
    pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(normalized.as_bytes(), salt, iterations)
}

/// HMAC-SHA-256 with a 32-byte key. HMAC zero-pads keys shorter than the 64-byte block (RFC 2104 §2), so padding
/// here gives the same MAC and makes construction infallible.
pub(crate) fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let mut mac = <Hmac<Sha256> as KeyInit>::new(&block.into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// SHA-256.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn fake_key() -> &'static [u8; 32] {
    static KEY: OnceLock<[u8; 32]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        key
    })
}

fn key32(b64: &str, error: &'static str) -> Result<[u8; 32], SaslError> {
    let bytes = STANDARD
        .decode(b64)
        .map_err(|_| SaslError::InvalidStoredCredentials(error))?;
    bytes
        .try_into()
        .map_err(|_| SaslError::InvalidStoredCredentials(error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7677_keys_and_dovecot_round_trip() {
        let salt = STANDARD
            .decode("W22ZaJ0SNY7soEsUEjb6gQ==")
            .unwrap_or_default();
        let creds = ScramCredentials::from_password_with_salt("pencil", &salt, 4096);
        let stored = creds.to_dovecot();
        assert!(
            stored.starts_with("{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,"),
            "{stored}"
        );
        assert_eq!(ScramCredentials::parse_dovecot(&stored), Ok(creds.clone()));
        assert_eq!(
            ScramCredentials::parse_dovecot(stored.trim_start_matches(DOVECOT_PREFIX)),
            Ok(creds.clone())
        );
        let lower = stored.replace(DOVECOT_PREFIX, "{scram-sha-256}");
        assert_eq!(ScramCredentials::parse_dovecot(&lower), Ok(creds.clone()));
        let debug = format!("{creds:?}");
        assert!(debug.contains("REDACTED") && !debug.contains(&STANDARD.encode(creds.stored_key)));
    }

    #[test]
    fn dovecot_rejects_garbage() {
        for bad in [
            "",
            "{PLAIN}x",
            "{SCRAM-SHA-256}",
            "{SCRAM-SHA-256}4096,c2FsdA==,AAAA",
            "{SCRAM-SHA-256}0,c2FsdA==,AAAA,AAAA",
            "{SCRAM-SHA-256}x,c2FsdA==,AAAA,AAAA",
            "{SCRAM-SHA-256}4096,!!,AAAA,AAAA",
            "{SCRAM-SHA-256}4096,c2FsdA==,AAAA,AAAA",
            "{SCRAM-SHA-256}4096,c2FsdA==,AAAA,AAAA,AAAA",
        ] {
            assert!(
                matches!(
                    ScramCredentials::parse_dovecot(bad),
                    Err(SaslError::InvalidStoredCredentials(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn fake_credentials_are_stable_per_user() {
        assert_eq!(
            ScramCredentials::fake("nobody"),
            ScramCredentials::fake("nobody")
        );
        assert_ne!(
            ScramCredentials::fake("nobody").salt,
            ScramCredentials::fake("nobody2").salt
        );
        assert_eq!(ScramCredentials::fake("nobody").salt.len(), SALT_LEN);
    }

    #[test]
    fn from_password_enforces_minimum_iterations_and_fresh_salt() {
        let a = ScramCredentials::from_password("pencil", 1);
        let b = ScramCredentials::from_password("pencil", 4096);
        assert_eq!(a.iterations, DEFAULT_ITERATIONS);
        assert_ne!(a.salt, b.salt);
        assert_eq!(a.salt.len(), SALT_LEN);
    }

    #[test]
    fn saslprep_maps_non_ascii_spaces() {
        // RFC 4013 §2.1: non-ASCII space characters map to SPACE, so U+00A0 and ' ' give the same keys.
        assert_eq!(
            salted_password("a\u{a0}b", b"salt", 1),
            salted_password("a b", b"salt", 1)
        );
        // Prohibited code points (here U+0007, a control character) fall back to the raw bytes.
        assert_ne!(
            salted_password("a\u{7}b", b"salt", 1),
            salted_password("ab", b"salt", 1)
        );
    }
}
