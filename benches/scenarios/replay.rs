//! Replay part of the `engine` benchmark for `rev23-webhooks`: how fast the real daemon re-matches a large journal
//! range against a hook (SPEC §8), beside the raw limit of scanning the same journal file with
//! redb in this process, and whether live deliveries on another hook stay fast while a replay is
//! being delivered.
//!
//! Run it (release build; the figures of a debug build mean nothing):
//!
//! ```text
//! cargo bench --bench engine -- replay                     # full size (1,000,000-event journal)
//! BENCH_SCALE=0.05 cargo bench --bench engine -- replay    # a twentieth of every count
//! BENCH_MAX_LOAD=1.5 cargo bench --bench engine -- replay  # first wait (≤ 5 min) for load < 1.5
//! ```
//!
//! Set-up: the real daemon binary with the same configuration as the delivery bench (loopback
//! only, a temp data dir under `CARGO_TARGET_TMPDIR`, log level warn, both rate limits raised,
//! `allow_private_networks = ["127.0.0.0/8"]`), its owner key, and the in-process hyper receiver
//! of `benches/support` (answers 200, records receipt time, `webhook-id` and `rev23-hook-id`).
//!
//! 1. **Pre-load**: J events (1,000,000 × `BENCH_SCALE`, at least 10,000) are posted 1,000 per
//!    request over 4 connections: one in ten is `customer.updated` (the replayed type), six in
//!    ten `customer.created`, three in ten `user.created`. Then one hook on `customer.updated` is
//!    created (after the events, so nothing is delivered to it until it is replayed).
//! 2. **(a) Matching rate**: `POST /v1/hooks/{id}/replay {"from_offset": 1, "dry_run": true}`
//!    scans the whole journal synchronously and answers the number of matches; the journal
//!    entries it covered divided by the request's wall time → entries scanned per second. It runs
//!    twice; the better run counts (the raw limit gets the same treatment).
//! 3. **(b) Live latency during a replay**: a second hook on `lead.created` gets one warm-up
//!    event; then live `lead.created` events are offered open loop at 200/s for 10 s
//!    (× `BENCH_SCALE`, at least 2 s) from a pacer thread over 4 keep-alive connections, each with
//!    a client-chosen event id (`live-<k>`, which the delivery carries as `webhook-id`), and at the
//!    start of that window the real replay of the first hook is requested (`from_offset` 1, about
//!    J/10 = 100,000 matches at full size, delivered to the receiver), so the live events see all
//!    of it: the request's synchronous count, the worker's scans and the deliveries. Latency =
//!    receipt − the instant just before the POST (receipt − scheduled time is shown too). The
//!    replayed deliveries that arrived inside the live window are counted, and the replay's
//!    status is read at the end of the window, to show the replay really ran concurrently;
//!    afterwards the bench waits for the rest of the replay and reports its delivery rate.
//! 4. **Raw limit**: the daemon is stopped (SIGTERM) and this process opens its journal file with
//!    the library (`journal::schema::open`, default cache size) and scans the same offset range
//!    as (a) with `journal::reader::scan_from`, decoding every envelope and comparing its type —
//!    the daemon's scan minus the HTTP request and the per-entry permission check. A bare redb
//!    iteration without decoding is shown beside it.
//!
//! Every loop is bounded by count and time (pre-load ≤ 15 min, each scan request ≤ 10 min,
//! delivery waits ≤ 120 s or 30 s without a new receipt); only 127.0.0.1 is connected to. At the
//! end a table prints each figure beside its target with PASS/MISS ([`run`] returns its rows for
//! `engine`'s combined table); the bench never asserts on timings and exits 0 when targets are
//! missed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use redb::ReadableTable;
use rev23_webhooks::config::Config;
use rev23_webhooks::journal::{reader, schema};
use serde_json::{json, Value};

