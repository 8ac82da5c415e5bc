//! Accepting connections: at most `max_connections` at once, HTTP/1.1 via hyper with a header
//! read timeout (slow-header clients are dropped) and bounded header buffers. On shutdown it stops
//! accepting and gives in-flight requests a bounded time to finish.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::AppState;
use crate::shutdown::Shutdown;

/// Read buffer per connection; bounds the size of a request head.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long in-flight requests get to finish after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve(listener: TcpListener, state: Arc<AppState>, mut shutdown: Shutdown) {
    let limits = &state.config.limits;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let header_timeout = Duration::from_millis(limits.header_read_timeout_ms);
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn_state = state.clone();
        let service = service_fn(move |req| {
            let state = conn_state.clone();
            async move { Ok::<_, Infallible>(super::handle(state, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the drain timeout");
    }
}
