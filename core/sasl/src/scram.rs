//! The server side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677, RFC 9266).
//!
//! ```text
//! C: client-first  = gs2-header n=user,r=<client nonce>
//! S: server-first  = r=<client nonce><server nonce>,s=<salt>,i=<iterations>
//! C: client-final  = c=base64(gs2-header [+ cb data]),r=<both nonces>,p=<ClientProof>
//! S: server-final  = v=<ServerSignature>
//! ```
//!
//! Each state is a struct consumed by value, so a stale state cannot be reused. Channel-binding rules, RFC 5802 §6:
//! "If the flag is set to "y" and the server supports channel binding, the server MUST fail authentication" (a
//! client saying `y` believed the server offers no `-PLUS`, so someone removed it from CAPA), and "If the channel
//! binding flag is "p" and the server does not support the indicated channel binding type, then the server MUST fail
//! authentication." The one type we offer is RFC 9266's `tls-exporter`: 32 bytes exported with the label
//! `EXPORTER-Channel-Binding` and an empty context, which the TLS layer computes and passes in.
//! The proof is verified by recomputing `H(ClientProof XOR ClientSignature)` and comparing it with StoredKey in
//! constant time (RFC 5802 §3: "The server authenticates the client by computing the ClientSignature, exclusive-ORing
//! that with the ClientProof to recover the ClientKey and verifying the correctness of the ClientKey by applying the
//! hash function and comparing the result to the StoredKey.").

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use subtle::ConstantTimeEq;

use crate::credentials::{hmac, sha256};
use crate::exchange::ChannelBinding;
use crate::plain::normalize_authzid;
use crate::scram_msg::{CbFlag, parse_client_final, parse_client_first};
use crate::{SaslError, ScramCredentials};

/// Random bytes in the server nonce: 24, base64-encoded to 32 printable characters (RFC 5802 §5.1 asks for
/// "a sequence of random printable ASCII characters excluding ','"; 192 bits cannot repeat in practice).
const SERVER_NONCE_BYTES: usize = 24;

/// Waiting for client-first-message.
#[derive(Debug)]
pub(crate) struct Start {
    /// The client chose the `-PLUS` mechanism.
    pub(crate) plus: bool,
    /// The connection's channel binding, if any; its presence means the server advertises `-PLUS`.
    pub(crate) channel_binding: Option<ChannelBinding>,
    /// A fixed server nonce for RFC test vectors; random when `None`.
    pub(crate) server_nonce: Option<String>,
}

/// client-first-message accepted; waiting for the backend's credentials.
#[derive(Debug)]
pub(crate) struct AwaitCredentials {
    pub(crate) authzid: Option<String>,
    pub(crate) user: String,
    cbind_input: Vec<u8>,
    client_first_bare: String,
    nonce: String,
}

/// server-first-message sent; waiting for client-final-message.
#[derive(Debug)]
pub(crate) struct AwaitFinal {
    authzid: Option<String>,
    user: String,
    cbind_input: Vec<u8>,
    /// `client-first-message-bare "," server-first-message`: the first two thirds of AuthMessage.
    auth_prefix: String,
    nonce: String,
    credentials: ScramCredentials,
    /// The user is unknown: the proof must fail however it looks.
    fake: bool,
}

/// A verified client.
#[derive(Debug)]
pub(crate) struct Verified {
    pub(crate) authzid: Option<String>,
    pub(crate) user: String,
    pub(crate) server_final: Vec<u8>,
}

impl Start {
    /// Checks that this exchange can run at all: `-PLUS` needs channel-binding data from the TLS layer.
    pub(crate) fn check_available(&self) -> Result<(), SaslError> {
        if self.plus && self.channel_binding.is_none() {
            return Err(SaslError::ChannelBindingUnavailable);
        }
        Ok(())
    }

