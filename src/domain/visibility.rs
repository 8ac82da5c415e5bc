//! Who may see an event, and what of it (SPEC §6). One place decides, for every way data leaves
//! the daemon — deliveries, replays, polling, customer reads, IFTTT — so the rules are written
//! once: the subscriber needs `subscribe:webhook` and the type's read permission *now*;
//! user-scoped events with an assigned user reach only that user, owners and
//! `subscribe.all:webhook` holders; `medical_conditions` is removed at any depth (replaced by
//! `medical_conditions_count`) unless the subscriber holds `medical:customer`.

use serde_json::{Map, Value};

use super::catalog::{EventType, Scope};
use super::internal::UserRecord;
use super::permission::{Permission, PermissionSet};

const MEDICAL_FIELD: &str = "medical_conditions";
const MEDICAL_COUNT_FIELD: &str = "medical_conditions_count";
/// Deepest nesting redaction walks; serde_json refuses deeper documents (128) anyway.
const MAX_DEPTH: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Deliver, redacting medical data when `redact_medical`.
    Deliver { redact_medical: bool },
    /// Not for this subscriber (assigned to another user); nothing is wrong with the hook.
    OutOfScope,
    /// The subscriber lacks a permission it needs: the hook must be suspended.
    Forbidden { missing: Permission },
    /// The subscriber's user is deactivated.
    Inactive,
}

/// Decides whether `subscriber` (holding `permissions`, its current effective set) may receive
/// an event of `event_type` assigned to `assigned_user_id`, requiring `subscribe:webhook` when
/// `needs_subscribe` (deliveries and polling) — not for plain reads.
pub fn decide(
    event_type: &EventType,
    assigned_user_id: Option<&str>,
    subscriber: &UserRecord,
    permissions: PermissionSet,
    needs_subscribe: bool,
) -> Decision {
    if !subscriber.active {
        return Decision::Inactive;
    }
    if needs_subscribe && !permissions.contains(Permission::SubscribeWebhook) {
        return Decision::Forbidden {
            missing: Permission::SubscribeWebhook,
        };
    }
    if !permissions.contains(event_type.read_permission) {
        return Decision::Forbidden {
            missing: event_type.read_permission,
        };
    }
    if event_type.scope == Scope::UserScoped {
        if let Some(assigned) = assigned_user_id {
            let sees_all =
                subscriber.owner || permissions.contains(Permission::SubscribeAllWebhook);
            if assigned != subscriber.id && !sees_all {
                return Decision::OutOfScope;
            }
        }
    }
    Decision::Deliver {
        redact_medical: !permissions.contains(Permission::MedicalCustomer),
    }
}

/// The `data` bytes as they may leave for a subscriber: unchanged (no copy of meaning, just the
/// stored bytes) unless medical data must go, in which case it is re-encoded without it.
pub fn visible_data(data: &[u8], redact_medical: bool) -> std::borrow::Cow<'_, [u8]> {
    if !redact_medical || !contains_medical(data) {
        return std::borrow::Cow::Borrowed(data);
    }
    match serde_json::from_slice::<Value>(data) {
        Ok(mut value) => {
            if !redact_value(&mut value, 0) {
                // An escape forced the walk but nothing was medical: keep the stored bytes.
                return std::borrow::Cow::Borrowed(data);
            }
            std::borrow::Cow::Owned(serde_json::to_vec(&value).unwrap_or_else(|_| b"{}".to_vec()))
        }
        // Stored payloads were validated JSON; if one is not, send nothing of it.
        Err(_) => std::borrow::Cow::Owned(b"{}".to_vec()),
    }
}

/// Cheap pre-check: the field name can only be present if its bytes are (JSON escapes such as
/// `\u0065` could spell it otherwise, so any backslash-u also forces the full walk).
fn contains_medical(data: &[u8]) -> bool {
    let needle = MEDICAL_FIELD.as_bytes();
    data.windows(needle.len()).any(|w| w == needle) || data.windows(2).any(|w| w == b"\\u")
}

/// Redacts in place; true when something was removed.
fn redact_value(value: &mut Value, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    match value {
        Value::Object(map) => redact_map(map, depth),
        Value::Array(items) => items.iter_mut().fold(false, |changed, item| {
            redact_value(item, depth + 1) | changed
        }),
        _ => false,
    }
}

fn redact_map(map: &mut Map<String, Value>, depth: usize) -> bool {
    let mut changed = false;
    if let Some(removed) = map.shift_remove(MEDICAL_FIELD) {
        changed = true;
        let count = match &removed {
            Value::Array(items) => items.len(),
            Value::Object(fields) => fields.len(),
            Value::Null => 0,
            Value::String(s) if s.trim().is_empty() => 0,
            _ => 1,
        };
        map.insert(MEDICAL_COUNT_FIELD.to_string(), Value::from(count));
    }
    map.iter_mut().fold(changed, |changed, (_, v)| {
        redact_value(v, depth + 1) | changed
    })
}

