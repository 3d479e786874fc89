//! APOP digest check (RFC 1939 §7): `digest = MD5(timestamp || secret)` in lower-case hex.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Whether `digest` (hex, any case) is MD5(`timestamp` + `secret`), compared in constant time.
pub fn verify(timestamp: &str, secret: &str, digest: &str) -> bool {
    let mut h = Md5::new();
    h.update(timestamp.as_bytes());
    h.update(secret.as_bytes());
    let expected: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let given = digest.to_ascii_lowercase();
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::verify;

    #[test]
    fn rfc1939_example() {
        // RFC 1939 §7: the shared secret "tanstaaf" with this greeting gives this digest.
        let ts = "<1896.697170952@dbc.mtview.ca.us>";
        assert!(verify(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22fb"));
        assert!(verify(ts, "tanstaaf", "C4C9334BAC560ECC979E58001B3E22FB"));
        assert!(!verify(ts, "tanstaaF", "c4c9334bac560ecc979e58001b3e22fb"));
        assert!(!verify(ts, "tanstaaf", "c4c9334bac560ecc979e58001b3e22f"));
    }
}
