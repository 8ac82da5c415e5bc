//! Replay and recovery (SPEC §8): `POST /v1/hooks/{id}/replay` (by `from_offset`, `from_time` or
//! `from_event_id`, optional `to_offset`, `dry_run`), `GET /v1/hooks/{id}/replays/{replay_id}`,
//! `POST /v1/hooks/{id}/deliveries/{sequence}/resend` and `POST /v1/hooks/{id}/recover {"since"}`.
//! All of them give the events new sequences in the hook and keep their `webhook-id`s.

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::auth::{authenticate, Access as _};
use super::error::ApiError;
use super::request::read_json;
use super::response::{json_response, Response};
use super::{AppState, READ_YOUR_WRITES_TIMEOUT};
use crate::clock;
use crate::domain::internal::{self, HookRecord, ReplayBatch, ReplayRequested};
use crate::ids;
use crate::journal::{reader, NewEvent};
use crate::projectors::hooks::{read_entries, ReplayRow};
use crate::projectors::registry::Principal;
use crate::replay::scan;
use crate::sender::progress::{read_deliveries, DeliveryStatus};

/// Replays of one hook still scanning at most.
const MAX_ACTIVE_REPLAYS_PER_HOOK: usize = 8;
/// Journal entries one replay request may cover at most.
const MAX_REPLAY_SPAN: u64 = 50_000_000;
/// Offsets per recover batch event.
const RECOVER_BATCH: usize = 1000;
/// Delivery records a recover examines at most.
const MAX_RECOVER_SCAN: usize = 1_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    from_offset: Option<u64>,
    from_time: Option<String>,
    from_event_id: Option<String>,
    to_offset: Option<u64>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverBody {
    since: String,
}

fn visible_hook(state: &AppState, caller: &Principal, id: &str) -> Result<HookRecord, ApiError> {
    match state.hooks.get(id) {
        Some(h) if h.owner_user_id == caller.user.id || caller.is_admin() => Ok(h),
        _ => Err(ApiError::not_found(format!("no hook with id {id:?}"))),
    }
}

fn internal_event<T: serde::Serialize>(
    kind: &str,
    hook_id: &str,
    record: &T,
    caller: &Principal,
) -> NewEvent {
    super::registry_change::internal_event(
        kind,
        hook_id,
        record,
        super::registry_change::origin_of(Some(caller)),
    )
}

async fn commit(state: &AppState, events: Vec<NewEvent>) -> Result<(), ApiError> {
    let outcomes = state.writer.append(events).await?;
    let last = outcomes.iter().map(|o| o.offset).max().unwrap_or(0);
    if !state
        .hooks_status
        .wait_for(last, READ_YOUR_WRITES_TIMEOUT)
        .await
    {
        return Err(ApiError::unavailable(
            "accepted but not yet visible; check its progress shortly",
            1,
        ));
    }
    Ok(())
}

pub fn row_view(state: &AppState, row: &ReplayRow) -> serde_json::Value {
    let cursor = state.progress.get(&row.hook_id).cursor_sequence;
    let status = if row.scanning() {
        "scanning"
    } else if row.queued == 0 || cursor >= row.last_sequence.unwrap_or(0) {
        "done"
    } else {
        "delivering"
    };
    json!({
        "replay_id": row.replay_id,
        "hook_id": row.hook_id,
        "status": status,
        "from_offset": row.from_offset,
        "to_offset": row.to_offset,
        "matched": row.matched,
        "scanned_through": row.scanned_through,
        "queued": row.queued,
        "first_sequence": row.first_sequence,
        "last_sequence": row.last_sequence,
        "cursor_sequence": cursor,
        "created_at": clock::format_ms(row.created_at_ms),
    })
}

