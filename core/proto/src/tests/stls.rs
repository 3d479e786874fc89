//! STLS (RFC 2595 §4): the upgrade, the plain-text injection defence, the refusals,
//! and CAPA before and after.

use crate::event::Event;
use crate::options::SessionOptions;
use crate::state::State;
use crate::testing::{Driver, logged_in, test_options};

/// A plain listener offering STLS, with Dovecot's cleartext policy on.
fn plain_listener() -> SessionOptions {
    SessionOptions {
        stls: true,
        plaintext_disallowed: true,
        sasl_mechanisms: ["PLAIN", "LOGIN", "SCRAM-SHA-256"].map(String::from).into(),
        ..test_options()
    }
}

const PLAINTEXT_REFUSED: &str =
    "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n";

#[test]
fn stls_then_login() {
    let mut driver = Driver::new(plain_listener());
    assert!(!driver.session.tls_active());
    driver.feed(b"STLS\r\n");
    assert_eq!(driver.replies(), "+OK Begin TLS negotiation\r\n");
    assert!(driver.tls_requested);
    assert!(!driver.session.tls_active());
    driver.handshake();
    assert!(driver.session.tls_active());
    assert!(!driver.session.options().plaintext_disallowed);
    driver.out.clear();
    driver.feed(b"USER alice\r\nPASS secret\r\n");
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "+OK send PASS\r\n+OK Logged in, maildrop has 3 messages (108 octets)\r\n"
    );
}

#[test]
fn events_in_order_and_input_ignored_until_the_handshake() {
    let mut driver = Driver::new(plain_listener());
    driver.session.enqueue_input(b"stls\r\n");
    let now = driver.now;
    let Some(Event::Reply(reply)) = driver.session.next(now) else {
        panic!("no reply")
    };
    assert_eq!(reply.to_bytes(), b"+OK Begin TLS negotiation\r\n");
    assert_eq!(driver.session.next(now), Some(Event::StartTls));
    // Whatever arrives before the handshake completes is plain text: ignored.
    driver.session.enqueue_input(b"USER evil\r\n");
    assert!(!driver.session.has_buffered_input());
    assert_eq!(driver.session.next(now), None);
    driver.session.tls_started();
    assert_eq!(driver.session.next(now), None);
    driver.session.enqueue_input(b"CAPA\r\n");
    assert!(matches!(driver.session.next(now), Some(Event::Reply(_))));
    // A second tls_started() is ignored.
    driver.session.tls_started();
    assert_eq!(driver.session.state(), State::Authorization);
}

/// CVE-2011-0411: commands pipelined after STLS in the same packet are dropped.
#[test]
fn pipelined_plaintext_after_stls_is_discarded() {
    let mut driver = Driver::new(SessionOptions {
        plaintext_disallowed: false,
        ..plain_listener()
    });
    driver.feed(b"STLS\r\nUSER evil\r\nPASS secret\r\n");
    assert_eq!(driver.replies(), "+OK Begin TLS negotiation\r\n");
    driver.handshake();
    assert_eq!(driver.replies(), "+OK Begin TLS negotiation\r\n");
    assert!(!driver.session.has_buffered_input());
    // The USER was never processed: PASS now has no user.
    driver.feed(b"PASS secret\r\n");
    assert_eq!(
        driver.replies(),
        "+OK Begin TLS negotiation\r\n-ERR PASS must follow a successful USER\r\n"
    );
    assert_eq!(driver.session.stats().commands, 2);
}

#[test]
fn stls_refused_when_active_not_offered_after_user_or_in_transaction() {
    let mut active = Driver::new(SessionOptions {
        tls_active: true,
        ..plain_listener()
    });
    active.feed(b"STLS\r\n");
    assert_eq!(
        active.replies(),
        "-ERR Command not permitted when TLS active\r\n"
    );
    assert!(active.session.tls_active());

    let mut twice = Driver::new(plain_listener());
    twice.feed(b"STLS\r\n").handshake().feed(b"STLS\r\n");
    assert!(
        twice
            .replies()
            .ends_with("-ERR Command not permitted when TLS active\r\n")
    );

    let mut not_offered = Driver::new(test_options());
    not_offered.feed(b"STLS\r\n");
    assert_eq!(not_offered.replies(), "-ERR STLS is not available\r\n");
    assert!(!not_offered.tls_requested);

    let mut after_user = Driver::new(SessionOptions {
        plaintext_disallowed: false,
        ..plain_listener()
    });
    after_user.feed(b"USER alice\r\nSTLS\r\nPASS secret\r\n");
    assert_eq!(
        after_user.replies(),
        "+OK send PASS\r\n-ERR STLS is not allowed after USER\r\n\
         +OK Logged in, maildrop has 3 messages (108 octets)\r\n"
    );

    let mut driver = logged_in();
    driver.feed(b"STLS\r\n");
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "-ERR STLS is not valid in the TRANSACTION state\r\n"
    );
}

#[test]
fn capa_before_and_after_tls() {
    let mut driver = Driver::new(plain_listener());
    driver.feed(b"CAPA\r\n");
    assert_eq!(
        driver.replies(),
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nSASL SCRAM-SHA-256\r\nPIPELINING\r\n\
         RESP-CODES\r\nAUTH-RESP-CODE\r\nSTLS\r\nX-ECHO\r\n.\r\n"
    );
    driver.feed(b"STLS\r\n").handshake();
    driver.out.clear();
    driver.feed(b"CAPA\r\n");
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nSASL PLAIN LOGIN SCRAM-SHA-256\r\n\
         PIPELINING\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nX-ECHO\r\n.\r\n"
    );
}

#[test]
fn cleartext_refused_until_tls() {
    let mut driver = Driver::new(plain_listener());
    driver.feed(b"USER alice\r\nPASS secret\r\nAUTH PLAIN\r\n");
    assert_eq!(driver.replies(), PLAINTEXT_REFUSED.repeat(3));
    assert_eq!(driver.closed, None);
    driver.feed(b"STLS\r\n").handshake();
    driver.out.clear();
    driver.feed(b"USER alice\r\nPASS secret\r\n");
    assert_eq!(driver.session.state(), State::Transaction);
}

#[test]
fn apop_is_not_cleartext() {
    let mut driver = Driver::new(plain_listener());
    driver.feed(format!("APOP alice {}\r\n", crate::testing::GOOD_DIGEST).as_bytes());
    assert_eq!(driver.session.state(), State::Transaction);
}

#[test]
fn tls_can_add_mechanisms_that_need_it() {
    let mut driver = Driver::new(plain_listener());
    driver.feed(b"STLS\r\n");
    driver.session.tls_started_with(
        ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN"]
            .map(String::from)
            .into(),
    );
    assert!(driver.session.tls_active());
    driver.out.clear();
    driver.feed(b"CAPA\r\n");
    let capa = String::from_utf8_lossy(&driver.out).into_owned();
    assert!(
        capa.contains("SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 PLAIN\r\n"),
        "{capa}"
    );
    assert!(!capa.contains("LOGIN"), "{capa}");
}
