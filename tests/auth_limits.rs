//! Authentication, permissions, users/keys and connection limits over real HTTP against the real
//! daemon binary (SPEC §1, §3).
//!
//! What this file proves:
//! - Auth: no key / a wrong key is 401; `X-Api-Key` and `Authorization: Bearer` both work;
//!   `X-Tenant-Name` must match the configured tenant (401 otherwise); revoked keys and keys of
//!   deactivated users are 401; a missing permission is 403.
//! - Effective permissions are key ∩ the user's *current* permissions, recomputed per request;
//!   a key cannot mint a broader key; non-admins cannot manage users or others' keys; the last
//!   active owner cannot be demoted or deactivated (409); a duplicate user id is 409.
//! - Users and keys API: create, list with pagination, get, patch, `GET /v1/me`; a key's secret is
//!   `ca_` + 40 base62 characters, shown only in the create response, and its listed `prefix` is
//!   the secret's first 12 characters.
//! - Limits: the per-key rate limit answers 429 `rate_limited` with an integer `Retry-After`,
//!   keys holding `ingest:event` use `ingest_rate_limit_per_minute` instead; bodies over
//!   `max_body_bytes` are 413; clients that send headers too slowly (or nothing at all) are
//!   disconnected after `header_read_timeout_ms`, and the daemon keeps serving.
//!
//! Every error body is checked to be exactly `{"error":{"code","message"}}`.

mod common;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Daemon, Reply};
use serde_json::{json, Value};

/// Every permission of SPEC §3.
const ALL_PERMISSIONS: [&str; 11] = [
    "subscribe:webhook",
    "subscribe.all:webhook",
    "read:customer",
    "write:customer",
    "medical:customer",
    "export:customer",
    "read:service",
    "read:user",
    "read:lead",
    "ingest:event",
    "admin:webhook",
];
/// Pages a list walk follows at most.
const MAX_PAGES: usize = 100;

/// Checks a non-2xx reply: status, code, and the exact error envelope of SPEC §1.
#[track_caller]
fn assert_error(r: &Reply, status: u16, code: &str) {
    assert_eq!(
        r.status, status,
        "expected {status} {code}, got {}: {}",
        r.status, r.text
    );
    assert_error_shape(r);
    assert_eq!(r.code(), code, "error code of: {}", r.text);
}

/// `{"error":{"code":"<snake_case>","message":"<text>"}}` and a JSON content type.
#[track_caller]
fn assert_error_shape(r: &Reply) {
    let top = r
        .json
        .as_object()
        .unwrap_or_else(|| panic!("error body is not a JSON object: {:?}", r.text));
    assert_eq!(
        top.keys().collect::<Vec<_>>(),
        vec!["error"],
        "error body has exactly one top-level key `error`: {}",
        r.text
    );
    let code = r.json["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error.code is not a string: {}", r.text));
    assert!(
        !code.is_empty()
            && code
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
        "error.code {code:?} is not snake_case"
    );
    let message = r.json["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error.message is not a string: {}", r.text));
    assert!(!message.trim().is_empty(), "error.message is empty");
    let ct = r.header("content-type").unwrap_or("");
    assert!(
        ct.starts_with("application/json"),
        "error content-type is {ct:?}"
    );
}

/// Creates a user (as the owner) and returns its id.
fn create_user(d: &Daemon, name: &str, permissions: &[&str]) -> String {
    let r = d.owner(
        "POST",
        "/v1/users",
        Some(&json!({"name": name, "permissions": permissions})),
    );
    assert_eq!(r.status, 201, "create user {name}: {}", r.text);
    r.json["id"].as_str().expect("user id").to_string()
}

/// Creates a key for `user_id` with `by_key`; returns (key id, secret).
fn create_key(
    d: &Daemon,
    by_key: &str,
    user_id: &str,
    permissions: Option<&[&str]>,
) -> (String, String) {
    let mut body = json!({"name": "k"});
    if let Some(p) = permissions {
        body["permissions"] = json!(p);
    }
    let r = d.call(
        "POST",
        &format!("/v1/users/{user_id}/keys"),
        Some(by_key),
        Some(&body),
    );
    assert_eq!(r.status, 201, "create key: {}", r.text);
    (
        r.json["id"].as_str().expect("key id").to_string(),
        r.json["key"].as_str().expect("key secret").to_string(),
    )
}

fn post_event(d: &Daemon, key: &str, entity: &str) -> Reply {
    d.call(
        "POST",
        "/v1/events",
        Some(key),
        Some(&json!({"type": "customer.created", "data": {"id": entity}})),
    )
}

