//! Pull consumers (SPEC §7): `GET /v1/hooks/{id}/poll?limit=&lease_seconds=` hands out the next
//! items after the hook's cursor under a lease; `POST /v1/hooks/{id}/ack {"sequence": N}` commits
//! the cursor through N (durably, before answering). Items not acked before their lease ends are
//! handed out again. The same cursor, lag, states, permission checks and redaction as push hooks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, value::RawValue};

use super::auth::{authenticate, Access as _};
use super::error::ApiError;
use super::request::{read_json, Query};
use super::response::{json_response, Response};
use super::AppState;
use crate::clock;
use crate::domain::internal::{self, DeliveryMode, HookRecord, HookState, HookStateChange};
use crate::ids;
use crate::journal::reader;
use crate::projectors::hooks::read_entries;
use crate::sender::access::{self, Access};

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
const DEFAULT_LEASE_SECS: u64 = 30;
const MAX_LEASE_SECS: u64 = 3600;

/// Handed-out-but-unacked ranges, per hook (in memory: a restart simply re-offers them).
#[derive(Default)]
pub struct Leases(Mutex<HashMap<String, Lease>>);

#[derive(Clone)]
struct Lease {
    id: String,
    /// Sequences up to this one are leased (from the cursor on).
    through: u64,
    expires: Instant,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    sequence: u64,
    lease_id: Option<String>,
}

fn pull_hook(
    state: &AppState,
    caller: &crate::projectors::registry::Principal,
    id: &str,
) -> Result<HookRecord, ApiError> {
    let hook = match state.hooks.get(id) {
        Some(h) if h.owner_user_id == caller.user.id || caller.is_admin() => h,
        _ => return Err(ApiError::not_found(format!("no hook with id {id:?}"))),
    };
    if hook.delivery != DeliveryMode::Pull {
        return Err(ApiError::conflict(
            "this is a push hook; only pull hooks are polled",
        ));
    }
    Ok(hook)
}

/// `GET /v1/hooks/{id}/poll`.
pub async fn poll(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    let hook = pull_hook(state, &caller, id)?;
    let query = Query::parse(req.uri().query());
    let limit = query.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let lease_secs = match query.u64("lease_seconds")? {
        None => DEFAULT_LEASE_SECS,
        Some(s) if (1..=MAX_LEASE_SECS).contains(&s) => s,
        Some(_) => {
            return Err(ApiError::invalid_request(format!(
                "lease_seconds must be 1 to {MAX_LEASE_SECS}"
            )))
        }
    };
    if hook.state != HookState::Active {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"data": [], "lease_id": null, "state": hook.state, "state_reason": hook.state_reason}),
        ));
    }
    let cursor = state.progress.get(id).cursor_sequence;
    let start = {
        let mut leases = state.pull_leases.0.lock().expect("leases lock");
        match leases.get(id) {
            Some(l) if l.expires > Instant::now() && l.through > cursor => l.through + 1,
            _ => {
                leases.remove(id);
                cursor + 1
            }
        }
    };
    let db = state.db.clone();
    let hook_id = id.to_string();
    let loaded = tokio::task::spawn_blocking(move || {
        let entries = read_entries(&db, &hook_id, start, limit)?;
        let offsets: Vec<u64> = entries.iter().map(|(_, o)| *o).collect();
        let envelopes = reader::get_many(&db, &offsets)?;
        Ok::<_, crate::journal::JournalError>(
            entries
                .into_iter()
                .map(|(s, _)| s)
                .zip(envelopes)
                .collect::<Vec<_>>(),
        )
    })
    .await
    .map_err(|e| ApiError::internal(format!("poll task failed: {e}")))??;
    let registry = state.registry.snapshot();
    let mut items: Vec<Box<RawValue>> = Vec::new();
    let mut through = start.saturating_sub(1);
    let mut denied = None;
    for (sequence, envelope) in &loaded {
        match access::check(&registry, &hook, envelope) {
            Access::Deliver { redact_medical } => {
                let body = state.outgoing.body(envelope, redact_medical);
                let mut item = format!("{{\"sequence\":{sequence},").into_bytes();
                item.extend_from_slice(&body[1..]);
                let text =
                    String::from_utf8(item).map_err(|_| ApiError::internal("item is not UTF-8"))?;
                items.push(
                    RawValue::from_string(text)
                        .map_err(|_| ApiError::internal("item is not JSON"))?,
                );
            }
            // Not for this consumer: covered by the next ack like any other sequence.
            Access::Skip(_) => {}
            Access::Deny(reason) => {
                denied = Some(reason);
                break;
            }
        }
        through = *sequence;
    }
    if let Some(reason) = denied {
        suspend(state, id, reason).await?;
    }
    if through < start {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"data": items, "lease_id": null}),
        ));
    }
    let lease = Lease {
        id: ids::new_id("lease_"),
        through,
        expires: Instant::now() + Duration::from_secs(lease_secs),
    };
    state
        .pull_leases
        .0
        .lock()
        .expect("leases lock")
        .insert(id.to_string(), lease.clone());
    let body = json!({
        "data": items,
        "lease_id": lease.id,
        "lease_through_sequence": through,
        "lease_expires_at": clock::format_ms(clock::now_ms() + (lease_secs * 1000) as i64),
    });
    Ok(json_response(StatusCode::OK, &body))
}

