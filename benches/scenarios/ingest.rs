//! Ingest part of the `engine` benchmark for `rev23-webhooks`: how fast the real daemon durably accepts events over
//! HTTP, how quickly it acknowledges them at a steady offered rate, how much memory it uses doing
//! so, and how that compares with the raw limit of redb on the same machine in the same run.
//!
//! Run it (release build; the figures of a debug build mean nothing):
//!
//! ```text
//! cargo bench --bench engine -- ingest                    # 5 s per timed scenario
//! BENCH_SECONDS=3 cargo bench --bench engine -- ingest    # shorter
//! ```
//!
//! What it does, in order:
//! 1. Starts the real daemon binary (`serve --config FILE`, `listen = "127.0.0.1:0"`, a temp data
//!    dir under `CARGO_TARGET_TMPDIR` — the same disk as the raw runs —, logging at warn,
//!    `[limits] ingest_rate_limit_per_minute` raised so the rate limiter never answers 429) and
//!    uses the owner key from `<data_dir>/owner.key`. A sanity check posts one event and one
//!    batch and checks the replies in full.
//! 2. **Raw redb limit, batch 1** (the daemon sits idle): in a fresh temp database opened with the
//!    library's `journal::schema::open` and the daemon's default cache size, one thread appends
//!    the way the journal writer does — `codec::encode` of an [`Envelope`] whose payload is the
//!    same `data` JSON the HTTP scenarios send, the `EVENT_IDS` duplicate lookup, the `JOURNAL`
//!    row and its `EVENT_IDS` row — with one `Durability::Immediate` commit per batch. This is the
//!    ceiling of a writer that commits each request on its own.
//! 3. **Scenario 1, single events, closed loop**: 64 HTTP/1.1 keep-alive connections, each
//!    sending one `POST /v1/events` with one event at a time for `BENCH_SECONDS` → events/s and
//!    request latency p50/p99.
//! 4. **Raw redb limit, batch 100**, as in 2 (run right before the HTTP figure it is compared
//!    with, because the shared disk's speed drifts).
//! 5. **Scenario 2, batched, closed loop**: 12 connections, 100 events per request → events/s.
//! 6. **Scenario 3, ack latency, open loop**: 1,000 single-event requests/s, due every 1 ms on a
//!    fixed schedule set by a pacer thread (nanosleep precision) and dealt round-robin to 8
//!    connections. Latency is measured from each request's *due* time, so a slow response that
//!    delays the next send on its connection shows up in the figures (no coordinated omission).
//!    The service time (from the actual send) is shown too.
//!
//! While the daemon runs, its `VmRSS` is sampled from `/proc/<pid>/status` every 50 ms; the
//! peak per scenario and overall, and the final `VmHWM`, are reported. The daemon's and this
//! process's CPU use per scenario are shown too, since load generator and daemon share the cores.
//!
//! Every response status is checked (non-2xx and transport failures are counted and printed; a
//! scenario stops early if errors dominate), and after each scenario the journal head from
//! `/readyz` is compared with the number of acknowledged events. Before each phase the bench
//! waits (at most 10 s) until `/readyz` shows an empty write queue and caught-up projectors, so
//! one phase's backlog does not land in the next one's figures. Every loop is bounded by time
//! and by count, and the daemon gets SIGTERM (then SIGKILL if it hangs) at the end.
//!
//! On a machine shared with other work the disk's fsync latency and the CPUs left over vary a
//! lot from run to run; compare the HTTP and raw figures of the same run, not across runs. At the
//! end a table prints each figure beside its target with PASS/MISS; [`run`] returns its rows for
//! `engine`'s combined table. The bench never asserts on timings: it exits 0 when targets are
//! missed. HTTP ingest is also shown as a ratio of the raw redb figure of the same batch size;
//! for single events the daemon's group commit folds many requests into one fsync, so that ratio
//! can (and should) exceed 1.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use redb::{Durability, ReadableTable};
use rev23_webhooks::clock;
use rev23_webhooks::config::Config;
use rev23_webhooks::ids;
use rev23_webhooks::journal::codec::{self, Envelope, Origin};
use rev23_webhooks::journal::schema;

use crate::support::daemon::{Daemon, DaemonOptions};
use crate::support::http::{
    connect, exchange, journal_head, max_projector_lag, readyz, settle, ApiTarget, Sender,
};
use crate::support::measure::{
    micros, pct_ms, per_sec, percentile, read_status_kib, CpuMeter, CpuUse, RssSampler,
};
use crate::support::payload;
use crate::support::report::{
    fmt_kib, fmt_rate, fmt_ratio, fmt_us, print_rows, Row, Section, Verdict,
};
use crate::support::BenchConfig;

