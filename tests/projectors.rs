//! The registry projection (users and keys) is derived from the journal alone, resumes from its
//! checkpoint, and reads its own writes.
//!
//! - `rebuild_from_the_journal_restores_the_same_registry`: after users (various permissions, an
//!   owner, an inactive one), keys, a revocation, patches and public events, `rebuild-projections`
//!   empties the registry tables; the next start rebuilds them so that the API shows the same
//!   users and keys, the revoked key (and the inactive user's key) are still refused with 401,
//!   live keys still work with the same effective permissions, and the table dump is identical
//!   to the one taken before the wipe.
//! - `restart_resumes_from_the_checkpoint_and_a_wipe_rebuilds_all`: a restart with no new events
//!   applies nothing (`applied_since_start == 0`, checkpoint == journal head); N new registry
//!   events make `applied_since_start` grow by exactly N; after a wipe, a start applies the
//!   whole journal (`applied_since_start == journal_head`).
//! - `a_new_user_can_get_a_key_at_once`: creating a user and immediately a key for it (no sleep),
//!   20 times, always answers 201, and the new key authenticates at once.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use rev23_webhooks::journal::{reader, schema};
use rev23_webhooks::projectors::registry;

fn readyz(d: &common::Daemon) -> Value {
    let r = d.call("GET", "/readyz", None, None);
    assert_eq!(r.status, 200, "readyz: {}", r.text);
    r.json
}

fn head_of(ready: &Value) -> u64 {
    ready["journal_head"].as_u64().expect("journal_head")
}

fn registry_figures(ready: &Value) -> (u64, u64) {
    let p = &ready["projectors"]["registry"];
    (
        p["checkpoint"].as_u64().expect("registry checkpoint"),
        p["applied_since_start"]
            .as_u64()
            .expect("registry applied_since_start"),
    )
}

/// Waits (bounded) until /readyz is 200 and the registry's checkpoint equals the journal head.
fn wait_caught_up(d: &common::Daemon) -> Value {
    let mut last = Value::Null;
    common::wait_until(Duration::from_secs(15), || {
        let r = d.call("GET", "/readyz", None, None);
        last = r.json.clone();
        (r.status == 200 && registry_figures(&r.json).0 == head_of(&r.json)).then_some(r.json)
    })
    .unwrap_or_else(|| panic!("the registry did not catch up with the journal: {last}"))
}

/// Every row of a paginated list endpoint (`limit=1000`, following `next_cursor`).
fn list_all(d: &common::Daemon, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _page in 0..1000 {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=1000&cursor={c}"),
            None => format!("{path}?limit=1000"),
        };
        let r = d.owner("GET", &url, None);
        assert_eq!(r.status, 200, "GET {url}: {}", r.text);
        out.extend(
            r.json["data"]
                .as_array()
                .expect("data array")
                .iter()
                .cloned(),
        );
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
    }
    panic!("{path} did not end within 1000 pages");
}

/// The registry tables as text, read with the library (the daemon must be stopped).
fn dump(data_dir: &Path) -> String {
    let db = schema::open(data_dir, 16 << 20).expect("open the journal");
    registry::dump_tables(&db).expect("dump the registry tables")
}

fn registry_checkpoint(data_dir: &Path) -> u64 {
    let db = schema::open(data_dir, 16 << 20).expect("open the journal");
    reader::checkpoint(&db, registry::NAME).expect("registry checkpoint")
}

fn create_user(d: &common::Daemon, body: Value) -> String {
    let r = d.owner("POST", "/v1/users", Some(&body));
    assert_eq!(r.status, 201, "create user {body}: {}", r.text);
    r.json["id"].as_str().expect("user id").to_string()
}

/// Creates a key; returns (key id, secret).
fn create_key(d: &common::Daemon, user_id: &str, body: Value) -> (String, String) {
    let r = d.owner("POST", &format!("/v1/users/{user_id}/keys"), Some(&body));
    assert_eq!(r.status, 201, "create key for {user_id} {body}: {}", r.text);
    (
        r.json["id"].as_str().expect("key id").to_string(),
        r.json["key"].as_str().expect("key secret").to_string(),
    )
}

/// `GET /v1/me` with `key`: (status, effective permissions).
fn me(d: &common::Daemon, key: &str) -> (u16, Value) {
    let r = d.call("GET", "/v1/me", Some(key), None);
    (r.status, r.json["permissions"].clone())
}

