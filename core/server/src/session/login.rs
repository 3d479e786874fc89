//! Logging in: USER/PASS and APOP here, SASL in `sasl.rs`; both end in [`Driver::authenticate_and_open`],
//! which applies the per-address penalty, asks the auth backend, answers failures only after the
//! failure delay, and on success takes the user's slot, opens the maildrop and runs the after-login
//! hooks.

use super::Driver;
use poppet_proto::{AuthRequest, LoginOutcome, Mechanism, MessageMeta, Uidl, validate_user};
use poppet_sdk::{
    Accepted, AuthOutcome, ErrorCode, LoginDecision, OpenRequest, Secret, SessionView, StoredSecret,
};
use smol::Timer;
use std::time::Instant;

/// What a login attempt presents to the auth backend.
pub(super) struct Credentials {
    pub mechanism: &'static str,
    pub user: String,
    pub password: Secret<String>,
    pub authzid: Option<String>,
    /// The core has already checked the credentials (SCRAM); the backend only looks the account up.
    pub verified: bool,
}

impl Driver<'_> {
    /// USER/PASS or APOP from the engine.
    pub(super) async fn login_user_pass(&mut self, req: AuthRequest) -> LoginOutcome {
        let mechanism = match req.mechanism {
            Mechanism::Apop => "APOP",
            _ => poppet_sdk::mechanism::USER_PASS,
        };
        self.serve_penalty().await;
        if !req.valid_user {
            return self.failed(&req.user, mechanism).await;
        }
        let password = match req.mechanism {
            Mechanism::Apop => match self.apop_secret(&req).await {
                Ok(Some(secret)) => secret,
                Ok(None) => return self.failed(&req.user, mechanism).await,
                Err(outcome) => return outcome,
            },
            _ => Secret::new(req.secret.expose().clone()),
        };
        let creds = Credentials {
            mechanism,
            user: req.user,
            password,
            authzid: None,
            verified: false,
        };
        self.authenticate_and_open(creds).await
    }

    /// APOP (RFC 1939 §7): the digest is MD5(timestamp + secret); the secret comes from the backend.
    async fn apop_secret(&self, req: &AuthRequest) -> Result<Option<Secret<String>>, LoginOutcome> {
        let Some(timestamp) = self.session.apop_timestamp() else {
            return Ok(None);
        };
        let secret = match self
            .bounded(self.shared.plugins.auth.lookup_secret(&req.user))
            .await
        {
            Ok(Some(StoredSecret::Plaintext(s))) => s,
            Ok(_) => return Ok(None),
            Err(e) => {
                self.plugin_error("lookup_secret", &e);
                return Err(LoginOutcome::TempFail(
                    "authentication service unavailable".into(),
                ));
            }
        };
        let ok = crate::apop::verify(timestamp, secret.expose(), req.secret.expose());
        Ok(ok.then_some(secret))
    }

    /// Serves this address's penalty before a login attempt is even looked at (USER/PASS, APOP and
    /// every SASL mechanism alike).
    pub(super) async fn serve_penalty(&self) {
        let ip = self.conn.peer.ip();
        let penalty = self.shared.penalties.penalty(ip, Instant::now());
        if !penalty.is_zero() {
            log::debug!(
                "session {}: auth penalty {penalty:?} for rip={ip}",
                self.conn.id
            );
            Timer::after(penalty).await;
        }
    }

    /// Backend, failure delay; then the maildrop. The caller has served the penalty.
    pub(super) async fn authenticate_and_open(&mut self, creds: Credentials) -> LoginOutcome {
        if validate_user(&creds.user).is_err() {
            return self.failed(&creds.user, creds.mechanism).await;
        }
        let ip = self.conn.peer.ip();
        let req = poppet_sdk::AuthRequest {
            mechanism: creds.mechanism.to_owned(),
            user: creds.user.clone(),
            password: creds.password,
            authzid: creds.authzid,
            peer: Some(self.conn.peer),
            local: Some(self.conn.local),
            tls: self.conn.tls.is_some(),
            verified: creds.verified,
        };
        let started = Instant::now();
        let answer = self
            .bounded(self.shared.plugins.auth.authenticate(&req))
            .await;
        self.shared
            .metrics()
            .plugin_call("authenticate", started.elapsed(), answer.is_err());
        if matches!(answer, Ok(AuthOutcome::TempFail(_)) | Err(_)) {
            self.shared.metrics().login(creds.mechanism, "tempfail");
        }
        let accepted = match answer {
            Ok(AuthOutcome::Accept(a)) => a,
            Ok(AuthOutcome::Reject) => return self.failed(&creds.user, creds.mechanism).await,
            Ok(AuthOutcome::TempFail(reason)) => {
                log::warn!(
                    "session {}: auth backend temporary failure: {reason}",
                    self.conn.id
                );
                return LoginOutcome::TempFail(
                    "authentication service unavailable, try again later".into(),
                );
            }
            Err(e) => {
                self.plugin_error("authenticate", &e);
                return LoginOutcome::TempFail(
                    "authentication service unavailable, try again later".into(),
                );
            }
        };
        self.shared.penalties.succeeded(ip);
        let user = accepted.user.clone().unwrap_or(creds.user);
        self.open(user, accepted, creds.mechanism).await
    }

    /// A failed login: logged with the client address (for fail2ban), counted for the address's
    /// penalty and the connection's failure limit, and answered only after the failure delay, the same
    /// for unknown users and wrong passwords.
    pub(super) async fn failed(&mut self, user: &str, mechanism: &str) -> LoginOutcome {
        let ip = self.conn.peer.ip();
        log::warn!(
            "session {}: authentication failed: user={user:?} rip={ip} mechanism={mechanism}",
            self.conn.id
        );
        self.shared.penalties.failed(ip, Instant::now());
        self.shared.metrics().login(mechanism, "failed");
        self.auth_failures += 1;
        if self.auth_failures >= self.shared.config.limits.max_auth_failures {
            // The engine answers -ERR [AUTH]; the driver closes right after it.
            self.close_after_reply = true;
        }
        Timer::after(self.shared.config.limits.auth_failure_delay).await;
        LoginOutcome::Rejected
    }

    /// Takes the user's slot, opens the maildrop and runs after-login hooks.
    async fn open(
        &mut self,
        user: String,
        accepted: Accepted,
        mechanism: &'static str,
    ) -> LoginOutcome {
        let Some(slot) = self.shared.claim_user(&user) else {
            log::warn!(
                "session {}: too many sessions for user={user:?}",
                self.conn.id
            );
            self.shared.metrics().login(mechanism, "in-use");
            return LoginOutcome::InUse;
        };
        let open = OpenRequest {
            user: user.clone(),
            mailbox: accepted.mailbox.clone(),
        };
        let started = Instant::now();
        let opened = self.bounded(self.shared.plugins.store.open(&open)).await;
        let failed = opened.as_ref().is_err_and(|e| e.code != ErrorCode::LOCKED);
        self.shared
            .metrics()
            .plugin_call("open", started.elapsed(), failed);
        let maildrop = match opened {
            Ok(m) => m,
            Err(e) if e.code == ErrorCode::LOCKED => {
                log::info!(
                    "session {}: mailbox of {user:?} is in use: {e}",
                    self.conn.id
                );
                self.shared.metrics().login(mechanism, "in-use");
                return LoginOutcome::InUse;
            }
            Err(e) => {
                self.shared.metrics().login(mechanism, "tempfail");
                self.plugin_error("open", &e);
                return if e.code == ErrorCode::PERMANENT {
                    LoginOutcome::PermFail("mailbox unavailable".into())
                } else {
                    LoginOutcome::TempFail("mailbox unavailable, try again later".into())
                };
            }
        };
        let mut messages = Vec::with_capacity(maildrop.messages().len());
        for (i, m) in maildrop.messages().iter().enumerate() {
            match Uidl::new(&m.uidl) {
                Ok(uidl) => messages.push(MessageMeta { size: m.size, uidl }),
                Err(e) => {
                    log::error!(
                        "session {}: store gave message {} an invalid UIDL: {e}",
                        self.conn.id,
                        i + 1
                    );
                    return LoginOutcome::TempFail("mailbox unavailable, try again later".into());
                }
            }
        }
        let view = SessionView {
            user: Some(user.clone()),
            peer: Some(self.conn.peer),
            tls: self.conn.tls.is_some(),
            message_sizes: messages.iter().map(|m| m.size).collect(),
            session_id: self.conn.id,
            login_delay: accepted.login_delay,
            utf8: self.session.utf8_enabled(),
            language: self.session.language().map(str::to_owned),
        };
        for ext in &self.shared.plugins.extensions {
            match self.bounded(ext.after_login(&view)).await {
                Ok(LoginDecision::Allow) => {}
                Ok(LoginDecision::Refuse(reply)) => {
                    log::info!(
                        "session {}: login of {user:?} rip={} refused by an extension: [{}] {}",
                        self.conn.id,
                        self.conn.peer.ip(),
                        reply.code.as_deref().unwrap_or("SYS/PERM"),
                        reply.text
                    );
                    self.shared.metrics().login(mechanism, "refused");
                    return crate::shared::refusal_outcome(reply);
                }
                Err(e) => {
                    self.plugin_error("after_login", &e);
                    return LoginOutcome::TempFail("try again later".into());
                }
            }
        }
        let total: u64 = messages.iter().map(|m| m.size).sum();
        log::info!(
            "session {}: login user={user:?} rip={} lip={} mechanism={mechanism} tls={} messages={} octets={total}",
            self.conn.id,
            self.conn.peer.ip(),
            self.conn.local,
            self.tls_text(),
            messages.len(),
        );
        self.shared.metrics().login(mechanism, "ok");
        self.maildrop = Some(maildrop);
        self.user_slot = Some(slot);
        self.user = Some(user);
        self.mechanism = mechanism;
        self.login_delay = accepted.login_delay;
        LoginOutcome::Accepted {
            messages,
            expire: accepted.expire.map(|e| match e {
                poppet_sdk::Expire::Never => poppet_proto::Expire::Never,
                poppet_sdk::Expire::Days(d) => poppet_proto::Expire::Days(d),
            }),
            login_delay: accepted.login_delay,
        }
    }
}
