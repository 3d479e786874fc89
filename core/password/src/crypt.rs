//! The crypt(3) family: SHA512-CRYPT (`$6$`), SHA256-CRYPT (`$5$`) and BLF-CRYPT (`$2y$`, `$2b$`, `$2a$`).
//!
//! Dovecot verifies all of `{CRYPT}`, `{SHA512-CRYPT}`, `{SHA256-CRYPT}` and `{BLF-CRYPT}` with the same libc
//! `crypt()` call, so the algorithm is chosen by the `$id$` prefix of the data, not by the name in braces
//! (`doveadm pw -t '{SHA512-CRYPT}$2y$04$...'` verifies). We do the same, and validate the shape up front so a
//! typo is reported when the file is loaded. Verification is done by the RustCrypto `sha-crypt` and the `bcrypt`
//! crates, both of which compare digests in constant time.

use rand::Rng;
use sha_crypt::{PasswordHasher, PasswordVerifier, ShaCrypt};

use crate::error::{HashError, ParseError};
use crate::scheme::Scheme;

/// SHA-crypt rounds when none are written: glibc's and Dovecot's `CRYPT_SHA2_ROUNDS_DEFAULT` (5000).
pub(crate) const SHA_ROUNDS_DEFAULT: u32 = 5_000;
/// The SHA-crypt rounds range (Drepper's spec; glibc clamps, we refuse).
const SHA_ROUNDS: (u32, u32) = (1_000, 999_999_999);
/// bcrypt cost range: 2^4 to 2^31 iterations.
const BLF_COST: (u32, u32) = (4, 31);
/// The alphabet of crypt's base64 (salts and digests of SHA-crypt, bcrypt's own order differs but not its set).
const CRYPT_ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Recognises a crypt string by its prefix and checks its shape, returning the scheme it really is.
pub(crate) fn classify(data: &str) -> Result<Scheme, ParseError> {
    if let Some(rest) = data.strip_prefix("$6$") {
        check_sha(Scheme::Sha512Crypt, rest, 86)?;
        Ok(Scheme::Sha512Crypt)
    } else if let Some(rest) = data.strip_prefix("$5$") {
        check_sha(Scheme::Sha256Crypt, rest, 43)?;
        Ok(Scheme::Sha256Crypt)
    } else if ["$2y$", "$2b$", "$2a$"].iter().any(|p| data.starts_with(p)) {
        check_bcrypt(data)?;
        Ok(Scheme::BlfCrypt)
    } else {
        Err(ParseError::UnsupportedCrypt {
            prefix: crypt_prefix(data),
        })
    }
}

/// The `$id$` part of an unsupported crypt string, short and safe to show.
fn crypt_prefix(data: &str) -> String {
    let Some(rest) = data.strip_prefix('$') else {
        return String::new();
    };
    match rest.find('$') {
        Some(end) if end <= 10 => format!("${}$", &rest[..end]),
        _ => "$".to_owned(),
    }
}

fn in_alphabet(text: &str) -> bool {
    text.bytes().all(|b| CRYPT_ALPHABET.contains(&b))
}

/// `[rounds=N$]salt$digest`, the part after `$5$`/`$6$`.
fn check_sha(scheme: Scheme, rest: &str, digest_len: usize) -> Result<(), ParseError> {
    let bad = |reason| ParseError::Malformed { scheme, reason };
    let rest = match rest.strip_prefix("rounds=") {
        Some(after) => {
            let (num, tail) = after.split_once('$').ok_or(bad("no '$' after rounds="))?;
            let rounds: u32 = num.parse().map_err(|_| bad("rounds is not a number"))?;
            if !(SHA_ROUNDS.0..=SHA_ROUNDS.1).contains(&rounds) {
                return Err(bad("rounds outside 1000..=999999999"));
            }
            tail
        }
        None => rest,
    };
    let (salt, digest) = rest
        .split_once('$')
        .ok_or(bad("no '$' between salt and digest"))?;
    // glibc reads at most 16 salt characters and writes back only those, so a longer salt can never match in
    // Dovecot; refusing it here reports the problem instead of failing every login.
    if salt.is_empty() || salt.len() > 16 {
        return Err(bad("salt must be 1 to 16 characters"));
    }
    if salt
        .bytes()
        .any(|b| b == b'$' || b.is_ascii_control() || b == b':')
    {
        return Err(bad("salt contains a forbidden character"));
    }
    if digest.len() != digest_len || !in_alphabet(digest) {
        return Err(bad("digest has the wrong length or characters"));
    }
    Ok(())
}

