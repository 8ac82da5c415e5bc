//! Code shared by the parts of the `engine` bench (`benches/scenarios/`: ingest, delivery,
//! replay). Not every helper is used by every part, hence the `dead_code` allowance.
//!
//! - [`daemon`]: starting the real daemon binary on 127.0.0.1 with a temp data dir, stopping it.
//! - [`http`]: hyper HTTP/1.1 client connections, requests to the daemon's API, hook helpers.
//! - [`receiver`]: an in-process hyper receiver that records every delivery it answers.
//! - [`measure`]: `/proc` sampling (VmRSS, CPU), load average, percentiles and rates.
//! - [`report`]: number formatting, summary rows and tables (each figure beside its target).
//! - [`payload`]: realistic event bodies.
//! - [`paced`]: open-loop paced posting at a fixed offered rate.

#![allow(dead_code)]

pub mod daemon;
pub mod http;
pub mod measure;
pub mod paced;
pub mod payload;
pub mod receiver;
pub mod report;

/// Seconds per timed ingest scenario when `BENCH_SECONDS` is not set.
pub const DEFAULT_SECONDS: u64 = 5;

/// The knobs of a run, read once from the environment by `engine`'s `main`.
#[derive(Clone, Copy, Debug)]
pub struct BenchConfig {
    /// `BENCH_SCALE`: the factor applied to the delivery and replay counts.
    pub scale: f64,
    /// `BENCH_SECONDS`: seconds per timed ingest scenario.
    pub seconds: u64,
}

impl BenchConfig {
    pub fn from_env() -> BenchConfig {
        BenchConfig {
            scale: bench_scale(),
            seconds: bench_seconds(),
        }
    }
}

/// Reads `BENCH_SECONDS` (1 to 3600; default [`DEFAULT_SECONDS`]).
pub fn bench_seconds() -> u64 {
    std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|s| (1..=3600).contains(s))
        .unwrap_or(DEFAULT_SECONDS)
}

/// Reads `BENCH_SCALE` (a positive factor applied to every count, at most 10; default 1).
pub fn bench_scale() -> f64 {
    std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 10.0)
        .unwrap_or(1.0)
}