const SINGLE_CLIENTS: usize = 64;
const BATCH_CLIENTS: usize = 12;
const BATCH_SIZE: usize = 100;
const OPEN_LOOP_RATE: u64 = 1_000;
const OPEN_LOOP_CONNECTIONS: u64 = 8;

const TARGET_SINGLE_EPS: f64 = 10_000.0;
const TARGET_BATCH_EPS: f64 = 100_000.0;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_BATCH_RATIO: f64 = 0.5;
const TARGET_RSS_MIB: f64 = 64.0;

/// Longest one request may take; past it the request counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time an open-loop worker may run past its schedule before it gives up.
const OPEN_LOOP_GRACE: Duration = Duration::from_secs(15);
/// Longest the bench waits for the daemon to go idle between phases.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bounds on every loop besides its deadline.
const MAX_REQUESTS_PER_TASK: u64 = 10_000_000;
const MAX_SAMPLES_PER_TASK: usize = 1_000_000;
const MAX_RAW_COMMITS: u64 = 10_000_000;
/// Distinct request bodies each client cycles through (the daemon assigns fresh event ids).
const BODIES_PER_CLIENT: u64 = 16;
/// A scenario stops once it has seen more than this many errors and more errors than successes.
const ERROR_ABORT_MIN: u64 = 100;

/// Runs the ingest part; returns its summary rows (after printing its detail lines and table).
pub fn run(config: &BenchConfig) -> Vec<Row> {
    let seconds = config.seconds;
    let duration = Duration::from_secs(seconds);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "rev23-webhooks ingest benchmark: {seconds} s per timed scenario, {cpus} CPUs visible"
    );
    println!("(load generator and daemon share these CPUs)\n");

    let root = tempfile::Builder::new()
        .prefix("rev23-ingest-bench-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temp dir under CARGO_TARGET_TMPDIR");

    let mut daemon = Daemon::start(root.path(), DaemonOptions::default());
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
    let target = Arc::new(daemon.api());

    let results = runtime.block_on(async {
        sanity_check(&target).await;
        let mut head = journal_head(&target).await.unwrap_or(0);

        settle(&target, SETTLE_TIMEOUT).await;
        let raw_single = raw_phase(root.path(), 1, duration).await;
        println!("\n== scenario 1: single events, {SINGLE_CLIENTS} keep-alive connections, closed loop ==");
        let single =
            closed_loop(&target, &daemon, &rss, SINGLE_CLIENTS, 1, PLAIN_TYPE, duration).await;
        single.print();
        head = check_head(&target, head, single.stats.ok_events).await;

        settle(&target, SETTLE_TIMEOUT).await;
        let raw_batch = raw_phase(root.path(), BATCH_SIZE, duration).await;
        println!("\n== scenario 2: batches of {BATCH_SIZE}, {BATCH_CLIENTS} keep-alive connections, closed loop ==");
        let batch = closed_loop(&target, &daemon, &rss, BATCH_CLIENTS, BATCH_SIZE, PLAIN_TYPE, duration).await;
        batch.print();
        head = check_head(&target, head, batch.stats.ok_events).await;

        settle(&target, SETTLE_TIMEOUT).await;
        println!("\n== scenario 2c: as 2, but {CUSTOMER_TYPE} (the customer view projects each through the same writer) ==");
        let customers = closed_loop(&target, &daemon, &rss, BATCH_CLIENTS, BATCH_SIZE, CUSTOMER_TYPE, duration).await;
        customers.print();
        head = check_head(&target, head, customers.stats.ok_events).await;

        println!(
            "\n== scenario 3: single events at {OPEN_LOOP_RATE}/s offered, open loop over {OPEN_LOOP_CONNECTIONS} connections =="
        );
        settle(&target, SETTLE_TIMEOUT).await;
        let open = open_loop(&target, &daemon, &rss, duration).await;
        open.print();
        check_head(&target, head, open.ok).await;
        (raw_single, raw_batch, single, batch, customers, open)
    });
    let (raw_single, raw_batch, single, batch, customers, open) = results;
    let hwm_kib = read_status_kib(daemon.pid(), "VmHWM:");
    let rss_now_kib = read_status_kib(daemon.pid(), "VmRSS:");
    let peak_rss_kib = rss.stop();
    drop(runtime);
    let exit = daemon.stop();
    println!("\ndaemon stopped (exit status {exit:?})");

    summary(&Summary {
        seconds,
        raw_single,
        raw_batch,
        single,
        batch,
        customers,
        open,
        peak_rss_kib,
        rss_now_kib,
        hwm_kib,
    })
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// The `data` object of event `n`: a customer of realistic size (196 bytes; 231 with the event).
fn data_json(n: u64) -> String {
    payload::data_json("cus_bench", n, "ingest benchmark")
}

