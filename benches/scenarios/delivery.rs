//! Delivery part of the `engine` benchmark for `rev23-webhooks`: how fast the real daemon drains a hook's backlog to a
//! receiver, how it fans one event type out to many hooks, how long an event takes from append to
//! receipt at a steady offered rate, how that compares with a bare HTTP client against the same
//! receiver, and how much memory a thousand idle hooks cost.
//!
//! Run it (release build; the figures of a debug build mean nothing):
//!
//! ```text
//! cargo bench --bench engine -- delivery                     # full size (50,000-event backlogs, ...)
//! BENCH_SCALE=0.2 cargo bench --bench engine -- delivery     # a fifth of every count
//! BENCH_MAX_LOAD=1.5 cargo bench --bench engine -- delivery  # first wait (≤ 5 min) for loadavg < 1.5
//! ```
//!
//! Set-up: the real daemon binary (`serve --config FILE`, `listen = "127.0.0.1:0"`, a temp data
//! dir under `CARGO_TARGET_TMPDIR`, log level warn, both rate limits raised so nothing answers
//! 429, `allow_private_networks = ["127.0.0.0/8"]`), its owner key from `<data_dir>/owner.key`,
//! and an in-process hyper HTTP/1.1 receiver on 127.0.0.1 in its own tokio runtime (2 worker
//! threads) that answers every request 200 with an empty body and records, per request, the
//! receipt time (after the body is read), `webhook-id` and `rev23-hook-id`, and counts the TCP
//! connections it accepts. Every scenario uses its own event type and its own hooks (deleted
//! afterwards), and counts only its own hooks' receipts, distinct by (hook, webhook-id).
//!
//! Scenarios, in order:
//! 1. **Backlog drain, `ordering: none`**: one hook is created and paused (`PATCH {"state":
//!    "paused"}`), N events (50,000 × `BENCH_SCALE`) are posted 1,000 per request, the bench waits
//!    until the hook's `head_sequence` is N, then resumes the hook and times from the resume
//!    request to the last receipt → deliveries/s.
//!    **1b** is the same with `ordering: entity` and a distinct `data.id` per event.
//! 2. **Fan-out**: 100 active hooks (default `entity` ordering) on one event type; E events
//!    (1,000 × `BENCH_SCALE`) are posted 1,000 per request; timed from the first POST to the last
//!    of the 100 × E receipts → deliveries/s.
//! 3. **Latency**: one active hook; single events offered open loop at 500/s for 10 s
//!    (× `BENCH_SCALE`, at least 2 s), each due on a fixed schedule set by a pacer thread and dealt
//!    round-robin to 8 keep-alive connections, with a client-chosen event id so the receipt can be
//!    matched to its due time. Latency = receipt − due time (a late send counts), shown beside
//!    receipt − actual send and receipt − ingest acknowledgement.
//! 4. **Raw limit**: a bare hyper client replays the first delivery the receiver got in (1) —
//!    same path, headers and body bytes — with 16 requests in flight (16 keep-alive connections,
//!    like the lane's limit) to the same receiver, N requests → requests/s; (1)'s figure is shown
//!    as a ratio of it.
//! 5. **Idle hooks**: a second, fresh daemon (so earlier backlogs do not count in its high-water
//!    mark); 1,000 hooks are created (× `BENCH_SCALE`, at least 100), it idles 5 s while its
//!    VmRSS is sampled every 50 ms; peak sampled VmRSS and VmHWM are reported, with its idle CPU.
//!
//! The daemon's VmRSS is sampled every 50 ms throughout, and the daemon's and this process's CPU
//! use are shown per scenario (load generator, receiver and daemon share the cores). The 1-minute
//! load average is printed before each scenario. Every wait is bounded by time and count: waiting
//! for deliveries gives up after 120 s (or 30 s without a new receipt) and reports what arrived.
//! At the end a table prints each figure beside its target with PASS/MISS ([`run`] returns its
//! rows for `engine`'s combined table). The bench never
//! asserts on timings and exits 0 when targets are missed; it panics only when the set-up itself
//! fails (the daemon does not start, a hook cannot be created). Both daemons get SIGTERM (then
//! SIGKILL if they hang) at the end. Only 127.0.0.1 is ever connected to.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::support::daemon::{Daemon, DaemonOptions};
use crate::support::http::{connect, create_hooks, exchange, Api, ApiTarget, MATCH_TIMEOUT};
use crate::support::measure::{
    loadavg, micros, pct_ms, per_sec, percentile, print_load, read_status_kib, self_cpu_secs,
    wait_for_quiet_machine, CpuMeter, CpuUse, LoadAvg, RssSampler,
};
use crate::support::paced::{post_paced, Pace};
use crate::support::payload;
use crate::support::receiver::{
    wait_for_arrivals, Arrivals, Captured, Receiver, DELIVERY_TIMEOUT, STALL_TIMEOUT,
};
use crate::support::report::{
    fmt_kib, fmt_rate, fmt_ratio, fmt_us, print_rows, Row, Section, Verdict,
};
use crate::support::BenchConfig;

