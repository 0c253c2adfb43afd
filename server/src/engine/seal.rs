//! Sealing of compaction summaries: what `POST /v1/responses/compact`
//! hands back as `encrypted_content` is XChaCha20-Poly1305 under a server
//! key, bound to the organization, so clients cannot read, alter or move
//! it between organizations, and every replica sharing the key opens it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Marks the format of a sealed item, so a future format can coexist.
const VERSION: &str = "mx1.";
const NONCE_LEN: usize = 24;

/// What a compaction item carries inside its seal.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Compacted {
    /// The model's summary of the compacted conversation.
    pub summary: String,
}

/// Seals and opens compaction items with one 256-bit key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer([redacted])")
    }
}

/// A key that is not 32 bytes of base64 or hex.
#[derive(Debug, thiserror::Error)]
#[error(
    "the compaction key must be 32 bytes as base64 or 64 hex digits \
     (for example the output of `openssl rand -base64 32`)"
)]
pub struct BadKey;

impl Sealer {
    /// A sealer over a key given as text: 32 bytes in base64 (standard or
    /// URL-safe, padded or not) or as 64 hex digits.
    pub fn from_text(key: &str) -> Result<Self, BadKey> {
        let key = key.trim();
        let bytes =
            if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(key).map_err(|_| BadKey)?
            } else {
                let unpadded = key.trim_end_matches('=');
                URL_SAFE_NO_PAD
                    .decode(unpadded.replace('+', "-").replace('/', "_"))
                    .map_err(|_| BadKey)?
            };
        let key: [u8; 32] = bytes.try_into().map_err(|_| BadKey)?;
        Ok(Sealer { cipher: XChaCha20Poly1305::new(&key.into()) })
    }

    /// A new random key as text (base64url), for the store to keep.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        URL_SAFE_NO_PAD.encode(key)
    }

    /// `content` sealed for `org`.
    pub fn seal(&self, org: &str, content: &Compacted) -> String {
        let plain = serde_json::to_vec(content).unwrap_or_default();
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload { msg: &plain, aad: org.as_bytes() },
            )
            // Encryption fails only for messages beyond 256 GiB.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(out))
    }

    /// The content of an item sealed for `org`; None when it was sealed
    /// for another organization or by another key, altered, or is not a
    /// sealed item at all.
    pub fn open(&self, org: &str, sealed: &str) -> Option<Compacted> {
        let raw = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(VERSION)?).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).ok()?;
        let plain = self
            .cipher
            .decrypt(&nonce, Payload { msg: body, aad: org.as_bytes() })
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::from_text(&Sealer::generate_key()).unwrap()
    }

    fn content() -> Compacted {
        Compacted { summary: "launch on Tuesday".into() }
    }

    #[test]
    fn sealed_content_opens_for_its_org_only() {
        let s = sealer();
        let sealed = s.seal("org_a", &content());
        assert_eq!(s.open("org_a", &sealed), Some(content()));
        assert_eq!(s.open("org_b", &sealed), None);
        assert!(!sealed.contains("Tuesday"));
    }

    #[test]
    fn altered_or_foreign_items_do_not_open() {
        let s = sealer();
        let sealed = s.seal("org_a", &content());
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert_eq!(s.open("org_a", &altered), None);
        assert_eq!(sealer().open("org_a", &sealed), None);
        assert_eq!(s.open("org_a", "not sealed"), None);
        assert_eq!(s.open("org_a", "mx1."), None);
        assert_eq!(s.open("org_a", "mx1.!!!"), None);
    }

    #[test]
    fn keys_are_read_as_base64_or_hex() {
        let hex_key = "00".repeat(32);
        let b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let a = Sealer::from_text(&hex_key).unwrap();
        let b = Sealer::from_text(b64).unwrap();
        assert_eq!(b.open("o", &a.seal("o", &content())), Some(content()));
        assert!(Sealer::from_text("short").is_err());
        assert!(Sealer::from_text(&"00".repeat(16)).is_err());
    }
}
