//! `Idempotency-Key` (SPEC §9): a retried write with the same key (per API key) within the TTL
//! gets the first response again and appends nothing. Entries live in memory, bounded in count
//! (the oldest go first) and in age; a restart forgets them (the `external_id` upsert is the
//! durable way to make creates idempotent). Callers hold the customers lock across
//! check → write → remember, so concurrent retries of one key produce exactly one write.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Longest accepted `Idempotency-Key` value.
pub const MAX_KEY_BYTES: usize = 255;
/// Remembered responses at most.
pub const MAX_ENTRIES: usize = 10_000;
/// How long a response is remembered.
pub const TTL_MS: i64 = 24 * 60 * 60 * 1000;

#[derive(Clone, Debug)]
pub struct Stored {
    pub status: u16,
    pub body: Vec<u8>,
    /// SHA-256 of the request body: a key reused for a different request is a conflict.
    pub request_sha256: [u8; 32],
    pub at_ms: i64,
}

pub enum Lookup {
    Fresh,
    Replay(Stored),
    /// The key was used for a different request body.
    Mismatch,
}

#[derive(Default)]
pub struct IdempotencyTable {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<(String, String), Stored>,
    order: VecDeque<(String, String)>,
}

pub fn request_hash(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

impl IdempotencyTable {
    pub fn lookup(&self, api_key_id: &str, key: &str, body: &[u8], now_ms: i64) -> Lookup {
        let mut inner = self.inner.lock().expect("idempotency lock");
        inner.expire(now_ms);
        match inner
            .entries
            .get(&(api_key_id.to_string(), key.to_string()))
        {
            None => Lookup::Fresh,
            Some(s) if s.request_sha256 == request_hash(body) => Lookup::Replay(s.clone()),
            Some(_) => Lookup::Mismatch,
        }
    }

    pub fn remember(&self, api_key_id: &str, key: &str, stored: Stored) {
        let mut inner = self.inner.lock().expect("idempotency lock");
        let id = (api_key_id.to_string(), key.to_string());
        if inner.entries.insert(id.clone(), stored).is_none() {
            inner.order.push_back(id);
        }
        while inner.order.len() > MAX_ENTRIES {
            if let Some(oldest) = inner.order.pop_front() {
                inner.entries.remove(&oldest);
            }
        }
    }
}

impl Inner {
    fn expire(&mut self, now_ms: i64) {
        while let Some(oldest) = self.order.front() {
            let expired = self
                .entries
                .get(oldest)
                .is_none_or(|s| now_ms - s.at_ms > TTL_MS);
            if !expired {
                break;
            }
            if let Some(id) = self.order.pop_front() {
                self.entries.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(at_ms: i64, body: &[u8]) -> Stored {
        Stored {
            status: 201,
            body: b"{}".to_vec(),
            request_sha256: request_hash(body),
            at_ms,
        }
    }

    #[test]
    fn replays_within_ttl_and_bounds_entries() {
        let t = IdempotencyTable::default();
        assert!(matches!(t.lookup("k", "a", b"x", 0), Lookup::Fresh));
        t.remember("k", "a", stored(0, b"x"));
        assert!(matches!(t.lookup("k", "a", b"x", 10), Lookup::Replay(_)));
        assert!(matches!(t.lookup("k", "a", b"y", 10), Lookup::Mismatch));
        assert!(matches!(t.lookup("other", "a", b"x", 10), Lookup::Fresh));
        assert!(matches!(
            t.lookup("k", "a", b"x", TTL_MS + 1),
            Lookup::Fresh
        ));
        for i in 0..MAX_ENTRIES + 5 {
            t.remember("k", &i.to_string(), stored(TTL_MS + 2, b"x"));
        }
        assert!(matches!(
            t.lookup("k", "0", b"x", TTL_MS + 3),
            Lookup::Fresh
        ));
        assert!(matches!(
            t.lookup("k", &(MAX_ENTRIES + 4).to_string(), b"x", TTL_MS + 3),
            Lookup::Replay(_)
        ));
    }
}