/// Full-size counts (multiplied by `BENCH_SCALE`).
const BACKLOG_EVENTS: f64 = 50_000.0;
const FANOUT_EVENTS: f64 = 1_000.0;
const FANOUT_HOOKS: usize = 100;
const LATENCY_SECONDS: f64 = 10.0;
const LATENCY_RATE: u64 = 500;
const IDLE_HOOKS: f64 = 1_000.0;

const LATENCY_CONNECTIONS: usize = 8;
/// The lane's in-flight limit (`delivery.max_in_flight` default), used by the raw client.
const RAW_IN_FLIGHT: usize = 16;

const TARGET_BACKLOG_DPS: f64 = 5_000.0;
const TARGET_FANOUT_DPS: f64 = 10_000.0;
const TARGET_P50_MS: f64 = 5.0;
const TARGET_P99_MS: f64 = 25.0;
const TARGET_RAW_RATIO: f64 = 0.5;
const TARGET_IDLE_RSS_MIB: f64 = 100.0;

/// Longest one request to the daemon may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the raw client runs.
const RAW_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the idle-hooks daemon idles while it is sampled.
const IDLE_SETTLE: Duration = Duration::from_secs(5);

/// Runs the delivery part; returns its summary rows (after printing its detail lines and table).
pub fn run(config: &BenchConfig) -> Vec<Row> {
    let scale = config.scale;
    let scaled = |full: f64, min: usize| ((full * scale).round() as usize).max(min);
    let backlog = scaled(BACKLOG_EVENTS, 1_000);
    let fanout_events = scaled(FANOUT_EVENTS, 50);
    let latency_secs = (LATENCY_SECONDS * scale).max(2.0);
    let idle_hooks = scaled(IDLE_HOOKS, 100);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("rev23-webhooks delivery benchmark: BENCH_SCALE={scale} ({cpus} CPUs visible; daemon, receiver and load generator share them)");
    println!(
        "  backlog {backlog} events; fan-out {FANOUT_HOOKS} hooks × {fanout_events} events; latency {LATENCY_RATE}/s for {latency_secs:.1} s; {idle_hooks} idle hooks"
    );
    wait_for_quiet_machine();
    let load_start = loadavg();

    let root = tempfile::Builder::new()
        .prefix("rev23-delivery-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under CARGO_TARGET_TMPDIR");
    let receiver = Arc::new(Receiver::start());
    println!("receiver on http://{}", receiver.addr);
    let mut daemon = Daemon::start(&root.path().join("main"), DaemonOptions::delivering());
    println!(
        "== daemon pid {} on http://{} (data dir {}) ==",
        daemon.pid(),
        daemon.addr,
        daemon.data_dir.display()
    );
    let rss = RssSampler::start(daemon.pid());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let bench = Bench {
        api: daemon.api(),
        receiver: receiver.clone(),
        pid: daemon.pid(),
    };
    let mut loads = vec![("start".to_string(), load_start)];

    let (backlog_none, backlog_entity, fanout, latency, raw) = runtime.block_on(async {
        println!("\n== 1: backlog drain, one hook, ordering none, {backlog} events ==");
        loads.push(("1 none".into(), print_load()));
        rss.reset_phase();
        let none = backlog_scenario(&bench, "customer.created", "none", "none", backlog).await;
        none.print(rss.take_phase_peak());

        println!("\n== 1b: backlog drain, one hook, ordering entity (distinct data.id), {backlog} events ==");
        loads.push(("1b entity".into(), print_load()));
        rss.reset_phase();
        let entity =
            backlog_scenario(&bench, "customer.updated", "entity", "entity", backlog).await;
        entity.print(rss.take_phase_peak());

        println!("\n== 2: fan-out, {FANOUT_HOOKS} active hooks on one type, {fanout_events} events ==");
        loads.push(("2 fan-out".into(), print_load()));
        rss.reset_phase();
        let fanout = fanout_scenario(&bench, fanout_events).await;
        fanout.print(rss.take_phase_peak());

        println!("\n== 3: latency append → receipt, {LATENCY_RATE} events/s offered open loop for {latency_secs:.1} s, one hook ==");
        loads.push(("3 latency".into(), print_load()));
        rss.reset_phase();
        let latency = latency_scenario(&bench, latency_secs).await;
        latency.print(rss.take_phase_peak());

        println!("\n== 4: raw limit, bare hyper client, {RAW_IN_FLIGHT} in flight, same receiver, replayed delivery ==");
        loads.push(("4 raw".into(), print_load()));
        let raw = match receiver.captured() {
            Some(c) => Some(raw_scenario(&receiver, c, backlog as u64).await),
            None => {
                println!("  no delivery was captured in (1); skipped");
                None
            }
        };
        if let Some(r) = &raw {
            r.print();
        }
        (none, entity, fanout, latency, raw)
    });
    let main_hwm = read_status_kib(daemon.pid(), "VmHWM:");
    let main_peak = rss.stop();
    let exit = daemon.stop();
    println!("\nmain daemon stopped (exit status {exit:?})");

    println!("\n== 5: {idle_hooks} idle hooks, fresh daemon ==");
    loads.push(("5 idle".into(), print_load()));
    let idle = idle_scenario(&runtime, &root.path().join("idle"), &receiver, idle_hooks);
    idle.print();
    loads.push(("end".into(), print_load()));
    drop(runtime);
    if let Ok(r) = Arc::try_unwrap(receiver) {
        r.stop();
    }

    summary(&Summary {
        scale,
        backlog_none,
        backlog_entity,
        fanout,
        latency,
        raw,
        idle,
        main_peak_kib: main_peak,
        main_hwm_kib: main_hwm,
        loads,
    })
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// The `data` object of event `n`: a customer-like record of realistic size (~200 bytes).
fn data_json(prefix: &str, n: u64) -> String {
    payload::data_json(prefix, n, "delivery benchmark")
}

/// Bodies of `count` events of `kind`, 1,000 per request, each with its own `data.id`.
fn batch_bodies(kind: &str, prefix: &str, count: usize) -> Vec<(usize, Bytes)> {
    payload::batch_bodies(kind, prefix, "delivery benchmark", count)
}

// ---------------------------------------------------------------------------------------------
// Scenarios 1 and 2: throughput

struct Bench {
    api: ApiTarget,
    receiver: Arc<Receiver>,
    pid: u32,
}

/// A timed batch of deliveries.
struct Drain {
    expected: usize,
    received: usize,
    duplicates: u64,
    /// From the start of the clock (resume, or first POST) to the last receipt.
    elapsed: Option<Duration>,
    to_first: Option<Duration>,
    first_to_last: Option<Duration>,
    per_second: Vec<u64>,
    /// Longest time between two consecutive receipts.
    max_gap: Duration,
    connections: u64,
    timed_out: bool,
    stalled: bool,
    cpu: CpuUse,
    /// Hook-side view after the drain (cursor, counters), for the backlog scenarios.
    hook_after: Option<String>,
    note: String,
}

impl Drain {
    fn new(t0: Instant, expected: usize, arrivals: Arrivals, cpu: CpuUse, conns: u64) -> Drain {
        let r = &arrivals.receipts;
        let first = r.iter().map(|x| x.at).min();
        let last = r.iter().map(|x| x.at).max();
        let mut per_second = Vec::new();
        let mut times: Vec<Instant> = r.iter().map(|x| x.at).collect();
        times.sort_unstable();
        for at in &times {
            let s = at.saturating_duration_since(t0).as_secs() as usize;
            if s < 600 {
                if per_second.len() <= s {
                    per_second.resize(s + 1, 0);
                }
                per_second[s] += 1;
            }
        }
        let max_gap = times
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or_default();
        Drain {
            expected,
            received: r.len(),
            duplicates: arrivals.duplicates,
            elapsed: last.map(|l| l.saturating_duration_since(t0)),
            to_first: first.map(|f| f.saturating_duration_since(t0)),
            first_to_last: first.zip(last).map(|(f, l)| l - f),
            per_second,
            max_gap,
            connections: conns,
            timed_out: arrivals.timed_out,
            stalled: arrivals.stalled,
            cpu,
            hook_after: None,
            note: String::new(),
        }
    }

    fn rate(&self) -> Option<f64> {
        self.elapsed
            .filter(|_| self.received > 0)
            .map(|e| per_sec(self.received as u64, e))
    }

    fn print(&self, peak_rss_kib: u64) {
        let secs =
            |d: Option<Duration>| d.map_or("n/a".into(), |d| format!("{:.3} s", d.as_secs_f64()));
        println!(
            "  {} deliveries/s: {} of {} received in {} ({}; first receipt after {}, first → last {})",
            self.rate().map_or("n/a".into(), fmt_rate),
            self.received,
            self.expected,
            secs(self.elapsed),
            self.note,
            secs(self.to_first),
            secs(self.first_to_last),
        );
        if self.timed_out || self.stalled || self.received < self.expected {
            println!(
                "  INCOMPLETE: {} missing{}",
                self.expected - self.received.min(self.expected),
                if self.timed_out {
                    format!(" (gave up after {DELIVERY_TIMEOUT:?})")
                } else if self.stalled {
                    format!(" (nothing new for {STALL_TIMEOUT:?})")
                } else {
                    String::new()
                }
            );
        }
        let buckets: Vec<String> = self.per_second.iter().map(u64::to_string).collect();
        println!(
            "  receipts per second since the start: [{}]",
            buckets.join(" ")
        );
        println!(
            "  longest gap between receipts {:.1} ms; duplicate receipts {}; receiver accepted {} new TCP connections",
            self.max_gap.as_secs_f64() * 1000.0,
            self.duplicates,
            self.connections
        );
        if let Some(h) = &self.hook_after {
            println!("  hook after the drain: {h}");
        }
        println!(
            "  {}; daemon peak VmRSS {}",
            self.cpu.line(),
            fmt_kib(peak_rss_kib)
        );
    }
}

/// Scenario 1: one paused hook, a pre-loaded backlog, resume, time until all are received.
async fn backlog_scenario(b: &Bench, kind: &str, ordering: &str, tag: &str, n: usize) -> Drain {
    let mut api = Api::new(&b.api);
    let hook = api
        .create_hook(&json!({
            "target_url": b.receiver.url(&format!("/hooks/{tag}")),
            "event": kind,
            "ordering": ordering,
        }))
        .await
        .expect("create the backlog hook");
    api.set_state(&hook, "paused")
        .await
        .expect("pause the backlog hook");
    let load_start = Instant::now();
    let acked = api
        .post_batches(batch_bodies(kind, &format!("ent_{tag}"), n))
        .await;
    let load_time = load_start.elapsed();
    let matched = api.wait_for_head(&hook, acked as u64).await;
    println!(
        "  pre-loaded {acked} events in {:.2} s ({} events/s); hook head reached {acked} {}",
        load_time.as_secs_f64(),
        fmt_rate(per_sec(acked as u64, load_time)),
        matched.map_or(format!("NOT within {MATCH_TIMEOUT:?}"), |d| format!(
            "{:.2} s later",
            d.as_secs_f64()
        ))
    );
    let hooks: HashSet<String> = [hook.clone()].into();
    let early = b.receiver.take_since(0, &hooks).0.len();
    if early > 0 {
        println!("  WARNING: {early} deliveries arrived while the hook was paused");
    }
    let from = b.receiver.len();
    let conns = b.receiver.connections();
    let cpu = CpuMeter::start(b.pid);
    let t0 = Instant::now();
    api.set_state(&hook, "active")
        .await
        .expect("resume the backlog hook");
    let resumed = t0.elapsed();
    let arrivals = wait_for_arrivals(&b.receiver, from, &hooks, acked).await;
    let cpu = cpu.finish();
    let mut drain = Drain::new(t0, acked, arrivals, cpu, b.receiver.connections() - conns);
    drain.note = format!(
        "clock from the resume PATCH, which took {:.1} ms",
        resumed.as_secs_f64() * 1000.0
    );
    // The cursor is recorded asynchronously; give it a moment to catch up before reading it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut after = Value::Null;
    while Instant::now() < deadline {
        after = api.get_hook(&hook).await.unwrap_or(Value::Null);
        if after["cursor"]["sequence"].as_u64() >= Some(acked as u64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drain.hook_after = Some(format!(
        "cursor.sequence {} lag {} succeeded {} failed {} consecutive_failures {}",
        after["cursor"]["sequence"],
        after["lag"],
        after["deliveries"]["succeeded"],
        after["deliveries"]["failed"],
        after["consecutive_failures"]
    ));
    api.delete_hook(&hook).await;
    drain
}

/// Scenario 2: many active hooks on one type; events posted; time until all are received.
async fn fanout_scenario(b: &Bench, events: usize) -> Drain {
    let kind = "user.created";
    let specs = (0..FANOUT_HOOKS)
        .map(|i| {
            json!({
                "target_url": b.receiver.url(&format!("/fanout/{i}")),
                "event": kind,
            })
        })
        .collect();
    let created = Instant::now();
    let ids = create_hooks(&b.api, specs).await;
    println!(
        "  created {} hooks in {:.2} s",
        ids.len(),
        created.elapsed().as_secs_f64()
    );
    // Let the supervisor start every lane before the clock starts.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let hooks: HashSet<String> = ids.iter().cloned().collect();
    let mut api = Api::new(&b.api);
    let from = b.receiver.len();
    let conns = b.receiver.connections();
    let cpu = CpuMeter::start(b.pid);
    let t0 = Instant::now();
    let acked = api
        .post_batches(batch_bodies(kind, "usr_fanout", events))
        .await;
    let posted = t0.elapsed();
    let expected = acked * ids.len();
    let arrivals = wait_for_arrivals(&b.receiver, from, &hooks, expected).await;
    let cpu = cpu.finish();
    let mut per_hook: HashMap<&str, usize> = HashMap::new();
    for r in &arrivals.receipts {
        *per_hook.entry(r.hook_id.as_str()).or_default() += 1;
    }
    let min_hook = ids
        .iter()
        .map(|id| per_hook.get(id.as_str()).copied().unwrap_or(0))
        .min()
        .unwrap_or(0);
    let mut drain = Drain::new(
        t0,
        expected,
        arrivals,
        cpu,
        b.receiver.connections() - conns,
    );
    drain.note = format!(
        "clock from the first POST; {acked} events posted in {:.1} ms; fewest received by one hook {min_hook}",
        posted.as_secs_f64() * 1000.0
    );
    for id in &ids {
        api.delete_hook(id).await;
    }
    drain
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: latency

struct LatencyResult {
    offered: u64,
    acked: usize,
    received: usize,
    late_sends: u64,
    ack_errors: u64,
    /// receipt − due, receipt − send, receipt − ack, ack − send; sorted µs.
    from_due: Vec<u32>,
    from_send: Vec<u32>,
    from_ack: Vec<u32>,
    ack: Vec<u32>,
    worst: Option<(u32, Duration)>,
    elapsed: Duration,
    cpu: CpuUse,
    connections: u64,
}

impl LatencyResult {
    fn print(&self, peak_rss_kib: u64) {
        println!(
            "  offered {} events; {} acknowledged, {} received ({} missing) in {:.2} s; {} ingest errors; {} sends > 1 ms behind schedule",
            self.offered,
            self.acked,
            self.received,
            self.acked - self.received.min(self.acked),
            self.elapsed.as_secs_f64(),
            self.ack_errors,
            self.late_sends
        );
        let line = |name: &str, v: &[u32]| {
            println!(
                "  {name:<32} p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
                fmt_us(percentile(v, 50.0)),
                fmt_us(percentile(v, 90.0)),
                fmt_us(percentile(v, 99.0)),
                fmt_us(percentile(v, 99.9)),
                fmt_us(v.last().copied()),
            )
        };
        line("receipt − scheduled send:", &self.from_due);
        line("receipt − actual send:", &self.from_send);
        line("ingest ack − actual send:", &self.ack);
        line("receipt − ingest ack:", &self.from_ack);
        if let Some((us, at)) = self.worst {
            println!(
                "  slowest: {} for the event due {:.3} s into the run",
                fmt_us(Some(us)),
                at.as_secs_f64()
            );
        }
        println!(
            "  receiver accepted {} new TCP connections; {}; daemon peak VmRSS {}",
            self.connections,
            self.cpu.line(),
            fmt_kib(peak_rss_kib)
        );
    }
}

fn latency_body(k: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"id":"lat-{k:07}","type":"lead.created","data":{}}}"#,
        data_json("lead_bench", k)
    ))
}

