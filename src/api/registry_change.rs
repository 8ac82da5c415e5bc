//! Changing users and keys: append the internal event, then wait until the registry projection
//! includes it, so the caller's next request sees its own write.

use super::error::ApiError;
use super::{AppState, READ_YOUR_WRITES_TIMEOUT};
use crate::journal::{NewEvent, Origin};
use crate::projectors::registry::Principal;

/// The journal origin of a change made by `principal` (None: the daemon itself).
pub fn origin_of(principal: Option<&Principal>) -> Origin {
    match principal {
        Some(p) => Origin {
            key_id: Some(p.key.id.clone()),
            user_id: Some(p.user.id.clone()),
        },
        None => Origin::default(),
    }
}

/// An internal event with a JSON payload.
pub fn internal_event<T: serde::Serialize>(
    kind: &str,
    entity_id: &str,
    record: &T,
    origin: Origin,
) -> NewEvent {
    NewEvent::internal(kind, entity_id, record, origin)
}

/// Appends registry events durably and waits for the projection to apply them.
pub async fn commit(state: &AppState, events: Vec<NewEvent>) -> Result<(), ApiError> {
    let outcomes = state.writer.append(events).await?;
    let last = outcomes.iter().map(|o| o.offset).max().unwrap_or(0);
    if !state
        .registry_status
        .wait_for(last, READ_YOUR_WRITES_TIMEOUT)
        .await
    {
        // Durable already; only the projection is late. Say so rather than pretend failure.
        return Err(ApiError::unavailable(
            "the change is saved but not yet visible; retry the read shortly",
            1,
        ));
    }
    Ok(())
}