#[test]
fn rebuild_from_the_journal_restores_the_same_registry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut d = common::start_in(dir.path(), "");

    let alice = create_user(
        &d,
        json!({"name": "Alice", "email": "alice@example.com",
               "permissions": ["subscribe:webhook", "read:customer", "read:service"]}),
    );
    let bob = create_user(
        &d,
        json!({"name": "Bob", "permissions": ["admin:webhook", "read:user"]}),
    );
    let carol = create_user(
        &d,
        json!({"id": "carol-ingest", "name": "Carol", "permissions": ["ingest:event"]}),
    );
    let dave = create_user(&d, json!({"name": "Dave", "owner": true}));
    let erin = create_user(
        &d,
        json!({"name": "Erin", "permissions": ["read:lead"], "active": true}),
    );

    let (_, alice_full) = create_key(&d, &alice, json!({"name": "alice full"}));
    let (alice_old_id, alice_old) = create_key(
        &d,
        &alice,
        json!({"name": "alice old", "permissions": ["read:customer"]}),
    );
    let (_, alice_narrow) = create_key(
        &d,
        &alice,
        json!({"name": "alice narrow", "permissions": ["read:service"]}),
    );
    let (_, bob_key) = create_key(&d, &bob, json!({"name": "bob"}));
    let (_, carol_key) = create_key(&d, &carol, json!({"name": "carol ingest"}));
    let (_, dave_key) = create_key(&d, &dave, json!({"name": "dave"}));
    let (_, erin_key) = create_key(&d, &erin, json!({"name": "erin"}));

    let r = d.owner("DELETE", &format!("/v1/keys/{alice_old_id}"), None);
    assert_eq!(r.status, 204, "revoke: {}", r.text);
    assert_eq!(
        me(&d, &alice_old).0,
        401,
        "revoked key still accepted before the rebuild"
    );
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{bob}"),
        Some(
            &json!({"name": "Robert", "permissions": ["admin:webhook", "read:user", "read:lead"]}),
        ),
    );
    assert_eq!(r.status, 200, "patch bob: {}", r.text);
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{erin}"),
        Some(&json!({"active": false})),
    );
    assert_eq!(r.status, 200, "patch erin: {}", r.text);
    // Alice loses read:service: her narrow key keeps nothing effective (key ∩ user).
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{alice}"),
        Some(&json!({"permissions": ["subscribe:webhook", "read:customer"]})),
    );
    assert_eq!(r.status, 200, "patch alice: {}", r.text);

    for i in 0..5 {
        let r = d.call(
            "POST",
            "/v1/events",
            Some(&carol_key),
            Some(
                &json!([{"type": "customer.created", "data": {"id": format!("cus-{i}"), "n": i}},
                         {"type": "lead.created", "data": {"id": format!("lead-{i}")}}]),
            ),
        );
        assert_eq!(r.status, 201, "ingest: {}", r.text);
    }

    let live_keys = [
        ("owner", d.owner_key.clone()),
        ("alice full", alice_full),
        ("alice narrow", alice_narrow),
        ("bob", bob_key),
        ("carol", carol_key),
        ("dave", dave_key),
    ];
    let refused_keys = [
        ("alice old (revoked)", alice_old),
        ("erin (inactive user)", erin_key),
    ];
    let users_before = list_all(&d, "/v1/users");
    let keys_before = list_all(&d, "/v1/keys");
    assert_eq!(users_before.len(), 6, "owner + 5 users: {users_before:#?}");
    assert_eq!(keys_before.len(), 8, "owner key + 7 keys: {keys_before:#?}");
    let me_before: Vec<(u16, Value)> = live_keys.iter().map(|(_, k)| me(&d, k)).collect();
    for ((name, _), (status, _)) in live_keys.iter().zip(&me_before) {
        assert_eq!(*status, 200, "live key {name} refused before the rebuild");
    }
    for (name, key) in &refused_keys {
        assert_eq!(me(&d, key).0, 401, "{name} accepted before the rebuild");
    }
    let head = head_of(&wait_caught_up(&d));
    assert_eq!(d.stop(), Some(0));

    let before = dump(&d.data_dir);
    assert_eq!(
        before.lines().filter(|l| l.starts_with("user ")).count(),
        6,
        "dump: {before}"
    );
    assert_eq!(
        before.lines().filter(|l| l.starts_with("key ")).count(),
        8,
        "dump: {before}"
    );
    assert_eq!(
        registry_checkpoint(&d.data_dir),
        head,
        "checkpoint at the head after a clean stop"
    );

    common::rebuild_projections(&d.data_dir);
    assert_eq!(
        dump(&d.data_dir),
        "",
        "the registry tables are not empty after rebuild-projections"
    );
    assert_eq!(
        registry_checkpoint(&d.data_dir),
        0,
        "the registry checkpoint survived the wipe"
    );

    let mut d = common::start_in(dir.path(), "");
    let ready = wait_caught_up(&d);
    assert_eq!(head_of(&ready), head, "the rebuild changed the journal");
    assert_eq!(
        registry_figures(&ready),
        (head, head),
        "a wiped registry must be rebuilt from offset 1"
    );
    assert_eq!(
        list_all(&d, "/v1/users"),
        users_before,
        "users differ after the rebuild"
    );
    assert_eq!(
        list_all(&d, "/v1/keys"),
        keys_before,
        "keys differ after the rebuild"
    );
    for ((name, key), (_, perms_before)) in live_keys.iter().zip(&me_before) {
        let (status, perms) = me(&d, key);
        assert_eq!(status, 200, "live key {name} refused after the rebuild");
        assert_eq!(
            &perms, perms_before,
            "effective permissions of {name} changed"
        );
    }
    for (name, key) in &refused_keys {
        assert_eq!(me(&d, key).0, 401, "{name} accepted after the rebuild");
    }
    assert_eq!(head_of(&readyz(&d)), head, "reads appended something");
    assert_eq!(d.stop(), Some(0));

    let after = dump(&d.data_dir);
    assert_eq!(
        after, before,
        "the rebuilt registry tables differ from the original ones"
    );
}

