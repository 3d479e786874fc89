//! SSHA, SSHA256 and SSHA512: a salted SHA-1 or SHA-2 digest, base64 of `digest || salt`, as Dovecot and OpenLDAP
//! store it.
//!
//! `{SSHA}` (SHA-1) is what OpenLDAP's `slappasswd` writes by default, so most `userPassword` values in the wild use
//! it; SHA-1's collision weakness does not matter for a salted password digest, but its speed does. These are fast
//! hashes, kept for migrating existing directories, not for new passwords. Dovecot reads a salt of
//! any length of at least one byte after the digest; `doveadm pw` writes 4 bytes, and so do we.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use rand::Rng;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::error::ParseError;
use crate::scheme::Scheme;

/// Salt bytes for new hashes: 4, as `doveadm pw -s SSHA256` and OpenLDAP's `slappasswd -h {SSHA}` write.
const SALT_LEN: usize = 4;

fn digest_len(scheme: Scheme) -> usize {
    match scheme {
        Scheme::Ssha => 20,
        Scheme::Ssha256 => 32,
        _ => 64,
    }
}

fn digest(scheme: Scheme, password: &[u8], salt: &[u8]) -> Vec<u8> {
    fn salted<D: Digest>(password: &[u8], salt: &[u8]) -> Vec<u8> {
        D::new()
            .chain_update(password)
            .chain_update(salt)
            .finalize()
            .to_vec()
    }
    match scheme {
        Scheme::Ssha => salted::<Sha1>(password, salt),
        Scheme::Ssha256 => salted::<Sha256>(password, salt),
        _ => salted::<Sha512>(password, salt),
    }
}

/// Decodes `data` into (digest, salt), checking there is a digest and at least one byte of salt.
fn split(scheme: Scheme, data: &str) -> Result<(Vec<u8>, Vec<u8>), ParseError> {
    let bad = |reason| ParseError::Malformed { scheme, reason };
    // Padding is optional: some tools strip it, and Dovecot's decoder does not insist on it.
    let mut raw = STANDARD_PAD_INDIFFERENT
        .decode(data)
        .map_err(|_| bad("not valid base64"))?;
    if raw.len() <= digest_len(scheme) {
        return Err(bad("too short: no salt after the digest"));
    }
    let salt = raw.split_off(digest_len(scheme));
    Ok((raw, salt))
}

/// Checks that `data` decodes to a digest plus salt.
pub(crate) fn check(scheme: Scheme, data: &str) -> Result<(), ParseError> {
    split(scheme, data).map(|_| ())
}

/// Checks `password` against `data`, comparing digests in constant time.
pub(crate) fn verify(scheme: Scheme, data: &str, password: &[u8]) -> bool {
    match split(scheme, data) {
        Ok((expected, salt)) => digest(scheme, password, &salt).ct_eq(&expected).into(),
        Err(_) => false,
    }
}

/// Makes new data (without the `{SCHEME}` prefix) with a fresh salt.
pub(crate) fn generate(scheme: Scheme, password: &[u8]) -> String {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    let mut raw = digest(scheme, password, &salt);
    raw.extend_from_slice(&salt);
    STANDARD.encode(raw)
}

/// Data with the same digest and salt lengths as `template`, all zero, to spend the same time on an unknown user.
pub(crate) fn dummy_like(scheme: Scheme, template: &str) -> String {
    let salt_len = split(scheme, template).map_or(SALT_LEN, |(_, salt)| salt.len());
    STANDARD.encode(vec![0u8; digest_len(scheme) + salt_len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_size() {
        for scheme in [Scheme::Ssha, Scheme::Ssha256, Scheme::Ssha512] {
            let data = generate(scheme, b"pw");
            check(scheme, &data).unwrap();
            assert!(verify(scheme, &data, b"pw"));
            assert!(!verify(scheme, &data, b"Pw"));
            assert_eq!(
                STANDARD.decode(&data).unwrap().len(),
                digest_len(scheme) + SALT_LEN
            );
            assert!(!verify(scheme, &dummy_like(scheme, &data), b"pw"));
        }
    }

    #[test]
    fn malformed_data_is_refused() {
        // A bare SHA-256 digest (32 bytes, no salt) and a string that is not base64.
        let unsalted = STANDARD.encode([7u8; 32]);
        assert!(check(Scheme::Ssha256, &unsalted).is_err());
        assert!(check(Scheme::Ssha, &STANDARD.encode([7u8; 20])).is_err());
        assert!(check(Scheme::Ssha512, "not*base64").is_err());
        assert!(check(Scheme::Ssha512, "").is_err());
    }
}
