//! AUTH: SASL authentication (RFC 5034), framed here, computed by the driver.
//!
//! RFC 5034 §4: "A server challenge is sent as a line consisting of a "+" character
//! followed by a single space and a string encoded using Base64 [...]. The client
//! response consists of a line containing a string encoded as Base64. If the client
//! wishes to cancel the authentication exchange, it issues a line with a single "*". If
//! the server receives such a response, it MUST reject the AUTH command by sending an
//! -ERR reply." On the initial response: "If the initial response is empty [...] the
//! client MUST transmit the response as a single equals sign ("=")".
//!
//! The session knows the framing, never a mechanism: it reports
//! [`Event::SaslStarted`] and each [`Event::SaslResponse`] as raw base64, and the
//! driver (which decodes, runs PLAIN, LOGIN or SCRAM and asks the auth backend) answers
//! with [`Session::sasl_challenge`], a verdict ([`Session::sasl_completed`],
//! [`Session::auth_completed`]) or [`Session::sasl_failed`]. Continuation lines are not
//! commands; they have their own length limit
//! ([`crate::SessionOptions::max_sasl_line`]).
//!
//! `AUTH` without an argument lists the mechanisms, the RFC 1734 behaviour that Dovecot
//! keeps for old clients. `AUTH PLAIN` and `AUTH LOGIN` send the password in a form
//! anyone can decode, so [`crate::SessionOptions::plaintext_disallowed`] refuses and
//! hides them, like USER/PASS.

use crate::command::{Command, MAX_ARG};
use crate::error::ProtoError;
use crate::event::{Event, LoginOutcome};
use crate::options::SessionOptions;
use crate::response::Response;
use crate::session::{Pending, Phase, Session};
use crate::text::Text;

/// Mechanisms that carry the password in the clear (RFC 4616 PLAIN, and LOGIN).
const PLAINTEXT_MECHANISMS: [&str; 2] = ["PLAIN", "LOGIN"];

/// The mechanisms the session offers now: the configured ones, without the plain-text
/// ones while the cleartext policy forbids them.
pub(crate) fn allowed_mechanisms(options: &SessionOptions) -> Vec<&str> {
    options
        .sasl_mechanisms
        .iter()
        .map(String::as_str)
        .filter(|name| !name.is_empty())
        .filter(|name| !(options.plaintext_disallowed && is_plaintext(name)))
        .collect()
}

fn is_plaintext(mechanism: &str) -> bool {
    PLAINTEXT_MECHANISMS
        .iter()
        .any(|plain| plain.eq_ignore_ascii_case(mechanism))
}

/// AUTH's arguments. The mechanism keeps the 40-octet argument limit (RFC 4422 §3.1
/// names have at most 20 characters); the initial response does not: RFC 5034 §4
/// bounds it by the line ("the AUTH command is still subject to the line length
/// limitations defined in [POP3-EXT]"). The mechanism is folded to upper case.
pub(crate) fn parse_auth(rest: &str) -> Result<Command, ProtoError> {
    let mut args = rest.split(' ').filter(|arg| !arg.is_empty());
    let mechanism = args.next();
    let initial_response = args.next().map(str::to_owned);
    if args.next().is_some() {
        return Err(ProtoError::TooManyArguments("AUTH"));
    }
    if mechanism.is_some_and(|name| name.len() > MAX_ARG) {
        return Err(ProtoError::ArgumentTooLong);
    }
    Ok(Command::Auth {
        mechanism: mechanism.map(str::to_ascii_uppercase),
        initial_response,
    })
}

impl Session {
    /// `AUTH` (list) or `AUTH <mechanism> [initial-response]` (start an exchange).
    pub(crate) fn auth(
        &mut self,
        mechanism: Option<String>,
        initial_response: Option<String>,
    ) -> Result<Event, ProtoError> {
        let Some(mechanism) = mechanism else {
            let lines = allowed_mechanisms(&self.options);
            return Ok(Event::Reply(
                Response::ok_text(Text::new("sasl-mechanisms")).with_lines(lines),
            ));
        };
        let configured = self
            .options
            .sasl_mechanisms
            .iter()
            .any(|name| name.eq_ignore_ascii_case(&mechanism));
        if !configured {
            return Err(ProtoError::UnsupportedMechanism);
        }
        if self.options.plaintext_disallowed && is_plaintext(&mechanism) {
            return Err(ProtoError::PlaintextDisallowed);
        }
        let Phase::Authorization { user, sasl } = &mut self.phase else {
            return Err(ProtoError::WrongState {
                verb: "AUTH".into(),
                state: self.state(),
            });
        };
        // AUTH starts a new login; a name from an earlier USER is forgotten.
        *user = None;
        *sasl = Some(mechanism.clone());
        self.pending = Some(Pending::Sasl);
        let initial_response =
            initial_response.map(|data| if data == "=" { String::new() } else { data });
        Ok(Event::SaslStarted {
            mechanism,
            initial_response,
        })
    }

