//! Polling (SPEC §7) against the real binary: the Zapier polling trigger `GET /v1/triggers/{type}`
//! (newest first, unique ids, limits, scope and redaction exactly as deliveries) and pull hooks
//! (`GET /v1/hooks/{id}/poll` under a lease, `POST /v1/hooks/{id}/ack`, redelivery after the
//! lease, lag, and the errors of each).

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Daemon;
use serde_json::{json, Value};

fn start() -> Daemon {
    common::start_with("[limits]\nrate_limit_per_minute = 100000\n")
}

/// Posts a batch of events (owner key); returns their ids in order.
fn post(d: &Daemon, events: Value) -> Vec<String> {
    let r = d.owner("POST", "/v1/events", Some(&events));
    assert_eq!(r.status, 201, "post events: {}", r.text);
    r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

fn customers(from: usize, n: usize) -> Value {
    Value::Array(
        (from..from + n)
            .map(
                |i| json!({"type": "customer.created", "data": {"id": format!("cus_{i}"), "n": i}}),
            )
            .collect(),
    )
}

fn trigger(d: &Daemon, key: &str, query: &str) -> Vec<Value> {
    let r = d.call("GET", &format!("/v1/triggers/{query}"), Some(key), None);
    assert_eq!(r.status, 200, "trigger {query}: {}", r.text);
    r.json.as_array().expect("a bare array").clone()
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn trigger_lists_newest_first_with_unique_ids_and_honours_limit() {
    let d = start();
    let posted = post(&d, customers(0, 60));
    post(
        &d,
        json!({"type": "lead.created", "data": {"id": "lead_1"}}),
    );

    let all = trigger(&d, &d.owner_key, "customer.created");
    assert_eq!(all.len(), 50, "default limit is 50");
    let mut newest_first: Vec<String> = posted.clone();
    newest_first.reverse();
    assert_eq!(ids(&all), newest_first[..50].to_vec());
    let unique: HashSet<String> = ids(&all).into_iter().collect();
    assert_eq!(unique.len(), 50);
    // Items are shaped like a delivery body.
    let first = &all[0];
    assert_eq!(first["type"], "customer.created");
    assert_eq!(first["data"]["id"], "cus_59");
    assert!(first["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        first.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["id", "type", "timestamp", "data"]
    );

    let three = trigger(&d, &d.owner_key, "customer.created?limit=3");
    assert_eq!(ids(&three), newest_first[..3].to_vec());
    assert_eq!(
        trigger(&d, &d.owner_key, "customer.created?limit=100").len(),
        60
    );
    // Other types never leak in.
    assert_eq!(trigger(&d, &d.owner_key, "lead.created").len(), 1);
    assert!(trigger(&d, &d.owner_key, "service.created").is_empty());

    for bad in ["0", "101", "x", "-1"] {
        let r = d.owner(
            "GET",
            &format!("/v1/triggers/customer.created?limit={bad}"),
            None,
        );
        assert_eq!(r.status, 400, "limit={bad}: {}", r.text);
        assert_eq!(r.code(), "invalid_request");
    }
    let r = d.owner("GET", "/v1/triggers/customer.deleted", None);
    assert_eq!(r.status, 422);
    assert_eq!(r.code(), "unknown_event_type");
    let r = d.call("GET", "/v1/triggers/customer.created", None, None);
    assert_eq!(r.status, 401);
    let (_, lead_only) = d.user_with_key("leads", &["subscribe:webhook", "read:lead"]);
    let r = d.call(
        "GET",
        "/v1/triggers/customer.created",
        Some(&lead_only),
        None,
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.code(), "forbidden");
}

/// Zapier dedupes on `id`: two successive polls with new events in between must show every new
/// id exactly once, at the top, and never reorder the older ids.
#[test]
fn successive_polls_put_new_ids_on_top_and_keep_older_order() {
    let d = start();
    post(&d, customers(0, 5));
    let first = ids(&trigger(&d, &d.owner_key, "customer.created?limit=100"));
    let mut seen: HashSet<String> = first.iter().cloned().collect();

    let new = post(&d, customers(5, 3));
    let second = ids(&trigger(&d, &d.owner_key, "customer.created?limit=100"));
    let fresh: Vec<&String> = second.iter().filter(|i| !seen.contains(*i)).collect();
    assert_eq!(fresh.len(), 3, "every new id appears once: {second:?}");
    let mut expected_top = new.clone();
    expected_top.reverse();
    assert_eq!(second[..3].to_vec(), expected_top, "new ids are on top");
    assert_eq!(second[3..].to_vec(), first, "older ids keep their order");
    seen.extend(second.iter().cloned());

    // A third poll with nothing new shows no new id.
    let third = ids(&trigger(&d, &d.owner_key, "customer.created?limit=100"));
    assert!(third.iter().all(|i| seen.contains(i)));
    assert_eq!(third, second);
}

#[test]
fn trigger_is_scoped_and_redacted_like_deliveries() {
    let d = start();
    let (ann, ann_key) =
        d.user_with_key("ann", &["subscribe:webhook", "read:customer", "read:lead"]);
    let (bob, _) = d.user_with_key("bob", &["subscribe:webhook", "read:lead"]);
    let (_, all_key) = d.user_with_key(
        "all",
        &[
            "subscribe:webhook",
            "subscribe.all:webhook",
            "read:lead",
            "read:customer",
            "medical:customer",
        ],
    );
    post(
        &d,
        json!([
            {"type": "lead.created", "data": {"id": "lead_ann"}, "assigned_user_id": ann},
            {"type": "lead.created", "data": {"id": "lead_bob"}, "assigned_user_id": bob},
            {"type": "lead.created", "data": {"id": "lead_nobody"}},
            {"type": "customer.created", "data": {"id": "cus_m", "profile": {"medical_conditions": ["asthma", "diabetes"]}}}
        ]),
    );
    let entity_ids = |items: Vec<Value>| -> Vec<String> {
        items
            .iter()
            .map(|i| i["data"]["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        entity_ids(trigger(&d, &ann_key, "lead.created")),
        ["lead_nobody", "lead_ann"],
        "assigned to ann or unassigned only"
    );
    assert_eq!(
        entity_ids(trigger(&d, &all_key, "lead.created")),
        ["lead_nobody", "lead_bob", "lead_ann"]
    );
    assert_eq!(
        entity_ids(trigger(&d, &d.owner_key, "lead.created")).len(),
        3
    );

    let redacted = trigger(&d, &ann_key, "customer.created");
    let profile = &redacted[0]["data"]["profile"];
    assert!(profile.get("medical_conditions").is_none(), "{profile}");
    assert_eq!(profile["medical_conditions_count"], 2);
    assert!(!redacted[0].to_string().contains("asthma"));
    let full = trigger(&d, &all_key, "customer.created");
    assert_eq!(
        full[0]["data"]["profile"]["medical_conditions"],
        json!(["asthma", "diabetes"])
    );
}

fn pull_hook(d: &Daemon, key: &str) -> String {
    let r = d.call(
        "POST",
        "/v1/hooks",
        Some(key),
        Some(&json!({"delivery": "pull", "event": "customer.created"})),
    );
    assert_eq!(r.status, 201, "create pull hook: {}", r.text);
    assert_eq!(r.json["delivery"], "pull");
    r.json["id"].as_str().unwrap().to_string()
}

fn poll(d: &Daemon, hook: &str, query: &str) -> Value {
    let r = d.owner("GET", &format!("/v1/hooks/{hook}/poll{query}"), None);
    assert_eq!(r.status, 200, "poll: {}", r.text);
    r.json
}

fn sequences(page: &Value) -> Vec<u64> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["sequence"].as_u64().unwrap())
        .collect()
}

fn ack(d: &Daemon, hook: &str, body: Value) -> common::Reply {
    d.owner("POST", &format!("/v1/hooks/{hook}/ack"), Some(&body))
}

fn hook_view(d: &Daemon, hook: &str) -> Value {
    let r = d.owner("GET", &format!("/v1/hooks/{hook}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// Waits until the hook has `n` matched sequences (the matcher runs beside the writer).
fn wait_head(d: &Daemon, hook: &str, n: u64) {
    common::wait_until(Duration::from_secs(10), || {
        (hook_view(d, hook)["head_sequence"].as_u64() == Some(n)).then_some(())
    })
    .unwrap_or_else(|| panic!("hook {hook} did not reach head {n}"));
}

#[test]
fn pull_hook_leases_acks_and_redelivers_after_the_lease() {
    let d = start();
    let hook = pull_hook(&d, &d.owner_key);
    let posted = post(&d, customers(0, 5));
    wait_head(&d, &hook, 5);
    assert_eq!(hook_view(&d, &hook)["lag"], 5);

    let page = poll(&d, &hook, "?limit=3&lease_seconds=1");
    assert_eq!(sequences(&page), [1, 2, 3]);
    let items = page["data"].as_array().unwrap();
    assert_eq!(items[0]["id"], posted[0].as_str());
    assert_eq!(items[0]["type"], "customer.created");
    assert_eq!(items[0]["data"]["id"], "cus_0");
    let lease = page["lease_id"].as_str().unwrap().to_string();

    // While leased, the next poll continues after the leased range.
    let next = poll(&d, &hook, "?limit=10&lease_seconds=1");
    assert_eq!(sequences(&next), [4, 5]);
    // Nothing acked; once the lease ends everything comes back, from the cursor.
    std::thread::sleep(Duration::from_millis(1300));
    let again = poll(&d, &hook, "?limit=3&lease_seconds=30");
    assert_eq!(
        sequences(&again),
        [1, 2, 3],
        "unacked items return after the lease"
    );
    let current = again["lease_id"].as_str().unwrap().to_string();
    assert_ne!(current, lease);

    // A stale lease id, a sequence never handed out, and a bad body are refused.
    let r = ack(&d, &hook, json!({"sequence": 2, "lease_id": lease}));
    assert_eq!(r.status, 409, "{}", r.text);
    let r = ack(&d, &hook, json!({"sequence": 4, "lease_id": current}));
    assert_eq!(r.status, 422, "{}", r.text);
    let r = ack(&d, &hook, json!({"seq": 2}));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "validation_failed");
    assert_eq!(hook_view(&d, &hook)["cursor"]["sequence"], 0);

    let r = ack(&d, &hook, json!({"sequence": 2, "lease_id": current}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["cursor"]["sequence"], 2);
    let view = hook_view(&d, &hook);
    assert_eq!(view["cursor"]["sequence"], 2);
    assert_eq!(view["lag"], 3);
    // Acking an older sequence again is harmless.
    let r = ack(&d, &hook, json!({"sequence": 1}));
    assert_eq!(r.status, 200);
    assert_eq!(r.json["cursor"]["sequence"], 2);

    let page = poll(&d, &hook, "?limit=10&lease_seconds=30");
    assert_eq!(
        sequences(&page),
        [4, 5],
        "continues after the lease still held (3)"
    );
    let r = ack(
        &d,
        &hook,
        json!({"sequence": 5, "lease_id": page["lease_id"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(hook_view(&d, &hook)["lag"], 0);
    assert!(sequences(&poll(&d, &hook, "")).is_empty());

    // Bad poll parameters.
    for q in [
        "?limit=0",
        "?limit=1001",
        "?lease_seconds=0",
        "?lease_seconds=3601",
    ] {
        let r = d.owner("GET", &format!("/v1/hooks/{hook}/poll{q}"), None);
        assert_eq!(r.status, 400, "{q}: {}", r.text);
    }
}

#[test]
fn acked_cursor_survives_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    let config = "[limits]\nrate_limit_per_minute = 100000\n";
    let mut d = common::start_in(temp.path(), config);
    let hook = pull_hook(&d, &d.owner_key);
    post(&d, customers(0, 4));
    wait_head(&d, &hook, 4);
    let page = poll(&d, &hook, "?limit=2");
    let r = ack(
        &d,
        &hook,
        json!({"sequence": 2, "lease_id": page["lease_id"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(d.stop(), Some(0));

    let d = common::start_in(temp.path(), config);
    let view = hook_view(&d, &hook);
    assert_eq!(view["cursor"]["sequence"], 2);
    assert_eq!(view["lag"], 2);
    assert_eq!(sequences(&poll(&d, &hook, "")), [3, 4]);
}

#[test]
fn pull_hooks_are_scoped_redacted_and_private() {
    let d = start();
    let (_, key) = d.user_with_key("zap", &["subscribe:webhook", "read:customer"]);
    let (_, other) = d.user_with_key("other", &["subscribe:webhook", "read:customer"]);
    let hook = pull_hook(&d, &key);
    post(
        &d,
        json!({"type": "customer.created", "data": {"id": "cus_1", "medical_conditions": ["x"]}}),
    );
    wait_head(&d, &hook, 1);
    let r = d.call("GET", &format!("/v1/hooks/{hook}/poll"), Some(&key), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let item = &r.json["data"][0];
    assert!(item["data"].get("medical_conditions").is_none(), "{item}");
    assert_eq!(item["data"]["medical_conditions_count"], 1);

    // Another user's hook is invisible; a push hook is not polled.
    let r = d.call("GET", &format!("/v1/hooks/{hook}/poll"), Some(&other), None);
    assert_eq!(r.status, 404);
    let push = d.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"target_url": "http://127.0.0.1:9/x", "event": "customer.created"})),
    );
    assert_eq!(push.status, 201, "{}", push.text);
    let r = d.owner(
        "GET",
        &format!("/v1/hooks/{}/poll", push.json["id"].as_str().unwrap()),
        None,
    );
    assert_eq!(r.status, 409, "{}", r.text);
    // A pull hook may not have a target.
    let r = d.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"delivery": "pull", "target_url": "http://127.0.0.1:9/x", "event": "customer.created"})),
    );
    assert_eq!(r.status, 422, "{}", r.text);

    // Losing read:customer: the next poll hands out nothing and suspends the hook.
    let user = d.call("GET", "/v1/me", Some(&key), None).json["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{user}"),
        Some(&json!({"permissions": ["subscribe:webhook"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    post(&d, customers(2, 1));
    wait_head(&d, &hook, 2);
    let r = d.call("GET", &format!("/v1/hooks/{hook}/poll"), Some(&key), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["data"].as_array().unwrap().is_empty(), "{}", r.text);
    let suspended = common::wait_until(Duration::from_secs(10), || {
        let v = hook_view(&d, &hook);
        (v["state"] == "suspended").then_some(v)
    });
    assert!(
        suspended.is_some(),
        "hook suspended after losing read:customer"
    );
}
