//! `rev23-webhooks listen`: a local receiver for trying hooks out. Every POST (any path) is
//! checked like a real receiver should check it (Standard Webhooks headers, timestamp tolerance,
//! `v1` against the secret, `v1a` against the public key), answered 204 or 401, and printed to
//! stdout: one verdict line, then the body as received.
//!
//! The first stdout line is `listening on http://ADDR` (the real port when `--port 0`), so a
//! script or test can find it. It runs until SIGINT/SIGTERM, or until `--max-deliveries`.

use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::sender::signing::{self, DeliveryHeaders, Verifier};
use crate::shutdown::{self, ShutdownSignal};

/// Bounds on what a client can make the receiver hold.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_CONNECTIONS: usize = 256;
/// How long in-flight responses get to finish once it stops.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Header values printed on the verdict line are cut to this many characters.
const MAX_PRINTED_FIELD: usize = 200;

#[derive(clap::Args, Debug)]
pub struct ListenArgs {
    /// Port to listen on; 0 picks a free one (see the first output line).
    #[arg(long)]
    pub port: u16,
    /// Address to bind.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// The hook's HMAC secret, `whsec_...` (checks `v1` entries).
    #[arg(long, env = "REV23_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// The daemon's ed25519 public key, `whpk_...` (checks `v1a` entries as well).
    #[arg(long)]
    pub public_key: Option<String>,
    /// Allowed clock difference, both ways; 0 = do not check.
    #[arg(long, default_value_t = signing::DEFAULT_TOLERANCE_SECS)]
    pub tolerance_secs: u64,
    /// Larger bodies are answered 413.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Exit after this many deliveries (POSTs answered, valid or not).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_deliveries: Option<u64>,
}

struct State {
    verifier: Verifier,
    max_body_bytes: usize,
    max_deliveries: Option<u64>,
    deliveries: AtomicU64,
    stop: ShutdownSignal,
}

pub fn run(args: ListenArgs) -> Result<(), String> {
    let tolerance = (args.tolerance_secs > 0).then_some(args.tolerance_secs);
    let verifier = Verifier::from_strings(args.secret.as_deref(), args.public_key.as_deref())
        .map_err(|e| e.to_string())?
        .with_tolerance(tolerance);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(serve(args, verifier))
}

async fn serve(args: ListenArgs, verifier: Verifier) -> Result<(), String> {
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    emit(format!("listening on http://{local}\n").as_bytes());

    let (stop, mut stopped) = shutdown::channel();
    tokio::spawn(shutdown::fire_on_os_signal(stop.clone()));
    let state = Arc::new(State {
        verifier,
        max_body_bytes: args.max_body_bytes,
        max_deliveries: args.max_deliveries,
        deliveries: AtomicU64::new(0),
        stop,
    });
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            _ = stopped.wait() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            _ = stopped.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("listen: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let conn_state = state.clone();
        let service = service_fn(move |req| {
            let state = conn_state.clone();
            async move { Ok::<_, Infallible>(handle(&state, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("listen: some connections did not finish within {DRAIN_TIMEOUT:?}");
    }
    Ok(())
}

/// Writes to stdout in one piece and flushes, so lines of concurrent deliveries never interleave
/// and a reader on a pipe sees them at once.
fn emit(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// A header value fit for one output line: lossy UTF-8, control characters and spaces as `?`.
fn printable(value: &HeaderValue) -> String {
    String::from_utf8_lossy(value.as_bytes())
        .chars()
        .take(MAX_PRINTED_FIELD)
        .map(|c| {
            if c.is_control() || c.is_whitespace() {
                '?'
            } else {
                c
            }
        })
        .collect()
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Why a delivery was refused, as (status, error code, message).
type Refusal = (StatusCode, &'static str, String);

async fn read_body(state: &State, headers: &HeaderMap, body: Incoming) -> Result<Bytes, Refusal> {
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("body over {} bytes", state.max_body_bytes),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.max_body_bytes as u64) {
        return Err(too_large());
    }
    let collected = tokio::time::timeout(
        BODY_READ_TIMEOUT,
        Limited::new(body, state.max_body_bytes).collect(),
    )
    .await;
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Ok(Err(e)) => Err((
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("cannot read the body: {e}"),
        )),
        Err(_) => Err((
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("body not received within {BODY_READ_TIMEOUT:?}"),
        )),
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        let mut response = json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "deliveries are POSTs",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let body = read_body(state, headers, body).await;
    let verdict = body.as_ref().map_err(|e| e.clone()).and_then(|body| {
        let id = header_text(headers, signing::HEADER_ID);
        let timestamp = header_text(headers, signing::HEADER_TIMESTAMP);
        let signature = header_text(headers, signing::HEADER_SIGNATURE);
        let delivery = DeliveryHeaders {
            id: id.as_deref(),
            timestamp: timestamp.as_deref(),
            signature: signature.as_deref(),
        };
        state
            .verifier
            .verify(&delivery, body, signing::now_secs())
            .map_err(|e| (StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))
    });

    let mut line = String::from(if verdict.is_ok() { "OK" } else { "FAIL" });
    for (label, name) in [
        ("id", signing::HEADER_ID),
        ("event_type", "rev23-event-type"),
        ("sequence", "rev23-sequence"),
    ] {
        if let Some(value) = headers.get(name) {
            line.push_str(&format!(" {label}={}", printable(value)));
        }
    }
    match &verdict {
        Ok(verified) => line.push_str(&format!(" verified={}", verified.versions().join(","))),
        Err((_, _, reason)) => line.push_str(&format!(" reason: {reason}")),
    }
    line.push('\n');
    let mut out = line.into_bytes();
    if let Ok(body) = &body {
        out.extend_from_slice(body);
        if !body.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    emit(&out);

    let count = state.deliveries.fetch_add(1, Ordering::SeqCst) + 1;
    if state.max_deliveries.is_some_and(|max| count >= max) {
        state.stop.fire();
    }
    match verdict {
        Ok(_) => {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        Err((status, code, message)) => json_error(status, code, &message),
    }
}
