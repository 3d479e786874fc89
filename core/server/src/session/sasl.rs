//! SASL AUTH (RFC 5034) in the driver: base64 on the wire, `poppet-sasl` for the mechanisms, the auth
//! backend for passwords and stored secrets.
//!
//! PLAIN and LOGIN end in an ordinary password check. SCRAM-SHA-256(-PLUS) asks the backend for a
//! plaintext-equivalent secret or stored keys, checks the proof here, sends the server signature as a
//! final `+` challenge (RFC 5034 §4: "additional data with success ... MUST be sent as a challenge"),
//! and then asks the backend only to look the account up.

use super::Driver;
use super::login::Credentials;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use poppet_proto::validate_user;
use poppet_sasl::{ChannelBinding, Exchange, Mechanism, SaslError, ScramCredentials, Step};
use poppet_sdk::{Secret, StoredSecret};

/// An exchange in progress.
pub(crate) struct Pending {
    exchange: Exchange,
    mechanism: Mechanism,
    /// The user named so far (for the failure log line).
    user: Option<String>,
    /// Set once the SCRAM proof checked out and the server-final challenge is out: the client's
    /// (empty) answer completes the login.
    verified: Option<(String, Option<String>)>,
}

impl Driver<'_> {
    /// `AUTH <mechanism> [initial-response]`.
    pub(super) async fn sasl_start(&mut self, mechanism: &str, initial: Option<String>) {
        let Some(mechanism) = Mechanism::from_name(mechanism) else {
            self.session.sasl_failed("unsupported mechanism");
            return;
        };
        self.serve_penalty().await;
        // Channel binding data is given whenever TLS 1.3 is up, also to plain SCRAM, so a client that
        // says "y" (binding supported but not offered) is caught as a downgrade (RFC 5802 §6).
        let binding = self
            .conn
            .tls
            .as_ref()
            .and_then(|t| t.exporter.clone())
            .map(ChannelBinding::tls_exporter);
        self.sasl = Some(Pending {
            exchange: Exchange::new(mechanism, binding),
            mechanism,
            user: None,
            verified: None,
        });
        let data = match initial.as_deref().map(|s| B64.decode(s)) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(_)) => {
                return self
                    .sasl_protocol_error("invalid base64 in the initial response")
                    .await;
            }
        };
        self.sasl_step(data).await;
    }

    /// A continuation line.
    pub(super) async fn sasl_continue(&mut self, data: String) {
        let Some(pending) = self.sasl.as_mut() else {
            return;
        };
        if let Some((user, authzid)) = pending.verified.take() {
            if data.is_empty() {
                let mechanism = pending.mechanism.name();
                self.sasl = None;
                let creds = Credentials {
                    mechanism,
                    user: user.clone(),
                    password: Secret::new(String::new()),
                    authzid,
                    verified: true,
                };
                let outcome = self.authenticate_and_open(creds).await;
                self.session.sasl_completed(user, outcome);
            } else {
                self.sasl_protocol_error("expected an empty response after the server signature")
                    .await;
            }
            return;
        }
        match B64.decode(data.as_bytes()) {
            Ok(bytes) => self.sasl_step(Some(bytes)).await,
            Err(_) => self.sasl_protocol_error("invalid base64").await,
        }
    }

    async fn sasl_step(&mut self, data: Option<Vec<u8>>) {
        let Some(pending) = self.sasl.as_mut() else {
            return;
        };
        let mut step = pending.exchange.step(data.as_deref());
        loop {
            let Some(pending) = self.sasl.as_mut() else {
                return;
            };
            match step {
                Ok(Step::Challenge(bytes)) => {
                    self.session.sasl_challenge(&B64.encode(bytes));
                    return;
                }
                Ok(Step::CheckPassword {
                    authzid,
                    user,
                    password,
                }) => {
                    let mechanism = pending.mechanism.name();
                    self.sasl = None;
                    let password = Secret::new(password.expose().clone());
                    let creds = Credentials {
                        mechanism,
                        user: user.clone(),
                        password,
                        authzid,
                        verified: false,
                    };
                    let outcome = self.authenticate_and_open(creds).await;
                    self.session.sasl_completed(user, outcome);
                    return;
                }
                Ok(Step::NeedScramCredentials { user, .. }) => {
                    pending.user = Some(user.clone());
                    let creds = self.scram_credentials(&user).await;
                    let Some(pending) = self.sasl.as_mut() else {
                        return;
                    };
                    step = pending.exchange.provide_credentials(creds);
                }
                Ok(Step::Success {
                    authzid,
                    user,
                    server_final,
                }) => match server_final {
                    Some(f) => {
                        pending.verified = Some((user, authzid));
                        self.session.sasl_challenge(&B64.encode(f));
                        return;
                    }
                    None => {
                        let mechanism = pending.mechanism.name();
                        self.sasl = None;
                        let password = Secret::new(String::new());
                        let creds = Credentials {
                            mechanism,
                            user: user.clone(),
                            password,
                            authzid,
                            verified: true,
                        };
                        let outcome = self.authenticate_and_open(creds).await;
                        self.session.sasl_completed(user, outcome);
                        return;
                    }
                },
                Err(e) => return self.sasl_error(e).await,
            }
        }
    }

    /// Credentials for a SCRAM exchange. Unknown users, invalid names and backends without secrets all
    /// give `None`, which the exchange turns into fake credentials that fail at the proof. When the
    /// backend keeps plaintext secrets, the PBKDF2 work is done for unknown users too, so timing does
    /// not tell them apart.
    async fn scram_credentials(&self, user: &str) -> Option<ScramCredentials> {
        let plaintext_backend = self.shared.plugins.auth.capabilities().plaintext_secrets;
        let found = if validate_user(user).is_ok() {
            match self
                .bounded(self.shared.plugins.auth.lookup_secret(user))
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    self.plugin_error("lookup_secret", &e);
                    None
                }
            }
        } else {
            None
        };
        let derive = |pw: &str| {
            let pw = pw.to_owned();
            blocking::unblock(move || {
                ScramCredentials::from_password(&pw, poppet_sasl::DEFAULT_ITERATIONS)
            })
        };
        match found {
            Some(StoredSecret::Plaintext(pw)) => Some(derive(pw.expose()).await),
            Some(StoredSecret::ScramSha256(k)) => Some(ScramCredentials {
                salt: k.salt,
                iterations: k.iterations,
                stored_key: k.stored_key,
                server_key: k.server_key,
            }),
            None => {
                if plaintext_backend {
                    let _ = derive("not a user").await;
                }
                None
            }
        }
    }

    async fn sasl_error(&mut self, e: SaslError) {
        let Some(pending) = self.sasl.take() else {
            return;
        };
        if e.is_authentication_failure() {
            let user = pending.user.unwrap_or_default();
            let outcome = self.failed(&user, pending.mechanism.name()).await;
            self.session.auth_completed(outcome);
        } else {
            log::info!(
                "session {}: SASL {} failed: {e}",
                self.conn.id,
                pending.mechanism.name()
            );
            self.sasl = Some(pending);
            self.sasl_protocol_error(&e.to_string()).await;
        }
    }

    /// A malformed exchange: `-ERR [AUTH] <text>` after the failure delay, counted as a failure.
    async fn sasl_protocol_error(&mut self, text: &str) {
        let mechanism = self.sasl.take().map_or("SASL", |p| p.mechanism.name());
        let _ = self.failed("", mechanism).await;
        self.session.sasl_failed(text);
    }
}
