//! Pipelining (RFC 2449 §6.6), framing errors, and chunking: the same script fed in
//! every chunk size gives the same bytes (after stalwart's pop3 parser tests), also
//! across STLS and SASL exchanges.

use crate::event::Event;
use crate::options::SessionOptions;
use crate::testing::{Driver, run, run_logged_in, test_options};

/// A session touching every command, framing errors included.
fn script() -> Vec<u8> {
    let mut script = Vec::new();
    script.extend_from_slice(b"CAPA\r\nNOOP\r\nUSER alice\r\nPASS wrong pass\r\n\r\n");
    script.extend_from_slice(format!("USER {}\r\n", "x".repeat(300)).as_bytes());
    // A good command, so that the framing errors stay under the limit of 3 before login.
    script.extend_from_slice(b"CAPA\r\n");
    script.extend_from_slice(b"US\0ER alice\r\nUSER \xc3\x28\r\nuser alice\npass secret\r\n");
    script.extend_from_slice(b"STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 1\r\nRETR 1\r\nTOP 2 1\r\n");
    script.extend_from_slice(
        b"DELE 2\r\nDELE 2\r\nLIST\r\nRSET\r\nDELE 1\r\nRETR 9\r\nXECHO 1 2\r\n",
    );
    script.extend_from_slice(b"TOP 3 0\r\nRETR 3\r\nCAPA\r\nNOOP\r\nQUIT\r\nSTAT\r\n");
    script
}

fn run_chunked(script: &[u8], chunk: usize) -> Vec<u8> {
    run_segments(test_options(), &[script], chunk)
}

/// Feeds each segment in pieces of `chunk` octets; between segments the fake TLS
/// handshake completes if STLS asked for one.
fn run_segments(options: SessionOptions, segments: &[&[u8]], chunk: usize) -> Vec<u8> {
    let mut driver = Driver::new(options);
    for segment in segments {
        for piece in segment.chunks(chunk) {
            driver.feed(piece);
        }
        driver.handshake();
    }
    driver.out
}

/// Before TLS: cleartext refused, STLS with an injection attempt pipelined behind it.
/// After TLS: every kind of SASL exchange, an overlong continuation, then a login.
fn tls_and_sasl_script() -> (Vec<u8>, Vec<u8>) {
    let before = b"CAPA\r\nUSER alice\r\nAUTH PLAIN\r\nSTLS\r\nUSER evil\r\nPASS secret\r\n";
    let mut after = Vec::new();
    after.extend_from_slice(b"CAPA\r\nAUTH\r\nAUTH LOGIN\r\nYWxpY2U=\r\n*\r\nAUTH PLAIN =\r\n");
    after.extend_from_slice(b"AUTH CRAM-MD5\r\nAUTH SCRAM-SHA-256\r\n");
    after.extend_from_slice(format!("{}\r\n", "A".repeat(9000)).as_bytes());
    after.extend_from_slice(b"AUTH PLAIN\r\n!!\r\nUSER bob\r\nAUTH LOGIN\r\nYWxpY2U=\r\n");
    after.extend_from_slice(b"c2VjcmV0\r\nSTAT\r\nAUTH\r\nSTLS\r\nQUIT\r\n");
    (before.to_vec(), after)
}

#[test]
fn every_chunk_size_gives_identical_output_across_stls_and_auth() {
    let options = SessionOptions {
        stls: true,
        plaintext_disallowed: true,
        sasl_mechanisms: ["PLAIN", "LOGIN", "SCRAM-SHA-256"].map(String::from).into(),
        ..test_options()
    };
    let (before, after) = tls_and_sasl_script();
    let segments = [before.as_slice(), after.as_slice()];
    let expected = run_segments(options.clone(), &segments, after.len());
    for chunk in 1..=512 {
        let out = run_segments(options.clone(), &segments, chunk);
        assert_eq!(out, expected, "chunk size {chunk}");
    }
    let text = String::from_utf8_lossy(&expected);
    let refused =
        "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.\r\n";
    assert!(text.contains(&format!(
        "{refused}{refused}+OK Begin TLS negotiation\r\n+OK Capability list follows\r\n"
    )));
    assert!(!text.contains("send PASS\r\n+OK Logged in"), "{text}");
    assert!(text.contains("\r\nSASL PLAIN LOGIN SCRAM-SHA-256\r\n"));
    assert!(
        text.contains(
            "+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n-ERR [AUTH] Authentication cancelled\r\n"
        )
    );
    assert!(text.contains("-ERR Unsupported authentication mechanism\r\n"));
    assert!(
        text.contains("-ERR authentication line too long (at most 8192 octets including CRLF)\r\n")
    );
    assert!(text.contains("-ERR [AUTH] Invalid base64 data in continued response\r\n"));
    assert!(
        text.ends_with(
            "+ UGFzc3dvcmQ6\r\n+OK Logged in, maildrop has 3 messages (108 octets)\r\n+OK 3 108\r\n\
         -ERR AUTH is not valid in the TRANSACTION state\r\n\
         -ERR STLS is not valid in the TRANSACTION state\r\n\
         +OK Poppet signing off (0 messages deleted)\r\n"
        ),
        "{text}"
    );
}

