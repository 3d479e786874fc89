//! ARGON2ID: PHC strings as libsodium's `crypto_pwhash_str` writes them, which is what Dovecot stores.
//!
//! The cost parameters live in the string (`m=` KiB of memory, `t=` passes, `p=` lanes), so verification reads
//! them from there; the RustCrypto `argon2` crate compares the output in constant time.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use rand::Rng;

use crate::error::{HashError, ParseError};
use crate::scheme::Scheme;

/// Memory cost in KiB: 64 MiB, what `doveadm pw -s ARGON2ID` (Dovecot 2.3.19, libsodium) writes by default.
pub(crate) const DEFAULT_M_COST: u32 = 65_536;
/// Passes over memory: 3, the same `doveadm pw` default (`t=3`).
pub(crate) const DEFAULT_T_COST: u32 = 3;
/// Lanes: 1; libsodium is single-threaded and always writes `p=1`.
const DEFAULT_P_COST: u32 = 1;
/// Salt bytes: 16, libsodium's `crypto_pwhash_SALTBYTES`.
const SALT_LEN: usize = 16;
/// Output bytes: 32, libsodium's `crypto_pwhash_STRBYTES` layout (and the `argon2` crate's default).
const OUTPUT_LEN: usize = 32;

/// Checks that `data` is an `$argon2id$` PHC string with usable parameters, salt and output.
pub(crate) fn check(data: &str) -> Result<(), ParseError> {
    let bad = |reason| ParseError::Malformed {
        scheme: Scheme::Argon2id,
        reason,
    };
    if !data.starts_with("$argon2id$") {
        return Err(bad("expected a PHC string starting with $argon2id$"));
    }
    let phc = argon2::PasswordHash::new(data).map_err(|_| bad("not a valid PHC string"))?;
    Params::try_from(&phc).map_err(|_| bad("invalid m=, t= or p= parameters"))?;
    if let Some(version) = phc.version {
        Version::try_from(version).map_err(|_| bad("unknown Argon2 version"))?;
    }
    if phc.salt.is_none() || phc.hash.is_none() {
        return Err(bad("salt or hash missing"));
    }
    Ok(())
}

/// Checks `password` against a string that [`check`] accepted.
pub(crate) fn verify(data: &str, password: &[u8]) -> bool {
    match argon2::PasswordHash::new(data) {
        Ok(phc) => Argon2::default().verify_password(password, &phc).is_ok(),
        Err(_) => false,
    }
}

/// Makes a new `$argon2id$v=19$...` string with `t_cost` passes and Dovecot's other defaults.
pub(crate) fn generate(password: &[u8], t_cost: u32) -> Result<String, HashError> {
    generate_with(password, DEFAULT_M_COST, t_cost)
}

/// Like [`generate`] with an explicit memory cost (tests use a small one: debug builds are slow).
pub(crate) fn generate_with(
    password: &[u8],
    m_cost: u32,
    t_cost: u32,
) -> Result<String, HashError> {
    let backend = |reason: String| HashError::Backend {
        scheme: Scheme::Argon2id,
        reason,
    };
    if t_cost == 0 {
        return Err(HashError::RoundsOutOfRange {
            scheme: Scheme::Argon2id,
            rounds: 0,
            min: 1,
            max: u32::MAX,
        });
    }
    let params = Params::new(m_cost, t_cost, DEFAULT_P_COST, Some(OUTPUT_LEN))
        .map_err(|e| backend(e.to_string()))?;
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let hashed = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_with_salt(password, &salt)
        .map_err(|e| backend(e.to_string()))?;
    Ok(hashed.to_string())
}

/// A string with the same parameters as `template` but a zero salt and a zero output, used only to spend the same
/// time on an unknown user. Falls back to Dovecot's defaults if `template` is odd.
pub(crate) fn dummy_like(template: &str) -> String {
    let fields: Vec<&str> = template.split('$').collect();
    // ["", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash] or without the version field.
    let (head, output_len) = match fields.as_slice() {
        [_, _, version, params, _, hash] => {
            (format!("$argon2id${version}${params}"), b64_len(hash))
        }
        [_, _, params, _, hash] => (format!("$argon2id${params}"), b64_len(hash)),
        _ => (
            format!("$argon2id$v=19$m={DEFAULT_M_COST},t={DEFAULT_T_COST},p=1"),
            OUTPUT_LEN,
        ),
    };
    // "A" is zero in base64; 22 characters carry 16 bytes, ceil(8n/6) carry n.
    format!(
        "{head}${}${}",
        "A".repeat(22),
        "A".repeat((output_len * 8).div_ceil(6))
    )
}

/// Bytes carried by an unpadded base64 string, clamped to what Argon2 accepts.
fn b64_len(text: &str) -> usize {
    (text.len() * 6 / 8).clamp(4, 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_small_memory() {
        let hashed = generate_with(b"pw", 64, 1).unwrap();
        assert!(
            hashed.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{hashed}"
        );
        check(&hashed).unwrap();
        assert!(verify(&hashed, b"pw"));
        assert!(!verify(&hashed, b"pw "));
    }

    #[test]
    fn malformed_strings_are_refused() {
        for data in [
            "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=99$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$!!!",
            "$argon2id$",
        ] {
            assert!(check(data).is_err(), "{data}");
        }
    }

    #[test]
    fn dummy_keeps_the_parameters() {
        let dummy = dummy_like(
            "$argon2id$v=19$m=256,t=2,p=1$c2FsdHNhbHRzYWx0MTZieQ$XRsfnfF9b9ly18Qz2KV4Cb416WUlAV9iU3UFmzIrZ3g",
        );
        assert!(
            dummy.starts_with("$argon2id$v=19$m=256,t=2,p=1$"),
            "{dummy}"
        );
        check(&dummy).unwrap();
        assert!(!verify(&dummy, b"correct horse"));
    }
}
