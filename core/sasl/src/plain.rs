//! `PLAIN` (RFC 4616): authorization identity, authentication identity and password in one message.
//!
//! RFC 4616 §2 gives the whole grammar:
//!
//! ```text
//! message   = [authzid] UTF8NUL authcid UTF8NUL passwd
//! authcid   = 1*SAFE ; MUST accept up to 255 octets
//! authzid   = 1*SAFE ; MUST accept up to 255 octets
//! passwd    = 1*SAFE ; MUST accept up to 255 octets
//! SAFE      = UTF1 / UTF2 / UTF3 / UTF4 ;; any UTF-8 encoded Unicode character except NUL
//! ```
//!
//! So a message has exactly two NULs, a non-empty user and password, and an optional authzid. RFC 4616 §2: "When
//! no authorization identity is provided, the server derives an authorization identity from the prepared
//! representation of the provided authentication identity string." We report an absent authzid, and one equal to
//! the user, as `None`: both mean "act as myself", and the driver then needs no proxy-authorization check.
//! Length limits and user-name hygiene belong to the driver, which applies them to every mechanism alike.

use crate::SaslError;
use crate::secret::Secret;

const MECHANISM: &str = "PLAIN";

/// The fields of a PLAIN message, authzid already normalized.
#[derive(Debug)]
pub(crate) struct PlainMessage {
    pub(crate) authzid: Option<String>,
    pub(crate) user: String,
    pub(crate) password: Secret<String>,
}

/// Parses one PLAIN message (RFC 4616 §2).
pub(crate) fn parse(message: &[u8]) -> Result<PlainMessage, SaslError> {
    let mut fields = message.split(|&byte| byte == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::malformed(
            MECHANISM,
            "expected exactly two NUL separators",
        ));
    };
    let authzid = utf8(authzid)?;
    let user = utf8(user)?;
    let password = utf8(password)?;
    if user.is_empty() {
        return Err(SaslError::EmptyUser);
    }
    if password.is_empty() {
        return Err(SaslError::EmptyPassword);
    }
    Ok(PlainMessage {
        authzid: normalize_authzid(authzid, user),
        user: user.to_owned(),
        password: Secret::new(password.to_owned()),
    })
}

/// An empty authzid, or one equal to the user, means "authorize as myself" and becomes `None`.
pub(crate) fn normalize_authzid(authzid: &str, user: &str) -> Option<String> {
    if authzid.is_empty() || authzid == user {
        None
    } else {
        Some(authzid.to_owned())
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, SaslError> {
    std::str::from_utf8(bytes).map_err(|_| SaslError::InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::{SaslError, parse};

    fn ok(message: &[u8]) -> (Option<String>, String, String) {
        match parse(message) {
            Ok(m) => (m.authzid, m.user, m.password.expose().clone()),
            Err(error) => panic!("{message:?}: {error}"),
        }
    }

    #[test]
    fn rfc_4616_examples() {
        // RFC 4616 §4: "<NUL>tim<NUL>tanstaaftanstaaf" and "Ursel<NUL>Kurt<NUL>xipj3plmq".
        assert_eq!(
            ok(b"\0tim\0tanstaaftanstaaf"),
            (None, "tim".into(), "tanstaaftanstaaf".into())
        );
        assert_eq!(
            ok(b"Ursel\0Kurt\0xipj3plmq"),
            (Some("Ursel".into()), "Kurt".into(), "xipj3plmq".into())
        );
    }

    #[test]
    fn authzid_equal_to_user_is_none() {
        assert_eq!(ok(b"tim\0tim\0pw"), (None, "tim".into(), "pw".into()));
    }

    #[test]
    fn utf8_fields_pass() {
        assert_eq!(ok("\0jürgen\0pässwörd".as_bytes()).2, "pässwörd");
    }

    #[test]
    fn rejects_bad_messages() {
        let malformed = |m: &[u8]| matches!(parse(m), Err(SaslError::MalformedMessage { .. }));
        assert!(malformed(b""));
        assert!(malformed(b"tim"));
        assert!(malformed(b"\0tim"));
        assert!(malformed(b"\0tim\0pw\0"));
        assert!(malformed(b"a\0tim\0p\0w"));
        assert_eq!(parse(b"\0\0pw").err(), Some(SaslError::EmptyUser));
        assert_eq!(parse(b"\0tim\0").err(), Some(SaslError::EmptyPassword));
        assert_eq!(parse(b"\0tim\0\xff").err(), Some(SaslError::InvalidUtf8));
        assert_eq!(parse(b"\xc3\0tim\0pw").err(), Some(SaslError::InvalidUtf8));
    }
}
