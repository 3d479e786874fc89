//! AUTH (RFC 5034): listing, initial responses, continuations, cancelling, limits and
//! the cleartext policy, through the fake mechanisms of `testing.rs`.

use crate::event::{Event, LoginOutcome};
use crate::options::SessionOptions;
use crate::state::State;
use crate::testing::{BAD_BASE64, Driver, PLAIN_ALICE, messages, test_options};

fn sasl_options() -> SessionOptions {
    SessionOptions {
        sasl_mechanisms: ["PLAIN", "LOGIN", "SCRAM-SHA-256"].map(String::from).into(),
        ..test_options()
    }
}

fn run_sasl(script: &str) -> Driver {
    let mut driver = Driver::new(sasl_options());
    driver.feed(script.as_bytes());
    driver
}

const LOGGED_IN: &str = "+OK Logged in, maildrop has 3 messages (108 octets)\r\n";

#[test]
fn auth_lists_mechanisms() {
    assert_eq!(
        run_sasl("AUTH\r\n").replies(),
        "+OK Supported SASL mechanisms follow\r\nPLAIN\r\nLOGIN\r\nSCRAM-SHA-256\r\n.\r\n"
    );
    let mut driver = Driver::new(SessionOptions {
        plaintext_disallowed: true,
        ..sasl_options()
    });
    driver.feed(b"auth\r\n");
    assert_eq!(
        driver.replies(),
        "+OK Supported SASL mechanisms follow\r\nSCRAM-SHA-256\r\n.\r\n"
    );
    assert_eq!(
        Driver::new(test_options()).feed(b"AUTH\r\n").replies(),
        "+OK Supported SASL mechanisms follow\r\n.\r\n"
    );
}

#[test]
fn plain_with_initial_response() {
    let driver = run_sasl(&format!("AUTH PLAIN {PLAIN_ALICE}\r\nSTAT\r\n"));
    assert_eq!(driver.replies(), format!("{LOGGED_IN}+OK 3 108\r\n"));
    assert_eq!(driver.session.user(), Some("alice"));
}

#[test]
fn plain_with_continuation() {
    let driver = run_sasl(&format!("auth plain\r\n{PLAIN_ALICE}\r\n"));
    assert_eq!(driver.replies(), format!("+ \r\n{LOGGED_IN}"));
    assert_eq!(driver.session.state(), State::Transaction);
}

#[test]
fn empty_initial_response_is_an_equals_sign() {
    let mut driver = Driver::new(sasl_options());
    driver.session.enqueue_input(b"AUTH PLAIN =\r\n");
    assert_eq!(
        driver.session.next(driver.now),
        Some(Event::SaslStarted {
            mechanism: "PLAIN".into(),
            initial_response: Some(String::new()),
        })
    );
    let mut driver = Driver::new(sasl_options());
    driver.feed(b"AUTH PLAIN =\r\n");
    assert_eq!(driver.replies(), "-ERR [AUTH] Authentication failed\r\n");
}

#[test]
fn login_runs_two_challenges() {
    let driver = run_sasl("AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n");
    assert_eq!(
        driver.replies(),
        format!("+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n{LOGGED_IN}")
    );
}

#[test]
fn scram_with_final_challenge_and_auth_completed() {
    let driver =
        run_sasl("AUTH SCRAM-SHA-256 biwsbj1ib2Iscj1ub25jZQ==\r\nY2xpZW50LWZpbmFs\r\n\r\n");
    assert_eq!(
        driver.replies(),
        format!("+ cj1zZXJ2ZXItZmlyc3Q=\r\n+ dj1zZXJ2ZXItZmluYWw=\r\n{LOGGED_IN}")
    );
    // auth_completed does not name the user; sasl_completed would.
    assert_eq!(driver.session.state(), State::Transaction);
    assert_eq!(driver.session.user(), None);
}