/// `POST /v1/hooks/{id}/replay`.
pub async fn replay(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    let hook = visible_hook(state, &caller, id)?;
    let input: ReplayBody = read_json(state, req).await?;
    let selectors = [
        input.from_offset.is_some(),
        input.from_time.is_some(),
        input.from_event_id.is_some(),
    ];
    if selectors.iter().filter(|s| **s).count() != 1 {
        return Err(ApiError::validation(
            "give exactly one of from_offset, from_time or from_event_id",
        ));
    }
    let head = state.writer.head();
    let db = state.db.clone();
    let from = if let Some(offset) = input.from_offset {
        if offset == 0 {
            return Err(ApiError::validation("from_offset starts at 1"));
        }
        offset
    } else if let Some(time) = &input.from_time {
        let ms = clock::parse_rfc3339_ms(time)
            .ok_or_else(|| ApiError::validation("from_time must be an RFC 3339 time"))?;
        tokio::task::spawn_blocking(move || reader::first_offset_at_or_after(&db, ms))
            .await
            .map_err(|e| ApiError::internal(format!("replay task failed: {e}")))??
    } else {
        let event_id = input.from_event_id.clone().unwrap_or_default();
        let found = tokio::task::spawn_blocking(move || reader::get_by_id(&db, &event_id))
            .await
            .map_err(|e| ApiError::internal(format!("replay task failed: {e}")))??;
        match found {
            Some(e) if !internal::is_internal(&e.kind) => e.offset,
            _ => return Err(ApiError::not_found("no event with that from_event_id")),
        }
    };
    let to = input.to_offset.unwrap_or(head).min(head);
    if input.to_offset.is_some_and(|t| t < from) {
        return Err(ApiError::validation(
            "to_offset is before the start of the range",
        ));
    }
    if to.saturating_sub(from) >= MAX_REPLAY_SPAN {
        return Err(ApiError::validation(format!(
            "a replay covers at most {MAX_REPLAY_SPAN} journal entries; split the range"
        )));
    }
    if !input.dry_run {
        // Refuse before the (possibly long) counting scan, and again under the lock below.
        check_active_replays(state, id)?;
    }
    // Count the matches now, with the hook's current events and its user's current permissions.
    let db = state.db.clone();
    let registry = state.registry.snapshot();
    let scan_hook = hook.clone();
    let counted = tokio::task::spawn_blocking(move || {
        scan::scan(&db, &registry, &scan_hook, from, to, usize::MAX, 0)
    })
    .await
    .map_err(|e| ApiError::internal(format!("replay task failed: {e}")))??;
    if input.dry_run {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"replay_id": null, "dry_run": true, "matched": counted.matched, "from_offset": from, "to_offset": to}),
        ));
    }
    let _guard = state.hooks_lock.lock().await;
    check_active_replays(state, id)?;
    let requested = ReplayRequested {
        replay_id: ids::new_id("rpl_"),
        hook_id: id.to_string(),
        from_offset: from,
        to_offset: to,
        matched: counted.matched,
        at_ms: clock::now_ms(),
    };
    commit(
        state,
        vec![internal_event(
            internal::REPLAY_REQUESTED,
            id,
            &requested,
            &caller,
        )],
    )
    .await?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({"replay_id": requested.replay_id, "matched": counted.matched, "from_offset": from, "to_offset": to}),
    ))
}

/// 409 while the hook has [`MAX_ACTIVE_REPLAYS_PER_HOOK`] replays still scanning.
fn check_active_replays(state: &AppState, hook_id: &str) -> Result<(), ApiError> {
    let active = state
        .hooks
        .replays()
        .values()
        .filter(|r| r.hook_id == hook_id && r.scanning())
        .count();
    if active >= MAX_ACTIVE_REPLAYS_PER_HOOK {
        return Err(ApiError::conflict(format!(
            "this hook already has {active} replays in progress; wait for one to finish"
        )));
    }
    Ok(())
}

