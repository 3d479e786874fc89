//! A minimal SCRAM-SHA-256 client written from RFC 5802 §3, independent of the server code, for round trips.

#![allow(dead_code, clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use poppet_sasl::{Exchange, SaslError, ScramCredentials, Step};
use sha2::{Digest, Sha256};

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// The client's half of a SCRAM exchange.
pub struct Client {
    pub gs2_header: String,
    pub cb_data: Vec<u8>,
    pub bare: String,
    pub password: String,
    pub server_signature: Option<String>,
}

impl Client {
    pub fn new(
        gs2_header: &str,
        cb_data: &[u8],
        user: &str,
        password: &str,
        nonce: &str,
    ) -> Client {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        Client {
            gs2_header: gs2_header.to_owned(),
            cb_data: cb_data.to_vec(),
            bare: format!("n={user},r={nonce}"),
            password: password.to_owned(),
            server_signature: None,
        }
    }

    pub fn first(&self) -> Vec<u8> {
        format!("{}{}", self.gs2_header, self.bare).into_bytes()
    }

    /// Computes client-final from server-first and remembers the expected server signature.
    pub fn last(&mut self, server_first: &[u8]) -> Vec<u8> {
        let server_first = std::str::from_utf8(server_first).unwrap();
        let mut fields = server_first.split(',');
        let nonce = fields.next().unwrap().strip_prefix("r=").unwrap();
        let salt = STANDARD
            .decode(fields.next().unwrap().strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: u32 = fields
            .next()
            .unwrap()
            .strip_prefix("i=")
            .unwrap()
            .parse()
            .unwrap();
        let password = stringprep::saslprep(&self.password).unwrap();
        let salted =
            pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), &salt, iterations);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key);
        let mut cbind = self.gs2_header.clone().into_bytes();
        cbind.extend_from_slice(&self.cb_data);
        let without_proof = format!("c={},r={nonce}", STANDARD.encode(&cbind));
        let auth_message = format!("{},{server_first},{without_proof}", self.bare);
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac(&salted, b"Server Key");
        self.server_signature = Some(format!(
            "v={}",
            STANDARD.encode(hmac(&server_key, auth_message.as_bytes()))
        ));
        format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes()
    }
}

/// Runs a whole SCRAM exchange; `creds` answers the credential lookup. Returns the final step or the error.
pub fn run(
    exchange: &mut Exchange,
    client: &mut Client,
    creds: Option<ScramCredentials>,
) -> Result<Step, SaslError> {
    match exchange.step(Some(&client.first()))? {
        Step::NeedScramCredentials { .. } => {}
        other => panic!("expected NeedScramCredentials, got {other:?}"),
    }
    let Step::Challenge(server_first) = exchange.provide_credentials(creds)? else {
        panic!("expected server-first")
    };
    let step = exchange.step(Some(&client.last(&server_first)))?;
    if let Step::Success { server_final, .. } = &step {
        let server_final = String::from_utf8(server_final.clone().unwrap()).unwrap();
        assert_eq!(
            Some(server_final),
            client.server_signature,
            "server signature"
        );
    }
    Ok(step)
}
