//! TLS with rustls: loading the certificate and key from PEM files (or making a self-signed pair for the
//! quickstart), and what a session needs to know about its TLS connection afterwards.
//!
//! rustls's defaults are used unchanged: TLS 1.2 and 1.3 only, its cipher suites, no client
//! certificates. The `ring` provider avoids a C toolchain dependency beyond `cc`.

use crate::config::TlsFiles;
use futures_rustls::rustls::{self, ServerConfig, ServerConnection};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Why TLS could not be set up. One line, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the pair (for instance, the key does not match the certificate).
    #[error("certificate {cert} and key {key} do not work together: {reason}")]
    Mismatch {
        /// Certificate file.
        cert: String,
        /// Key file.
        key: String,
        /// rustls's reason.
        reason: String,
    },
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Builds the server config from the files, generating a self-signed pair first when asked to and the
/// files do not exist.
pub fn load(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    if files.generate_self_signed && !files.cert.exists() && !files.key.exists() {
        generate(files)?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| file_error(&files.cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(&files.cert, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(file_error(&files.cert, "no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| file_error(&files.key, format!("cannot read a private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| TlsError::Mismatch {
            cert: files.cert.display().to_string(),
            key: files.key.display().to_string(),
            reason: e.to_string(),
        })?;
    Ok(Arc::new(config))
}

/// Writes a self-signed certificate for `localhost`, `127.0.0.1` and `::1`, and its key (mode 0600).
fn generate(files: &TlsFiles) -> Result<(), TlsError> {
    let names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| file_error(&files.cert, format!("cannot generate a certificate: {e}")))?;
    for (path, text, mode) in [
        (&files.cert, made.cert.pem(), 0o644),
        (&files.key, made.signing_key.serialize_pem(), 0o600),
    ] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        }
        write_new(path, text.as_bytes(), mode).map_err(|e| file_error(path, e))?;
    }
    log::warn!(
        "generated a self-signed certificate {} (clients must be told to trust it; use a real one in production)",
        files.cert.display()
    );
    Ok(())
}

fn write_new(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// What a session knows about its TLS connection.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// For example `TLSv1_3`.
    pub protocol: String,
    /// For example `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// RFC 9266 `tls-exporter` channel binding (TLS 1.3 only; RFC 9266 §3 forbids it on TLS 1.2
    /// without extended master secret, so it is not offered there).
    pub exporter: Option<Vec<u8>>,
}

impl TlsInfo {
    /// A connection whose TLS a proxy in front terminated (PROXY protocol v2 said so).
    pub fn terminated_by_proxy() -> TlsInfo {
        TlsInfo {
            protocol: "proxy".to_owned(),
            cipher: "terminated-by-proxy".to_owned(),
            exporter: None,
        }
    }

    /// Reads the negotiated parameters from a finished handshake.
    pub fn from_connection(conn: &ServerConnection) -> TlsInfo {
        let protocol = conn
            .protocol_version()
            .map_or_else(|| "unknown".to_owned(), |v| format!("{v:?}"));
        let cipher = conn
            .negotiated_cipher_suite()
            .map_or_else(|| "unknown".to_owned(), |c| format!("{:?}", c.suite()));
        let exporter = (conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3))
            .then(|| {
                // RFC 9266 §2: label "EXPORTER-Channel-Binding", no context, 32 bytes.
                conn.export_keying_material([0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .ok()
                    .map(|k| k.to_vec())
            })
            .flatten();
        TlsInfo {
            protocol,
            cipher,
            exporter,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            generate_self_signed: true,
        }
    }

    #[test]
    fn self_signed_pair_is_generated_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        load(&f).unwrap();
        let first = std::fs::read(&f.cert).unwrap();
        load(&f).unwrap();
        assert_eq!(
            std::fs::read(&f.cert).unwrap(),
            first,
            "an existing pair is kept"
        );
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&f.key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn missing_files_and_mismatched_keys_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = files(dir.path());
        f.generate_self_signed = false;
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("cert.pem") && e.contains("cannot read"), "{e}");

        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        load(&files(a.path())).unwrap();
        load(&files(b.path())).unwrap();
        let mixed = TlsFiles {
            cert: a.path().join("cert.pem"),
            key: b.path().join("key.pem"),
            generate_self_signed: false,
        };
        let e = load(&mixed).unwrap_err().to_string();
        assert!(e.contains("do not work together"), "{e}");

        std::fs::write(a.path().join("garbage.pem"), "not pem").unwrap();
        let bad = TlsFiles {
            key: a.path().join("garbage.pem"),
            ..files(a.path())
        };
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("garbage.pem"), "{e}");
    }
}
