//! QUIT into UPDATE and the commit answers.

use std::time::Duration;

use crate::event::{CloseReason, CommitOutcome, Event};
use crate::state::State;
use crate::testing::logged_in;

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
