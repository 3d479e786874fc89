//! One server-side SASL exchange: the API the POP3 driver is written against.
//!
//! Under RFC 5034 §4 the client may put its first message on the AUTH line (the initial response); when it does
//! not, a mechanism in which the client speaks first starts with an empty challenge (`+ `), as RFC 4422 §5 and
//! RFC 5034 describe. So the driver calls [`Exchange::step`] with the initial response (or `None`), then with each decoded
//! continuation line, and acts on each [`Step`] until the exchange finishes or fails. `*` (cancel) and base64 are
//! the driver's business; this type sees only decoded bytes. Any error ends the exchange: later calls return
//! [`SaslError::UnexpectedMessage`].

use std::fmt;
use std::mem;

use crate::login::{Login, LoginStep};
use crate::scram::{self, AwaitCredentials, AwaitFinal};
use crate::secret::Secret;
use crate::{Mechanism, SaslError, ScramCredentials, plain};

/// Channel-binding data for the connection, taken from the TLS layer.
#[derive(Clone, PartialEq, Eq)]
pub struct ChannelBinding {
    /// The channel-binding type name as it appears in `p=` (RFC 5056); Poppet uses `tls-exporter`.
    pub kind: String,
    /// The channel-binding data.
    pub data: Vec<u8>,
}

impl ChannelBinding {
    /// The RFC 9266 type name.
    pub const TLS_EXPORTER: &'static str = "tls-exporter";
    /// RFC 9266 §2: the exporter label for `tls-exporter`; the context is empty.
    pub const TLS_EXPORTER_LABEL: &'static [u8] = b"EXPORTER-Channel-Binding";
    /// RFC 9266 §2: the exported length is 32 bytes.
    pub const TLS_EXPORTER_LEN: usize = 32;

    /// `tls-exporter` binding data, as exported by the TLS 1.3 session (RFC 9266 §2).
    pub fn tls_exporter(data: Vec<u8>) -> ChannelBinding {
        ChannelBinding {
            kind: ChannelBinding::TLS_EXPORTER.to_owned(),
            data,
        }
    }
}

impl fmt::Debug for ChannelBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelBinding")
            .field("kind", &self.kind)
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// What the driver does next.
#[derive(Debug)]
#[must_use]
pub enum Step {
    /// Send `+ base64(data)` and pass the client's next line to [`Exchange::step`].
    Challenge(Vec<u8>),
    /// PLAIN or LOGIN finished: verify the password with the auth backend. The exchange is done.
    CheckPassword {
        /// The identity to act as, if different from `user` (None: act as `user`).
        authzid: Option<String>,
        /// The authentication identity.
        user: String,
        /// The password the client sent.
        password: Secret<String>,
    },
    /// SCRAM: look up the user's [`ScramCredentials`] and pass them to [`Exchange::provide_credentials`].
    NeedScramCredentials {
        /// The identity to act as, if different from `user` (None: act as `user`).
        authzid: Option<String>,
        /// The authentication identity (saslname-decoded, not SASLprep'd).
        user: String,
    },
    /// SCRAM: the client proved it knows the password. RFC 5034 has no success-with-data, so the driver sends
    /// `server_final` (`v=...`) as a last `+ ` challenge, expects an empty client response, and only then `+OK`.
    Success {
        /// The identity to act as, if different from `user` (None: act as `user`).
        authzid: Option<String>,
        /// The authenticated user.
        user: String,
        /// The server-final-message; always `Some` for SCRAM.
        server_final: Option<Vec<u8>>,
    },
}

enum State {
    PlainStart,
    PlainAwait,
    Login(Login),
    ScramStart(scram::Start),
    ScramAwaitCredentials(AwaitCredentials),
    ScramAwaitFinal(Box<AwaitFinal>),
    Finished,
}

/// One server-side SASL exchange. The driver feeds client messages (already base64-decoded) and acts on each
/// [`Step`].
pub struct Exchange {
    mechanism: Mechanism,
    state: State,
}

impl Exchange {
    /// Starts an exchange. `channel_binding` is the connection's binding data (TLS 1.3 `tls-exporter`), or `None`
    /// on plaintext or TLS 1.2. Passing it for `SCRAM-SHA-256` too means "the server advertises `-PLUS`", which
    /// arms the downgrade check of RFC 5802 §6.
    pub fn new(mechanism: Mechanism, channel_binding: Option<ChannelBinding>) -> Exchange {
        Exchange::build(mechanism, channel_binding, None)
    }