use crate::support::daemon::{Daemon, DaemonOptions};
use crate::support::http::{connect, settle, Api, ApiTarget};
use crate::support::measure::{
    micros, pct_ms, per_sec, percentile, print_load, read_status_kib, wait_for_quiet_machine,
    CpuMeter, CpuUse, RssSampler,
};
use crate::support::paced::{post_paced, Pace};
use crate::support::payload::{data_json, INGEST_BATCH};
use crate::support::receiver::{wait_for_arrivals, Receipt, Receiver};
use crate::support::report::{fmt_kib, fmt_rate, fmt_us, print_rows, Row, Section, Verdict};
use crate::support::BenchConfig;

/// Full-size counts (multiplied by `BENCH_SCALE`).
const JOURNAL_EVENTS: f64 = 1_000_000.0;
const LIVE_SECONDS: f64 = 10.0;
/// One journal event in this many is of the replayed type.
const MATCH_EVERY: u64 = 10;
const LIVE_RATE: u64 = 200;

const REPLAY_KIND: &str = "customer.updated";
const LIVE_KIND: &str = "lead.created";
const NOTES: &str = "replay benchmark";

const INGEST_CONNECTIONS: usize = 4;
const LIVE_CONNECTIONS: usize = 4;
const DRY_RUNS: usize = 2;
const RAW_RUNS: usize = 2;

const TARGET_SCAN_EPS: f64 = 200_000.0;
const TARGET_LIVE_P99_MS: f64 = 50.0;

/// Longest one ingest or live request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a replay request (which scans its whole range before answering) may take.
const SCAN_TIMEOUT: Duration = Duration::from_secs(600);
/// Longest the whole pre-load may take.
const INGEST_TIMEOUT: Duration = Duration::from_secs(900);
/// Longest the bench waits for the projectors to catch up after the pre-load.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The pre-load stops after this many failed requests.
const MAX_INGEST_ERRORS: u64 = 20;
/// Extra time a live sender may run past its schedule before it gives up.
const LIVE_GRACE: Duration = Duration::from_secs(15);

/// Runs the replay part; returns its summary rows (after printing its detail lines and table).
pub fn run(config: &BenchConfig) -> Vec<Row> {
    let scale = config.scale;
    let journal_events = ((JOURNAL_EVENTS * scale).round() as u64).max(10_000);
    let live_secs = (LIVE_SECONDS * scale).max(2.0);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("rev23-webhooks replay benchmark: BENCH_SCALE={scale} ({cpus} CPUs visible; daemon, receiver and load generator share them)");
    println!(
        "  journal {journal_events} events (1 in {MATCH_EVERY} is {REPLAY_KIND}); live {LIVE_KIND} at {LIVE_RATE}/s for {live_secs:.1} s during the replay"
    );
    wait_for_quiet_machine();
    print_load();

    let root = tempfile::Builder::new()
        .prefix("rev23-replay-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under CARGO_TARGET_TMPDIR");
    let receiver = Receiver::start();
    println!("receiver on http://{}", receiver.addr);
    let mut daemon = Daemon::start(&root.path().join("main"), DaemonOptions::delivering());
    let pid = daemon.pid();
    println!(
        "== daemon pid {pid} on http://{} (data dir {}) ==",
        daemon.addr,
        daemon.data_dir.display()
    );
    let rss = RssSampler::start(pid);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let target = daemon.api();

    let (preload, dry, live) = runtime.block_on(async {
        println!("\n== pre-load: {journal_events} events, {INGEST_BATCH} per request, {INGEST_CONNECTIONS} connections ==");
        print_load();
        let preload = preload(&target, pid, journal_events).await;
        preload.print();
        settle(&target, SETTLE_TIMEOUT).await;

        let mut api = Api::new(&target);
        let hook = api
            .create_hook(&json!({
                "target_url": receiver.url("/replay"),
                "event": REPLAY_KIND,
            }))
            .await
            .expect("create the replay hook");

        println!("\n== (a) replay matching rate: dry run from offset 1 over the whole journal ==");
        print_load();
        rss.reset_phase();
        let dry = dry_runs(&mut api, &hook, pid).await;
        dry.print(preload.matching, rss.take_phase_peak());

        println!("\n== (b) live {LIVE_KIND} at {LIVE_RATE}/s on another hook while the replay of {hook} is delivered ==");
        print_load();
        rss.reset_phase();
        let live = live_during_replay(&target, &receiver, &hook, pid, live_secs).await;
        live.print(rss.take_phase_peak());
        api.delete_hook(&hook).await;
        (preload, dry, live)
    });
    let hwm_kib = read_status_kib(pid, "VmHWM:");
    let peak_kib = rss.stop();
    drop(runtime);
    let exit = daemon.stop();
    println!("\ndaemon stopped (exit status {exit:?})");
    receiver.stop();

    println!(
        "\n== raw limit: this process scans offsets 1..={} of the stopped daemon's journal ==",
        dry.to
    );
    print_load();
    let raw = raw_scan(&daemon.data_dir, dry.to);
    raw.print();

    summary(&Summary {
        scale,
        preload,
        dry,
        live,
        raw,
        peak_kib,
        hwm_kib,
    })
}

