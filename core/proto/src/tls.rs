//! STLS: upgrading a plain connection to TLS (RFC 2595 §4).
//!
//! RFC 2595 §4: "The STLS command is only permitted in AUTHORIZATION state and the
//! server remains in AUTHORIZATION state, even if client credentials are supplied
//! during the TLS negotiation." Its example refusal is "-ERR Command not permitted when
//! TLS active". We also refuse STLS between USER and PASS: the name was sent in plain
//! text, and the login it started must not carry over into the encrypted session.
//!
//! Plain-text injection (CVE-2011-0411 and its relatives in many servers): a
//! man-in-the-middle appends commands after `STLS\r\n` in the same packet; a server that
//! keeps its input buffer across the handshake then runs them as if they had come
//! through TLS. Here every byte buffered after the STLS line is dropped when STLS is
//! accepted, input is ignored while the driver runs the handshake, and the buffer is
//! dropped once more by [`Session::tls_started`].
//!
//! RFC 2595 §4 also says "Once TLS has been started, the client MUST discard cached
//! information about server capabilities and SHOULD re-issue the CAPA command": CAPA
//! then no longer lists STLS and lists what the cleartext policy held back.

use crate::error::ProtoError;
use crate::event::Event;
use crate::response::Response;
use crate::session::{Pending, Phase, Session};
use crate::text::Text;

impl Session {
    /// STLS: `+OK Begin TLS negotiation`, then [`Event::StartTls`].
    pub(crate) fn stls(&mut self) -> Result<Event, ProtoError> {
        let Phase::Authorization { user, .. } = &self.phase else {
            return Err(ProtoError::WrongState {
                verb: "STLS".into(),
                state: self.state(),
            });
        };
        if self.options.tls_active {
            return Err(ProtoError::TlsActive);
        }
        if !self.options.stls {
            return Err(ProtoError::StlsNotOffered);
        }
        if user.is_some() {
            return Err(ProtoError::StlsAfterUser);
        }
        self.input.discard_all();
        self.pending = Some(Pending::Tls);
        self.queued.push_back(Event::StartTls);
        Ok(Event::Reply(Response::ok_text(Text::new("begin-tls"))))
    }

    /// Answers [`Event::StartTls`] once the TLS handshake succeeded. Drops anything
    /// buffered (again), marks the connection as encrypted, forgets any USER, and lifts
    /// the cleartext restriction ([`crate::SessionOptions::plaintext_disallowed`]).
    /// Ignored if no STLS is pending.
    pub fn tls_started(&mut self) {
        if self.pending != Some(Pending::Tls) {
            return;
        }
        self.pending = None;
        self.touch_on_next = true;
        self.input.discard_all();
        self.options.tls_active = true;
        self.options.plaintext_disallowed = false;
        if let Phase::Authorization { user, .. } = &mut self.phase {
            *user = None;
        }
    }

    /// Like [`Session::tls_started`], and replaces the SASL mechanisms on offer: TLS can enable
    /// mechanisms that need it (SCRAM-SHA-256-PLUS binds to the TLS channel, RFC 9266).
    pub fn tls_started_with(&mut self, sasl_mechanisms: Vec<String>) {
        if self.pending != Some(Pending::Tls) {
            return;
        }
        self.options.sasl_mechanisms = sasl_mechanisms;
        self.tls_started();
    }

    /// Whether the connection is encrypted: an implicit-TLS listener
    /// ([`crate::SessionOptions::tls_active`]) or a completed STLS.
    pub fn tls_active(&self) -> bool {
        self.options.tls_active
    }
}
