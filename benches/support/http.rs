//! HTTP/1.1 client side: keep-alive connections (to 127.0.0.1 only), requests to the daemon's
//! API, and an [`Api`] connection with the hook calls the benches use.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpStream;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest one [`Api`] call may take.
pub const API_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest [`Api::wait_for_head`] waits for the hooks projector to match a backlog.
pub const MATCH_TIMEOUT: Duration = Duration::from_secs(60);
/// Concurrent connections creating hooks in bulk.
pub const CREATE_CONNECTIONS: usize = 8;

pub type Sender = SendRequest<Full<Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection (TCP_NODELAY) to `addr`, which must be loopback.
pub async fn connect(addr: SocketAddr) -> Result<Sender, String> {
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
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `request` and reads the whole response, bounded by `timeout`.
pub async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
    timeout: Duration,
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
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("no response within {timeout:?}"))?
}

/// The daemon's API address and the key the bench uses.
#[derive(Clone)]
pub struct ApiTarget {
    pub addr: SocketAddr,
    /// `addr` as the `Host` header.
    pub host: String,
    pub key: String,
}

impl ApiTarget {
    pub fn new(addr: SocketAddr, key: String) -> ApiTarget {
        ApiTarget {
            addr,
            host: addr.to_string(),
            key,
        }
    }

    /// A request to the API with the key (and a JSON content type when there is a body).
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.host.as_str())
            .header("x-api-key", self.key.as_str());
        if body.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| format!("request: {e}"))
    }
}

/// A keep-alive connection to the daemon's API (reconnects after a transport error).
pub struct Api {
    pub target: ApiTarget,
    conn: Option<Sender>,
}

impl Api {
    pub fn new(target: &ApiTarget) -> Api {
        Api {
            target: target.clone(),
            conn: None,
        }
    }

    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), String> {
        self.call_within(method, path, body, API_REQUEST_TIMEOUT)
            .await
    }

    /// [`Api::call`] with its own timeout.
    pub async fn call_within(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), String> {
        if self.conn.is_none() {
            self.conn = Some(connect(self.target.addr).await?);
        }
        let request = self.target.request(method, path, body)?;
        let conn = self.conn.as_mut().expect("connected");
        let result = exchange(conn, request, timeout).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    pub async fn json(
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
    pub async fn create_hook(&mut self, spec: &Value) -> Result<String, String> {
        let (status, body) = self.json(Method::POST, "/v1/hooks", Some(spec)).await?;
        match body["id"].as_str() {
            Some(id) if status == StatusCode::CREATED => Ok(id.to_string()),
            _ => Err(format!("POST /v1/hooks answered {status}: {body}")),
        }
    }

    pub async fn set_state(&mut self, hook: &str, state: &str) -> Result<(), String> {
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

    pub async fn get_hook(&mut self, hook: &str) -> Result<Value, String> {
        let (status, body) = self
            .json(Method::GET, &format!("/v1/hooks/{hook}"), None)
            .await?;
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(format!("GET hook answered {status}: {body}"))
        }
    }

    pub async fn delete_hook(&mut self, hook: &str) {
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
    pub async fn post_batches(&mut self, bodies: Vec<(usize, Bytes)>) -> usize {
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
    pub async fn wait_for_head(&mut self, hook: &str, head: u64) -> Option<Duration> {
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
pub async fn create_hooks(target: &ApiTarget, specs: Vec<Value>) -> Vec<String> {
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
// Readiness

/// Longest a `/readyz` request may take.
pub const READYZ_TIMEOUT: Duration = Duration::from_secs(10);

/// The `/readyz` body (journal head, write queue, projector lags), on a fresh connection.
pub async fn readyz(target: &ApiTarget) -> Option<Value> {
    let mut sender = connect(target.addr).await.ok()?;
    let request = target.request(Method::GET, "/readyz", None).ok()?;
    let (_, body) = exchange(&mut sender, request, READYZ_TIMEOUT).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// The largest projector lag in a `/readyz` body.
pub fn max_projector_lag(ready: &Value) -> u64 {
    ready["projectors"]
        .as_object()
        .map(|ps| {
            ps.values()
                .filter_map(|p| p["lag"].as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

pub async fn journal_head(target: &ApiTarget) -> Option<u64> {
    readyz(target).await?["journal_head"].as_u64()
}

/// Waits (at most `timeout`) until the write queue is empty and the projectors have caught up,
/// so one scenario's backlog does not land in the next one's figures.
pub async fn settle(target: &ApiTarget, timeout: Duration) {
    let start = Instant::now();
    let mut first_lag = None;
    loop {
        let (lag, queue) = match readyz(target).await {
            Some(r) => (
                max_projector_lag(&r),
                r["write_queue"].as_u64().unwrap_or(0),
            ),
            None => (u64::MAX, 0),
        };
        first_lag.get_or_insert(lag);
        if lag == 0 && queue == 0 {
            break;
        }
        if start.elapsed() > timeout {
            println!(
                "  (daemon still busy after {timeout:?}: projector lag {lag}, write queue {queue})"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if first_lag.unwrap_or(0) > 0 {
        println!(
            "  (waited {:.2} s for the projectors to catch up from a lag of {} entries)",
            start.elapsed().as_secs_f64(),
            first_lag.unwrap_or(0)
        );
    }
}