// ---------------------------------------------------------------------------------------------
// Pre-load

/// The type of journal event `n` (0-based): one in [`MATCH_EVERY`] is the replayed type.
fn journal_kind(n: u64) -> &'static str {
    match n % MATCH_EVERY {
        0 => REPLAY_KIND,
        1..=6 => "customer.created",
        _ => "user.created",
    }
}

/// Request `b` of the pre-load: its number of events, how many of them match, and the body.
fn journal_batch(b: u64, total: u64) -> (u64, u64, Bytes) {
    let first = b * INGEST_BATCH as u64;
    let last = (first + INGEST_BATCH as u64).min(total);
    let items: Vec<String> = (first..last)
        .map(|n| {
            format!(
                r#"{{"type":"{}","data":{}}}"#,
                journal_kind(n),
                data_json("ent_replay", n, NOTES)
            )
        })
        .collect();
    let matching = (first..last)
        .filter(|&n| journal_kind(n) == REPLAY_KIND)
        .count() as u64;
    (
        last - first,
        matching,
        Bytes::from(format!("[{}]", items.join(","))),
    )
}

struct Preload {
    offered: u64,
    acked: u64,
    matching: u64,
    errors: u64,
    elapsed: Duration,
    cpu: CpuUse,
}

impl Preload {
    fn print(&self) {
        println!(
            "  {} of {} events acknowledged in {:.2} s ({} events/s; {} of the replayed type); {} failed requests; {}",
            self.acked,
            self.offered,
            self.elapsed.as_secs_f64(),
            fmt_rate(per_sec(self.acked, self.elapsed)),
            self.matching,
            self.errors,
            self.cpu.line()
        );
    }
}

async fn preload(target: &ApiTarget, pid: u32, total: u64) -> Preload {
    let batches = total.div_ceil(INGEST_BATCH as u64);
    let next = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu = CpuMeter::start(pid);
    let start = Instant::now();
    let deadline = start + INGEST_TIMEOUT;
    let tasks: Vec<_> = (0..INGEST_CONNECTIONS)
        .map(|_| {
            let (next, errors, target) = (next.clone(), errors.clone(), target.clone());
            tokio::spawn(async move {
                let mut api = Api::new(&target);
                let (mut acked, mut matching) = (0u64, 0u64);
                loop {
                    let b = next.fetch_add(1, Ordering::AcqRel);
                    if b >= batches
                        || Instant::now() > deadline
                        || errors.load(Ordering::Acquire) >= MAX_INGEST_ERRORS
                    {
                        break;
                    }
                    let (count, matches, body) = journal_batch(b, total);
                    match api
                        .call_within(Method::POST, "/v1/events", Some(body), REQUEST_TIMEOUT)
                        .await
                    {
                        Ok((StatusCode::CREATED, _)) => {
                            acked += count;
                            matching += matches;
                        }
                        Ok((status, body)) => {
                            errors.fetch_add(1, Ordering::AcqRel);
                            println!(
                                "  POST /v1/events answered {status}: {}",
                                String::from_utf8_lossy(&body)
                                    .chars()
                                    .take(300)
                                    .collect::<String>()
                            );
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::AcqRel);
                            println!("  POST /v1/events: {e}");
                        }
                    }
                }
                (acked, matching)
            })
        })
        .collect();
    let (mut acked, mut matching) = (0, 0);
    for t in tasks {
        if let Ok((a, m)) = t.await {
            acked += a;
            matching += m;
        }
    }
    Preload {
        offered: total,
        acked,
        matching,
        errors: errors.load(Ordering::Acquire),
        elapsed: start.elapsed(),
        cpu: cpu.finish(),
    }
}

