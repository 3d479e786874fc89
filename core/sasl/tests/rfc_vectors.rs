//! Known-answer tests from the RFCs, replayed byte for byte.

#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use poppet_sasl::{Exchange, Mechanism, ScramCredentials, Step};

/// RFC 7677 §3, the SCRAM-SHA-256 example (user "user", password "pencil").
#[test]
fn rfc_7677_scram_sha_256_example() {
    let mut exchange = Exchange::with_server_nonce(
        Mechanism::ScramSha256,
        None,
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    );
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let creds = ScramCredentials::from_password_with_salt("pencil", &salt, 4096);

    let step = exchange
        .step(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
        .unwrap();
    assert!(
        matches!(step, Step::NeedScramCredentials { authzid: None, ref user } if user == "user"),
        "{step:?}"
    );

    let Step::Challenge(server_first) = exchange.provide_credentials(Some(creds)).unwrap() else {
        panic!()
    };
    assert_eq!(
        String::from_utf8(server_first).unwrap(),
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    );

    let client_final = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    match exchange.step(Some(client_final)).unwrap() {
        Step::Success {
            authzid,
            user,
            server_final,
        } => {
            assert_eq!((authzid, user.as_str()), (None, "user"));
            assert_eq!(
                server_final.unwrap(),
                b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(exchange.is_finished());
}

/// The same transcript with one bit of the proof flipped fails as an authentication failure.
#[test]
fn rfc_7677_example_with_wrong_proof_fails() {
    let mut exchange = Exchange::with_server_nonce(
        Mechanism::ScramSha256,
        None,
        "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    );
    let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let _ = exchange
        .step(Some(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
        .unwrap();
    let _ = exchange.provide_credentials(Some(ScramCredentials::from_password_with_salt(
        "pencil", &salt, 4096,
    )));
    let error = exchange
        .step(Some(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVU=",
        ))
        .unwrap_err();
    assert!(error.is_authentication_failure(), "{error}");
}

/// RFC 4616 §4: "<NUL>tim<NUL>tanstaaftanstaaf" and "Ursel<NUL>Kurt<NUL>xipj3plmq", as initial responses and after
/// an empty challenge.
#[test]
fn rfc_4616_plain_examples() {
    for (message, expected_authzid, expected_user, expected_password) in [
        (
            &b"\0tim\0tanstaaftanstaaf"[..],
            None,
            "tim",
            "tanstaaftanstaaf",
        ),
        (
            &b"Ursel\0Kurt\0xipj3plmq"[..],
            Some("Ursel"),
            "Kurt",
            "xipj3plmq",
        ),
    ] {
        for initial_response in [true, false] {
            let mut exchange = Exchange::new(Mechanism::Plain, None);
            if !initial_response {
                assert!(matches!(exchange.step(None).unwrap(), Step::Challenge(c) if c.is_empty()));
            }
            match exchange.step(Some(message)).unwrap() {
                Step::CheckPassword {
                    authzid,
                    user,
                    password,
                } => {
                    assert_eq!(authzid.as_deref(), expected_authzid);
                    assert_eq!(user, expected_user);
                    assert_eq!(password.expose(), expected_password);
                    assert!(!format!("{password:?}").contains(expected_password));
                }
                other => panic!("{other:?}"),
            }
            assert!(exchange.is_finished());
        }
    }
}
