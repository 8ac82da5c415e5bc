//! May a hook's user receive this event now? One answer for push deliveries, pull consumers and
//! replays: the hook must still subscribe to the type, and the user's *current* permissions and
//! scope decide (see [`visibility`](crate::domain::visibility)).

use crate::domain::catalog;
use crate::domain::internal::HookRecord;
use crate::domain::visibility::{self, Decision};
use crate::journal::Envelope;
use crate::projectors::registry::RegistryState;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Deliver; redact medical data when true.
    Deliver { redact_medical: bool },
    /// Not for this hook (type no longer subscribed, or out of scope): skip, hook unaffected.
    Skip(&'static str),
    /// The user lacks a permission or is gone/inactive: skip and suspend the hook.
    Deny(String),
}

pub fn check(registry: &RegistryState, hook: &HookRecord, envelope: &Envelope) -> Access {
    if crate::retention::is_tombstone(envelope) {
        // Trimmed by retention: its data is gone.
        return Access::Skip("retention_removed");
    }
    if !hook.events.contains(&envelope.kind) {
        return Access::Skip("unsubscribed");
    }
    let Some(event_type) = catalog::lookup(&envelope.kind) else {
        return Access::Skip("unsubscribed");
    };
    let Some(user) = registry.users.get(&hook.owner_user_id) else {
        return Access::Deny("user_not_found".into());
    };
    let permissions = RegistryState::user_permissions(user);
    match visibility::decide(
        event_type,
        envelope.assigned_user_id.as_deref(),
        user,
        permissions,
        true,
    ) {
        Decision::Deliver { redact_medical } => Access::Deliver { redact_medical },
        Decision::OutOfScope => Access::Skip("out_of_scope"),
        Decision::Forbidden { missing } => Access::Deny(format!("missing_permission:{missing}")),
        Decision::Inactive => Access::Deny("user_inactive".into()),
    }
}
