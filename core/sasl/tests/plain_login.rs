//! PLAIN and LOGIN through the public `Exchange` API, as the POP3 driver drives them.

#![allow(clippy::unwrap_used)]

use poppet_sasl::{Exchange, Mechanism, SaslError, Step};

fn check_password(step: Step) -> (Option<String>, String, String) {
    match step {
        Step::CheckPassword {
            authzid,
            user,
            password,
        } => (authzid, user, password.expose().clone()),
        other => panic!("expected CheckPassword, got {other:?}"),
    }
}

fn challenge(step: Step) -> Vec<u8> {
    match step {
        Step::Challenge(data) => data,
        other => panic!("expected Challenge, got {other:?}"),
    }
}

#[test]
fn plain_errors_end_the_exchange() {
    for (message, error) in [
        (&b"tim\0pw"[..], "malformed"),
        (b"\0tim\0pw\0extra", "malformed"),
        (b"\0\0pw", "empty user"),
        (b"\0tim\0", "empty password"),
        (b"", "malformed"),
    ] {
        let mut exchange = Exchange::new(Mechanism::Plain, None);
        let got = exchange.step(Some(message)).unwrap_err();
        assert!(got.to_string().contains(error), "{got}");
        assert!(exchange.is_finished());
        assert_eq!(
            exchange.step(Some(b"\0tim\0pw")).unwrap_err(),
            SaslError::UnexpectedMessage
        );
    }
}

#[test]
fn plain_after_empty_challenge_needs_a_message() {
    let mut exchange = Exchange::new(Mechanism::Plain, None);
    assert!(challenge(exchange.step(None).unwrap()).is_empty());
    assert_eq!(
        exchange.step(None).unwrap_err(),
        SaslError::UnexpectedMessage
    );
}

#[test]
fn plain_message_after_success_is_unexpected() {
    let mut exchange = Exchange::new(Mechanism::Plain, None);
    let _ = check_password(exchange.step(Some(b"\0tim\0pw")).unwrap());
    assert_eq!(
        exchange.step(Some(b"\0tim\0pw")).unwrap_err(),
        SaslError::UnexpectedMessage
    );
    assert_eq!(
        exchange.provide_credentials(None).unwrap_err(),
        SaslError::CredentialsNotRequested
    );
}

#[test]
fn login_without_initial_response_prompts_twice() {
    let mut exchange = Exchange::new(Mechanism::Login, None);
    assert_eq!(challenge(exchange.step(None).unwrap()), b"Username:");
    assert_eq!(
        challenge(exchange.step(Some(b"tim")).unwrap()),
        b"Password:"
    );
    assert_eq!(
        check_password(exchange.step(Some(b"tanstaaf")).unwrap()),
        (None, "tim".into(), "tanstaaf".into())
    );
    assert!(exchange.is_finished());
}

#[test]
fn login_with_user_as_initial_response() {
    let mut exchange = Exchange::new(Mechanism::Login, None);
    assert_eq!(
        challenge(exchange.step(Some(b"tim")).unwrap()),
        b"Password:"
    );
    assert_eq!(check_password(exchange.step(Some(b"pw")).unwrap()).1, "tim");
}

#[test]
fn login_empty_initial_response_is_no_initial_response() {
    let mut exchange = Exchange::new(Mechanism::Login, None);
    assert_eq!(challenge(exchange.step(Some(b"")).unwrap()), b"Username:");
}

#[test]
fn login_rejects_empty_values_and_bad_utf8() {
    let mut exchange = Exchange::new(Mechanism::Login, None);
    let _ = exchange.step(None).unwrap();
    assert_eq!(exchange.step(Some(b"")).unwrap_err(), SaslError::EmptyUser);

    let mut exchange = Exchange::new(Mechanism::Login, None);
    let _ = exchange.step(Some(b"tim")).unwrap();
    assert_eq!(
        exchange.step(Some(b"")).unwrap_err(),
        SaslError::EmptyPassword
    );

    let mut exchange = Exchange::new(Mechanism::Login, None);
    assert_eq!(
        exchange.step(Some(b"t\xffm")).unwrap_err(),
        SaslError::InvalidUtf8
    );

    let mut exchange = Exchange::new(Mechanism::Login, None);
    assert!(matches!(
        exchange.step(Some(b"t\0m")),
        Err(SaslError::MalformedMessage { .. })
    ));
}

#[test]
fn debug_output_hides_passwords() {
    let mut exchange = Exchange::new(Mechanism::Login, None);
    let _ = exchange.step(Some(b"tim")).unwrap();
    let step = exchange.step(Some(b"hunter2")).unwrap();
    let debug = format!("{step:?} {exchange:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("[REDACTED]"), "{debug}");
}
