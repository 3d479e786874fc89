//! A stored password hash in Dovecot's `{SCHEME}data` form, and checking passwords against it.
//!
//! Parsing validates the data for its scheme, so a malformed line is reported when a passwd-file is loaded rather
//! than turning into a failed login later. A string without `{SCHEME}` is read the way Dovecot's passwd-file reads
//! it, as its default scheme `CRYPT`: the `$id$` prefix says which algorithm it is.
//!
//! Verification compares in constant time wherever the scheme allows: the crypt and Argon2 libraries compare
//! digests in constant time, SSHA digests and SCRAM-SHA-256's StoredKey go through `subtle`, and PLAIN compares
//! SHA-512 digests of both sides so that not even the length of the stored password leaks.

use std::fmt;
use std::hint::black_box;
use std::str::FromStr;

use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;

use poppet_sasl::ScramCredentials;

use crate::error::ParseError;
use crate::scheme::Scheme;
use crate::{argon, crypt, scram, ssha};

/// A parsed, validated password hash. `Debug` shows the scheme only.
#[derive(Clone)]
pub struct PasswordHash {
    scheme: Scheme,
    /// The text after `{SCHEME}` (the whole string for a bare crypt hash), already validated for `scheme`.
    data: String,
}

impl PasswordHash {
    /// Parses `{SCHEME}data`, or a bare crypt string (`$6$...`, `$5$...`, `$2y$...`).
    ///
    /// The scheme name is case-insensitive. `{CRYPT}`, `{SHA512-CRYPT}`, `{SHA256-CRYPT}` and `{BLF-CRYPT}` all
    /// mean "libc crypt" to Dovecot, so for them the algorithm comes from the data's prefix and [`Self::scheme`]
    /// reports the real one. Nothing is trimmed: a PLAIN password may end in a space.
    pub fn parse(text: &str) -> Result<PasswordHash, ParseError> {
        if text.is_empty() {
            return Err(ParseError::Empty);
        }
        let Some(after_brace) = text.strip_prefix('{') else {
            return Self::crypt(text);
        };
        let (name, data) = after_brace
            .split_once('}')
            .ok_or(ParseError::UnterminatedScheme)?;
        // An empty `{PLAIN}` would let an empty password in; no scheme has empty data legitimately.
        if data.is_empty() {
            return Err(ParseError::Empty);
        }
        if name.eq_ignore_ascii_case("CRYPT") {
            return Self::crypt(data);
        }
        let scheme = Scheme::from_name(name)?;
        match scheme {
            _ if scheme.is_crypt() => return Self::crypt(data),
            Scheme::Argon2id => argon::check(data)?,
            Scheme::ScramSha256 => scram::check(data)?,
            Scheme::Ssha | Scheme::Ssha256 | Scheme::Ssha512 => ssha::check(scheme, data)?,
            _ => {}
        }
        Ok(PasswordHash {
            scheme,
            data: data.to_owned(),
        })
    }

    fn crypt(data: &str) -> Result<PasswordHash, ParseError> {
        let scheme = crypt::classify(data)?;
        Ok(PasswordHash {
            scheme,
            data: data.to_owned(),
        })
    }

    /// The scheme this hash is verified with.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// A hash of the same scheme and cost that no real password was hashed into, for timing only.
    fn dummy_like(&self) -> PasswordHash {
        let data = match self.scheme {
            Scheme::Sha512Crypt | Scheme::Sha256Crypt | Scheme::BlfCrypt => {
                crypt::dummy_like(&self.data)
            }
            Scheme::Argon2id => argon::dummy_like(&self.data),
            Scheme::ScramSha256 => scram::dummy_like(&self.data),
            Scheme::Ssha | Scheme::Ssha256 | Scheme::Ssha512 => {
                ssha::dummy_like(self.scheme, &self.data)
            }
            Scheme::Plain => String::from("\0poppet-dummy"),
        };
        PasswordHash {
            scheme: self.scheme,
            data,
        }
    }
}

impl FromStr for PasswordHash {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PasswordHash::parse(s)
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("scheme", &self.scheme)
            .field("data", &format_args!("<redacted>"))
            .finish()
    }
}

