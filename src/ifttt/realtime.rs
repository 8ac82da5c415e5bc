//! IFTTT's Realtime API: when an event arrives that an Applet's trigger identity would see, POST
//! `{"data":[{"trigger_identity": ...}, ...]}` to the configured realtime URL so IFTTT polls now
//! instead of within the hour. It is only a hint — IFTTT still reads the trigger endpoint — so a
//! failed notification is logged and dropped, never retried into a backlog.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::journal::Db;
use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};

use super::Identities;
use crate::domain::catalog;
use crate::domain::visibility::{self, Decision};
use crate::journal::{reader, Writer};
use crate::projectors::registry::{Registry, RegistryState};
use crate::sender::client::HttpClient;
use crate::shutdown::Shutdown;

/// Journal entries examined per round at most.
const MAX_ENTRIES_PER_ROUND: usize = 10_000;
/// Identities per notification request (IFTTT's limit).
const MAX_IDENTITIES_PER_REQUEST: usize = 1000;
/// Requests per round at most; beyond it, the rest waits for IFTTT's own hourly poll.
const MAX_REQUESTS_PER_ROUND: usize = 10;
/// Gathers events for this long after a wake-up, so a burst is one notification.
const COALESCE: Duration = Duration::from_millis(200);

pub struct RealtimeParts {
    pub db: Arc<Db>,
    pub writer: Writer,
    pub registry: Registry,
    pub identities: Arc<Identities>,
    pub client: Arc<HttpClient>,
    pub service_key: String,
    pub realtime_url: hyper::Uri,
}

/// Follows the journal head from now on and notifies IFTTT of identities with new events.
pub async fn run(parts: RealtimeParts, mut shutdown: Shutdown) {
    let mut head = parts.writer.head_watch();
    let mut done_through = *head.borrow();
    loop {
        tokio::select! {
            changed = head.changed() => if changed.is_err() { return },
            _ = shutdown.wait() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(COALESCE) => {}
            _ = shutdown.wait() => return,
        }
        if parts.identities.is_empty() {
            done_through = *head.borrow();
            continue;
        }
        let db = parts.db.clone();
        let registry = parts.registry.snapshot();
        let identities = parts.identities.clone();
        let from = done_through + 1;
        let found = tokio::task::spawn_blocking(move || {
            identities_to_notify(&db, &registry, &identities, from)
        })
        .await;
        let (through, notify) = match found {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "IFTTT realtime: journal read failed");
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "IFTTT realtime: task failed");
                continue;
            }
        };
        done_through = through.max(done_through);
        let notify: Vec<String> = notify.into_iter().collect();
        for chunk in notify
            .chunks(MAX_IDENTITIES_PER_REQUEST)
            .take(MAX_REQUESTS_PER_ROUND)
        {
            send(&parts, chunk).await;
        }
        if *head.borrow() > done_through {
            // More arrived than one round covers: go again without waiting for a change.
            head.mark_changed();
        }
    }
}

/// The identities whose user may see an event appended from `from` on (one round's worth), and
/// the offset the round got through.
fn identities_to_notify(
    db: &Db,
    registry: &RegistryState,
    identities: &Identities,
    from: u64,
) -> Result<(u64, BTreeSet<String>), crate::journal::JournalError> {
    let mut through = from.saturating_sub(1);
    let mut notify = BTreeSet::new();
    // The identities of each type, taken once per round (not once per journal entry).
    let by_type: HashMap<&str, Vec<(String, String)>> = catalog::CATALOG
        .iter()
        .map(|t| (t.name, identities.of_type(t.name)))
        .filter(|(_, ids)| !ids.is_empty())
        .collect();
    reader::scan_from(db, from, MAX_ENTRIES_PER_ROUND, |e| {
        through = e.offset;
        let Some(event_type) = catalog::lookup(&e.kind) else {
            return true; // internal entries are never announced
        };
        let Some(polled) = by_type.get(event_type.name) else {
            return true;
        };
        for (identity, user_id) in polled {
            if notify.contains(identity) {
                continue;
            }
            let Some(user) = registry.users.get(user_id) else {
                continue;
            };
            let permissions = RegistryState::user_permissions(user);
            let decision = visibility::decide(
                event_type,
                e.assigned_user_id.as_deref(),
                user,
                permissions,
                false,
            );
            if matches!(decision, Decision::Deliver { .. }) {
                notify.insert(identity.clone());
            }
        }
        true
    })?;
    Ok((through, notify))
}

async fn send(parts: &RealtimeParts, identities: &[String]) {
    let data: Vec<serde_json::Value> = identities
        .iter()
        .map(|i| serde_json::json!({ "trigger_identity": i }))
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "data": data })).expect("JSON serialises");
    let mut headers = vec![
        (
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            hyper::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        ),
        (
            HeaderName::from_static("x-request-id"),
            HeaderValue::from_str(&ulid::Ulid::new().to_string()).expect("ULIDs are ASCII"),
        ),
    ];
    match HeaderValue::from_str(&parts.service_key) {
        Ok(v) => headers.push((HeaderName::from_static("ifttt-service-key"), v)),
        Err(_) => {
            tracing::warn!("IFTTT realtime: the service key is not a valid header value");
            return;
        }
    }
    let outcome = parts
        .client
        .post(parts.realtime_url.clone(), headers, Bytes::from(body))
        .await;
    match (outcome.status, outcome.error) {
        (Some(status), _) if (200..300).contains(&status) => {
            tracing::debug!(identities = identities.len(), "IFTTT realtime notified")
        }
        (Some(status), _) => {
            tracing::warn!(
                status,
                identities = identities.len(),
                "IFTTT realtime refused"
            )
        }
        (None, error) => {
            tracing::warn!(error = error.unwrap_or_default(), "IFTTT realtime failed")
        }
    }
}