async fn latency_scenario(b: &Bench, seconds: f64) -> LatencyResult {
    let mut api = Api::new(&b.api);
    let hook = api
        .create_hook(&json!({
            "target_url": b.receiver.url("/latency"),
            "event": "lead.created",
        }))
        .await
        .expect("create the latency hook");
    let hooks: HashSet<String> = [hook.clone()].into();
    // Warm-up: one event end to end, so the lane runs and the pool holds a connection.
    let from = b.receiver.len();
    let warm = Bytes::from(format!(
        r#"{{"id":"lat-warmup","type":"lead.created","data":{}}}"#,
        data_json("lead_warm", 0)
    ));
    let _ = api.call(Method::POST, "/v1/events", Some(warm)).await;
    let warm = wait_for_arrivals(&b.receiver, from, &hooks, 1).await;
    if warm.receipts.is_empty() {
        println!("  WARNING: the warm-up event was not delivered");
    }

    let total = (LATENCY_RATE as f64 * seconds).round() as u64;
    let interval = Duration::from_nanos(1_000_000_000 / LATENCY_RATE);
    let mut senders = Vec::new();
    for _ in 0..LATENCY_CONNECTIONS {
        senders.push(connect(b.api.addr).await.expect("connect to the daemon"));
    }
    let from = b.receiver.len();
    let conns = b.receiver.connections();
    let cpu = CpuMeter::start(b.pid);
    let begin = Instant::now() + Duration::from_millis(20);
    let give_up = begin + Duration::from_secs_f64(seconds) + Duration::from_secs(15);
    let pace = Pace {
        total,
        interval,
        begin,
        give_up,
    };
    let (sent, ack_errors) = post_paced(senders, &b.api, pace, latency_body, REQUEST_TIMEOUT).await;
    let acked = sent.iter().filter(|s| s.acked.is_some()).count();
    let arrivals = wait_for_arrivals(&b.receiver, from, &hooks, acked).await;
    let elapsed = begin.elapsed();
    let cpu = cpu.finish();
    let receipt_of: HashMap<u64, Instant> = arrivals
        .receipts
        .iter()
        .filter_map(|r| {
            let k = r.webhook_id.strip_prefix("lat-")?.parse::<u64>().ok()?;
            Some((k, r.at))
        })
        .collect();
    let mut result = LatencyResult {
        offered: total,
        acked,
        received: 0,
        late_sends: sent
            .iter()
            .filter(|s| s.sent.duration_since(s.due) > Duration::from_millis(1))
            .count() as u64,
        ack_errors,
        from_due: Vec::new(),
        from_send: Vec::new(),
        from_ack: Vec::new(),
        ack: Vec::new(),
        worst: None,
        elapsed,
        cpu,
        connections: b.receiver.connections() - conns,
    };
    for s in &sent {
        let (Some(acked), Some(&at)) = (s.acked, receipt_of.get(&s.k)) else {
            continue;
        };
        result.received += 1;
        let from_due = micros(at.saturating_duration_since(s.due));
        result.from_due.push(from_due);
        result
            .from_send
            .push(micros(at.saturating_duration_since(s.sent)));
        result
            .from_ack
            .push(micros(at.saturating_duration_since(acked)));
        result.ack.push(micros(acked - s.sent));
        if result.worst.is_none_or(|(w, _)| from_due > w) {
            result.worst = Some((from_due, s.due.duration_since(begin)));
        }
    }
    for v in [
        &mut result.from_due,
        &mut result.from_send,
        &mut result.from_ack,
        &mut result.ack,
    ] {
        v.sort_unstable();
    }
    api.delete_hook(&hook).await;
    result
}