fn journal_head(d: &Daemon) -> u64 {
    let r = d.call("GET", "/readyz", None, None);
    assert_eq!(r.status, 200, "readyz: {}", r.text);
    r.json["journal_head"].as_u64().expect("journal_head")
}

fn permission_set(v: &Value) -> HashSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("permissions is not an array: {v}"))
        .iter()
        .map(|p| p.as_str().expect("permission name").to_string())
        .collect()
}

fn set_of(names: &[&str]) -> HashSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Follows a list endpoint page by page (bounded); returns all items and the page sizes.
fn walk(d: &Daemon, key: &str, path_and_query: &str) -> (Vec<Value>, Vec<usize>) {
    let mut items = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut path = path_and_query.to_string();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = d.call("GET", &path, Some(key), None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        let data = r.json["data"].as_array().expect("list data").clone();
        sizes.push(data.len());
        items.extend(data);
        match &r.json["next_cursor"] {
            Value::Null => return (items, sizes),
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("next_cursor must be a string or null, got {other}"),
        }
    }
    panic!("{path_and_query} did not end within {MAX_PAGES} pages");
}

fn connect(d: &Daemon) -> TcpStream {
    let addr = d.base_url.trim_start_matches("http://");
    TcpStream::connect(addr).expect("connect to the daemon")
}

/// Waits (at most `within`) for the server to close `stream`: EOF or a reset, optionally after
/// a 408 response. Panics if the connection is still open by then.
fn assert_closed_by_server(stream: &mut TcpStream, within: Duration) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                assert!(received.len() < 64 * 1024, "unexpectedly long answer");
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    Instant::now() < deadline,
                    "the server kept the connection open for more than {within:?}"
                );
            }
            // Reset by the server: closed.
            Err(_) => break,
        }
    }
    if !received.is_empty() {
        let text = String::from_utf8_lossy(&received);
        assert!(
            text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.0 408"),
            "before closing, the server may only answer 408: {text:?}"
        );
    }
}

/// The daemon still serves normal requests.
#[track_caller]
fn assert_still_serving(d: &Daemon) {
    assert_eq!(d.call("GET", "/healthz", None, None).status, 200);
    let me = d.owner("GET", "/v1/me", None);
    assert_eq!(me.status, 200, "{}", me.text);
}

#[test]
fn missing_or_wrong_keys_are_401() {
    let d = common::start();
    let head0 = journal_head(&d);
    let wrong = format!("ca_{}", "A1b2C3d4E5".repeat(4));
    let long = "x".repeat(10_000);
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("no key", vec![]),
        ("empty X-Api-Key", vec![("x-api-key", String::new())]),
        ("wrong X-Api-Key", vec![("x-api-key", wrong.clone())]),
        ("very long X-Api-Key", vec![("x-api-key", long)]),
        (
            "owner key with a changed last character",
            vec![(
                "x-api-key",
                format!(
                    "{}{}",
                    &d.owner_key[..d.owner_key.len() - 1],
                    if d.owner_key.ends_with('a') { 'b' } else { 'a' }
                ),
            )],
        ),
        (
            "wrong bearer",
            vec![("authorization", format!("Bearer {wrong}"))],
        ),
        (
            "owner key under the Basic scheme",
            vec![("authorization", format!("Basic {}", d.owner_key))],
        ),
        (
            "Bearer without a key",
            vec![("authorization", "Bearer ".to_string())],
        ),
    ];
    for (label, headers) in &cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let r = d.raw("GET", "/v1/me", &h, None);
        assert_eq!(r.status, 401, "{label}: {}", r.text);
        assert_error(&r, 401, "unauthorized");
        let body = json!({"type": "customer.created", "data": {"id": "c"}}).to_string();
        let r = d.raw("POST", "/v1/events", &h, Some(&body));
        assert_error(&r, 401, "unauthorized");
    }
    assert_eq!(journal_head(&d), head0, "no unauthenticated write");
}

