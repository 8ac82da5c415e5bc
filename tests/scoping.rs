//! SPEC §6 — scoping, permissions and redaction, checked at delivery time, end to end (real
//! daemon, real HTTP receiver on 127.0.0.1).
//!
//! - `scoping_matrix_delivers_each_event_to_exactly_the_allowed_hooks`: an owner, two plain users
//!   (alice, bob: `subscribe:webhook` + `read:service` + `read:customer`) and carol (the same plus
//!   `subscribe.all:webhook`) each own a hook on `service.created` and `customer.created`. A table
//!   of events (account-wide customer events, even one carrying an assigned user; service events
//!   assigned to alice, to bob, to a user without a hook, and unassigned) states the exact set of
//!   receivers per event, and the test asserts exactly that set got each event. Hooks are
//!   `strict`, so a final account-wide marker reaching every receiver proves every earlier
//!   sequence was final (delivered or filtered): absence is checked after that, never by sleeping.
//! - `revoked_permission_suspends_the_hook_and_its_suspended_period_is_never_delivered`: removing
//!   `read:customer` from alice mid-stream makes her next delivery `skipped` and her hook
//!   `suspended` with a reason naming the permission; re-activating without the permission is
//!   403; events posted while suspended never arrive, even after the permission is restored and
//!   the hook is active again — only events posted after re-activation do.
//! - `medical_conditions_are_redacted_unless_the_hook_user_holds_medical_customer`:
//!   `medical_conditions` at the top level and nested in arrays of objects (and spelled with a
//!   JSON escape) is removed for a user without `medical:customer` and replaced by
//!   `medical_conditions_count` with the item counts; users with the permission (and the owner)
//!   receive the posted `data` byte for byte.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::receiver::{Received, Receiver};
use common::Daemon;
use serde_json::{json, Value};

/// Small retry schedule and timeouts; loopback receivers explicitly allowed by the policy.
const CONFIG: &str = "[delivery]\nretry_schedule_ms = [0, 50, 100]\ntimeout_ms = 2000\n\
                      [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n";
/// Longest any single expected delivery may take to show up.
const DELIVERY_WAIT: Duration = Duration::from_secs(15);

