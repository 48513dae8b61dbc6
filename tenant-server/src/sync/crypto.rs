//! Encryption at rest for sync secrets (provider tokens, webhook secrets).
//!
//! AES-256-GCM (ring) with a random 96-bit nonce per value and the owning
//! board and purpose as associated data, so a ciphertext copied into
//! another row or column does not decrypt. The key comes from
//! `TASKHARBOR_SECRET_KEY` (hashed to 32 bytes) or from `secret.key` in
//! the data directory, created with mode 0600 on first start.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The key file inside the data directory.
pub const KEY_FILE: &str = "secret.key";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the secret key file {path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the secret key file {0} is not 64 hex characters")]
    Malformed(String),
}

#[derive(Debug, thiserror::Error)]
#[error("a stored secret cannot be decrypted (wrong TASKHARBOR_SECRET_KEY, or a damaged value)")]
pub struct DecryptError;

/// Seals and opens secrets; never prints the key.
pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    fn from_bytes(bytes: &[u8; 32]) -> Self {
        // A 32-byte key always fits AES-256.
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).unwrap_or_else(|_| unreachable!());
        Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        }
    }

    /// The configured key, or the data dir's key file (created if missing).
    pub fn load(configured: Option<&SecretString>, data_dir: &Path) -> Result<Self, KeyError> {
        if let Some(secret) = configured {
            let digest: [u8; 32] = Sha256::digest(secret.expose_secret().as_bytes()).into();
            return Ok(Self::from_bytes(&digest));
        }
        let path = data_dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(data_dir).map_err(io)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| KeyError::Malformed(path.display().to_string()))?;
                Ok(Self::from_bytes(&bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                SystemRandom::new()
                    .fill(&mut bytes)
                    .map_err(|_| io(std::io::Error::other("no system randomness")))?;
                write_private(&path, hex::encode(bytes).as_bytes()).map_err(io)?;
                // Another process may have won the race: use what is on disk.
                Self::load(None, data_dir)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// `base64(nonce || ciphertext || tag)`, bound to `context`.
    pub fn seal(&self, context: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        if self.rng.fill(&mut nonce).is_err() {
            // Without randomness a nonce could repeat: refuse to produce output
            // that would silently weaken every other value.
            return String::new();
        }
        let mut in_out = plaintext.as_bytes().to_vec();
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut in_out,
            )
            .is_err()
        {
            return String::new();
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&in_out);
        STANDARD.encode(out)
    }

    pub fn open(&self, context: &str, sealed: &str) -> Result<SecretString, DecryptError> {
        let bytes = STANDARD.decode(sealed).map_err(|_| DecryptError)?;
        if bytes.len() < NONCE_LEN {
            return Err(DecryptError);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| DecryptError)?;
        let mut in_out = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| DecryptError)?;
        String::from_utf8(plain.to_vec())
            .map(SecretString::from)
            .map_err(|_| DecryptError)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(mut file) => {
            file.write_all(contents)?;
            file.sync_all()
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_in_their_own_context() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let keys = SecretBox::load(None, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let sealed = keys.seal("token:1", "ghp_secret");
        assert!(!sealed.contains("ghp_secret"));
        let opened = keys
            .open("token:1", &sealed)
            .map(|s| s.expose_secret().to_owned());
        assert_eq!(opened.ok().as_deref(), Some("ghp_secret"));
        assert!(keys.open("token:2", &sealed).is_err());
        // The same key file is read back on the next start.
        let again = SecretBox::load(None, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(again.open("token:1", &sealed).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE))
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_configured_key_differs_from_the_file_key() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = SecretBox::load(None, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let env = SecretBox::load(Some(&SecretString::from("k".to_owned())), dir.path())
            .unwrap_or_else(|e| panic!("{e}"));
        let sealed = env.seal("c", "v");
        assert!(file.open("c", &sealed).is_err());
        assert!(env.open("c", &sealed).is_ok());
    }
}
