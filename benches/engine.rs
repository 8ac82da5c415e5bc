//! The benchmark of `rev23-webhooks`: one command runs every scenario against the real daemon
//! binary on 127.0.0.1 and prints one table — ingest, delivery, latency, replay, memory — each
//! figure beside the raw limit measured in the same run and its target.
//!
//! ```text
//! cargo bench --bench engine                          # every part, full size
//! cargo bench --bench engine -- ingest replay         # only some parts (in the order given)
//! BENCH_SCALE=0.05 BENCH_SECONDS=1 cargo bench --bench engine   # a quick smoke run
//! BENCH_MAX_LOAD=1.5 cargo bench --bench engine       # delivery and replay first wait
//!                                                     # (≤ 5 min) for a 1-minute load < 1.5
//! ```
//!
//! Parts (each in `benches/scenarios/`, with its scenarios documented there):
//! - `ingest`: single and batched events/s beside raw redb appends, ack latency open loop, RSS
//!   (`BENCH_SECONDS` per timed scenario, default 5).
//! - `delivery`: backlog drain and fan-out deliveries/s beside a bare hyper client, append →
//!   receipt latency, idle-hook memory (`BENCH_SCALE` × every count).
//! - `replay`: dry-run matching scan beside a raw redb scan of the same journal, live latency
//!   while a replay is delivered (`BENCH_SCALE` × every count).
//!
//! Each part prints its detail lines and its own summary; at the end the combined summary
//! groups every row by section. The bench never asserts on timings: it exits 0 when targets are
//! missed (and 2 on an unknown part name).

mod scenarios;
mod support;

use support::report::{print_rows, Row};
use support::BenchConfig;

/// A part: its name on the command line and its entry point.
type Part = (&'static str, fn(&BenchConfig) -> Vec<Row>);

const PARTS: [Part; 3] = [
    ("ingest", scenarios::ingest::run),
    ("delivery", scenarios::delivery::run),
    ("replay", scenarios::replay::run),
];

fn main() {
    // `cargo bench` passes `--bench` (and libtest-style flags) to harness = false targets.
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut selected: Vec<Part> = Vec::new();
    for name in &names {
        match PARTS.iter().find(|(n, _)| n == name) {
            Some(part) if !selected.iter().any(|(n, _)| n == name) => selected.push(*part),
            Some(_) => {}
            None => {
                let known: Vec<&str> = PARTS.iter().map(|(n, _)| *n).collect();
                eprintln!("unknown part {name:?}; the parts are: {}", known.join(", "));
                std::process::exit(2);
            }
        }
    }
    if selected.is_empty() {
        selected = PARTS.to_vec();
    }

    let config = BenchConfig::from_env();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let list: Vec<&str> = selected.iter().map(|(n, _)| *n).collect();
    println!(
        "rev23-webhooks engine benchmark: {} (BENCH_SCALE={}, BENCH_SECONDS={}, {cpus} CPUs visible)",
        list.join(", "),
        config.scale,
        config.seconds
    );
    let load_start = support::measure::loadavg();

    let mut rows = Vec::new();
    for (name, run) in &selected {
        println!("\n################################ {name} ################################\n");
        rows.extend(run(&config));
    }

    print_rows(
        &format!(
            "ENGINE SUMMARY: {} (BENCH_SCALE={}, BENCH_SECONDS={})",
            list.join(", "),
            config.scale,
            config.seconds
        ),
        &rows,
        true,
    );
    println!(
        "raw limit: ingest = raw redb appends (same batch size) in this process; delivery = a bare \
         hyper client replaying a captured delivery to the same receiver; replay = this process \
         scanning the stopped daemon's journal with redb. Each is measured in this run, on this \
         machine; ratio = measured / raw limit (ingest batch 1: group commit folds many requests \
         into one fsync, so > 1 is expected)."
    );
    println!(
        "1-minute load average at start / end: {} / {} ({cpus} CPUs; compare within a run, not across runs)",
        support::measure::fmt_load(load_start),
        support::measure::fmt_load(support::measure::loadavg())
    );
}
