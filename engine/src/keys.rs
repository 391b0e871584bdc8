//! The project secret: where it comes from and the one keyed hash everything derives from.
//! The secret is read from `DCMFLOW_SECRET` or `--secret-file`, never from a recipe, and is never
//! printed, logged or written (its `Debug` is redacted).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The project secret.
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
    ephemeral: bool,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Why no secret could be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The secret file could not be read.
    #[error("cannot read the secret file {path}: {source}")]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The secret is too short to be a key.
    #[error(
        "the secret from {from} is {len} bytes; use at least 16 (e.g. `openssl rand -hex 32`)"
    )]
    TooShort {
        /// Where it came from.
        from: String,
        /// Its length.
        len: usize,
    },
}

impl Secret {
    /// A secret from bytes (trailing newline and spaces are trimmed). At least 16 bytes.
    pub fn from_bytes(bytes: &[u8], from: &str) -> Result<Secret, SecretError> {
        let mut end = bytes.len();
        while end > 0 && matches!(bytes[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
            end -= 1;
        }
        let bytes = &bytes[..end];
        if bytes.len() < 16 {
            return Err(SecretError::TooShort {
                from: from.to_string(),
                len: bytes.len(),
            });
        }
        Ok(Secret {
            bytes: bytes.to_vec(),
            ephemeral: false,
        })
    }

    /// Read the secret from a file.
    pub fn from_file(path: &std::path::Path) -> Result<Secret, SecretError> {
        let bytes = std::fs::read(path).map_err(|source| SecretError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        Secret::from_bytes(&bytes, &path.display().to_string())
    }

    /// A random secret for one run only: pseudonyms will not match any other run.
    pub fn ephemeral() -> Secret {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let mut bytes = Vec::with_capacity(32);
        for i in 0..4u64 {
            let mut h = RandomState::new().build_hasher();
            h.write_u64(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
            );
            h.write_u32(std::process::id());
            bytes.extend_from_slice(&h.finish().to_le_bytes());
        }
        Secret {
            bytes,
            ephemeral: true,
        }
    }

    /// Whether this secret was made up for this run only.
    pub fn is_ephemeral(&self) -> bool {
        self.ephemeral
    }

    /// The raw key, for stages that derive their own keys from it.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// HMAC-SHA256(secret, domain || 0x00 || message).
    pub fn mac(&self, domain: &str, message: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.bytes)
            .expect("HMAC accepts keys of any length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(message);
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_short_secrets_are_refused() {
        let s = Secret::from_bytes(b"correct horse battery staple\n", "test").unwrap();
        assert!(!format!("{s:?}").contains("horse"));
        assert!(Secret::from_bytes(b"short", "DCMFLOW_SECRET").is_err());
    }

    #[test]
    fn mac_depends_on_key_domain_and_message() {
        let a = Secret::from_bytes(b"0123456789abcdef", "t").unwrap();
        let b = Secret::from_bytes(b"0123456789abcdeg", "t").unwrap();
        assert_eq!(a.mac("uid", b"1.2.3"), a.mac("uid", b"1.2.3"));
        assert_ne!(a.mac("uid", b"1.2.3"), b.mac("uid", b"1.2.3"));
        assert_ne!(a.mac("uid", b"1.2.3"), a.mac("pid", b"1.2.3"));
    }

    #[test]
    fn a_secret_file_is_taken_as_its_bytes_not_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let tail = b"-the-same-long-project-secret-text";
        let mac = |first: u8| {
            let path = dir.path().join(format!("secret-{first:02x}"));
            std::fs::write(&path, [&[first][..], tail].concat()).unwrap();
            Secret::from_file(&path).unwrap().mac("test", b"x")
        };
        assert_ne!(mac(0xFF), mac(0xFE));
    }
}
