//! Making new hashes, for `poppet pw -s SCHEME` (the twin of `doveadm pw`).
//!
//! Each scheme gets a fresh random salt from `rand`'s thread-local CSPRNG (ChaCha seeded from the OS) and the
//! defaults below. Every output verifies with `doveadm pw -t` as well as with [`crate::verify`].
//!
//! | scheme       | default                         | why                                                         |
//! |--------------|---------------------------------|-------------------------------------------------------------|
//! | SHA512-CRYPT | 5000 rounds, 16-char salt       | Dovecot's `CRYPT_SHA2_ROUNDS_DEFAULT` and salt length (= glibc) |
//! | SHA256-CRYPT | 5000 rounds, 16-char salt       | the same                                                    |
//! | BLF-CRYPT    | cost 10, `$2y$`                 | Dovecot's default is cost 5 (`CRYPT_BLF_ROUNDS_DEFAULT`), 32 times cheaper and too fast for today's GPUs; 10 is the common modern floor (OpenBSD, PHP). `-r 5` gives Dovecot's. |
//! | ARGON2ID     | m=64 MiB, t=3, p=1, 16-byte salt | what `doveadm pw -s ARGON2ID` writes (Dovecot 2.3.19, libsodium) |
//! | SCRAM-SHA-256 | 4096 iterations, 16-byte salt  | what `doveadm pw -s SCRAM-SHA-256` writes (Dovecot 2.3 ignores `-r` and always writes 4096); also RFC 7677's minimum |
//! | SSHA, SSHA256/512 | 4-byte salt                | what `doveadm pw` and OpenLDAP's `slappasswd` write          |
//! | PLAIN        | the password itself             | nothing to choose                                           |

use crate::error::HashError;
use crate::scheme::Scheme;
use crate::{argon, crypt, scram, ssha};

/// bcrypt cost for new BLF-CRYPT hashes (see the module table for why not Dovecot's 5).
const BLF_COST_DEFAULT: u32 = 10;

/// Hashes `password` with `scheme` and its default cost, returning the `{SCHEME}...` string.
///
/// Like `doveadm pw`, a BLF-CRYPT hash uses only the first 72 bytes of the password (bcrypt's limit), and a PLAIN
/// "hash" is the password itself, which must be UTF-8 (and, for a passwd-file, contain no `:` or newline). A
/// SCRAM-SHA-256 password must be UTF-8 too, since SCRAM normalises it as text (SASLprep).
pub fn hash(scheme: Scheme, password: &[u8]) -> Result<String, HashError> {
    let rounds = match scheme {
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => Some(crypt::SHA_ROUNDS_DEFAULT),
        Scheme::BlfCrypt => Some(BLF_COST_DEFAULT),
        Scheme::Argon2id => Some(argon::DEFAULT_T_COST),
        Scheme::ScramSha256 => Some(poppet_sasl::DEFAULT_ITERATIONS),
        Scheme::Ssha | Scheme::Ssha256 | Scheme::Ssha512 | Scheme::Plain => None,
    };
    generate(scheme, password, rounds)
}

/// Like [`hash`] with an explicit cost, as `doveadm pw -r ROUNDS`: SHA-crypt rounds (1000..=999999999), bcrypt
/// cost (4..=31), Argon2 passes `t` (1 or more; memory stays 64 MiB) or SCRAM-SHA-256 PBKDF2 iterations (4096 or
/// more, RFC 7677's floor; Dovecot 2.3's `doveadm pw` ignores `-r` here, but reads any count back). Out-of-range values are refused rather than
/// clamped as Dovecot does, so the operator gets the cost they asked for or an error.
pub fn hash_with_rounds(scheme: Scheme, password: &[u8], rounds: u32) -> Result<String, HashError> {
    match scheme {
        Scheme::Ssha | Scheme::Ssha256 | Scheme::Ssha512 | Scheme::Plain => {
            Err(HashError::RoundsNotApplicable(scheme))
        }
        _ => generate(scheme, password, Some(rounds)),
    }
}

