//! Who is calling: the tenant check, the API key (`X-Api-Key` or `Authorization: Bearer`), the
//! effective permissions (key ∩ the user's current ones), and the per-key rate limit.

use hyper::HeaderMap;

use super::error::ApiError;
use super::AppState;
use crate::domain::permission::Permission;
use crate::ids;
use crate::projectors::registry::Principal;

/// Longest header value we will hash as a key; real keys are 43 bytes.
const MAX_KEY_BYTES: usize = 256;

/// `X-Tenant-Name`, when sent, must match the configured tenant.
pub fn check_tenant(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(sent) = headers.get("x-tenant-name") else {
        return Ok(());
    };
    let sent = sent.to_str().unwrap_or("");
    match state.config.tenant.as_deref() {
        Some(tenant) if tenant == sent => Ok(()),
        Some(_) => Err(ApiError::unauthorized(
            "X-Tenant-Name does not match this daemon's tenant",
        )),
        None => Err(ApiError::unauthorized(
            "X-Tenant-Name was sent but this daemon has no tenant configured (set `tenant`)",
        )),
    }
}

fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key") {
        return v.to_str().ok().map(str::trim);
    }
    let auth = headers.get(hyper::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
}

/// Authenticates the request and charges its key's rate limit.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    check_tenant(state, headers)?;
    let key = presented_key(headers)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized("missing API key: send X-Api-Key or Authorization: Bearer")
        })?;
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::unauthorized("invalid API key"));
    }
    let principal = state
        .registry
        .snapshot()
        .authenticate(&ids::hash_key_secret(key))
        .ok_or_else(|| ApiError::unauthorized("invalid, revoked or deactivated API key"))?;
    let limits = &state.config.limits;
    let per_minute = if principal.permissions.contains(Permission::IngestEvent) {
        limits.ingest_rate_limit_per_minute
    } else {
        limits.rate_limit_per_minute
    };
    state
        .rate_limiter
        .check(&principal.key.id, per_minute)
        .map_err(ApiError::rate_limited)?;
    Ok(principal)
}

/// Permission checks on an authenticated caller.
pub trait Access {
    fn require(&self, permission: Permission) -> Result<(), ApiError>;
    /// Owners and `admin:webhook` holders manage users, keys and policy.
    fn is_admin(&self) -> bool;
    fn require_admin(&self) -> Result<(), ApiError>;
    /// An owner calling with a key that holds admin rights (owner-only operations).
    fn is_owner_admin(&self) -> bool;
}

impl Access for Principal {
    fn require(&self, permission: Permission) -> Result<(), ApiError> {
        if self.permissions.contains(permission) {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "this API key lacks the permission {permission}"
            )))
        }
    }

    fn is_admin(&self) -> bool {
        // A restricted key of an owner is not an admin key: only what the key holds counts.
        self.permissions.contains(Permission::AdminWebhook)
    }

    fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "only owners and holders of admin:webhook may do this",
            ))
        }
    }

    fn is_owner_admin(&self) -> bool {
        self.user.owner && self.is_admin()
    }
}
