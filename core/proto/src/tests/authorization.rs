//! AUTHORIZATION state, before and after USER.

use crate::event::{Event, Mechanism};
use crate::options::SessionOptions;
use crate::state::State;
use crate::testing::{Driver, GOOD_DIGEST, run, test_options};

#[test]
fn greeting_with_and_without_apop() {
    let driver = Driver::new(test_options());
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "+OK Poppet ready <1896.697170952@dbc.mtview.ca.us>\r\n"
    );
    let driver = Driver::new(SessionOptions::default());
    assert_eq!(String::from_utf8_lossy(&driver.out), "+OK Poppet ready\r\n");
    assert_eq!(driver.session.state(), State::Authorization);
}

#[test]
fn user_pass_login() {
    let mut driver = Driver::new(test_options());
    driver.feed(b"USER alice\r\nPASS secret\r\n");
    assert_eq!(
        driver.replies(),
        "+OK send PASS\r\n+OK Logged in, maildrop has 3 messages (108 octets)\r\n"
    );
    assert_eq!(driver.session.state(), State::Transaction);
    assert_eq!(driver.session.user(), Some("alice"));
    assert_eq!(driver.session.messages().len(), 3);
}

#[test]
fn apop_login() {
    let script = format!("apop alice {}\r\nSTAT\r\n", GOOD_DIGEST.to_uppercase());
    assert_eq!(
        run(&script),
        "+OK Logged in, maildrop has 3 messages (108 octets)\r\n+OK 3 108\r\n"
    );
    let bad = format!("APOP alice {}\r\n", "0".repeat(32));
    assert_eq!(run(&bad), "-ERR [AUTH] Authentication failed\r\n");
    assert_eq!(
        run("APOP alice 123\r\n"),
        "-ERR APOP digest must be 32 hexadecimal digits\r\n"
    );
}

#[test]
fn apop_refused_without_timestamp() {
    let mut driver = Driver::new(SessionOptions::default());
    driver.feed(format!("APOP alice {GOOD_DIGEST}\r\n").as_bytes());
    assert_eq!(driver.replies(), "-ERR APOP is not available\r\n");
}

#[test]
fn pass_takes_spaces_and_reaches_the_backend() {
    let mut driver = Driver::new(test_options());
    driver
        .session
        .enqueue_input(b"USER alice\r\nPASS two  words \r\n");
    let now = driver.now;
    assert!(matches!(driver.session.next(now), Some(Event::Reply(_))));
    let Some(Event::AuthRequested(request)) = driver.session.next(now) else {
        panic!("no auth")
    };
    assert_eq!(request.mechanism, Mechanism::UserPass);
    assert_eq!(request.user, "alice");
    assert_eq!(request.secret.expose(), "two  words ");
    assert!(
        !format!("{request:?}").contains("words"),
        "password leaked into Debug"
    );
}

#[test]
fn pass_without_user() {
    assert_eq!(
        run("PASS secret\r\n"),
        "-ERR PASS must follow a successful USER\r\n"
    );
}

#[test]
fn failed_pass_resets_user() {
    assert_eq!(
        run("USER alice\r\nPASS wrong\r\nPASS secret\r\nUSER alice\r\nPASS secret\r\n"),
        "+OK send PASS\r\n-ERR [AUTH] Authentication failed\r\n\
         -ERR PASS must follow a successful USER\r\n+OK send PASS\r\n\
         +OK Logged in, maildrop has 3 messages (108 octets)\r\n"
    );
}

#[test]
fn login_failures_carry_response_codes() {
    for (user, line) in [
        ("mallory", "-ERR [AUTH] Authentication failed"),
        (
            "busy",
            "-ERR [IN-USE] maildrop is locked by another session",
        ),
        ("temp", "-ERR [SYS/TEMP] directory unavailable"),
        ("perm", "-ERR [SYS/PERM] account disabled"),
        (
            "soon",
            "-ERR [LOGIN-DELAY] logged in too recently, try again later",
        ),
    ] {
        let mut driver = Driver::new(test_options());
        driver.feed(format!("USER {user}\r\nPASS secret\r\n").as_bytes());
        assert_eq!(
            driver.replies(),
            format!("+OK send PASS\r\n{line}\r\n"),
            "{user}"
        );
        assert_eq!(driver.session.state(), State::Authorization);
        assert_eq!(driver.session.user(), None);
    }
}

