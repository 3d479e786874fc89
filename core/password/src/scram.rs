//! SCRAM-SHA-256: the RFC 5802 server keys, stored as Dovecot writes them,
//! `{SCRAM-SHA-256}<iterations>,<b64 salt>,<b64 StoredKey>,<b64 ServerKey>`.
//!
//! The keys serve two purposes. A SASL `SCRAM-SHA-256` exchange uses them directly (see [`crate::scram_keys`]),
//! so the password never crosses the wire; and a USER/PASS or `AUTH PLAIN` login is checked by deriving the keys
//! from the given password with the stored salt and iteration count (PBKDF2-HMAC-SHA-256) and comparing StoredKey
//! in constant time, which is what Dovecot does too. Parsing and deriving are `poppet-sasl`'s, so the SCRAM
//! mechanism and this scheme can never disagree about the format.
//!
//! `poppet-sasl` applies SASLprep to the password as RFC 5802 requires; Dovecot 2.3 does not. The two agree for
//! every ASCII password and for NFC-normalised text without compatibility characters, which covers passwords typed
//! on any common system.

use poppet_sasl::{DEFAULT_ITERATIONS, SaslError, ScramCredentials};
use subtle::ConstantTimeEq;

use crate::error::{HashError, ParseError};
use crate::scheme::Scheme;

/// The smallest iteration count [`generate`] accepts: RFC 7677 §4, "the hash iteration-count announced by a server
/// SHOULD be at least 4096" (also Dovecot's fixed count).
const MIN_ITERATIONS: u32 = DEFAULT_ITERATIONS;

/// Salt bytes of a template that cannot be read: 16, what Dovecot and `poppet-sasl` write.
const SALT_LEN: usize = 16;

/// The `{SCRAM-SHA-256}` prefix that `poppet-sasl` writes and the data after it lacks.
const PREFIX: &str = "{SCRAM-SHA-256}";

/// Parses `data` (the text after `{SCRAM-SHA-256}`) with `poppet-sasl`'s parser.
pub(crate) fn parse(data: &str) -> Result<ScramCredentials, ParseError> {
    ScramCredentials::parse_dovecot(data).map_err(|err| ParseError::Malformed {
        scheme: Scheme::ScramSha256,
        reason: match err {
            SaslError::InvalidStoredCredentials(reason) => reason,
            _ => "not Dovecot's SCRAM-SHA-256 form",
        },
    })
}

/// Checks that `data` has four fields: a positive iteration count, a salt and two 32-byte keys.
pub(crate) fn check(data: &str) -> Result<(), ParseError> {
    parse(data).map(|_| ())
}

/// Checks `password` against `data` by deriving StoredKey with the stored salt and iterations.
///
/// The password must be UTF-8 (SCRAM's SASLprep works on text); other bytes still cost a derivation, so they take
/// as long as a wrong password, and are refused.
pub(crate) fn verify(data: &str, password: &[u8]) -> bool {
    let Ok(stored) = parse(data) else {
        return false;
    };
    let (text, utf8) = match std::str::from_utf8(password) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), true),
        Err(_) => (String::from_utf8_lossy(password), false),
    };
    let derived = ScramCredentials::from_password_with_salt(&text, &stored.salt, stored.iterations);
    let same: bool = derived.stored_key.ct_eq(&stored.stored_key).into();
    same && utf8
}

/// Makes new data (without the `{SCRAM-SHA-256}` prefix) with a fresh 16-byte salt and `iterations`.
pub(crate) fn generate(password: &[u8], iterations: u32) -> Result<String, HashError> {
    if iterations < MIN_ITERATIONS {
        return Err(HashError::RoundsOutOfRange {
            scheme: Scheme::ScramSha256,
            rounds: iterations,
            min: MIN_ITERATIONS,
            max: u32::MAX,
        });
    }
    // SASLprep needs text; a password that is not UTF-8 could never be typed into a SCRAM client either.
    let text = std::str::from_utf8(password).map_err(|_| HashError::Backend {
        scheme: Scheme::ScramSha256,
        reason: "the password must be valid UTF-8".to_owned(),
    })?;
    Ok(without_prefix(
        ScramCredentials::from_password(text, iterations).to_dovecot(),
    ))
}