// ---------------------------------------------------------------------------------------------
// (a) Dry runs

struct DryRun {
    elapsed: Duration,
    matched: Option<u64>,
    cpu: CpuUse,
}

struct DryRuns {
    runs: Vec<DryRun>,
    from: u64,
    to: u64,
}

impl DryRuns {
    /// Journal entries one dry run covered.
    fn scanned(&self) -> u64 {
        (self.to + 1).saturating_sub(self.from)
    }

    /// The best rate of the runs that answered.
    fn best_rate(&self) -> Option<f64> {
        self.runs
            .iter()
            .filter(|r| r.matched.is_some())
            .map(|r| per_sec(self.scanned(), r.elapsed))
            .reduce(f64::max)
    }

    fn print(&self, expected: u64, peak_rss_kib: u64) {
        for (i, r) in self.runs.iter().enumerate() {
            let Some(matched) = r.matched else {
                println!("  run {}: no answer (see above)", i + 1);
                continue;
            };
            println!(
                "  run {}: {} entries/s — offsets {}..={} ({} entries) scanned in {:.3} s, matched {matched} (expected {expected}{}); {}",
                i + 1,
                fmt_rate(per_sec(self.scanned(), r.elapsed)),
                self.from,
                self.to,
                self.scanned(),
                r.elapsed.as_secs_f64(),
                if matched == expected { "" } else { " — DIFFERS" },
                r.cpu.line()
            );
        }
        println!("  daemon peak VmRSS {}", fmt_kib(peak_rss_kib));
    }
}

