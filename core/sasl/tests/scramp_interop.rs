//! Cross-check against an independent SCRAM client: Python's `scramp` package, driven line by line through one
//! `python3` process per exchange. Skips (and says so) when `python3` or `scramp` is missing.
//!
//! scramp 1.5 refuses the `tls-exporter` channel-binding name ("not supported by Scramp") because Python's `ssl`
//! module cannot export keying material; its binding arithmetic is generic (`c=` = base64(gs2-header + data)), so
//! the script adds the name to scramp's list of supported types and hands it the binding bytes directly. That
//! exercises scramp's own GS2 header, `c=` and proof computation against ours for `-PLUS`.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use poppet_sasl::{ChannelBinding, Exchange, Mechanism, SaslError, ScramCredentials, Step};

const SCRIPT: &str = r#"
import sys
import scramp, scramp.core as core
core.CbName.SUPPORTED_TYPES = core.CbName.SUPPORTED_TYPES | {"tls-exporter"}
core.CbName.UNSUPPORTED_TYPES = frozenset()
mechanism, user, password, cb_hex = sys.argv[1:5]
cb = ("tls-exporter", bytes.fromhex(cb_hex)) if cb_hex else None
try:
    client = scramp.ScramClient([mechanism], user, password, channel_binding=cb)
    print(client.get_client_first(), flush=True)
    client.set_server_first(sys.stdin.readline().rstrip("\n"))
    print(client.get_client_final(), flush=True)
    client.set_server_final(sys.stdin.readline().rstrip("\n"))
    print("CLIENT-OK", flush=True)
except Exception as e:
    print("CLIENT-ERR " + str(e).replace("\n", " "), flush=True)
"#;

fn scramp_available() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import scramp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        println!("SKIP: python3 scramp not installed");
    }
    found
}

/// Runs one exchange: scramp as client, our `Exchange` as server. Returns the server's result and scramp's verdict.
fn exchange(
    client_mechanism: &str,
    user: &str,
    password: &str,
    client_cb: &[u8],
    mut server: Exchange,
    creds: Option<ScramCredentials>,
) -> (Result<Step, SaslError>, String) {
    let cb_hex: String = client_cb.iter().map(|b| format!("{b:02x}")).collect();
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT, client_mechanism, user, password, &cb_hex])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut read = || lines.next().unwrap().unwrap();

    let result = (|| {
        let client_first = read();
        match server.step(Some(client_first.as_bytes()))? {
            Step::NeedScramCredentials { .. } => {}
            other => panic!("{other:?}"),
        }
        let Step::Challenge(server_first) = server.provide_credentials(creds)? else {
            panic!()
        };
        writeln!(stdin, "{}", String::from_utf8(server_first).unwrap()).unwrap();
        let step = server.step(Some(read().as_bytes()))?;
        if let Step::Success {
            server_final: Some(server_final),
            ..
        } = &step
        {
            writeln!(
                stdin,
                "{}",
                String::from_utf8(server_final.clone()).unwrap()
            )
            .unwrap();
        }
        Ok(step)
    })();
    drop(stdin);
    let verdict = match &result {
        Ok(_) => read(),
        Err(_) => String::from("server refused"),
    };
    let _ = child.wait();
    (result, verdict)
}

const CB: &[u8] = b"exported keying material, 32 by.";

#[test]
fn scramp_scram_sha_256() {
    if !scramp_available() {
        return;
    }
    let server = Exchange::new(Mechanism::ScramSha256, None);
    let creds = ScramCredentials::from_password("pencil", 4096);
    let (result, verdict) = exchange("SCRAM-SHA-256", "user", "pencil", b"", server, Some(creds));
    assert!(
        matches!(result, Ok(Step::Success { ref user, .. }) if user == "user"),
        "{result:?}"
    );
    assert_eq!(verdict, "CLIENT-OK", "scramp verifies our server signature");
}

#[test]
fn scramp_scram_sha_256_escaped_user_and_saslprep_password() {
    if !scramp_available() {
        return;
    }
    let server = Exchange::new(Mechanism::ScramSha256, None);
    let stored = ScramCredentials::from_password("p\u{e4}ss word", 4096).to_dovecot();
    let creds = ScramCredentials::parse_dovecot(&stored).unwrap();
    let (result, verdict) = exchange(
        "SCRAM-SHA-256",
        "us,er=1",
        "p\u{e4}ss\u{a0}word",
        b"",
        server,
        Some(creds),
    );
    assert!(
        matches!(result, Ok(Step::Success { ref user, .. }) if user == "us,er=1"),
        "{result:?}"
    );
    assert_eq!(verdict, "CLIENT-OK");
}

#[test]
fn scramp_wrong_password_and_unknown_user() {
    if !scramp_available() {
        return;
    }
    let creds = ScramCredentials::from_password("pencil", 4096);
    let server = Exchange::new(Mechanism::ScramSha256, None);
    let (result, _) = exchange("SCRAM-SHA-256", "user", "wrong", b"", server, Some(creds));
    assert_eq!(result.unwrap_err(), SaslError::ProofMismatch);
    let server = Exchange::new(Mechanism::ScramSha256, None);
    let (result, _) = exchange("SCRAM-SHA-256", "nobody", "pencil", b"", server, None);
    assert_eq!(result.unwrap_err(), SaslError::ProofMismatch);
}

#[test]
fn scramp_scram_sha_256_plus_tls_exporter() {
    if !scramp_available() {
        return;
    }
    let creds = ScramCredentials::from_password("pencil", 4096);
    let server = Exchange::new(
        Mechanism::ScramSha256Plus,
        Some(ChannelBinding::tls_exporter(CB.to_vec())),
    );
    let (result, verdict) = exchange(
        "SCRAM-SHA-256-PLUS",
        "user",
        "pencil",
        CB,
        server,
        Some(creds),
    );
    assert!(matches!(result, Ok(Step::Success { .. })), "{result:?}");
    assert_eq!(verdict, "CLIENT-OK");
}

#[test]
fn scramp_plus_with_other_binding_data_fails() {
    if !scramp_available() {
        return;
    }
    let creds = ScramCredentials::from_password("pencil", 4096);
    let server = Exchange::new(
        Mechanism::ScramSha256Plus,
        Some(ChannelBinding::tls_exporter(CB.to_vec())),
    );
    let relayed = b"the attacker's own TLS session..";
    let (result, _) = exchange(
        "SCRAM-SHA-256-PLUS",
        "user",
        "pencil",
        relayed,
        server,
        Some(creds),
    );
    assert_eq!(result.unwrap_err(), SaslError::ChannelBindingMismatch);
}

#[test]
fn scramp_downgrade_y_flag_is_refused() {
    if !scramp_available() {
        return;
    }
    // scramp has binding data but was only offered SCRAM-SHA-256, so it sends "y,,": the -PLUS offer was stripped.
    let server = Exchange::new(
        Mechanism::ScramSha256,
        Some(ChannelBinding::tls_exporter(CB.to_vec())),
    );
    let (result, _) = exchange("SCRAM-SHA-256", "user", "pencil", CB, server, None);
    assert_eq!(result.unwrap_err(), SaslError::ChannelBindingDowngrade);
}