/// Creates an owner user (via the API, `"owner": true`) with a key; returns (id, key).
fn owner_user_with_key(d: &Daemon, name: &str) -> (String, String) {
    let r = d.owner(
        "POST",
        "/v1/users",
        Some(&json!({"name": name, "owner": true, "permissions": []})),
    );
    assert_eq!(r.status, 201, "create owner user: {}", r.text);
    assert_eq!(r.json["owner"], true, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    let r = d.owner(
        "POST",
        &format!("/v1/users/{id}/keys"),
        Some(&json!({"name": "test"})),
    );
    assert_eq!(r.status, 201, "create owner key: {}", r.text);
    (id, r.json["key"].as_str().unwrap().to_string())
}

/// Creates a hook with `key`; returns its id.
fn create_hook(d: &Daemon, key: &str, body: Value) -> String {
    let r = d.call("POST", "/v1/hooks", Some(key), Some(&body));
    assert_eq!(r.status, 201, "create hook {body}: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

/// Posts events (owner key, which holds `ingest:event`); asserts 201.
fn post_events(d: &Daemon, events: &[Value]) {
    let r = d.owner("POST", "/v1/events", Some(&Value::Array(events.to_vec())));
    assert_eq!(r.status, 201, "post events: {}", r.text);
    assert_eq!(r.json["data"].as_array().map(Vec::len), Some(events.len()));
}

/// The `webhook-id`s received on `path`, in arrival order.
fn ids_at(received: &[Received], path: &str) -> Vec<String> {
    received
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.header("webhook-id").unwrap_or("").to_string())
        .collect()
}

/// Waits (bounded) until every path in `paths` received the event `event_id`.
fn wait_for_event_at(rx: &Receiver, paths: &[&str], event_id: &str) -> Vec<Received> {
    let got = common::wait_until(DELIVERY_WAIT, || {
        let all = rx.received();
        paths
            .iter()
            .all(|p| ids_at(&all, p).iter().any(|id| id == event_id))
            .then_some(all)
    });
    match got {
        Some(all) => all,
        None => {
            let all = rx.received();
            let seen: BTreeMap<&str, Vec<String>> =
                paths.iter().map(|p| (*p, ids_at(&all, p))).collect();
            panic!(
                "{event_id} did not reach all of {paths:?} within {DELIVERY_WAIT:?}; got {seen:#?}"
            )
        }
    }
}

fn get_hook(d: &Daemon, id: &str) -> Value {
    let r = d.owner("GET", &format!("/v1/hooks/{id}"), None);
    assert_eq!(r.status, 200, "get hook: {}", r.text);
    r.json
}

#[test]
fn scoping_matrix_delivers_each_event_to_exactly_the_allowed_hooks() {
    let d = common::start_with(CONFIG);
    let rx = Receiver::ok();
    let base = ["subscribe:webhook", "read:service", "read:customer"];
    let (_owner_id, owner_key) = owner_user_with_key(&d, "Olga Owner");
    let (alice_id, alice_key) = d.user_with_key("alice", &base);
    let (bob_id, bob_key) = d.user_with_key("bob", &base);
    let mut all_perms = base.to_vec();
    all_perms.push("subscribe.all:webhook");
    let (_carol_id, carol_key) = d.user_with_key("carol", &all_perms);

    // One hook per user, each to its own path; strict, so arrival at the end proves finality.
    let subscribers = [
        ("owner", "/owner", &owner_key),
        ("alice", "/alice", &alice_key),
        ("bob", "/bob", &bob_key),
        ("carol", "/carol", &carol_key),
    ];
    let mut hook_of = BTreeMap::new();
    for (_, path, key) in subscribers {
        let id = create_hook(
            &d,
            key,
            json!({
                "target_url": rx.url(path),
                "events": ["service.created", "customer.created"],
                "ordering": "strict",
            }),
        );
        hook_of.insert(path, id);
    }

    let everyone: BTreeSet<&str> = ["owner", "alice", "bob", "carol"].into();
    let set = |names: &[&'static str]| names.iter().copied().collect::<BTreeSet<&str>>();
    // (event id, type, assigned user, receivers that must get it — and no others)
    let table: Vec<(&str, &str, Option<&str>, BTreeSet<&str>)> = vec![
        ("evt-cust-1", "customer.created", None, everyone.clone()),
        // Account-wide: an assignment does not narrow a customer event.
        (
            "evt-cust-assigned-bob",
            "customer.created",
            Some(&bob_id),
            everyone.clone(),
        ),
        (
            "evt-svc-alice",
            "service.created",
            Some(&alice_id),
            set(&["owner", "alice", "carol"]),
        ),
        (
            "evt-svc-bob",
            "service.created",
            Some(&bob_id),
            set(&["owner", "bob", "carol"]),
        ),
        (
            "evt-svc-unassigned",
            "service.created",
            None,
            everyone.clone(),
        ),
        (
            "evt-svc-someone-else",
            "service.created",
            Some("usr_someone_without_a_hook"),
            set(&["owner", "carol"]),
        ),
    ];
    let events: Vec<Value> = table
        .iter()
        .enumerate()
        .map(|(i, (id, kind, assigned, _))| {
            let mut e =
                json!({"id": id, "type": kind, "data": {"id": format!("entity-{i}"), "n": i}});
            if let Some(user) = assigned {
                e["assigned_user_id"] = json!(user);
            }
            e
        })
        .collect();
    post_events(&d, &events);
    // The marker: account-wide, after everything else; every receiver must get it.
    post_events(
        &d,
        &[json!({"id": "evt-marker", "type": "customer.created", "data": {"id": "marker"}})],
    );
    let paths: Vec<&str> = subscribers.iter().map(|(_, p, _)| *p).collect();
    let all = wait_for_event_at(&rx, &paths, "evt-marker");

    for (name, path, _) in subscribers {
        let got = ids_at(&all, path);
        // Every delivery on this path came from this user's hook.
        for r in all.iter().filter(|r| r.path == path) {
            assert_eq!(r.header("rev23-hook-id"), Some(hook_of[path].as_str()));
        }
        assert_eq!(
            got.last().map(String::as_str),
            Some("evt-marker"),
            "{name}: the marker is the last delivery (strict ordering); got {got:?}"
        );
        let got_set: BTreeSet<&str> = got.iter().map(String::as_str).collect();
        for (event_id, kind, assigned, receivers) in &table {
            assert_eq!(
                got_set.contains(event_id),
                receivers.contains(name),
                "{name} {} {event_id} ({kind}, assigned to {assigned:?}); {name} received {got:?}",
                if receivers.contains(name) {
                    "must receive"
                } else {
                    "must not receive"
                },
            );
        }
        let expected: BTreeSet<&str> = table
            .iter()
            .filter(|(_, _, _, receivers)| receivers.contains(name))
            .map(|(id, ..)| *id)
            .chain(["evt-marker"])
            .collect();
        assert_eq!(got_set, expected, "{name}: exactly the allowed events");
    }
    // Received in posting order, too (strict hooks).
    let alice_got = ids_at(&all, "/alice");
    assert_eq!(
        alice_got,
        [
            "evt-cust-1",
            "evt-cust-assigned-bob",
            "evt-svc-alice",
            "evt-svc-unassigned",
            "evt-marker"
        ]
    );
}

#[test]
fn revoked_permission_suspends_the_hook_and_its_suspended_period_is_never_delivered() {
    let d = common::start_with(CONFIG);
    let rx = Receiver::ok();
    let full = ["subscribe:webhook", "read:service", "read:customer"];
    let (alice_id, alice_key) = d.user_with_key("alice", &full);
    let hook = create_hook(
        &d,
        &alice_key,
        json!({"target_url": rx.url("/alice"), "event": "customer.created", "ordering": "strict"}),
    );
    let customer = |id: &str| json!({"id": id, "type": "customer.created", "data": {"id": "cus-1", "event": id}});

    // 1. Receiving.
    post_events(&d, &[customer("evt-before")]);
    wait_for_event_at(&rx, &["/alice"], "evt-before");

    // 2. Revoke read:customer; the next event is skipped and the hook suspended.
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{alice_id}"),
        Some(&json!({"permissions": ["subscribe:webhook", "read:service"]})),
    );
    assert_eq!(r.status, 200, "revoke: {}", r.text);
    post_events(&d, &[customer("evt-revoked")]);
    let suspended = common::wait_until(DELIVERY_WAIT, || {
        let h = get_hook(&d, &hook);
        (h["state"] == "suspended").then_some(h)
    })
    .unwrap_or_else(|| panic!("hook not suspended: {}", get_hook(&d, &hook)));
    let reason = suspended["state_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("read:customer"),
        "state_reason names the missing permission: {suspended}"
    );
    let skipped = common::wait_until(DELIVERY_WAIT, || {
        let r = d.owner("GET", &format!("/v1/hooks/{hook}/deliveries"), None);
        assert_eq!(r.status, 200, "deliveries: {}", r.text);
        r.json["data"]
            .as_array()?
            .iter()
            .find(|x| x["event_id"] == "evt-revoked" && x["status"] != "pending")
            .cloned()
    })
    .expect("a final delivery record for evt-revoked");
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert!(
        skipped.to_string().contains("read:customer"),
        "the skip reason is recorded: {skipped}"
    );

    // 3. Re-activating while the permission is still missing is refused.
    let r = d.call(
        "PATCH",
        &format!("/v1/hooks/{hook}"),
        Some(&alice_key),
        Some(&json!({"state": "active"})),
    );
    assert_eq!(r.status, 403, "activate without the permission: {}", r.text);
    assert_eq!(get_hook(&d, &hook)["state"], "suspended");

    // 4. Events of the suspended period.
    post_events(
        &d,
        &[customer("evt-suspended-1"), customer("evt-suspended-2")],
    );

    // 5. Restore the permission: still suspended until re-activated; nothing delivered.
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{alice_id}"),
        Some(&json!({"permissions": full})),
    );
    assert_eq!(r.status, 200, "restore: {}", r.text);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get_hook(&d, &hook)["state"], "suspended");
    post_events(&d, &[customer("evt-suspended-3")]);
    let r = d.call(
        "PATCH",
        &format!("/v1/hooks/{hook}"),
        Some(&alice_key),
        Some(&json!({"state": "active"})),
    );
    assert_eq!(r.status, 200, "re-activate: {}", r.text);
    assert_eq!(r.json["state"], "active", "{}", r.text);

    // 6. Only events after re-activation arrive. Strict ordering: when evt-after arrives, every
    //    earlier sequence of the hook is final, so anything of the suspended period would be in.
    post_events(&d, &[customer("evt-after")]);
    wait_for_event_at(&rx, &["/alice"], "evt-after");
    std::thread::sleep(Duration::from_millis(300));
    let got = ids_at(&rx.received(), "/alice");
    assert_eq!(
        got,
        ["evt-before", "evt-after"],
        "neither the skipped event nor the suspended period's events are delivered"
    );
    let h = get_hook(&d, &hook);
    assert_eq!(h["state"], "active", "{h}");
}

