//! Hostile clients: the absolute login timeout, the idle timer, and the bad-command
//! limits before and after login.

use std::time::Duration;

use crate::event::{CloseReason, Event};
use crate::options::SessionOptions;
use crate::state::State;
use crate::testing::{Driver, logged_in, test_options};

const LOGIN_TIMEOUT: Duration = Duration::from_secs(180);
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

fn close_line(event: Option<Event>) -> (CloseReason, String) {
    let Some(Event::Close {
        reason,
        reply: Some(reply),
    }) = event
    else {
        panic!("no close with a reply: {event:?}")
    };
    (
        reason,
        String::from_utf8_lossy(&reply.to_bytes()).into_owned(),
    )
}

#[test]
fn login_timeout_is_absolute() {
    let mut driver = Driver::new(test_options());
    let start = driver.now;
    assert_eq!(driver.session.deadline(), start + LOGIN_TIMEOUT);
    // A client trickling commands does not move the deadline.
    for _ in 0..17 {
        driver.advance(Duration::from_secs(10));
        driver.feed(b"CAPA\r\n");
        assert_eq!(driver.session.deadline(), start + LOGIN_TIMEOUT);
    }
    driver.feed(b"USER alice\r\n");
    let last = start + LOGIN_TIMEOUT - Duration::from_secs(1);
    assert_eq!(driver.session.handle_timeout(last), None);
    let (reason, line) = close_line(driver.session.handle_timeout(start + LOGIN_TIMEOUT));
    assert_eq!(reason, CloseReason::LoginTimeout);
    assert_eq!(line, "-ERR Disconnected: login took too long\r\n");
    assert_eq!(driver.session.state(), State::Closed);
    driver.feed(b"PASS secret\r\n");
    assert_eq!(driver.session.user(), None);
}

#[test]
fn after_login_only_the_idle_timer_counts() {
    let mut driver = Driver::new(test_options());
    driver.advance(Duration::from_secs(170));
    driver.feed(b"USER alice\r\nPASS secret\r\n");
    assert_eq!(driver.session.state(), State::Transaction);
    assert_eq!(driver.session.deadline(), driver.now + IDLE_TIMEOUT);
    driver.advance(Duration::from_secs(500));
    assert_eq!(driver.session.handle_timeout(driver.now), None);
    driver.feed(b"NOOP\r\n");
    assert_eq!(driver.session.deadline(), driver.now + IDLE_TIMEOUT);
    let deadline = driver.session.deadline();
    assert_eq!(
        driver
            .session
            .handle_timeout(deadline - Duration::from_secs(1)),
        None
    );
    let (reason, line) = close_line(driver.session.handle_timeout(deadline));
    assert_eq!(reason, CloseReason::Timeout);
    assert_eq!(line, "-ERR autologout: idle for too long\r\n");
}

#[test]
fn login_timeout_can_be_longer_or_off() {
    // The idle timer still applies before login.
    for login_timeout in [Duration::ZERO, Duration::from_secs(3600)] {
        let mut driver = Driver::new(SessionOptions {
            login_timeout,
            ..test_options()
        });
        assert_eq!(driver.session.deadline(), driver.now + IDLE_TIMEOUT);
        driver.advance(IDLE_TIMEOUT);
        let (reason, _) = close_line(driver.session.handle_timeout(driver.now));
        assert_eq!(reason, CloseReason::Timeout);
    }
}

#[test]
fn login_timeout_covers_the_tls_handshake_but_not_a_busy_backend() {
    let mut driver = Driver::new(SessionOptions {
        stls: true,
        ..test_options()
    });
    driver.feed(b"STLS\r\n");
    assert!(driver.tls_requested);
    let late = driver.now + LOGIN_TIMEOUT;
    let (reason, _) = close_line(driver.session.handle_timeout(late));
    assert_eq!(reason, CloseReason::LoginTimeout);

    let mut driver = Driver::new(test_options());
    driver
        .session
        .enqueue_input(b"USER alice\r\nPASS secret\r\n");
    let now = driver.now;
    assert!(matches!(driver.session.next(now), Some(Event::Reply(_))));
    assert!(matches!(
        driver.session.next(now),
        Some(Event::AuthRequested(_))
    ));
    assert_eq!(driver.session.handle_timeout(now + LOGIN_TIMEOUT), None);
}