fn generate(scheme: Scheme, password: &[u8], rounds: Option<u32>) -> Result<String, HashError> {
    let data = match (scheme, rounds) {
        (Scheme::Sha512Crypt | Scheme::Sha256Crypt | Scheme::BlfCrypt, Some(rounds)) => {
            crypt::generate(scheme, password, rounds)?
        }
        (Scheme::Argon2id, Some(t_cost)) => argon::generate(password, t_cost)?,
        (Scheme::ScramSha256, Some(iterations)) => scram::generate(password, iterations)?,
        (Scheme::Ssha | Scheme::Ssha256 | Scheme::Ssha512, None) => {
            ssha::generate(scheme, password)
        }
        (Scheme::Plain, None) => std::str::from_utf8(password)
            .map_err(|_| HashError::PlainNotUtf8)?
            .to_owned(),
        _ => return Err(HashError::RoundsNotApplicable(scheme)),
    };
    Ok(format!("{{{scheme}}}{data}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{PasswordHash, plaintext_equivalent, scram_keys, verify};

    /// Round trip for every scheme with a cheap cost (debug builds are slow); Argon2 at full cost is below.
    #[test]
    fn round_trip_every_scheme() {
        let password = "pässwörd with spaces".as_bytes();
        for scheme in Scheme::ALL {
            let text = match scheme {
                Scheme::Sha512Crypt | Scheme::Sha256Crypt => hash(scheme, password),
                Scheme::BlfCrypt => hash_with_rounds(scheme, password, 4),
                Scheme::Argon2id => {
                    argon::generate_with(password, 64, 1).map(|d| format!("{{ARGON2ID}}{d}"))
                }
                _ => hash(scheme, password),
            }
            .unwrap();
            assert!(text.starts_with(&format!("{{{scheme}}}")), "{text}");
            let parsed = PasswordHash::parse(&text).unwrap();
            assert_eq!(parsed.scheme(), scheme);
            assert!(verify(&parsed, password), "{text}");
            assert!(!verify(&parsed, b"wrong"), "{text}");
        }
    }

    #[test]
    fn salts_are_fresh() {
        for scheme in [Scheme::Sha256Crypt, Scheme::Ssha256] {
            assert_ne!(hash(scheme, b"pw").unwrap(), hash(scheme, b"pw").unwrap());
        }
    }

    #[test]
    fn default_costs_are_written() {
        let blf = hash(Scheme::BlfCrypt, b"pw").unwrap();
        assert!(blf.starts_with("{BLF-CRYPT}$2y$10$"), "{blf}");
        assert!(verify(&PasswordHash::parse(&blf).unwrap(), b"pw"));
        let sha = hash(Scheme::Sha512Crypt, b"pw").unwrap();
        assert!(
            sha.starts_with("{SHA512-CRYPT}$6$") && !sha.contains("rounds="),
            "{sha}"
        );
    }

    /// Argon2 with Dovecot's full defaults (64 MiB): slow in debug builds, but it is what `poppet pw` writes.
    #[test]
    fn argon2id_default_cost() {
        let text = hash(Scheme::Argon2id, b"pw").unwrap();
        assert!(
            text.starts_with("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"),
            "{text}"
        );
        assert!(verify(&PasswordHash::parse(&text).unwrap(), b"pw"));
    }

    #[test]
    fn scram_sha256_defaults_and_iterations() {
        let text = hash(Scheme::ScramSha256, b"pw").unwrap();
        assert!(text.starts_with("{SCRAM-SHA-256}4096,"), "{text}");
        let parsed = PasswordHash::parse(&text).unwrap();
        let keys = scram_keys(&parsed).unwrap();
        assert_eq!((keys.iterations, keys.salt.len()), (4096, 16));
        assert!(verify(&parsed, b"pw"));
        assert_ne!(text, hash(Scheme::ScramSha256, b"pw").unwrap());

        let text = hash_with_rounds(Scheme::ScramSha256, b"pw", 8192).unwrap();
        assert!(text.starts_with("{SCRAM-SHA-256}8192,"), "{text}");
        let parsed = PasswordHash::parse(&text).unwrap();
        assert_eq!(scram_keys(&parsed).map(|k| k.iterations), Some(8192));
        assert!(verify(&parsed, b"pw"));
        assert!(!verify(&parsed, b"pW"));
        assert!(matches!(
            hash_with_rounds(Scheme::ScramSha256, b"pw", 1000),
            Err(HashError::RoundsOutOfRange { min: 4096, .. })
        ));
    }

    #[test]
    fn plain_is_the_password() {
        let text = hash(Scheme::Plain, b"open sesame").unwrap();
        assert_eq!(text, "{PLAIN}open sesame");
        assert_eq!(
            plaintext_equivalent(&PasswordHash::parse(&text).unwrap()),
            Some(&b"open sesame"[..])
        );
        assert_eq!(
            hash(Scheme::Plain, &[0xff, 0xfe]),
            Err(HashError::PlainNotUtf8)
        );
    }

    #[test]
    fn rounds_errors() {
        assert_eq!(
            hash_with_rounds(Scheme::Ssha512, b"pw", 5),
            Err(HashError::RoundsNotApplicable(Scheme::Ssha512))
        );
        assert!(matches!(
            hash_with_rounds(Scheme::Argon2id, b"pw", 0),
            Err(HashError::RoundsOutOfRange { .. })
        ));
        assert!(matches!(
            hash_with_rounds(Scheme::BlfCrypt, b"pw", 32),
            Err(HashError::RoundsOutOfRange { .. })
        ));
    }
}
