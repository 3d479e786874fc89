//! Dovecot passwd-files (core/password `passwd_file.rs` and the scheme parsers behind it).
//!
//! Checks: the file reads like its lines read one by one (every line that is not blank or a
//! comment becomes exactly one entry or one error with its line number, and a user defined twice
//! keeps the first definition); users are non-empty and free of `:`; a `{PLAIN}` entry verifies
//! with its own password; a `{SCRAM-SHA-256}` entry yields its keys (parsing validated them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use poppet_password::{Scheme, parse_passwd_file, plaintext_equivalent, scram_keys, verify};
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (entries, errors) = parse_passwd_file(text);

    // The model: each line parsed alone, the first definition of a user winning.
    let mut expected_entries = Vec::new();
    let mut expected_errors = Vec::new();
    let mut users = HashSet::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (alone, alone_errors) = parse_passwd_file(line);
        assert_eq!(
            alone.len() + alone_errors.len(),
            1,
            "line {line:?} gave {alone:?}"
        );
        match alone.into_iter().next() {
            Some(entry) if users.insert(entry.user.clone()) => expected_entries.push(entry),
            _ => expected_errors.push(index + 1),
        }
    }
    let error_lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(
        error_lines, expected_errors,
        "other lines refused than line by line"
    );
    assert_eq!(entries.len(), expected_entries.len());

    for (entry, expected) in entries.iter().zip(&expected_entries) {
        assert!(!entry.user.is_empty() && !entry.user.contains([':', '\n']));
        assert!(entry.uid != Some(0) && entry.gid != Some(0));
        assert_eq!(entry.user, expected.user);
        assert_eq!(entry.hash.scheme(), expected.hash.scheme());
        assert_eq!((entry.uid, entry.gid), (expected.uid, expected.gid));
        assert_eq!(entry.home, expected.home);
        assert_eq!(entry.extra, expected.extra);
        match entry.hash.scheme() {
            Scheme::Plain => {
                let password = plaintext_equivalent(&entry.hash).expect("PLAIN has its password");
                assert!(
                    verify(&entry.hash, password),
                    "PLAIN does not verify its password"
                );
            }
            Scheme::ScramSha256 => {
                assert!(
                    scram_keys(&entry.hash).is_some(),
                    "validated SCRAM keys do not parse"
                );
            }
            _ => assert!(plaintext_equivalent(&entry.hash).is_none()),
        }
    }
});