    /// Whether the next line is a SASL client response rather than a command.
    pub(crate) fn in_sasl_exchange(&self) -> bool {
        matches!(&self.phase, Phase::Authorization { sasl: Some(_), .. })
    }

    /// Ends the SASL exchange, if one runs.
    pub(crate) fn end_sasl_exchange(&mut self) {
        if let Phase::Authorization { sasl, .. } = &mut self.phase {
            *sasl = None;
        }
    }

    /// One client line during an exchange: `*` cancels, anything else goes to the
    /// driver. A line that breaks the framing (too long, control characters, not
    /// UTF-8) cancels the exchange and counts as a bad command.
    pub(crate) fn sasl_continuation(&mut self, line: Result<String, ProtoError>) -> Event {
        match line {
            Ok(data) if data == "*" => {
                self.end_sasl_exchange();
                self.queued.push_back(Event::SaslCancelled);
                Event::Reply(ProtoError::SaslCancelled.to_response())
            }
            Ok(data) => {
                self.pending = Some(Pending::Sasl);
                Event::SaslResponse { data }
            }
            Err(error) => {
                self.end_sasl_exchange();
                let error = match error {
                    ProtoError::LineTooLong => {
                        ProtoError::SaslLineTooLong(self.options.max_sasl_line)
                    }
                    other => other,
                };
                let event = self.conclude(Err(error));
                if matches!(event, Event::Reply(_)) {
                    self.queued.push_back(Event::SaslCancelled);
                }
                event
            }
        }
    }

    /// Answers [`Event::SaslStarted`] or [`Event::SaslResponse`] with a server
    /// challenge, already base64-encoded (empty for an empty challenge). The session
    /// writes `+ <challenge>` and reads one client line. Ignored if no SASL step is
    /// pending.
    ///
    /// POP3 has no room for data in `+OK`, so a mechanism's additional data with
    /// success (SCRAM's server-final message) goes out as a last challenge; the client
    /// answers with an empty line, and then the driver gives its verdict.
    pub fn sasl_challenge(&mut self, challenge: &str) {
        if self.pending != Some(Pending::Sasl) {
            return;
        }
        self.pending = None;
        self.touch_on_next = true;
        self.queued
            .push_back(Event::Reply(Response::continuation(challenge)));
    }

    /// Ends a SASL exchange with the backend's verdict, like
    /// [`Session::auth_completed`], naming the user the mechanism authenticated (what
    /// [`Session::user`] reports after a successful login). Ignored if no SASL step is
    /// pending.
    pub fn sasl_completed(&mut self, user: impl Into<String>, outcome: LoginOutcome) {
        if self.pending == Some(Pending::Sasl) {
            self.finish_login(Some(user.into()), outcome);
        }
    }

    /// Ends a SASL exchange the client got wrong (bad base64, a malformed mechanism
    /// message): `-ERR [AUTH] <text>`, back to AUTHORIZATION. Like a failed login it is
    /// not counted as a bad command; apply the failure delay. Ignored if no SASL step
    /// is pending.
    pub fn sasl_failed(&mut self, text: impl Into<String>) {
        if self.pending != Some(Pending::Sasl) {
            return;
        }
        self.pending = None;
        self.touch_on_next = true;
        self.end_sasl_exchange();
        let reply = ProtoError::SaslFailed(text.into()).to_response();
        self.queued.push_back(Event::Reply(reply));
    }
}

#[cfg(test)]
mod tests {
    use super::{allowed_mechanisms, parse_auth};
    use crate::command::Command;
    use crate::error::ProtoError;
    use crate::options::SessionOptions;

    #[test]
    fn auth_arguments() {
        let auth = |mechanism: Option<&str>, initial_response: Option<&str>| Command::Auth {
            mechanism: mechanism.map(String::from),
            initial_response: initial_response.map(String::from),
        };
        assert_eq!(parse_auth(""), Ok(auth(None, None)));
        assert_eq!(parse_auth("plain"), Ok(auth(Some("PLAIN"), None)));
        assert_eq!(parse_auth("PLAIN ="), Ok(auth(Some("PLAIN"), Some("="))));
        let long = "A".repeat(200);
        assert_eq!(
            parse_auth(&format!("PLAIN {long}")),
            Ok(auth(Some("PLAIN"), Some(&long)))
        );
        assert_eq!(
            parse_auth("PLAIN a b"),
            Err(ProtoError::TooManyArguments("AUTH"))
        );
        assert_eq!(
            parse_auth(&"M".repeat(41)),
            Err(ProtoError::ArgumentTooLong)
        );
    }

    #[test]
    fn cleartext_policy_filters_plain_and_login() {
        let mut options = SessionOptions {
            sasl_mechanisms: ["PLAIN", "SCRAM-SHA-256", "LOGIN", ""]
                .map(String::from)
                .into(),
            ..SessionOptions::default()
        };
        assert_eq!(
            allowed_mechanisms(&options),
            ["PLAIN", "SCRAM-SHA-256", "LOGIN"]
        );
        options.plaintext_disallowed = true;
        assert_eq!(allowed_mechanisms(&options), ["SCRAM-SHA-256"]);
    }
}