async fn dry_runs(api: &mut Api, hook: &str, pid: u32) -> DryRuns {
    let path = format!("/v1/hooks/{hook}/replay");
    let body = Bytes::from(json!({"from_offset": 1, "dry_run": true}).to_string());
    let mut out = DryRuns {
        runs: Vec::new(),
        from: 1,
        to: 0,
    };
    for _ in 0..DRY_RUNS {
        let cpu = CpuMeter::start(pid);
        let start = Instant::now();
        let answer = api
            .call_within(Method::POST, &path, Some(body.clone()), SCAN_TIMEOUT)
            .await;
        let elapsed = start.elapsed();
        let cpu = cpu.finish();
        let matched = match answer {
            Ok((StatusCode::OK, bytes)) => {
                let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                out.from = v["from_offset"].as_u64().unwrap_or(1);
                out.to = v["to_offset"].as_u64().unwrap_or(0);
                v["matched"].as_u64()
            }
            Ok((status, bytes)) => {
                println!(
                    "  dry run answered {status}: {}",
                    String::from_utf8_lossy(&bytes)
                );
                None
            }
            Err(e) => {
                println!("  dry run: {e}");
                None
            }
        };
        out.runs.push(DryRun {
            elapsed,
            matched,
            cpu,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// (b) Live latency during a replay

struct LiveResult {
    /// Matches the replay request announced, how long that request took, and when it was sent
    /// and the first replayed delivery arrived, from the start of the live window.
    replay_matched: Option<u64>,
    replay_request: Duration,
    replay_sent_at: Duration,
    replay_first_receipt_at: Option<Duration>,
    offered: u64,
    acked: usize,
    received: usize,
    ingest_errors: u64,
    /// receipt − send, receipt − due; sorted µs.
    from_send: Vec<u32>,
    from_due: Vec<u32>,
    window: Duration,
    /// Replayed deliveries received during and after the live window.
    replay_during: usize,
    replay_after: usize,
    /// The replay's `status` (and cursor) read right after the window.
    status_after_window: String,
    /// From the replay's acceptance to its last receipt.
    replay_elapsed: Option<Duration>,
    replay_duplicates: u64,
    cpu: CpuUse,
}

impl LiveResult {
    fn replay_received(&self) -> usize {
        self.replay_during + self.replay_after
    }

    fn replay_rate(&self) -> Option<f64> {
        self.replay_elapsed
            .filter(|_| self.replay_received() > 0)
            .map(|e| per_sec(self.replay_received() as u64, e))
    }

    fn print(&self, peak_rss_kib: u64) {
        let secs =
            |d: Option<Duration>| d.map_or("n/a".into(), |d| format!("{:.3} s", d.as_secs_f64()));
        println!(
            "  replay request sent {:.1} ms into the live window, answered after {:.3} s (it counts the matches first), matched {}; first replayed receipt {} into the window",
            self.replay_sent_at.as_secs_f64() * 1000.0,
            self.replay_request.as_secs_f64(),
            self.replay_matched
                .map_or("n/a (replay not started)".into(), |m| m.to_string()),
            secs(self.replay_first_receipt_at)
        );
        println!(
            "  live: offered {} events in a {:.2} s window; {} acknowledged, {} received ({} missing); {} ingest errors",
            self.offered,
            self.window.as_secs_f64(),
            self.acked,
            self.received,
            self.acked - self.received.min(self.acked),
            self.ingest_errors
        );
        let line = |name: &str, v: &[u32]| {
            println!(
                "  {name:<30} p50 {}  p90 {}  p99 {}  max {}",
                fmt_us(percentile(v, 50.0)),
                fmt_us(percentile(v, 90.0)),
                fmt_us(percentile(v, 99.0)),
                fmt_us(v.last().copied()),
            )
        };
        line("receipt − just before POST:", &self.from_send);
        line("receipt − scheduled time:", &self.from_due);
        println!(
            "  replayed deliveries received: {} during the window, {} after it; replay status right after the window: {}",
            self.replay_during, self.replay_after, self.status_after_window
        );
        println!(
            "  replay delivered {} of {} at {} deliveries/s (from acceptance to last receipt); {} duplicate receipts",
            self.replay_received(),
            self.replay_matched.unwrap_or(0),
            self.replay_rate().map_or("n/a".into(), fmt_rate),
            self.replay_duplicates
        );
        println!(
            "  {} (whole scenario); daemon peak VmRSS {}",
            self.cpu.line(),
            fmt_kib(peak_rss_kib)
        );
    }
}

fn live_body(k: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"live-{k:07}","type":"{LIVE_KIND}","data":{}}}"#,
        data_json("lead_live", k, NOTES)
    ))
}