/// Data with the same iteration count and salt length as `template` but zero salt and keys, to spend the same time
/// on an unknown user. Falls back to Dovecot's defaults if `template` is odd.
pub(crate) fn dummy_like(template: &str) -> String {
    let (iterations, salt_len) = parse(template).map_or((DEFAULT_ITERATIONS, SALT_LEN), |creds| {
        (creds.iterations, creds.salt.len())
    });
    let dummy = ScramCredentials {
        salt: vec![0; salt_len],
        iterations,
        stored_key: [0; 32],
        server_key: [0; 32],
    };
    without_prefix(dummy.to_dovecot())
}

fn without_prefix(stored: String) -> String {
    match stored.strip_prefix(PREFIX) {
        Some(data) => data.to_owned(),
        None => stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_iterations() {
        let data = generate(b"pencil", 4096).unwrap();
        assert!(data.starts_with("4096,"), "{data}");
        check(&data).unwrap();
        assert!(verify(&data, b"pencil"));
        assert!(!verify(&data, b"Pencil"));
        let creds = parse(&data).unwrap();
        assert_eq!(creds.salt.len(), SALT_LEN);
        assert_eq!(
            creds,
            ScramCredentials::from_password_with_salt("pencil", &creds.salt, 4096)
        );
        assert!(generate(b"pencil", 5000).unwrap().starts_with("5000,"));
        assert_ne!(generate(b"pencil", 4096).unwrap(), data);
    }

    #[test]
    fn rfc_7677_keys_verify() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations. The keys
        // were computed independently with Python's hashlib.pbkdf2_hmac and hmac.
        let salt = [
            0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e, 0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36,
            0xfa, 0x81,
        ];
        let data = without_prefix(
            ScramCredentials::from_password_with_salt("pencil", &salt, 4096).to_dovecot(),
        );
        assert_eq!(
            data,
            "4096,W22ZaJ0SNY7soEsUEjb6gQ==,WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,\
             wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        assert!(verify(&data, b"pencil"));
        assert!(!verify(&data, b"pencil "));
    }

    #[test]
    fn non_utf8_passwords_are_refused() {
        let data = generate("pä".as_bytes(), 4096).unwrap();
        assert!(verify(&data, "pä".as_bytes()));
        // Latin-1 "pä" is not UTF-8; it must not match through lossy conversion or anything else.
        assert!(!verify(&data, b"p\xe4"));
        assert!(matches!(
            generate(b"p\xe4", 4096),
            Err(HashError::Backend { .. })
        ));
    }

    #[test]
    fn too_few_iterations_are_refused() {
        assert_eq!(
            generate(b"pw", 4095),
            Err(HashError::RoundsOutOfRange {
                scheme: Scheme::ScramSha256,
                rounds: 4095,
                min: 4096,
                max: u32::MAX,
            })
        );
    }

    #[test]
    fn malformed_data_is_refused_with_a_reason() {
        for bad in [
            "",
            "4096",
            "4096,c2FsdA==,AAAA,AAAA",
            "0,c2FsdA==,AAAA,AAAA",
            "{PLAIN}x",
        ] {
            let err = check(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    ParseError::Malformed {
                        scheme: Scheme::ScramSha256,
                        ..
                    }
                ),
                "{bad}: {err:?}"
            );
            assert!(!verify(bad, b"x"));
        }
    }

    #[test]
    fn dummy_keeps_iterations_and_salt_length() {
        let data = format!(
            "5000,{},{},{}",
            "AAECAwQFBgcICQoLDA0ODxAREhM=", // 20 bytes
            "n+fJy3sIJLKPzCOl0LGZim8eCRUYqf4mtOOEjvYAoCA=",
            "OYlfCpBTBjUq+JG+rmb4tUSacIkwowaTkXio10CEGno="
        );
        let dummy = parse(&dummy_like(&data)).unwrap();
        assert_eq!((dummy.iterations, dummy.salt.len()), (5000, 20));
        assert_eq!(dummy.stored_key, [0; 32]);
        let fallback = parse(&dummy_like("garbage")).unwrap();
        assert_eq!(
            (fallback.iterations, fallback.salt.len()),
            (DEFAULT_ITERATIONS, SALT_LEN)
        );
    }
}
