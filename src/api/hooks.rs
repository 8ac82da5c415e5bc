//! `/v1/hooks` (SPEC §4): subscriptions. Create (Zapier REST Hooks `{"target_url","event"}` or the
//! `events` form), list, get (with cursor, head, lag and failure counters), patch, delete, and
//! rotate-secret, and an owner's approval. Every change is a journal event; the hook is a
//! projection of them. A hook is visible to its user and to admins; to anyone else it does not
//! exist (404). Targets are vetted against the destination policy (SPEC §11) whenever one is set
//! or a hook is made active: 403 `destination_not_allowed` when it forbids them.

use std::collections::BTreeSet;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::request::{read_json, Query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use super::response::{json_response, no_content, ListPage, Response};
use super::{AppState, READ_YOUR_WRITES_TIMEOUT};
use crate::clock;
use crate::domain::catalog;
use crate::domain::internal::{
    self, DeliveryMode, HookDeleted, HookRecord, HookSecretRotated, HookState, HookStateChange,
    HookUpdate, Ordering,
};
use crate::domain::permission::{Permission, PermissionSet};
use crate::domain::policy::Policy;
use crate::ids;
use crate::journal::NewEvent;
use crate::projectors::registry::{Principal, RegistryState};
use crate::sender::resolve::DestinationError;
use crate::sender::signing::HmacSecret;

const HOOK_PREFIX: &str = "hook_";
const MAX_DESCRIPTION_BYTES: usize = 500;
/// The `state_reason` of a hook waiting for an owner's approval.
const AWAITING_APPROVAL: &str = "awaiting_approval";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateHook {
    target_url: Option<String>,
    event: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    ordering: Option<Ordering>,
    delivery: Option<DeliveryMode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateHook {
    target_url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<Option<String>>,
    state: Option<String>,
}

/// A hook as read: configuration plus delivery progress.
pub fn view(state: &AppState, hook: &HookRecord) -> Value {
    let progress = state.progress.get(&hook.id);
    let head = state.hooks.head_sequence(&hook.id);
    json!({
        "id": hook.id,
        "target_url": hook.target_url,
        "events": hook.events,
        "description": hook.description,
        "ordering": hook.ordering,
        "delivery": hook.delivery,
        "state": hook.state,
        "state_reason": hook.state_reason,
        "owner_user_id": hook.owner_user_id,
        "created_at": clock::format_ms(hook.created_at_ms),
        "updated_at": clock::format_ms(hook.updated_at_ms),
        "cursor": {"sequence": progress.cursor_sequence, "offset": progress.cursor_offset},
        "head_sequence": head,
        "lag": head.saturating_sub(progress.cursor_sequence),
        "consecutive_failures": progress.consecutive_failures,
        "last_success_at": progress.last_success_at_ms.map(clock::format_ms),
        "last_failure_at": progress.last_failure_at_ms.map(clock::format_ms),
        "next_attempt_at": progress.next_attempt_at_ms.map(clock::format_ms),
        "deliveries": {
            "succeeded": progress.succeeded_total,
            "failed": progress.failed_total,
            "skipped": progress.skipped_total,
        },
    })
}

/// Validates a target URL: absolute http(s) with a host, within the length limit.
fn validate_target(state: &AppState, url: &str) -> Result<String, ApiError> {
    validate_target_url(url, state.config.limits.max_target_url_bytes)
}

/// [`validate_target`] without the state: the normalized URL, or why it is refused (pure, so
/// it can be fuzzed; `max` is `limits.max_target_url_bytes`).
pub fn validate_target_url(url: &str, max: usize) -> Result<String, ApiError> {
    if url.len() > max {
        return Err(ApiError::validation(format!(
            "target_url is longer than {max} bytes"
        )));
    }
    let parsed = url::Url::parse(url)
        .map_err(|e| ApiError::validation(format!("target_url is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::validation(
            "target_url must be an http or https URL",
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::validation("target_url must name a host"));
    }
    // hyper must be able to send to it as written.
    parsed
        .as_str()
        .parse::<hyper::Uri>()
        .map_err(|e| ApiError::validation(format!("target_url cannot be used: {e}")))?;
    Ok(parsed.to_string())
}

/// Checks a (validated) target URL against `policy`, resolving its host: 403
/// `destination_not_allowed` when forbidden, 422 when the host does not resolve.
pub async fn vet_target(state: &AppState, policy: &Policy, url: &str) -> Result<(), ApiError> {
    let parsed = url::Url::parse(url)
        .map_err(|e| ApiError::validation(format!("target_url is not a valid URL: {e}")))?;
    match state.destinations.vet(policy, &parsed).await {
        Ok(()) => Ok(()),
        Err(DestinationError::Refused(v)) => Err(ApiError::destination_not_allowed(format!(
            "target_url {url:?} is not allowed: {v}"
        ))),
        Err(e @ DestinationError::Unresolvable { .. }) => Err(ApiError::validation(format!(
            "target_url cannot be used: {e}"
        ))),
    }
}

/// Validates event types (sorted, unique) and that `permissions` may read each of them.
fn validate_events(
    state: &AppState,
    names: &[String],
    permissions: PermissionSet,
) -> Result<Vec<String>, ApiError> {
    let max = state.config.limits.max_events_per_hook;
    if names.is_empty() {
        return Err(ApiError::validation("a hook needs at least one event type"));
    }
    if names.len() > max {
        return Err(ApiError::validation(format!(
            "a hook has at most {max} event types"
        )));
    }
    let mut out = BTreeSet::new();
    for name in names {
        let t = catalog::lookup(name).ok_or_else(|| {
            ApiError::unknown_event_type(format!(
                "unknown event type {name:?}; accepted types: {}",
                catalog::names().join(", ")
            ))
        })?;
        if !permissions.contains(t.read_permission) {
            return Err(ApiError::forbidden(format!(
                "subscribing to {name} needs the permission {}",
                t.read_permission
            )));
        }
        out.insert(t.name.to_string());
    }
    Ok(out.into_iter().collect())
}

fn validate_description(d: Option<String>) -> Result<Option<String>, ApiError> {
    match d {
        Some(d) if d.len() > MAX_DESCRIPTION_BYTES => Err(ApiError::validation(format!(
            "description is longer than {MAX_DESCRIPTION_BYTES} bytes"
        ))),
        other => Ok(other),
    }
}

pub fn hook_event<T: serde::Serialize>(
    kind: &str,
    hook_id: &str,
    record: &T,
    caller: Option<&Principal>,
) -> NewEvent {
    super::registry_change::internal_event(
        kind,
        hook_id,
        record,
        super::registry_change::origin_of(caller),
    )
}

/// Appends hook events and waits until the hooks projection includes them.
pub async fn commit(state: &AppState, events: Vec<NewEvent>) -> Result<(), ApiError> {
    let outcomes = state.writer.append(events).await?;
    let last = outcomes.iter().map(|o| o.offset).max().unwrap_or(0);
    if !state
        .hooks_status
        .wait_for(last, READ_YOUR_WRITES_TIMEOUT)
        .await
    {
        return Err(ApiError::unavailable(
            "the change is saved but not yet visible; retry the read shortly",
            1,
        ));
    }
    Ok(())
}

/// The hook, if the caller may see it (its user, or an admin).
fn visible_hook(state: &AppState, caller: &Principal, id: &str) -> Result<HookRecord, ApiError> {
    match state.hooks.get(id) {
        Some(h) if h.owner_user_id == caller.user.id || caller.is_admin() => Ok(h),
        _ => Err(ApiError::not_found(format!("no hook with id {id:?}"))),
    }
}

/// `POST /v1/hooks`.
pub async fn create(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    caller.require(Permission::SubscribeWebhook)?;
    let input: CreateHook = read_json(state, req).await?;
    let mut names: Vec<String> = input.events.unwrap_or_default();
    names.extend(input.event);
    let events = validate_events(state, &names, caller.permissions)?;
    let delivery = input.delivery.unwrap_or_default();
    let target_url = match (delivery, input.target_url.as_deref()) {
        (DeliveryMode::Push, Some(url)) => Some(validate_target(state, url)?),
        (DeliveryMode::Push, None) => {
            return Err(ApiError::validation(
                "target_url is required for push delivery",
            ))
        }
        (DeliveryMode::Pull, None) => None,
        (DeliveryMode::Pull, Some(_)) => {
            return Err(ApiError::validation("a pull hook has no target_url"))
        }
    };
    let description = validate_description(input.description)?;
    let policy = state.destinations.policy.current();
    if let Some(url) = &target_url {
        vet_target(state, &policy, url).await?;
    }
    // Under an approval policy, a non-owner's hook waits for an owner (SPEC §11).
    let (initial_state, initial_reason) = if policy.record().require_approval && !caller.user.owner
    {
        (
            HookState::PendingApproval,
            Some(AWAITING_APPROVAL.to_string()),
        )
    } else {
        (HookState::Active, None)
    };
    let _guard = state.hooks_lock.lock().await;
    let count = state.hooks.snapshot().len();
    if count >= state.config.limits.max_hooks {
        return Err(ApiError::conflict(format!(
            "the hook limit ({}) is reached",
            state.config.limits.max_hooks
        )));
    }
    let (_, secret) = HmacSecret::generate();
    let now = clock::now_ms();
    let record = HookRecord {
        id: ids::new_id(HOOK_PREFIX),
        owner_user_id: caller.user.id.clone(),
        target_url,
        events,
        description,
        ordering: input.ordering.unwrap_or_default(),
        delivery,
        state: initial_state,
        state_reason: initial_reason,
        secret: secret.clone(),
        previous_secret: None,
        previous_secret_expires_at_ms: None,
        created_at_ms: now,
        updated_at_ms: now,
    };
    commit(
        state,
        vec![hook_event(
            internal::HOOK_CREATED,
            &record.id,
            &record,
            Some(&caller),
        )],
    )
    .await?;
    let mut body = view(state, &record);
    body["secret"] = Value::String(secret);
    Ok(json_response(StatusCode::CREATED, &body))
}

/// `GET /v1/hooks`: own hooks; admins see all, or one user's with `?user_id=`.
pub fn list(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    let query = Query::parse(req.uri().query());
    let limit = query.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let user_filter = match (caller.is_admin(), query.get("user_id")) {
        (true, filter) => filter.map(str::to_string),
        (false, Some(u)) if u != caller.user.id => {
            return Err(ApiError::forbidden("you may list only your own hooks"))
        }
        (false, _) => Some(caller.user.id.clone()),
    };
    let snapshot = state.hooks.snapshot();
    let after = query.get("cursor").unwrap_or("");
    let page: Vec<&HookRecord> = snapshot
        .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        .map(|(_, h)| h)
        .filter(|h| user_filter.as_deref().is_none_or(|u| h.owner_user_id == u))
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let next_cursor = more.then(|| page.last().map(|h| h.id.clone())).flatten();
    Ok(json_response(
        StatusCode::OK,
        &ListPage {
            data: page.iter().map(|h| view(state, h)).collect(),
            next_cursor,
        },
    ))
}

/// `GET /v1/hooks/{id}`.
pub fn get(state: &Arc<AppState>, headers: &HeaderMap, id: &str) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    let hook = visible_hook(state, &caller, id)?;
    Ok(json_response(StatusCode::OK, &view(state, &hook)))
}

/// `PATCH /v1/hooks/{id}`: configuration and `state` (`active` / `paused`).
pub async fn update(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    let input: UpdateHook = read_json(state, req).await?;
    // Vet the target that will be delivered to before taking the lock (DNS can be slow): a new
    // one, or the current one when the hook is made active again.
    let policy = state.destinations.policy.current();
    if let Some(url) = &input.target_url {
        vet_target(state, &policy, &validate_target(state, url)?).await?;
    } else if input.state.as_deref() == Some("active") {
        if let Some(url) = visible_hook(state, &caller, id)?.target_url {
            vet_target(state, &policy, &url).await?;
        }
    }
    let _guard = state.hooks_lock.lock().await;
    let hook = visible_hook(state, &caller, id)?;
    let registry = state.registry.snapshot();
    let hook_user = registry
        .users
        .get(&hook.owner_user_id)
        .ok_or_else(|| ApiError::conflict("the hook's user no longer exists"))?;
    let user_permissions = RegistryState::user_permissions(hook_user);
    let now = clock::now_ms();
    let mut update = HookUpdate {
        id: id.to_string(),
        target_url: None,
        events: None,
        description: None,
        at_ms: now,
    };
    if let Some(url) = &input.target_url {
        if hook.delivery == DeliveryMode::Pull {
            return Err(ApiError::validation("a pull hook has no target_url"));
        }
        let url = validate_target(state, url)?;
        update.target_url = (hook.target_url.as_deref() != Some(url.as_str())).then_some(url);
    }
    if let Some(names) = &input.events {
        // The caller's key and the hook's user must both be able to read the new types.
        let events = validate_events(state, names, caller.permissions.intersect(user_permissions))?;
        update.events = (events != hook.events).then_some(events);
    }
    if let Some(description) = input.description {
        let description = validate_description(description)?;
        update.description = (description != hook.description).then_some(description);
    }
    let target_state = match input.state.as_deref() {
        None => None,
        Some("active") => Some(HookState::Active),
        Some("paused") => Some(HookState::Paused),
        Some(other) => {
            return Err(ApiError::validation(format!(
                "state can be set to \"active\" or \"paused\", not {other:?}"
            )))
        }
    }
    .filter(|s| *s != hook.state);
    if target_state.is_some() && hook.state == HookState::PendingApproval {
        // Only approval leaves pending_approval (pausing first must not bypass it).
        return Err(ApiError::forbidden(
            "this hook awaits an owner's approval (POST /v1/hooks/{id}/approve)",
        ));
    }
    if target_state == Some(HookState::Active) {
        // Resuming needs what delivering needs, now.
        let events = update.events.as_ref().unwrap_or(&hook.events);
        if !user_permissions.contains(Permission::SubscribeWebhook) {
            return Err(ApiError::forbidden(
                "the hook's user lacks subscribe:webhook",
            ));
        }
        validate_events(state, events, user_permissions)?;
    }
    let mut events = Vec::new();
    let config_changed =
        update.target_url.is_some() || update.events.is_some() || update.description.is_some();
    if config_changed {
        events.push(hook_event(
            internal::HOOK_UPDATED,
            id,
            &update,
            Some(&caller),
        ));
    }
    if let Some(new_state) = target_state {
        let change = HookStateChange {
            id: id.to_string(),
            state: new_state,
            reason: (new_state == HookState::Paused).then(|| "paused_by_user".to_string()),
            at_ms: now,
        };
        events.push(hook_event(
            internal::HOOK_STATE_CHANGED,
            id,
            &change,
            Some(&caller),
        ));
    }
    if events.is_empty() {
        return Ok(json_response(StatusCode::OK, &view(state, &hook)));
    }
    if target_state == Some(HookState::Active) && hook.state == HookState::Disabled {
        // A fresh start: the failing clock begins again.
        state
            .progress
            .update(id, |p| {
                p.failing_since_ms = None;
                p.consecutive_failures = 0;
            })
            .await;
    }
    commit(state, events).await?;
    let hook = state
        .hooks
        .get(id)
        .ok_or_else(|| ApiError::not_found("the hook was deleted"))?;
    Ok(json_response(StatusCode::OK, &view(state, &hook)))
}

/// `POST /v1/hooks/{id}/approve`: an owner lets a `pending_approval` hook deliver, after
/// vetting its target against the policy in force now.
pub async fn approve(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    if !caller.is_owner_admin() {
        return Err(ApiError::forbidden("only an owner may approve hooks"));
    }
    let hook = visible_hook(state, &caller, id)?;
    if let Some(url) = &hook.target_url {
        vet_target(state, &state.destinations.policy.current(), url).await?;
    }
    let _guard = state.hooks_lock.lock().await;
    let hook = visible_hook(state, &caller, id)?;
    if hook.state != HookState::PendingApproval {
        return Err(ApiError::conflict(format!(
            "the hook is {}, not pending_approval",
            hook.state.name()
        )));
    }
    let change = HookStateChange {
        id: id.to_string(),
        state: HookState::Active,
        reason: None,
        at_ms: clock::now_ms(),
    };
    commit(
        state,
        vec![hook_event(
            internal::HOOK_STATE_CHANGED,
            id,
            &change,
            Some(&caller),
        )],
    )
    .await?;
    let hook = state
        .hooks
        .get(id)
        .ok_or_else(|| ApiError::not_found("the hook was deleted"))?;
    Ok(json_response(StatusCode::OK, &view(state, &hook)))
}

/// `DELETE /v1/hooks/{id}` → 204.
pub async fn delete(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    let _guard = state.hooks_lock.lock().await;
    visible_hook(state, &caller, id)?;
    let deleted = HookDeleted {
        id: id.to_string(),
        at_ms: clock::now_ms(),
    };
    commit(
        state,
        vec![hook_event(
            internal::HOOK_DELETED,
            id,
            &deleted,
            Some(&caller),
        )],
    )
    .await?;
    Ok(no_content())
}

/// `POST /v1/hooks/{id}/rotate-secret`: a new secret; the previous one keeps signing beside it
/// for `delivery.secret_overlap_ms`.
pub async fn rotate_secret(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    let _guard = state.hooks_lock.lock().await;
    visible_hook(state, &caller, id)?;
    let (_, secret) = HmacSecret::generate();
    let now = clock::now_ms();
    let expires = now + state.config.delivery.secret_overlap_ms as i64;
    let rotated = HookSecretRotated {
        id: id.to_string(),
        secret: secret.clone(),
        previous_secret_expires_at_ms: expires,
        at_ms: now,
    };
    commit(
        state,
        vec![hook_event(
            internal::HOOK_SECRET_ROTATED,
            id,
            &rotated,
            Some(&caller),
        )],
    )
    .await?;
    let body = json!({
        "id": id,
        "secret": secret,
        "previous_secret_expires_at": clock::format_ms(expires),
    });
    Ok(json_response(StatusCode::OK, &body))
}
