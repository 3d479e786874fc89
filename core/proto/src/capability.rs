//! The CAPA response (RFC 2449 §5, §6).
//!
//! RFC 2449 §5: "The POP3 CAPA command returns a list of capabilities supported by the
//! POP3 server. It is available in both the AUTHORIZATION and TRANSACTION states."
//! The list can differ between the two states: EXPIRE and LOGIN-DELAY may be decided
//! per user by the auth backend. Before login we therefore advertise the server default
//! with the `USER` tag, which RFC 2449 (EXPIRE, LOGIN-DELAY) provides for values that may vary per
//! user; after login we advertise the user's own value without the tag.
//!
//! RFC 2449 §5 also says "Capabilities available in the AUTHORIZATION state MUST be
//! announced in both states", so `STLS` (RFC 2595 §4) and `SASL` (RFC 2449 §6.3,
//! RFC 5034) appear after login too. `STLS` is listed while it is offered and TLS is
//! not active yet; `USER` and the `SASL` list follow the cleartext policy
//! ([`SessionOptions::plaintext_disallowed`]), so a client is never offered a login
//! that would be refused.

use crate::options::{Expire, SessionOptions};
use crate::response::Response;
use crate::sasl::allowed_mechanisms;
use crate::state::State;
use crate::text::Text;

/// The per-user values that override the server defaults after login.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct UserPolicy {
    pub(crate) expire: Option<Expire>,
    pub(crate) login_delay: Option<u32>,
}

/// The CAPA lines for `state`. `user` is `Some` once logged in.
pub(crate) fn capability_lines(
    options: &SessionOptions,
    state: State,
    user: Option<UserPolicy>,
) -> Vec<String> {
    let mut lines: Vec<String> = vec!["TOP".into(), "UIDL".into()];
    if options.user_pass && !options.plaintext_disallowed {
        lines.push("USER".into());
    }
    let mechanisms = allowed_mechanisms(options);
    if !mechanisms.is_empty() {
        lines.push(format!("SASL {}", mechanisms.join(" ")));
    }
    lines.extend(["PIPELINING", "RESP-CODES", "AUTH-RESP-CODE"].map(String::from));
    if options.stls && !options.tls_active {
        lines.push("STLS".into());
    }
    let per_user = state == State::Authorization;
    let user = user.unwrap_or_default();
    if let Some(expire) = user.expire.or(options.expire) {
        lines.push(tagged(format!("EXPIRE {expire}"), per_user));
    }
    if let Some(delay) = user.login_delay.or(options.login_delay) {
        lines.push(tagged(format!("LOGIN-DELAY {delay}"), per_user));
    }
    if let Some(implementation) = &options.implementation {
        lines.push(format!("IMPLEMENTATION {implementation}"));
    }
    for verb in &options.extension_verbs {
        if let Some(capability) = &verb.capability {
            push_unique(&mut lines, capability);
        }
    }
    for capability in &options.extra_capabilities {
        push_unique(&mut lines, capability);
    }
    lines
}

/// The full CAPA response.
pub(crate) fn capa_response(
    options: &SessionOptions,
    state: State,
    user: Option<UserPolicy>,
) -> Response {
    Response::ok_text(Text::new("capability-list"))
        .with_lines(capability_lines(options, state, user))
}

fn tagged(line: String, per_user: bool) -> String {
    if per_user {
        format!("{line} USER")
    } else {
        line
    }
}

fn push_unique(lines: &mut Vec<String>, capability: &str) {
    if !capability.is_empty()
        && !lines
            .iter()
            .any(|line| line.eq_ignore_ascii_case(capability))
    {
        lines.push(capability.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::{UserPolicy, capability_lines};
    use crate::options::{Expire, ExtensionVerb, SessionOptions};
    use crate::state::{State, StateSet};

    #[test]
    fn defaults() {
        let lines = capability_lines(&SessionOptions::default(), State::Authorization, None);
        assert_eq!(
            lines,
            [
                "TOP",
                "UIDL",
                "USER",
                "PIPELINING",
                "RESP-CODES",
                "AUTH-RESP-CODE"
            ]
        );
    }

    #[test]
    fn everything_configured() {
        let options = SessionOptions {
            user_pass: false,
            implementation: Some("Poppet 0.1".into()),
            expire: Some(Expire::Days(30)),
            login_delay: Some(300),
            extension_verbs: vec![ExtensionVerb {
                name: "XHELLO".into(),
                states: StateSet::TRANSACTION,
                capability: Some("X-HELLO".into()),
            }],
            extra_capabilities: vec!["X-EXTRA".into(), "x-hello".into()],
            ..SessionOptions::default()
        };
        let before = capability_lines(&options, State::Authorization, None);
        assert_eq!(
            before,
            [
                "TOP",
                "UIDL",
                "PIPELINING",
                "RESP-CODES",
                "AUTH-RESP-CODE",
                "EXPIRE 30 USER",
                "LOGIN-DELAY 300 USER",
                "IMPLEMENTATION Poppet 0.1",
                "X-HELLO",
                "X-EXTRA"
            ]
        );
        let user = UserPolicy {
            expire: Some(Expire::Never),
            login_delay: None,
        };
        let after = capability_lines(&options, State::Transaction, Some(user));
        assert!(after.contains(&"EXPIRE NEVER".to_owned()));
        assert!(after.contains(&"LOGIN-DELAY 300".to_owned()));
    }
}
