//! SCRAM-SHA-256 and -PLUS through the public API with an independent client (tests/common): round trips,
//! channel-binding rules, unknown users, out-of-order calls.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Client, run};
use poppet_sasl::{ChannelBinding, Exchange, Mechanism, SaslError, ScramCredentials, Step};

const CB: &[u8] = b"0123456789abcdef0123456789abcdef";

fn binding() -> Option<ChannelBinding> {
    Some(ChannelBinding::tls_exporter(CB.to_vec()))
}

fn creds() -> ScramCredentials {
    ScramCredentials::from_password("pencil", 4096)
}

fn success(result: Result<Step, SaslError>) -> (Option<String>, String) {
    match result {
        Ok(Step::Success {
            authzid,
            user,
            server_final: Some(_),
        }) => (authzid, user),
        other => panic!("expected Success, got {other:?}"),
    }
}

#[test]
fn round_trip_without_initial_response() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    assert!(matches!(exchange.step(None), Ok(Step::Challenge(c)) if c.is_empty()));
    let mut client = Client::new("n,,", b"", "user", "pencil", "fyko+d2lbbFgONRv9qkxdawL");
    assert_eq!(
        success(run(&mut exchange, &mut client, Some(creds()))),
        (None, "user".into())
    );
}

#[test]
fn round_trip_with_authzid_and_escaped_names() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let mut client = Client::new("n,a=ad=3Dmin=2Cx,", b"", "us,er=1", "pencil", "abc");
    assert_eq!(
        success(run(&mut exchange, &mut client, Some(creds()))),
        (Some("ad=min,x".into()), "us,er=1".into())
    );
    // An authzid equal to the user means "myself".
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let mut client = Client::new("n,a=tim,", b"", "tim", "pencil", "abc");
    assert_eq!(
        success(run(&mut exchange, &mut client, Some(creds()))).0,
        None
    );
}

#[test]
fn round_trip_with_saslprep_and_dovecot_credentials() {
    // U+00A0 (no-break space) maps to U+0020 under SASLprep (RFC 4013 §2.1), on both sides.
    let stored = ScramCredentials::from_password("p\u{e4}ss word", 4096).to_dovecot();
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let mut client = Client::new("n,,", b"", "user", "p\u{e4}ss\u{a0}word", "abc");
    let _ = success(run(
        &mut exchange,
        &mut client,
        Some(ScramCredentials::parse_dovecot(&stored).unwrap()),
    ));
}

#[test]
fn wrong_password_and_unknown_user_fail_alike() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let mut client = Client::new("n,,", b"", "user", "wrong", "abc");
    assert_eq!(
        run(&mut exchange, &mut client, Some(creds())).unwrap_err(),
        SaslError::ProofMismatch
    );

    // Unknown user: even the password that would match the fake salt cannot succeed; the salt is stable.
    let mut salts = Vec::new();
    for _ in 0..2 {
        let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
        let mut client = Client::new("n,,", b"", "nobody", "pencil", "abc");
        let _ = exchange.step(Some(&client.first())).unwrap();
        let Step::Challenge(server_first) = exchange.provide_credentials(None).unwrap() else {
            panic!()
        };
        let text = String::from_utf8(server_first.clone()).unwrap();
        salts.push(text.split(',').nth(1).unwrap().to_owned());
        assert!(text.ends_with(",i=4096"), "{text}");
        let error = exchange
            .step(Some(&client.last(&server_first)))
            .unwrap_err();
        assert!(error.is_authentication_failure());
    }
    assert_eq!(salts[0], salts[1]);
}

#[test]
fn plus_round_trip_with_tls_exporter() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256Plus, binding());
    let mut client = Client::new("p=tls-exporter,,", CB, "user", "pencil", "abc");
    assert_eq!(
        success(run(&mut exchange, &mut client, Some(creds()))).1,
        "user"
    );
}

#[test]
fn plus_rejects_other_binding_data() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256Plus, binding());
    let mut client = Client::new(
        "p=tls-exporter,,",
        b"a different TLS session..........",
        "user",
        "pencil",
        "abc",
    );
    assert_eq!(
        run(&mut exchange, &mut client, Some(creds())).unwrap_err(),
        SaslError::ChannelBindingMismatch
    );
}

#[test]
fn plus_rejects_other_binding_type() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256Plus, binding());
    let client = Client::new("p=tls-unique,,", CB, "user", "pencil", "abc");
    assert_eq!(
        exchange.step(Some(&client.first())).unwrap_err(),
        SaslError::ChannelBindingTypeUnsupported("tls-unique".into())
    );
}

#[test]
fn plus_without_binding_data_fails_at_first_step() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256Plus, None);
    assert_eq!(
        exchange.step(None).unwrap_err(),
        SaslError::ChannelBindingUnavailable
    );
    let mut exchange = Exchange::new(Mechanism::ScramSha256Plus, None);
    let client = Client::new("p=tls-exporter,,", CB, "user", "pencil", "abc");
    assert_eq!(
        exchange.step(Some(&client.first())).unwrap_err(),
        SaslError::ChannelBindingUnavailable
    );
}

