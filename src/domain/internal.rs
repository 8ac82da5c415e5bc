//! The engine's own journal events. Users, keys and hooks change only by appending one of these, so
//! the registry and the hooks are projections of the journal, not a second source of truth. Their types start
//! with `internal.`: they are never delivered, never listed by `GET /v1/events`, and never
//! accepted from clients (the catalog does not contain them). Payloads are JSON, like public ones.

use serde::{Deserialize, Serialize};

pub const USER_UPSERTED: &str = "internal.user_upserted";
pub const KEY_CREATED: &str = "internal.key_created";
pub const KEY_REVOKED: &str = "internal.key_revoked";

pub fn is_internal(kind: &str) -> bool {
    kind.starts_with("internal.")
}

/// A new destination policy ([`PolicyRecord`](super::policy::PolicyRecord)), set by an owner.
pub const POLICY_SET: &str = "internal.policy_set";

/// Loop protection stopped a chain ([`LoopDetected`]); an owner cleared one ([`LoopCleared`]).
pub const LOOP_DETECTED: &str = "internal.loop_detected";
pub const LOOP_CLEARED: &str = "internal.loop_cleared";

/// A two-way sync caught echoing (SPEC §10): writes via `key_id` kept matching customers
/// delivered to `hook_id`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LoopDetected {
    pub id: String,
    pub key_id: String,
    pub user_id: String,
    pub hook_id: String,
    /// Echoes counted within the window when the loop was detected.
    pub echoes: u32,
    /// Who was echoed; further matching writes via the key are refused while this is listed.
    pub fingerprint: super::customer::Fingerprint,
    pub detected_at_ms: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LoopCleared {
    pub id: String,
    pub at_ms: i64,
}

/// Internal types the journal's type index covers (besides every public type), so the newest
/// one is found without a scan.
pub fn is_indexed(kind: &str) -> bool {
    !is_internal(kind) || matches!(kind, POLICY_SET | LOOP_DETECTED | LOOP_CLEARED)
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

pub const HOOK_CREATED: &str = "internal.hook_created";
pub const HOOK_UPDATED: &str = "internal.hook_updated";
pub const HOOK_STATE_CHANGED: &str = "internal.hook_state_changed";
pub const HOOK_SECRET_ROTATED: &str = "internal.hook_secret_rotated";
pub const HOOK_DELETED: &str = "internal.hook_deleted";

/// How a hook orders its deliveries (SPEC §5).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Ordering {
    /// Same `data.id` strictly in sequence, different entities in parallel.
    #[default]
    Entity,
    /// One at a time, in sequence order.
    Strict,
    /// Up to `max_in_flight` in parallel, any order.
    None,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    #[default]
    Push,
    Pull,
}

/// Hook states (SPEC §4). Only `Active` delivers; all others keep cursor and backlog.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HookState {
    Active,
    Paused,
    Disabled,
    Suspended,
    PendingApproval,
}

impl HookState {
    pub fn name(self) -> &'static str {
        match self {
            HookState::Active => "active",
            HookState::Paused => "paused",
            HookState::Disabled => "disabled",
            HookState::Suspended => "suspended",
            HookState::PendingApproval => "pending_approval",
        }
    }
}

/// A hook's configuration as created; later events patch it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookRecord {
    pub id: String,
    pub owner_user_id: String,
    pub target_url: Option<String>,
    /// Catalog type names, sorted and unique.
    pub events: Vec<String>,
    pub description: Option<String>,
    pub ordering: Ordering,
    pub delivery: DeliveryMode,
    pub state: HookState,
    pub state_reason: Option<String>,
    /// `whsec_...`: the current signing secret.
    pub secret: String,
    /// The secret before the last rotation, still signing until it expires.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at_ms: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A user's change of a hook's configuration; absent fields are unchanged.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookUpdate {
    pub id: String,
    pub target_url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub at_ms: i64,
}

/// A state change, by its user (pause, resume) or by the engine (disable, suspend).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookStateChange {
    pub id: String,
    pub state: HookState,
    pub reason: Option<String>,
    pub at_ms: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookSecretRotated {
    pub id: String,
    pub secret: String,
    pub previous_secret_expires_at_ms: i64,
    pub at_ms: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HookDeleted {
    pub id: String,
    pub at_ms: i64,
}

pub const REPLAY_REQUESTED: &str = "internal.replay_requested";
pub const REPLAY_BATCH: &str = "internal.replay_batch";

/// A replay of the journal range `from_offset..=to_offset` into a hook, re-matched against the
/// hook's events and its user's permissions at the time the range is scanned.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReplayRequested {
    pub replay_id: String,
    pub hook_id: String,
    pub from_offset: u64,
    pub to_offset: u64,
    /// Matches counted when the replay was requested.
    pub matched: u64,
    pub at_ms: i64,
}

/// Offsets to give new sequences in a hook: a scanned slice of a replay, or the events of a
/// resend or recover (which have no request event).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReplayBatch {
    pub replay_id: String,
    pub hook_id: String,
    pub offsets: Vec<u64>,
    /// The replay's range is scanned up to here (inclusive).
    pub scanned_through: u64,
    pub at_ms: i64,
}
