//! `GET /v1/triggers/{type}?limit=` (SPEC §7): Zapier's polling trigger and REST-hook sample list.
//! A bare JSON array, newest first, of delivery-shaped items `{"id","type","timestamp","data"}`
//! (Zapier dedupes on `id`, the event id), filtered by the caller's scope and redacted for the
//! caller with the same rules as deliveries.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::request::Query;
use super::response::{json_bytes, Response};
use super::AppState;
use crate::domain::catalog::{self, EventType};
use crate::domain::permission::Permission;
use crate::domain::visibility::{self, Decision};
use crate::journal::{reader, Envelope};
use crate::projectors::registry::Principal;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 100;
/// Entries of the type examined at most per request (scope filters can make matches sparse).
const MAX_SCAN: usize = 10_000;

pub async fn list(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    type_name: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    let event_type = catalog::lookup(type_name).ok_or_else(|| {
        ApiError::unknown_event_type(format!(
            "unknown event type {type_name:?}; accepted types: {}",
            catalog::names().join(", ")
        ))
    })?;
    caller.require(event_type.read_permission)?;
    let limit = Query::parse(req.uri().query()).limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let matches = newest_visible(state, &caller, event_type, limit).await?;
    let redact = redacts_medical(&caller);
    let mut body = Vec::with_capacity(matches.len() * 256 + 2);
    body.push(b'[');
    for (i, envelope) in matches.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&state.outgoing.body(envelope, redact));
    }
    body.push(b']');
    Ok(json_bytes(StatusCode::OK, body))
}

/// Whether what `caller` reads must have its medical data redacted.
pub fn redacts_medical(caller: &Principal) -> bool {
    !caller.permissions.contains(Permission::MedicalCustomer)
}

/// The newest events of `event_type` that `caller` may read (scope as for deliveries), newest
/// first, at most `limit`. Shared by every polling surface (Zapier here, IFTTT).
pub async fn newest_visible(
    state: &AppState,
    caller: &Principal,
    event_type: &'static EventType,
    limit: usize,
) -> Result<Vec<Envelope>, ApiError> {
    let db = state.db.clone();
    let user = caller.user.clone();
    let permissions = caller.permissions;
    tokio::task::spawn_blocking(move || {
        reader::newest_of_type(&db, event_type.name, limit, MAX_SCAN, |e| {
            matches!(
                visibility::decide(
                    event_type,
                    e.assigned_user_id.as_deref(),
                    &user,
                    permissions,
                    false
                ),
                Decision::Deliver { .. }
            )
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("trigger task failed: {e}")))?
    .map_err(ApiError::from)
}
