//! Loop protection (SPEC §10) with a real two-way sync: a local receiver subscribed to
//! `customer.created` writes every customer it receives back through `POST /v1/customers` with
//! its own key, spelled differently (no external id, upper-cased email, phone with dashes), the
//! way a naive Zapier zap would. With protection the loop stops by itself: a write gets 409
//! `loop_detected`, the hook is `suspended` (`loop_detected`), the detection is listed (and
//! survives a restart) and can be cleared by an owner, and at most threshold + 1 customers exist.
//! A one-way flow of distinct customers at the same pace is never flagged. Every loop here is
//! bounded by count and time.

mod common;

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::receiver::{Answer, Receiver};
use common::Daemon;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);
const THRESHOLD: usize = 3;
const CONFIG: &str = "[loops]\nwindow_ms = 600000\nthreshold = 3\n\
                      [delivery]\nretry_schedule_ms = [0, 100]\ntimeout_ms = 2000\n";
/// Echo writes the test makes at most (without protection the loop would go on forever).
const MAX_ECHOES: usize = 20;

fn customers_created(d: &Daemon) -> usize {
    let r = d.owner("GET", "/v1/events?type=customer.created&limit=1000", None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["data"].as_array().unwrap().len()
}

/// A receiver that hands every delivery body to the returned channel.
fn forwarding_receiver() -> (Receiver, mpsc::Receiver<Value>) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let receiver = Receiver::start(move |req, _| {
        let _ = tx.lock().unwrap().send(req.json());
        Answer::status(200)
    });
    (receiver, rx)
}

fn app_user(d: &Daemon) -> (String, String) {
    d.user_with_key(
        "sync app",
        &["subscribe:webhook", "read:customer", "write:customer"],
    )
}

fn subscribe(d: &Daemon, key: &str, url: &str) -> String {
    let r = d.call(
        "POST",
        "/v1/hooks",
        Some(key),
        Some(&json!({"target_url": url, "event": "customer.created"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

#[test]
fn a_real_two_way_loop_stops_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = common::start_in(dir.path(), CONFIG);
    let (app_user_id, app_key) = app_user(&d);
    let (rx, deliveries) = forwarding_receiver();
    let hook = subscribe(&d, &app_key, &rx.url("/zap"));

    // The studio creates one customer; the app echoes every delivery back.
    let r = d.owner(
        "POST",
        "/v1/customers",
        Some(
            &json!({"first_name": "Ann", "last_name": "Lee", "email": "ann@example.com",
                     "phone_number": "+1 555 010 2030"}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let mut answers = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while answers.len() < MAX_ECHOES && Instant::now() < deadline {
        let Ok(delivery) = deliveries.recv_timeout(Duration::from_secs(3)) else {
            break; // nothing more is delivered: the loop has stopped
        };
        let data = &delivery["data"];
        let echo = json!({
            "first_name": data["first_name"],
            "last_name": data["last_name"],
            "email": data["email"].as_str().unwrap().to_uppercase(),
            "phone_number": "1-555-010-2030",
        });
        let r = d.call("POST", "/v1/customers", Some(&app_key), Some(&echo));
        answers.push((r.status, r.code().to_string()));
    }
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s == 409).collect();
    assert!(
        !refused.is_empty() && refused.iter().all(|(_, c)| c == "loop_detected"),
        "the loop is refused: {answers:?}"
    );
    assert!(
        answers.len() < MAX_ECHOES,
        "the loop stopped by itself: {answers:?}"
    );
    let created = customers_created(&d);
    assert!(
        created <= THRESHOLD + 1,
        "{created} customers for threshold {THRESHOLD}"
    );
    let view = common::wait_until(WAIT, || {
        let r = d.owner("GET", &format!("/v1/hooks/{hook}"), None);
        (r.json["state"] == "suspended").then_some(r.json)
    })
    .expect("the echoed hook is suspended");
    assert_eq!(view["state_reason"], "loop_detected");

    let r = d.owner("GET", "/v1/loops", None);
    assert_eq!(r.status, 200, "{}", r.text);
    let loops = r.json["data"].as_array().unwrap().clone();
    assert_eq!(loops.len(), 1, "{}", r.text);
    assert_eq!(loops[0]["hook_id"], json!(hook));
    assert_eq!(loops[0]["user_id"], json!(app_user_id));
    assert_eq!(loops[0]["echoes"], THRESHOLD);
    let loop_id = loops[0]["id"].as_str().unwrap().to_string();

    // Further echoes from the app are refused; other customers from it are not.
    let r = d.call(
        "POST",
        "/v1/customers",
        Some(&app_key),
        Some(&json!({"first_name": "ANN", "last_name": "lee", "email": "Ann@Example.com"})),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "loop_detected");
    let r = d.call(
        "POST",
        "/v1/customers",
        Some(&app_key),
        Some(&json!({"first_name": "Bo", "last_name": "Ng", "email": "bo@example.com"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);

    // The detection is journaled: it outlives a restart.
    assert_eq!(d.stop(), Some(0));
    let d = common::start_in(dir.path(), CONFIG);
    let r = d.owner("GET", "/v1/loops", None);
    assert_eq!(r.json["data"][0]["id"], json!(loop_id), "{}", r.text);

    // Only owners clear it.
    let r = d.call(
        "DELETE",
        &format!("/v1/loops/{loop_id}"),
        Some(&app_key),
        None,
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = d.owner("DELETE", &format!("/v1/loops/{loop_id}"), None);
    assert_eq!(r.status, 204, "{}", r.text);
    let r = d.owner("GET", "/v1/loops", None);
    assert_eq!(r.json["data"], json!([]));
    let r = d.owner("DELETE", &format!("/v1/loops/{loop_id}"), None);
    assert_eq!(r.status, 404, "{}", r.text);
}

#[test]
fn a_one_way_flow_of_distinct_customers_is_never_flagged() {
    let d = common::start_with(CONFIG);
    let (_, app_key) = app_user(&d);
    let (rx, deliveries) = forwarding_receiver();
    let hook = subscribe(&d, &app_key, &rx.url("/zap"));
    // The same pace as the loop: write, see it delivered, write the next. Same names on
    // purpose: a name alone is not an identity.
    for i in 0..(MAX_ECHOES / 2) {
        let r = d.call(
            "POST",
            "/v1/customers",
            Some(&app_key),
            Some(&json!({"first_name": "Guest", "last_name": "Walk-in",
                         "email": format!("guest{i}@example.com"),
                         "phone_number": format!("+1 555 100 {:04}", i)})),
        );
        assert_eq!(r.status, 201, "write {i}: {}", r.text);
        let delivery = deliveries.recv_timeout(WAIT).expect("delivered");
        assert_eq!(delivery["data"]["email"], format!("guest{i}@example.com"));
    }
    let r = d.owner("GET", "/v1/loops", None);
    assert_eq!(r.json["data"], json!([]), "{}", r.text);
    let r = d.owner("GET", &format!("/v1/hooks/{hook}"), None);
    assert_eq!(r.json["state"], "active", "{}", r.text);
    assert_eq!(customers_created(&d), MAX_ECHOES / 2);
    drop(rx);
}
