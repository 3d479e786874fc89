//! The mechanism names Poppet can advertise in CAPA `SASL` and accept in `AUTH`.
//!
//! RFC 4422 §3.1: "SASL mechanisms are named by character strings, from 1 to 20 characters in length, consisting of
//! ASCII uppercase letters, digits, hyphens, and/or underscores." Clients nevertheless send `auth plain`, and
//! Dovecot and Cyrus match names without regard to case, so [`Mechanism::from_name`] ignores ASCII case.

/// A SASL mechanism this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `LOGIN` (draft-murchison-sasl-login).
    Login,
    /// `SCRAM-SHA-256` (RFC 5802, RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-256-PLUS` (RFC 7677) with `tls-exporter` channel binding (RFC 9266).
    ScramSha256Plus,
}

impl Mechanism {
    /// Every mechanism, strongest first (the order CAPA should list them in).
    pub const ALL: [Mechanism; 4] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha256,
        Mechanism::Plain,
        Mechanism::Login,
    ];

    /// The registered mechanism name, as advertised in CAPA.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }

    /// Looks up a mechanism by name, ignoring ASCII case. `None` for a mechanism we do not implement.
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL
            .into_iter()
            .find(|mechanism| mechanism.name().eq_ignore_ascii_case(name))
    }

    /// True when the password itself crosses the wire (PLAIN, LOGIN), so the cleartext policy applies: like
    /// Dovecot's `disable_plaintext_auth`, such mechanisms are refused on unencrypted non-loopback connections.
    pub fn is_plaintext(self) -> bool {
        matches!(self, Mechanism::Plain | Mechanism::Login)
    }

    /// True for the `-PLUS` mechanism, which can only be offered when the TLS layer provides channel-binding data.
    pub fn needs_channel_binding(self) -> bool {
        matches!(self, Mechanism::ScramSha256Plus)
    }

    /// True for the SCRAM family, which needs [`ScramCredentials`](crate::ScramCredentials) from the backend.
    pub fn is_scram(self) -> bool {
        matches!(self, Mechanism::ScramSha256 | Mechanism::ScramSha256Plus)
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Mechanism;

    #[test]
    fn names_round_trip_case_insensitively() {
        for mechanism in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(mechanism.name()), Some(mechanism));
            assert_eq!(
                Mechanism::from_name(&mechanism.name().to_ascii_lowercase()),
                Some(mechanism)
            );
        }
        assert_eq!(
            Mechanism::from_name("scram-sha-256-plus"),
            Some(Mechanism::ScramSha256Plus)
        );
        assert_eq!(Mechanism::from_name("CRAM-MD5"), None);
        assert_eq!(Mechanism::from_name(""), None);
    }

    #[test]
    fn policy_flags() {
        assert!(Mechanism::Plain.is_plaintext() && Mechanism::Login.is_plaintext());
        assert!(
            !Mechanism::ScramSha256.is_plaintext() && !Mechanism::ScramSha256Plus.is_plaintext()
        );
        assert!(Mechanism::ScramSha256Plus.needs_channel_binding());
        assert!(!Mechanism::ScramSha256.needs_channel_binding());
    }
}
