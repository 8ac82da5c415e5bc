//! Delivery benchmark for `rev23-webhooks`: how fast the real daemon drains a hook's backlog to a
//! receiver, how it fans one event type out to many hooks, how long an event takes from append to
//! receipt at a steady offered rate, how that compares with a bare HTTP client against the same
//! receiver, and how much memory a thousand idle hooks cost.
//!
//! Run it (release build; the figures of a debug build mean nothing):
//!
//! ```text
//! cargo bench --bench delivery                     # full size (50,000-event backlogs, ...)
//! BENCH_SCALE=0.2 cargo bench --bench delivery     # a fifth of every count, for a quick run
//! BENCH_MAX_LOAD=1.5 cargo bench --bench delivery  # first wait (≤ 5 min) for loadavg < 1.5
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
//! At the end a table prints each figure beside its target with PASS/MISS. The bench never
//! asserts on timings and exits 0 when targets are missed; it panics only when the set-up itself
//! fails (the daemon does not start, a hook cannot be created). Both daemons get SIGTERM (then
//! SIGKILL if they hang) at the end. Only 127.0.0.1 is ever connected to.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self as client_http1, SendRequest};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_rev23-webhooks");

/// Full-size counts (multiplied by `BENCH_SCALE`).
const BACKLOG_EVENTS: f64 = 50_000.0;
const FANOUT_EVENTS: f64 = 1_000.0;
const FANOUT_HOOKS: usize = 100;
const LATENCY_SECONDS: f64 = 10.0;
const LATENCY_RATE: u64 = 500;
const IDLE_HOOKS: f64 = 1_000.0;

/// Events per `POST /v1/events` when pre-loading.
const INGEST_BATCH: usize = 1_000;
const LATENCY_CONNECTIONS: usize = 8;
/// Concurrent connections creating hooks in bulk.
const CREATE_CONNECTIONS: usize = 8;
/// The lane's in-flight limit (`delivery.max_in_flight` default), used by the raw client.
const RAW_IN_FLIGHT: usize = 16;

const TARGET_BACKLOG_DPS: f64 = 5_000.0;
const TARGET_FANOUT_DPS: f64 = 10_000.0;
const TARGET_P50_MS: f64 = 5.0;
const TARGET_P99_MS: f64 = 25.0;
const TARGET_RAW_RATIO: f64 = 0.5;
const TARGET_IDLE_RSS_MIB: f64 = 100.0;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the bench waits for a scenario's deliveries.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// ... or for the next one, once deliveries stop arriving.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the bench waits for the hooks projector to match a backlog.
const MATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest the raw client runs.
const RAW_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the idle-hooks daemon idles while it is sampled.
const IDLE_SETTLE: Duration = Duration::from_secs(5);
const RSS_SAMPLE_EVERY: Duration = Duration::from_millis(50);
const POLL_EVERY: Duration = Duration::from_millis(5);
/// Receipts the receiver keeps at most (it still answers past it).
const MAX_RECEIPTS: usize = 4_000_000;
/// Longest the bench waits for a quiet machine when `BENCH_MAX_LOAD` is set.
const LOAD_WAIT: Duration = Duration::from_secs(300);

fn main() {
    let scale = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0 && *s <= 10.0)
        .unwrap_or(1.0);
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
    let mut daemon = Daemon::start(&root.path().join("main"));
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
        api: ApiTarget {
            addr: daemon.addr,
            key: daemon.owner_key.clone(),
        },
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

    print_table(&Summary {
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
    });
}

// ---------------------------------------------------------------------------------------------
// Machine load

/// The 1-, 5- and 15-minute load averages (None if /proc/loadavg is unreadable).
type LoadAvg = Option<(f64, f64, f64)>;

