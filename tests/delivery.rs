//! The delivery side of the daemon, end to end against real local receivers (SPEC §4 hooks,
//! §5 delivery). Each test starts its own daemon (the real binary) and its own hyper receiver
//! on 127.0.0.1, with millisecond retry schedules, and proves:
//!
//! - a delivery carries the SPEC §5 headers and the body `{"id","type","timestamp","data"}` with
//!   `data` byte-identical to what was posted, and its `v1` (hook secret) and `v1a` (the key of
//!   `GET /v1/signing-keys`) signatures verify with the library's verifier; for a subscriber
//!   without `medical:customer` only the medical field changes (SPEC §6);
//! - failures are retried by the schedule (500, a timeout), with the same `webhook-id` and a
//!   growing `rev23-attempt`; `Retry-After` on 429/503 is a floor on the wait; a 3xx is a failure
//!   and is never followed; 410 disables the hook (`gone`) until it is made active again, and a
//!   hook failing longer than `disable_after_ms` is disabled (`failing`); after the last attempt
//!   the delivery is `failed` with every attempt logged, and the lane moves on;
//! - pausing keeps the backlog (lag grows) and resuming delivers it with no gap in
//!   `rev23-sequence`; a rotated secret signs beside the new one for `secret_overlap_ms` only;
//! - the hooks API: create (`event` / `events`), validation and permission errors, visibility to
//!   other users, list, patch, delete (no deliveries after it), the cursor fields, signing keys
//!   without auth;
//! - and, independently of this crate's code, that captured deliveries verify with the reference
//!   Python `standardwebhooks` library (v1) and `cryptography`'s ed25519 (v1a), via
//!   `tests/conformance/verify_deliveries.py` (captures go to `$REV23_CAPTURE_DIR`, else a temp dir).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::receiver::{Answer, Received, Receiver};
use common::Daemon;
use rev23_webhooks::sender::signing::{
    self, DeliveryHeaders, HmacSecret, Verified, VerifyError, VerifyingKey,
};
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Longest wait for anything the daemon should do promptly.
const WAIT: Duration = Duration::from_secs(10);
/// How long we watch to see that nothing more arrives.
const QUIET: Duration = Duration::from_millis(700);
/// A fast schedule: 4 attempts, 100/200/300 ms apart, 500 ms per attempt.
const FAST: &str = "retry_schedule_ms = [0, 100, 200, 300]\ntimeout_ms = 500";

/// A daemon whose `[delivery]` section is `delivery`; loopback targets are allowed explicitly
/// (SPEC §11) and the per-key rate limit is out of the way of the polling below.
fn start(delivery: &str) -> Daemon {
    common::start_with(&format!(
        "[limits]\nrate_limit_per_minute = 100000\n\
         [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n\
         [delivery]\n{delivery}\n"
    ))
}

/// `POST /v1/hooks` with `key`; asserts 201 and returns the created hook.
fn create_hook_as(d: &Daemon, key: &str, body: Value) -> Value {
    let r = d.call("POST", "/v1/hooks", Some(key), Some(&body));
    assert_eq!(r.status, 201, "create hook {body}: {}", r.text);
    r.json
}

/// An owner hook on `customer.created` (plus `extra` fields); returns (id, secret).
fn owner_hook(d: &Daemon, target: &str, extra: Value) -> (String, String) {
    let mut body = json!({"target_url": target, "event": "customer.created"});
    for (k, v) in extra.as_object().expect("object").iter() {
        body[k] = v.clone();
    }
    let hook = create_hook_as(d, &d.owner_key, body);
    (
        hook["id"].as_str().unwrap().to_string(),
        hook["secret"].as_str().unwrap().to_string(),
    )
}

/// Posts one event given as raw JSON text; returns (event id, offset).
fn post_raw(d: &Daemon, raw: &str) -> (String, u64) {
    let r = d.raw(
        "POST",
        "/v1/events",
        &[("x-api-key", &d.owner_key)],
        Some(raw),
    );
    assert_eq!(r.status, 201, "post event {raw}: {}", r.text);
    let item = &r.json["data"][0];
    (
        item["id"].as_str().expect("event id").to_string(),
        item["offset"].as_u64().expect("offset"),
    )
}

/// Posts a `customer.created` event for `entity` with `data` fields; returns the event id.
fn post_customer(d: &Daemon, entity: &str, mut data: Value) -> String {
    data["id"] = json!(entity);
    post_raw(
        d,
        &json!({"type": "customer.created", "data": data}).to_string(),
    )
    .0
}

fn get_hook(d: &Daemon, id: &str) -> Value {
    let r = d.owner("GET", &format!("/v1/hooks/{id}"), None);
    assert_eq!(r.status, 200, "get hook: {}", r.text);
    r.json
}

/// Polls `GET /v1/hooks/{id}` until `pred` holds (bounded); panics with the last view.
fn wait_hook(d: &Daemon, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    common::wait_until(WAIT, || {
        let h = get_hook(d, id);
        if pred(&h) {
            Some(h)
        } else {
            last = h;
            None
        }
    })
    .unwrap_or_else(|| panic!("hook {id}: {what} not reached within {WAIT:?}; last view: {last}"))
}

/// `GET /v1/hooks/{id}/deliveries[?status=]` (owner).
fn deliveries(d: &Daemon, id: &str, status: Option<&str>) -> Vec<Value> {
    let path = match status {
        Some(s) => format!("/v1/hooks/{id}/deliveries?status={s}"),
        None => format!("/v1/hooks/{id}/deliveries"),
    };
    let r = d.owner("GET", &path, None);
    assert_eq!(r.status, 200, "deliveries: {}", r.text);
    r.json["data"].as_array().expect("data array").clone()
}

