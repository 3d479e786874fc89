//! The Prometheus endpoint, scraped with a real HTTP client (curl).

#![allow(clippy::unwrap_used)]

mod common;

use poppet_testkit::{Client, have_tool};
use std::process::Command;
use std::time::Duration;

#[test]
fn metrics_count_connections_logins_and_plugin_calls() {
    if !have_tool("curl") {
        poppet_testkit::skip("curl is not installed");
        return;
    }
    let d = common::demo_with(
        r#"metrics: (address: "127.0.0.1:0"), limits: (auth_failure_delay: "100ms"),"#,
    );
    assert!(
        d.server
            .wait_for_log("metrics on http://", Duration::from_secs(10))
    );
    let log = d.server.log();
    let url = log
        .lines()
        .find_map(|l| l.split("metrics on ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    let mut c = Client::connect(d.server.addr);
    c.cmd("USER demo");
    assert!(c.cmd("PASS wrong").starts_with("-ERR"));
    c.login("demo", "demo");
    let (_, _) = c.multi("RETR 1");
    c.cmd("QUIT");
    assert!(
        d.server
            .wait_for_log("logout user=\"demo\"", Duration::from_secs(10))
    );
    let scrape = |path: &str| {
        let out = Command::new("curl")
            .args(["-sS", "-i", "--max-time", "10"])
            .arg(url.replace("/metrics", path))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = scrape("/metrics");
    assert!(text.starts_with("HTTP/1.0 200 OK"), "{text}");
    assert!(
        text.contains("Content-Type: text/plain; version=0.0.4"),
        "{text}"
    );
    for needle in [
        "poppet_connections_total 1\n",
        "poppet_logins_total{mechanism=\"USER\",outcome=\"failed\"} 1\n",
        "poppet_logins_total{mechanism=\"USER\",outcome=\"ok\"} 1\n",
        "poppet_plugin_calls_total{op=\"authenticate\"} 2\n",
        "poppet_plugin_calls_total{op=\"open\"} 1\n",
        "poppet_plugin_calls_total{op=\"retrieve\"} 1\n",
        "poppet_plugin_calls_total{op=\"commit\"} 1\n",
        "poppet_sessions 0\n",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let bytes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("poppet_bytes_sent_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        bytes > 680,
        "the RETR of a 680-octet message is counted: {bytes}"
    );
    assert!(scrape("/other").starts_with("HTTP/1.0 404"));
}