/// `$2y$NN$` + 22 salt characters + 31 digest characters.
fn check_bcrypt(data: &str) -> Result<(), ParseError> {
    let bad = |reason| ParseError::Malformed {
        scheme: Scheme::BlfCrypt,
        reason,
    };
    if data.len() != 60 || !data.is_ascii() {
        return Err(bad("expected 60 characters"));
    }
    let cost: u32 = data[4..6]
        .parse()
        .map_err(|_| bad("cost is not two digits"))?;
    if !(BLF_COST.0..=BLF_COST.1).contains(&cost) || &data[6..7] != "$" {
        return Err(bad("cost must be 04 to 31, followed by '$'"));
    }
    if !in_alphabet(&data[7..]) || data.parse::<bcrypt::HashParts>().is_err() {
        return Err(bad("salt or digest is not bcrypt base64"));
    }
    Ok(())
}

/// Checks `password` against a crypt string that [`classify`] accepted.
pub(crate) fn verify(data: &str, password: &[u8]) -> bool {
    if data.starts_with("$2") {
        // Like libxcrypt, bcrypt reads at most 72 bytes of the password.
        bcrypt::verify(password, data).unwrap_or(false)
    } else {
        ShaCrypt::default().verify_password(password, data).is_ok()
    }
}

/// Makes a new crypt string. `rounds` is SHA-crypt's rounds or bcrypt's cost, already defaulted by the caller.
pub(crate) fn generate(scheme: Scheme, password: &[u8], rounds: u32) -> Result<String, HashError> {
    let backend = |reason: String| HashError::Backend { scheme, reason };
    match scheme {
        Scheme::BlfCrypt => {
            check_range(scheme, rounds, BLF_COST)?;
            let mut salt = [0u8; 16];
            rand::rng().fill_bytes(&mut salt);
            let parts = bcrypt::hash_with_salt(password, rounds, salt)
                .map_err(|e| backend(e.to_string()))?;
            // Dovecot 2.3 writes $2y$ (libxcrypt's preferred prefix); all three verify everywhere.
            Ok(parts.format_for_version(bcrypt::Version::TwoY))
        }
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            check_range(scheme, rounds, SHA_ROUNDS)?;
            let algorithm = if scheme == Scheme::Sha512Crypt {
                sha_crypt::Algorithm::Sha512Crypt
            } else {
                sha_crypt::Algorithm::Sha256Crypt
            };
            let params = sha_crypt::Params::new(rounds).map_err(|e| backend(e.to_string()))?;
            // sha-crypt base64-encodes the salt bytes it is given: 12 random bytes become exactly the 16 salt
            // characters (96 bits) that glibc reads and Dovecot writes. More would be silently cut by glibc.
            let mut salt = [0u8; 12];
            rand::rng().fill_bytes(&mut salt);
            let hashed = ShaCrypt::new(algorithm, params)
                .hash_password_with_salt(password, &salt)
                .map_err(|e| backend(e.to_string()))?;
            Ok(omit_default_rounds(hashed.as_str()))
        }
        _ => Err(backend("not a crypt scheme".to_owned())),
    }
}