/// The delivery body `{"id","type","timestamp","data"}`, splicing `data` bytes as given.
pub fn delivery_body(id: &str, kind: &str, timestamp: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(data.len() + id.len() + kind.len() + 64);
    body.extend_from_slice(b"{\"id\":");
    body.extend_from_slice(&json_string(id));
    body.extend_from_slice(b",\"type\":");
    body.extend_from_slice(&json_string(kind));
    body.extend_from_slice(b",\"timestamp\":");
    body.extend_from_slice(&json_string(timestamp));
    body.extend_from_slice(b",\"data\":");
    body.extend_from_slice(data);
    body.push(b'}');
    body
}

fn json_string(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).expect("strings serialise")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::lookup;

    fn user(id: &str, owner: bool) -> UserRecord {
        UserRecord {
            id: id.into(),
            name: id.into(),
            email: None,
            owner,
            permissions: vec![],
            active: true,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    fn perms(names: &[&str]) -> PermissionSet {
        PermissionSet::parse_names(names).unwrap()
    }

    #[test]
    fn scoping_matrix() {
        let service = lookup("service.created").unwrap();
        let customer = lookup("customer.created").unwrap();
        let base = perms(&["subscribe:webhook", "read:service", "read:customer"]);
        let all = perms(&["subscribe:webhook", "subscribe.all:webhook", "read:service"]);
        let alice = user("alice", false);
        let owner = user("boss", true);
        let deliver = Decision::Deliver {
            redact_medical: true,
        };
        // (event type, assigned user, subscriber, permissions, expected)
        let cases: Vec<(
            &EventType,
            Option<&str>,
            &UserRecord,
            PermissionSet,
            Decision,
        )> = vec![
            (customer, None, &alice, base, deliver),
            (customer, Some("bob"), &alice, base, deliver), // account-wide ignores assignment
            (service, Some("alice"), &alice, base, deliver),
            (service, Some("bob"), &alice, base, Decision::OutOfScope),
            (service, None, &alice, base, deliver), // unassigned → account-wide
            (
                service,
                Some("bob"),
                &owner,
                PermissionSet::all(),
                Decision::Deliver {
                    redact_medical: false,
                },
            ),
            (service, Some("bob"), &alice, all, deliver),
            (
                service,
                Some("alice"),
                &alice,
                perms(&["subscribe:webhook"]),
                Decision::Forbidden {
                    missing: Permission::ReadService,
                },
            ),
            (
                customer,
                None,
                &alice,
                perms(&["read:customer"]),
                Decision::Forbidden {
                    missing: Permission::SubscribeWebhook,
                },
            ),
        ];
        for (i, (t, assigned, u, p, expected)) in cases.into_iter().enumerate() {
            assert_eq!(decide(t, assigned, u, p, true), expected, "case {i}");
        }
        let mut inactive = user("alice", false);
        inactive.active = false;
        assert_eq!(
            decide(customer, None, &inactive, base, true),
            Decision::Inactive
        );
    }

    #[test]
    fn medical_conditions_removed_at_any_depth() {
        let data = br#"{"id":"c1","medical_conditions":["a","b"],"nested":{"x":[{"medical_conditions":"asthma"}]},"keep":1}"#;
        let out = visible_data(data, true);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["medical_conditions_count"], 2);
        assert!(v.get("medical_conditions").is_none());
        assert_eq!(v["nested"]["x"][0]["medical_conditions_count"], 1);
        assert!(!String::from_utf8_lossy(&out).contains("asthma"));
        assert_eq!(v["keep"], 1);
        // Escaped spellings of the key are caught too.
        let escaped = br#"{"id":"c1","medical\u005fconditions":["x"]}"#;
        assert!(!String::from_utf8_lossy(&visible_data(escaped, true)).contains("\"x\""));
    }

    #[test]
    fn untouched_without_medical_data_or_with_permission() {
        let data = br#"{"id": "c1",  "name":"Ann"}"#;
        assert!(matches!(
            visible_data(data, true),
            std::borrow::Cow::Borrowed(_)
        ));
        let medical = br#"{"id":"c1","medical_conditions":["a"]}"#;
        assert_eq!(&*visible_data(medical, false), &medical[..]);
    }

    #[test]
    fn body_splices_data() {
        let body = delivery_body(
            "evt_1",
            "customer.created",
            "2026-12-04T09:20:51.123Z",
            br#"{"id": 1}"#,
        );
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"id":"evt_1","type":"customer.created","timestamp":"2026-12-04T09:20:51.123Z","data":{"id": 1}}"#
        );
    }
}