#[test]
fn every_chunk_size_gives_identical_output() {
    let script = script();
    let expected = run_chunked(&script, script.len());
    for chunk in 1..=512 {
        assert_eq!(run_chunked(&script, chunk), expected, "chunk size {chunk}");
    }
    let text = String::from_utf8_lossy(&expected);
    assert!(text.contains("-ERR line too long (at most 255 octets including CRLF)\r\n"));
    assert!(text.contains("-ERR command contains control character 0x00\r\n"));
    assert!(text.contains("-ERR command is not valid UTF-8\r\n"));
    assert!(text.contains("-ERR empty command\r\n"));
    assert!(
        text.ends_with("+OK Poppet signing off (1 messages deleted)\r\n"),
        "{text}"
    );
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    assert_eq!(
        run("USER alice\r\nPASS secret\r\nSTAT\r\nRETR 2\r\nDELE 2\r\nSTAT\r\nQUIT\r\n"),
        "+OK send PASS\r\n+OK Logged in, maildrop has 3 messages (108 octets)\r\n+OK 3 108\r\n\
         +OK 37 octets\r\nSubject: two\r\n\r\nline1\r\nline2\r\nline3\r\n.\r\n\
         +OK message 2 deleted\r\n+OK 2 71\r\n+OK Poppet signing off (1 messages deleted)\r\n"
    );
}

#[test]
fn input_waits_while_an_action_is_pending() {
    let mut driver = Driver::new(test_options());
    driver
        .session
        .enqueue_input(b"USER alice\r\nPASS secret\r\nSTAT\r\n");
    let now = driver.now;
    assert!(matches!(driver.session.next(now), Some(Event::Reply(_))));
    assert!(matches!(
        driver.session.next(now),
        Some(Event::AuthRequested(_))
    ));
    assert_eq!(driver.session.next(now), None);
    assert!(driver.session.has_buffered_input());
    driver
        .session
        .auth_completed(crate::event::LoginOutcome::Accepted {
            messages: crate::testing::messages(),
            expire: None,
            login_delay: None,
        });
    let Some(Event::Reply(login)) = driver.session.next(now) else {
        panic!("no login reply")
    };
    assert!(login.is_ok());
    let Some(Event::Reply(stat)) = driver.session.next(now) else {
        panic!("no STAT reply")
    };
    assert_eq!(stat.text(), "3 108");
    assert_eq!(driver.session.next(now), None);
    assert!(!driver.session.has_buffered_input());
}

#[test]
fn overlong_line_is_one_error_and_the_session_goes_on() {
    let long = format!("LIST {}\r\nSTAT\r\n", "1".repeat(400));
    assert_eq!(
        run_logged_in(&long),
        "-ERR line too long (at most 255 octets including CRLF)\r\n+OK 3 108\r\n"
    );
    // 255 octets including CRLF is still fine (and then fails on the argument length).
    let longest = format!("USER {}\r\n", "u".repeat(248));
    assert_eq!(
        run(&longest),
        "-ERR argument too long (at most 40 octets)\r\n"
    );
}

#[test]
fn bare_lf_and_keyword_case() {
    assert_eq!(
        run("uSeR alice\npAsS secret\nsTaT\n"),
        "+OK send PASS\r\n+OK Logged in, maildrop has 3 messages (108 octets)\r\n+OK 3 108\r\n"
    );
}

#[test]
fn answers_to_actions_that_were_not_requested_are_ignored() {
    let mut driver = Driver::new(test_options());
    driver
        .session
        .auth_completed(crate::event::LoginOutcome::Rejected);
    driver
        .session
        .commit_completed(crate::event::CommitOutcome::Failed("x".into()));
    driver.session.transfer_completed();
    driver
        .session
        .extension_completed(crate::response::Response::ok("stray"));
    let reply = driver.session.transfer_started();
    assert_eq!(
        reply.to_bytes(),
        b"-ERR [SYS/TEMP] internal error: no such action pending\r\n"
    );
    assert_eq!(driver.session.next(driver.now), None);
    assert_eq!(driver.session.state(), crate::state::State::Authorization);
}