#[test]
fn star_cancels() {
    let mut driver = run_sasl("AUTH LOGIN\r\n*\r\nCAPA\r\n");
    assert!(driver.replies().starts_with(
        "+ VXNlcm5hbWU6\r\n-ERR [AUTH] Authentication cancelled\r\n+OK Capability list follows\r\n"
    ));
    assert_eq!(driver.sasl_cancelled, 1);
    assert!(driver.sasl.is_none());
    // A cancel is not a bad command, and continuation lines are not commands.
    assert_eq!(driver.session.stats().bad_commands, 0);
    assert_eq!(driver.session.stats().commands, 2);
    driver.out.clear();
    driver.feed(b"USER alice\r\nPASS secret\r\n");
    assert_eq!(driver.session.state(), State::Transaction);
}

#[test]
fn continuations_are_not_commands() {
    let driver = run_sasl("AUTH PLAIN\r\nQUIT\r\nCAPA\r\n");
    assert!(
        driver.replies().starts_with(
            "+ \r\n-ERR [AUTH] Authentication failed\r\n+OK Capability list follows\r\n"
        )
    );
    assert_eq!(driver.closed, None);
}

#[test]
fn overlong_continuation_cancels() {
    let long = "A".repeat(8191);
    let driver = run_sasl(&format!("AUTH PLAIN\r\n{long}\r\nCAPA\r\n"));
    assert!(driver.replies().starts_with(
        "+ \r\n-ERR authentication line too long (at most 8192 octets including CRLF)\r\n\
         +OK Capability list follows\r\n"
    ));
    assert_eq!(driver.sasl_cancelled, 1);
    // Up to the limit is fine: 8190 octets and CRLF (rejected by the fake PLAIN).
    let fits = "A".repeat(8190);
    let driver = run_sasl(&format!("AUTH PLAIN\r\n{fits}\r\n"));
    assert_eq!(
        driver.replies(),
        "+ \r\n-ERR [AUTH] Authentication failed\r\n"
    );
    // Endless continuation without LF: reported once, discarded, nothing buffered.
    let mut driver = run_sasl("AUTH PLAIN\r\n");
    for _ in 0..100 {
        driver.feed(&[b'A'; 4096]);
    }
    assert!(!driver.session.has_buffered_input());
    driver.feed(b"AAAA\r\nCAPA\r\n");
    assert!(driver.replies().ends_with(".\r\n"), "{}", driver.replies());
    assert_eq!(driver.session.stats().bad_commands, 1);
}

#[test]
fn configured_limit_for_continuations() {
    let mut driver = Driver::new(SessionOptions {
        max_sasl_line: 300,
        ..sasl_options()
    });
    driver.feed(format!("AUTH PLAIN\r\n{}\r\n", "A".repeat(299)).as_bytes());
    assert!(
        driver
            .replies()
            .ends_with("-ERR authentication line too long (at most 300 octets including CRLF)\r\n")
    );
}

#[test]
fn unknown_and_malformed() {
    assert_eq!(
        run_sasl("AUTH CRAM-MD5\r\nAUTH X\r\n").replies(),
        "-ERR Unsupported authentication mechanism\r\n\
         -ERR Unsupported authentication mechanism\r\n"
    );
    assert_eq!(
        Driver::new(test_options())
            .feed(b"AUTH PLAIN\r\n")
            .replies(),
        "-ERR Unsupported authentication mechanism\r\n"
    );
    assert_eq!(
        run_sasl("AUTH PLAIN a b\r\n").replies(),
        "-ERR too many arguments for AUTH\r\n"
    );
}

#[test]
fn sasl_failed_answers_auth_and_returns_to_authorization() {
    let driver = run_sasl("AUTH PLAIN\r\n!!!\r\nAUTH PLAIN %%\r\nCAPA\r\n");
    let failed = format!("-ERR [AUTH] {BAD_BASE64}\r\n");
    assert!(
        driver
            .replies()
            .starts_with(&format!("+ \r\n{failed}{failed}+OK Capability"))
    );
    assert_eq!(driver.session.state(), State::Authorization);
    assert_eq!(driver.session.stats().bad_commands, 0);
}

