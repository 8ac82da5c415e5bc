//! Per-key rate limits: a token bucket per key, refilled continuously, sized to the per-minute
//! limit (so a burst of a full minute's allowance is accepted, then the steady rate).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets kept at most; past it, full (idle) buckets are dropped first.
const MAX_BUCKETS: usize = 100_000;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// Takes one token for `key_id` under `per_minute`; `Err(retry_after_secs)` when empty.
    pub fn check(&self, key_id: &str, per_minute: u32) -> Result<(), u64> {
        self.check_at(key_id, per_minute, Instant::now())
    }

    fn check_at(&self, key_id: &str, per_minute: u32, now: Instant) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let rate_per_sec = capacity / 60.0;
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(key_id) {
            buckets.retain(|_, b| {
                let refilled =
                    b.tokens + now.duration_since(b.updated).as_secs_f64() * rate_per_sec;
                refilled < capacity
            });
        }
        let bucket = buckets.entry(key_id.to_string()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate_per_sec).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_secs = ((1.0 - bucket.tokens) / rate_per_sec).ceil() as u64;
            Err(wait_secs.max(1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_the_limit_then_refuses_then_refills() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..60 {
            assert!(limiter.check_at("k", 60, t0).is_ok());
        }
        assert_eq!(limiter.check_at("k", 60, t0), Err(1));
        // Another key has its own bucket.
        assert!(limiter.check_at("other", 60, t0).is_ok());
        // One token per second at 60/min.
        assert!(limiter
            .check_at("k", 60, t0 + Duration::from_millis(1000))
            .is_ok());
        assert!(limiter
            .check_at("k", 60, t0 + Duration::from_millis(1000))
            .is_err());
    }

    #[test]
    fn retry_after_reflects_the_refill_rate() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        assert!(limiter.check_at("k", 2, t0).is_ok());
        assert!(limiter.check_at("k", 2, t0).is_ok());
        // 2 per minute: the next token comes in 30 s.
        assert_eq!(limiter.check_at("k", 2, t0), Err(30));
    }
}
