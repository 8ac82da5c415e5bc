//! Loop protection at the API (SPEC §10): [`guard_inbound`] judges every customer write with
//! the [`LoopGuard`](crate::loops::LoopGuard) and, on a detection, journals it
//! (`internal.loop_detected`) together with the suspension of the echoed hook
//! (`state_reason: "loop_detected"`) before refusing with 409 `loop_detected`.
//! `GET /v1/loops` lists detections; `DELETE /v1/loops/{id}` (owners) clears one — the hook
//! stays suspended until its user or an owner resumes it.

use std::sync::Arc;

use hyper::{HeaderMap, StatusCode};
use serde_json::{json, Map, Value};

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::hooks::{commit, hook_event};
use super::response::{json_response, no_content, Response};
use super::AppState;
use crate::clock;
use crate::domain::customer::Fingerprint;
use crate::domain::internal::{self, HookState, HookStateChange, LoopCleared, LoopDetected};
use crate::loops::Verdict;
use crate::projectors::registry::Principal;

/// The `state_reason` of a hook suspended by loop protection.
pub const LOOP_DETECTED_REASON: &str = "loop_detected";

fn refused(detection_id: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "loop_detected",
        format!(
            "this write echoes customers the daemon just delivered to one of your hooks \
             (loop {detection_id}); an owner can clear it with DELETE /v1/loops/{detection_id}"
        ),
    )
}

/// Refuses the write of customer `data` via `caller` if it is part of a loop.
pub async fn guard_inbound(
    state: &AppState,
    caller: &Principal,
    data: &Map<String, Value>,
) -> Result<(), ApiError> {
    let fingerprint = Fingerprint::of(data);
    match state.loops.check(
        &caller.key.id,
        &caller.user.id,
        &fingerprint,
        clock::now_ms(),
    ) {
        Verdict::Clean | Verdict::Echo => Ok(()),
        Verdict::Blocked { detection_id } => Err(refused(&detection_id)),
        Verdict::Detected(found) => {
            let mut events = Vec::new();
            for d in &found {
                tracing::warn!(loop_id = %d.id, hook = %d.hook_id, key = %d.key_id, echoes = d.echoes,
                    "loop detected; suspending the hook");
                events.push(hook_event(internal::LOOP_DETECTED, &d.id, d, Some(caller)));
                if state.hooks.get(&d.hook_id).is_some() {
                    let change = HookStateChange {
                        id: d.hook_id.clone(),
                        state: HookState::Suspended,
                        reason: Some(LOOP_DETECTED_REASON.to_string()),
                        at_ms: d.detected_at_ms,
                    };
                    events.push(hook_event(
                        internal::HOOK_STATE_CHANGED,
                        &d.hook_id,
                        &change,
                        Some(caller),
                    ));
                }
            }
            commit(state, events).await?;
            Err(refused(&found[0].id))
        }
    }
}

fn view(d: &LoopDetected) -> Value {
    json!({
        "id": d.id,
        "hook_id": d.hook_id,
        "key_id": d.key_id,
        "user_id": d.user_id,
        "echoes": d.echoes,
        "fingerprint": d.fingerprint,
        "detected_at": clock::format_ms(d.detected_at_ms),
    })
}

/// `GET /v1/loops` (owners and `admin:webhook`).
pub fn list(state: &Arc<AppState>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    caller.require_admin()?;
    let data: Vec<Value> = state.loops.detections().iter().map(view).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"data": data, "next_cursor": null}),
    ))
}

/// `DELETE /v1/loops/{id}` (owners) → 204.
pub async fn clear(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    if !caller.is_owner_admin() {
        return Err(ApiError::forbidden("only an owner may clear a loop"));
    }
    if state.loops.get(id).is_none() {
        return Err(ApiError::not_found(format!("no loop with id {id:?}")));
    }
    let cleared = LoopCleared {
        id: id.to_string(),
        at_ms: clock::now_ms(),
    };
    state
        .writer
        .append(vec![hook_event(
            internal::LOOP_CLEARED,
            id,
            &cleared,
            Some(&caller),
        )])
        .await?;
    state.loops.clear(id);
    Ok(no_content())
}
