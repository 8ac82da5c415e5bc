//! Identifiers and API-key secrets: prefix + ULID ids, `ca_` + 40 base62 key secrets, and the
//! hash under which a key is stored (the secret itself is never written anywhere).

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

pub const EVENT_PREFIX: &str = "evt_";
pub const USER_PREFIX: &str = "usr_";
pub const KEY_PREFIX: &str = "key_";

/// Length of the listed key prefix (`ca_` plus nine characters).
pub const KEY_LISTED_PREFIX_LEN: usize = 12;
const KEY_SECRET_RANDOM_LEN: usize = 40;

/// A new id: `prefix` followed by a ULID (time-ordered, 128 bits).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", ulid::Ulid::new())
}

/// A freshly generated API key secret and its listed prefix.
pub struct NewKeySecret {
    pub secret: String,
    pub prefix: String,
    pub hash: String,
}

/// Generates `ca_` + 40 base62 characters (about 238 bits of entropy) from the OS RNG.
pub fn new_key_secret() -> NewKeySecret {
    let random = Alphanumeric.sample_string(&mut rand::rng(), KEY_SECRET_RANDOM_LEN);
    let secret = format!("ca_{random}");
    let prefix = secret[..KEY_LISTED_PREFIX_LEN].to_string();
    let hash = hash_key_secret(&secret);
    NewKeySecret {
        secret,
        prefix,
        hash,
    }
}

/// The stored form of a key: hex SHA-256. Keys are long random strings, so a fast hash is
/// enough (no password stretching needed) and lookups stay O(1) per request.
pub fn hash_key_secret(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Ids a client may choose (event ids, user ids): 1..=128 of `[A-Za-z0-9_.:-]`.
pub fn is_valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_secret_shape() {
        let k = new_key_secret();
        assert_eq!(k.secret.len(), 43);
        assert!(k.secret.starts_with("ca_"));
        assert!(k.secret[3..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(k.prefix, &k.secret[..12]);
        assert_eq!(k.hash, hash_key_secret(&k.secret));
        assert_ne!(new_key_secret().secret, k.secret);
    }

    #[test]
    fn ids_have_prefix_and_ulid() {
        let id = new_id(EVENT_PREFIX);
        assert!(id.starts_with("evt_"));
        assert_eq!(id.len(), 4 + 26);
    }

    #[test]
    fn client_id_charset() {
        assert!(is_valid_client_id("evt_01J-abc.9:x"));
        assert!(!is_valid_client_id(""));
        assert!(!is_valid_client_id("has space"));
        assert!(!is_valid_client_id(&"a".repeat(129)));
    }
}