/// Reads the load averages from /proc/loadavg.
fn loadavg() -> LoadAvg {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

fn fmt_load(l: LoadAvg) -> String {
    l.map_or("n/a".into(), |(a, b, c)| format!("{a:.2} {b:.2} {c:.2}"))
}

fn print_load() -> LoadAvg {
    let l = loadavg();
    println!("  load average (1/5/15 min): {}", fmt_load(l));
    l
}

/// With `BENCH_MAX_LOAD=X`, waits (at most [`LOAD_WAIT`]) until the 1-minute load is below X.
fn wait_for_quiet_machine() {
    let Some(max) = std::env::var("BENCH_MAX_LOAD")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
    else {
        return;
    };
    let start = Instant::now();
    loop {
        let now = loadavg().map_or(0.0, |l| l.0);
        if now < max {
            println!(
                "1-minute load {now:.2} < {max} after {:.0} s of waiting",
                start.elapsed().as_secs_f64()
            );
            return;
        }
        if start.elapsed() > LOAD_WAIT {
            println!("1-minute load still {now:.2} ≥ {max} after {LOAD_WAIT:?}; running anyway");
            return;
        }
        std::thread::sleep(Duration::from_secs(5));
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// The `data` object of event `n`: a customer-like record of realistic size (~200 bytes).
fn data_json(prefix: &str, n: u64) -> String {
    format!(
        concat!(
            r#"{{"id":"{prefix}_{n:010}","first_name":"Ada","last_name":"Lovelace","#,
            r#""email":"ada.{n:010}@example.com","phone_number":"+1555{p:07}","#,
            r#""city":"London","country":"GB","notes":"delivery benchmark"}}"#
        ),
        prefix = prefix,
        n = n,
        p = n % 10_000_000
    )
}

/// Bodies of `count` events of `kind`, `INGEST_BATCH` per request, each with its own `data.id`.
fn batch_bodies(kind: &str, prefix: &str, count: usize) -> Vec<(usize, Bytes)> {
    let mut out = Vec::new();
    let mut n = 0usize;
    while n < count {
        let len = INGEST_BATCH.min(count - n);
        let items: Vec<String> = (n..n + len)
            .map(|i| {
                format!(
                    r#"{{"type":"{kind}","data":{}}}"#,
                    data_json(prefix, i as u64)
                )
            })
            .collect();
        out.push((len, Bytes::from(format!("[{}]", items.join(",")))));
        n += len;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The receiver

/// One request the receiver answered.
#[derive(Clone)]
struct Receipt {
    at: Instant,
    hook_id: String,
    webhook_id: String,
}

/// The first delivery received, kept to be replayed by the raw client.
struct Captured {
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

#[derive(Default)]
struct ReceiverShared {
    log: Mutex<Vec<Receipt>>,
    connections: AtomicU64,
    captured: OnceLock<Captured>,
}

/// A hyper server on 127.0.0.1 in its own thread and runtime: answers 200 with an empty body.
struct Receiver {
    addr: SocketAddr,
    shared: Arc<ReceiverShared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    fn start() -> Receiver {
        let shared = Arc::new(ReceiverShared::default());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = mpsc::channel();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("receiver-rt")
                    .enable_all()
                    .build()
                    .expect("receiver runtime");
                rt.block_on(serve(thread_shared, addr_tx, stop_rx));
            })
            .expect("spawn receiver thread");
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("receiver bound its port");
        Receiver {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn len(&self) -> usize {
        self.shared.log.lock().expect("receiver log").len()
    }

    fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Acquire)
    }

    fn captured(&self) -> Option<&Captured> {
        self.shared.captured.get()
    }

    /// Receipts from index `from` on whose hook is in `hooks`; returns them and the next index.
    fn take_since(&self, from: usize, hooks: &HashSet<String>) -> (Vec<Receipt>, usize) {
        let log = self.shared.log.lock().expect("receiver log");
        let new = log
            .get(from..)
            .unwrap_or_default()
            .iter()
            .filter(|r| hooks.contains(&r.hook_id))
            .cloned()
            .collect();
        (new, log.len())
    }

    fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    shared: Arc<ReceiverShared>,
    addr_tx: mpsc::Sender<SocketAddr>,
    mut stop_rx: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let _ = addr_tx.send(listener.local_addr().expect("receiver address"));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
            _ = &mut stop_rx => break,
        };
        let _ = stream.set_nodelay(true);
        shared.connections.fetch_add(1, Ordering::AcqRel);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(receive(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn receive(shared: &ReceiverShared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let at = Instant::now();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let receipt = Receipt {
        at,
        hook_id: header("rev23-hook-id"),
        webhook_id: header("webhook-id"),
    };
    if shared.captured.get().is_none() && receipt.hook_id.starts_with("hook_") {
        let headers = parts
            .headers
            .iter()
            .filter(|(n, _)| *n != hyper::header::HOST && *n != hyper::header::CONTENT_LENGTH)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let _ = shared.captured.set(Captured {
            path: parts.uri.path().to_string(),
            headers,
            body,
        });
    }
    {
        let mut log = shared.log.lock().expect("receiver log");
        if log.len() < MAX_RECEIPTS {
            log.push(receipt);
        }
    }
    Response::new(Full::new(Bytes::new()))
}

/// What arrived for a scenario's hooks, distinct by (hook, webhook-id).
struct Arrivals {
    /// First receipt of each distinct delivery, in arrival order.
    receipts: Vec<Receipt>,
    duplicates: u64,
    timed_out: bool,
    stalled: bool,
}

/// Collects receipts for `hooks` from log index `from` until `expected` distinct deliveries
/// arrived, [`DELIVERY_TIMEOUT`] passed, or none arrived for [`STALL_TIMEOUT`].
async fn wait_for_arrivals(
    receiver: &Receiver,
    from: usize,
    hooks: &HashSet<String>,
    expected: usize,
) -> Arrivals {
    let start = Instant::now();
    let mut pos = from;
    let mut seen: HashSet<(String, String)> = HashSet::with_capacity(expected);
    let mut out = Arrivals {
        receipts: Vec::with_capacity(expected),
        duplicates: 0,
        timed_out: false,
        stalled: false,
    };
    let mut last_progress = Instant::now();
    while out.receipts.len() < expected {
        let (new, next) = receiver.take_since(pos, hooks);
        pos = next;
        if !new.is_empty() {
            last_progress = Instant::now();
        }
        for r in new {
            if seen.insert((r.hook_id.clone(), r.webhook_id.clone())) {
                out.receipts.push(r);
            } else {
                out.duplicates += 1;
            }
        }
        if out.receipts.len() >= expected {
            break;
        }
        if start.elapsed() > DELIVERY_TIMEOUT {
            out.timed_out = true;
            break;
        }
        if last_progress.elapsed() > STALL_TIMEOUT {
            out.stalled = true;
            break;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The daemon process

struct Daemon {
    child: Option<Child>,
    addr: SocketAddr,
    data_dir: PathBuf,
    owner_key: String,
}

impl Daemon {
    fn start(root: &Path) -> Daemon {
        std::fs::create_dir_all(root).expect("daemon root dir");
        let data_dir = root.join("daemon-data");
        let config_path = root.join("bench-config.toml");
        let config = format!(
            concat!(
                "listen = \"127.0.0.1:0\"\n",
                "data_dir = {:?}\n",
                "\n[limits]\n",
                "rate_limit_per_minute = 1000000000\n",
                "ingest_rate_limit_per_minute = 1000000000\n",
                "\n[log]\n",
                "level = \"warn\"\n",
                "\n[policy]\n",
                "allow_private_networks = [\"127.0.0.0/8\"]\n",
            ),
            data_dir.display().to_string()
        );
        std::fs::write(&config_path, config).expect("write bench config");
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the daemon");
        let stdout = child.stdout.take().expect("daemon stdout");
        let (tx, rx) = mpsc::channel();
        // Keeps draining stdout so the daemon never blocks on a full pipe. The owner key line
        // is not echoed (it holds a secret).
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("rev23-webhooks listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let mut daemon = Daemon {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.clone(),
            owner_key: String::new(),
        };
        let url = rx
            .recv_timeout(START_TIMEOUT)
            .expect("the daemon did not print its listening line in time (or exited)");
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected listening address {url:?}"));
        assert!(
            addr.ip().is_loopback(),
            "the daemon must listen on 127.0.0.1, got {addr}"
        );
        daemon.addr = SocketAddr::from(([127, 0, 0, 1], addr.port()));
        daemon.owner_key = std::fs::read_to_string(data_dir.join("owner.key"))
            .expect("read owner.key")
            .trim()
            .to_string();
        daemon
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGTERM, then waits (bounded); kills it if it does not exit in time.
    fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on the child we spawned and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status.code(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    eprintln!("daemon did not exit within {STOP_TIMEOUT:?} of SIGTERM; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc sampling

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`).
fn read_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of a process, in seconds.
fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after_comm` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

/// CPU seconds used by this process (load generator and receiver).
fn self_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// CPU use of the daemon and of this process over an interval, in cores.
struct CpuMeter {
    pid: u32,
    start: Instant,
    daemon: f64,
    me: f64,
}

#[derive(Clone, Copy, Default)]
struct CpuUse {
    daemon_cores: f64,
    bench_cores: f64,
}

impl CpuMeter {
    fn start(pid: u32) -> CpuMeter {
        CpuMeter {
            pid,
            start: Instant::now(),
            daemon: process_cpu_secs(pid).unwrap_or(0.0),
            me: self_cpu_secs(),
        }
    }

    fn finish(&self) -> CpuUse {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        CpuUse {
            daemon_cores: (process_cpu_secs(self.pid).unwrap_or(0.0) - self.daemon) / wall,
            bench_cores: (self_cpu_secs() - self.me) / wall,
        }
    }
}

impl CpuUse {
    fn line(&self) -> String {
        format!(
            "CPU: daemon {:.2} cores, bench process (receiver + load generator) {:.2} cores",
            self.daemon_cores, self.bench_cores
        )
    }
}

/// Samples the daemon's VmRSS every [`RSS_SAMPLE_EVERY`], keeping the overall peak and the peak
/// since the last [`RssSampler::take_phase_peak`].
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    phase_peak_kib: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let phase_peak_kib = Arc::new(AtomicU64::new(0));
        let (s, p, pp) = (stop.clone(), peak_kib.clone(), phase_peak_kib.clone());
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                let Some(kib) = read_status_kib(pid, "VmRSS:") else {
                    break;
                };
                p.fetch_max(kib, Ordering::AcqRel);
                pp.fetch_max(kib, Ordering::AcqRel);
                std::thread::sleep(RSS_SAMPLE_EVERY);
            }
        });
        RssSampler {
            stop,
            peak_kib,
            phase_peak_kib,
            handle: Some(handle),
        }
    }

    fn reset_phase(&self) {
        self.phase_peak_kib.store(0, Ordering::Release);
    }

    fn take_phase_peak(&self) -> u64 {
        self.phase_peak_kib.swap(0, Ordering::AcqRel)
    }

    /// Stops sampling; returns the overall peak in KiB.
    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.peak_kib.load(Ordering::Acquire)
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP client (to the daemon's API and, raw, to the receiver)

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    assert!(
        addr.ip().is_loopback(),
        "the bench connects only to 127.0.0.1"
    );
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("nodelay: {e}"))?;
    let (sender, conn) = client_http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `request` and reads the whole response (bounded by [`REQUEST_TIMEOUT`]).
async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    let exchange = async {
        sender
            .ready()
            .await
            .map_err(|e| format!("connection: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no response within {REQUEST_TIMEOUT:?}"))?
}

#[derive(Clone)]
struct ApiTarget {
    addr: SocketAddr,
    key: String,
}

/// A keep-alive connection to the daemon's API (reconnects after a transport error).
struct Api {
    target: ApiTarget,
    conn: Option<Sender>,
}

impl Api {
    fn new(target: &ApiTarget) -> Api {
        Api {
            target: target.clone(),
            conn: None,
        }
    }

    async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), String> {
        if self.conn.is_none() {
            self.conn = Some(connect(self.target.addr).await?);
        }
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.target.addr.to_string())
            .header("x-api-key", self.target.key.as_str());
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| format!("request: {e}"))?;
        let conn = self.conn.as_mut().expect("connected");
        let result = exchange(conn, request).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn json(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let (status, bytes) = self.call(method, path, body).await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    /// `POST /v1/hooks`; the new hook's id.
    async fn create_hook(&mut self, spec: &Value) -> Result<String, String> {
        let (status, body) = self.json(Method::POST, "/v1/hooks", Some(spec)).await?;
        match body["id"].as_str() {
            Some(id) if status == StatusCode::CREATED => Ok(id.to_string()),
            _ => Err(format!("POST /v1/hooks answered {status}: {body}")),
        }
    }

    async fn set_state(&mut self, hook: &str, state: &str) -> Result<(), String> {
        let (status, body) = self
            .json(
                Method::PATCH,
                &format!("/v1/hooks/{hook}"),
                Some(&json!({ "state": state })),
            )
            .await?;
        if status == StatusCode::OK && body["state"] == state {
            Ok(())
        } else {
            Err(format!("PATCH state {state} answered {status}: {body}"))
        }
    }

    async fn get_hook(&mut self, hook: &str) -> Result<Value, String> {
        let (status, body) = self
            .json(Method::GET, &format!("/v1/hooks/{hook}"), None)
            .await?;
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(format!("GET hook answered {status}: {body}"))
        }
    }

    async fn delete_hook(&mut self, hook: &str) {
        match self
            .call(Method::DELETE, &format!("/v1/hooks/{hook}"), None)
            .await
        {
            Ok((StatusCode::NO_CONTENT, _)) => {}
            Ok((status, body)) => println!(
                "  DELETE hook {hook} answered {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(e) => println!("  DELETE hook {hook}: {e}"),
        }
    }

    /// Posts the bodies one after another; returns the events acknowledged (201).
    async fn post_batches(&mut self, bodies: Vec<(usize, Bytes)>) -> usize {
        let mut acked = 0;
        for (count, body) in bodies {
            match self.call(Method::POST, "/v1/events", Some(body)).await {
                Ok((StatusCode::CREATED, _)) => acked += count,
                Ok((status, body)) => println!(
                    "  POST /v1/events answered {status}: {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(300)
                        .collect::<String>()
                ),
                Err(e) => println!("  POST /v1/events: {e}"),
            }
        }
        acked
    }

    /// Polls the hook until its `head_sequence` reaches `head` (at most [`MATCH_TIMEOUT`]).
    async fn wait_for_head(&mut self, hook: &str, head: u64) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < MATCH_TIMEOUT {
            if let Ok(h) = self.get_hook(hook).await {
                if h["head_sequence"].as_u64().unwrap_or(0) >= head {
                    return Some(start.elapsed());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Creates one hook per spec over [`CREATE_CONNECTIONS`] connections; panics if one fails.
async fn create_hooks(target: &ApiTarget, specs: Vec<Value>) -> Vec<String> {
    let specs = Arc::new(specs);
    let next = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..CREATE_CONNECTIONS)
        .map(|_| {
            let (specs, next, target) = (specs.clone(), next.clone(), target.clone());
            tokio::spawn(async move {
                let mut api = Api::new(&target);
                let mut ids = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::AcqRel) as usize;
                    let Some(spec) = specs.get(i) else { break };
                    ids.push(api.create_hook(spec).await.expect("create hook"));
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::with_capacity(specs.len());
    for t in tasks {
        ids.extend(t.await.expect("hook creation task"));
    }
    ids
}

// ---------------------------------------------------------------------------------------------
// Statistics

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn pct_ms(sorted: &[u32], p: f64) -> Option<f64> {
    percentile(sorted, p).map(|us| f64::from(us) / 1000.0)
}

fn per_sec(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
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

struct Sent {
    k: u64,
    due: Instant,
    sent: Instant,
    acked: Option<Instant>,
}

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

async fn post_event(
    sender: &mut Sender,
    target: &ApiTarget,
    body: Bytes,
) -> Result<(StatusCode, Bytes), String> {
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/events")
        .header(hyper::header::HOST, target.addr.to_string())
        .header("x-api-key", target.key.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| format!("request: {e}"))?;
    exchange(sender, request).await
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
    let mut schedules = Vec::new();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
            schedules.push(tx);
            let target = b.api.clone();
            tokio::spawn(async move {
                let mut out = Vec::new();
                let mut errors = 0u64;
                while let Some((k, due)) = rx.recv().await {
                    if Instant::now() > give_up {
                        continue;
                    }
                    let sent = Instant::now();
                    let outcome = post_event(&mut sender, &target, latency_body(k)).await;
                    let done = Instant::now();
                    let ok = matches!(&outcome, Ok((s, _)) if *s == StatusCode::CREATED);
                    if !ok {
                        errors += 1;
                        if outcome.is_err() {
                            match connect(target.addr).await {
                                Ok(s) => sender = s,
                                Err(_) => continue,
                            }
                        }
                    }
                    out.push(Sent {
                        k,
                        due,
                        sent,
                        acked: ok.then_some(done),
                    });
                }
                (out, errors)
            })
        })
        .collect();
    // The pacer: a plain thread with nanosleep precision. Event k is due at `begin + k *
    // interval` and goes to connection k mod n; a busy connection sends it late, and that counts.
    let pacer = tokio::task::spawn_blocking(move || {
        for k in 0..total {
            let due = begin + interval * u32::try_from(k).unwrap_or(u32::MAX);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if schedules[(k as usize) % schedules.len()]
                .send((k, due))
                .is_err()
            {
                break;
            }
        }
    });
    let _ = pacer.await;
    let mut sent = Vec::new();
    let mut ack_errors = 0;
    for t in tasks {
        if let Ok((s, e)) = t.await {
            sent.extend(s);
            ack_errors += e;
        }
    }
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
                    match exchange(conn, request).await {
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
    let mut daemon = Daemon::start(root);
    let pid = daemon.pid();
    println!("  daemon pid {pid} on http://{}", daemon.addr);
    let target = ApiTarget {
        addr: daemon.addr,
        key: daemon.owner_key.clone(),
    };
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

// ---------------------------------------------------------------------------------------------
// Output

fn fmt_rate(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_us(us: Option<u32>) -> String {
    match us {
        Some(us) if us >= 10_000 => format!("{:.1} ms", f64::from(us) / 1000.0),
        Some(us) => format!("{:.2} ms", f64::from(us) / 1000.0),
        None => "n/a".into(),
    }
}

fn fmt_kib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
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

enum Verdict {
    AtLeast(f64),
    AtMost(f64),
    Info,
}

fn row(name: &str, measured: String, target: &str, value: Option<f64>, verdict: Verdict) {
    let result = match (verdict, value) {
        (Verdict::Info, _) => "info",
        (_, None) => "MISS (no data)",
        (Verdict::AtLeast(t), Some(v)) => {
            if v >= t {
                "PASS"
            } else {
                "MISS"
            }
        }
        (Verdict::AtMost(t), Some(v)) => {
            if v <= t {
                "PASS"
            } else {
                "MISS"
            }
        }
    };
    println!("{name:<48} {measured:>22}   {target:<14} {result}");
}

/// A throughput figure counts only when every delivery arrived.
fn complete_rate(d: &Drain) -> Option<f64> {
    d.rate().filter(|_| d.received >= d.expected)
}

fn print_table(s: &Summary) {
    let rate = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{} /s", fmt_rate(v)));
    let ms = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2} ms"));
    let mib = |kib: u64| kib as f64 / 1024.0;
    let none = complete_rate(&s.backlog_none);
    let entity = complete_rate(&s.backlog_entity);
    let fanout = complete_rate(&s.fanout);
    let raw = s.raw.as_ref().map(RawResult::rate);
    let ratio = none.zip(raw).map(|(n, r)| n / r.max(1e-9));
    let l = &s.latency;

    println!(
        "\n=========================== DELIVERY SUMMARY (BENCH_SCALE={}) ===========================",
        s.scale
    );
    println!(
        "{:<48} {:>22}   {:<14} result",
        "metric", "measured", "target"
    );
    println!("{}", "-".repeat(94));
    row(
        &format!(
            "1  backlog drain, ordering none ({} events)",
            s.backlog_none.expected
        ),
        rate(none),
        ">= 5,000 /s",
        none,
        Verdict::AtLeast(TARGET_BACKLOG_DPS),
    );
    row(
        &format!(
            "1b backlog drain, ordering entity ({})",
            s.backlog_entity.expected
        ),
        rate(entity),
        ">= 5,000 /s",
        entity,
        Verdict::AtLeast(TARGET_BACKLOG_DPS),
    );
    row(
        &format!(
            "2  fan-out, {FANOUT_HOOKS} hooks ({} deliveries)",
            s.fanout.expected
        ),
        rate(fanout),
        ">= 10,000 /s",
        fanout,
        Verdict::AtLeast(TARGET_FANOUT_DPS),
    );
    row(
        &format!(
            "3  append→receipt p50 at {LATENCY_RATE}/s ({} events)",
            l.received
        ),
        ms(pct_ms(&l.from_due, 50.0)),
        "<= 5 ms",
        pct_ms(&l.from_due, 50.0),
        Verdict::AtMost(TARGET_P50_MS),
    );
    row(
        "3  append→receipt p99",
        ms(pct_ms(&l.from_due, 99.0)),
        "<= 25 ms",
        pct_ms(&l.from_due, 99.0),
        Verdict::AtMost(TARGET_P99_MS),
    );
    row(
        "3  append→receipt max",
        ms(l.from_due.last().map(|&us| f64::from(us) / 1000.0)),
        "",
        None,
        Verdict::Info,
    );
    row(
        "3    of which ingest ack p50 / p99",
        format!(
            "{} / {}",
            ms(pct_ms(&l.ack, 50.0)),
            ms(pct_ms(&l.ack, 99.0))
        ),
        "",
        None,
        Verdict::Info,
    );
    row(
        "4  raw hyper client, 16 in flight",
        rate(raw),
        "",
        None,
        Verdict::Info,
    );
    row(
        "4  engine (1, none) / raw",
        ratio.map_or("n/a".into(), |r| format!("{r:.2}x")),
        ">= 0.5",
        ratio,
        Verdict::AtLeast(TARGET_RAW_RATIO),
    );
    row(
        &format!("5  VmHWM, fresh daemon with {} idle hooks", s.idle.hooks),
        s.idle.hwm_kib.map_or("n/a".into(), fmt_kib),
        "<= 100 MiB",
        s.idle.hwm_kib.map(mib),
        Verdict::AtMost(TARGET_IDLE_RSS_MIB),
    );
    row(
        "5  peak sampled VmRSS while idle",
        fmt_kib(s.idle.peak_idle_kib),
        "<= 100 MiB",
        Some(mib(s.idle.peak_idle_kib)),
        Verdict::AtMost(TARGET_IDLE_RSS_MIB),
    );
    row(
        "5  idle daemon CPU",
        format!("{:.3} cores", s.idle.idle_cpu.daemon_cores),
        "",
        None,
        Verdict::Info,
    );
    row(
        "main daemon peak VmRSS / VmHWM (scenarios 1-3)",
        format!(
            "{} / {}",
            fmt_kib(s.main_peak_kib),
            s.main_hwm_kib.map_or("n/a".into(), fmt_kib)
        ),
        "",
        None,
        Verdict::Info,
    );
    println!("{}", "-".repeat(94));
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
}