/// Waits until the attempt log has exactly `n` deliveries of `status` satisfying `pred`.
fn wait_deliveries(
    d: &Daemon,
    id: &str,
    status: &str,
    n: usize,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let mut last = Vec::new();
    common::wait_until(WAIT, || {
        let list = deliveries(d, id, Some(status));
        if list.len() == n && pred(&list) {
            Some(list)
        } else {
            last = list;
            None
        }
    })
    .unwrap_or_else(|| {
        panic!("hook {id}: expected {n} {status} deliveries within {WAIT:?}; last: {last:?}")
    })
}

/// Waits (bounded) for at least `n` requests at the receiver; asserts they came.
fn wait_received(rx: &Receiver, n: usize) -> Vec<Received> {
    let got = rx.wait_for(n, WAIT);
    assert!(
        got.len() >= n,
        "expected {n} requests at the receiver within {WAIT:?}, got {}: {:?}",
        got.len(),
        summary(&got)
    );
    got
}

/// Watches for `QUIET`; asserts the receiver got exactly `n` requests in all.
fn assert_quiet(rx: &Receiver, n: usize) {
    std::thread::sleep(QUIET);
    let got = rx.received();
    assert_eq!(
        got.len(),
        n,
        "expected no more requests; got {:?}",
        summary(&got)
    );
}

/// (path, sequence, attempt) of each request, for messages.
fn summary(got: &[Received]) -> Vec<(String, String, String)> {
    got.iter()
        .map(|r| {
            (
                r.path.clone(),
                r.header("rev23-sequence").unwrap_or("-").to_string(),
                r.header("rev23-attempt").unwrap_or("-").to_string(),
            )
        })
        .collect()
}

fn header<'a>(r: &'a Received, name: &str) -> &'a str {
    r.header(name)
        .unwrap_or_else(|| panic!("delivery lacks the header {name}: {:?}", r.headers))
}

fn attempt_of(r: &Received) -> u32 {
    header(r, "rev23-attempt").parse().expect("rev23-attempt")
}

/// The `webhook-signature` entries of a delivery whose version is `version`.
fn entries_of<'a>(r: &'a Received, version: &str) -> Vec<&'a str> {
    signing::signature_entries(header(r, "webhook-signature"))
        .filter(|(v, _)| *v == version)
        .map(|(_, b64)| b64)
        .collect()
}

fn sig_headers(r: &Received) -> DeliveryHeaders<'_> {
    DeliveryHeaders {
        id: r.header("webhook-id"),
        timestamp: r.header("webhook-timestamp"),
        signature: r.header("webhook-signature"),
    }
}

/// Verifies `body` (the delivery's, or a changed one) with the secret and/or public key, with the
/// reference libraries' 5-minute tolerance.
fn verify_body(
    r: &Received,
    body: &[u8],
    secret: Option<&str>,
    public_key: Option<&str>,
) -> Result<Verified, VerifyError> {
    let secret = secret.map(|s| HmacSecret::parse(s).expect("hook secret parses"));
    let key = public_key.map(|k| VerifyingKey::from_whpk(k).expect("whpk key parses"));
    signing::verify(
        &sig_headers(r),
        body,
        secret.as_ref(),
        key.as_ref(),
        Some(signing::DEFAULT_TOLERANCE_SECS),
        signing::now_secs(),
    )
}

/// Asserts the delivery verifies under v1 with `secret` and under v1a with `public_key`, and
/// that a tampered body fails both.
fn assert_signed(r: &Received, secret: &str, public_key: &str) {
    let v1 = verify_body(r, &r.body, Some(secret), None).expect("v1 verifies with the secret");
    assert!(v1.v1 && !v1.v1a);
    let v1a = verify_body(r, &r.body, None, Some(public_key)).expect("v1a verifies");
    assert!(v1a.v1a && !v1a.v1);
    let both = verify_body(r, &r.body, Some(secret), Some(public_key)).unwrap();
    assert_eq!(both.versions(), vec!["v1", "v1a"]);
    let mut tampered = r.body.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 0x01;
    assert_eq!(
        verify_body(r, &tampered, Some(secret), Some(public_key)),
        Err(VerifyError::NoMatchingSignature),
        "a tampered body must not verify"
    );
}

