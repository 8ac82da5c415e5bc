//! Code shared by the bench binaries (`ingest`, `delivery`, `replay`): each includes this module
//! with `mod support;`. Every bench uses only part of it, hence the `dead_code` allowance.
//!
//! - [`daemon`]: starting the real daemon binary on 127.0.0.1 with a temp data dir, stopping it.
//! - [`http`]: hyper HTTP/1.1 client connections, requests to the daemon's API, hook helpers.
//! - [`receiver`]: an in-process hyper receiver that records every delivery it answers.
//! - [`measure`]: `/proc` sampling (VmRSS, CPU), load average, percentiles and rates.
//! - [`report`]: number formatting and the summary table (each figure beside its target).
//! - [`payload`]: realistic event bodies.

#![allow(dead_code)]

pub mod daemon;
pub mod http;
pub mod measure;
pub mod payload;
pub mod receiver;
pub mod report;

/// Reads `BENCH_SCALE` (a positive factor applied to every count, at most 10; default 1).
pub fn bench_scale() -> f64 {
    std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 10.0)
        .unwrap_or(1.0)
}
