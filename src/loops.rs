//! Loop protection (SPEC §10). A two-way sync — a hook H feeds app X, X writes the same customer
//! back via its key K — would otherwise create customers forever. The sender notes the
//! fingerprint of every customer event it sends ([`LoopGuard::note_delivery`]); an inbound
//! customer write via K whose fingerprint matches one sent to H within `loops.window_ms` is an
//! *echo* of the chain (K, H). When a chain's echoes within the window reach
//! `loops.threshold`, the guard reports a detection: the API journals it, suspends H and answers
//! 409 `loop_detected`, and while the detection is listed every write via K matching its
//! fingerprint is refused. Writes that match nothing sent (a one-way flow) are never counted.
//!
//! Everything here is bounded: sent fingerprints (oldest dropped first), chains, detections.
//! The sent window lives in memory (a restart forgets at most `window_ms` of it); detections are
//! journaled and restored at start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use crate::domain::customer::Fingerprint;
use crate::domain::internal::LoopDetected;
use crate::ids;

/// Sent fingerprints remembered at most.
pub const MAX_SENT_ENTRIES: usize = 100_000;
/// Chains (key, hook) tracked at most.
const MAX_CHAINS: usize = 10_000;
/// Detections listed at most (the oldest go first).
pub const MAX_DETECTIONS: usize = 1000;
pub const LOOP_PREFIX: &str = "loop_";

/// What an inbound write is, for loop protection.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Matches nothing sent recently.
    Clean,
    /// An echo, below the threshold: allowed.
    Echo,
    /// Matches a listed detection of this key: refuse.
    Blocked { detection_id: String },
    /// This echo reached the threshold: refuse, journal these, suspend their hooks.
    Detected(Vec<LoopDetected>),
}

struct Sent {
    at_ms: i64,
    hook_id: String,
    fingerprint: Fingerprint,
}

#[derive(Default)]
struct Inner {
    /// Contact key (`e:<email>` / `p:<digits>`) → sends, oldest first.
    by_contact: HashMap<String, VecDeque<Sent>>,
    /// Every entry of `by_contact` in send order, for expiry and the size bound.
    order: VecDeque<(i64, String)>,
    /// (key id, hook id) → times of its echoes within the window.
    chains: HashMap<(String, String), VecDeque<i64>>,
    detections: BTreeMap<String, LoopDetected>,
}

pub struct LoopGuard {
    window_ms: i64,
    threshold: u32,
    inner: Mutex<Inner>,
}

fn contact_keys(fp: &Fingerprint) -> Vec<String> {
    let mut keys = Vec::with_capacity(2);
    if let Some(e) = &fp.email {
        keys.push(format!("e:{e}"));
    }
    if let Some(p) = &fp.phone {
        keys.push(format!("p:{p}"));
    }
    keys
}

