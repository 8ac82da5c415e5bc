//! API keys (SPEC §3): `POST /v1/users/{id}/keys`, `GET /v1/keys`, `DELETE /v1/keys/{id}`.
//! A user manages its own keys, owners and `admin:webhook` holders manage others' (admins not
//! an owner's). A new key can never hold more than the key that made it, nor more than its user.
//! The secret is shown once, in the create response; only its hash is journaled.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use serde::{Deserialize, Serialize};

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::registry_change;
use super::request::{read_json, Query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use super::response::{json_response, no_content, ListPage, Response};
use super::AppState;
use crate::clock;
use crate::domain::internal::{self, KeyRecord, KeyRevoked, UserRecord};
use crate::domain::permission::PermissionSet;
use crate::ids;
use crate::projectors::registry::{Principal, RegistryState};

const MAX_KEY_NAME_BYTES: usize = 200;

#[derive(Serialize)]
pub struct KeyView<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub name: &'a str,
    pub prefix: &'a str,
    /// `null`: the key holds whatever its user holds.
    pub permissions: Option<&'a [String]>,
    pub active: bool,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl<'a> KeyView<'a> {
    pub fn of(k: &'a KeyRecord) -> KeyView<'a> {
        KeyView {
            id: &k.id,
            user_id: &k.user_id,
            name: &k.name,
            prefix: &k.prefix,
            permissions: k.permissions.as_deref(),
            active: k.revoked_at_ms.is_none(),
            created_at: clock::format_ms(k.created_at_ms),
            revoked_at: k.revoked_at_ms.map(clock::format_ms),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    permissions: Option<Vec<String>>,
}

/// May `caller` manage the keys of `target`?
fn may_manage(caller: &Principal, target: &UserRecord) -> Result<(), ApiError> {
    if caller.user.id == target.id
        || caller.is_owner_admin()
        || (caller.is_admin() && !target.owner)
    {
        Ok(())
    } else {
        Err(ApiError::forbidden("you may manage only your own keys"))
    }
}

/// `POST /v1/users/{id}/keys`.
pub async fn create(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    user_id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    let input: CreateKey = read_json(state, req).await?;
    let name = input.name.trim().to_string();
    if name.is_empty() || name.len() > MAX_KEY_NAME_BYTES {
        return Err(ApiError::validation(format!(
            "name must be 1 to {MAX_KEY_NAME_BYTES} bytes"
        )));
    }
    let _guard = state.registry_lock.lock().await;
    let snapshot = state.registry.snapshot();
    let target = snapshot
        .users
        .get(user_id)
        .ok_or_else(|| ApiError::not_found(format!("no user with id {user_id:?}")))?;
    may_manage(&caller, target)?;
    let user_perms = RegistryState::user_permissions(target);
    let permissions = match &input.permissions {
        Some(names) => {
            let set = PermissionSet::parse_names(names)
                .map_err(|bad| ApiError::validation(format!("unknown permission {bad:?}")))?;
            if !set.is_subset_of(user_perms) {
                return Err(ApiError::validation(
                    "a key's permissions must be a subset of its user's permissions",
                ));
            }
            if !set.is_subset_of(caller.permissions) {
                return Err(ApiError::forbidden(
                    "a key cannot create a key broader than itself",
                ));
            }
            Some(set.names())
        }
        None => {
            if !user_perms.is_subset_of(caller.permissions) {
                return Err(ApiError::forbidden(
                    "this key holds less than the user; list the new key's permissions explicitly",
                ));
            }
            None
        }
    };
    let active_keys = snapshot
        .keys
        .values()
        .filter(|k| k.user_id == user_id && k.revoked_at_ms.is_none())
        .count();
    if active_keys >= state.config.limits.max_keys_per_user {
        return Err(ApiError::conflict(format!(
            "this user already has {active_keys} active keys (the limit); revoke one first"
        )));
    }
    let secret = ids::new_key_secret();
    let record = KeyRecord {
        id: ids::new_id(ids::KEY_PREFIX),
        user_id: user_id.to_string(),
        name,
        prefix: secret.prefix.clone(),
        hash: secret.hash.clone(),
        permissions,
        created_at_ms: clock::now_ms(),
        revoked_at_ms: None,
    };
    let event = registry_change::internal_event(
        internal::KEY_CREATED,
        &record.id,
        &record,
        registry_change::origin_of(Some(&caller)),
    );
    registry_change::commit(state, vec![event]).await?;
    let mut body = serde_json::to_value(KeyView::of(&record)).expect("key view serialises");
    body["key"] = serde_json::Value::String(secret.secret);
    Ok(json_response(StatusCode::CREATED, &body))
}

/// `GET /v1/keys`: the caller's keys; admins see all, or one user's with `?user_id=`.
pub fn list(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    let query = Query::parse(req.uri().query());
    let limit = query.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let user_filter = match (caller.is_admin(), query.get("user_id")) {
        (true, filter) => filter.map(str::to_string),
        (false, Some(u)) if u != caller.user.id => {
            return Err(ApiError::forbidden("you may list only your own keys"))
        }
        (false, _) => Some(caller.user.id.clone()),
    };
    let snapshot = state.registry.snapshot();
    let after = query.get("cursor").unwrap_or("");
    let page: Vec<&KeyRecord> = snapshot
        .keys
        .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        .map(|(_, k)| k)
        .filter(|k| user_filter.as_deref().is_none_or(|u| k.user_id == u))
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let next_cursor = more.then(|| page.last().map(|k| k.id.clone())).flatten();
    Ok(json_response(
        StatusCode::OK,
        &ListPage {
            data: page.iter().map(|k| KeyView::of(k)).collect(),
            next_cursor,
        },
    ))
}

/// `DELETE /v1/keys/{id}`: deactivates the key (idempotent), 204.
pub async fn revoke(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    key_id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    let _guard = state.registry_lock.lock().await;
    let snapshot = state.registry.snapshot();
    let key = snapshot
        .keys
        .get(key_id)
        .ok_or_else(|| ApiError::not_found(format!("no key with id {key_id:?}")))?;
    let owner = snapshot
        .users
        .get(&key.user_id)
        .ok_or_else(|| ApiError::internal("key without a user"))?;
    may_manage(&caller, owner)?;
    if key.revoked_at_ms.is_some() {
        return Ok(no_content());
    }
    let record = KeyRevoked {
        id: key_id.to_string(),
        revoked_at_ms: clock::now_ms(),
    };
    let event = registry_change::internal_event(
        internal::KEY_REVOKED,
        key_id,
        &record,
        registry_change::origin_of(Some(&caller)),
    );
    registry_change::commit(state, vec![event]).await?;
    Ok(no_content())
}
