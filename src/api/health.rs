//! `/healthz` (the process answers) and `/readyz` (journal open, start-up done, projectors
//! caught up within the configured bound), with the figures that decided it.

use std::sync::atomic::Ordering;

use hyper::StatusCode;

use super::response::{json_response, Response};
use super::AppState;

pub fn healthz() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

pub fn readyz(state: &AppState) -> Response {
    let head = state.writer.head();
    let max_lag = state.config.storage.ready_max_lag_entries;
    let started = state.started.load(Ordering::Acquire);
    let storage_ok = state.writer.storage_ok();
    let mut ready = started && storage_ok;
    let mut projectors = serde_json::Map::new();
    for p in &state.projectors {
        let checkpoint = p.checkpoint();
        let lag = head.saturating_sub(checkpoint);
        ready &= lag <= max_lag;
        projectors.insert(
            p.name.to_string(),
            serde_json::json!({
                "checkpoint": checkpoint,
                "lag": lag,
                "applied_since_start": p.applied_since_start(),
            }),
        );
    }
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "started": started,
        "journal_head": head,
        "storage": if storage_ok { "ok" } else { "unavailable" },
        "write_queue": state.writer.queue_len(),
        "projectors": projectors,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &body)
}