impl LoopGuard {
    pub fn new(window_ms: u64, threshold: u32) -> LoopGuard {
        LoopGuard {
            window_ms: window_ms.min(i64::MAX as u64) as i64,
            threshold: threshold.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The sender is sending a customer event with `fingerprint` to `hook_id`.
    pub fn note_delivery(&self, hook_id: &str, fingerprint: Fingerprint, now_ms: i64) {
        let keys = contact_keys(&fingerprint);
        if keys.is_empty() || fingerprint.name.is_empty() {
            // Without a contact nothing can be matched reliably; names alone are not identity.
            return;
        }
        let mut inner = self.inner.lock().expect("loop guard lock");
        inner.expire(now_ms - self.window_ms);
        for key in keys {
            inner
                .by_contact
                .entry(key.clone())
                .or_default()
                .push_back(Sent {
                    at_ms: now_ms,
                    hook_id: hook_id.to_string(),
                    fingerprint: fingerprint.clone(),
                });
            inner.order.push_back((now_ms, key));
        }
        while inner.order.len() > MAX_SENT_ENTRIES {
            inner.pop_oldest();
        }
    }

    /// Judges an inbound write via `key_id` (of `user_id`) of a customer with `fingerprint`.
    pub fn check(
        &self,
        key_id: &str,
        user_id: &str,
        fingerprint: &Fingerprint,
        now_ms: i64,
    ) -> Verdict {
        let mut inner = self.inner.lock().expect("loop guard lock");
        if let Some(d) = inner
            .detections
            .values()
            .find(|d| d.key_id == key_id && d.fingerprint.matches(fingerprint))
        {
            return Verdict::Blocked {
                detection_id: d.id.clone(),
            };
        }
        let since = now_ms - self.window_ms;
        inner.expire(since);
        let mut hooks: Vec<String> = contact_keys(fingerprint)
            .iter()
            .filter_map(|k| inner.by_contact.get(k))
            .flatten()
            .filter(|s| s.at_ms >= since && s.fingerprint.matches(fingerprint))
            .map(|s| s.hook_id.clone())
            .collect();
        hooks.sort();
        hooks.dedup();
        if hooks.is_empty() {
            return Verdict::Clean;
        }
        if inner.chains.len() + hooks.len() > MAX_CHAINS {
            inner
                .chains
                .retain(|_, echoes| echoes.back().is_some_and(|t| *t >= since));
        }
        let mut detected = Vec::new();
        for hook_id in hooks {
            let chain_key = (key_id.to_string(), hook_id.clone());
            if !inner.chains.contains_key(&chain_key) && inner.chains.len() >= MAX_CHAINS {
                tracing::warn!(hook = %hook_id, "loop guard chain table full; echo not counted");
                continue;
            }
            let echoes = inner.chains.entry(chain_key.clone()).or_default();
            while echoes.front().is_some_and(|t| *t < since) {
                echoes.pop_front();
            }
            echoes.push_back(now_ms);
            let count = echoes.len() as u32;
            if count >= self.threshold {
                inner.chains.remove(&chain_key);
                detected.push(LoopDetected {
                    id: ids::new_id(LOOP_PREFIX),
                    key_id: key_id.to_string(),
                    user_id: user_id.to_string(),
                    hook_id,
                    echoes: count,
                    fingerprint: fingerprint.clone(),
                    detected_at_ms: now_ms,
                });
            }
        }
        if detected.is_empty() {
            return Verdict::Echo;
        }
        for d in &detected {
            inner.insert_detection(d.clone());
        }
        Verdict::Detected(detected)
    }

    pub fn detections(&self) -> Vec<LoopDetected> {
        let inner = self.inner.lock().expect("loop guard lock");
        inner.detections.values().cloned().collect()
    }

    pub fn get(&self, id: &str) -> Option<LoopDetected> {
        let inner = self.inner.lock().expect("loop guard lock");
        inner.detections.get(id).cloned()
    }

    /// Clears a detection: its key's matching writes are accepted again, counting anew.
    pub fn clear(&self, id: &str) -> Option<LoopDetected> {
        let mut inner = self.inner.lock().expect("loop guard lock");
        let d = inner.detections.remove(id)?;
        inner.chains.remove(&(d.key_id.clone(), d.hook_id.clone()));
        Some(d)
    }

    /// Start-up: detections journaled and not cleared.
    pub fn restore(&self, detections: Vec<LoopDetected>) {
        let mut inner = self.inner.lock().expect("loop guard lock");
        for d in detections {
            inner.insert_detection(d);
        }
    }
}

impl Inner {
    fn expire(&mut self, since: i64) {
        while self.order.front().is_some_and(|(at, _)| *at < since) {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        let Some((_, key)) = self.order.pop_front() else {
            return;
        };
        if let Some(bucket) = self.by_contact.get_mut(&key) {
            bucket.pop_front();
            if bucket.is_empty() {
                self.by_contact.remove(&key);
            }
        }
    }

    fn insert_detection(&mut self, d: LoopDetected) {
        self.detections.insert(d.id.clone(), d);
        while self.detections.len() > MAX_DETECTIONS {
            self.detections.pop_first();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(name: &str, email: &str) -> Fingerprint {
        Fingerprint {
            email: Some(email.to_string()),
            phone: None,
            name: name.to_string(),
        }
    }

    #[test]
    fn echoes_of_one_chain_reach_the_threshold_then_block() {
        let g = LoopGuard::new(60_000, 3);
        let ann = fp("ann lee", "ann@x.io");
        g.note_delivery("hook_1", ann.clone(), 0);
        assert_eq!(g.check("key_k", "usr_u", &ann, 10), Verdict::Echo);
        assert_eq!(g.check("key_k", "usr_u", &ann, 20), Verdict::Echo);
        let Verdict::Detected(found) = g.check("key_k", "usr_u", &ann, 30) else {
            panic!("the third echo is a loop");
        };
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hook_id, "hook_1");
        assert!(matches!(
            g.check("key_k", "usr_u", &ann, 40),
            Verdict::Blocked { .. }
        ));
        // Another key writing the same person is its own chain; nobody else is blocked.
        assert_eq!(g.check("key_other", "usr_o", &ann, 40), Verdict::Echo);
        assert!(g.clear(&found[0].id).is_some());
        assert_eq!(g.check("key_k", "usr_u", &ann, 50), Verdict::Echo);
    }

    #[test]
    fn distinct_customers_and_old_sends_are_not_echoes() {
        let g = LoopGuard::new(1_000, 2);
        for i in 0..100 {
            g.note_delivery("hook_1", fp("a b", &format!("{i}@x.io")), i);
            assert_eq!(
                g.check("key_k", "usr_u", &fp("c d", &format!("{i}@y.io")), i),
                Verdict::Clean
            );
        }
        g.note_delivery("hook_1", fp("ann lee", "ann@x.io"), 0);
        assert_eq!(
            g.check("key_k", "usr_u", &fp("ann lee", "ann@x.io"), 5_000),
            Verdict::Clean,
            "outside the window"
        );
    }

    #[test]
    fn the_sent_window_is_bounded() {
        let g = LoopGuard::new(i64::MAX as u64, 3);
        for i in 0..(MAX_SENT_ENTRIES + 10) {
            g.note_delivery("h", fp("a b", &format!("{i}@x.io")), 0);
        }
        let inner = g.inner.lock().unwrap();
        assert_eq!(inner.order.len(), MAX_SENT_ENTRIES);
        assert!(!inner.by_contact.contains_key("e:0@x.io"));
    }
}
