//! Maildir file names: what the unique part is, what Maildir++ says about the size, and how flags
//! are written.
//!
//! From the maildir spec (cr.yp.to/proto/maildir.html): a message in `cur/` is named
//! `unique:info`, where "info is morally equivalent to the Status field used by mbox readers" and
//! `2,` starts the flags, "in ASCII order". The unique part does not change when a reader moves
//! the message from `new/` to `cur/` or changes its flags, which is why qmail-pop3d and Courier use
//! it as the POP3 UIDL and why we do too: clients migrating from them do not download again.
//!
//! Maildir++ (Courier) adds `,S=<file size>` and `,W=<size with CRLF line ends>` to the unique
//! part; `W=` is exactly the octet count POP3 needs, so a name carrying it saves reading the file.

use sha2::{Digest, Sha256};

/// RFC 1939 §7: a unique-id "consists of one to 70 characters in the range 0x21 to 0x7E".
const UIDL_MAX: usize = 70;

/// The unique part of a maildir file name: everything before the first `:`.
pub fn base(name: &[u8]) -> &[u8] {
    match name.iter().position(|&b| b == b':') {
        Some(i) => &name[..i],
        None => name,
    }
}

/// The Maildir++ `,W=` size in the unique part, when present and a plain decimal number.
pub fn w_size(base: &[u8]) -> Option<u64> {
    size_field(base, b"W=")
}

/// The Maildir++ `,S=` size (the file's own) in the unique part, when present and a plain decimal
/// number: what the `maildirsize` quota counts for the message.
pub fn s_size(base: &[u8]) -> Option<u64> {
    size_field(base, b"S=")
}

fn size_field(base: &[u8], key: &[u8]) -> Option<u64> {
    base.split(|&b| b == b',').skip(1).find_map(|field| {
        let digits = field.strip_prefix(key)?;
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(digits).ok()?.parse().ok()
    })
}

/// The UIDL for a unique part: the unique part itself when RFC 1939 allows it (1-70 characters of
/// 0x21..=0x7E), otherwise a stable one derived from it (64 hex digits of its SHA-256), so a
/// message keeps its UIDL for as long as its file name keeps its unique part.
pub fn uidl(base: &[u8]) -> String {
    let usable = !base.is_empty()
        && base.len() <= UIDL_MAX
        && base.iter().all(|b| (0x21..=0x7E).contains(b));
    if usable {
        // Every byte is ASCII, so this is lossless.
        return String::from_utf8_lossy(base).into_owned();
    }
    hex_sha256(base)
}

/// The lowercase hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xF)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A hash set with [`FxHasher`].
pub type FxHashSet<T> = std::collections::HashSet<T, std::hash::BuildHasherDefault<FxHasher>>;

/// The Fx hash (rustc's own): one rotate, xor and multiply per word.
///
/// For the sets built over every message on every login (unique UIDLs, file identities). Their
/// keys come from the user's own maildir, named by the delivery agent, so SipHash's resistance to
/// chosen keys buys nothing there, and it cost a tenth of a warm open of 100,000 messages.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.add(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_i64(&mut self, n: i64) {
        self.add(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// The name a message from `new/` gets in `cur/`: the spec's "reader moves it to cur/ and adds
/// :2," with no flags. A name that already has an info part keeps it.
pub fn cur_name(new_name: &[u8]) -> Vec<u8> {
    let mut name = new_name.to_vec();
    if !name.contains(&b':') {
        name.extend_from_slice(b":2,");
    }
    name
}

/// The name with the `S` (seen) flag added, or `None` when it has it already or its info part is
/// not the `2,` flags form (we do not rewrite what we do not understand).
pub fn with_seen(name: &[u8]) -> Option<Vec<u8>> {
    let colon = name.iter().position(|&b| b == b':')?;
    let flags = name[colon + 1..].strip_prefix(b"2,")?;
    if flags.contains(&b'S') {
        return None;
    }
    let mut sorted = flags.to_vec();
    sorted.push(b'S');
    // The spec: flags "must be stored in ASCII order".
    sorted.sort_unstable();
    let mut out = name[..colon].to_vec();
    out.extend_from_slice(b":2,");
    out.extend_from_slice(&sorted);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_is_before_the_first_colon() {
        assert_eq!(base(b"123.M1P2.host:2,S"), b"123.M1P2.host");
        assert_eq!(base(b"123.M1P2.host"), b"123.M1P2.host");
        assert_eq!(base(b"a:b:c"), b"a");
    }

    #[test]
    fn w_size_reads_maildir_plus_plus_fields() {
        assert_eq!(w_size(b"1.M2.h,S=100,W=104"), Some(104));
        assert_eq!(w_size(b"1.M2.h,W=7"), Some(7));
        assert_eq!(w_size(b"1.M2.h,S=100"), None);
        assert_eq!(w_size(b"1.M2.h,W="), None);
        assert_eq!(w_size(b"1.M2.h,W=12x"), None);
        // The first field is the unique name itself, never a size.
        assert_eq!(w_size(b"W=5"), None);
        assert_eq!(s_size(b"1.M2.h,S=100,W=104"), Some(100));
        assert_eq!(s_size(b"1.M2.h,W=104"), None);
        assert_eq!(s_size(b"S=5"), None);
    }

    #[test]
    fn uidl_is_the_base_when_allowed_else_a_hash() {
        assert_eq!(
            uidl(b"1700000000.M1P2.host,S=10"),
            "1700000000.M1P2.host,S=10"
        );
        let long = [b'a'; 71];
        assert_eq!(uidl(&long).len(), 64);
        assert_eq!(uidl(&long), uidl(&long));
        assert_eq!(uidl(&[b'a'; 70]).len(), 70);
        for odd in [&b"with space"[..], b"tab\there", b"\xff\xfe", b""] {
            let u = uidl(odd);
            assert_eq!(u.len(), 64);
            assert!(u.bytes().all(|b| (0x21..=0x7E).contains(&b)));
        }
        assert_ne!(uidl(b"a b"), uidl(b"a  b"));
    }

    #[test]
    fn new_mail_gets_an_empty_flag_list() {
        assert_eq!(cur_name(b"1.M2.h"), b"1.M2.h:2,");
        assert_eq!(cur_name(b"1.M2.h:2,F"), b"1.M2.h:2,F");
    }

    #[test]
    fn seen_is_inserted_in_ascii_order() {
        assert_eq!(with_seen(b"x:2,").as_deref(), Some(&b"x:2,S"[..]));
        assert_eq!(with_seen(b"x:2,FT").as_deref(), Some(&b"x:2,FST"[..]));
        assert_eq!(with_seen(b"x:2,RS"), None);
        assert_eq!(with_seen(b"x:1,abc"), None);
        assert_eq!(with_seen(b"x"), None);
    }
}
