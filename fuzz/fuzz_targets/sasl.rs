//! The SASL mechanisms (core/sasl): PLAIN and LOGIN message parsing, and the SCRAM-SHA-256
//! client-first and client-final parsers, through the public `Exchange` a server drives.
//!
//! Input: a flags byte (bits 0-1: PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS; bit 2: the
//! connection has channel-binding data; bit 3: no initial response; bit 4: the user is unknown),
//! then the client's messages (already base64-decoded), separated by LF.
//!
//! Checks: no panic; an error ends the exchange for good; PLAIN's verdict re-encodes to the
//! message it came from; LOGIN's user and password are the two messages; SCRAM's user is the
//! message's `n=` saslname decoded, and its server-first carries the client nonce followed by
//! the server's, the salt and the iteration count. A proof made without the password never
//! succeeds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poppet_sasl::{ChannelBinding, Exchange, Mechanism, SaslError, ScramCredentials, Step};

const SERVER_NONCE: &str = "fuzzservernonce";

fn credentials() -> ScramCredentials {
    ScramCredentials {
        salt: b"0123456789abcdef".to_vec(),
        iterations: 4096,
        stored_key: [7; 32],
        server_key: [9; 32],
    }
}

/// The saslname encoding of RFC 5802 §5.1 (`,` as `=2C`, `=` as `=3D`).
fn saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

fn check_step(mechanism: Mechanism, messages: &[&[u8]], step: &Step) {
    match step {
        Step::CheckPassword {
            authzid,
            user,
            password,
        } => match mechanism {
            Mechanism::Plain => {
                let message = messages.last().expect("PLAIN decided on a message");
                let fields: Vec<&[u8]> = message.split(|&b| b == 0).collect();
                assert_eq!(fields.len(), 3);
                assert_eq!(fields[1], user.as_bytes());
                assert_eq!(fields[2], password.expose().as_bytes());
                assert!(!user.is_empty() && !password.expose().is_empty());
                match authzid {
                    Some(authzid) => {
                        assert_eq!(fields[0], authzid.as_bytes());
                        assert_ne!(authzid, user);
                    }
                    None => assert!(fields[0].is_empty() || fields[0] == user.as_bytes()),
                }
            }
            Mechanism::Login => {
                assert!(authzid.is_none());
                let [.., name, secret] = messages else {
                    panic!("LOGIN decided before two messages");
                };
                assert_eq!(*name, user.as_bytes());
                assert_eq!(*secret, password.expose().as_bytes());
            }
            _ => panic!("{mechanism} asked to check a password"),
        },
        Step::NeedScramCredentials { user, .. } => {
            assert!(mechanism.is_scram());
            let first = messages
                .last()
                .expect("SCRAM asked for credentials on a message");
            let text = std::str::from_utf8(first).expect("accepted a non-UTF-8 client-first");
            assert!(
                text.contains(&format!(",n={},", saslname(user))),
                "user {user:?}"
            );
        }
        Step::Success { .. } => {
            // The fuzzer cannot know a ClientKey behind the fixed StoredKey, nor an unknown
            // user's fake one.
            panic!("{mechanism}: a proof made without the key was accepted");
        }
        Step::Challenge(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mechanism = Mechanism::ALL[usize::from(flags & 3)];
    let binding = (flags & 4 != 0).then(|| ChannelBinding::tls_exporter(vec![0x5a; 32]));
    let unknown_user = flags & 16 != 0;
    let mut exchange = Exchange::with_server_nonce(mechanism, binding, SERVER_NONCE);
    let mut sent: Vec<&[u8]> = Vec::new();
    let mut inputs: Vec<Option<&[u8]>> = rest.split(|&b| b == b'\n').map(Some).collect();
    if flags & 8 != 0 {
        inputs.insert(0, None);
    }
    for input in inputs {
        let mut result = exchange.step(input);
        if let Some(message) = input {
            sent.push(message);
        }
        if let Ok(step) = &result {
            check_step(mechanism, &sent, step);
        }
        if let Ok(Step::NeedScramCredentials { .. }) = result {
            let client_first = std::str::from_utf8(sent.last().copied().unwrap_or_default())
                .expect("checked above");
            let credentials = (!unknown_user).then(credentials);
            result = exchange.provide_credentials(credentials);
            let Ok(Step::Challenge(server_first)) = &result else {
                panic!("credentials were not answered with server-first: {result:?}");
            };
            let server_first = std::str::from_utf8(server_first).expect("server-first is text");
            let nonce = client_first
                .split(',')
                .find_map(|a| a.strip_prefix("r="))
                .expect("the client nonce");
            assert!(
                server_first.starts_with(&format!("r={nonce}{SERVER_NONCE},s=")),
                "{server_first}"
            );
            assert!(server_first.ends_with(",i=4096"), "{server_first}");
        }
        match result {
            Err(_) => {
                assert!(exchange.is_finished(), "an error did not end the exchange");
                assert!(matches!(
                    exchange.step(Some(b"more")),
                    Err(SaslError::UnexpectedMessage)
                ));
                return;
            }
            Ok(_) if exchange.is_finished() => {
                assert!(exchange.step(Some(b"more")).is_err());
                return;
            }
            Ok(_) => {}
        }
    }
});
