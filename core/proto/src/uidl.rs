//! Unique-ids (UIDL values) as a validated newtype.
//!
//! RFC 1939 §7: "The unique-id of a message is an arbitrary server-determined string,
//! consisting of one to 70 characters in the range 0x21 to 0x7E, which uniquely
//! identifies a message within a maildrop and which persists across sessions."
//! Mail stores are plugins, so the core validates what they hand over once, here, and
//! every later use can rely on the value being safe to put on the wire.

use std::fmt;

/// Why a string is not a valid unique-id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidUidl {
    /// The string is empty; RFC 1939 §7 requires one to 70 characters.
    #[error("unique-id is empty (RFC 1939 requires 1 to 70 characters)")]
    Empty,
    /// The string is longer than 70 octets.
    #[error("unique-id is {0} octets long (RFC 1939 allows at most 70)")]
    TooLong(usize),
    /// The string contains an octet outside 0x21..=0x7E.
    #[error("unique-id contains octet 0x{0:02X} (RFC 1939 allows only 0x21 to 0x7E)")]
    BadOctet(u8),
}

/// A message unique-id: 1 to 70 octets, each in 0x21..=0x7E (RFC 1939 §7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uidl(String);

impl Uidl {
    /// The longest unique-id RFC 1939 §7 allows, in octets.
    pub const MAX_LEN: usize = 70;

    /// Validates `value` as a unique-id.
    pub fn new(value: &str) -> Result<Self, InvalidUidl> {
        if value.is_empty() {
            return Err(InvalidUidl::Empty);
        }
        if value.len() > Self::MAX_LEN {
            return Err(InvalidUidl::TooLong(value.len()));
        }
        if let Some(&bad) = value
            .as_bytes()
            .iter()
            .find(|b| !(0x21..=0x7E).contains(*b))
        {
            return Err(InvalidUidl::BadOctet(bad));
        }
        Ok(Self(value.to_owned()))
    }

    /// The unique-id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Uidl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for Uidl {
    type Error = InvalidUidl;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::{InvalidUidl, Uidl};

    #[test]
    fn accepts_printable_up_to_70() {
        assert_eq!(
            Uidl::new("whqtswO00WBw418f9t5JxYwZ")
                .map(|u| u.to_string())
                .as_deref(),
            Ok("whqtswO00WBw418f9t5JxYwZ")
        );
        assert!(Uidl::new(&"~".repeat(70)).is_ok());
        assert!(Uidl::new("!").is_ok());
    }

    #[test]
    fn rejects_with_named_reason() {
        assert_eq!(Uidl::new(""), Err(InvalidUidl::Empty));
        assert_eq!(Uidl::new(&"a".repeat(71)), Err(InvalidUidl::TooLong(71)));
        assert_eq!(Uidl::new("a b"), Err(InvalidUidl::BadOctet(b' ')));
        assert_eq!(Uidl::new("a\u{7f}"), Err(InvalidUidl::BadOctet(0x7F)));
        assert_eq!(Uidl::new("caf\u{e9}"), Err(InvalidUidl::BadOctet(0xC3)));
    }
}