    /// Accepts client-first-message.
    pub(crate) fn client_first(self, message: &[u8]) -> Result<AwaitCredentials, SaslError> {
        self.check_available()?;
        let first = parse_client_first(message)?;
        let cbind_data: &[u8] = match (&first.flag, self.plus, &self.channel_binding) {
            (CbFlag::None | CbFlag::ClientOnly, true, _) => {
                return Err(SaslError::ChannelBindingRequired);
            }
            (CbFlag::ClientOnly, false, Some(_)) => return Err(SaslError::ChannelBindingDowngrade),
            (CbFlag::None | CbFlag::ClientOnly, false, _) => &[],
            (CbFlag::Uses(_), false, _) => return Err(SaslError::ChannelBindingNotSupported),
            (CbFlag::Uses(name), true, Some(binding)) if *name == binding.kind => &binding.data,
            (CbFlag::Uses(name), true, _) => {
                return Err(SaslError::ChannelBindingTypeUnsupported(name.clone()));
            }
        };
        let mut cbind_input = first.gs2_header.into_bytes();
        cbind_input.extend_from_slice(cbind_data);
        let server_nonce = self.server_nonce.unwrap_or_else(|| {
            let mut random = [0u8; SERVER_NONCE_BYTES];
            rand::rng().fill_bytes(&mut random);
            STANDARD.encode(random)
        });
        Ok(AwaitCredentials {
            authzid: first
                .authzid
                .and_then(|authzid| normalize_authzid(&authzid, &first.user)),
            user: first.user,
            cbind_input,
            client_first_bare: first.bare,
            nonce: first.nonce + &server_nonce,
        })
    }
}

impl AwaitCredentials {
    /// Takes the user's credentials (`None`: unknown user, continue with fake ones) and returns server-first.
    pub(crate) fn credentials(
        self,
        credentials: Option<ScramCredentials>,
    ) -> (Vec<u8>, AwaitFinal) {
        let fake = credentials.is_none();
        let credentials = credentials.unwrap_or_else(|| ScramCredentials::fake(&self.user));
        let server_first = format!(
            "r={},s={},i={}",
            self.nonce,
            STANDARD.encode(&credentials.salt),
            credentials.iterations
        );
        let auth_prefix = format!("{},{}", self.client_first_bare, server_first);
        let next = AwaitFinal {
            authzid: self.authzid,
            user: self.user,
            cbind_input: self.cbind_input,
            auth_prefix,
            nonce: self.nonce,
            credentials,
            fake,
        };
        (server_first.into_bytes(), next)
    }
}

impl AwaitFinal {
    /// Accepts client-final-message and verifies the proof.
    pub(crate) fn client_final(self, message: &[u8]) -> Result<Verified, SaslError> {
        let last = parse_client_final(message)?;
        if !bool::from(last.channel_binding.ct_eq(&self.cbind_input)) {
            return Err(SaslError::ChannelBindingMismatch);
        }
        if last.nonce != self.nonce {
            return Err(SaslError::NonceMismatch);
        }
        let proof: [u8; 32] = last
            .proof
            .try_into()
            .map_err(|_| SaslError::malformed("SCRAM", "proof p= is not 32 bytes (SHA-256)"))?;
        let auth_message = format!("{},{}", self.auth_prefix, last.without_proof);
        let client_signature = hmac(&self.credentials.stored_key, auth_message.as_bytes());
        let mut client_key = [0u8; 32];
        for (key, (p, s)) in client_key
            .iter_mut()
            .zip(proof.iter().zip(client_signature.iter()))
        {
            *key = p ^ s;
        }
        // The same work is done for a fake user, so timing does not tell unknown users from wrong passwords.
        let matches =
            sha256(&client_key).ct_eq(&self.credentials.stored_key) & (!self.fake as u8).ct_eq(&1);
        if !bool::from(matches) {
            return Err(SaslError::ProofMismatch);
        }
        let server_signature = hmac(&self.credentials.server_key, auth_message.as_bytes());
        Ok(Verified {
            authzid: self.authzid,
            user: self.user,
            server_final: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        })
    }
}
