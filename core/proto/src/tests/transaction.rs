//! TRANSACTION state: every command, deleted and out-of-range messages.

use crate::event::Failure;
use crate::options::{Expire, SessionOptions};
use crate::testing::{Driver, logged_in, run_logged_in, test_options};

const LIST_ALL: &str = "+OK 3 messages (108 octets)\r\n1 34\r\n2 37\r\n3 37\r\n.\r\n";
const UIDL_ALL: &str = "+OK unique-id listing follows\r\n1 uid-1\r\n2 uid-2\r\n3 uid-3\r\n.\r\n";

#[test]
fn stat_list_uidl() {
    assert_eq!(run_logged_in("STAT\r\n"), "+OK 3 108\r\n");
    assert_eq!(run_logged_in("LIST\r\n"), LIST_ALL);
    assert_eq!(run_logged_in("list 2\r\n"), "+OK 2 37\r\n");
    assert_eq!(run_logged_in("UIDL\r\n"), UIDL_ALL);
    assert_eq!(run_logged_in("uidl 3\r\n"), "+OK 3 uid-3\r\n");
}

#[test]
fn retr_stuffs_and_terminates() {
    assert_eq!(
        run_logged_in("RETR 1\r\n"),
        "+OK 34 octets\r\nSubject: one\r\n\r\nHello\r\n..dot line\r\n.\r\n"
    );
    assert_eq!(
        run_logged_in("RETR 3\r\n"),
        "+OK 37 octets\r\nSubject: three\r\n\r\nno trailing newline\r\n.\r\n"
    );
}

#[test]
fn top_sends_headers_and_k_lines() {
    assert_eq!(
        run_logged_in("TOP 2 1\r\n"),
        "+OK\r\nSubject: two\r\n\r\nline1\r\n.\r\n"
    );
    assert_eq!(
        run_logged_in("TOP 3 0\r\n"),
        "+OK\r\nSubject: three\r\n\r\n.\r\n"
    );
    assert_eq!(
        run_logged_in("TOP 2 100\r\n"),
        "+OK\r\nSubject: two\r\n\r\nline1\r\nline2\r\nline3\r\n.\r\n"
    );
}

#[test]
fn dele_hides_and_rset_restores() {
    let replies = run_logged_in(
        "DELE 2\r\nSTAT\r\nLIST\r\nUIDL\r\nLIST 2\r\nUIDL 2\r\nRETR 2\r\nTOP 2 0\r\nDELE 2\r\nRSET\r\nSTAT\r\nLIST 2\r\n",
    );
    assert_eq!(
        replies,
        "+OK message 2 deleted\r\n+OK 2 71\r\n\
         +OK 2 messages (71 octets)\r\n1 34\r\n3 37\r\n.\r\n\
         +OK unique-id listing follows\r\n1 uid-1\r\n3 uid-3\r\n.\r\n\
         -ERR message 2 already deleted\r\n-ERR message 2 already deleted\r\n\
         -ERR message 2 already deleted\r\n-ERR message 2 already deleted\r\n\
         -ERR message 2 already deleted\r\n\
         +OK maildrop has 3 messages (108 octets)\r\n+OK 3 108\r\n+OK 2 37\r\n"
    );
}

#[test]
fn out_of_range_messages() {
    for command in [
        "RETR 4",
        "RETR 0",
        "LIST 0",
        "UIDL 4",
        "DELE 4",
        "TOP 4 1",
        "LIST 99999999999999999999999",
    ] {
        assert_eq!(
            run_logged_in(&format!("{command}\r\n")),
            "-ERR no such message\r\n",
            "{command}"
        );
    }
}

#[test]
fn bad_arguments() {
    assert_eq!(
        run_logged_in(
            "RETR\r\nRETR x\r\nRETR -1\r\nTOP 1\r\nTOP 1 -2\r\nSTAT 1\r\nNOOP x\r\nLIST 1 2\r\n"
        ),
        "-ERR RETR needs a message number\r\n\
         -ERR message number must be a decimal number, got x\r\n\
         -ERR message number must be a decimal number, got -1\r\n\
         -ERR TOP needs a message number and a line count\r\n\
         -ERR line count must be a decimal number, got -2\r\n\
         -ERR too many arguments for STAT\r\n\
         -ERR too many arguments for NOOP\r\n\
         -ERR too many arguments for LIST\r\n"
    );
}

#[test]
fn noop_and_authorization_commands_in_transaction() {
    assert_eq!(
        run_logged_in(
            "NOOP\r\nUSER bob\r\nPASS x\r\nAPOP bob c4c9334bac560ecc979e58001b3e22fb\r\n"
        ),
        "+OK\r\n-ERR USER is not valid in the TRANSACTION state\r\n\
         -ERR PASS is not valid in the TRANSACTION state\r\n\
         -ERR APOP is not valid in the TRANSACTION state\r\n"
    );
}

#[test]
fn capa_in_transaction_uses_the_users_policy() {
    let options = SessionOptions {
        expire: Some(Expire::Never),
        login_delay: Some(60),
        ..test_options()
    };
    let mut driver = Driver::new(options.clone());
    driver.feed(b"CAPA\r\n");
    assert!(
        driver
            .replies()
            .contains("\r\nEXPIRE NEVER USER\r\nLOGIN-DELAY 60 USER\r\n")
    );

    let mut driver = Driver::new(options);
    driver.feed(b"USER bob\r\nPASS secret\r\n");
    driver.out.clear();
    driver.feed(b"CAPA\r\n");
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nPIPELINING\r\nRESP-CODES\r\n\
         AUTH-RESP-CODE\r\nEXPIRE 7\r\nLOGIN-DELAY 60\r\nX-ECHO\r\n.\r\n"
    );
}

#[test]
fn transfer_failure_answers_and_goes_on() {
    let mut driver = logged_in();
    driver.transfer_failure = Some(Failure::Temporary("store offline".into()));
    driver.feed(b"RETR 1\r\nSTAT\r\n");
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "-ERR [SYS/TEMP] store offline\r\n+OK 3 108\r\n"
    );
    driver.out.clear();
    driver.transfer_failure = Some(Failure::Permanent("message vanished".into()));
    driver.feed(b"TOP 1 0\r\n");
    assert_eq!(
        String::from_utf8_lossy(&driver.out),
        "-ERR [SYS/PERM] message vanished\r\n"
    );
    assert_eq!(driver.session.stats().retr, 0);
}

#[test]
fn stats_count_transfers_and_deletes() {
    let mut driver = logged_in();
    driver.feed(b"RETR 1\r\nRETR 2\r\nTOP 3 0\r\nDELE 1\r\nDELE 1\r\nBOGUS\r\n");
    let stats = driver.session.stats();
    assert_eq!(
        (stats.retr, stats.retr_octets, stats.top, stats.dele),
        (2, 71, 1, 1)
    );
    assert_eq!((stats.commands, stats.bad_commands), (8, 2));
    assert!(driver.session.is_deleted(0));
    assert!(!driver.session.is_deleted(1));
}

#[test]
fn extension_verb_in_its_state_only() {
    let mut driver = Driver::new(test_options());
    driver.feed(b"XECHO a\r\n");
    assert_eq!(
        driver.replies(),
        "-ERR XECHO is not valid in the AUTHORIZATION state\r\n"
    );
    assert_eq!(
        run_logged_in("xecho a  b\r\nNOOP\r\n"),
        "+OK XECHO a,b\r\n+OK\r\n"
    );
}
