//! The AUTHORIZATION state: USER, PASS, APOP and the login verdict.
//!
//! RFC 1939 §4: "Once the TCP connection has been opened by a POP3 client, the POP3
//! server issues a one line greeting. [...] The POP3 session is now in the
//! AUTHORIZATION state. The client must now identify and authenticate itself to the
//! POP3 server." RFC 1939 §7 (USER): "If the POP3 server responds with a positive status
//! indicator ("+OK"), then the client may issue either the PASS command to complete the
//! authentication, or the QUIT command to terminate the POP3 session."
//!
//! The session only collects credentials; the driver checks them (auth backend) and
//! opens the maildrop (mail store), then reports a [`LoginOutcome`]. Failures carry the
//! response codes of RFC 2449 §8 and RFC 3206, so clients can tell a wrong password
//! (`[AUTH]`) from a locked maildrop (`[IN-USE]`) or a broken server (`[SYS/TEMP]`).
//! USER answers `+OK` for every name, so the server does not reveal which users exist;
//! a name that fails [`crate::validate_user`] is accepted too and reaches the driver
//! flagged, to be rejected like a wrong password.
//!
//! While [`crate::SessionOptions::plaintext_disallowed`] is set (an unencrypted
//! connection from outside loopback), USER and PASS are refused with Dovecot's
//! `-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS)
//! connections.`; APOP sends no password and stays allowed.

use crate::capability::UserPolicy;
use crate::command::Command;
use crate::error::ProtoError;
use crate::event::{AuthRequest, Event, LoginOutcome, Mechanism};
use crate::response::Response;
use crate::session::{Account, Pending, Phase, Session};
use crate::state::State;
use crate::text::Text;
use crate::transaction::Maildrop;
use crate::user::validate_user;

impl Session {
    /// USER, PASS and APOP.
    pub(crate) fn authorization(&mut self, command: Command) -> Result<Event, ProtoError> {
        // RFC 6856 §2: UTF-8 user names once the client has said UTF8 (when offered).
        let ascii_names_only = self.options.utf8_users_need_command && !self.utf8;
        let check_name = |name: &str| {
            if ascii_names_only && !name.is_ascii() {
                Err(ProtoError::Utf8UserNeedsUtf8)
            } else {
                Ok(())
            }
        };
        let Phase::Authorization {
            user: candidate, ..
        } = &mut self.phase
        else {
            return Err(ProtoError::WrongState {
                verb: "login".into(),
                state: self.state(),
            });
        };
        let user_pass = if !self.options.user_pass {
            Err(ProtoError::UserPassDisabled)
        } else if self.options.plaintext_disallowed {
            Err(ProtoError::PlaintextDisallowed)
        } else {
            Ok(())
        };
        match command {
            Command::User(name) => {
                user_pass?;
                check_name(&name)?;
                *candidate = Some(name);
                Ok(Event::Reply(Response::ok_text(Text::new("user-accepted"))))
            }
            Command::Pass(secret) => {
                user_pass?;
                // Taking the name means a failed PASS needs a new USER (RFC 1939 §7:
                // after "-ERR" to PASS the client "may either issue a new
                // authentication command or may issue the QUIT command").
                let user = candidate.take().ok_or(ProtoError::PassWithoutUser)?;
                self.pending = Some(Pending::Auth { user: user.clone() });
                let request = AuthRequest {
                    mechanism: Mechanism::UserPass,
                    valid_user: validate_user(&user).is_ok(),
                    user,
                    secret,
                };
                Ok(Event::AuthRequested(request))
            }
            Command::Apop { user, digest } => {
                if self.options.apop_timestamp.is_none() {
                    return Err(ProtoError::ApopDisabled);
                }
                check_name(&user)?;
                *candidate = None;
                self.pending = Some(Pending::Auth { user: user.clone() });
                let request = AuthRequest {
                    mechanism: Mechanism::Apop,
                    valid_user: validate_user(&user).is_ok(),
                    user,
                    secret: digest,
                };
                Ok(Event::AuthRequested(request))
            }
            _ => Err(ProtoError::WrongState {
                verb: "this command".into(),
                state: State::Authorization,
            }),
        }
    }

    /// Answers [`Event::AuthRequested`], or ends a SASL exchange with the verdict
    /// (RFC 5034). On success the session enters TRANSACTION with the given snapshot;
    /// otherwise it stays in AUTHORIZATION (a new USER or AUTH is needed). The reply is
    /// handed out by the next [`Session::next`]. Ignored if no login is pending.
    ///
    /// After a SASL login through this method [`Session::user`] is `None`, since only
    /// the driver knows whom the mechanism authenticated; [`Session::sasl_completed`]
    /// takes the name.
    pub fn auth_completed(&mut self, outcome: LoginOutcome) {
        match self.pending.clone() {
            Some(Pending::Auth { user }) => self.finish_login(Some(user), outcome),
            Some(Pending::Sasl) => self.finish_login(None, outcome),
            _ => {}
        }
    }

    /// Ends the pending login: the verdict, the reply and the state change.
    pub(crate) fn finish_login(&mut self, user: Option<String>, outcome: LoginOutcome) {
        self.pending = None;
        self.touch_on_next = true;
        self.end_sasl_exchange();
        let reply = match outcome {
            LoginOutcome::Accepted {
                messages,
                expire,
                login_delay,
            } => {
                let maildrop = Maildrop::new(messages);
                let (count, octets) = maildrop.totals();
                let policy = UserPolicy {
                    expire,
                    login_delay,
                };
                self.phase = Phase::Transaction(Account {
                    user,
                    maildrop,
                    policy,
                });
                Response::ok_text(
                    Text::new("logged-in")
                        .arg("count", count)
                        .arg("octets", octets),
                )
            }
            LoginOutcome::Rejected => ProtoError::AuthFailed.to_response(),
            LoginOutcome::InUse => ProtoError::MailboxInUse.to_response(),
            LoginOutcome::TempFail(text) => ProtoError::Temporary(text).to_response(),
            LoginOutcome::PermFail(text) => ProtoError::Permanent(text).to_response(),
            LoginOutcome::LoginDelay => ProtoError::LoginTooSoon.to_response(),
        };
        self.queued.push_back(Event::Reply(reply));
    }
}
