//! Inbound customer actions (SPEC §9) against the real daemon:
//!
//! - create, get, find by email / phone / external id (normalized as indexed), patch; fields are
//!   validated with clear 422s; permissions `write:customer` / `read:customer` are enforced and
//!   `medical_conditions` is redacted for callers without `medical:customer`;
//! - a no-op patch and an `external_id` upsert append nothing (the journal head does not move);
//! - `Idempotency-Key`: parallel retries of one key create exactly one customer and one event,
//!   and get the same answer; the key reused for another body is a 409;
//! - the view is a projection of every `customer.*` event, including ones ingested through
//!   `POST /v1/events`, and is rebuilt identically from the journal.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Daemon;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

fn head(d: &Daemon) -> u64 {
    let r = d.call("GET", "/readyz", None, None);
    r.json["journal_head"].as_u64().expect("journal_head")
}

fn customer_events(d: &Daemon) -> Vec<Value> {
    let r = d.owner("GET", "/v1/events?type=customer.created&limit=1000", None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["data"].as_array().unwrap().clone()
}

fn post(d: &Daemon, key: &str, body: &Value) -> common::Reply {
    d.call("POST", "/v1/customers", Some(key), Some(body))
}

#[test]
fn create_read_find_patch_with_validation_permissions_and_redaction() {
    let d = common::start();
    let (_, writer) = d.user_with_key("app", &["write:customer", "read:customer"]);
    let (_, reader_only) = d.user_with_key("reader", &["read:customer"]);
    let r = post(
        &d,
        &writer,
        &json!({"first_name": "Ann", "last_name": "Lee", "email": "Ann.Lee@Example.com",
                "phone_number": "+1 (555) 010-2030", "birthdate": "1990-02-28",
                "external_id": "crm-1", "medical_conditions": ["asthma", "latex"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["created"], true);
    let id = r.json["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("cus_"), "{id}");
    assert!(r.json.get("medical_conditions").is_none(), "{}", r.text);
    assert_eq!(r.json["medical_conditions_count"], 2);
    // The owner holds medical:customer and sees the field.
    let r = d.owner("GET", &format!("/v1/customers/{id}"), None);
    assert_eq!(r.json["medical_conditions"], json!(["asthma", "latex"]));
    // Exactly one event, carrying the customer.
    let events = customer_events(&d);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["data"]["id"], json!(id));
    assert_eq!(events[0]["data"]["email"], "Ann.Lee@Example.com");

    // Find, normalized.
    for query in [
        "email=ann.lee%40example.COM",
        "phone_number=15550102030",
        "phone_number=1-555-010-2030",
        "external_id=crm-1",
        "email=ann.lee%40example.com&external_id=crm-1",
    ] {
        let r = d.call(
            "GET",
            &format!("/v1/customers?{query}"),
            Some(&reader_only),
            None,
        );
        assert_eq!(r.status, 200, "{query}: {}", r.text);
        let ids: Vec<&str> = r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![id.as_str()], "{query}");
        assert!(r.json["data"][0].get("medical_conditions").is_none());
    }
    let r = d.call(
        "GET",
        "/v1/customers?email=nobody%40example.com",
        Some(&reader_only),
        None,
    );
    assert_eq!(r.json["data"], json!([]));
    let r = d.call("GET", "/v1/customers", Some(&reader_only), None);
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.code(), "invalid_request");

    // Permissions.
    let r = post(
        &d,
        &reader_only,
        &json!({"first_name": "X", "last_name": "Y"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let (_, nobody) = d.user_with_key("nobody", &["subscribe:webhook"]);
    let r = d.call("GET", &format!("/v1/customers/{id}"), Some(&nobody), None);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = d.call("GET", "/v1/customers/cus_missing", Some(&writer), None);
    assert_eq!(r.status, 404, "{}", r.text);

    // Validation: 422 with a message naming the problem; nothing appended.
    let before = head(&d);
    for (body, needle) in [
        (json!({"last_name": "Lee"}), "first_name is required"),
        (
            json!({"first_name": "A", "last_name": "B", "email": "no-at-sign"}),
            "email",
        ),
        (
            json!({"first_name": "A", "last_name": "B", "birthdate": "1990-13-01"}),
            "YYYY-MM-DD",
        ),
        (
            json!({"first_name": "A", "last_name": "B", "phone_number": "call me"}),
            "phone_number",
        ),
        (
            json!({"first_name": 7, "last_name": "B"}),
            "first_name must be a string",
        ),
        (
            json!({"first_name": "A", "last_name": "B", "shoe_size": 9}),
            "unknown field",
        ),
        (
            json!({"first_name": "A", "last_name": "B", "notes": "n".repeat(5001)}),
            "notes",
        ),
        (json!(["not", "an", "object"]), "object"),
    ] {
        let r = post(&d, &writer, &body);
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.code(), "validation_failed");
        let message = r.json["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{needle:?} in {message:?}");
    }
    let r = d.raw(
        "POST",
        "/v1/customers",
        &[("x-api-key", &writer)],
        Some("{\"first_name\":"),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(head(&d), before, "rejected writes append nothing");

    // A no-op patch appends nothing; a real one appends customer.updated.
    let r = d.call(
        "PATCH",
        &format!("/v1/customers/{id}"),
        Some(&writer),
        Some(&json!({"first_name": "Ann", "email": "Ann.Lee@Example.com"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(head(&d), before, "a no-op patch appends nothing");
    let r = d.call(
        "PATCH",
        &format!("/v1/customers/{id}"),
        Some(&writer),
        Some(&json!({"city": "Lisbon", "phone_number": null})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["city"], "Lisbon");
    assert!(r.json.get("phone_number").is_none(), "cleared: {}", r.text);
    assert_eq!(head(&d), before + 1);
    let r = d.owner("GET", "/v1/events?type=customer.updated", None);
    assert_eq!(r.json["data"][0]["data"]["city"], "Lisbon");
    let r = d.call(
        "GET",
        "/v1/customers?phone_number=15550102030",
        Some(&writer),
        None,
    );
    assert_eq!(r.json["data"], json!([]), "the old phone is unindexed");
    let r = d.call(
        "PATCH",
        &format!("/v1/customers/{id}"),
        Some(&writer),
        Some(&json!({"last_name": null})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
}

#[test]
fn external_id_upsert_returns_the_existing_customer() {
    let d = common::start();
    let body = json!({"first_name": "Bo", "last_name": "Ng", "external_id": "zap-77"});
    let r = post(&d, &d.owner_key, &body);
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].clone();
    let before = head(&d);
    let r = post(
        &d,
        &d.owner_key,
        &json!({"first_name": "Other", "last_name": "Name", "external_id": "zap-77"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["created"], false);
    assert_eq!(r.json["id"], id);
    assert_eq!(
        r.json["first_name"], "Bo",
        "the existing customer, unchanged"
    );
    assert_eq!(head(&d), before, "nothing appended");
    // A patch may not take another customer's external id.
    let r = post(
        &d,
        &d.owner_key,
        &json!({"first_name": "C", "last_name": "D"}),
    );
    let other = r.json["id"].as_str().unwrap().to_string();
    let r = d.owner(
        "PATCH",
        &format!("/v1/customers/{other}"),
        Some(&json!({"external_id": "zap-77"})),
    );
    assert_eq!(r.status, 409, "{}", r.text);
}

#[test]
fn parallel_retries_of_one_idempotency_key_create_one_customer() {
    let d = common::start();
    let (_, key) = d.user_with_key("zap", &["write:customer", "read:customer"]);
    let body =
        json!({"first_name": "Cy", "last_name": "Ro", "email": "cy@example.com"}).to_string();
    let start = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (url, key, body, start) = (
                d.url("/v1/customers"),
                key.clone(),
                body.clone(),
                start.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                let mut r = common::agent()
                    .post(&url)
                    .header("x-api-key", &key)
                    .header("idempotency-key", "retry-123")
                    .header("content-type", "application/json")
                    .send(body.as_str())
                    .expect("POST /v1/customers");
                (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
            })
        })
        .collect();
    let replies: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for (status, text) in &replies {
        assert_eq!(*status, 201, "{text}");
        assert_eq!(text, &replies[0].1, "every retry gets the first response");
    }
    assert_eq!(customer_events(&d).len(), 1, "exactly one event");
    let r = d.call(
        "GET",
        "/v1/customers?email=cy%40example.com",
        Some(&key),
        None,
    );
    assert_eq!(r.json["data"].as_array().unwrap().len(), 1, "one customer");
    // The same key for a different body is a conflict; a bad key is a 400.
    let r = d.raw(
        "POST",
        "/v1/customers",
        &[("x-api-key", &key), ("idempotency-key", "retry-123")],
        Some(&json!({"first_name": "Other", "last_name": "X"}).to_string()),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let long = "k".repeat(300);
    let r = d.raw(
        "POST",
        "/v1/customers",
        &[("x-api-key", &key), ("idempotency-key", &long)],
        Some(&body),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(customer_events(&d).len(), 1);
}

#[test]
fn ingested_customer_events_are_projected_and_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = common::start_in(dir.path(), "");
    let r = d.owner(
        "POST",
        "/v1/events",
        Some(&json!([
            {"type": "customer.created", "data": {"id": "rev23-cus-9", "first_name": "Di",
             "last_name": "Ma", "email": "DI@example.com", "phone_number": "555 0199"}},
            {"type": "customer.updated", "data": {"id": "rev23-cus-9", "city": "Porto",
             "email": "di.ma@example.com"}}
        ])),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let customer = common::wait_until(WAIT, || {
        let r = d.owner("GET", "/v1/customers/rev23-cus-9", None);
        (r.status == 200 && r.json["city"] == "Porto").then_some(r.json)
    })
    .expect("the ingested events reach the view");
    assert_eq!(customer["first_name"], "Di");
    assert_eq!(customer["email"], "di.ma@example.com");
    let r = d.owner("GET", "/v1/customers?email=di%40example.com", None);
    assert_eq!(r.json["data"], json!([]), "the old email is unindexed");
    let r = d.owner("GET", "/v1/customers?email=DI.MA%40example.com", None);
    assert_eq!(r.json["data"][0]["id"], "rev23-cus-9");

    assert_eq!(d.stop(), Some(0));
    common::rebuild_projections(&d.data_dir);
    let d = common::start_in(dir.path(), "");
    let rebuilt = common::wait_until(WAIT, || {
        let r = d.owner("GET", "/v1/customers/rev23-cus-9", None);
        (r.status == 200).then_some(r.json)
    })
    .expect("rebuilt");
    assert_eq!(rebuilt, customer, "the rebuilt view is the same");
    let r = d.owner("GET", "/v1/customers?phone_number=5550199", None);
    assert_eq!(r.json["data"][0]["id"], "rev23-cus-9");
}