#[test]
fn plus_requires_p_flag() {
    for header in ["n,,", "y,,"] {
        let mut exchange = Exchange::new(Mechanism::ScramSha256Plus, binding());
        let client = Client::new(header, b"", "user", "pencil", "abc");
        assert_eq!(
            exchange.step(Some(&client.first())).unwrap_err(),
            SaslError::ChannelBindingRequired
        );
    }
}

#[test]
fn y_flag_while_plus_is_advertised_is_a_downgrade() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256, binding());
    let client = Client::new("y,,", b"", "user", "pencil", "abc");
    assert_eq!(
        exchange.step(Some(&client.first())).unwrap_err(),
        SaslError::ChannelBindingDowngrade
    );
}

#[test]
fn y_and_n_flags_without_plus_succeed() {
    for header in ["y,,", "n,,"] {
        let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
        let mut client = Client::new(header, b"", "user", "pencil", "abc");
        let _ = success(run(&mut exchange, &mut client, Some(creds())));
    }
    // A client without channel binding support ("n") is fine even where -PLUS is offered.
    let mut exchange = Exchange::new(Mechanism::ScramSha256, binding());
    let mut client = Client::new("n,,", b"", "user", "pencil", "abc");
    let _ = success(run(&mut exchange, &mut client, Some(creds())));
}

#[test]
fn p_flag_on_plain_scram_is_refused() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256, binding());
    let client = Client::new("p=tls-exporter,,", CB, "user", "pencil", "abc");
    assert_eq!(
        exchange.step(Some(&client.first())).unwrap_err(),
        SaslError::ChannelBindingNotSupported
    );
}

#[test]
fn c_attribute_must_match_gs2_header() {
    // The client says "n,," first but claims "y,," in c=: the GS2 header was tampered with.
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let mut client = Client::new("n,,", b"", "user", "pencil", "abc");
    let _ = exchange.step(Some(&client.first())).unwrap();
    let Step::Challenge(server_first) = exchange.provide_credentials(Some(creds())).unwrap() else {
        panic!()
    };
    client.gs2_header = "y,,".into();
    assert_eq!(
        exchange
            .step(Some(&client.last(&server_first)))
            .unwrap_err(),
        SaslError::ChannelBindingMismatch
    );
}

#[test]
fn nonce_must_be_the_combined_nonce() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let mut client = Client::new("n,,", b"", "user", "pencil", "abc");
    let _ = exchange.step(Some(&client.first())).unwrap();
    let Step::Challenge(server_first) = exchange.provide_credentials(Some(creds())).unwrap() else {
        panic!()
    };
    let text = String::from_utf8(server_first).unwrap();
    let nonce = text
        .split(',')
        .next()
        .unwrap()
        .strip_prefix("r=abc")
        .unwrap();
    assert_eq!(nonce.len(), 32, "24 random bytes in base64");
    let forged = text.replacen(nonce, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 1);
    assert_eq!(
        exchange
            .step(Some(&client.last(forged.as_bytes())))
            .unwrap_err(),
        SaslError::NonceMismatch
    );
}

#[test]
fn server_nonces_are_fresh() {
    let first = |_| {
        let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
        let _ = exchange.step(Some(b"n,,n=user,r=abc")).unwrap();
        match exchange.provide_credentials(Some(creds())).unwrap() {
            Step::Challenge(server_first) => server_first,
            other => panic!("{other:?}"),
        }
    };
    let [a, b] = [0, 1].map(first);
    assert_ne!(a, b);
}

#[test]
fn calls_out_of_order_are_errors() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    assert_eq!(
        exchange.provide_credentials(Some(creds())).unwrap_err(),
        SaslError::CredentialsNotRequested
    );

    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let _ = exchange.step(Some(b"n,,n=user,r=abc")).unwrap();
    assert_eq!(
        exchange.step(Some(b"c=biws,r=abc,p=AAAA")).unwrap_err(),
        SaslError::UnexpectedMessage
    );

    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let mut client = Client::new("n,,", b"", "user", "pencil", "abc");
    let _ = success(run(&mut exchange, &mut client, Some(creds())));
    assert_eq!(
        exchange.step(Some(b"")).unwrap_err(),
        SaslError::UnexpectedMessage
    );
}

#[test]
fn empty_client_first_or_final_is_malformed() {
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    assert!(matches!(
        exchange.step(Some(b"")),
        Err(SaslError::MalformedMessage { .. })
    ));
    let mut exchange = Exchange::new(Mechanism::ScramSha256, None);
    let _ = exchange.step(Some(b"n,,n=user,r=abc")).unwrap();
    let _ = exchange.provide_credentials(Some(creds())).unwrap();
    assert!(matches!(
        exchange.step(None),
        Err(SaslError::MalformedMessage { .. })
    ));
}