#[test]
fn bearer_authorization_works_like_x_api_key() {
    let d = common::start();
    let via_header = d.owner("GET", "/v1/me", None);
    assert_eq!(via_header.status, 200, "{}", via_header.text);
    for scheme in ["Bearer", "bearer"] {
        let value = format!("{scheme} {}", d.owner_key);
        let r = d.raw("GET", "/v1/me", &[("authorization", &value)], None);
        assert_eq!(r.status, 200, "{scheme}: {}", r.text);
        assert_eq!(r.json["user"]["id"], via_header.json["user"]["id"]);
    }
    let value = format!("Bearer {}", d.owner_key);
    let r = d.raw(
        "POST",
        "/v1/events",
        &[("authorization", &value)],
        Some(r#"{"type":"lead.created","data":{"id":"l1"}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

#[test]
fn missing_permission_is_403() {
    let d = common::start();
    let (_, reader) = d.user_with_key("reader", &["read:customer"]);
    let head0 = journal_head(&d);
    let r = post_event(&d, &reader, "c1");
    assert_error(&r, 403, "forbidden");
    assert_eq!(journal_head(&d), head0, "nothing appended");
    // The same key may do what it holds permission for (its own identity).
    assert_eq!(d.call("GET", "/v1/me", Some(&reader), None).status, 200);
}

#[test]
fn tenant_header_must_match_the_configured_tenant() {
    let d = common::start();
    let head0 = journal_head(&d);
    for tenant in ["otherstudio", "TestStudio", "teststudio2", ""] {
        let r = d.raw(
            "GET",
            "/v1/me",
            &[("x-api-key", &d.owner_key), ("x-tenant-name", tenant)],
            None,
        );
        assert_eq!(r.status, 401, "tenant {tenant:?}: {}", r.text);
        assert_error(&r, 401, "unauthorized");
        let r = d.raw(
            "POST",
            "/v1/events",
            &[("x-api-key", &d.owner_key), ("x-tenant-name", tenant)],
            Some(r#"{"type":"lead.created","data":{"id":"l1"}}"#),
        );
        assert_error(&r, 401, "unauthorized");
    }
    assert_eq!(
        journal_head(&d),
        head0,
        "nothing appended under a wrong tenant"
    );
    let r = d.raw(
        "GET",
        "/v1/me",
        &[("x-api-key", &d.owner_key), ("x-tenant-name", "teststudio")],
        None,
    );
    assert_eq!(r.status, 200, "matching tenant: {}", r.text);
    let r = d.raw(
        "POST",
        "/v1/events",
        &[("x-api-key", &d.owner_key), ("x-tenant-name", "teststudio")],
        Some(r#"{"type":"lead.created","data":{"id":"l1"}}"#),
    );
    assert_eq!(r.status, 201, "matching tenant: {}", r.text);
}

#[test]
fn revoked_keys_are_401() {
    let d = common::start();
    let user = create_user(&d, "ingester", &["ingest:event"]);
    let (key_id, secret) = create_key(&d, &d.owner_key, &user, None);
    let (_, other_secret) = create_key(&d, &d.owner_key, &user, None);
    assert_eq!(post_event(&d, &secret, "c1").status, 201);

    let r = d.owner("DELETE", &format!("/v1/keys/{key_id}"), None);
    assert_eq!(r.status, 204, "{}", r.text);
    assert_error(&post_event(&d, &secret, "c2"), 401, "unauthorized");
    assert_error(
        &d.call("GET", "/v1/me", Some(&secret), None),
        401,
        "unauthorized",
    );
    let value = format!("Bearer {secret}");
    let r = d.raw("GET", "/v1/me", &[("authorization", &value)], None);
    assert_error(&r, 401, "unauthorized");

    // The list shows it inactive; the user's other key is unaffected.
    let (keys, _) = walk(&d, &d.owner_key, &format!("/v1/keys?user_id={user}"));
    let listed = keys
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .expect("revoked key is still listed");
    assert_eq!(listed["active"], false, "{listed}");
    assert_eq!(post_event(&d, &other_secret, "c3").status, 201);

    // Revoking an unknown key is a 404.
    assert_error(
        &d.owner("DELETE", "/v1/keys/key_01ARZ3NDEKTSV4RRFFQ69G5FAV", None),
        404,
        "not_found",
    );
}

#[test]
fn keys_of_a_deactivated_user_are_401() {
    let d = common::start();
    let (user, secret) = d.user_with_key("leaver", &["ingest:event", "read:customer"]);
    assert_eq!(post_event(&d, &secret, "c1").status, 201);
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{user}"),
        Some(&json!({"active": false})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["active"], false);
    assert_error(&post_event(&d, &secret, "c2"), 401, "unauthorized");
    assert_error(
        &d.call("GET", "/v1/me", Some(&secret), None),
        401,
        "unauthorized",
    );
    let g = d.owner("GET", &format!("/v1/users/{user}"), None);
    assert_eq!(g.json["active"], false, "{}", g.text);
}

#[test]
fn effective_permissions_are_key_and_current_user_permissions() {
    let d = common::start();
    let user = create_user(&d, "pusher", &["ingest:event", "read:customer"]);
    let (_, key) = create_key(&d, &d.owner_key, &user, Some(&["ingest:event"]));
    assert_eq!(post_event(&d, &key, "c1").status, 201);
    let me = d.call("GET", "/v1/me", Some(&key), None);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(
        permission_set(&me.json["permissions"]),
        set_of(&["ingest:event"])
    );

    // The user loses ingest:event: the key, which still lists it, no longer has it.
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{user}"),
        Some(&json!({"permissions": ["read:customer"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let head = journal_head(&d);
    assert_error(&post_event(&d, &key, "c2"), 403, "forbidden");
    assert_eq!(journal_head(&d), head, "nothing appended");
    let me = d.call("GET", "/v1/me", Some(&key), None);
    assert_eq!(me.status, 200, "{}", me.text);
    assert!(
        permission_set(&me.json["permissions"]).is_empty(),
        "key ∩ user is empty now: {}",
        me.text
    );

    // Given back, it is effective again (computed from the current user, not cached).
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{user}"),
        Some(&json!({"permissions": ["read:customer", "ingest:event"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(post_event(&d, &key, "c3").status, 201);

    // A key without a permission list follows its user too.
    let (_, open_key) = create_key(&d, &d.owner_key, &user, None);
    let me = d.call("GET", "/v1/me", Some(&open_key), None);
    assert_eq!(
        permission_set(&me.json["permissions"]),
        set_of(&["read:customer", "ingest:event"])
    );
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{user}"),
        Some(&json!({"permissions": ["read:customer"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_error(&post_event(&d, &open_key, "c4"), 403, "forbidden");
}

#[test]
fn a_key_cannot_create_a_broader_key() {
    let d = common::start();
    let user = create_user(
        &d,
        "narrow",
        &["ingest:event", "read:customer", "read:lead"],
    );
    let (_, narrow) = create_key(&d, &d.owner_key, &user, Some(&["read:customer"]));
    let keys_before = walk(&d, &d.owner_key, &format!("/v1/keys?user_id={user}"))
        .0
        .len();

    // Broader than itself, though within the user: refused.
    let r = d.call(
        "POST",
        &format!("/v1/users/{user}/keys"),
        Some(&narrow),
        Some(&json!({"name": "wider", "permissions": ["read:customer", "ingest:event"]})),
    );
    assert_error(&r, 403, "forbidden");
    // No list means "all the user holds", which is broader too.
    let r = d.call(
        "POST",
        &format!("/v1/users/{user}/keys"),
        Some(&narrow),
        Some(&json!({"name": "all"})),
    );
    assert_error(&r, 403, "forbidden");
    let keys_after = walk(&d, &d.owner_key, &format!("/v1/keys?user_id={user}"))
        .0
        .len();
    assert_eq!(keys_after, keys_before, "no key was created");

    // Equal or narrower is fine, and the new key holds exactly that.
    let (_, same) = create_key(&d, &narrow, &user, Some(&["read:customer"]));
    let me = d.call("GET", "/v1/me", Some(&same), None);
    assert_eq!(
        permission_set(&me.json["permissions"]),
        set_of(&["read:customer"])
    );

    // Beyond the user's permissions is refused even for the owner; unknown names are invalid.
    let r = d.owner(
        "POST",
        &format!("/v1/users/{user}/keys"),
        Some(&json!({"name": "admin", "permissions": ["admin:webhook"]})),
    );
    assert!(
        r.status == 403 || r.status == 422,
        "a key beyond its user's permissions: {} {}",
        r.status,
        r.text
    );
    assert_error_shape(&r);
    let r = d.owner(
        "POST",
        &format!("/v1/users/{user}/keys"),
        Some(&json!({"name": "bogus", "permissions": ["read:everything"]})),
    );
    assert_error(&r, 422, "validation_failed");
}

#[test]
fn non_admins_cannot_manage_users_or_others_keys() {
    let d = common::start();
    let (me_id, key) = d.user_with_key("plain", &["read:customer", "ingest:event"]);
    let (other_id, _) = d.user_with_key("other", &["read:customer"]);
    let other_key_id = walk(&d, &d.owner_key, &format!("/v1/keys?user_id={other_id}")).0[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    assert_error(
        &d.call("GET", "/v1/users", Some(&key), None),
        403,
        "forbidden",
    );
    let r = d.call(
        "POST",
        "/v1/users",
        Some(&key),
        Some(&json!({"name": "sneaky", "permissions": []})),
    );
    assert_error(&r, 403, "forbidden");
    assert_error(
        &d.call("GET", &format!("/v1/users/{other_id}"), Some(&key), None),
        403,
        "forbidden",
    );
    let r = d.call(
        "PATCH",
        &format!("/v1/users/{me_id}"),
        Some(&key),
        Some(&json!({"permissions": ["read:customer", "ingest:event", "admin:webhook"]})),
    );
    assert_error(&r, 403, "forbidden");
    let r = d.call(
        "POST",
        &format!("/v1/users/{other_id}/keys"),
        Some(&key),
        Some(&json!({"name": "theirs", "permissions": ["read:customer"]})),
    );
    assert_error(&r, 403, "forbidden");
    assert_error(
        &d.call(
            "DELETE",
            &format!("/v1/keys/{other_key_id}"),
            Some(&key),
            None,
        ),
        403,
        "forbidden",
    );
    assert_error(
        &d.call(
            "GET",
            &format!("/v1/keys?user_id={other_id}"),
            Some(&key),
            None,
        ),
        403,
        "forbidden",
    );
    // The other user's key still works.
    let (keys, _) = walk(&d, &key, "/v1/keys?limit=100");
    assert!(
        keys.iter().all(|k| k["user_id"] == me_id.as_str()),
        "a non-admin lists only its own keys: {keys:?}"
    );
    assert!(!keys.is_empty());

    // A user manages its own keys.
    let (own_id, own_secret) = create_key(&d, &key, &me_id, Some(&["read:customer"]));
    assert_eq!(d.call("GET", "/v1/me", Some(&own_secret), None).status, 200);
    let r = d.call("DELETE", &format!("/v1/keys/{own_id}"), Some(&key), None);
    assert_eq!(r.status, 204, "{}", r.text);

    // admin:webhook is what lets a non-owner manage users.
    let (_, admin) = d.user_with_key("admin", &["admin:webhook", "read:customer"]);
    assert_eq!(d.call("GET", "/v1/users", Some(&admin), None).status, 200);
    let r = d.call(
        "POST",
        "/v1/users",
        Some(&admin),
        Some(&json!({"name": "made by admin", "permissions": ["read:customer"]})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

#[test]
fn the_last_active_owner_cannot_be_demoted_or_deactivated() {
    let d = common::start();
    let me = d.owner("GET", "/v1/me", None);
    let owner_id = me.json["user"]["id"].as_str().unwrap().to_string();
    let path = format!("/v1/users/{owner_id}");
    for body in [
        json!({"owner": false}),
        json!({"active": false}),
        json!({"owner": false, "active": false}),
    ] {
        let r = d.owner("PATCH", &path, Some(&body));
        assert_error(&r, 409, "conflict");
    }
    let g = d.owner("GET", &path, None);
    assert_eq!(g.json["owner"], true, "{}", g.text);
    assert_eq!(g.json["active"], true, "{}", g.text);
    assert_eq!(d.owner("GET", "/v1/me", None).status, 200, "still works");

    // With a second owner, the first may step down; then the second is the last one.
    let r = d.owner(
        "POST",
        "/v1/users",
        Some(&json!({"name": "Second owner", "owner": true})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["owner"], true);
    let second = r.json["id"].as_str().unwrap().to_string();
    let (_, second_key) = create_key(&d, &d.owner_key, &second, None);
    let r = d.owner("PATCH", &path, Some(&json!({"owner": false})));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["owner"], false);
    let r = d.call(
        "PATCH",
        &format!("/v1/users/{second}"),
        Some(&second_key),
        Some(&json!({"owner": false})),
    );
    assert_error(&r, 409, "conflict");
}

#[test]
fn creating_a_user_with_an_existing_id_is_409() {
    let d = common::start();
    let r = d.owner(
        "POST",
        "/v1/users",
        Some(&json!({"id": "usr_dup", "name": "First", "permissions": ["read:lead"]})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["id"], "usr_dup");
    let r = d.owner(
        "POST",
        "/v1/users",
        Some(&json!({"id": "usr_dup", "name": "Second", "permissions": []})),
    );
    assert_error(&r, 409, "conflict");
    let g = d.owner("GET", "/v1/users/usr_dup", None);
    assert_eq!(g.json["name"], "First", "the first user is unchanged");
    // The owner's id is taken too.
    let owner_id = d.owner("GET", "/v1/me", None).json["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = d.owner(
        "POST",
        "/v1/users",
        Some(&json!({"id": owner_id, "name": "Impostor", "permissions": []})),
    );
    assert_error(&r, 409, "conflict");
}

#[test]
fn me_shows_the_caller_and_its_effective_permissions() {
    let d = common::start();
    let me = d.owner("GET", "/v1/me", None);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["user"]["owner"], true);
    assert!(me.json["user"]["id"]
        .as_str()
        .unwrap_or("")
        .starts_with("usr_"));
    assert_eq!(
        permission_set(&me.json["permissions"]),
        set_of(&ALL_PERMISSIONS),
        "owners hold every permission"
    );

    let user = create_user(&d, "Lead reader", &["read:lead", "read:customer"]);
    let (_, key) = create_key(&d, &d.owner_key, &user, Some(&["read:lead"]));
    let me = d.call("GET", "/v1/me", Some(&key), None);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json["user"]["id"], user.as_str());
    assert_eq!(me.json["user"]["name"], "Lead reader");
    assert_eq!(me.json["user"]["owner"], false);
    assert_eq!(
        permission_set(&me.json["permissions"]),
        set_of(&["read:lead"])
    );
    assert!(!me.text.contains("\"key\":\"ca_"), "no secret in /v1/me");
}

#[test]
fn users_api_create_list_get_patch() {
    let d = common::start();
    // Create: an assigned usr_ id, the fields as sent, active by default.
    let r = d.owner(
        "POST",
        "/v1/users",
        Some(&json!({"name": "Ada", "email": "ada@example.com",
            "permissions": ["read:customer", "subscribe:webhook"]})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let ada = r.json["id"].as_str().unwrap().to_string();
    let ulid = ada.strip_prefix("usr_").expect("usr_ prefix");
    assert_eq!(ulid.len(), 26, "{ada}");
    assert_eq!(r.json["name"], "Ada");
    assert_eq!(r.json["email"], "ada@example.com");
    assert_eq!(r.json["owner"], false);
    assert_eq!(r.json["active"], true);
    assert_eq!(
        permission_set(&r.json["permissions"]),
        set_of(&["read:customer", "subscribe:webhook"])
    );
    let r = d.owner(
        "POST",
        "/v1/users",
        Some(&json!({"id": "usr_chosen", "name": "Bo", "permissions": [], "active": false})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["active"], false);

    // Get.
    let g = d.owner("GET", &format!("/v1/users/{ada}"), None);
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.json["name"], "Ada");
    assert_error(
        &d.owner("GET", "/v1/users/usr_missing", None),
        404,
        "not_found",
    );

    // Patch: changed fields persist, the others stay.
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{ada}"),
        Some(&json!({"name": "Ada L.", "permissions": ["read:lead"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let g = d.owner("GET", &format!("/v1/users/{ada}"), None);
    assert_eq!(g.json["name"], "Ada L.");
    assert_eq!(g.json["email"], "ada@example.com");
    assert_eq!(
        permission_set(&g.json["permissions"]),
        set_of(&["read:lead"])
    );
    let r = d.owner(
        "PATCH",
        "/v1/users/usr_missing",
        Some(&json!({"name": "x"})),
    );
    assert_error(&r, 404, "not_found");

    // Invalid input.
    let bad: Vec<(Value, u16, &str)> = vec![
        (json!({"permissions": []}), 422, "validation_failed"),
        (
            json!({"name": "x", "permissions": ["read:everything"]}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "x", "colour": "red"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "x", "email": "not-an-email"}),
            422,
            "validation_failed",
        ),
        (
            json!({"name": "x", "id": "has space"}),
            422,
            "validation_failed",
        ),
    ];
    for (body, status, code) in bad {
        let r = d.owner("POST", "/v1/users", Some(&body));
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert_error(&r, status, code);
    }
    let r = d.raw(
        "POST",
        "/v1/users",
        &[("x-api-key", &d.owner_key)],
        Some(r#"{"name": "x""#),
    );
    assert_error(&r, 400, "invalid_json");
    let r = d.raw(
        "POST",
        "/v1/users",
        &[("x-api-key", &d.owner_key), ("content-type", "text/plain")],
        Some(r#"{"name": "x"}"#),
    );
    assert_error(&r, 415, "unsupported_media_type");

    // List with pagination: every user once, pages within the limit, null cursor at the end.
    for i in 0..5 {
        create_user(&d, &format!("page user {i}"), &[]);
    }
    let (all, _) = walk(&d, &d.owner_key, "/v1/users?limit=1000");
    assert_eq!(all.len(), 8, "owner + Ada + Bo + 5: {all:?}");
    let (paged, sizes) = walk(&d, &d.owner_key, "/v1/users?limit=3");
    assert!(sizes.iter().all(|&n| n <= 3), "page sizes {sizes:?}");
    assert!(sizes.len() >= 3, "8 users in pages of 3: {sizes:?}");
    let ids: Vec<&str> = paged.iter().map(|u| u["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no user twice: {ids:?}");
    let all_ids: HashSet<&str> = all.iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(unique, all_ids, "paging yields every user");
    assert!(unique.contains(ada.as_str()) && unique.contains("usr_chosen"));
}

#[test]
fn key_secret_is_shown_only_on_create() {
    let d = common::start();
    let user = create_user(&d, "keyholder", &["read:customer", "read:lead"]);
    let r = d.owner(
        "POST",
        &format!("/v1/users/{user}/keys"),
        Some(&json!({"name": "zapier", "permissions": ["read:lead"]})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let key_id = r.json["id"].as_str().unwrap().to_string();
    let secret = r.json["key"].as_str().unwrap().to_string();
    assert!(
        key_id.starts_with("key_") && key_id.len() == 4 + 26,
        "{key_id}"
    );
    let random = secret.strip_prefix("ca_").expect("ca_ prefix");
    assert_eq!(random.len(), 40, "{secret}");
    assert!(
        random.bytes().all(|b| b.is_ascii_alphanumeric()),
        "base62: {secret}"
    );
    assert_eq!(
        r.json["prefix"],
        &secret[..12],
        "prefix is the first 12 characters"
    );
    assert_eq!(
        permission_set(&r.json["permissions"]),
        set_of(&["read:lead"])
    );

    // The secret works, and is never shown again.
    assert_eq!(d.call("GET", "/v1/me", Some(&secret), None).status, 200);
    for path in [
        "/v1/keys".to_string(),
        format!("/v1/keys?user_id={user}"),
        format!("/v1/users/{user}"),
        "/v1/users".to_string(),
    ] {
        let l = d.owner("GET", &path, None);
        assert_eq!(l.status, 200, "{path}: {}", l.text);
        assert!(!l.text.contains(&secret), "{path} reveals the secret");
        assert!(
            !l.text.contains(&secret[12..]),
            "{path} reveals part of the secret"
        );
    }
    let l = d.call("GET", "/v1/keys", Some(&secret), None);
    assert!(!l.text.contains(&secret), "own key list reveals the secret");
    let (keys, _) = walk(&d, &d.owner_key, "/v1/keys?limit=100");
    let listed = keys
        .iter()
        .find(|k| k["id"] == key_id.as_str())
        .expect("the key is listed");
    for k in &keys {
        let obj = k.as_object().unwrap();
        assert!(
            !obj.contains_key("key"),
            "a listed key has no `key` field: {k}"
        );
        assert!(
            !obj.contains_key("hash"),
            "a listed key has no `hash` field: {k}"
        );
    }
    assert_eq!(listed["prefix"], &secret[..12]);
    assert_eq!(listed["user_id"], user.as_str());
    assert_eq!(listed["active"], true);

    // Key list pagination.
    for _ in 0..4 {
        create_key(&d, &d.owner_key, &user, Some(&["read:customer"]));
    }
    let (all, _) = walk(
        &d,
        &d.owner_key,
        &format!("/v1/keys?user_id={user}&limit=1000"),
    );
    assert_eq!(all.len(), 5);
    let (paged, sizes) = walk(
        &d,
        &d.owner_key,
        &format!("/v1/keys?user_id={user}&limit=2"),
    );
    assert!(sizes.iter().all(|&n| n <= 2), "{sizes:?}");
    let ids: HashSet<&str> = paged.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "every key once: {sizes:?}");
    assert_eq!(paged.len(), 5, "no key twice");
}

#[test]
fn rate_limit_per_key_answers_429_with_retry_after() {
    let d = common::start_with("[limits]\nrate_limit_per_minute = 5");
    let (user, reader) = d.user_with_key("reader", &["read:customer"]);
    for i in 1..=5 {
        let r = d.call("GET", "/v1/me", Some(&reader), None);
        assert_eq!(r.status, 200, "request {i} is within the limit: {}", r.text);
    }
    let r = d.call("GET", "/v1/me", Some(&reader), None);
    assert_error(&r, 429, "rate_limited");
    let retry_after = r
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {:?}", r.headers));
    let secs: u64 = retry_after
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("Retry-After {retry_after:?} is not integer seconds"));
    assert!(
        (1..=60).contains(&secs),
        "Retry-After {secs} for a per-minute limit"
    );

    // Per key: another key of the same user has its own allowance; the owner is unaffected.
    let (_, second) = create_key(&d, &d.owner_key, &user, None);
    assert_eq!(d.call("GET", "/v1/me", Some(&second), None).status, 200);
    assert_eq!(d.owner("GET", "/v1/me", None).status, 200);
    // The limited key stays limited (well within the refill time of 12 s per request).
    assert_error(
        &d.call("GET", "/v1/me", Some(&reader), None),
        429,
        "rate_limited",
    );
}

#[test]
fn ingest_keys_use_the_ingest_rate_limit() {
    let d = common::start_with(
        "[limits]\nrate_limit_per_minute = 5\ningest_rate_limit_per_minute = 12",
    );
    let (_, ingest) = d.user_with_key("ingester", &["ingest:event"]);
    for i in 1..=12 {
        let r = post_event(&d, &ingest, &format!("c{i}"));
        assert_eq!(
            r.status, 201,
            "request {i}: an ingest key is not held to the general limit of 5: {}",
            r.text
        );
    }
    let head = journal_head(&d);
    let r = post_event(&d, &ingest, "c13");
    assert_error(&r, 429, "rate_limited");
    assert_eq!(
        journal_head(&d),
        head,
        "a rate-limited post appends nothing"
    );
    let secs: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .trim()
        .parse()
        .expect("integer Retry-After");
    assert!((1..=60).contains(&secs), "Retry-After {secs}");

    // A key without ingest:event is held to the general limit in the same daemon.
    let (_, reader) = d.user_with_key("reader", &["read:customer"]);
    for _ in 0..5 {
        assert_eq!(d.call("GET", "/v1/me", Some(&reader), None).status, 200);
    }
    assert_error(
        &d.call("GET", "/v1/me", Some(&reader), None),
        429,
        "rate_limited",
    );
}

#[test]
fn oversize_bodies_are_413() {
    let d = common::start_with("[limits]\nmax_body_bytes = 4096");
    let user = create_user(&d, "target", &["read:customer"]);
    let huge_name = "n".repeat(5000);
    let cases = [
        (
            "POST",
            "/v1/users".to_string(),
            json!({"name": huge_name, "permissions": []}),
        ),
        (
            "PATCH",
            format!("/v1/users/{user}"),
            json!({"name": huge_name}),
        ),
        (
            "POST",
            format!("/v1/users/{user}/keys"),
            json!({"name": huge_name}),
        ),
        (
            "POST",
            "/v1/events".to_string(),
            json!({"type": "lead.created", "data": {"id": "l", "pad": huge_name}}),
        ),
    ];
    let head = journal_head(&d);
    for (method, path, body) in &cases {
        let r = d.owner(method, path, Some(body));
        assert_eq!(r.status, 413, "{method} {path}: {}", r.text);
        assert_error(&r, 413, "payload_too_large");
    }
    assert_eq!(journal_head(&d), head, "nothing written");
    let g = d.owner("GET", &format!("/v1/users/{user}"), None);
    assert_eq!(g.json["name"], "target");
    // Normal-sized requests still work.
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{user}"),
        Some(&json!({"name": "renamed"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn slow_header_clients_are_dropped() {
    let d = common::start_with("[limits]\nheader_read_timeout_ms = 300");
    let mut stream = connect(&d);
    stream
        .write_all(b"GET /v1/me HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: ")
        .expect("write a partial request");
    assert_closed_by_server(&mut stream, Duration::from_secs(5));
    assert_still_serving(&d);
}

#[test]
fn idle_connections_without_a_request_are_dropped() {
    let d = common::start_with("[limits]\nheader_read_timeout_ms = 300");
    let mut stream = connect(&d);
    assert_closed_by_server(&mut stream, Duration::from_secs(5));
    assert_still_serving(&d);
}

#[test]
fn trickled_headers_do_not_extend_the_header_timeout() {
    let d = common::start_with("[limits]\nheader_read_timeout_ms = 300");
    let mut stream = connect(&d);
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let _ = stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
    // One byte every ~50 ms for at most 5 s: the server must cut the connection long before.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut closed = false;
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        if stream.write_all(b"a").is_err() {
            closed = true;
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                assert!(
                    text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.0 408"),
                    "only a 408 may come back to a trickling client: {text:?}"
                );
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "a client trickling header bytes was not dropped within 5 s"
    );
    assert_still_serving(&d);
}
