//! The engine's own journal events. Users and keys are changed only by appending one of these, so
//! the registry is a projection of the journal, not a second source of truth. Their types start
//! with `internal.`: they are never delivered, never listed by `GET /v1/events`, and never
//! accepted from clients (the catalog does not contain them). Payloads are JSON, like public ones.

use serde::{Deserialize, Serialize};

pub const USER_UPSERTED: &str = "internal.user_upserted";
pub const KEY_CREATED: &str = "internal.key_created";
pub const KEY_REVOKED: &str = "internal.key_revoked";

pub fn is_internal(kind: &str) -> bool {
    kind.starts_with("internal.")
}

/// The full state of a user after a create or update (last write wins on replay).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
    pub owner: bool,
    /// Permission names, in catalog order.
    pub permissions: Vec<String>,
    pub active: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// An API key as stored: the hash of its secret, never the secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub prefix: String,
    pub hash: String,
    /// `None`: everything its user holds, whatever that becomes.
    pub permissions: Option<Vec<String>>,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct KeyRevoked {
    pub id: String,
    pub revoked_at_ms: i64,
}