    /// Like [`Exchange::new`] with a fixed SCRAM server nonce (appended to the client's), for RFC test vectors.
    /// Never use it in a server: the nonce must be fresh for every exchange.
    #[doc(hidden)]
    pub fn with_server_nonce(
        mechanism: Mechanism,
        channel_binding: Option<ChannelBinding>,
        server_nonce: &str,
    ) -> Exchange {
        Exchange::build(mechanism, channel_binding, Some(server_nonce.to_owned()))
    }

    fn build(
        mechanism: Mechanism,
        channel_binding: Option<ChannelBinding>,
        server_nonce: Option<String>,
    ) -> Self {
        let state = match mechanism {
            Mechanism::Plain => State::PlainStart,
            Mechanism::Login => State::Login(Login::Start),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => {
                State::ScramStart(scram::Start {
                    plus: mechanism.needs_channel_binding(),
                    channel_binding,
                    server_nonce,
                })
            }
        };
        Exchange { mechanism, state }
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// True once the exchange produced its last [`Step`] or failed; further messages are errors.
    pub fn is_finished(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// The client's message (`None` when the client sent no initial response). Returns what to do next.
    pub fn step(&mut self, client: Option<&[u8]>) -> Result<Step, SaslError> {
        let (step, next) = match (mem::replace(&mut self.state, State::Finished), client) {
            (State::PlainStart, None) => (Step::Challenge(Vec::new()), State::PlainAwait),
            (State::PlainStart | State::PlainAwait, Some(message)) => {
                let message = plain::parse(message)?;
                let step = Step::CheckPassword {
                    authzid: message.authzid,
                    user: message.user,
                    password: message.password,
                };
                (step, State::Finished)
            }
            (State::Login(login), client) => match login.step(client)? {
                LoginStep::Prompt(prompt, next) => {
                    (Step::Challenge(prompt.to_vec()), State::Login(next))
                }
                LoginStep::Done { user, password } => (
                    Step::CheckPassword {
                        authzid: None,
                        user,
                        password,
                    },
                    State::Finished,
                ),
            },
            (State::ScramStart(start), None) => {
                start.check_available()?;
                (Step::Challenge(Vec::new()), State::ScramStart(start))
            }
            (State::ScramStart(start), Some(message)) => {
                let next = start.client_first(message)?;
                let step = Step::NeedScramCredentials {
                    authzid: next.authzid.clone(),
                    user: next.user.clone(),
                };
                (step, State::ScramAwaitCredentials(next))
            }
            (State::ScramAwaitFinal(await_final), client) => {
                let verified = await_final.client_final(client.unwrap_or_default())?;
                let step = Step::Success {
                    authzid: verified.authzid,
                    user: verified.user,
                    server_final: Some(verified.server_final),
                };
                (step, State::Finished)
            }
            (State::PlainAwait, None) | (State::ScramAwaitCredentials(_) | State::Finished, _) => {
                return Err(SaslError::UnexpectedMessage);
            }
        };
        self.state = next;
        Ok(step)
    }

    /// For SCRAM: answers [`Step::NeedScramCredentials`]. `None` means unknown user: the exchange continues with
    /// fake credentials derived from the user name and a per-process random key (so the salt does not reveal
    /// whether the user exists, and the same user always gets the same salt) and fails at the proof with
    /// [`SaslError::ProofMismatch`], like a wrong password.
    ///
    /// Timing is the caller's half of the bargain: a backend that derives keys for known users with
    /// [`ScramCredentials::from_password`] (one PBKDF2 run) should spend the same on unknown users, or the delay
    /// before server-first tells them apart.
    pub fn provide_credentials(
        &mut self,
        credentials: Option<ScramCredentials>,
    ) -> Result<Step, SaslError> {
        match mem::replace(&mut self.state, State::Finished) {
            State::ScramAwaitCredentials(await_credentials) => {
                let (server_first, next) = await_credentials.credentials(credentials);
                self.state = State::ScramAwaitFinal(Box::new(next));
                Ok(Step::Challenge(server_first))
            }
            _ => Err(SaslError::CredentialsNotRequested),
        }
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::PlainStart | State::ScramStart(_) => "start",
            State::PlainAwait => "await-message",
            State::Login(Login::Start) => "start",
            State::Login(Login::AwaitUser) => "await-user",
            State::Login(Login::AwaitPassword { .. }) => "await-password",
            State::ScramAwaitCredentials(_) => "await-credentials",
            State::ScramAwaitFinal(_) => "await-client-final",
            State::Finished => "finished",
        };
        f.debug_struct("Exchange")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish()
    }
}