async fn live_during_replay(
    target: &ApiTarget,
    receiver: &Receiver,
    replay_hook: &str,
    pid: u32,
    seconds: f64,
) -> LiveResult {
    let mut api = Api::new(target);
    let live_hook = api
        .create_hook(&json!({
            "target_url": receiver.url("/live"),
            "event": LIVE_KIND,
        }))
        .await
        .expect("create the live hook");
    let live_hooks: HashSet<String> = [live_hook.clone()].into();
    let replay_hooks: HashSet<String> = [replay_hook.to_string()].into();
    // Warm-up: one live event end to end, so its lane runs and holds a connection.
    let from = receiver.len();
    let warm = Bytes::from(format!(
        r#"{{"id":"live-warmup","type":"{LIVE_KIND}","data":{}}}"#,
        data_json("lead_warm", 0, NOTES)
    ));
    let _ = api.call(Method::POST, "/v1/events", Some(warm)).await;
    if wait_for_arrivals(receiver, from, &live_hooks, 1)
        .await
        .receipts
        .is_empty()
    {
        println!("  WARNING: the warm-up event was not delivered");
    }
    let total = (LIVE_RATE as f64 * seconds).round() as u64;
    let interval = Duration::from_nanos(1_000_000_000 / LIVE_RATE);
    let mut senders = Vec::new();
    for _ in 0..LIVE_CONNECTIONS {
        senders.push(connect(target.addr).await.expect("connect to the daemon"));
    }

    // The window opens at `begin`, and the replay request goes out at that instant, so the live
    // events see all of the replay: the request's synchronous count of the matches, the replay
    // worker's scans and the deliveries.
    let from = receiver.len();
    let cpu = CpuMeter::start(pid);
    let path = format!("/v1/hooks/{replay_hook}/replay");
    let begin = Instant::now() + Duration::from_millis(20);
    let give_up = begin + Duration::from_secs_f64(seconds) + LIVE_GRACE;
    let replay_request = {
        let (target, path) = (target.clone(), path.clone());
        tokio::spawn(async move {
            let mut api = Api::new(&target);
            let body = Bytes::from(json!({"from_offset": 1}).to_string());
            tokio::time::sleep_until(begin.into()).await;
            let start = Instant::now();
            let answer = api
                .call_within(Method::POST, &path, Some(body), SCAN_TIMEOUT)
                .await;
            (start, Instant::now(), answer)
        })
    };
    let pace = Pace {
        total,
        interval,
        begin,
        give_up,
    };
    let (sent, ingest_errors) = post_paced(senders, target, pace, live_body, REQUEST_TIMEOUT).await;
    let window_end = Instant::now();
    let (request_start, accepted, answer) = replay_request.await.expect("replay request task");
    let (replay_id, replay_matched) = match answer {
        Ok((StatusCode::ACCEPTED, bytes)) => {
            let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (
                v["replay_id"].as_str().map(str::to_string),
                v["matched"].as_u64(),
            )
        }
        Ok((status, bytes)) => {
            println!(
                "  replay answered {status}: {} — live latency was measured without it",
                String::from_utf8_lossy(&bytes)
            );
            (None, None)
        }
        Err(e) => {
            println!("  replay: {e} — live latency was measured without it");
            (None, None)
        }
    };
    let status_after_window = match &replay_id {
        Some(id) => match api.json(Method::GET, &format!("{path}s/{id}"), None).await {
            Ok((StatusCode::OK, v)) => format!(
                "{} (scanned_through {}, queued {}, last_sequence {}, cursor_sequence {})",
                v["status"],
                v["scanned_through"],
                v["queued"],
                v["last_sequence"],
                v["cursor_sequence"]
            ),
            Ok((status, v)) => format!("GET answered {status}: {v}"),
            Err(e) => format!("GET failed: {e}"),
        },
        None => "no replay".into(),
    };

    let acked = sent.iter().filter(|s| s.acked.is_some()).count();
    let live = wait_for_arrivals(receiver, from, &live_hooks, acked).await;
    let receipt_of: HashMap<u64, Instant> = live
        .receipts
        .iter()
        .filter_map(|r| {
            let k = r.webhook_id.strip_prefix("live-")?.parse::<u64>().ok()?;
            Some((k, r.at))
        })
        .collect();
    let (mut from_send, mut from_due) = (Vec::new(), Vec::new());
    for s in sent.iter().filter(|s| s.acked.is_some()) {
        if let Some(&at) = receipt_of.get(&s.k) {
            from_send.push(micros(at.saturating_duration_since(s.sent)));
            from_due.push(micros(at.saturating_duration_since(s.due)));
        }
    }
    from_send.sort_unstable();
    from_due.sort_unstable();

    let expected = replay_matched.unwrap_or(0) as usize;
    let replayed = wait_for_arrivals(receiver, from, &replay_hooks, expected).await;
    let cpu = cpu.finish();
    let in_window = |r: &&Receipt| r.at >= begin && r.at <= window_end;
    let replay_during = replayed.receipts.iter().filter(in_window).count();
    let replay_elapsed = replayed
        .receipts
        .iter()
        .map(|r| r.at)
        .max()
        .map(|last| last.saturating_duration_since(accepted));
    api.delete_hook(&live_hook).await;
    LiveResult {
        replay_matched,
        replay_request: accepted - request_start,
        replay_sent_at: request_start.saturating_duration_since(begin),
        replay_first_receipt_at: replayed
            .receipts
            .iter()
            .map(|r| r.at)
            .min()
            .map(|first| first.saturating_duration_since(begin)),
        offered: total,
        acked,
        received: from_send.len(),
        ingest_errors,
        from_send,
        from_due,
        window: window_end.saturating_duration_since(begin),
        replay_during,
        replay_after: replayed.receipts.len() - replay_during,
        status_after_window,
        replay_elapsed,
        replay_duplicates: replayed.duplicates,
        cpu,
    }
}