#[test]
fn restart_resumes_from_the_checkpoint_and_a_wipe_rebuilds_all() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut d = common::start_in(dir.path(), "");
    let (user, key) = d.user_with_key("ingest", &["ingest:event"]);
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{user}"),
        Some(&json!({"name": "Ingest service"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    for i in 0..10 {
        let r = d.call(
            "POST",
            "/v1/events",
            Some(&key),
            Some(&json!({"type": "customer.created", "data": {"id": format!("c{i}")}})),
        );
        assert_eq!(r.status, 201, "ingest: {}", r.text);
    }
    let head = head_of(&wait_caught_up(&d));
    // owner user + owner key + user + key + patch + 10 events.
    assert_eq!(head, 15, "journal head after the set-up");
    assert_eq!(d.stop(), Some(0));

    // Restart with no new events: resumed from the checkpoint, nothing re-applied.
    let mut d = common::start_in(dir.path(), "");
    let ready = readyz(&d);
    assert_eq!(head_of(&ready), head, "a restart appended something");
    assert_eq!(
        registry_figures(&ready),
        (head, 0),
        "after a restart with no new events the registry must resume at its checkpoint"
    );

    // N new registry events: exactly N entries applied since start.
    const N: u64 = 7;
    for i in 0..N {
        create_user(
            &d,
            json!({"name": format!("user {i}"), "permissions": ["read:customer"]}),
        );
    }
    let ready = wait_caught_up(&d);
    assert_eq!(head_of(&ready), head + N);
    assert_eq!(
        registry_figures(&ready),
        (head + N, N),
        "applied_since_start after {N} registry events"
    );
    // Public events are entries too: the projector passes over them and counts them.
    let r = d.call(
        "POST",
        "/v1/events",
        Some(&key),
        Some(&json!([{"type": "lead.created", "data": {"id": "l1"}},
                     {"type": "lead.created", "data": {"id": "l2"}}])),
    );
    assert_eq!(r.status, 201, "ingest: {}", r.text);
    let ready = wait_caught_up(&d);
    assert_eq!(registry_figures(&ready), (head + N + 2, N + 2));
    let users = list_all(&d, "/v1/users");
    assert_eq!(users.len() as u64, 2 + N, "users after the additions");
    assert_eq!(d.stop(), Some(0));

    // A second plain restart again resumes at the (new) checkpoint.
    let mut d = common::start_in(dir.path(), "");
    assert_eq!(registry_figures(&readyz(&d)), (head + N + 2, 0));
    assert_eq!(d.stop(), Some(0));

    // Wiped: the next start re-applies the whole journal.
    common::rebuild_projections(&d.data_dir);
    let mut d = common::start_in(dir.path(), "");
    let ready = wait_caught_up(&d);
    let full = head_of(&ready);
    assert_eq!(full, head + N + 2, "the wipe changed the journal");
    assert_eq!(
        registry_figures(&ready),
        (full, full),
        "a wiped registry must rebuild from offset 1"
    );
    assert_eq!(
        list_all(&d, "/v1/users"),
        users,
        "users differ after the rebuild"
    );
    assert_eq!(
        me(&d, &key).0,
        200,
        "a live key is refused after the rebuild"
    );
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn a_new_user_can_get_a_key_at_once() {
    let mut d = common::start_with("");
    for i in 0..20 {
        let r = d.owner(
            "POST",
            "/v1/users",
            Some(&json!({"name": format!("fresh {i}"), "permissions": ["read:customer", "subscribe:webhook"]})),
        );
        assert_eq!(r.status, 201, "round {i}: create user: {}", r.text);
        let id = r.json["id"].as_str().expect("user id").to_string();
        let r = d.owner(
            "POST",
            &format!("/v1/users/{id}/keys"),
            Some(&json!({"name": "at once"})),
        );
        assert_eq!(
            r.status, 201,
            "round {i}: key for a user created just before: {}",
            r.text
        );
        let secret = r.json["key"].as_str().expect("key secret").to_string();
        let r = d.call("GET", "/v1/me", Some(&secret), None);
        assert_eq!(
            r.status, 200,
            "round {i}: a key just created is refused: {}",
            r.text
        );
        assert_eq!(r.json["user"]["id"], id.as_str());
    }
    assert_eq!(d.stop(), Some(0));
}
