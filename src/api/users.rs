//! `/v1/users` and `/v1/me` (SPEC §3). Owners and `admin:webhook` holders manage users; an admin
//! who is not an owner can neither create or change owners nor grant permissions it lacks. The
//! last active owner cannot be demoted or deactivated.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{HeaderMap, Request, StatusCode};
use serde::{Deserialize, Serialize};

use super::auth::{authenticate, Access};
use super::error::ApiError;
use super::keys::KeyView;
use super::registry_change;
use super::request::{read_json, Query, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
use super::response::{json_response, ListPage, Response};
use super::AppState;
use crate::clock;
use crate::domain::internal::{self, UserRecord};
use crate::domain::permission::PermissionSet;
use crate::ids;
use crate::projectors::registry::{Principal, RegistryState};

const MAX_NAME_BYTES: usize = 200;
const MAX_EMAIL_BYTES: usize = 254;

#[derive(Serialize)]
pub struct UserView<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub email: Option<&'a str>,
    pub owner: bool,
    pub permissions: &'a [String],
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl<'a> UserView<'a> {
    pub fn of(u: &'a UserRecord) -> UserView<'a> {
        UserView {
            id: &u.id,
            name: &u.name,
            email: u.email.as_deref(),
            owner: u.owner,
            permissions: &u.permissions,
            active: u.active,
            created_at: clock::format_ms(u.created_at_ms),
            updated_at: clock::format_ms(u.updated_at_ms),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    id: Option<String>,
    name: String,
    email: Option<String>,
    #[serde(default)]
    owner: bool,
    #[serde(default)]
    permissions: Vec<String>,
    active: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    name: Option<String>,
    email: Option<Option<String>>,
    owner: Option<bool>,
    permissions: Option<Vec<String>>,
    active: Option<bool>,
}

fn validate_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(ApiError::validation(format!(
            "name must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(name.to_string())
}

fn validate_email(email: Option<String>) -> Result<Option<String>, ApiError> {
    match email {
        None => Ok(None),
        Some(e) => {
            let e = e.trim().to_string();
            let shaped = e.len() <= MAX_EMAIL_BYTES
                && e.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                })
                && !e.chars().any(char::is_whitespace);
            if shaped {
                Ok(Some(e))
            } else {
                Err(ApiError::validation(format!(
                    "email {e:?} is not an email address"
                )))
            }
        }
    }
}

/// Parses permission names, and checks the caller may grant them.
fn grantable(caller: &Principal, names: &[String]) -> Result<PermissionSet, ApiError> {
    let set = PermissionSet::parse_names(names)
        .map_err(|bad| ApiError::validation(format!("unknown permission {bad:?}")))?;
    if !set.is_subset_of(caller.permissions) {
        return Err(ApiError::forbidden(
            "you cannot grant permissions your own key does not hold",
        ));
    }
    Ok(set)
}

/// `POST /v1/users`.
pub async fn create(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    caller.require_admin()?;
    let input: CreateUser = read_json(state, req).await?;
    let name = validate_name(&input.name)?;
    let email = validate_email(input.email)?;
    if input.owner && !caller.is_owner_admin() {
        return Err(ApiError::forbidden(
            "only an owner may create another owner",
        ));
    }
    let permissions = grantable(&caller, &input.permissions)?;
    let id = match input.id {
        Some(id) if ids::is_valid_client_id(&id) => id,
        Some(_) => {
            return Err(ApiError::validation(
                "id must be 1 to 128 characters of A-Z a-z 0-9 _ - . :",
            ))
        }
        None => ids::new_id(ids::USER_PREFIX),
    };
    let _guard = state.registry_lock.lock().await;
    let snapshot = state.registry.snapshot();
    if snapshot.users.contains_key(&id) {
        return Err(ApiError::conflict(format!(
            "a user with id {id:?} already exists"
        )));
    }
    if snapshot.users.len() >= state.config.limits.max_users {
        return Err(ApiError::conflict(format!(
            "the user limit ({}) is reached",
            state.config.limits.max_users
        )));
    }
    let now = clock::now_ms();
    let record = UserRecord {
        id: id.clone(),
        name,
        email,
        owner: input.owner,
        permissions: if input.owner {
            PermissionSet::all().names()
        } else {
            permissions.names()
        },
        active: input.active.unwrap_or(true),
        created_at_ms: now,
        updated_at_ms: now,
    };
    let event = registry_change::internal_event(
        internal::USER_UPSERTED,
        &id,
        &record,
        registry_change::origin_of(Some(&caller)),
    );
    registry_change::commit(state, vec![event]).await?;
    Ok(json_response(StatusCode::CREATED, &UserView::of(&record)))
}

/// `PATCH /v1/users/{id}`.
pub async fn update(
    state: &Arc<AppState>,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    caller.require_admin()?;
    let input: UpdateUser = read_json(state, req).await?;
    let _guard = state.registry_lock.lock().await;
    let snapshot = state.registry.snapshot();
    let current = snapshot
        .users
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no user with id {id:?}")))?;
    if (current.owner || input.owner == Some(true)) && !caller.is_owner_admin() {
        return Err(ApiError::forbidden("only an owner may change an owner"));
    }
    let mut next = current.clone();
    if let Some(name) = &input.name {
        next.name = validate_name(name)?;
    }
    if let Some(email) = input.email {
        next.email = validate_email(email)?;
    }
    if let Some(names) = &input.permissions {
        next.permissions = grantable(&caller, names)?.names();
    }
    if let Some(owner) = input.owner {
        next.owner = owner;
        if owner {
            next.permissions = PermissionSet::all().names();
        }
    }
    if let Some(active) = input.active {
        next.active = active;
    }
    let loses_owner = current.owner && current.active && !(next.owner && next.active);
    if loses_owner && snapshot.active_owner_count() <= 1 {
        return Err(ApiError::conflict(
            "this is the last active owner; make another owner first",
        ));
    }
    if next == *current {
        return Ok(json_response(StatusCode::OK, &UserView::of(current)));
    }
    next.updated_at_ms = clock::now_ms();
    let event = registry_change::internal_event(
        internal::USER_UPSERTED,
        id,
        &next,
        registry_change::origin_of(Some(&caller)),
    );
    registry_change::commit(state, vec![event]).await?;
    Ok(json_response(StatusCode::OK, &UserView::of(&next)))
}

/// `GET /v1/users` (sorted by id, paginated).
pub async fn list(state: &Arc<AppState>, req: Request<Incoming>) -> Result<Response, ApiError> {
    let caller = authenticate(state, req.headers())?;
    caller.require_admin()?;
    let query = Query::parse(req.uri().query());
    let limit = query.limit(DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)?;
    let snapshot = state.registry.snapshot();
    let after = query.get("cursor").unwrap_or("");
    let page: Vec<&UserRecord> = snapshot
        .users
        .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
        .map(|(_, u)| u)
        .take(limit + 1)
        .collect();
    let more = page.len() > limit;
    let page = &page[..page.len().min(limit)];
    let next_cursor = more.then(|| page.last().map(|u| u.id.clone())).flatten();
    Ok(json_response(
        StatusCode::OK,
        &ListPage {
            data: page.iter().map(|u| UserView::of(u)).collect(),
            next_cursor,
        },
    ))
}

/// `GET /v1/users/{id}`: admins, or the user itself.
pub fn get(state: &Arc<AppState>, headers: &HeaderMap, id: &str) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    if caller.user.id != id {
        caller.require_admin()?;
    }
    let snapshot = state.registry.snapshot();
    let user = snapshot
        .users
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no user with id {id:?}")))?;
    Ok(json_response(StatusCode::OK, &UserView::of(user)))
}

/// `GET /v1/me`: the caller's user, key and effective permissions.
pub fn me(state: &Arc<AppState>, headers: &HeaderMap) -> Result<Response, ApiError> {
    let caller = authenticate(state, headers)?;
    let body = serde_json::json!({
        "user": UserView::of(&caller.user),
        "key": KeyView::of(&caller.key),
        "permissions": caller.permissions.names(),
        "user_permissions": RegistryState::user_permissions(&caller.user).names(),
    });
    Ok(json_response(StatusCode::OK, &body))
}