#[test]
fn idle_timeout_closes_without_commit() {
    let mut driver = logged_in();
    driver.feed(b"DELE 1\r\n");
    let deadline = driver.session.deadline();
    assert_eq!(deadline, driver.now + IDLE_TIMEOUT);
    let (reason, _) = close_line(driver.session.handle_timeout(deadline));
    assert_eq!(reason, CloseReason::Timeout);
    assert_eq!(driver.session.handle_timeout(deadline), None);
    driver.feed(b"QUIT\r\n");
    assert_eq!(driver.committed, None);
}

#[test]
fn idle_timeout_is_at_least_ten_minutes() {
    let mut driver = Driver::new(SessionOptions {
        idle_timeout: Duration::from_secs(5),
        ..test_options()
    });
    driver.feed(b"USER alice\r\nPASS secret\r\n");
    assert_eq!(driver.session.deadline(), driver.now + IDLE_TIMEOUT);
}

#[test]
fn timer_does_not_fire_while_the_driver_is_busy() {
    let mut driver = logged_in();
    driver.session.enqueue_input(b"RETR 1\r\n");
    let start = driver.now;
    assert!(matches!(
        driver.session.next(start),
        Some(Event::TransferRequested {
            index: 0,
            size: 34,
            top_lines: None
        })
    ));
    let late = start + Duration::from_secs(3600);
    assert_eq!(driver.session.handle_timeout(late), None);
    driver.session.transfer_completed();
    // The idle clock restarts when the driver comes back for the next event.
    assert_eq!(driver.session.next(late), None);
    assert_eq!(driver.session.deadline(), late + IDLE_TIMEOUT);
}

#[test]
fn three_bad_commands_before_login_close() {
    let mut driver = Driver::new(test_options());
    driver.feed(b"BAD1\r\nBAD2\r\nUSER x\r\nBAD3\r\nNOOP\r\nBAD5\r\nCAPA\r\n");
    assert_eq!(
        driver.replies(),
        "-ERR unknown command BAD1\r\n-ERR unknown command BAD2\r\n+OK send PASS\r\n\
         -ERR unknown command BAD3\r\n-ERR NOOP is not valid in the AUTHORIZATION state\r\n\
         -ERR too many bad commands, closing connection\r\n"
    );
    assert_eq!(driver.closed, Some(CloseReason::TooManyErrors));
}

#[test]
fn twenty_bad_commands_after_login_close() {
    let mut driver = logged_in();
    driver.feed("BAD\r\n".repeat(19).as_bytes());
    assert_eq!(driver.closed, None);
    driver.feed(b"NOOP\r\n");
    driver.feed("BAD\r\n".repeat(19).as_bytes());
    assert_eq!(driver.closed, None);
    driver.feed(b"BAD\r\n");
    assert_eq!(driver.closed, Some(CloseReason::TooManyErrors));
    assert!(
        String::from_utf8_lossy(&driver.out)
            .ends_with("-ERR too many bad commands, closing connection\r\n")
    );
}

#[test]
fn failed_logins_do_not_count() {
    let mut driver = Driver::new(SessionOptions {
        sasl_mechanisms: vec!["PLAIN".into()],
        ..test_options()
    });
    driver.feed(b"BAD\r\nBAD\r\nUSER alice\r\nPASS wrong\r\nBAD\r\nBAD\r\n");
    driver.feed(b"AUTH PLAIN !!\r\nBAD\r\nAUTH PLAIN AAAA\r\nBAD\r\nBAD\r\n");
    assert_eq!(driver.closed, None);
    assert_eq!(driver.session.stats().bad_commands, 7);
}

#[test]
fn limits_are_configurable() {
    let mut driver = Driver::new(SessionOptions {
        max_bad_commands_authorization: 2,
        ..test_options()
    });
    driver.feed(b"BAD\r\nCAPA\r\nBAD\r\nCAPA\r\nBAD\r\n");
    assert_eq!(driver.closed, None);
    driver.feed(b"BAD\r\n");
    assert_eq!(driver.closed, Some(CloseReason::TooManyErrors));
    for options in [
        SessionOptions {
            max_bad_commands_authorization: 0,
            ..test_options()
        },
        SessionOptions {
            max_bad_commands_transaction: 0,
            ..test_options()
        },
    ] {
        let login = options.max_bad_commands_transaction == 0;
        let mut unlimited = Driver::new(options);
        if login {
            unlimited.feed(b"USER alice\r\nPASS secret\r\n");
        }
        unlimited.feed("BAD\r\n".repeat(100).as_bytes());
        assert_eq!(unlimited.closed, None);
    }
}
