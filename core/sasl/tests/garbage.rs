//! Hostile input: every malformed message is an error, never a panic, in every state of every mechanism.

#![allow(clippy::unwrap_used)]

use poppet_sasl::{ChannelBinding, Exchange, Mechanism, ScramCredentials, Step};

/// xorshift64*: reproducible without a seeded-RNG dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Random bytes, biased towards the characters SCRAM and PLAIN care about so the parsers get deep.
    fn message(&mut self) -> Vec<u8> {
        const ALPHABET: &[u8] = b",=nyparcvmsi\0 2C3D+/AZaz09";
        let len = (self.next() % 64) as usize;
        (0..len)
            .map(|_| {
                let r = self.next();
                if r % 2 == 0 {
                    ALPHABET[(r >> 8) as usize % ALPHABET.len()]
                } else {
                    (r >> 8) as u8
                }
            })
            .collect()
    }
}

fn exchanges() -> Vec<Exchange> {
    let cb = || Some(ChannelBinding::tls_exporter(vec![7; 32]));
    vec![
        Exchange::new(Mechanism::Plain, None),
        Exchange::new(Mechanism::Login, None),
        Exchange::new(Mechanism::ScramSha256, None),
        Exchange::new(Mechanism::ScramSha256, cb()),
        Exchange::new(Mechanism::ScramSha256Plus, cb()),
        Exchange::new(Mechanism::ScramSha256Plus, None),
    ]
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        for mut exchange in exchanges() {
            for _ in 0..3 {
                let message = rng.message();
                let client = if rng.next() % 8 == 0 {
                    None
                } else {
                    Some(message.as_slice())
                };
                match exchange.step(client) {
                    Ok(Step::NeedScramCredentials { .. }) => {
                        // Cheap fake credentials keep the loop fast; the proof check still runs in full.
                        let creds = ScramCredentials::from_password_with_salt("pw", b"salt", 1);
                        let creds = if rng.next() % 2 == 0 {
                            Some(creds)
                        } else {
                            None
                        };
                        assert!(exchange.provide_credentials(creds).is_ok());
                    }
                    Ok(_) => {}
                    Err(_) => assert!(exchange.is_finished()),
                }
            }
        }
    }
}

#[test]
fn random_client_final_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..500 {
        let mut exchange = Exchange::with_server_nonce(Mechanism::ScramSha256, None, "srv");
        let _ = exchange.step(Some(b"n,,n=user,r=abc")).unwrap();
        let _ = exchange
            .provide_credentials(Some(ScramCredentials::from_password_with_salt(
                "pw", b"s", 1,
            )))
            .unwrap();
        let mut message = b"c=biws,r=abcsrv,".to_vec();
        message.extend(rng.message());
        assert!(exchange.step(Some(&message)).is_err());
    }
}

#[test]
fn mutated_valid_messages_never_panic() {
    let mut rng = Rng(7);
    let valid = b"p=tls-exporter,a=adm=3Din,n=user,r=rOprNGfwEbeRWgbNEkqO".to_vec();
    for _ in 0..3000 {
        let mut message = valid.clone();
        for _ in 0..1 + rng.next() % 4 {
            let at = (rng.next() as usize) % message.len();
            match rng.next() % 3 {
                0 => message[at] = rng.next() as u8,
                1 => drop(message.remove(at)),
                _ => message.insert(at, b",=\0"[(rng.next() % 3) as usize]),
            }
            if message.is_empty() {
                break;
            }
        }
        for mut exchange in exchanges() {
            let _ = exchange.step(Some(&message));
        }
    }
}
