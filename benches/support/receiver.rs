//! The receiver: an in-process hyper HTTP/1.1 server on 127.0.0.1, in its own thread and tokio
//! runtime (2 worker threads), that answers every request 200 with an empty body and records,
//! per request, the receipt time (after the body is read), `webhook-id` and `rev23-hook-id`; it
//! counts the TCP connections it accepts and keeps the first delivery it got.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Longest [`wait_for_arrivals`] waits for a scenario's deliveries.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// ... or for the next one, once deliveries stop arriving.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
pub const POLL_EVERY: Duration = Duration::from_millis(5);
/// Receipts the receiver keeps at most (it still answers past it).
pub const MAX_RECEIPTS: usize = 4_000_000;

/// One request the receiver answered.
#[derive(Clone)]
pub struct Receipt {
    pub at: Instant,
    pub hook_id: String,
    pub webhook_id: String,
}

/// The first delivery received (from a `hook_` id), kept to be replayed by a raw client.
pub struct Captured {
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

#[derive(Default)]
struct ReceiverShared {
    log: Mutex<Vec<Receipt>>,
    connections: AtomicU64,
    captured: OnceLock<Captured>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<ReceiverShared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Receiver {
    pub fn start() -> Receiver {
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

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn len(&self) -> usize {
        self.shared.log.lock().expect("receiver log").len()
    }

    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Acquire)
    }

    pub fn captured(&self) -> Option<&Captured> {
        self.shared.captured.get()
    }

    /// Receipts from index `from` on whose hook is in `hooks`; returns them and the next index.
    pub fn take_since(&self, from: usize, hooks: &HashSet<String>) -> (Vec<Receipt>, usize) {
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

    pub fn stop(mut self) {
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
pub struct Arrivals {
    /// First receipt of each distinct delivery, in arrival order.
    pub receipts: Vec<Receipt>,
    pub duplicates: u64,
    pub timed_out: bool,
    pub stalled: bool,
}

/// Collects receipts for `hooks` from log index `from` until `expected` distinct deliveries
/// arrived, [`DELIVERY_TIMEOUT`] passed, or none arrived for [`STALL_TIMEOUT`].
pub async fn wait_for_arrivals(
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