async fn suspend(state: &AppState, id: &str, reason: String) -> Result<(), ApiError> {
    let change = HookStateChange {
        id: id.to_string(),
        state: HookState::Suspended,
        reason: Some(reason),
        at_ms: clock::now_ms(),
    };
    let event = super::registry_change::internal_event(
        internal::HOOK_STATE_CHANGED,
        id,
        &change,
        super::registry_change::origin_of(None),
    );
    state.writer.append(vec![event]).await?;
    Ok(())
}

/// `POST /v1/hooks/{id}/ack`.
pub async fn ack(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    pull_hook(state, &caller, id)?;
    let input: AckBody = read_json(state, req).await?;
    let cursor = state.progress.get(id).cursor_sequence;
    if input.sequence <= cursor {
        return Ok(json_response(
            StatusCode::OK,
            &json!({"cursor": {"sequence": cursor}}),
        ));
    }
    let lease = state
        .pull_leases
        .0
        .lock()
        .expect("leases lock")
        .get(id)
        .cloned();
    let Some(lease) = lease else {
        return Err(ApiError::conflict(
            "nothing is leased; poll first (the lease may have expired)",
        ));
    };
    if input.lease_id.as_deref().is_some_and(|l| l != lease.id) {
        return Err(ApiError::conflict(
            "that lease is no longer current; poll again",
        ));
    }
    if input.sequence > lease.through {
        return Err(ApiError::validation(format!(
            "sequence {} was not handed out; the lease covers up to {}",
            input.sequence, lease.through
        )));
    }
    let db = state.db.clone();
    let hook_id = id.to_string();
    let seq = input.sequence;
    let offset = tokio::task::spawn_blocking(move || read_entries(&db, &hook_id, seq, 1))
        .await
        .map_err(|e| ApiError::internal(format!("ack task failed: {e}")))??
        .first()
        .map(|(_, o)| *o)
        .ok_or_else(|| ApiError::internal("acked sequence has no entry"))?;
    let now = clock::now_ms();
    state
        .progress
        .commit_now(id, |p| {
            p.succeeded_total += seq - p.cursor_sequence;
            p.cursor_sequence = seq;
            p.cursor_offset = offset;
            p.last_success_at_ms = Some(now);
        })
        .await?;
    if seq >= lease.through {
        state.pull_leases.0.lock().expect("leases lock").remove(id);
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({"cursor": {"sequence": seq, "offset": offset}}),
    ))
}
