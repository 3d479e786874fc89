//! The SCRAM client messages (RFC 5802 §7), parsed strictly.
//!
//! ```text
//! gs2-cbind-flag  = ("p=" cb-name) / "n" / "y"
//! gs2-header      = gs2-cbind-flag "," [ authzid ] ","
//! authzid         = "a=" saslname
//! saslname        = 1*(value-safe-char / "=2C" / "=3D")
//! client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
//! client-first-message      = gs2-header client-first-message-bare
//! client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//! client-final-message      = client-final-message-without-proof "," proof
//! printable       = %x21-2B / %x2D-7E ;; Printable ASCII except ","
//! ```
//!
//! RFC 5802 §5.1 on `m`: "its presence in a client or a server message MUST cause authentication failure when the
//! attribute is parsed by the other end", and on `n`: "If the server receives a username that contains '=' not
//! followed by either '2C' or '3D', then the server MUST fail the authentication." Optional extensions after the
//! required attributes are allowed by the grammar and ignored (we implement none); one that reuses a SCRAM
//! attribute letter (a second `r=`, say) is refused rather than guessed at.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::SaslError;

const MECHANISM: &str = "SCRAM";
/// Attribute letters RFC 5802 gives a meaning; an extension may not use them.
const RESERVED: &[u8] = b"amnrcsipve";

/// The GS2 channel-binding flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CbFlag {
    /// `n`: the client does not support channel binding.
    None,
    /// `y`: the client supports channel binding but thinks the server does not.
    ClientOnly,
    /// `p=<cb-name>`: the client uses channel binding of this type.
    Uses(String),
}

/// A parsed client-first-message.
#[derive(Debug)]
pub(crate) struct ClientFirst {
    /// The GS2 header exactly as sent, trailing comma included (it goes into `c=`).
    pub(crate) gs2_header: String,
    pub(crate) flag: CbFlag,
    pub(crate) authzid: Option<String>,
    pub(crate) user: String,
    pub(crate) nonce: String,
    /// client-first-message-bare, exactly as sent (it goes into AuthMessage).
    pub(crate) bare: String,
}

/// A parsed client-final-message.
#[derive(Debug)]
pub(crate) struct ClientFinal {
    /// The decoded `c=` value.
    pub(crate) channel_binding: Vec<u8>,
    pub(crate) nonce: String,
    pub(crate) proof: Vec<u8>,
    /// client-final-message-without-proof, exactly as sent (it goes into AuthMessage).
    pub(crate) without_proof: String,
}

/// Parses client-first-message.
pub(crate) fn parse_client_first(message: &[u8]) -> Result<ClientFirst, SaslError> {
    let text = text(message)?;
    let (flag_text, rest) = text
        .split_once(',')
        .ok_or(malformed("missing GS2 header"))?;
    let (authzid_text, bare) = rest
        .split_once(',')
        .ok_or(malformed("GS2 header needs two commas"))?;
    let flag = match flag_text {
        "n" => CbFlag::None,
        "y" => CbFlag::ClientOnly,
        _ => match flag_text.strip_prefix("p=") {
            Some(name) if is_cb_name(name) => CbFlag::Uses(name.to_owned()),
            _ => {
                return Err(malformed(
                    "GS2 channel-binding flag is not n, y or p=<cb-name>",
                ));
            }
        },
    };
    let authzid = match authzid_text {
        "" => None,
        _ => match authzid_text.strip_prefix("a=") {
            Some(name) => Some(decode_saslname(name)?),
            None => return Err(malformed("GS2 authzid does not start with a=")),
        },
    };
    if bare.starts_with("m=") {
        return Err(SaslError::ExtensionNotSupported);
    }
    let mut attributes = bare.split(',');
    let user = match attributes.next().and_then(|a| a.strip_prefix("n=")) {
        Some(name) => decode_saslname(name)?,
        None => {
            return Err(malformed(
                "client-first-message-bare does not start with n=",
            ));
        }
    };
    let nonce = match attributes.next().and_then(|a| a.strip_prefix("r=")) {
        Some(nonce) if is_printable(nonce) => nonce.to_owned(),
        _ => return Err(malformed("client nonce r= missing or not printable")),
    };
    check_extensions(attributes)?;
    let gs2_header = text[..flag_text.len() + authzid_text.len() + 2].to_owned();
    Ok(ClientFirst {
        gs2_header,
        flag,
        authzid,
        user,
        nonce,
        bare: bare.to_owned(),
    })
}

/// Parses client-final-message.
pub(crate) fn parse_client_final(message: &[u8]) -> Result<ClientFinal, SaslError> {
    let text = text(message)?;
    let (without_proof, proof) = text
        .rsplit_once(',')
        .ok_or(malformed("client-final-message too short"))?;
    let proof = match proof.strip_prefix("p=") {
        Some(proof) => STANDARD
            .decode(proof)
            .map_err(|_| malformed("proof p= is not base64"))?,
        None => return Err(malformed("client-final-message does not end with p=")),
    };
    let mut attributes = without_proof.split(',');
    let channel_binding = match attributes.next().and_then(|a| a.strip_prefix("c=")) {
        Some(cb) => STANDARD
            .decode(cb)
            .map_err(|_| malformed("channel binding c= is not base64"))?,
        None => return Err(malformed("client-final-message does not start with c=")),
    };
    let nonce = match attributes.next().and_then(|a| a.strip_prefix("r=")) {
        Some(nonce) if is_printable(nonce) => nonce.to_owned(),
        _ => return Err(malformed("nonce r= missing or not printable")),
    };
    check_extensions(attributes)?;
    Ok(ClientFinal {
        channel_binding,
        nonce,
        proof,
        without_proof: without_proof.to_owned(),
    })
}