/// sha-crypt always writes `rounds=N$`; glibc and Dovecot leave it out when N is the default. Both forms hash
/// identically (the rounds text is not hashed), so we write Dovecot's shorter one.
fn omit_default_rounds(mcf: &str) -> String {
    let default = format!("$rounds={SHA_ROUNDS_DEFAULT}$");
    match mcf.get(2..) {
        Some(tail) if tail.starts_with(&default) => {
            format!("{}${}", &mcf[..2], &tail[default.len()..])
        }
        _ => mcf.to_owned(),
    }
}

fn check_range(scheme: Scheme, rounds: u32, (min, max): (u32, u32)) -> Result<(), HashError> {
    if (min..=max).contains(&rounds) {
        Ok(())
    } else {
        Err(HashError::RoundsOutOfRange {
            scheme,
            rounds,
            min,
            max,
        })
    }
}

/// A crypt string with the same algorithm and cost as `template` but a fixed salt and an all-zero digest, used
/// only to spend the same time on an unknown user. Falls back to default SHA512-CRYPT if `template` is odd.
pub(crate) fn dummy_like(template: &str) -> String {
    if let Some(head) = template.get(..7).filter(|h| h.starts_with("$2")) {
        return format!("{head}{}", ".".repeat(53));
    }
    let (id, digest_len) = if template.starts_with("$5$") {
        ("$5$", 43)
    } else {
        ("$6$", 86)
    };
    let rounds = template
        .get(3..)
        .and_then(|rest| rest.strip_prefix("rounds="))
        .and_then(|after| after.split_once('$'))
        .map(|(num, _)| format!("rounds={num}$"))
        .unwrap_or_default();
    format!("{id}{rounds}poppetdummysalt${}", ".".repeat(digest_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_strings_have_dovecots_shape() {
        let sha512 = generate(Scheme::Sha512Crypt, b"pw", SHA_ROUNDS_DEFAULT).unwrap();
        assert!(
            sha512.starts_with("$6$") && !sha512.contains("rounds="),
            "{sha512}"
        );
        assert_eq!(sha512.len(), 3 + 16 + 1 + 86);
        let sha256 = generate(Scheme::Sha256Crypt, b"pw", 1_000).unwrap();
        assert!(sha256.starts_with("$5$rounds=1000$"), "{sha256}");
        let blf = generate(Scheme::BlfCrypt, b"pw", 4).unwrap();
        assert!(blf.starts_with("$2y$04$") && blf.len() == 60, "{blf}");
        for s in [&sha512, &sha256, &blf] {
            assert!(classify(s).is_ok(), "{s}");
            assert!(verify(s, b"pw"));
            assert!(!verify(s, b"pW"));
        }
    }

    #[test]
    fn out_of_range_rounds_are_refused() {
        assert!(matches!(
            generate(Scheme::BlfCrypt, b"pw", 3),
            Err(HashError::RoundsOutOfRange { .. })
        ));
        assert!(matches!(
            generate(Scheme::Sha512Crypt, b"pw", 999),
            Err(HashError::RoundsOutOfRange { .. })
        ));
    }

    #[test]
    fn dummies_are_well_formed_and_keep_the_cost() {
        let blf = dummy_like("$2b$07$EU.r6OstGWBmhUjBV0EAOOxG3ST7reej7zLBC0f.7HRi2FS.GKBHO");
        assert_eq!(classify(&blf), Ok(Scheme::BlfCrypt));
        assert!(blf.starts_with("$2b$07$"));
        let sha = dummy_like("$5$rounds=1000$k5h7KrnDsk3auI1c$J4B");
        assert_eq!(classify(&sha), Ok(Scheme::Sha256Crypt));
        assert!(sha.starts_with("$5$rounds=1000$"));
        assert_eq!(classify(&dummy_like("$6$x$y")), Ok(Scheme::Sha512Crypt));
        assert!(!verify(&sha, b"anything"));
    }

    #[test]
    fn prefixes_of_unsupported_formats() {
        assert_eq!(crypt_prefix("$1$abc$def"), "$1$");
        assert_eq!(crypt_prefix("abJnggxhB/yWI"), "");
        assert_eq!(crypt_prefix("$verylongidentifier$x"), "$");
    }
}