#[test]
fn user_pass_can_be_disabled() {
    let mut driver = Driver::new(SessionOptions {
        user_pass: false,
        ..test_options()
    });
    driver.feed(b"USER alice\r\nPASS secret\r\nCAPA\r\n");
    let replies = driver.replies();
    assert!(replies.starts_with(
        "-ERR USER/PASS login is disabled\r\n-ERR USER/PASS login is disabled\r\n+OK Capability"
    ));
    assert!(!replies.contains("\r\nUSER\r\n"));
}

#[test]
fn user_may_be_repeated_and_replaced() {
    assert_eq!(
        run("USER bob\r\nUSER alice\r\nPASS secret\r\n"),
        "+OK send PASS\r\n+OK send PASS\r\n+OK Logged in, maildrop has 3 messages (108 octets)\r\n"
    );
}

/// TRANSACTION commands before login, both before and after USER.
#[test]
fn transaction_commands_refused_in_authorization() {
    for prefix in ["", "USER alice\r\n"] {
        for command in [
            "STAT", "LIST", "LIST 1", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1", "UIDL",
            "UIDL 1",
        ] {
            let verb = command.split(' ').next().unwrap_or_default();
            let replies = run(&format!("{prefix}{command}\r\n"));
            let expected = format!("-ERR {verb} is not valid in the AUTHORIZATION state\r\n");
            assert!(
                replies.ends_with(&expected),
                "{prefix:?} {command}: {replies}"
            );
        }
    }
}

#[test]
fn capa_and_quit_after_user() {
    let replies = run("USER alice\r\nCAPA\r\nQUIT\r\nNOOP\r\n");
    assert!(replies.starts_with("+OK send PASS\r\n+OK Capability list follows\r\nTOP\r\n"));
    assert!(
        replies.ends_with(".\r\n+OK Poppet signing off\r\n"),
        "{replies}"
    );
}

#[test]
fn quit_in_authorization_commits_nothing() {
    let mut driver = Driver::new(test_options());
    driver.feed(b"QUIT\r\nUSER alice\r\n");
    assert_eq!(driver.replies(), "+OK Poppet signing off\r\n");
    assert_eq!(driver.closed, Some(crate::event::CloseReason::Quit));
    assert_eq!(driver.committed, None);
    assert_eq!(driver.session.state(), State::Closed);
}

#[test]
fn capa_in_authorization() {
    assert_eq!(
        run("capa\r\n"),
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nPIPELINING\r\nRESP-CODES\r\n\
         AUTH-RESP-CODE\r\nX-ECHO\r\n.\r\n"
    );
}

/// An invalid name answers like any other at USER, and its login reaches the driver
/// flagged, which rejects it exactly like a wrong password.
#[test]
fn invalid_user_looks_like_a_wrong_password() {
    let wrong_password = run("USER alice\r\nPASS wrong\r\n");
    for name in ["../etc", "a/b", "..", "."] {
        let mut driver = Driver::new(test_options());
        driver.feed(format!("USER {name}\r\nPASS secret\r\n").as_bytes());
        assert_eq!(driver.replies(), wrong_password, "{name}");
        assert_eq!(driver.invalid_users, 1, "{name}");
        assert_eq!(driver.session.state(), State::Authorization);
    }
    let mut driver = Driver::new(test_options());
    driver
        .session
        .enqueue_input(b"USER ../x\r\nPASS secret\r\n");
    let now = driver.now;
    assert!(matches!(driver.session.next(now), Some(Event::Reply(r)) if r.is_ok()));
    let Some(Event::AuthRequested(request)) = driver.session.next(now) else {
        panic!("no auth")
    };
    assert!(!request.valid_user);
    assert_eq!(request.user, "../x");

    let mut driver = Driver::new(test_options());
    driver.feed(format!("APOP a/b {GOOD_DIGEST}\r\n").as_bytes());
    assert_eq!(driver.replies(), "-ERR [AUTH] Authentication failed\r\n");
    assert_eq!(driver.invalid_users, 1);
}

#[test]
fn valid_users_are_flagged_valid() {
    let mut driver = Driver::new(test_options());
    driver
        .session
        .enqueue_input(b"USER alice@example.org\r\nPASS x\r\n");
    let now = driver.now;
    assert!(driver.session.next(now).is_some());
    let Some(Event::AuthRequested(request)) = driver.session.next(now) else {
        panic!("no auth")
    };
    assert!(request.valid_user);
}