/// The type scenarios 1–3 ingest: one only hook matching reads (no other projection).
const PLAIN_TYPE: &str = "lead.created";
/// Scenario 2c's type: the customer view (SPEC §9) projects each one through the same writer.
const CUSTOMER_TYPE: &str = "customer.created";

fn event_json(kind: &str, n: u64) -> String {
    format!(r#"{{"type":"{kind}","data":{}}}"#, data_json(n))
}

/// Request bodies for one client: single event objects, or arrays of `batch` events.
fn bodies(kind: &str, client: u64, batch: usize) -> Arc<Vec<Bytes>> {
    let batch = batch as u64;
    let bodies = (0..BODIES_PER_CLIENT)
        .map(|i| {
            let first = (client * BODIES_PER_CLIENT + i) * batch;
            let text = if batch == 1 {
                event_json(kind, first)
            } else {
                let items: Vec<String> = (first..first + batch)
                    .map(|n| event_json(kind, n))
                    .collect();
                format!("[{}]", items.join(","))
            };
            Bytes::from(text)
        })
        .collect();
    Arc::new(bodies)
}

// ---------------------------------------------------------------------------------------------
// Raw redb

struct RawResult {
    batch: usize,
    events: u64,
    commits: u64,
    elapsed: Duration,
    commit_us: Vec<u32>,
}

impl RawResult {
    fn events_per_sec(&self) -> f64 {
        per_sec(self.events, self.elapsed)
    }

    fn print(&self) {
        let mut lat = self.commit_us.clone();
        lat.sort_unstable();
        println!(
            "  {} events/s  ({} commits of {} events in {:.2} s; commit p50 {}  p99 {}  max {})",
            fmt_rate(self.events_per_sec()),
            self.commits,
            self.batch,
            self.elapsed.as_secs_f64(),
            fmt_us(percentile(&lat, 50.0)),
            fmt_us(percentile(&lat, 99.0)),
            fmt_us(lat.last().copied()),
        );
    }
}

/// Runs [`raw_redb`] on a blocking thread (the daemon sits idle meanwhile) and prints it.
async fn raw_phase(root: &Path, batch: usize, duration: Duration) -> RawResult {
    println!(
        "\n== raw redb limit, batch {batch}: one thread, Durability::Immediate, one commit per batch, fresh db =="
    );
    let root = root.to_path_buf();
    let result = tokio::task::spawn_blocking(move || raw_redb(&root, batch, duration))
        .await
        .expect("raw redb run panicked");
    result.print();
    result
}

/// Appends like the journal writer, one durable commit per `batch` entries, for `duration`.
fn raw_redb(root: &Path, batch: usize, duration: Duration) -> RawResult {
    let dir = root.join(format!("raw-redb-batch-{batch}"));
    std::fs::create_dir_all(&dir).expect("raw redb dir");
    let cache = Config::default().storage.cache_size_bytes;
    let db = schema::open(&dir, cache).expect("open raw redb");
    let origin = Origin {
        key_id: Some(ids::new_id(ids::KEY_PREFIX)),
        user_id: Some(ids::new_id(ids::USER_PREFIX)),
    };
    let payloads: Vec<Vec<u8>> = (0..BATCH_SIZE as u64 * BODIES_PER_CLIENT)
        .map(|n| data_json(n).into_bytes())
        .collect();
    let mut next_offset = 1u64;
    let mut commits = 0u64;
    let mut commit_us = Vec::new();
    let start = Instant::now();
    while start.elapsed() < duration && commits < MAX_RAW_COMMITS {
        let t = Instant::now();
        let mut txn = db.begin_write().expect("begin_write");
        txn.set_durability(Durability::Immediate)
            .expect("set_durability");
        {
            let mut journal = txn.open_table(schema::JOURNAL).expect("journal table");
            let mut event_ids = txn.open_table(schema::EVENT_IDS).expect("event_ids table");
            let appended_at_ms = clock::now_ms();
            for _ in 0..batch {
                let id = ids::new_id(ids::EVENT_PREFIX);
                let duplicate = event_ids.get(id.as_str()).expect("id lookup").is_some();
                assert!(!duplicate, "fresh ULID already present");
                let payload = &payloads[(next_offset as usize) % payloads.len()];
                let envelope = Envelope {
                    offset: next_offset,
                    id: id.clone(),
                    kind: "customer.created".into(),
                    timestamp_ms: appended_at_ms,
                    appended_at_ms,
                    origin: origin.clone(),
                    assigned_user_id: None,
                    entity_id: Some(format!("cus_bench_{next_offset:010}")),
                    payload: payload.clone(),
                };
                let bytes = codec::encode(&envelope).expect("encode");
                journal
                    .insert(next_offset, bytes.as_slice())
                    .expect("journal insert");
                event_ids
                    .insert(id.as_str(), next_offset)
                    .expect("event_ids insert");
                next_offset += 1;
            }
        }
        txn.commit().expect("commit");
        commits += 1;
        if commit_us.len() < MAX_SAMPLES_PER_TASK {
            commit_us.push(micros(t.elapsed()));
        }
    }
    RawResult {
        batch,
        events: next_offset - 1,
        commits,
        elapsed: start.elapsed(),
        commit_us,
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP client

/// Sends one request on `sender` and reads the whole response (bounded by [`REQUEST_TIMEOUT`]).
async fn send(
    sender: &mut Sender,
    target: &ApiTarget,
    method: Method,
    path: &str,
    body: Option<Bytes>,
) -> Result<(StatusCode, Bytes), String> {
    let request = target.request(method, path, body)?;
    exchange(sender, request, REQUEST_TIMEOUT).await
}

async fn post_events(
    sender: &mut Sender,
    target: &ApiTarget,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    send(sender, target, Method::POST, "/v1/events", Some(body)).await
}

/// One event and one batch, with their responses checked in full, before anything is timed.
async fn sanity_check(target: &ApiTarget) {
    let mut sender = connect(target.addr).await.expect("connect to the daemon");
    for (batch, body) in [
        (1, bodies(PLAIN_TYPE, 9_999, 1)[0].clone()),
        (BATCH_SIZE, bodies(PLAIN_TYPE, 0, BATCH_SIZE)[0].clone()),
    ] {
        let (status, reply) = post_events(&mut sender, target, body)
            .await
            .expect("sanity POST /v1/events");
        let text = String::from_utf8_lossy(&reply);
        assert_eq!(
            status,
            StatusCode::CREATED,
            "sanity POST /v1/events: {status} {text}"
        );
        let json: serde_json::Value = serde_json::from_slice(&reply).expect("sanity reply is JSON");
        let data = json["data"].as_array().expect("sanity reply has data[]");
        assert_eq!(data.len(), batch, "sanity reply lists every event: {text}");
        let offsets: Vec<u64> = data.iter().filter_map(|d| d["offset"].as_u64()).collect();
        assert_eq!(offsets.len(), batch, "every event has an offset: {text}");
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "a batch gets consecutive offsets: {text}"
        );
        assert!(
            data.iter().all(|d| d["duplicate"] == false),
            "nothing is a duplicate: {text}"
        );
    }
    println!(
        "sanity check: single and batched POST /v1/events answered 201 with consecutive offsets"
    );
}

/// Prints whether the journal grew by exactly the acknowledged events, and the projector lag
/// right after the load; returns the new head.
async fn check_head(target: &ApiTarget, before: u64, acked: u64) -> u64 {
    let Some(ready) = readyz(target).await else {
        println!("  journal head: /readyz did not answer");
        return before;
    };
    let Some(after) = ready["journal_head"].as_u64() else {
        println!("  journal head: /readyz has no journal_head");
        return before;
    };
    let grown = after.saturating_sub(before);
    let verdict = if grown == acked {
        "matches"
    } else {
        "DIFFERS (unacknowledged or timed-out requests?)"
    };
    println!(
        "  journal head {before} → {after}: +{grown} entries for {acked} acknowledged events — {verdict}; \
         projector lag right after: {}",
        max_projector_lag(&ready)
    );
    after
}

// ---------------------------------------------------------------------------------------------
// Statistics

#[derive(Default)]
struct Stats {
    ok_requests: u64,
    ok_events: u64,
    errors: BTreeMap<String, u64>,
    error_total: u64,
    error_sample: Option<String>,
    latency_us: Vec<u32>,
}

impl Stats {
    fn ok(&mut self, events: u64, latency: Duration) {
        self.ok_requests += 1;
        self.ok_events += events;
        if self.latency_us.len() < MAX_SAMPLES_PER_TASK {
            self.latency_us.push(micros(latency));
        }
    }

    fn error(&mut self, kind: String, detail: &str) {
        self.error_total += 1;
        *self.errors.entry(kind).or_default() += 1;
        if self.error_sample.is_none() {
            self.error_sample = Some(detail.chars().take(300).collect());
        }
    }

    fn record(
        &mut self,
        outcome: Result<(StatusCode, Bytes), String>,
        events: u64,
        latency: Duration,
    ) -> bool {
        match outcome {
            Ok((status, _)) if status.is_success() => {
                self.ok(events, latency);
                true
            }
            Ok((status, body)) => {
                self.error(
                    format!("HTTP {}", status.as_u16()),
                    &String::from_utf8_lossy(&body),
                );
                true
            }
            Err(e) => {
                let kind = e.split(':').next().unwrap_or("transport").to_string();
                self.error(format!("transport ({kind})"), &e);
                false
            }
        }
    }

    fn errors_dominate(&self) -> bool {
        self.error_total > ERROR_ABORT_MIN && self.error_total > self.ok_requests
    }

    fn merge(&mut self, other: Stats) {
        self.ok_requests += other.ok_requests;
        self.ok_events += other.ok_events;
        self.error_total += other.error_total;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        if self.error_sample.is_none() {
            self.error_sample = other.error_sample;
        }
        self.latency_us.extend(other.latency_us);
    }

    fn print_errors(&self, aborted: bool) {
        if self.error_total == 0 {
            println!("  errors: none (every response 2xx)");
            return;
        }
        let list: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k} ×{v}"))
            .collect();
        println!("  ERRORS: {} ({})", self.error_total, list.join(", "));
        if let Some(sample) = &self.error_sample {
            println!("  first error: {sample}");
        }
        if aborted {
            println!("  the scenario stopped early: errors dominated");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios 1 and 2: closed loop

struct ClosedLoopResult {
    clients: usize,
    batch: usize,
    stats: Stats,
    elapsed: Duration,
    aborted: bool,
    cpu: CpuUse,
    peak_rss_kib: u64,
}

impl ClosedLoopResult {
    fn events_per_sec(&self) -> f64 {
        per_sec(self.stats.ok_events, self.elapsed)
    }

    fn latency_ms(&self, p: f64) -> Option<f64> {
        percentile(&self.stats.latency_us, p).map(|us| f64::from(us) / 1000.0)
    }

    fn print(&self) {
        println!(
            "  {} events/s  ({} requests of {} in {:.2} s over {} connections, {} req/s)",
            fmt_rate(self.events_per_sec()),
            self.stats.ok_requests,
            self.batch,
            self.elapsed.as_secs_f64(),
            self.clients,
            fmt_rate(per_sec(self.stats.ok_requests, self.elapsed)),
        );
        let lat = &self.stats.latency_us;
        println!(
            "  request latency: p50 {}  p99 {}  max {}",
            fmt_us(percentile(lat, 50.0)),
            fmt_us(percentile(lat, 99.0)),
            fmt_us(lat.last().copied()),
        );
        println!(
            "  CPU: daemon {:.2} cores, load generator {:.2} cores; daemon peak VmRSS {}",
            self.cpu.daemon_cores,
            self.cpu.bench_cores,
            fmt_kib(self.peak_rss_kib)
        );
        self.stats.print_errors(self.aborted);
    }
}

async fn closed_loop(
    target: &Arc<ApiTarget>,
    daemon: &Daemon,
    rss: &RssSampler,
    clients: usize,
    batch: usize,
    kind: &str,
    duration: Duration,
) -> ClosedLoopResult {
    let mut senders = Vec::with_capacity(clients);
    for _ in 0..clients {
        senders.push(connect(target.addr).await.expect("connect to the daemon"));
    }
    let abort = Arc::new(AtomicBool::new(false));
    rss.reset_phase();
    let cpu = CpuMeter::start(daemon.pid());
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(client, sender)| {
            let worker = ClosedLoopWorker {
                target: target.clone(),
                bodies: bodies(kind, client as u64, batch),
                events_per_request: batch as u64,
                deadline,
                abort: abort.clone(),
            };
            tokio::spawn(worker.run(sender))
        })
        .collect();
    let mut stats = Stats::default();
    for task in tasks {
        match task.await {
            Ok(s) => stats.merge(s),
            Err(e) => stats.error("client task panicked".into(), &e.to_string()),
        }
    }
    let elapsed = start.elapsed();
    let cpu = cpu.finish();
    stats.latency_us.sort_unstable();
    ClosedLoopResult {
        clients,
        batch,
        stats,
        elapsed,
        aborted: abort.load(Ordering::Acquire),
        cpu,
        peak_rss_kib: rss.take_phase_peak(),
    }
}

struct ClosedLoopWorker {
    target: Arc<ApiTarget>,
    bodies: Arc<Vec<Bytes>>,
    events_per_request: u64,
    deadline: Instant,
    abort: Arc<AtomicBool>,
}

impl ClosedLoopWorker {
    /// Sends requests back to back on one connection until the deadline (reconnecting after a
    /// transport error).
    async fn run(self, sender: Sender) -> Stats {
        let mut stats = Stats::default();
        let mut sender = Some(sender);
        let mut i = 0u64;
        while Instant::now() < self.deadline
            && i < MAX_REQUESTS_PER_TASK
            && !self.abort.load(Ordering::Relaxed)
        {
            i += 1;
            let conn = match sender.as_mut() {
                Some(s) => s,
                None => match connect(self.target.addr).await {
                    Ok(s) => sender.insert(s),
                    Err(e) => {
                        stats.error("reconnect".into(), &e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let body = self.bodies[(i % self.bodies.len() as u64) as usize].clone();
            let sent = Instant::now();
            let outcome = post_events(conn, &self.target, body).await;
            if !stats.record(outcome, self.events_per_request, sent.elapsed()) {
                sender = None;
            }
            if stats.errors_dominate() {
                self.abort.store(true, Ordering::Relaxed);
            }
        }
        stats
    }
}

// ---------------------------------------------------------------------------------------------
// Scenario 3: open loop

struct OpenLoopResult {
    offered: u64,
    ok: u64,
    not_sent: u64,
    from_schedule_us: Vec<u32>,
    service_us: Vec<u32>,
    late_sends: u64,
    worst: Option<(u32, Duration)>,
    stats: Stats,
    elapsed: Duration,
    aborted: bool,
    cpu: CpuUse,
    peak_rss_kib: u64,
}

impl OpenLoopResult {
    fn print(&self) {
        println!(
            "  offered {} requests at {OPEN_LOOP_RATE}/s; {} acknowledged in {:.2} s ({} events/s achieved){}",
            self.offered,
            self.ok,
            self.elapsed.as_secs_f64(),
            fmt_rate(per_sec(self.ok, self.elapsed)),
            if self.not_sent > 0 {
                format!("; {} never sent (schedule overran)", self.not_sent)
            } else {
                String::new()
            }
        );
        let s = &self.from_schedule_us;
        println!(
            "  ack latency from scheduled send: p50 {}  p99 {}  p99.9 {}  max {}",
            fmt_us(percentile(s, 50.0)),
            fmt_us(percentile(s, 99.0)),
            fmt_us(percentile(s, 99.9)),
            fmt_us(s.last().copied()),
        );
        let v = &self.service_us;
        println!(
            "  service time from actual send:   p50 {}  p99 {}  p99.9 {}  max {}",
            fmt_us(percentile(v, 50.0)),
            fmt_us(percentile(v, 99.0)),
            fmt_us(percentile(v, 99.9)),
            fmt_us(v.last().copied()),
        );
        println!(
            "  sends more than 1 ms behind schedule: {} (previous request on that connection still in flight, or the load generator descheduled)",
            self.late_sends
        );
        if let Some((us, at)) = self.worst {
            println!(
                "  slowest ack: {} for the request due {:.3} s into the run",
                fmt_us(Some(us)),
                at.as_secs_f64()
            );
        }
        println!(
            "  CPU: daemon {:.2} cores, load generator {:.2} cores; daemon peak VmRSS {}",
            self.cpu.daemon_cores,
            self.cpu.bench_cores,
            fmt_kib(self.peak_rss_kib)
        );
        self.stats.print_errors(self.aborted);
    }
}

#[derive(Default)]
struct OpenLoopStats {
    stats: Stats,
    from_schedule_us: Vec<u32>,
    service_us: Vec<u32>,
    not_sent: u64,
    late_sends: u64,
    /// The slowest acknowledgement (from its due time) and when it was due, from the start.
    worst: Option<(u32, Duration)>,
}

impl OpenLoopStats {
    fn note_worst(&mut self, latency_us: u32, due_at: Duration) {
        if self.worst.is_none_or(|(w, _)| latency_us > w) {
            self.worst = Some((latency_us, due_at));
        }
    }
}

async fn open_loop(
    target: &Arc<ApiTarget>,
    daemon: &Daemon,
    rss: &RssSampler,
    duration: Duration,
) -> OpenLoopResult {
    let total = OPEN_LOOP_RATE * duration.as_secs();
    let interval = Duration::from_nanos(1_000_000_000 / OPEN_LOOP_RATE);
    let mut senders = Vec::new();
    for _ in 0..OPEN_LOOP_CONNECTIONS {
        senders.push(connect(target.addr).await.expect("connect to the daemon"));
    }
    let abort = Arc::new(AtomicBool::new(false));
    rss.reset_phase();
    let cpu = CpuMeter::start(daemon.pid());
    let begin = Instant::now() + Duration::from_millis(20);
    let give_up = begin + duration + OPEN_LOOP_GRACE;
    let mut schedules = Vec::new();
    let tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(c, sender)| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            schedules.push(tx);
            let worker = OpenLoopWorker {
                target: target.clone(),
                bodies: bodies(PLAIN_TYPE, 1_000 + c as u64, 1),
                schedule: rx,
                begin,
                give_up,
                abort: abort.clone(),
            };
            tokio::spawn(worker.run(sender))
        })
        .collect();
    // The pacer: a plain thread with nanosleep precision (tokio's timer rounds sleeps up to the
    // next millisecond, which would add its own latency to every request). Request k is due at
    // `begin + k * interval` and goes to connection k mod n; a connection still busy with its
    // previous request sends it late, and that lateness counts.
    let pacer_abort = abort.clone();
    let pacer = tokio::task::spawn_blocking(move || {
        let mut scheduled = 0u64;
        for k in 0..total {
            if pacer_abort.load(Ordering::Relaxed) {
                break;
            }
            let due = begin + interval * u32::try_from(k).unwrap_or(u32::MAX);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let conn = (k % OPEN_LOOP_CONNECTIONS) as usize;
            if schedules[conn].send(due).is_err() {
                break;
            }
            scheduled += 1;
        }
        scheduled
    });
    let scheduled = pacer.await.unwrap_or(0);
    let mut all = OpenLoopStats::default();
    for task in tasks {
        match task.await {
            Ok(s) => {
                all.stats.merge(s.stats);
                all.from_schedule_us.extend(s.from_schedule_us);
                all.service_us.extend(s.service_us);
                all.not_sent += s.not_sent;
                all.late_sends += s.late_sends;
                if let Some((us, at)) = s.worst {
                    all.note_worst(us, at);
                }
            }
            Err(e) => all
                .stats
                .error("client task panicked".into(), &e.to_string()),
        }
    }
    all.not_sent += total - scheduled;
    let elapsed = begin.elapsed();
    let cpu = cpu.finish();
    all.from_schedule_us.sort_unstable();
    all.service_us.sort_unstable();
    OpenLoopResult {
        offered: total,
        ok: all.stats.ok_events,
        not_sent: all.not_sent,
        from_schedule_us: all.from_schedule_us,
        service_us: all.service_us,
        late_sends: all.late_sends,
        worst: all.worst,
        stats: all.stats,
        elapsed,
        aborted: abort.load(Ordering::Acquire),
        cpu,
        peak_rss_kib: rss.take_phase_peak(),
    }
}

struct OpenLoopWorker {
    target: Arc<ApiTarget>,
    bodies: Arc<Vec<Bytes>>,
    /// Due times of this connection's requests, from the pacer; ends when the pacer is done.
    schedule: tokio::sync::mpsc::UnboundedReceiver<Instant>,
    begin: Instant,
    give_up: Instant,
    abort: Arc<AtomicBool>,
}

impl OpenLoopWorker {
    /// Sends each request as soon as it is due and the connection is free; latency counts from
    /// the due time.
    async fn run(mut self, sender: Sender) -> OpenLoopStats {
        let mut out = OpenLoopStats::default();
        let mut sender = Some(sender);
        let mut k = 0u64;
        while let Some(scheduled) = self.schedule.recv().await {
            k += 1;
            if self.abort.load(Ordering::Relaxed) || Instant::now() > self.give_up {
                out.not_sent += 1;
                continue;
            }
            let conn = match sender.as_mut() {
                Some(s) => s,
                None => match connect(self.target.addr).await {
                    Ok(s) => sender.insert(s),
                    Err(e) => {
                        out.stats.error("reconnect".into(), &e);
                        continue;
                    }
                },
            };
            let sent = Instant::now();
            if sent.duration_since(scheduled) > Duration::from_millis(1) {
                out.late_sends += 1;
            }
            let body = self.bodies[(k % self.bodies.len() as u64) as usize].clone();
            let outcome = post_events(conn, &self.target, body).await;
            let done = Instant::now();
            let succeeded = matches!(&outcome, Ok((s, _)) if s.is_success());
            if !out.stats.record(outcome, 1, done - scheduled) {
                sender = None;
            }
            if succeeded && out.from_schedule_us.len() < MAX_SAMPLES_PER_TASK {
                let latency = micros(done - scheduled);
                out.from_schedule_us.push(latency);
                out.service_us.push(micros(done - sent));
                out.note_worst(latency, scheduled.duration_since(self.begin));
            }
            if out.stats.errors_dominate() {
                self.abort.store(true, Ordering::Relaxed);
            }
        }
        out
    }
}

struct Summary {
    seconds: u64,
    raw_single: RawResult,
    raw_batch: RawResult,
    single: ClosedLoopResult,
    batch: ClosedLoopResult,
    /// Scenario 2 with customer events (the customer view writes beside each append).
    customers: ClosedLoopResult,
    open: OpenLoopResult,
    peak_rss_kib: u64,
    rss_now_kib: Option<u64>,
    hwm_kib: Option<u64>,
}

/// The part's summary rows; prints them as the part's own table, with its notes.
fn summary(s: &Summary) -> Vec<Row> {
    const PART: &str = "ingest";
    let single_eps = s.single.events_per_sec();
    let batch_eps = s.batch.events_per_sec();
    let raw1 = s.raw_single.events_per_sec();
    let raw100 = s.raw_batch.events_per_sec();
    let ratio = |http: f64, raw: f64| (raw > 0.0).then(|| http / raw);
    let single_ratio = ratio(single_eps, raw1);
    let batch_ratio = ratio(batch_eps, raw100);
    let open_p50 = pct_ms(&s.open.from_schedule_us, 50.0);
    let open_p99 = pct_ms(&s.open.from_schedule_us, 99.0);
    let open_max = s
        .open
        .from_schedule_us
        .last()
        .map(|&us| f64::from(us) / 1000.0);
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2} ms"));
    let x = |v: Option<f64>| v.map_or("n/a".to_string(), fmt_ratio);
    let rate = |v: f64| format!("{} /s", fmt_rate(v));
    let info = |section, name: &str, measured| Row::info(PART, section, name, measured);

    let rows = vec![
        Row::judged(
            PART,
            Section::Ingest,
            "1 single events/s, 64 conns (raw: redb, batch 1)",
            rate(single_eps),
            ">= 10,000 /s",
            Some(single_eps),
            Verdict::AtLeast(TARGET_SINGLE_EPS),
        )
        .with_raw(rate(raw1), single_ratio),
        Row::judged(
            PART,
            Section::Ingest,
            "2 batched lead.created/s, 100/req, 12 conns (raw: batch 100)",
            rate(batch_eps),
            ">= 100,000 /s",
            Some(batch_eps),
            Verdict::AtLeast(TARGET_BATCH_EPS),
        )
        .with_raw(rate(raw100), batch_ratio),
        Row::judged(
            PART,
            Section::Ingest,
            "2c batched customer.created/s (+ customer view), 100/req",
            rate(s.customers.events_per_sec()),
            ">= 100,000 /s",
            Some(s.customers.events_per_sec()),
            Verdict::AtLeast(TARGET_BATCH_EPS),
        )
        .with_raw(rate(raw100), ratio(s.customers.events_per_sec(), raw100)),
        Row::judged(
            PART,
            Section::Ingest,
            "2 HTTP/raw ratio, batch 100",
            x(batch_ratio),
            ">= 0.5",
            batch_ratio,
            Verdict::AtLeast(TARGET_BATCH_RATIO),
        )
        .with_raw(rate(raw100), None),
        info(
            Section::Latency,
            "1 single events: request latency p50",
            ms(s.single.latency_ms(50.0)),
        ),
        info(
            Section::Latency,
            "1 single events: request latency p99",
            ms(s.single.latency_ms(99.0)),
        ),
        info(
            Section::Latency,
            "2 batches of 100: request latency p50",
            ms(s.batch.latency_ms(50.0)),
        ),
        info(
            Section::Latency,
            "2 batches of 100: request latency p99",
            ms(s.batch.latency_ms(99.0)),
        ),
        Row::judged(
            PART,
            Section::Latency,
            "3 ack p99 at 1,000/s open loop",
            ms(open_p99),
            "<= 10 ms",
            open_p99,
            Verdict::AtMost(TARGET_P99_MS),
        ),
        info(Section::Latency, "3 ack p50", ms(open_p50)),
        info(Section::Latency, "3 ack max", ms(open_max)),
        Row::judged(
            PART,
            Section::Memory,
            "daemon peak VmRSS (sampled every 50 ms)",
            fmt_kib(s.peak_rss_kib),
            "<= 64 MiB",
            Some(mib(s.peak_rss_kib)),
            Verdict::AtMost(TARGET_RSS_MIB),
        ),
        Row::judged(
            PART,
            Section::Memory,
            "daemon VmHWM at end",
            s.hwm_kib.map_or("n/a".into(), fmt_kib),
            "<= 64 MiB",
            s.hwm_kib.map(mib),
            Verdict::AtMost(TARGET_RSS_MIB),
        ),
        info(
            Section::Memory,
            "daemon VmRSS at end (idle)",
            s.rss_now_kib.map_or("n/a".into(), fmt_kib),
        ),
    ];
    print_rows(
        &format!("INGEST SUMMARY ({} s per scenario)", s.seconds),
        &rows,
        false,
    );
    let errors = s.single.stats.error_total + s.batch.stats.error_total + s.open.stats.error_total;
    println!(
        "non-2xx / failed requests: {errors}{}",
        if errors == 0 {
            ""
        } else {
            " (see the scenario output above)"
        }
    );
    println!(
        "note: the batch-1 ratio compares group-committed HTTP ingest with one fsync per event in raw \
         redb, so it exceeds 1 when group commit works (>1 ok); the batch-100 ratio is the \
         like-for-like one."
    );
    rows
}