/// Whether `password` matches `hash`. Constant time in the password where the scheme allows (see module docs).
///
/// The cost is the scheme's: microseconds for SSHA and PLAIN, milliseconds for the crypt schemes, SCRAM-SHA-256
/// (PBKDF2 at the stored iteration count) and Argon2.
pub fn verify(hash: &PasswordHash, password: &[u8]) -> bool {
    match hash.scheme {
        Scheme::Sha512Crypt | Scheme::Sha256Crypt | Scheme::BlfCrypt => {
            crypt::verify(&hash.data, password)
        }
        Scheme::Argon2id => argon::verify(&hash.data, password),
        Scheme::ScramSha256 => scram::verify(&hash.data, password),
        Scheme::Ssha | Scheme::Ssha256 | Scheme::Ssha512 => {
            ssha::verify(hash.scheme, &hash.data, password)
        }
        Scheme::Plain => {
            let stored = Sha512::digest(hash.data.as_bytes());
            let given = Sha512::digest(password);
            stored.as_slice().ct_eq(given.as_slice()).into()
        }
    }
}

/// The password itself, when the stored form allows recovering it (only PLAIN).
///
/// Challenge-response mechanisms (APOP's MD5 digest, SCRAM) need the plaintext or something derived from it; a
/// hashed password cannot serve them, so callers should not offer those mechanisms for such users. SCRAM-SHA-256
/// can also be served from stored keys, see [`scram_keys`].
pub fn plaintext_equivalent(hash: &PasswordHash) -> Option<&[u8]> {
    match hash.scheme {
        Scheme::Plain => Some(hash.data.as_bytes()),
        _ => None,
    }
}

/// The SCRAM-SHA-256 iteration count, salt, StoredKey and ServerKey of a `{SCRAM-SHA-256}` hash, for the SASL
/// `SCRAM-SHA-256` mechanism; `None` for every other scheme.
///
/// A PLAIN password can serve SCRAM too, by deriving keys from [`plaintext_equivalent`] with
/// [`ScramCredentials::from_password`]. The keys let whoever holds them impersonate the server, so treat them as
/// secrets (their `Debug` is redacted).
///
/// ```
/// let hash = poppet_password::PasswordHash::parse(
///     "{SCRAM-SHA-256}4096,W22ZaJ0SNY7soEsUEjb6gQ==,\
///      WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=,wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=",
/// )?;
/// let keys = poppet_password::scram_keys(&hash).expect("a SCRAM-SHA-256 hash has keys");
/// assert_eq!((keys.iterations, keys.salt.len()), (4096, 16));
/// # Ok::<(), poppet_password::ParseError>(())
/// ```
pub fn scram_keys(hash: &PasswordHash) -> Option<ScramCredentials> {
    match hash.scheme {
        // Parsing validated the data, so this succeeds.
        Scheme::ScramSha256 => scram::parse(&hash.data).ok(),
        _ => None,
    }
}

/// The fixed hash [`dummy_verify`] checks against: SHA512-CRYPT at 5000 rounds, Dovecot's default scheme and
/// cost, with an all-zero digest. Made by [`PasswordHash::dummy_like`] from a default SHA512-CRYPT string.
const DUMMY_SHA512_CRYPT: &str = concat!(
    "$6$poppetdummysalt$",
    "......................................................................................"
);

/// Spends the time of a SHA512-CRYPT check (Dovecot's default scheme) and discards the result.
///
/// Call it when the user does not exist, so that an unknown user takes as long as a wrong password and login
/// names cannot be probed by timing. Prefer [`dummy_verify_like`] when the real hashes use another scheme or cost.
pub fn dummy_verify(password: &[u8]) {
    match PasswordHash::parse(DUMMY_SHA512_CRYPT) {
        Ok(dummy) => {
            black_box(verify(&dummy, black_box(password)));
        }
        Err(_) => debug_assert!(false, "the built-in dummy hash must parse"),
    }
}

