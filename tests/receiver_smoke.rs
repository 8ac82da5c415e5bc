//! A hook delivers a posted event to a real local receiver, signed, with the SPEC §5 headers.

mod common;

use common::receiver::Receiver;
use serde_json::json;
use std::time::Duration;

#[test]
fn a_hook_receives_a_posted_event() {
    let d = common::start();
    let rx = Receiver::ok();
    let hook = d.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"target_url": rx.url("/hook"), "event": "customer.created"})),
    );
    assert_eq!(hook.status, 201, "{}", hook.text);
    assert!(hook.json["secret"].as_str().unwrap().starts_with("whsec_"));
    let posted = d.owner(
        "POST",
        "/v1/events",
        Some(&json!({"type": "customer.created", "data": {"id": "c1", "first_name": "Ann"}})),
    );
    assert_eq!(posted.status, 201);
    let got = rx.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "one delivery");
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(
        r.header("webhook-id"),
        posted.json["data"][0]["id"].as_str()
    );
    assert_eq!(r.header("rev23-sequence"), Some("1"));
    assert_eq!(r.header("rev23-attempt"), Some("1"));
    assert_eq!(r.header("rev23-event-type"), Some("customer.created"));
    assert_eq!(r.header("rev23-hook-id"), hook.json["id"].as_str());
    let sig = r.header("webhook-signature").unwrap();
    assert!(sig.starts_with("v1,") && sig.contains(" v1a,"), "{sig}");
    assert_eq!(r.json()["data"], json!({"id": "c1", "first_name": "Ann"}));
}
