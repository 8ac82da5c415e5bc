//! IFTTT support (SPEC §14): the trigger slugs (`customer_created` for `customer.created`), the
//! trigger identities IFTTT has asked about (so a new event can be pushed to IFTTT's realtime
//! API as a hint to poll now), and the [`realtime`] notifier. The HTTP surface is
//! [`crate::api::ifttt`]; it reads events through the same scoped, redacted path as Zapier.

pub mod realtime;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::domain::catalog::{self, EventType};

/// Trigger identities remembered at most; the least recently polled goes first.
pub const MAX_IDENTITIES: usize = 10_000;
/// Longest trigger identity accepted, in characters (IFTTT's are 40-character hashes).
pub const MAX_IDENTITY_CHARS: usize = 200;

/// `customer_created` → the `customer.created` catalog entry.
pub fn event_type_of_slug(slug: &str) -> Option<&'static EventType> {
    catalog::CATALOG.iter().find(|t| slug_of(t.name) == slug)
}

/// `customer.created` → `customer_created`.
pub fn slug_of(event_type: &str) -> String {
    event_type.replace('.', "_")
}

/// One trigger identity: an Applet's trigger, for one user and one event type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub event_type: &'static str,
    /// When IFTTT last polled it (unix ms): the eviction order.
    pub last_polled_ms: i64,
}

/// The trigger identities IFTTT polls. In memory only: IFTTT polls every Applet about hourly,
/// so after a restart the set refills by itself, and realtime is only ever a hint.
#[derive(Default)]
pub struct Identities(Mutex<HashMap<String, Identity>>);

impl Identities {
    /// Records that `identity` was polled; evicts the stalest one beyond [`MAX_IDENTITIES`].
    pub fn seen(&self, identity: &str, user_id: &str, event_type: &'static str, now_ms: i64) {
        let mut map = self.0.lock().expect("identities lock");
        map.insert(
            identity.to_string(),
            Identity {
                user_id: user_id.to_string(),
                event_type,
                last_polled_ms: now_ms,
            },
        );
        if map.len() > MAX_IDENTITIES {
            if let Some(stalest) = map
                .iter()
                .min_by_key(|(_, i)| i.last_polled_ms)
                .map(|(k, _)| k.clone())
            {
                map.remove(&stalest);
            }
        }
    }

    /// Forgets an identity (IFTTT's DELETE when no Applet uses it any more).
    pub fn forget(&self, identity: &str) -> bool {
        self.0
            .lock()
            .expect("identities lock")
            .remove(identity)
            .is_some()
    }

    /// The identities of `event_type`, with their users.
    pub fn of_type(&self, event_type: &str) -> Vec<(String, String)> {
        self.0
            .lock()
            .expect("identities lock")
            .iter()
            .filter(|(_, i)| i.event_type == event_type)
            .map(|(k, i)| (k.clone(), i.user_id.clone()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.0.lock().expect("identities lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_round_trip_for_every_catalog_type() {
        for t in catalog::CATALOG.iter() {
            let slug = slug_of(t.name);
            assert!(!slug.contains('.'));
            assert_eq!(event_type_of_slug(&slug).map(|e| e.name), Some(t.name));
        }
        assert!(event_type_of_slug("customer.created").is_none());
        assert!(event_type_of_slug("customer_deleted").is_none());
    }

    #[test]
    fn identities_are_bounded_and_forgettable() {
        let ids = Identities::default();
        for i in 0..MAX_IDENTITIES + 5 {
            ids.seen(&format!("ti_{i}"), "usr_1", "customer.created", i as i64);
        }
        assert_eq!(ids.len(), MAX_IDENTITIES);
        // The stalest were evicted.
        assert!(!ids.forget("ti_0"));
        assert!(ids.forget(&format!("ti_{}", MAX_IDENTITIES + 4)));
        assert_eq!(ids.of_type("lead.created").len(), 0);
        assert_eq!(ids.of_type("customer.created").len(), MAX_IDENTITIES - 1);
    }
}
