//! The retry policy (SPEC §5): what a receiver's answer means, and how long to wait before the
//! next attempt — the configured schedule with ±10% jitter, never less than a `Retry-After`.

use std::time::Duration;

/// Longest `Retry-After` honoured; a receiver cannot park a delivery for longer than this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Relative jitter applied to every scheduled delay.
const JITTER: f64 = 0.10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: delivered.
    Success,
    /// 410: the receiver is gone for good; the hook is disabled.
    Gone,
    /// Anything else (3xx included: redirects are never followed), with a floor on the wait
    /// when the receiver sent `Retry-After` on a 429 or 503.
    Retry { retry_after: Option<Duration> },
}

/// Classifies an HTTP status and its `Retry-After` header.
pub fn classify(status: u16, retry_after: Option<&str>, now_unix_secs: i64) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        410 => Verdict::Gone,
        429 | 503 => Verdict::Retry {
            retry_after: retry_after.and_then(|v| parse_retry_after(v, now_unix_secs)),
        },
        _ => Verdict::Retry { retry_after: None },
    }
}

/// `Retry-After` as delta-seconds or an HTTP date; capped.
pub fn parse_retry_after(value: &str, now_unix_secs: i64) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let when = httpdate::parse_http_date(value).ok()?;
        let when_secs = when.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
        Duration::from_secs(when_secs.saturating_sub(now_unix_secs).max(0) as u64)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Delay before attempt n+1 (index n), the first entry being the first attempt's delay.
    schedule_ms: Vec<u64>,
}

impl RetryPolicy {
    pub fn new(schedule_ms: Vec<u64>) -> RetryPolicy {
        assert!(
            !schedule_ms.is_empty(),
            "a retry schedule has at least one attempt"
        );
        RetryPolicy { schedule_ms }
    }

    /// Attempts a delivery gets in all.
    pub fn max_attempts(&self) -> u32 {
        self.schedule_ms.len() as u32
    }

    /// The wait before attempt `attempt` (1-based, ≥ 2), jittered, at least `retry_after`.
    pub fn delay_before(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let index = (attempt.saturating_sub(1) as usize).min(self.schedule_ms.len() - 1);
        let base_ms = self.schedule_ms[index] as f64;
        let factor = 1.0 + rand::random_range(-JITTER..=JITTER);
        let scheduled = Duration::from_millis((base_ms * factor).round() as u64);
        scheduled.max(retry_after.unwrap_or(Duration::ZERO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert_eq!(classify(200, None, 0), Verdict::Success);
        assert_eq!(classify(204, None, 0), Verdict::Success);
        assert_eq!(classify(410, None, 0), Verdict::Gone);
        assert_eq!(classify(301, None, 0), Verdict::Retry { retry_after: None });
        assert_eq!(
            classify(500, Some("30"), 0),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(
            classify(429, Some("30"), 0),
            Verdict::Retry {
                retry_after: Some(Duration::from_secs(30))
            }
        );
        assert_eq!(
            classify(503, Some("Thu, 01 Jan 1970 00:01:40 GMT"), 40),
            Verdict::Retry {
                retry_after: Some(Duration::from_secs(60))
            }
        );
        assert_eq!(
            classify(429, Some("soon"), 0),
            Verdict::Retry { retry_after: None }
        );
        assert_eq!(parse_retry_after("99999999", 0), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn schedule_with_jitter_and_floor() {
        let policy = RetryPolicy::new(vec![0, 1000, 10_000]);
        assert_eq!(policy.max_attempts(), 3);
        for _ in 0..100 {
            let d = policy.delay_before(2, None).as_millis();
            assert!((900..=1100).contains(&d), "{d}");
            let d = policy.delay_before(3, None).as_millis();
            assert!((9000..=11_000).contains(&d), "{d}");
        }
        assert_eq!(policy.delay_before(1, None), Duration::ZERO);
        assert!(policy.delay_before(2, Some(Duration::from_secs(60))) >= Duration::from_secs(60));
        // Past the schedule's end, the last delay repeats.
        assert!(policy.delay_before(9, None) >= Duration::from_millis(9000));
    }
}