/// `GET /v1/hooks/{id}/replays/{replay_id}`.
pub fn get(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    id: &str,
    replay_id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    visible_hook(state, &caller, id)?;
    let replays = state.hooks.replays();
    let row = replays
        .get(replay_id)
        .filter(|r| r.hook_id == id)
        .ok_or_else(|| ApiError::not_found(format!("no replay {replay_id:?} for this hook")))?;
    Ok(json_response(StatusCode::OK, &row_view(state, row)))
}

/// Appends batches of `offsets` for the hook under one replay id; answers with its row.
async fn queue_offsets(
    state: &AppState,
    caller: &Principal,
    hook_id: &str,
    prefix: &str,
    offsets: Vec<u64>,
) -> Result<serde_json::Value, ApiError> {
    let replay_id = ids::new_id(prefix);
    let now = clock::now_ms();
    let events: Vec<NewEvent> = offsets
        .chunks(RECOVER_BATCH)
        .map(|chunk| {
            let batch = ReplayBatch {
                replay_id: replay_id.clone(),
                hook_id: hook_id.to_string(),
                offsets: chunk.to_vec(),
                scanned_through: chunk.iter().copied().max().unwrap_or(0),
                at_ms: now,
            };
            internal_event(internal::REPLAY_BATCH, hook_id, &batch, caller)
        })
        .collect();
    if events.is_empty() {
        return Ok(json!({"replay_id": null, "matched": 0}));
    }
    commit(state, events).await?;
    let replays = state.hooks.replays();
    let row = replays
        .get(&replay_id)
        .ok_or_else(|| ApiError::internal("queued replay is not visible"))?;
    Ok(row_view(state, row))
}

/// `POST /v1/hooks/{id}/deliveries/{sequence}/resend`.
pub async fn resend(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    id: &str,
    sequence: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    visible_hook(state, &caller, id)?;
    let sequence: u64 = sequence
        .parse()
        .map_err(|_| ApiError::not_found("no such delivery"))?;
    let db = state.db.clone();
    let hook_id = id.to_string();
    let entry = tokio::task::spawn_blocking(move || read_entries(&db, &hook_id, sequence, 1))
        .await
        .map_err(|e| ApiError::internal(format!("resend task failed: {e}")))??
        .into_iter()
        .find(|(s, _)| *s == sequence)
        .ok_or_else(|| ApiError::not_found(format!("this hook has no delivery {sequence}")))?;
    let _guard = state.hooks_lock.lock().await;
    let row = queue_offsets(state, &caller, id, "rsd_", vec![entry.1]).await?;
    let body = json!({"replay_id": row["replay_id"], "sequence": row["first_sequence"], "resent_sequence": sequence});
    Ok(json_response(StatusCode::ACCEPTED, &body))
}

/// `POST /v1/hooks/{id}/recover {"since"}`: re-sends every `failed` delivery whose last attempt
/// was at or after `since`.
pub async fn recover(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    visible_hook(state, &caller, id)?;
    let input: RecoverBody = read_json(state, req).await?;
    let since = clock::parse_rfc3339_ms(&input.since)
        .ok_or_else(|| ApiError::validation("since must be an RFC 3339 time"))?;
    let db = state.db.clone();
    let hook_id = id.to_string();
    let offsets = tokio::task::spawn_blocking(move || {
        let records = read_deliveries(&db, &hook_id, 1, u64::MAX, MAX_RECOVER_SCAN)?;
        let offsets: BTreeSet<u64> = records
            .into_iter()
            .filter(|r| r.status == DeliveryStatus::Failed)
            .filter(|r| r.attempts.last().is_some_and(|a| a.at_ms >= since))
            .map(|r| r.offset)
            .collect();
        Ok::<_, crate::journal::JournalError>(offsets)
    })
    .await
    .map_err(|e| ApiError::internal(format!("recover task failed: {e}")))??;
    let _guard = state.hooks_lock.lock().await;
    let row = queue_offsets(state, &caller, id, "rcv_", offsets.into_iter().collect()).await?;
    Ok(json_response(StatusCode::ACCEPTED, &row))
}
