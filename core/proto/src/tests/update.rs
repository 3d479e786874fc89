//! QUIT into UPDATE, the commit answers, the idle timer and the bad-command limit.

use std::time::Duration;

use crate::event::{CloseReason, CommitOutcome, Event};
use crate::options::SessionOptions;
use crate::state::State;
use crate::testing::{Driver, logged_in, test_options};

#[test]
fn quit_commits_sorted_deletions() {
    let mut driver = logged_in();
    driver.feed(b"DELE 3\r\nDELE 1\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "+OK message 3 deleted\r\n+OK message 1 deleted\r\n+OK Poppet signing off (2 messages deleted)\r\n"
    );
    assert_eq!(driver.committed, Some(vec![0, 2]));
    assert_eq!(driver.closed, Some(CloseReason::Quit));
    assert_eq!(driver.session.stats().deleted, 2);
    assert_eq!(driver.session.state(), State::Closed);
    assert_eq!(driver.session.user(), Some("alice"));
}

#[test]
fn session_is_in_update_until_the_commit_completes() {
    let mut driver = logged_in();
    driver.session.enqueue_input(b"DELE 2\r\nQUIT\r\nSTAT\r\n");
    let now = driver.now;
    assert!(matches!(driver.session.next(now), Some(Event::Reply(_))));
    assert_eq!(
        driver.session.next(now),
        Some(Event::CommitRequested { deleted: vec![1] })
    );
    assert_eq!(driver.session.state(), State::Update);
    assert_eq!(driver.session.next(now), None);
    // Commands in UPDATE are never read, let alone answered.
    assert_eq!(
        driver
            .session
            .handle_timeout(now + Duration::from_secs(3600)),
        None
    );
    driver
        .session
        .commit_completed(CommitOutcome::Committed { deleted: 1 });
    let Some(Event::Reply(reply)) = driver.session.next(now) else {
        panic!("no reply")
    };
    assert!(reply.is_ok());
    assert_eq!(
        driver.session.next(now),
        Some(Event::Close {
            reason: CloseReason::Quit,
            reply: None
        })
    );
    assert_eq!(driver.session.next(now), None);
}

#[test]
fn failed_commits_answer_sys_temp() {
    for (outcome, line) in [
        (
            CommitOutcome::Partial { failed: 1 },
            "-ERR [SYS/TEMP] some deleted messages not removed (1 failed)",
        ),
        (
            CommitOutcome::Failed("disk full".into()),
            "-ERR [SYS/TEMP] some deleted messages not removed: disk full",
        ),
    ] {
        let mut driver = logged_in();
        driver.commit = Some(outcome);
        driver.feed(b"DELE 1\r\nQUIT\r\n");
        assert_eq!(
            String::from_utf8_lossy(&driver.out),
            format!("+OK message 1 deleted\r\n{line}\r\n")
        );
        assert_eq!(driver.closed, Some(CloseReason::Quit));
    }
}

#[test]
fn quit_without_deletions_still_releases_the_maildrop() {
    let mut driver = logged_in();
    driver.feed(b"QUIT\r\n");
    assert_eq!(driver.committed, Some(vec![]));
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "+OK Poppet signing off (0 messages deleted)\r\n"
    );
}

#[test]
fn idle_timeout_closes_without_commit() {
    for login in [false, true] {
        let mut driver = if login {
            logged_in()
        } else {
            Driver::new(test_options())
        };
        driver.feed(b"DELE 1\r\n");
        let deadline = driver.session.deadline();
        assert_eq!(deadline, driver.now + Duration::from_secs(600));
        assert_eq!(
            driver
                .session
                .handle_timeout(deadline - Duration::from_secs(1)),
            None
        );
        let Some(Event::Close { reason, reply }) = driver.session.handle_timeout(deadline) else {
            panic!("no close")
        };
        assert_eq!(reason, CloseReason::Timeout);
        assert_eq!(
            reply.map(|r| r.to_bytes()),
            Some(b"-ERR autologout: idle for too long\r\n".to_vec())
        );
        assert_eq!(driver.session.state(), State::Closed);
        assert_eq!(driver.session.handle_timeout(deadline), None);
        driver.feed(b"QUIT\r\n");
        assert_eq!(driver.committed, None);
    }
}

#[test]
fn any_command_resets_the_idle_timer() {
    let mut driver = Driver::new(test_options());
    driver.advance(Duration::from_secs(500));
    driver.feed(b"NOOP\r\n");
    assert_eq!(
        driver.session.deadline(),
        driver.now + Duration::from_secs(600)
    );
    driver.advance(Duration::from_secs(599));
    assert_eq!(driver.session.handle_timeout(driver.now), None);
}

#[test]
fn idle_timeout_is_at_least_ten_minutes() {
    let options = SessionOptions {
        idle_timeout: Duration::from_secs(5),
        ..test_options()
    };
    let driver = Driver::new(options);
    assert_eq!(
        driver.session.deadline(),
        driver.now + Duration::from_secs(600)
    );
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
    assert_eq!(driver.session.deadline(), late + Duration::from_secs(600));
}

#[test]
fn too_many_bad_commands_close() {
    let mut driver = Driver::new(SessionOptions {
        max_bad_commands: 3,
        ..test_options()
    });
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
fn a_good_command_resets_the_bad_streak() {
    let mut driver = Driver::new(SessionOptions {
        max_bad_commands: 2,
        ..test_options()
    });
    driver.feed(b"BAD\r\nCAPA\r\nBAD\r\nCAPA\r\nBAD\r\n");
    assert_eq!(driver.closed, None);
    let mut unlimited = Driver::new(SessionOptions {
        max_bad_commands: 0,
        ..test_options()
    });
    unlimited.feed("BAD\r\n".repeat(100).as_bytes());
    assert_eq!(unlimited.closed, None);
}
