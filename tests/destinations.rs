//! Destination policy and SSRF protection (SPEC §11), against the real daemon:
//!
//! - every forbidden range (loopback, RFC 1918, link-local incl. 169.254.169.254, CGNAT, ULA,
//!   multicast, unspecified, IPv4-mapped IPv6, and a name resolving to loopback) is refused at
//!   creation with 403 `destination_not_allowed` — decided before anything is sent, so these
//!   tests never address anything outside loopback;
//! - a target inside `allow_private_networks` delivers; `allowed_destinations` and `https_only`
//!   refuse what they do not list;
//! - `require_approval`: a non-owner's hook waits in `pending_approval` (keeping its backlog)
//!   until an owner approves it;
//! - `PUT /v1/policy` is journaled (it survives a restart, whatever the config file says) and
//!   suspends the hooks it now forbids; resuming one is refused until the policy allows it again;
//! - `GET /v1/audit/hooks` lists every hook with its user, host, events and delivery counts.
//!
//! - the connect-time check: hooks allowed at creation (by IP and by name) meet a stricter
//!   policy after a restart and are refused before any connect, suspended, delivery pending.
//!
//! DNS re-binding proper (a name whose answer changes) is tested in `src/sender/client.rs`
//! with an injected resolver.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::{Daemon, Reply};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const QUIET: Duration = Duration::from_millis(700);
/// No private network allowed at all (the harness adds loopback only without a `[policy]`).
const STRICT: &str = "[policy]\nallow_private_networks = []\n";

fn create_hook(d: &Daemon, key: &str, target: &str) -> Reply {
    d.call(
        "POST",
        "/v1/hooks",
        Some(key),
        Some(&json!({"target_url": target, "event": "customer.created"})),
    )
}

