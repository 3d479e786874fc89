//! The password schemes Poppet understands, named as Dovecot names them.
//!
//! Dovecot looks scheme names up case-insensitively (`{sha512-crypt}` works), and so do we. Only schemes we can
//! verify are listed: a passwd-file line with any other scheme is refused at load time, naming the scheme, rather
//! than failing every login later.

use std::fmt;
use std::str::FromStr;

use crate::error::ParseError;

/// A password scheme, as written between the braces of Dovecot's `{SCHEME}data` form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `SHA512-CRYPT`: glibc's `$6$` SHA-crypt (Drepper), Dovecot's recommended crypt scheme.
    Sha512Crypt,
    /// `SHA256-CRYPT`: glibc's `$5$` SHA-crypt.
    Sha256Crypt,
    /// `BLF-CRYPT`: bcrypt, `$2y$`, `$2b$` or `$2a$`.
    BlfCrypt,
    /// `ARGON2ID`: a PHC string `$argon2id$v=19$m=..,t=..,p=..$salt$hash` as libsodium writes it.
    Argon2id,
    /// `SCRAM-SHA-256`: RFC 5802 keys, `<iterations>,<b64 salt>,<b64 StoredKey>,<b64 ServerKey>`. Serves the
    /// SASL `SCRAM-SHA-256` mechanism without storing the password.
    ScramSha256,
    /// `SSHA`: base64 of `SHA-1(password || salt) || salt`, what OpenLDAP's `slappasswd` writes by default.
    Ssha,
    /// `SSHA256`: base64 of `SHA-256(password || salt) || salt`.
    Ssha256,
    /// `SSHA512`: base64 of `SHA-512(password || salt) || salt`.
    Ssha512,
    /// `PLAIN` (aliases `CLEARTEXT`, `CLEAR`): the password itself. Needed for APOP, otherwise discouraged.
    Plain,
}

impl Scheme {
    /// Every scheme, in the order `poppet pw -l` lists them.
    pub const ALL: [Scheme; 9] = [
        Scheme::Sha512Crypt,
        Scheme::Sha256Crypt,
        Scheme::BlfCrypt,
        Scheme::Argon2id,
        Scheme::ScramSha256,
        Scheme::Ssha,
        Scheme::Ssha256,
        Scheme::Ssha512,
        Scheme::Plain,
    ];

    /// The canonical Dovecot name, as written between the braces (`SHA512-CRYPT`).
    pub const fn name(self) -> &'static str {
        match self {
            Scheme::Sha512Crypt => "SHA512-CRYPT",
            Scheme::Sha256Crypt => "SHA256-CRYPT",
            Scheme::BlfCrypt => "BLF-CRYPT",
            Scheme::Argon2id => "ARGON2ID",
            Scheme::ScramSha256 => "SCRAM-SHA-256",
            Scheme::Ssha => "SSHA",
            Scheme::Ssha256 => "SSHA256",
            Scheme::Ssha512 => "SSHA512",
            Scheme::Plain => "PLAIN",
        }
    }

    /// Looks a scheme up by name, ignoring case as Dovecot does, and accepting PLAIN's aliases.
    ///
    /// `CRYPT` is not a scheme of its own here: a `{CRYPT}` hash is recognised by its `$id$` prefix when parsed
    /// (see [`crate::PasswordHash::parse`]), so asking for it by name is an error.
    pub fn from_name(name: &str) -> Result<Scheme, ParseError> {
        let upper = name.to_ascii_uppercase();
        let scheme = match upper.as_str() {
            "SHA512-CRYPT" => Scheme::Sha512Crypt,
            "SHA256-CRYPT" => Scheme::Sha256Crypt,
            "BLF-CRYPT" => Scheme::BlfCrypt,
            "ARGON2ID" => Scheme::Argon2id,
            "SCRAM-SHA-256" => Scheme::ScramSha256,
            "SSHA" => Scheme::Ssha,
            "SSHA256" => Scheme::Ssha256,
            "SSHA512" => Scheme::Ssha512,
            "PLAIN" | "CLEARTEXT" | "CLEAR" => Scheme::Plain,
            _ => return Err(ParseError::UnknownScheme(name.to_owned())),
        };
        Ok(scheme)
    }

    /// Whether the scheme is one of those Dovecot verifies through libc `crypt()`.
    pub(crate) const fn is_crypt(self) -> bool {
        matches!(
            self,
            Scheme::Sha512Crypt | Scheme::Sha256Crypt | Scheme::BlfCrypt
        )
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scheme {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheme::from_name(s)
    }
}

/// The supported names, for error messages.
pub(crate) fn supported_list() -> String {
    let names: Vec<&str> = Scheme::ALL.iter().map(|s| s.name()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_ignore_case() {
        for scheme in Scheme::ALL {
            assert_eq!(Scheme::from_name(scheme.name()), Ok(scheme));
            assert_eq!(
                Scheme::from_name(&scheme.name().to_ascii_lowercase()),
                Ok(scheme)
            );
            assert_eq!(scheme.to_string(), scheme.name());
        }
    }

    #[test]
    fn plain_aliases() {
        for alias in ["CLEARTEXT", "clear", "Plain"] {
            assert_eq!(alias.parse::<Scheme>(), Ok(Scheme::Plain));
        }
    }

    #[test]
    fn unknown_scheme_is_named_in_the_error() {
        let err = Scheme::from_name("MD5-CRYPT").unwrap_err();
        assert_eq!(err, ParseError::UnknownScheme("MD5-CRYPT".into()));
        let text = err.to_string();
        assert!(text.contains("{MD5-CRYPT}"), "{text}");
        assert!(text.contains("SHA512-CRYPT"), "{text}");
    }
}
