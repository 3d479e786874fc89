//! `LOGIN` (draft-murchison-sasl-login): user name and password in two answers to two prompts.
//!
//! LOGIN was never standardized; the draft documents what Microsoft clients (Outlook) send and is obsolete in
//! favour of PLAIN. The server prompts with the fixed strings `Username:` and `Password:` and each client response
//! carries one value. Clients may send the user name as the initial response (`AUTH LOGIN dGlt`), which skips the
//! first prompt. Dovecot, like us, treats an empty initial response as none, since some clients send `AUTH LOGIN =`.
//! RFC 5034 §4 applies base64 to the prompts; that is the driver's job, so they are raw bytes here.

use crate::SaslError;
use crate::secret::Secret;

/// The first prompt.
pub(crate) const USERNAME_PROMPT: &[u8] = b"Username:";
/// The second prompt.
pub(crate) const PASSWORD_PROMPT: &[u8] = b"Password:";

/// Where a LOGIN exchange is.
#[derive(Debug)]
pub(crate) enum Login {
    /// Nothing received yet.
    Start,
    /// `Username:` was sent; the next message is the user name.
    AwaitUser,
    /// `Password:` was sent; the next message is the password.
    AwaitPassword { user: String },
}

/// What a LOGIN step produced.
#[derive(Debug)]
pub(crate) enum LoginStep {
    /// Send this prompt and continue in the given state.
    Prompt(&'static [u8], Login),
    /// Both values are in.
    Done {
        user: String,
        password: Secret<String>,
    },
}

impl Login {
    /// Consumes the state and one client message.
    pub(crate) fn step(self, client: Option<&[u8]>) -> Result<LoginStep, SaslError> {
        match (self, client) {
            (Login::Start, None) | (Login::Start, Some(b"")) => {
                Ok(LoginStep::Prompt(USERNAME_PROMPT, Login::AwaitUser))
            }
            (Login::Start | Login::AwaitUser, Some(user)) => {
                let user = utf8(user)?;
                if user.is_empty() {
                    return Err(SaslError::EmptyUser);
                }
                Ok(LoginStep::Prompt(
                    PASSWORD_PROMPT,
                    Login::AwaitPassword {
                        user: user.to_owned(),
                    },
                ))
            }
            (Login::AwaitPassword { user }, Some(password)) => {
                let password = utf8(password)?;
                if password.is_empty() {
                    return Err(SaslError::EmptyPassword);
                }
                Ok(LoginStep::Done {
                    user,
                    password: Secret::new(password.to_owned()),
                })
            }
            (Login::AwaitUser, None) => Err(SaslError::EmptyUser),
            (Login::AwaitPassword { .. }, None) => Err(SaslError::EmptyPassword),
        }
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, SaslError> {
    let text = std::str::from_utf8(bytes).map_err(|_| SaslError::InvalidUtf8)?;
    // A NUL cannot be part of a user name or password any backend accepts, and PLAIN forbids it outright.
    if text.contains('\0') {
        return Err(SaslError::malformed(
            "LOGIN",
            "NUL in user name or password",
        ));
    }
    Ok(text)
}