/// Decodes a `saslname`: `=2C` is `,`, `=3D` is `=`, any other `=` fails (RFC 5802 §5.1).
pub(crate) fn decode_saslname(name: &str) -> Result<String, SaslError> {
    if name.is_empty() {
        return Err(malformed("empty user or authorization name"));
    }
    let mut decoded = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        decoded.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => decoded.push(','),
            Some("=3D") => decoded.push('='),
            _ => return Err(SaslError::InvalidSaslname),
        }
        rest = &rest[at + 3..];
    }
    decoded.push_str(rest);
    Ok(decoded)
}

/// The message as UTF-8 without NUL: RFC 5802 `value-char` is "any UTF8-char except NUL and ','".
fn text(message: &[u8]) -> Result<&str, SaslError> {
    let text = std::str::from_utf8(message).map_err(|_| SaslError::InvalidUtf8)?;
    if text.contains('\0') {
        return Err(malformed("NUL in message"));
    }
    Ok(text)
}

/// `extensions = attr-val *("," attr-val)`, `attr-val = ALPHA "=" value`, `value = 1*value-char`.
fn check_extensions<'a>(attributes: impl Iterator<Item = &'a str>) -> Result<(), SaslError> {
    for attribute in attributes {
        match attribute.as_bytes() {
            [b'm', b'=', ..] => return Err(SaslError::ExtensionNotSupported),
            [letter, b'=', _, ..] if RESERVED.contains(letter) => {
                return Err(malformed("SCRAM attribute repeated or out of order"));
            }
            [letter, b'=', _, ..] if letter.is_ascii_alphabetic() => {}
            _ => return Err(malformed("extension is not ALPHA \"=\" value")),
        }
    }
    Ok(())
}

/// `cb-name = 1*(ALPHA / DIGIT / "." / "-")`.
fn is_cb_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// `c-nonce = printable`, `printable = %x21-2B / %x2D-7E`; the grammar requires at least one character.
fn is_printable(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

fn malformed(reason: &'static str) -> SaslError {
    SaslError::malformed(MECHANISM, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_fields() {
        let first = parse_client_first(b"p=tls-exporter,a=ad=3Dmin=2C1,n=us=2Cer,r=abc,x=ext").ok();
        let first = first.as_ref();
        assert_eq!(
            first.map(|f| f.gs2_header.as_str()),
            Some("p=tls-exporter,a=ad=3Dmin=2C1,")
        );
        assert_eq!(
            first.map(|f| &f.flag),
            Some(&CbFlag::Uses("tls-exporter".into()))
        );
        assert_eq!(first.and_then(|f| f.authzid.as_deref()), Some("ad=min,1"));
        assert_eq!(first.map(|f| f.user.as_str()), Some("us,er"));
        assert_eq!(
            first.map(|f| f.bare.as_str()),
            Some("n=us=2Cer,r=abc,x=ext")
        );
    }

    #[test]
    fn client_first_violations() {
        let cases: &[(&[u8], SaslError)] = &[
            (b"n,,m=x,n=user,r=abc", SaslError::ExtensionNotSupported),
            (b"n,,n=user,r=abc,m=x", SaslError::ExtensionNotSupported),
            (b"n,,n=us=2Ber,r=abc", SaslError::InvalidSaslname),
            (b"n,,n=user=,r=abc", SaslError::InvalidSaslname),
            (b"n,a=x=3,n=user,r=abc", SaslError::InvalidSaslname),
            (b"n,,n=\xffuser,r=abc", SaslError::InvalidUtf8),
        ];
        for (message, error) in cases {
            assert_eq!(
                parse_client_first(message).err().as_ref(),
                Some(error),
                "{message:?}"
            );
        }
        for message in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=user,r=abc",
            b"p=,,n=user,r=abc",
            b"p=tls_x,,n=u,r=a",
            b"n,b=x,n=user,r=abc",
            b"n,a=,n=user,r=abc",
            b"n,,r=abc,n=user",
            b"n,,n=user",
            b"n,,n=user,r=",
            b"n,,n=,r=abc",
            b"n,,n=user,r=a b",
            b"n,,n=user,r=abc,r=def",
            b"n,,n=user,r=abc,1=x",
            b"n,,n=user,r=abc,",
            b"n,,n=u\0ser,r=abc",
            b"n,,n=user,r=\xc3\xa9",
        ] {
            assert!(
                matches!(
                    parse_client_first(message),
                    Err(SaslError::MalformedMessage { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn client_final_fields_and_violations() {
        let last = parse_client_final(b"c=biws,r=abcdef,x=1,p=AAAA").ok();
        assert_eq!(
            last.as_ref().map(|f| f.without_proof.as_str()),
            Some("c=biws,r=abcdef,x=1")
        );
        assert_eq!(
            last.as_ref().map(|f| f.channel_binding.as_slice()),
            Some(&b"n,,"[..])
        );
        assert_eq!(last.as_ref().map(|f| f.proof.len()), Some(3));
        for message in [
            &b""[..],
            b"c=biws",
            b"c=biws,r=abc",
            b"c=biws,r=abc,p=!!",
            b"c=!,r=abc,p=AAAA",
            b"r=abc,c=biws,p=AAAA",
            b"c=biws,p=AAAA",
            b"c=biws,r=abc,c=biws,p=AAAA",
            b"c=biws,r=abc,p=AAAA,x=1",
        ] {
            assert!(
                matches!(
                    parse_client_final(message),
                    Err(SaslError::MalformedMessage { .. })
                ),
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
        assert_eq!(
            parse_client_final(b"c=biws,r=abc,m=1,p=AAAA").err(),
            Some(SaslError::ExtensionNotSupported)
        );
    }
}
