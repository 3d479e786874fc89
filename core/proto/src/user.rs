//! Username hygiene: which login names may reach an auth backend or a path.
//!
//! A login name ends up in LDAP filters, passwd-file lookups, log lines and, through
//! the mail store, in directory names. Issue 3: "no control characters, NUL, `/`, or
//! `..` reach any backend or path". The engine checks the names of USER and APOP with
//! [`validate_user`]; the server checks names that come out of a SASL exchange (the
//! engine never sees them decoded).
//!
//! An invalid name is not refused on the spot: USER answers `+OK` for every name
//! (RFC 1939 lets the server do so, and it keeps names from being probed), and the
//! login that follows reaches the driver with [`crate::AuthRequest::valid_user`] set to
//! `false`, which answers it exactly like a wrong password, failure delay included.

/// Why a login name was refused by [`validate_user`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidUser {
    /// The name is empty.
    #[error("user name is empty")]
    Empty,
    /// The name is longer than [`MAX_USER_LEN`] octets.
    #[error("user name is {0} octets long (at most 255)")]
    TooLong(usize),
    /// The name contains a control character (NUL, CR, LF, DEL, C1 controls, ...).
    #[error("user name contains control character U+{0:04X}")]
    ControlCharacter(u32),
    /// The name contains `/`, a path separator.
    #[error("user name contains '/'")]
    Slash,
    /// The name is `.` or contains `..`, which a path would read as a directory step.
    #[error("user name is '.' or contains '..'")]
    DotDot,
}

/// The longest login name, in octets. RFC 5321 §4.5.3.1.3 caps a path at 256 octets
/// with its angle brackets, so no mail address is longer than 254, and 255 is the
/// longest file name (NAME_MAX) on common file systems, so a name that becomes a
/// directory still fits. Longer names are garbage or an attack.
pub const MAX_USER_LEN: usize = 255;

/// Checks that a login name is safe to give to an auth backend or to turn into a path:
/// 1 to 255 octets of UTF-8 (guaranteed by `&str`), no control characters, no `/`,
/// not `.`, no `..`.
///
/// ```
/// use poppet_proto::{InvalidUser, validate_user};
///
/// assert_eq!(validate_user("alice@example.org"), Ok(()));
/// assert_eq!(validate_user("../etc"), Err(InvalidUser::Slash));
/// ```
pub fn validate_user(name: &str) -> Result<(), InvalidUser> {
    if name.is_empty() {
        return Err(InvalidUser::Empty);
    }
    if name.len() > MAX_USER_LEN {
        return Err(InvalidUser::TooLong(name.len()));
    }
    if let Some(bad) = name.chars().find(|c| c.is_control()) {
        return Err(InvalidUser::ControlCharacter(u32::from(bad)));
    }
    if name.contains('/') {
        return Err(InvalidUser::Slash);
    }
    if name == "." || name.contains("..") {
        return Err(InvalidUser::DotDot);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{InvalidUser, MAX_USER_LEN, validate_user};

    #[test]
    fn good_names() {
        for name in [
            "alice",
            "a",
            "alice@example.org",
            "first.last",
            "j\u{fc}rgen",
            ".hidden",
            "trailing.",
            "with space",
            "back\\slash",
        ] {
            assert_eq!(validate_user(name), Ok(()), "{name:?}");
        }
        assert_eq!(validate_user(&"u".repeat(MAX_USER_LEN)), Ok(()));
    }

    #[test]
    fn bad_names() {
        for (name, error) in [
            (String::new(), InvalidUser::Empty),
            ("u".repeat(256), InvalidUser::TooLong(256)),
            // Multi-octet characters count in octets, not characters.
            ("\u{e9}".repeat(128), InvalidUser::TooLong(256)),
            ("al\0ice".into(), InvalidUser::ControlCharacter(0)),
            ("alice\r\n".into(), InvalidUser::ControlCharacter(0x0D)),
            ("al\tice".into(), InvalidUser::ControlCharacter(0x09)),
            ("alice\u{7f}".into(), InvalidUser::ControlCharacter(0x7F)),
            ("alice\u{85}".into(), InvalidUser::ControlCharacter(0x85)),
            ("a/b".into(), InvalidUser::Slash),
            ("/etc/passwd".into(), InvalidUser::Slash),
            ("..".into(), InvalidUser::DotDot),
            (".".into(), InvalidUser::DotDot),
            ("a..b".into(), InvalidUser::DotDot),
        ] {
            assert_eq!(validate_user(&name), Err(error), "{name:?}");
        }
    }

    #[test]
    fn errors_say_why() {
        assert_eq!(
            InvalidUser::ControlCharacter(0).to_string(),
            "user name contains control character U+0000"
        );
        assert_eq!(
            InvalidUser::TooLong(300).to_string(),
            "user name is 300 octets long (at most 255)"
        );
    }
}