/// Spends the time of checking `password` against a hash like `template` (same scheme and cost) and discards the
/// result. The template's own salt and digest are never used, so any user's hash may serve: a passwd-file plugin
/// passes, say, the first entry of the file.
pub fn dummy_verify_like(template: &PasswordHash, password: &[u8]) {
    black_box(verify(&template.dummy_like(), black_box(password)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let hash = PasswordHash::parse("{PLAIN}hunter2").unwrap();
        let text = format!("{hash:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("Plain") && text.contains("redacted"),
            "{text}"
        );
    }

    #[test]
    fn plain_and_its_aliases() {
        for text in ["{PLAIN}pw ", "{CLEARTEXT}pw ", "{clear}pw "] {
            let hash = PasswordHash::parse(text).unwrap();
            assert_eq!(hash.scheme(), Scheme::Plain);
            assert!(verify(&hash, b"pw "));
            assert!(!verify(&hash, b"pw"));
            assert_eq!(plaintext_equivalent(&hash), Some(&b"pw "[..]));
        }
    }

    /// `doveadm pw -s SCRAM-SHA-256 -p 'correct horse'` (Dovecot 2.3.19.1; more in `vectors.rs`).
    const SCRAM_CORRECT_HORSE: &str = "{SCRAM-SHA-256}4096,tDGxrBYWdGq3K9lMgeQ43w==,\
        n+fJy3sIJLKPzCOl0LGZim8eCRUYqf4mtOOEjvYAoCA=,OYlfCpBTBjUq+JG+rmb4tUSacIkwowaTkXio10CEGno=";

    #[test]
    fn scram_sha256_verifies_and_exposes_its_keys() {
        let lower = SCRAM_CORRECT_HORSE.replace("{SCRAM-SHA-256}", "{scram-sha-256}");
        for text in [SCRAM_CORRECT_HORSE, lower.as_str()] {
            let hash = PasswordHash::parse(text).unwrap();
            assert_eq!(hash.scheme(), Scheme::ScramSha256);
            assert!(verify(&hash, b"correct horse"));
            for wrong in [
                &b"correct horsE"[..],
                b"correct horse ",
                b"",
                b"correct\xffhorse",
            ] {
                assert!(
                    !verify(&hash, wrong),
                    "{:?}",
                    String::from_utf8_lossy(wrong)
                );
            }
            assert_eq!(plaintext_equivalent(&hash), None);
            let keys = scram_keys(&hash).unwrap();
            assert_eq!((keys.iterations, keys.salt.len()), (4096, 16));
            assert_eq!(keys.to_dovecot(), SCRAM_CORRECT_HORSE);
            let text = format!("{hash:?}");
            assert!(
                !text.contains("tDGx") && text.contains("ScramSha256"),
                "{text}"
            );
        }
    }

    #[test]
    fn only_scram_has_scram_keys() {
        for text in [
            "{PLAIN}pencil",
            "{SSHA256}LaceSxvQCHaTw6bmHbxQsac+Q/G/OhWx/qOmA4M14w75LhZf",
            "$2y$04$EU.r6OstGWBmhUjBV0EAOOxG3ST7reej7zLBC0f.7HRi2FS.GKBHO",
        ] {
            assert!(
                scram_keys(&PasswordHash::parse(text).unwrap()).is_none(),
                "{text}"
            );
        }
    }

    #[test]
    fn only_plain_has_a_plaintext_equivalent() {
        let hash =
            PasswordHash::parse("$2y$04$EU.r6OstGWBmhUjBV0EAOOxG3ST7reej7zLBC0f.7HRi2FS.GKBHO")
                .unwrap();
        assert_eq!(plaintext_equivalent(&hash), None);
    }

    #[test]
    fn parse_errors() {
        let cases: &[(&str, ParseError)] = &[
            ("", ParseError::Empty),
            ("{CRYPT}", ParseError::Empty),
            ("{PLAIN}", ParseError::Empty),
            ("{NOSUCH}", ParseError::Empty),
            ("{SHA512-CRYPT", ParseError::UnterminatedScheme),
            (
                "{MD5-CRYPT}$1$abc$def",
                ParseError::UnknownScheme("MD5-CRYPT".into()),
            ),
            (
                "{PLAIN-MD5}1a1dc91c907325c69271ddf0c944bc72",
                ParseError::UnknownScheme("PLAIN-MD5".into()),
            ),
            (
                "$1$abcdefgh$xyz",
                ParseError::UnsupportedCrypt {
                    prefix: "$1$".into(),
                },
            ),
            (
                "hunter2",
                ParseError::UnsupportedCrypt {
                    prefix: String::new(),
                },
            ),
            (
                "{CRYPT}$y$j9T$abc$def",
                ParseError::UnsupportedCrypt {
                    prefix: "$y$".into(),
                },
            ),
            (
                "$argon2id$v=19$m=256,t=2,p=1$c2FsdA$aGFzaA",
                ParseError::UnsupportedCrypt {
                    prefix: "$argon2id$".into(),
                },
            ),
            (
                "{BLF-CRYPT}$2x$05$abc",
                ParseError::UnsupportedCrypt {
                    prefix: "$2x$".into(),
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(
                PasswordHash::parse(text)
                    .as_ref()
                    .map_err(Clone::clone)
                    .err(),
                Some(want.clone()),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_data_for_known_schemes() {
        for text in [
            "$6$salt$tooshort",
            "$6$rounds=10$salt$tooshort",
            "$6$rounds=abc$salt$x",
            "$6$nodigest",
            "$6$saltsaltsaltsaltsalt$kAx5Ep0hoFKUhVnhd6ASJ.ZB1G.GwenArPl1xszDzSDivUl6jjEamRlHnFtkZI13kiYwzZRQGEh/8U/BDGWCG0",
            "$5$salt$!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "$2y$05$short",
            "$2y$99$nfwp90ssnVrar1Qrk/3gcuvQFhdJlthexAH1HTpg36oFE3Z1B0wyS",
            "$2y$0x$nfwp90ssnVrar1Qrk/3gcuvQFhdJlthexAH1HTpg36oFE3Z1B0wyS",
            "{ARGON2ID}$argon2id$v=19$m=65536",
            "{SSHA256}AAAA",
            "{SSHA512}%%%",
            "{SCRAM-SHA-256}4096,c2FsdA==,AAAA",
            "{SCRAM-SHA-256}0,tDGxrBYWdGq3K9lMgeQ43w==,n+fJy3sIJLKPzCOl0LGZim8eCRUYqf4mtOOEjvYAoCA=,OYlfCpBTBjUq+JG+rmb4tUSacIkwowaTkXio10CEGno=",
            "{SCRAM-SHA-256}4096,tDGxrBYWdGq3K9lMgeQ43w==,n+fJy3sIJLKPzCOl0LGZim8eCRUYqf4mtOOEjvYAoC==,OYlfCpBTBjUq+JG+rmb4tUSacIkwowaTkXio10CEGno=",
        ] {
            let err = PasswordHash::parse(text).unwrap_err();
            assert!(
                matches!(err, ParseError::Malformed { .. }),
                "{text}: {err:?}"
            );
            assert!(
                !err.to_string().contains(text),
                "error echoes the hash: {err}"
            );
        }
    }

    #[test]
    fn dummy_verify_never_panics_and_dummies_parse() {
        dummy_verify(b"anything");
        for text in [
            "{PLAIN}x",
            "{SSHA256}LaceSxvQCHaTw6bmHbxQsac+Q/G/OhWx/qOmA4M14w75LhZf",
            SCRAM_CORRECT_HORSE,
            "$2y$04$EU.r6OstGWBmhUjBV0EAOOxG3ST7reej7zLBC0f.7HRi2FS.GKBHO",
        ] {
            let template = PasswordHash::parse(text).unwrap();
            let dummy = template.dummy_like();
            assert_eq!(dummy.scheme(), template.scheme());
            if dummy.scheme() != Scheme::Plain {
                let rendered = format!("{{{}}}{}", dummy.scheme(), dummy.data);
                PasswordHash::parse(&rendered).unwrap();
            }
            assert!(!verify(&dummy, b"x"));
            dummy_verify_like(&template, b"x");
        }
    }
}
