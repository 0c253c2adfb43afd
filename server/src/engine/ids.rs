//! Opaque random ids with OpenAI's prefixes (`resp_`, `msg_`).

use rand::Rng;

/// `n` random bytes as lowercase hex.
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill(&mut bytes[..]);
    hex::encode(bytes)
}

/// A new response id.
pub fn response_id() -> String {
    format!("resp_{}", random_hex(24))
}

/// A new message item id.
pub fn message_id() -> String {
    format!("msg_{}", random_hex(24))
}
