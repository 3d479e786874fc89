use super::*;

const GOOD: &str = r#"(
    listeners: [(address: "127.0.0.1:0")],
    plugins: [
        (library: "poppet_auth_passwd", kind: auth, name: "passwd", settings: (file: "users")),
        (library: "./libx.so", kind: store, name: "maildir",
         settings: (path: "/var/mail/%u")),
    ],
    auth: "passwd",
    store: "maildir",
    limits: (idle_timeout: "15m"),
)"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("poppet.ron"), text)
}

#[test]
fn good_config_parses_with_settings_text_and_position() {
    let c = parse(GOOD).unwrap();
    assert_eq!(c.listeners[0].address, "127.0.0.1:0".parse().unwrap());
    assert_eq!(c.auth, "passwd");
    assert_eq!(c.plugins[0].settings, r#"(file: "users")"#);
    assert_eq!(c.plugins[1].settings, r#"(path: "/var/mail/%u")"#);
    // The store's settings start on line 6, column 20 ("(path").
    assert_eq!(c.plugins[1].settings_at, (6, 20));
    assert_eq!(c.plugins[1].locate(1, 2), (6, 21));
    assert_eq!(c.plugins[1].locate(2, 3), (7, 3));
    assert_eq!(c.limits.idle_timeout, Duration::from_secs(900));
    assert_eq!(c.limits.max_connections, Limits::default().max_connections);
}

#[test]
fn unknown_key_is_reported_with_position() {
    let e = parse(&GOOD.replace("limits:", "limitz:")).unwrap_err();
    assert_eq!(
        (e.line, e.column, e.file.to_str().unwrap()),
        (10, 5, "poppet.ron"),
        "{e}"
    );
    assert!(e.message.contains("limitz"), "{e}");
}

#[test]
fn syntax_error_is_reported_with_position() {
    let e = parse("(\n  listeners: [(address: \"x\"\n").unwrap_err();
    assert_eq!((e.line, e.column), (2, 28), "{e}");
    assert!(e.message.contains("Expected comma"), "{e}");
}

#[test]
fn bad_address_points_at_the_value() {
    let e = parse(&GOOD.replace("127.0.0.1:0", "localhost")).unwrap_err();
    assert_eq!((e.line, e.column), (2, 27), "{e}");
    assert!(e.message.contains("expected \"ip:port\""), "{e}");
}

#[test]
fn active_plugin_must_exist_with_the_right_kind() {
    let e = parse(&GOOD.replace("auth: \"passwd\"", "auth: \"maildir\"")).unwrap_err();
    assert_eq!((e.line, e.column), (8, 11), "{e}");
    assert!(e.message.contains("no auth plugin named `maildir`"), "{e}");
    assert!(e.message.contains("passwd"), "{e}");
}

#[test]
fn bad_duration_points_at_the_value() {
    let e = parse(&GOOD.replace("\"15m\"", "\"soon\"")).unwrap_err();
    assert_eq!((e.line, e.column), (10, 28), "{e}");
    assert!(e.message.contains("idle_timeout"), "{e}");
}

#[test]
fn duplicate_plugins_are_refused() {
    let text = GOOD
        .replace("name: \"maildir\"", "name: \"passwd\"")
        .replace("kind: store", "kind: auth");
    let e = parse(&text).unwrap_err();
    assert!(
        e.message.contains("a second auth plugin named `passwd`"),
        "{e}"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let e = Config::load(Path::new("/nonexistent/poppet.ron")).unwrap_err();
    assert!(e.to_string().contains("cannot read config"), "{e}");
}

#[test]
fn idle_timeout_below_the_rfc_minimum_is_refused() {
    let e = parse(&GOOD.replace("\"15m\"", "\"5m\"")).unwrap_err();
    assert!(e.message.contains("at least 10 minutes"), "{e}");
    assert_eq!(e.line, 10, "{e}");
}

#[test]
fn tcp_keepalive_is_on_by_default_and_refused_outside_its_range() {
    assert_eq!(
        parse(GOOD).unwrap().limits.tcp_keepalive,
        Duration::from_secs(60)
    );
    let with = |v: &str| {
        parse(&GOOD.replace(
            "(idle_timeout: \"15m\")",
            &format!("(\n  tcp_keepalive: \"{v}\")"),
        ))
    };
    assert_eq!(with("0s").unwrap().limits.tcp_keepalive, Duration::ZERO);
    assert_eq!(
        with("4s").unwrap().limits.tcp_keepalive,
        Duration::from_secs(4)
    );
    assert_eq!(
        with("9h").unwrap().limits.tcp_keepalive,
        Duration::from_secs(9 * 3600)
    );
    for bad in ["3s", "4500ms", "10h"] {
        let e = with(bad).unwrap_err();
        assert!(e.message.contains("tcp_keepalive"), "{bad}: {e}");
        // The value's own line and column.
        assert_eq!((e.line, e.column), (11, 18), "{bad}: {e}");
    }
}

#[test]
fn logging_level_defaults_to_info() {
    assert_eq!(parse(GOOD).unwrap().log_level, "info");
    let c = parse(&GOOD.replace("limits:", "logging: (level: \"debug\"), limits:")).unwrap();
    assert_eq!(c.log_level, "debug");
}

#[test]
fn listener_tls_needs_a_tls_section_and_defaults_follow_it() {
    let e = parse(&GOOD.replace(
        "(address: \"127.0.0.1:0\")",
        "(address: \"127.0.0.1:0\", tls: implicit)",
    ))
    .unwrap_err();
    assert!(e.message.contains("no `tls:"), "{e}");
    let c =
        parse(&GOOD.replace("limits:", "tls: (cert: \"c.pem\", key: \"k.pem\"), limits:")).unwrap();
    assert_eq!(c.listeners[0].tls, TlsMode::Starttls);
    assert_eq!(c.listeners[0].plaintext_auth, PlaintextAuth::Loopback);
    assert_eq!(parse(GOOD).unwrap().listeners[0].tls, TlsMode::None);
}

#[test]
fn trusted_networks_parse_and_report_bad_entries() {
    let c = parse(&GOOD.replace(
        "(idle_timeout: \"15m\")",
        "(trusted_networks: [\"10.0.0.0/8\", \"192.0.2.7\"])",
    ))
    .unwrap();
    assert_eq!(c.limits.trusted_networks.len(), 2);
    assert!(
        c.limits.trusted_networks[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap())
    );
    let e = parse(&GOOD.replace(
        "(idle_timeout: \"15m\")",
        "(trusted_networks: [\"10.0.0.0/33\"])",
    ))
    .unwrap_err();
    assert!(e.message.contains("CIDR"), "{e}");
    assert!(
        Limits::default().trusted_networks[0]
            .contains(&"127.1.2.3".parse::<std::net::IpAddr>().unwrap())
    );
}

#[test]
fn zero_limits_and_multi_line_greetings_are_refused() {
    let e = parse(&GOOD.replace("(idle_timeout: \"15m\")", "(max_connections_per_user: 0)"))
        .unwrap_err();
    assert!(
        e.message
            .contains("max_connections_per_user must be at least 1"),
        "{e}"
    );
    let e = parse(&GOOD.replace("(idle_timeout: \"15m\")", "(login_timeout: \"0s\")")).unwrap_err();
    assert!(e.message.contains("login_timeout"), "{e}");
    let e = parse(&GOOD.replace("limits:", "greeting: \"hi\\r\\n+OK fake\", limits:")).unwrap_err();
    assert!(e.message.contains("greeting"), "{e}");
}

#[test]
fn metrics_listen_on_loopback_only() {
    let c =
        parse(&GOOD.replace("limits:", "metrics: (address: \"127.0.0.1:9110\"), limits:")).unwrap();
    assert_eq!(c.metrics, Some("127.0.0.1:9110".parse().unwrap()));
    let e = parse(&GOOD.replace("limits:", "metrics: (address: \"0.0.0.0:9110\"), limits:"))
        .unwrap_err();
    assert!(e.message.contains("loopback"), "{e}");
}