// ---------------------------------------------------------------------------------------------
// Scenario 4: the raw limit

struct RawResult {
    requests: u64,
    errors: u64,
    body_bytes: usize,
    header_count: usize,
    elapsed: Duration,
    connections: u64,
    cpu_bench_cores: f64,
}

impl RawResult {
    fn rate(&self) -> f64 {
        per_sec(self.requests, self.elapsed)
    }

    fn print(&self) {
        println!(
            "  {} requests/s: {} requests ({} body bytes, {} headers each) in {:.2} s over {RAW_IN_FLIGHT} connections; {} errors; receiver accepted {} connections; bench process {:.2} cores",
            fmt_rate(self.rate()),
            self.requests,
            self.body_bytes,
            self.header_count,
            self.elapsed.as_secs_f64(),
            self.errors,
            self.connections,
            self.cpu_bench_cores
        );
    }
}

async fn raw_scenario(receiver: &Receiver, captured: &Captured, count: u64) -> RawResult {
    let next = Arc::new(AtomicU64::new(0));
    let addr = receiver.addr;
    // The same headers, with the hook id replaced by a same-length marker no scenario counts.
    let headers: Arc<Vec<(HeaderName, HeaderValue)>> = Arc::new(
        captured
            .headers
            .iter()
            .map(|(n, v)| {
                if n == "rev23-hook-id" {
                    let marker = format!("{:x<1$}", "raw_", v.len());
                    (n.clone(), HeaderValue::from_str(&marker).expect("marker"))
                } else {
                    (n.clone(), v.clone())
                }
            })
            .collect(),
    );
    let uri = format!("http://{addr}{}", captured.path);
    let conns = receiver.connections();
    let me = self_cpu_secs();
    let start = Instant::now();
    let deadline = start + RAW_TIMEOUT;
    let tasks: Vec<_> = (0..RAW_IN_FLIGHT)
        .map(|_| {
            let (next, headers, body, uri) = (
                next.clone(),
                headers.clone(),
                captured.body.clone(),
                uri.clone(),
            );
            tokio::spawn(async move {
                let (mut ok, mut errors) = (0u64, 0u64);
                let mut sender = None;
                while next.fetch_add(1, Ordering::AcqRel) < count && Instant::now() < deadline {
                    let conn = match sender.as_mut() {
                        Some(s) => s,
                        None => match connect(addr).await {
                            Ok(s) => sender.insert(s),
                            Err(_) => {
                                errors += 1;
                                continue;
                            }
                        },
                    };
                    let mut builder =
                        Request::post(uri.as_str()).header(hyper::header::HOST, addr.to_string());
                    for (n, v) in headers.iter() {
                        builder = builder.header(n, v);
                    }
                    let request = builder.body(Full::new(body.clone())).expect("raw request");
                    match exchange(conn, request, REQUEST_TIMEOUT).await {
                        Ok((StatusCode::OK, _)) => ok += 1,
                        Ok(_) => errors += 1,
                        Err(_) => {
                            errors += 1;
                            sender = None;
                        }
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    let (mut requests, mut errors) = (0, 0);
    for t in tasks {
        if let Ok((o, e)) = t.await {
            requests += o;
            errors += e;
        }
    }
    let elapsed = start.elapsed();
    RawResult {
        requests,
        errors,
        body_bytes: captured.body.len(),
        header_count: captured.headers.len() + 1,
        elapsed,
        connections: receiver.connections() - conns,
        cpu_bench_cores: (self_cpu_secs() - me) / elapsed.as_secs_f64().max(1e-9),
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario 5: idle hooks

struct IdleResult {
    hooks: usize,
    create_time: Duration,
    rss_before_kib: Option<u64>,
    peak_idle_kib: u64,
    rss_end_kib: Option<u64>,
    hwm_kib: Option<u64>,
    idle_cpu: CpuUse,
    exit: Option<i32>,
}

impl IdleResult {
    fn print(&self) {
        let kib = |v: Option<u64>| v.map_or("n/a".into(), fmt_kib);
        println!(
            "  created {} hooks in {:.2} s ({} hooks/s); VmRSS before {}",
            self.hooks,
            self.create_time.as_secs_f64(),
            fmt_rate(per_sec(self.hooks as u64, self.create_time)),
            kib(self.rss_before_kib)
        );
        println!(
            "  idle {IDLE_SETTLE:?}: peak sampled VmRSS {}, VmRSS at end {}, VmHWM {}; idle {}",
            fmt_kib(self.peak_idle_kib),
            kib(self.rss_end_kib),
            kib(self.hwm_kib),
            self.idle_cpu.line()
        );
        println!("  idle daemon stopped (exit status {:?})", self.exit);
    }
}

fn idle_scenario(
    runtime: &tokio::runtime::Runtime,
    root: &Path,
    receiver: &Receiver,
    count: usize,
) -> IdleResult {
    let mut daemon = Daemon::start(root, DaemonOptions::delivering());
    let pid = daemon.pid();
    println!("  daemon pid {pid} on http://{}", daemon.addr);
    let target = daemon.api();
    let rss_before_kib = read_status_kib(pid, "VmRSS:");
    let specs = (0..count)
        .map(|i| {
            json!({
                "target_url": receiver.url(&format!("/idle/{i}")),
                "event": "service.created",
            })
        })
        .collect();
    let start = Instant::now();
    let ids = runtime.block_on(create_hooks(&target, specs));
    let create_time = start.elapsed();
    let rss = RssSampler::start(pid);
    let cpu = CpuMeter::start(pid);
    std::thread::sleep(IDLE_SETTLE);
    let idle_cpu = cpu.finish();
    let rss_end_kib = read_status_kib(pid, "VmRSS:");
    let hwm_kib = read_status_kib(pid, "VmHWM:");
    let peak_idle_kib = rss.stop();
    let exit = daemon.stop();
    IdleResult {
        hooks: ids.len(),
        create_time,
        rss_before_kib,
        peak_idle_kib,
        rss_end_kib,
        hwm_kib,
        idle_cpu,
        exit,
    }
}

struct Summary {
    scale: f64,
    backlog_none: Drain,
    backlog_entity: Drain,
    fanout: Drain,
    latency: LatencyResult,
    raw: Option<RawResult>,
    idle: IdleResult,
    main_peak_kib: u64,
    main_hwm_kib: Option<u64>,
    loads: Vec<(String, LoadAvg)>,
}

fn complete_rate(d: &Drain) -> Option<f64> {
    d.rate().filter(|_| d.received >= d.expected)
}

/// The part's summary rows; prints them as the part's own table, with its notes.
fn summary(s: &Summary) -> Vec<Row> {
    const PART: &str = "delivery";
    let rate = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{} /s", fmt_rate(v)));
    let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2} ms"));
    let mib = |kib: u64| kib as f64 / 1024.0;
    let none = complete_rate(&s.backlog_none);
    let entity = complete_rate(&s.backlog_entity);
    let fanout = complete_rate(&s.fanout);
    let raw = s.raw.as_ref().map(RawResult::rate);
    let ratio = none.zip(raw).map(|(n, r)| n / r.max(1e-9));
    let l = &s.latency;
    let info = |section, name: &str, measured| Row::info(PART, section, name, measured);

    let rows = vec![
        Row::judged(
            PART,
            Section::Delivery,
            &format!(
                "1  backlog drain, ordering none ({} events; raw: hyper client)",
                s.backlog_none.expected
            ),
            rate(none),
            ">= 5,000 /s",
            none,
            Verdict::AtLeast(TARGET_BACKLOG_DPS),
        )
        .with_raw(rate(raw), ratio),
        Row::judged(
            PART,
            Section::Delivery,
            &format!(
                "1b backlog drain, ordering entity ({})",
                s.backlog_entity.expected
            ),
            rate(entity),
            ">= 5,000 /s",
            entity,
            Verdict::AtLeast(TARGET_BACKLOG_DPS),
        ),
        Row::judged(
            PART,
            Section::Delivery,
            &format!(
                "2  fan-out, {FANOUT_HOOKS} hooks ({} deliveries)",
                s.fanout.expected
            ),
            rate(fanout),
            ">= 10,000 /s",
            fanout,
            Verdict::AtLeast(TARGET_FANOUT_DPS),
        ),
        Row::judged(
            PART,
            Section::Delivery,
            "4  engine (1, none) / raw hyper client, 16 in flight",
            ratio.map_or("n/a".into(), fmt_ratio),
            ">= 0.5",
            ratio,
            Verdict::AtLeast(TARGET_RAW_RATIO),
        )
        .with_raw(rate(raw), None),
        Row::judged(
            PART,
            Section::Latency,
            &format!(
                "3  append→receipt p50 at {LATENCY_RATE}/s ({} events)",
                l.received
            ),
            ms(pct_ms(&l.from_due, 50.0)),
            "<= 5 ms",
            pct_ms(&l.from_due, 50.0),
            Verdict::AtMost(TARGET_P50_MS),
        ),
        Row::judged(
            PART,
            Section::Latency,
            "3  append→receipt p99",
            ms(pct_ms(&l.from_due, 99.0)),
            "<= 25 ms",
            pct_ms(&l.from_due, 99.0),
            Verdict::AtMost(TARGET_P99_MS),
        ),
        info(
            Section::Latency,
            "3  append→receipt max",
            ms(l.from_due.last().map(|&us| f64::from(us) / 1000.0)),
        ),
        info(
            Section::Latency,
            "3    of which ingest ack p50 / p99",
            format!(
                "{} / {}",
                ms(pct_ms(&l.ack, 50.0)),
                ms(pct_ms(&l.ack, 99.0))
            ),
        ),
        Row::judged(
            PART,
            Section::Memory,
            &format!("5  VmHWM, fresh daemon with {} idle hooks", s.idle.hooks),
            s.idle.hwm_kib.map_or("n/a".into(), fmt_kib),
            "<= 100 MiB",
            s.idle.hwm_kib.map(mib),
            Verdict::AtMost(TARGET_IDLE_RSS_MIB),
        ),
        Row::judged(
            PART,
            Section::Memory,
            "5  peak sampled VmRSS while idle",
            fmt_kib(s.idle.peak_idle_kib),
            "<= 100 MiB",
            Some(mib(s.idle.peak_idle_kib)),
            Verdict::AtMost(TARGET_IDLE_RSS_MIB),
        ),
        info(
            Section::Memory,
            "5  idle daemon CPU",
            format!("{:.3} cores", s.idle.idle_cpu.daemon_cores),
        ),
        info(
            Section::Memory,
            "main daemon peak VmRSS / VmHWM (scenarios 1-3)",
            format!(
                "{} / {}",
                fmt_kib(s.main_peak_kib),
                s.main_hwm_kib.map_or("n/a".into(), fmt_kib)
            ),
        ),
    ];
    print_rows(
        &format!("DELIVERY SUMMARY (BENCH_SCALE={})", s.scale),
        &rows,
        false,
    );
    let loads: Vec<String> = s
        .loads
        .iter()
        .map(|(name, l)| {
            format!(
                "{name} {}",
                l.map_or("n/a".into(), |l| format!("{:.2}", l.0))
            )
        })
        .collect();
    println!("1-minute load average at: {}", loads.join(", "));
    let incomplete: Vec<&str> = [
        ("1", &s.backlog_none),
        ("1b", &s.backlog_entity),
        ("2", &s.fanout),
    ]
    .iter()
    .filter(|(_, d)| d.received < d.expected)
    .map(|(n, _)| *n)
    .collect();
    if !incomplete.is_empty() || l.received < l.acked {
        println!(
            "INCOMPLETE deliveries in scenario(s) {}{}: their throughput shows n/a (see above)",
            incomplete.join(", "),
            if l.received < l.acked { " 3" } else { "" }
        );
    }
    rows
}
