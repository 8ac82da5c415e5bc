//! The delivery latency histogram behind `/metrics`: every HTTP attempt's time from sending the
//! request to its answer (or its error), in fixed buckets. Lock-free, so lanes never contend on
//! it; counts since the process started, as Prometheus expects of a histogram.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets in milliseconds (`+Inf` is implicit). They span a local receiver
/// (a few ms) to the default 15 s delivery timeout.
pub const BUCKET_BOUNDS_MS: [u64; 12] =
    [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 15000];

/// A cumulative-on-read histogram of attempt latencies.
#[derive(Default)]
pub struct LatencyHistogram {
    /// Non-cumulative counts: `buckets[i]` holds observations in `(bound[i-1], bound[i]]`, the
    /// last one those above every bound.
    buckets: [AtomicU64; BUCKET_BOUNDS_MS.len() + 1],
    sum_ms: AtomicU64,
}

/// A consistent-enough copy for one scrape: cumulative counts per bound, then `+Inf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencySnapshot {
    /// `cumulative[i]` = observations ≤ `BUCKET_BOUNDS_MS[i]`; the last entry is `+Inf`.
    pub cumulative: Vec<u64>,
    pub sum_ms: u64,
    pub count: u64,
}

impl LatencyHistogram {
    pub fn observe_ms(&self, latency_ms: u64) {
        let index = BUCKET_BOUNDS_MS
            .iter()
            .position(|&bound| latency_ms <= bound)
            .unwrap_or(BUCKET_BOUNDS_MS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(latency_ms, Ordering::Relaxed);
    }

    /// The `+Inf` bucket is derived from the buckets (not from `count`), so a scrape racing an
    /// observation still sees cumulative counts that never decrease along the bounds.
    pub fn snapshot(&self) -> LatencySnapshot {
        let mut running = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|b| {
                running += b.load(Ordering::Relaxed);
                running
            })
            .collect();
        LatencySnapshot {
            cumulative,
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
            count: running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = LatencyHistogram::default();
        for ms in [0, 5, 6, 15000, 15001, 60000] {
            h.observe_ms(ms);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), BUCKET_BOUNDS_MS.len() + 1);
        assert_eq!(s.cumulative[0], 2, "0 and 5 are ≤ 5 ms");
        assert_eq!(s.cumulative[1], 3, "6 is ≤ 10 ms");
        assert_eq!(
            s.cumulative[BUCKET_BOUNDS_MS.len() - 1],
            4,
            "15000 is ≤ 15 s"
        );
        assert_eq!(*s.cumulative.last().unwrap(), 6);
        assert_eq!(s.count, 6);
        assert_eq!(s.sum_ms, 5 + 6 + 15000 + 15001 + 60000);
    }
}
