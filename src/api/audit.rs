//! `GET /v1/audit/hooks` (owners and `admin:webhook`): who sends what where. Every hook with its
//! user, destination host, event types, state and delivery counts, in id order, paged like any
//! list (`?limit=`, `?cursor=`), so an owner can review all outbound data flows in one place.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::request::{Query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use super::response::{json_response, ListPage, Response};
use super::AppState;
use crate::clock;

/// `GET /v1/audit/hooks`.
pub fn hooks(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    caller.require_admin()?;
    let query = Query::parse(req.uri().query());
    let limit = query.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let after = query.get("cursor").unwrap_or("");
    let snapshot = state.hooks.snapshot();
    let registry = state.registry.snapshot();
    let page: Vec<_> = snapshot
        .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        .map(|(_, h)| h)
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let data = page
        .iter()
        .map(|h| {
            let user = registry.users.get(&h.owner_user_id);
            let progress = state.progress.get(&h.id);
            let host = h
                .target_url
                .as_deref()
                .and_then(|u| url::Url::parse(u).ok())
                .and_then(|u| u.host_str().map(str::to_string));
            json!({
                "id": h.id,
                "user": {
                    "id": h.owner_user_id,
                    "name": user.map(|u| u.name.as_str()),
                    "owner": user.map(|u| u.owner),
                },
                "destination_host": host,
                "target_url": h.target_url,
                "delivery": h.delivery,
                "events": h.events,
                "state": h.state,
                "state_reason": h.state_reason,
                "created_at": clock::format_ms(h.created_at_ms),
                "deliveries": {
                    "succeeded": progress.succeeded_total,
                    "failed": progress.failed_total,
                    "skipped": progress.skipped_total,
                },
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &ListPage {
            data,
            next_cursor: more.then(|| page.last().map(|h| h.id.clone())).flatten(),
        },
    ))
}