#[test]
fn plaintext_mechanisms_refused_scram_allowed() {
    let mut driver = Driver::new(SessionOptions {
        plaintext_disallowed: true,
        ..sasl_options()
    });
    driver.feed(format!("AUTH PLAIN {PLAIN_ALICE}\r\nAUTH login\r\n").as_bytes());
    let refused =
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n";
    assert_eq!(driver.replies(), refused.repeat(2));
    driver.out.clear();
    driver.feed(b"AUTH SCRAM-SHA-256 biws\r\nY2xpZW50LWZpbmFs\r\n\r\n");
    assert!(String::from_utf8_lossy(&driver.out).ends_with(LOGGED_IN));
}

#[test]
fn auth_cancels_a_user() {
    let driver = run_sasl(&format!("USER bob\r\nAUTH PLAIN {PLAIN_ALICE}\r\n"));
    assert_eq!(driver.session.user(), Some("alice"));
    let driver = run_sasl("USER alice\r\nAUTH PLAIN\r\n*\r\nPASS secret\r\n");
    assert!(
        driver
            .replies()
            .ends_with("-ERR PASS must follow a successful USER\r\n")
    );
}

#[test]
fn input_waits_for_the_driver_and_auth_is_refused_after_login() {
    let mut driver = Driver::new(sasl_options());
    driver
        .session
        .enqueue_input(b"AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n");
    let now = driver.now;
    assert!(matches!(
        driver.session.next(now),
        Some(Event::SaslStarted { .. })
    ));
    assert_eq!(driver.session.next(now), None);
    driver.session.sasl_challenge("");
    let Some(Event::Reply(challenge)) = driver.session.next(now) else {
        panic!("no challenge")
    };
    assert_eq!(challenge.to_bytes(), b"+ \r\n");
    assert_eq!(
        driver.session.next(now),
        Some(Event::SaslResponse {
            data: PLAIN_ALICE.into()
        })
    );
    assert_eq!(driver.session.next(now), None);
    driver.session.sasl_completed(
        "alice",
        LoginOutcome::Accepted {
            messages: messages(),
            expire: None,
            login_delay: None,
        },
    );
    assert!(matches!(driver.session.next(now), Some(Event::Reply(r)) if r.is_ok()));
    driver.feed(b"AUTH PLAIN\r\n");
    assert!(
        driver
            .replies()
            .ends_with("-ERR AUTH is not valid in the TRANSACTION state\r\n")
    );
}

#[test]
fn stray_sasl_answers_are_ignored() {
    let mut driver = Driver::new(sasl_options());
    driver.session.sasl_challenge("x");
    driver.session.sasl_failed("x");
    driver.session.sasl_completed("x", LoginOutcome::Rejected);
    driver.session.tls_started();
    assert_eq!(driver.session.next(driver.now), None);
    assert!(!driver.session.tls_active());
    driver.feed(b"CAPA\r\n");
    assert!(driver.replies().starts_with("+OK Capability"));
}

#[test]
fn login_timeout_applies_to_the_whole_exchange() {
    let mut driver = Driver::new(sasl_options());
    let start = driver.now;
    driver.feed(b"AUTH LOGIN\r\n");
    for _ in 0..10 {
        driver.advance(std::time::Duration::from_secs(20));
        driver.feed(b"Y");
    }
    assert_eq!(
        driver.session.deadline(),
        start + crate::options::SessionOptions::DEFAULT_LOGIN_TIMEOUT
    );
    let Some(Event::Close { reason, .. }) = driver.session.handle_timeout(driver.now) else {
        panic!("no close")
    };
    assert_eq!(reason, crate::event::CloseReason::LoginTimeout);
}
