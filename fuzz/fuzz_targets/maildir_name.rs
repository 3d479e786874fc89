//! Maildir file names (plugins/store-maildir `name.rs`): the unique part, Maildir++ `,W=`, the
//! UIDL derived from it, and the `cur/` and seen-flag renames.
//!
//! Checks: the unique part is a prefix without `:`; the UIDL is always 1-70 octets of 0x21-0x7E
//! (RFC 1939 §7) and is the unique part itself whenever that qualifies; a `,W=` size is read back
//! from a field of the name; the renames keep the unique part, and adding the seen flag gives
//! sorted flags containing `S` that need no second rename.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poppet_store_maildir::fuzzing::{base, cur_name, uidl, w_size, with_seen};

fuzz_target!(|name: &[u8]| {
    let unique = base(name);
    assert!(name.starts_with(unique));
    assert!(!unique.contains(&b':'));
    assert!(unique.len() == name.len() || name[unique.len()] == b':');

    let id = uidl(unique);
    assert!((1..=70).contains(&id.len()), "UIDL of {} octets", id.len());
    assert!(
        id.bytes().all(|b| (0x21..=0x7E).contains(&b)),
        "UIDL {id:?}"
    );
    assert_eq!(id, uidl(unique), "the UIDL is not stable");
    let printable = unique.iter().all(|b| (0x21..=0x7E).contains(b));
    if printable && (1..=70).contains(&unique.len()) {
        assert_eq!(id.as_bytes(), unique);
    }

    if let Some(size) = w_size(unique) {
        let field = format!("W={size}");
        assert!(
            unique
                .split(|&b| b == b',')
                .skip(1)
                .any(|f| f.strip_prefix(b"W=").is_some_and(|d| {
                    std::str::from_utf8(d)
                        .ok()
                        .and_then(|d| d.parse::<u64>().ok())
                        == Some(size)
                })),
            "{field} is in no field of the name"
        );
    }

    let cur = cur_name(name);
    assert_eq!(base(&cur), unique, "moving to cur/ changed the unique part");
    assert!(cur.contains(&b':'));

    if let Some(seen) = with_seen(name) {
        assert_eq!(base(&seen), unique, "marking seen changed the unique part");
        let flags = seen[unique.len()..]
            .strip_prefix(b":2,")
            .expect("the seen name has :2, flags");
        assert!(flags.contains(&b'S'));
        assert!(
            flags.windows(2).all(|w| w[0] <= w[1]),
            "flags not in ASCII order"
        );
        assert_eq!(with_seen(&seen), None, "marking seen twice renames again");
    }
});