// ---------------------------------------------------------------------------------------------
// The raw limit

struct RawScan {
    /// (elapsed, entries scanned, entries of the replayed type) per run.
    runs: Vec<(Duration, u64, u64)>,
    /// A bare iteration without decoding: (elapsed, entries, value bytes).
    iterate: (Duration, u64, u64),
    file_bytes: Option<u64>,
}

impl RawScan {
    fn best_rate(&self) -> Option<f64> {
        self.runs
            .iter()
            .map(|&(e, n, _)| per_sec(n, e))
            .reduce(f64::max)
    }

    fn iterate_rate(&self) -> f64 {
        per_sec(self.iterate.1, self.iterate.0)
    }

    fn print(&self) {
        println!(
            "  journal file {}",
            self.file_bytes.map_or("n/a".into(), fmt_kib_bytes)
        );
        for (i, (elapsed, scanned, matched)) in self.runs.iter().enumerate() {
            println!(
                "  scan + decode, run {}: {} entries/s — {scanned} entries in {:.3} s, {matched} of the replayed type",
                i + 1,
                fmt_rate(per_sec(*scanned, *elapsed)),
                elapsed.as_secs_f64()
            );
        }
        let (elapsed, n, bytes) = self.iterate;
        println!(
            "  iterate only (no decode): {} entries/s — {n} entries, {} of values, in {:.3} s",
            fmt_rate(self.iterate_rate()),
            fmt_kib_bytes(bytes),
            elapsed.as_secs_f64()
        );
    }
}

fn fmt_kib_bytes(bytes: u64) -> String {
    fmt_kib(bytes / 1024)
}

/// Scans offsets `1..=to` of the journal in `data_dir` (the daemon must be stopped).
fn raw_scan(data_dir: &Path, to: u64) -> RawScan {
    let cache = Config::default().storage.cache_size_bytes;
    let db = schema::open(data_dir, cache).expect("open the stopped daemon's journal");
    let span = usize::try_from(to).unwrap_or(usize::MAX);
    let mut runs = Vec::new();
    for _ in 0..RAW_RUNS {
        let (mut scanned, mut matched) = (0u64, 0u64);
        let start = Instant::now();
        reader::scan_from(&db, 1, span, |e| {
            scanned += 1;
            if e.kind == REPLAY_KIND {
                matched += 1;
            }
            true
        })
        .expect("scan the journal");
        runs.push((start.elapsed(), scanned, matched));
    }
    let start = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    let txn = db.begin_read().expect("read transaction");
    let table = txn.open_table(schema::JOURNAL).expect("journal table");
    for item in table.range(1..=to).expect("journal range") {
        let (_, value) = item.expect("journal entry");
        n += 1;
        bytes += value.value().len() as u64;
    }
    let iterate = (start.elapsed(), n, bytes);
    RawScan {
        runs,
        iterate,
        file_bytes: std::fs::metadata(data_dir.join(schema::DB_FILE_NAME))
            .ok()
            .map(|m| m.len()),
    }
}