fn post_customer(d: &Daemon, entity: &str) {
    let r = d.owner(
        "POST",
        "/v1/events",
        Some(&json!({"type": "customer.created", "data": {"id": entity, "first_name": "A"}})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

fn hook_view(d: &Daemon, id: &str) -> Value {
    let r = d.owner("GET", &format!("/v1/hooks/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

fn assert_refused(r: &Reply, what: &str) {
    assert_eq!(r.status, 403, "{what}: {}", r.text);
    assert_eq!(r.code(), "destination_not_allowed", "{what}: {}", r.text);
    assert!(
        r.json["error"]["message"].as_str().unwrap_or("").len() > 10,
        "{what}: a clear message: {}",
        r.text
    );
}

#[test]
fn every_forbidden_range_is_refused_at_creation() {
    let d = common::start_with(STRICT);
    let targets = [
        "http://127.0.0.1:9/h",
        "http://127.1.2.3/h",
        "http://10.0.0.1/h",
        "http://172.16.5.4/h",
        "http://192.168.1.1/h",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/h",
        "http://0.0.0.0/h",
        "http://224.0.0.1/h",
        "http://255.255.255.255/h",
        "http://[::1]/h",
        "http://[::]/h",
        "http://[fc00::1]/h",
        "http://[fd00:1234::5]/h",
        "http://[fe80::1]/h",
        "http://[ff02::1]/h",
        "http://[::ffff:127.0.0.1]/h",
        "http://[::ffff:169.254.169.254]/h",
        "http://[::ffff:a00:1]/h",
        // A name: refused by what it resolves to (loopback), not by how it is spelled.
        "http://localhost:9/h",
    ];
    for target in targets {
        assert_refused(&create_hook(&d, &d.owner_key, target), target);
    }
    let r = d.owner("GET", "/v1/hooks", None);
    assert_eq!(r.json["data"], json!([]), "nothing was created");
}

#[test]
fn allowed_private_network_delivers_and_patch_is_vetted() {
    let d = common::start_with(
        "[policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n[delivery]\nretry_schedule_ms = [0]\n",
    );
    let rx = Receiver::ok();
    let r = create_hook(&d, &d.owner_key, &rx.url("/ok"));
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().unwrap().to_string();
    post_customer(&d, "cus_1");
    let got = rx.wait_for(1, WAIT);
    assert_eq!(got.len(), 1, "delivered inside the allowed network");
    // 127/8 is allowed, 10/8 is not: a PATCH to it is refused and changes nothing.
    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{id}"),
        Some(&json!({"target_url": "http://10.1.2.3/x"})),
    );
    assert_refused(&r, "patch to 10.1.2.3");
    assert_eq!(hook_view(&d, &id)["target_url"], json!(rx.url("/ok")));
}

#[test]
fn allowed_destinations_and_https_only_refuse_the_rest() {
    let d = common::start_with(
        "[policy]\nallowed_destinations = [\"hooks.example.com\", \"*.zapier.com\"]\n\
         allow_private_networks = [\"127.0.0.0/8\"]\n",
    );
    let rx = Receiver::ok();
    assert_refused(
        &create_hook(&d, &d.owner_key, &rx.url("/x")),
        "127.0.0.1 is not listed",
    );
    let d = common::start_with(
        "[policy]\nhttps_only = true\nallow_private_networks = [\"127.0.0.0/8\"]\n",
    );
    assert_refused(
        &create_hook(&d, &d.owner_key, &rx.url("/x")),
        "http under https_only",
    );
    let r = d.owner("GET", "/v1/policy", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["https_only"], json!(true));
}

#[test]
fn non_owner_hooks_wait_for_approval() {
    let d = common::start_with(
        "[policy]\nrequire_approval = true\nallow_private_networks = [\"127.0.0.0/8\"]\n",
    );
    let rx = Receiver::ok();
    let (_, key) = d.user_with_key("zapier", &["subscribe:webhook", "read:customer"]);
    let r = create_hook(&d, &key, &rx.url("/pending"));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["state"], "pending_approval");
    let id = r.json["id"].as_str().unwrap().to_string();
    // The owner's own hooks need no approval.
    let r = create_hook(&d, &d.owner_key, &rx.url("/owner"));
    assert_eq!(r.json["state"], "active", "{}", r.text);

    post_customer(&d, "cus_waiting");
    let got = rx.wait_for(1, WAIT);
    std::thread::sleep(QUIET);
    let got_now = rx.received();
    assert_eq!(got.len(), 1);
    assert!(
        got_now.iter().all(|r| r.path == "/owner"),
        "a pending hook delivers nothing"
    );

    // Its user can neither approve nor activate it.
    let r = d.call("POST", &format!("/v1/hooks/{id}/approve"), Some(&key), None);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = d.call(
        "PATCH",
        &format!("/v1/hooks/{id}"),
        Some(&key),
        Some(&json!({"state": "active"})),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    // Nor side-step approval by pausing first.
    let r = d.call(
        "PATCH",
        &format!("/v1/hooks/{id}"),
        Some(&key),
        Some(&json!({"state": "paused"})),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(hook_view(&d, &id)["state"], "pending_approval");

    let r = d.owner("POST", &format!("/v1/hooks/{id}/approve"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["state"], "active");
    // The backlog kept while pending arrives now.
    let got = rx.wait_for(2, WAIT);
    assert!(
        got.iter()
            .any(|r| r.path == "/pending" && r.json()["data"]["id"] == "cus_waiting"),
        "the approved hook delivers its backlog"
    );
    let r = d.owner("POST", &format!("/v1/hooks/{id}/approve"), None);
    assert_eq!(r.status, 409, "already active: {}", r.text);
}

#[test]
fn policy_change_suspends_forbidden_hooks_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = common::start_in(dir.path(), "");
    let rx = Receiver::ok();
    let a = create_hook(&d, &d.owner_key, &rx.url("/a"));
    assert_eq!(a.status, 201, "{}", a.text);
    let a = a.json["id"].as_str().unwrap().to_string();

    // Non-owners may not change or (without admin) read the policy; bad values are 422.
    let (_, key) = d.user_with_key("plain", &["subscribe:webhook"]);
    let r = d.call("PUT", "/v1/policy", Some(&key), Some(&json!({})));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = d.call("GET", "/v1/policy", Some(&key), None);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = d.owner(
        "PUT",
        "/v1/policy",
        Some(&json!({"allow_private_networks": ["10.0.0.0/99"]})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("10.0.0.0/99"), "{}", r.text);
    let r = d.owner("PUT", "/v1/policy", Some(&json!({"https": true})));
    assert_eq!(r.status, 422, "unknown field: {}", r.text);

    // A policy that still allows the hook leaves it alone.
    let r = d.owner(
        "PUT",
        "/v1/policy",
        Some(&json!({"allowed_destinations": ["127.0.0.1"],
                     "allow_private_networks": ["127.0.0.0/8"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["suspended_hooks"], json!([]));
    assert_eq!(hook_view(&d, &a)["state"], "active");

    // One that forbids loopback suspends it, and nothing is delivered.
    let r = d.owner(
        "PUT",
        "/v1/policy",
        Some(&json!({"allow_private_networks": []})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["suspended_hooks"], json!([a]));
    let view = hook_view(&d, &a);
    assert_eq!(view["state"], "suspended");
    assert_eq!(view["state_reason"], "destination_not_allowed");
    post_customer(&d, "cus_during");
    std::thread::sleep(QUIET);
    assert_eq!(rx.count(), 0, "a suspended hook sends nothing");

    // The journaled policy outlives a restart, although the harness config allows loopback.
    assert_eq!(d.stop(), Some(0));
    let d = common::start_in(dir.path(), "");
    let r = d.owner("GET", "/v1/policy", None);
    assert_eq!(r.json["allow_private_networks"], json!([]), "{}", r.text);
    assert_refused(
        &d.owner(
            "PATCH",
            &format!("/v1/hooks/{a}"),
            Some(&json!({"state": "active"})),
        ),
        "resume under the strict policy",
    );
    assert_refused(&create_hook(&d, &d.owner_key, &rx.url("/b")), "new hook");

    // Allowed again: resuming works and new events flow.
    let r = d.owner(
        "PUT",
        "/v1/policy",
        Some(&json!({"allow_private_networks": ["127.0.0.0/8"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{a}"),
        Some(&json!({"state": "active"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    post_customer(&d, "cus_after");
    let got = rx.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["data"]["id"], "cus_after");
}

#[test]
fn audit_lists_every_hook_with_user_host_and_counts() {
    let d = common::start();
    let rx = Receiver::ok();
    let (user, key) = d.user_with_key("zap", &["subscribe:webhook", "read:customer"]);
    let r = create_hook(&d, &key, &rx.url("/zap"));
    assert_eq!(r.status, 201, "{}", r.text);
    let hook = r.json["id"].as_str().unwrap().to_string();
    post_customer(&d, "cus_a");
    rx.wait_for(1, WAIT);
    let row = common::wait_until(WAIT, || {
        let r = d.owner("GET", "/v1/audit/hooks", None);
        assert_eq!(r.status, 200, "{}", r.text);
        let row = r.json["data"][0].clone();
        (row["deliveries"]["succeeded"] == 1).then_some(row)
    })
    .expect("the delivery is counted");
    assert_eq!(row["id"], json!(hook));
    assert_eq!(row["user"]["id"], json!(user));
    assert_eq!(row["user"]["name"], "zap");
    assert_eq!(row["destination_host"], "127.0.0.1");
    assert_eq!(row["events"], json!(["customer.created"]));
    let r = d.call("GET", "/v1/audit/hooks", Some(&key), None);
    assert_eq!(r.status, 403, "{}", r.text);
}

/// The connect-time check, end to end: hooks created while loopback was allowed (one by IP, one
/// by a name that resolves to loopback) meet a stricter config after a restart — nothing
/// re-checks them at start, so only the sender's connect-time check stands between them and
/// loopback. It refuses before connecting, suspends both hooks and keeps the delivery pending.
#[test]
fn connect_time_check_refuses_what_creation_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::ok();
    let port = rx.base_url.rsplit(':').next().unwrap().to_string();
    let mut d = common::start_in(
        dir.path(),
        "[policy]\nallow_private_networks = [\"127.0.0.0/8\", \"::1/128\"]\n",
    );
    let by_ip = create_hook(&d, &d.owner_key, &rx.url("/ip"));
    assert_eq!(by_ip.status, 201, "{}", by_ip.text);
    let by_name = create_hook(&d, &d.owner_key, &format!("http://localhost:{port}/name"));
    assert_eq!(by_name.status, 201, "{}", by_name.text);
    assert_eq!(d.stop(), Some(0));

    let d = common::start_in(dir.path(), STRICT);
    post_customer(&d, "cus_blocked");
    for hook in [&by_ip, &by_name] {
        let id = hook.json["id"].as_str().unwrap();
        let view = common::wait_until(WAIT, || {
            let v = hook_view(&d, id);
            (v["state"] == "suspended").then_some(v)
        })
        .unwrap_or_else(|| panic!("hook {id} is suspended: {}", hook_view(&d, id)));
        assert_eq!(view["state_reason"], "destination_not_allowed");
        // The attempt log is written a moment after the state change: wait for it.
        let delivery = common::wait_until(WAIT, || {
            let r = d.owner("GET", &format!("/v1/hooks/{id}/deliveries"), None);
            let delivery = r.json["data"][0].clone();
            let error = delivery["attempts"][0]["error"].as_str().unwrap_or("");
            error.contains("not allowed").then_some(delivery)
        })
        .expect("the refused attempt is logged");
        assert_eq!(delivery["status"], "pending", "kept for later: {delivery}");
    }
    std::thread::sleep(QUIET);
    assert_eq!(rx.count(), 0, "nothing reached loopback");
}