/// The daemon's current `whpk_` public key (no auth needed).
fn public_key(d: &Daemon) -> String {
    let r = d.call("GET", "/v1/signing-keys", None, None);
    assert_eq!(r.status, 200, "signing keys: {}", r.text);
    r.json["data"][0]["public_key"]
        .as_str()
        .expect("public_key")
        .to_string()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn gap(a: &Received, b: &Received) -> Duration {
    b.at.saturating_duration_since(a.at)
}

// ---------------------------------------------------------------------------------------------

#[test]
fn delivery_has_spec_headers_exact_body_and_valid_signatures() {
    let d = start(FAST);
    let rx = Receiver::ok();
    let (hook_id, secret) = owner_hook(&d, &rx.url("/in"), json!({}));
    // Odd spacing, a non-canonical number, escapes and non-ASCII: must arrive byte for byte.
    let data = r#"{"id":"cus_01",  "first_name":"Zoë", "note":"a \"quote\" and \u00e9", "score": 1.50, "tags":[ 3, 1 ,2], "nested":{"b":null,"a":{}}}"#;
    let raw = format!(r#"{{"type":"customer.created","data":{data}}}"#);
    let (event_id, _) = post_raw(&d, &raw);

    let got = wait_received(&rx, 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/in");
    assert_eq!(header(r, "content-type"), "application/json");
    assert_eq!(
        header(r, "user-agent"),
        format!("rev23-webhooks/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(header(r, "webhook-id"), event_id);
    let ts_text = header(r, "webhook-timestamp");
    assert!(
        !ts_text.is_empty() && ts_text.bytes().all(|b| b.is_ascii_digit()),
        "webhook-timestamp must be integer seconds: {ts_text:?}"
    );
    let ts: i64 = ts_text.parse().unwrap();
    assert!(
        (ts - unix_now()).abs() <= 30,
        "webhook-timestamp {ts} is not close to now ({})",
        unix_now()
    );
    let sig = header(r, "webhook-signature");
    let versions: Vec<&str> = signing::signature_entries(sig).map(|(v, _)| v).collect();
    assert_eq!(
        versions,
        vec!["v1", "v1a"],
        "one v1 and one v1a entry: {sig}"
    );
    assert_eq!(header(r, "rev23-hook-id"), hook_id);
    assert_eq!(header(r, "rev23-event-type"), "customer.created");
    assert_eq!(header(r, "rev23-sequence"), "1");
    assert_eq!(header(r, "rev23-attempt"), "1");

    // Body: exactly the four fields, `data` spliced byte for byte.
    let fields: BTreeMap<String, &RawValue> =
        serde_json::from_slice(&r.body).expect("body is a JSON object");
    assert_eq!(
        fields.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["data", "id", "timestamp", "type"],
        "body: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(fields["data"].get(), data, "data must be byte-identical");
    let body = r.json();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["type"], "customer.created");
    let event = d.owner("GET", &format!("/v1/events/{event_id}"), None);
    assert_eq!(event.status, 200, "{}", event.text);
    assert_eq!(body["timestamp"], event.json["timestamp"]);
    let stamp = body["timestamp"].as_str().unwrap();
    assert!(
        stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.',
        "RFC 3339 UTC with milliseconds: {stamp}"
    );

    // Signatures, with the library's verifier.
    let pk = public_key(&d);
    assert_signed(r, &secret, &pk);
    let (_, other) = HmacSecret::generate();
    assert_eq!(
        verify_body(r, &r.body, Some(&other), None),
        Err(VerifyError::NoMatchingSignature),
        "another secret must not verify"
    );

    // The next event is sequence 2.
    post_customer(&d, "cus_02", json!({"first_name": "Bo"}));
    let got = wait_received(&rx, 2);
    assert_eq!(header(&got[1], "rev23-sequence"), "2");
    assert_signed(&got[1], &secret, &pk);
    assert_quiet(&rx, 2);
}

/// SPEC §5/§6: for a subscriber without `medical:customer` only `medical_conditions` may change;
/// every other value of `data` must arrive as posted (a hook of a non-owner is the usual case).
#[test]
fn data_is_unchanged_for_a_subscriber_without_medical_permission_except_the_medical_field() {
    let d = start(FAST);
    let rx = Receiver::ok();
    let (_, key) = d.user_with_key("zapier", &["subscribe:webhook", "read:customer"]);
    let hook = create_hook_as(
        &d,
        &key,
        json!({"target_url": rx.url("/u"), "event": "customer.created", "ordering": "strict"}),
    );
    let secret = hook["secret"].as_str().unwrap().to_string();
    // Nothing to redact, but an escape and a number beyond f64 precision.
    let plain = r#"{"id":"cus_1","note":"caf\u00e9","ref":12345678901234567890123,"n":1.50}"#;
    // Something to redact, beside the same number.
    let medical = r#"{"id":"cus_2","medical_conditions":["asthma"],"ref":12345678901234567890123}"#;
    for data in [plain, medical] {
        post_raw(
            &d,
            &format!(r#"{{"type":"customer.created","data":{data}}}"#),
        );
    }
    let got = wait_received(&rx, 2);
    let pk = public_key(&d);
    assert_signed(&got[0], &secret, &pk);
    assert_signed(&got[1], &secret, &pk);

    let redacted = got[1].json();
    assert!(
        redacted["data"].get("medical_conditions").is_none(),
        "{redacted}"
    );
    assert_eq!(
        redacted["data"]["medical_conditions_count"], 1,
        "{redacted}"
    );
    let body = String::from_utf8_lossy(&got[1].body);
    assert!(
        body.contains(r#""ref":12345678901234567890123"#),
        "redaction must not change other values (the integer went through f64): {body}"
    );
    let fields: BTreeMap<String, &RawValue> = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        fields["data"].get(),
        plain,
        "data without medical fields must be delivered unchanged"
    );
}

#[test]
fn a_500_is_retried_by_the_schedule_until_success() {
    let d = start(FAST);
    let rx = Receiver::start(|_, i| {
        if i < 2 {
            Answer::status(500).with_body("try later")
        } else {
            Answer::status(200)
        }
    });
    let (hook_id, secret) = owner_hook(&d, &rx.url("/in"), json!({}));
    let event_id = post_customer(&d, "cus_1", json!({"first_name": "Ann"}));
    let got = wait_received(&rx, 3);
    let pk = public_key(&d);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(attempt_of(r), i as u32 + 1, "{:?}", summary(&got));
        assert_eq!(
            header(r, "webhook-id"),
            event_id,
            "same webhook-id on retries"
        );
        assert_eq!(header(r, "rev23-sequence"), "1");
        assert_eq!(r.body, got[0].body, "the body is stable across retries");
        assert_signed(r, &secret, &pk);
    }
    // The schedule's waits (100 and 200 ms, ±10%) separate the attempts.
    assert!(gap(&got[0], &got[1]) >= Duration::from_millis(85));
    assert!(gap(&got[1], &got[2]) >= Duration::from_millis(170));

    let done = wait_deliveries(&d, &hook_id, "succeeded", 1, |_| true);
    let attempts = done[0]["attempts"].as_array().unwrap();
    let statuses: Vec<Value> = attempts.iter().map(|a| a["http_status"].clone()).collect();
    assert_eq!(statuses, vec![json!(500), json!(500), json!(200)]);
    assert_eq!(attempts[0]["response_body"], "try later");
    assert_eq!(done[0]["event_id"], event_id.as_str());
    let hook = wait_hook(&d, &hook_id, "caught up", |h| h["lag"] == 0);
    assert_eq!(hook["consecutive_failures"], 0);
    assert!(hook["last_success_at"].is_string(), "{hook}");
    assert!(hook["last_failure_at"].is_string(), "{hook}");
    assert_quiet(&rx, 3);
}

#[test]
fn a_timed_out_attempt_is_retried() {
    let d = start("retry_schedule_ms = [0, 100, 200, 300]\ntimeout_ms = 300");
    // The first answer comes long after the daemon's timeout.
    let rx = Receiver::start(|_, i| {
        let answer = Answer::status(200);
        if i == 0 {
            answer.with_delay(Duration::from_millis(1500))
        } else {
            answer
        }
    });
    let (hook_id, secret) = owner_hook(&d, &rx.url("/slow"), json!({}));
    let event_id = post_customer(&d, "cus_1", json!({}));
    let got = wait_received(&rx, 2);
    assert_eq!(attempt_of(&got[0]), 1);
    assert_eq!(attempt_of(&got[1]), 2);
    assert_eq!(header(&got[1], "webhook-id"), event_id);
    assert!(
        gap(&got[0], &got[1]) >= Duration::from_millis(250),
        "the retry comes after the 300 ms timeout"
    );
    assert_signed(&got[1], &secret, &public_key(&d));
    let done = wait_deliveries(&d, &hook_id, "succeeded", 1, |_| true);
    let attempts = done[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[0]["http_status"].is_null(), "{attempts:?}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{attempts:?}"
    );
    assert!(attempts[0]["latency_ms"].as_u64().unwrap() >= 250);
    assert_eq!(attempts[1]["http_status"], 200);
    assert_quiet(&rx, 2);
}

#[test]
fn retry_after_on_429_and_503_is_honoured() {
    let d = start(FAST);
    let rx = Receiver::start(|_, i| match i {
        0 => Answer::status(429).with_header("retry-after", "1"),
        2 => Answer::status(503).with_header("retry-after", "1"),
        _ => Answer::status(200),
    });
    let (hook_id, _) = owner_hook(&d, &rx.url("/in"), json!({}));
    post_customer(&d, "cus_1", json!({}));
    let got = wait_received(&rx, 2);
    assert_eq!(attempt_of(&got[1]), 2);
    assert!(
        gap(&got[0], &got[1]) >= Duration::from_millis(950),
        "Retry-After: 1 must delay the retry by 1 s although the schedule says 100 ms; got {:?}",
        gap(&got[0], &got[1])
    );
    wait_deliveries(&d, &hook_id, "succeeded", 1, |_| true);

    post_customer(&d, "cus_2", json!({}));
    let got = wait_received(&rx, 4);
    assert_eq!(header(&got[3], "rev23-sequence"), "2");
    assert_eq!(attempt_of(&got[3]), 2);
    assert!(
        gap(&got[2], &got[3]) >= Duration::from_millis(950),
        "503 with Retry-After: 1; got {:?}",
        gap(&got[2], &got[3])
    );
    let done = wait_deliveries(&d, &hook_id, "succeeded", 2, |_| true);
    assert_eq!(done[0]["attempts"][0]["http_status"], 429);
    assert_eq!(done[1]["attempts"][0]["http_status"], 503);
    assert_quiet(&rx, 4);
}

#[test]
fn redirects_are_failures_and_never_followed() {
    let d = start("retry_schedule_ms = [0, 100, 200]\ntimeout_ms = 500");
    let base: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
    let base_in = base.clone();
    // Sequence 1 gets a 302, sequence 2 a 307 (which would even keep the POST), both pointing
    // at another path of this receiver.
    let rx = Receiver::start(move |r, _| {
        if r.path != "/hook" {
            return Answer::status(200);
        }
        let location = format!("{}/elsewhere", base_in.get().map_or("", String::as_str));
        let status = if r.header("rev23-sequence") == Some("1") {
            302
        } else {
            307
        };
        Answer::status(status).with_header("location", &location)
    });
    base.set(rx.base_url.clone()).unwrap();
    let (hook_id, _) = owner_hook(&d, &rx.url("/hook"), json!({}));
    post_customer(&d, "cus_1", json!({}));
    post_customer(&d, "cus_2", json!({}));
    let failed = wait_deliveries(&d, &hook_id, "failed", 2, |_| true);
    for (delivery, status) in failed.iter().zip([302, 307]) {
        let attempts = delivery["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 3, "{delivery}");
        assert!(
            attempts.iter().all(|a| a["http_status"] == status),
            "{delivery}"
        );
    }
    assert_quiet(&rx, 6);
    let got = rx.received();
    assert!(
        got.iter().all(|r| r.path == "/hook"),
        "a redirect was followed: {:?}",
        summary(&got)
    );
}

#[test]
fn a_410_disables_the_hook_until_it_is_made_active_again() {
    let d = start(FAST);
    let rx = Receiver::start(|_, i| {
        if i == 0 {
            Answer::status(410)
        } else {
            Answer::status(200)
        }
    });
    let (hook_id, secret) = owner_hook(&d, &rx.url("/in"), json!({}));
    let first = post_customer(&d, "cus_1", json!({}));
    wait_received(&rx, 1);
    let hook = wait_hook(&d, &hook_id, "disabled", |h| h["state"] == "disabled");
    assert_eq!(hook["state_reason"], "gone", "{hook}");
    // While disabled nothing is delivered, and nothing is discarded.
    let second = post_customer(&d, "cus_2", json!({}));
    let hook = wait_hook(&d, &hook_id, "lag 2", |h| h["head_sequence"] == 2);
    assert_eq!(hook["lag"], 2, "{hook}");
    assert_eq!(hook["cursor"]["sequence"], 0, "{hook}");
    assert_quiet(&rx, 1);
    let pending = deliveries(&d, &hook_id, Some("pending"));
    assert_eq!(pending.len(), 2, "{pending:?}");
    assert_eq!(pending[0]["attempts"][0]["http_status"], 410, "{pending:?}");

    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{hook_id}"),
        Some(&json!({"state": "active"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["state"], "active");
    // Different entities go in parallel: order the two resumed deliveries by sequence.
    let mut resumed = wait_received(&rx, 3).split_off(1);
    resumed.sort_by_key(Received::sequence);
    let (r1, r2) = (&resumed[0], &resumed[1]);
    assert_eq!(header(r1, "webhook-id"), first);
    assert_eq!(header(r1, "rev23-sequence"), "1");
    assert_eq!(attempt_of(r1), 2, "the pending delivery's second attempt");
    assert_eq!(header(r2, "webhook-id"), second);
    assert_eq!(header(r2, "rev23-sequence"), "2");
    assert_eq!(attempt_of(r2), 1);
    assert_signed(r1, &secret, &public_key(&d));
    wait_hook(&d, &hook_id, "caught up", |h| {
        h["lag"] == 0 && h["cursor"]["sequence"] == 2
    });
    assert_quiet(&rx, 3);
}

#[test]
fn a_hook_failing_longer_than_disable_after_is_disabled() {
    let d = start(
        "retry_schedule_ms = [0, 150, 150, 150, 150, 150]\ntimeout_ms = 500\n\
         disable_after_ms = 300",
    );
    let rx = Receiver::start(|_, _| Answer::status(500));
    let (hook_id, _) = owner_hook(&d, &rx.url("/in"), json!({}));
    post_customer(&d, "cus_1", json!({}));
    let hook = wait_hook(&d, &hook_id, "disabled", |h| h["state"] == "disabled");
    assert_eq!(hook["state_reason"], "failing", "{hook}");
    std::thread::sleep(QUIET);
    let n = rx.count();
    assert!(
        (2..6).contains(&n),
        "disabled after ~300 ms of failing, before the schedule ran out: {n} attempts"
    );
    assert_quiet(&rx, n);
    // The delivery is kept, not failed.
    let pending = deliveries(&d, &hook_id, Some("pending"));
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert!(deliveries(&d, &hook_id, Some("failed")).is_empty());
}

#[test]
fn exhausted_retries_fail_the_delivery_and_the_lane_moves_on() {
    let d = start("retry_schedule_ms = [0, 100, 200]\ntimeout_ms = 500");
    let long_body = format!("boom:{}", "x".repeat(2000));
    let rx = Receiver::start(move |r, _| {
        if r.json()["data"]["fail"] == true {
            Answer::status(500).with_body(&long_body)
        } else {
            Answer::status(200)
        }
    });
    // Strict ordering: the second event waits until the first is final.
    let (hook_id, _) = owner_hook(&d, &rx.url("/in"), json!({"ordering": "strict"}));
    let bad = post_customer(&d, "cus_bad", json!({"fail": true}));
    let good = post_customer(&d, "cus_good", json!({"fail": false}));
    let got = wait_received(&rx, 4);
    let order: Vec<(&str, u32)> = got
        .iter()
        .map(|r| (header(r, "webhook-id"), attempt_of(r)))
        .collect();
    assert_eq!(
        order,
        vec![
            (bad.as_str(), 1),
            (bad.as_str(), 2),
            (bad.as_str(), 3),
            (good.as_str(), 1)
        ]
    );

    let failed = wait_deliveries(&d, &hook_id, "failed", 1, |_| true);
    let f = &failed[0];
    assert_eq!(f["sequence"], 1);
    assert_eq!(f["event_id"], bad.as_str());
    let attempts = f["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{f}");
    for a in attempts {
        assert_eq!(a["http_status"], 500, "{a}");
        assert!(a["at"].is_string(), "{a}");
        assert!(a["latency_ms"].is_u64(), "{a}");
        let prefix = a["response_body"].as_str().expect("response_body");
        assert!(prefix.starts_with("boom:xxx"), "{prefix}");
        assert_eq!(prefix.len(), 1024, "the first 1 KiB of the response");
    }
    let ok = wait_deliveries(&d, &hook_id, "succeeded", 1, |_| true);
    assert_eq!(ok[0]["sequence"], 2);
    let hook = wait_hook(&d, &hook_id, "cursor past both", |h| {
        h["cursor"]["sequence"] == 2
    });
    assert_eq!(hook["lag"], 0);
    assert_eq!(hook["state"], "active");
    assert_eq!(hook["consecutive_failures"], 0, "reset by the success");
    assert!(hook["last_success_at"].is_string() && hook["last_failure_at"].is_string());
    assert_quiet(&rx, 4);
}

#[test]
fn a_paused_hook_keeps_its_backlog_and_delivers_it_without_gaps_on_resume() {
    const N: u64 = 5;
    let d = start(FAST);
    let rx = Receiver::ok();
    let (hook_id, _) = owner_hook(&d, &rx.url("/in"), json!({}));
    let mut ids = vec![post_customer(&d, "cus_same", json!({"n": 0}))];
    wait_received(&rx, 1);
    wait_hook(&d, &hook_id, "first delivered", |h| {
        h["cursor"]["sequence"] == 1
    });

    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{hook_id}"),
        Some(&json!({"state": "paused"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["state"], "paused");
    for n in 1..=N {
        ids.push(post_customer(&d, "cus_same", json!({"n": n})));
    }
    let hook = wait_hook(&d, &hook_id, "lag N", |h| h["lag"] == N);
    assert_eq!(hook["state"], "paused");
    assert_eq!(hook["head_sequence"], N + 1);
    assert_eq!(hook["cursor"]["sequence"], 1);
    assert_quiet(&rx, 1);
    assert_eq!(deliveries(&d, &hook_id, Some("pending")).len() as u64, N);

    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{hook_id}"),
        Some(&json!({"state": "active"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let got = wait_received(&rx, N as usize + 1);
    // Same entity: in order; every sequence exactly once.
    let seqs: Vec<u64> = got.iter().map(Received::sequence).collect();
    assert_eq!(seqs, (1..=N + 1).collect::<Vec<_>>(), "{:?}", summary(&got));
    let delivered: Vec<&str> = got.iter().map(|r| header(r, "webhook-id")).collect();
    assert_eq!(
        delivered,
        ids.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let hook = wait_hook(&d, &hook_id, "caught up", |h| h["lag"] == 0);
    assert_eq!(hook["cursor"]["sequence"], N + 1);
    assert_quiet(&rx, N as usize + 1);
}

#[test]
fn a_rotated_secret_signs_beside_the_new_one_for_the_overlap_only() {
    const OVERLAP_MS: u64 = 1500;
    let d = start(&format!("{FAST}\nsecret_overlap_ms = {OVERLAP_MS}"));
    let rx = Receiver::ok();
    let (hook_id, old) = owner_hook(&d, &rx.url("/in"), json!({}));
    let pk = public_key(&d);
    post_customer(&d, "cus_1", json!({}));
    let got = wait_received(&rx, 1);
    assert_eq!(entries_of(&got[0], "v1").len(), 1);
    assert_signed(&got[0], &old, &pk);

    let r = d.owner("POST", &format!("/v1/hooks/{hook_id}/rotate-secret"), None);
    let rotated_at = Instant::now();
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.json["secret"].as_str().expect("new secret").to_string();
    assert!(new.starts_with("whsec_") && new != old);
    let expires = r.json["previous_secret_expires_at"]
        .as_str()
        .expect("previous_secret_expires_at");
    let expires =
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    let ahead_ms = (expires - time::OffsetDateTime::now_utc()).whole_milliseconds();
    assert!(
        (0..=OVERLAP_MS as i128 + 1000).contains(&ahead_ms),
        "expires {ahead_ms} ms from now"
    );

    // During the overlap: two v1 entries, one per secret, and the v1a entry.
    post_customer(&d, "cus_2", json!({}));
    let got = wait_received(&rx, 2);
    let r2 = &got[1];
    let id = header(r2, "webhook-id");
    let ts: i64 = header(r2, "webhook-timestamp").parse().unwrap();
    let mut v1: Vec<String> = entries_of(r2, "v1")
        .iter()
        .map(|e| format!("v1,{e}"))
        .collect();
    v1.sort();
    let mut expected = vec![
        HmacSecret::parse(&new).unwrap().sign(id, ts, &r2.body),
        HmacSecret::parse(&old).unwrap().sign(id, ts, &r2.body),
    ];
    expected.sort();
    assert_eq!(v1, expected, "one v1 entry per secret during the overlap");
    assert_eq!(entries_of(r2, "v1a").len(), 1);
    assert_signed(r2, &new, &pk);
    assert_signed(r2, &old, &pk);

    // After the overlap: the old secret no longer signs.
    let after = Duration::from_millis(OVERLAP_MS + 300);
    std::thread::sleep(after.saturating_sub(rotated_at.elapsed()));
    post_customer(&d, "cus_3", json!({}));
    let got = wait_received(&rx, 3);
    let r3 = &got[2];
    assert_eq!(
        entries_of(r3, "v1").len(),
        1,
        "{}",
        header(r3, "webhook-signature")
    );
    assert_signed(r3, &new, &pk);
    assert_eq!(
        verify_body(r3, &r3.body, Some(&old), None),
        Err(VerifyError::NoMatchingSignature),
        "the previous secret expired"
    );
    // The secret is shown on creation and rotation only.
    assert!(get_hook(&d, &hook_id).get("secret").is_none());
    assert_quiet(&rx, 3);
}

#[test]
fn hooks_api_create_validate_scope_list_patch_delete() {
    let d = start(FAST);
    let rx = Receiver::ok();

    // Signing keys need no auth.
    let keys = d.call("GET", "/v1/signing-keys", None, None);
    assert_eq!(keys.status, 200, "{}", keys.text);
    let key = &keys.json["data"][0];
    assert!(
        key["id"].is_string() && key["created_at"].is_string(),
        "{key}"
    );
    assert!(key.get("expires_at").is_some(), "{key}");
    VerifyingKey::from_whpk(key["public_key"].as_str().unwrap()).expect("a valid whpk_ key");

    // Create: Zapier's `event` form and the `events` form.
    let h1 = create_hook_as(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/one"), "event": "customer.created"}),
    );
    assert!(h1["id"].as_str().unwrap().starts_with("hook_"), "{h1}");
    assert_eq!(h1["events"], json!(["customer.created"]));
    assert_eq!(h1["target_url"], rx.url("/one"));
    assert_eq!(h1["state"], "active");
    assert_eq!(h1["ordering"], "entity");
    assert_eq!(h1["delivery"], "push");
    assert!(h1["owner_user_id"].is_string() && h1["created_at"].is_string());
    HmacSecret::parse(h1["secret"].as_str().unwrap()).expect("whsec_ secret");
    assert!(h1["secret"].as_str().unwrap().starts_with("whsec_"));
    let h2 = create_hook_as(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/two"), "events": ["lead.created", "customer.created"],
               "description": "two types"}),
    );
    let mut types: Vec<String> = serde_json::from_value(h2["events"].clone()).unwrap();
    types.sort();
    assert_eq!(types, vec!["customer.created", "lead.created"]);

    // Validation.
    for bad in ["not a url", "ftp://127.0.0.1/x", "http://", ""] {
        let r = d.owner(
            "POST",
            "/v1/hooks",
            Some(&json!({"target_url": bad, "event": "customer.created"})),
        );
        assert_eq!(r.status, 422, "target_url {bad:?}: {}", r.text);
        assert_eq!(r.code(), "validation_failed", "{}", r.text);
    }
    let r = d.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"target_url": rx.url("/x"), "event": "customer.exploded"})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "unknown_event_type");

    // Permissions.
    let (_, reader) = d.user_with_key("reader", &["read:customer"]);
    let r = d.call(
        "POST",
        "/v1/hooks",
        Some(&reader),
        Some(&json!({"target_url": rx.url("/r"), "event": "customer.created"})),
    );
    assert_eq!(r.status, 403, "no subscribe:webhook: {}", r.text);
    assert_eq!(r.code(), "forbidden");
    let (alice_id, alice) = d.user_with_key("alice", &["subscribe:webhook", "read:customer"]);
    let r = d.call(
        "POST",
        "/v1/hooks",
        Some(&alice),
        Some(&json!({"target_url": rx.url("/a"), "event": "lead.created"})),
    );
    assert_eq!(r.status, 403, "alice cannot read leads: {}", r.text);
    let ha = create_hook_as(
        &d,
        &alice,
        json!({"target_url": rx.url("/alice"), "event": "customer.created"}),
    );
    let ha_id = ha["id"].as_str().unwrap().to_string();
    assert_eq!(ha["owner_user_id"], alice_id.as_str());

    // Others cannot see alice's hook; she sees only hers; the owner sees all.
    let (_, bob) = d.user_with_key("bob", &["subscribe:webhook", "read:customer"]);
    for (method, path, body) in [
        ("GET", format!("/v1/hooks/{ha_id}"), None),
        (
            "PATCH",
            format!("/v1/hooks/{ha_id}"),
            Some(json!({"state": "paused"})),
        ),
        ("DELETE", format!("/v1/hooks/{ha_id}"), None),
        ("GET", format!("/v1/hooks/{ha_id}/deliveries"), None),
        ("POST", format!("/v1/hooks/{ha_id}/rotate-secret"), None),
    ] {
        let r = d.call(method, &path, Some(&bob), body.as_ref());
        assert_eq!(r.status, 404, "bob {method} {path}: {}", r.text);
        assert_eq!(r.code(), "not_found");
    }
    let ids = |key: &str, query: &str| -> Vec<String> {
        let r = d.call("GET", &format!("/v1/hooks{query}"), Some(key), None);
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                assert!(h.get("secret").is_none(), "lists never show secrets: {h}");
                h["id"].as_str().unwrap().to_string()
            })
            .collect()
    };
    assert!(ids(&bob, "").is_empty());
    assert_eq!(ids(&alice, ""), vec![ha_id.clone()]);
    let all = ids(&d.owner_key, "");
    for h in [&h1, &h2, &ha] {
        assert!(
            all.contains(&h["id"].as_str().unwrap().to_string()),
            "{all:?}"
        );
    }
    assert_eq!(
        ids(&d.owner_key, &format!("?user_id={alice_id}")),
        vec![ha_id.clone()]
    );

    // PATCH: target, description; an invalid state is refused.
    let r = d.call(
        "PATCH",
        &format!("/v1/hooks/{ha_id}"),
        Some(&alice),
        Some(&json!({"target_url": rx.url("/alice2"), "description": "moved"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["target_url"], rx.url("/alice2"));
    assert_eq!(r.json["description"], "moved");
    let r = d.call(
        "PATCH",
        &format!("/v1/hooks/{ha_id}"),
        Some(&alice),
        Some(&json!({"state": "disabled"})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
    let r = d.call(
        "PATCH",
        &format!("/v1/hooks/{ha_id}"),
        Some(&alice),
        Some(&json!({"events": ["lead.created"]})),
    );
    assert_eq!(r.status, 403, "alice cannot subscribe to leads: {}", r.text);

    // A delivery goes to the new target; the view shows the cursor and counters.
    let (event_id, offset) = post_raw(&d, r#"{"type":"customer.created","data":{"id":"cus_1"}}"#);
    let got = wait_received(&rx, 3);
    let mut paths: Vec<&str> = got.iter().map(|r| r.path.as_str()).collect();
    paths.sort();
    assert_eq!(paths, vec!["/alice2", "/one", "/two"]);
    let view = wait_hook(&d, &ha_id, "delivered", |h| {
        h["lag"] == 0 && h["cursor"]["sequence"] == 1
    });
    assert_eq!(view["cursor"]["offset"], offset, "{view}");
    assert_eq!(view["head_sequence"], 1);
    assert_eq!(view["consecutive_failures"], 0);
    assert!(view["last_success_at"].is_string(), "{view}");
    for field in ["last_failure_at", "next_attempt_at", "state_reason"] {
        assert!(view.get(field).is_some(), "missing {field}: {view}");
    }
    assert!(view.get("secret").is_none(), "{view}");
    // The view's cursor is in memory; the attempt log is written a few ms later, in a batch.
    let log = wait_deliveries(&d, &ha_id, "succeeded", 1, |_| true);
    assert_eq!(deliveries(&d, &ha_id, None).len(), 1, "{log:?}");
    assert_eq!(log[0]["event_id"], event_id.as_str());
    assert_eq!(deliveries(&d, &ha_id, None).len(), 1);

    // DELETE: 204, gone, and no more deliveries to it.
    let r = d.call("DELETE", &format!("/v1/hooks/{ha_id}"), Some(&alice), None);
    assert_eq!(r.status, 204, "{}", r.text);
    let r = d.call("GET", &format!("/v1/hooks/{ha_id}"), Some(&alice), None);
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(ids(&alice, "").is_empty());
    post_customer(&d, "cus_2", json!({}));
    let got = wait_received(&rx, 5);
    assert_quiet(&rx, 5);
    assert!(
        got.iter().all(|r| r.path != "/alice2" || r.sequence() == 1),
        "a deleted hook received a delivery: {:?}",
        summary(&got)
    );
}

// ---------------------------------------------------------------------------------------------
// Independent verification with the reference Python library.

const VERIFIER: &str = "tests/conformance/verify_deliveries.py";
const CAPTURE_PREFIX: &str = "rev23-delivery-";

fn python_verifier_available() -> bool {
    matches!(
        common::run_bounded(
            Command::new("python3").args(["-c", "import standardwebhooks, cryptography"]),
            Duration::from_secs(30),
        ),
        Some((true, _, _))
    )
}

fn run_verifier(dir: &Path) -> (bool, String, String) {
    common::run_bounded(
        Command::new("python3")
            .arg(VERIFIER)
            .arg(dir)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
        Duration::from_secs(60),
    )
    .expect("python3 runs")
}

/// One capture: the raw body, every header as received, the secret(s) and the public key.
fn capture(name: &str, r: &Received, secret: &str, previous: Option<&str>, pk: &str) -> Value {
    let headers: serde_json::Map<String, Value> = r
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    json!({
        "name": name,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&r.body),
        "body_text": String::from_utf8_lossy(&r.body),
        "headers": headers,
        "secret": secret,
        "previous_secret": previous,
        "public_key": pk,
    })
}

fn write_captures(dir: &Path, captures: &[Value]) {
    std::fs::create_dir_all(dir).expect("create the capture dir");
    // Stale captures of an earlier run would fail the 5-minute tolerance: remove ours only.
    for entry in std::fs::read_dir(dir)
        .expect("read the capture dir")
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(CAPTURE_PREFIX)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    for (i, c) in captures.iter().enumerate() {
        let path = dir.join(format!("{CAPTURE_PREFIX}{:02}.json", i + 1));
        std::fs::write(&path, serde_json::to_vec_pretty(c).unwrap()).expect("write a capture");
    }
}

#[test]
fn captured_deliveries_verify_with_the_reference_python_library() {
    if !python_verifier_available() {
        let message = "python3 with `standardwebhooks` and `cryptography` is not available \
                       (pip install -r tests/conformance/requirements.txt)";
        if std::env::var_os("CI").is_some() {
            panic!("CI is set, so the independent verification must run: {message}");
        }
        eprintln!("NOTICE: skipping the independent Standard Webhooks verification: {message}");
        return;
    }
    let d = start(FAST);
    // The first request fails, so one capture is a retry (attempt 2, new timestamp).
    let rx = Receiver::start(|_, i| {
        if i == 0 {
            Answer::status(500)
        } else {
            Answer::status(200)
        }
    });
    let hook = create_hook_as(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/capture"), "events": ["customer.created", "lead.created"],
               "ordering": "strict"}),
    );
    let hook_id = hook["id"].as_str().unwrap().to_string();
    let old = hook["secret"].as_str().unwrap().to_string();
    let pk = public_key(&d);
    let mut captures = Vec::new();

    post_customer(
        &d,
        "cus_1",
        json!({"first_name": "Ann", "email": "ann@example.com"}),
    );
    let got = wait_received(&rx, 2);
    assert_eq!(attempt_of(&got[1]), 2);
    assert_signed(&got[0], &old, &pk);
    assert_signed(&got[1], &old, &pk);
    captures.push(capture(
        "customer.created, attempt 1 (answered 500)",
        &got[0],
        &old,
        None,
        &pk,
    ));
    captures.push(capture(
        "customer.created, attempt 2",
        &got[1],
        &old,
        None,
        &pk,
    ));
    post_raw(
        &d,
        r#"{"type":"lead.created","data":{"id":"lead_1","name":"Zoë \"Z\" Ünal","note":"\u2603 snow","n":1.50}}"#,
    );
    let got = wait_received(&rx, 3);
    assert_signed(&got[2], &old, &pk);
    captures.push(capture(
        "lead.created, non-ASCII and escapes",
        &got[2],
        &old,
        None,
        &pk,
    ));

    let r = d.owner("POST", &format!("/v1/hooks/{hook_id}/rotate-secret"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let new = r.json["secret"].as_str().unwrap().to_string();
    for (i, entity) in ["cus_2", "cus_3"].iter().enumerate() {
        post_customer(
            &d,
            entity,
            json!({"tags": ["a", "b"], "nested": {"k": [1, 2, 3]}}),
        );
        let got = wait_received(&rx, 4 + i);
        let r = &got[3 + i];
        assert_eq!(
            entries_of(r, "v1").len(),
            2,
            "rotation overlap: two v1 entries"
        );
        assert_signed(r, &new, &pk);
        assert_signed(r, &old, &pk);
        captures.push(capture(
            &format!("customer.created during rotation #{}", i + 1),
            r,
            &new,
            Some(&old),
            &pk,
        ));
    }

    let (dir, _temp) = match std::env::var_os("REV23_CAPTURE_DIR") {
        Some(dir) => (std::path::PathBuf::from(dir), None),
        None => {
            let t = tempfile::tempdir().expect("temp dir");
            (t.path().to_path_buf(), Some(t))
        }
    };
    write_captures(&dir, &captures);
    let (ok, stdout, stderr) = run_verifier(&dir);
    println!("{stdout}{stderr}");
    assert!(
        ok,
        "independent verification failed for the captures in {}:\n{stdout}{stderr}",
        dir.display()
    );
    assert!(
        stdout.contains(&format!(
            "verified {} deliveries: v1 ok, v1a ok",
            captures.len()
        )),
        "{stdout}"
    );

    // The verifier is not vacuous: a tampered capture must make it fail.
    let bad_dir = tempfile::tempdir().expect("temp dir");
    let mut bad = captures[1].clone();
    let mut body = got_body(&bad);
    body[10] ^= 0x01;
    bad["body_b64"] = json!(base64::engine::general_purpose::STANDARD.encode(&body));
    write_captures(bad_dir.path(), &[captures[0].clone(), bad]);
    let (ok, stdout, stderr) = run_verifier(bad_dir.path());
    assert!(
        !ok,
        "the verifier accepted a tampered body:\n{stdout}{stderr}"
    );
    assert!(stderr.contains("FAIL"), "{stderr}");
}

fn got_body(capture: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(capture["body_b64"].as_str().unwrap())
        .unwrap()
}