/// A distinctive string that must never leave the daemon for a user without `medical:customer`.
const SECRET: &str = "SECRET-asthma-7f3a9c";

#[test]
fn medical_conditions_are_redacted_unless_the_hook_user_holds_medical_customer() {
    let d = common::start_with(CONFIG);
    let rx = Receiver::ok();
    let (_, plain_key) = d.user_with_key("plain", &["subscribe:webhook", "read:customer"]);
    let (_, medic_key) = d.user_with_key(
        "medic",
        &["subscribe:webhook", "read:customer", "medical:customer"],
    );
    for (path, key) in [
        ("/plain", &plain_key),
        ("/medic", &medic_key),
        ("/owner", &d.owner_key),
    ] {
        create_hook(
            &d,
            key,
            json!({"target_url": rx.url(path), "event": "customer.created"}),
        );
    }
    // Odd whitespace on purpose: the unredacted copy must be these exact bytes.
    let data = format!(
        r#"{{ "id": "cus-med-1", "first_name":"Ann",
  "medical_conditions": ["{SECRET} top", "diabetes"],
  "visits": [
    {{"date": "2026-01-02", "medical_conditions": ["{SECRET} a", "b", "c"]}},
    {{"date": "2026-02-03", "notes": "fine", "medical\u005fconditions": ["{SECRET} escaped"]}},
    {{"deep": {{"list": [{{"medical_conditions": ["{SECRET} deep"]}}, {{"medical_conditions": []}}]}}}}
  ],
  "keep": {{"n": 1}} }}"#
    );
    let _: Value = serde_json::from_str(&data).expect("test data is JSON");
    let event = format!(r#"{{"id": "evt-med-1", "type": "customer.created", "data": {data}}}"#);
    let r = d.raw(
        "POST",
        "/v1/events",
        &[("x-api-key", &d.owner_key)],
        Some(&event),
    );
    assert_eq!(r.status, 201, "post: {}", r.text);

    let all = common::wait_until(DELIVERY_WAIT, || {
        let all = rx.received();
        ["/plain", "/medic", "/owner"]
            .iter()
            .all(|p| all.iter().any(|r| r.path == *p))
            .then_some(all)
    })
    .expect("a delivery at each of /plain, /medic, /owner");
    let at = |path: &str| all.iter().find(|r| r.path == path).unwrap().clone();

    // Without medical:customer: no field, no secret, counts instead.
    let plain = at("/plain");
    let text = String::from_utf8_lossy(&plain.body).to_string();
    assert!(!text.contains(SECRET), "secret leaked: {text}");
    assert!(!text.contains("medical_conditions\""), "field kept: {text}");
    assert!(
        !text.contains("medical\\u005fconditions"),
        "escaped field kept: {text}"
    );
    let body = plain.json();
    assert_eq!(body["id"], "evt-med-1");
    let v = &body["data"];
    assert_eq!(v["medical_conditions_count"], 2, "{text}");
    assert_eq!(v["visits"][0]["medical_conditions_count"], 3, "{text}");
    assert_eq!(v["visits"][1]["medical_conditions_count"], 1, "{text}");
    assert_eq!(
        v["visits"][2]["deep"]["list"][0]["medical_conditions_count"], 1,
        "{text}"
    );
    assert_eq!(
        v["visits"][2]["deep"]["list"][1]["medical_conditions_count"], 0,
        "{text}"
    );
    // Everything else is kept.
    assert_eq!(v["id"], "cus-med-1");
    assert_eq!(v["first_name"], "Ann");
    assert_eq!(v["visits"][0]["date"], "2026-01-02");
    assert_eq!(v["visits"][1]["notes"], "fine");
    assert_eq!(v["keep"], json!({"n": 1}));

    // With medical:customer (and the owner, who holds every permission): the posted bytes.
    for path in ["/medic", "/owner"] {
        let r = at(path);
        let raw: BodyData = serde_json::from_slice(&r.body).expect("delivery body");
        assert_eq!(
            raw.data.get(),
            data,
            "{path}: data byte-identical to what was posted"
        );
        assert!(String::from_utf8_lossy(&r.body).contains(SECRET));
    }
}

/// A delivery body with `data` kept as its exact bytes.
#[derive(serde::Deserialize)]
struct BodyData<'a> {
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
}
