//! The migration inputs of the maildir store (plugins/store-maildir `import.rs`): Dovecot's
//! `pop3_uidl_format` (from the config), `dovecot-uidlist` and Courier's `courierpop3dsizelist`
//! (files in the old server's maildirs).
//!
//! Input: the format on the first line, then the file. Checks: no panic and no runaway
//! allocation; a format that parses expands for any message; every imported entry is keyed by a
//! unique part (no `:`) and, for Courier, carries a size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poppet_store_maildir::UidlFormat;
use poppet_store_maildir::fuzzing::{Vars, parse_courier, parse_dovecot};

fuzz_target!(|data: &[u8]| {
    let (format, file) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(format) = std::str::from_utf8(format) else {
        return;
    };
    if let Ok(format) = UidlFormat::parse(format) {
        let vars = Vars {
            uid: u32::MAX,
            uidvalidity: 1,
            base: file.get(..40).unwrap_or(file),
            guid: None,
        };
        let _ = format.expand(&vars);
        if let Ok(list) = parse_dovecot(file, &format) {
            assert!(list.keys().all(|base| !base.contains(&b':')));
        }
    }
    if let Ok(list) = parse_courier(file) {
        assert!(list.keys().all(|base| !base.contains(&b':')));
        assert!(list.values().all(|entry| entry.size.is_some()));
    }
});