// ---------------------------------------------------------------------------------------------
// Output

struct Summary {
    scale: f64,
    preload: Preload,
    dry: DryRuns,
    live: LiveResult,
    raw: RawScan,
    peak_kib: u64,
    hwm_kib: Option<u64>,
}

/// The part's summary rows; prints them as the part's own table, with its notes.
fn summary(s: &Summary) -> Vec<Row> {
    const PART: &str = "replay";
    let rate = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{} /s", fmt_rate(v)));
    let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2} ms"));
    let scan = s.dry.best_rate();
    let raw = s.raw.best_rate();
    let ratio = scan.zip(raw).map(|(h, r)| h / r.max(1e-9));
    let l = &s.live;
    let p99 = pct_ms(&l.from_send, 99.0);
    let info = |section, name: &str, measured| Row::info(PART, section, name, measured);

    let rows = vec![
        Row::judged(
            PART,
            Section::Replay,
            &format!(
                "a  dry-run matching scan ({} entries; raw: redb scan + decode)",
                s.dry.scanned()
            ),
            rate(scan),
            ">= 200,000 /s",
            scan,
            Verdict::AtLeast(TARGET_SCAN_EPS),
        )
        .with_raw(rate(raw), ratio),
        info(
            Section::Replay,
            "a    matched / replayed-type events acknowledged",
            format!(
                "{} / {}",
                s.dry
                    .runs
                    .iter()
                    .find_map(|r| r.matched)
                    .map_or("n/a".into(), |m| m.to_string()),
                s.preload.matching
            ),
        ),
        info(
            Section::Replay,
            "a  raw: redb iterate only (no decode)",
            rate(Some(s.raw.iterate_rate())),
        ),
        Row::judged(
            PART,
            Section::Replay,
            "b  replayed deliveries during the live window",
            l.replay_during.to_string(),
            "> 0",
            Some(l.replay_during as f64),
            Verdict::AtLeast(1.0),
        ),
        info(
            Section::Replay,
            &format!(
                "b  replay delivery rate ({} of {})",
                l.replay_received(),
                l.replay_matched.unwrap_or(0)
            ),
            rate(l.replay_rate()),
        ),
        Row::judged(
            PART,
            Section::Latency,
            &format!(
                "b  live append→receipt p99 during replay ({} at {LIVE_RATE}/s)",
                l.received
            ),
            ms(p99),
            "<= 50 ms",
            p99,
            Verdict::AtMost(TARGET_LIVE_P99_MS),
        ),
        info(
            Section::Latency,
            "b  live append→receipt p50",
            ms(pct_ms(&l.from_send, 50.0)),
        ),
        info(
            Section::Latency,
            "b  live append→receipt max",
            ms(l.from_send.last().map(|&us| f64::from(us) / 1000.0)),
        ),
        info(
            Section::Ingest,
            "pre-load ingest, batches of 1,000",
            rate(Some(per_sec(s.preload.acked, s.preload.elapsed))),
        ),
        info(
            Section::Memory,
            "daemon peak VmRSS / VmHWM",
            format!(
                "{} / {}",
                fmt_kib(s.peak_kib),
                s.hwm_kib.map_or("n/a".into(), fmt_kib)
            ),
        ),
    ];
    print_rows(
        &format!("REPLAY SUMMARY (BENCH_SCALE={})", s.scale),
        &rows,
        false,
    );
    println!(
        "a: best of {DRY_RUNS} dry runs and of {RAW_RUNS} raw scans; the dry run's time includes the HTTP request and the daemon's per-entry permission check"
    );
    if l.replay_received() < l.replay_matched.unwrap_or(0) as usize || l.received < l.acked {
        println!("INCOMPLETE deliveries in (b): see above");
    }
    rows
}
