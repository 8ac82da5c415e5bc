//! `GET /v1/hooks/{id}/deliveries?status=&cursor=&limit=`: the attempt log, ascending by
//! sequence. Deliveries not yet attempted show as `pending` with no attempts, so the backlog is
//! visible too.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::request::{Query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use super::response::{json_response, ListPage, Response};
use super::AppState;
use crate::clock;
use crate::journal::{reader, JournalError};
use crate::projectors::hooks::read_entries;
use crate::sender::progress::{read_deliveries, DeliveryRecord, DeliveryStatus};

/// Sequences one request examines at most (a status filter can make matches sparse).
const MAX_SCAN_SEQUENCES: usize = 10_000;

fn record_view(r: &DeliveryRecord) -> Value {
    json!({
        "sequence": r.sequence,
        "event_id": r.event_id,
        "offset": r.offset,
        "status": r.status,
        "reason": r.reason,
        "attempt_count": r.attempt_count,
        "next_attempt_at": r.next_attempt_at_ms.map(clock::format_ms),
        "attempts": r.attempts.iter().map(|a| json!({
            "at": clock::format_ms(a.at_ms),
            "http_status": a.http_status,
            "latency_ms": a.latency_ms,
            "error": a.error,
            "response_body": a.response_body,
        })).collect::<Vec<_>>(),
    })
}

pub async fn list(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    hook_id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    match state.hooks.get(hook_id) {
        Some(h) if h.owner_user_id == caller.user.id || caller.is_admin() => {}
        _ => return Err(ApiError::not_found(format!("no hook with id {hook_id:?}"))),
    }
    let query = Query::parse(req.uri().query());
    let limit = query.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let status = match query.get("status") {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::invalid_request("status must be pending, succeeded, failed or skipped")
        })?),
    };
    let after = match query.get("cursor") {
        Some(c) => c
            .parse::<u64>()
            .map_err(|_| ApiError::invalid_request("cursor is not one this API issued"))?,
        None => 0,
    };
    let cursor = state.progress.get(hook_id).cursor_sequence;
    let db = state.db.clone();
    let id = hook_id.to_string();
    let (records, last_scanned, exhausted) = tokio::task::spawn_blocking(move || {
        let entries = read_entries(&db, &id, after + 1, MAX_SCAN_SEQUENCES)?;
        let Some(&(last, _)) = entries.last() else {
            return Ok::<_, JournalError>((Vec::new(), after, true));
        };
        let mut known: BTreeMap<u64, DeliveryRecord> =
            read_deliveries(&db, &id, after + 1, last, MAX_SCAN_SEQUENCES)?
                .into_iter()
                .map(|r| (r.sequence, r))
                .collect();
        let scanned_all = entries.len() < MAX_SCAN_SEQUENCES;
        let mut out = Vec::new();
        let mut last_scanned = after;
        for (seq, offset) in entries {
            if out.len() >= limit {
                return Ok((out, last_scanned, false));
            }
            last_scanned = seq;
            let record = match known.remove(&seq) {
                Some(r) => r,
                None if seq > cursor => DeliveryRecord {
                    sequence: seq,
                    event_id: reader::get_by_offset(&db, offset)?
                        .map(|e| e.id)
                        .unwrap_or_default(),
                    offset,
                    status: DeliveryStatus::Pending,
                    attempts: Vec::new(),
                    attempt_count: 0,
                    next_attempt_at_ms: None,
                    reason: None,
                },
                // Passed by the cursor but its record not yet written: it is being recorded.
                None => continue,
            };
            if status.is_none_or(|s| s == record.status) {
                out.push(record);
            }
        }
        Ok((out, last_scanned, scanned_all))
    })
    .await
    .map_err(|e| ApiError::internal(format!("deliveries task failed: {e}")))??;
    let next_cursor = (!exhausted).then(|| last_scanned.to_string());
    Ok(json_response(
        StatusCode::OK,
        &ListPage {
            data: records.iter().map(record_view).collect(),
            next_cursor,
        },
    ))
}
