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
use crate::domain::catalog;
use crate::domain::visibility::{self, Decision};
use crate::journal::reader;

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
    let db = state.db.clone();
    let user = caller.user.clone();
    let permissions = caller.permissions;
    let matches = tokio::task::spawn_blocking(move || {
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
    .map_err(|e| ApiError::internal(format!("trigger task failed: {e}")))??;
    let redact = !permissions.contains(crate::domain::permission::Permission::MedicalCustomer);
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
