//! Event ingest and event reads over real HTTP against the real daemon binary (SPEC §1, §2).
//!
//! What this file proves:
//! - `POST /v1/events` accepts one object or a batch, answers 201 `{"data":[{"id","offset",
//!   "duplicate"}]}` in request order, with ascending gapless offsets that match the journal head,
//!   and assigns `evt_` + ULID ids when the client sends none.
//! - Re-posting an existing id is idempotent (200, original offset, `duplicate: true`, nothing
//!   appended, the stored data unchanged), also in mixed batches and under concurrent posts.
//! - A batch is atomic: one bad event rejects all of it and appends nothing.
//! - Every ingest error of SPEC §1 has the right status and code, and every error body is exactly
//!   `{"error":{"code","message"}}`: 400 `invalid_json`, 422 `validation_failed` /
//!   `unknown_event_type` (internal types included), 413 `payload_too_large` (bytes and batch
//!   size, declared and chunked), 415 `unsupported_media_type`, 404 `not_found`, 405.
//! - `GET /v1/events` pages by `after` / `type` / `limit` / `cursor` (ending with a null cursor)
//!   and never shows internal events; `GET /v1/events/{id}` returns
//!   `{"id","type","offset","timestamp","data","assigned_user_id"}` with `data` byte-identical to
//!   what was posted and `timestamp` in RFC 3339 UTC with milliseconds, honouring `occurred_at`.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Daemon, Reply};
use serde_json::{json, Value};

/// Crockford base32, the ULID alphabet.
const ULID_ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
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

fn post_text(d: &Daemon, key: &str, body: &str) -> Reply {
    d.raw("POST", "/v1/events", &[("x-api-key", key)], Some(body))
}

fn post(d: &Daemon, body: &Value) -> Reply {
    post_text(d, &d.owner_key, &body.to_string())
}

fn event(kind: &str, entity: &str) -> Value {
    json!({"type": kind, "data": {"id": entity}})
}

fn event_with_id(id: &str, kind: &str, entity: &str) -> Value {
    json!({"id": id, "type": kind, "data": {"id": entity}})
}

/// The journal head as `/readyz` reports it.
fn journal_head(d: &Daemon) -> u64 {
    let r = d.call("GET", "/readyz", None, None);
    assert_eq!(r.status, 200, "readyz: {}", r.text);
    r.json["journal_head"]
        .as_u64()
        .unwrap_or_else(|| panic!("readyz has no journal_head: {}", r.text))
}

/// The `data` array of an ingest answer.
#[track_caller]
fn acks(r: &Reply) -> Vec<Value> {
    let top = r.json.as_object().expect("ingest answer is an object");
    assert!(top.contains_key("data"), "ingest answer: {}", r.text);
    r.json["data"]
        .as_array()
        .unwrap_or_else(|| panic!("ingest answer data is not an array: {}", r.text))
        .clone()
}

/// Checks one acknowledgement's shape and returns (id, offset, duplicate).
#[track_caller]
fn ack_parts(a: &Value) -> (String, u64, bool) {
    let id = a["id"].as_str().unwrap_or_else(|| panic!("ack id: {a}"));
    let offset = a["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("ack offset: {a}"));
    let duplicate = a["duplicate"]
        .as_bool()
        .unwrap_or_else(|| panic!("ack duplicate: {a}"));
    assert!(offset >= 1, "offsets start at 1: {a}");
    (id.to_string(), offset, duplicate)
}

#[track_caller]
fn assert_daemon_event_id(id: &str) {
    let ulid = id
        .strip_prefix("evt_")
        .unwrap_or_else(|| panic!("assigned id {id:?} lacks the evt_ prefix"));
    assert_eq!(ulid.len(), 26, "ULID part of {id:?} has 26 characters");
    assert!(
        ulid.chars().all(|c| ULID_ALPHABET.contains(c)),
        "ULID part of {id:?} is Crockford base32"
    );
}

/// Follows `GET /v1/events?<query>` page by page until `next_cursor` is null (bounded).
/// Returns every item and the number of pages.
fn list_all(d: &Daemon, key: &str, query: &str) -> (Vec<Value>, usize) {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 1..=MAX_PAGES {
        let mut path = format!("/v1/events?{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = d.call("GET", &path, Some(key), None);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text);
        let data = r.json["data"]
            .as_array()
            .unwrap_or_else(|| panic!("list data: {}", r.text));
        items.extend(data.iter().cloned());
        match &r.json["next_cursor"] {
            Value::Null => return (items, page),
            Value::String(c) => {
                assert!(!c.is_empty(), "next_cursor is a non-empty string");
                cursor = Some(c.clone());
            }
            other => panic!("next_cursor must be a string or null, got {other}"),
        }
    }
    panic!("listing {query:?} did not end within {MAX_PAGES} pages");
}

fn ids_of(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|e| e["id"].as_str().expect("event id").to_string())
        .collect()
}

/// RFC 3339 UTC with exactly three fractional digits: `2026-12-04T09:20:51.123Z`.
#[track_caller]
fn assert_ms_timestamp(ts: &str) {
    let b = ts.as_bytes();
    let shaped = b.len() == 24
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            23 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shaped, "timestamp {ts:?} is not YYYY-MM-DDTHH:MM:SS.mmmZ");
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("timestamp {ts:?} does not parse as RFC 3339: {e}"));
}

/// Sends raw bytes on a fresh connection and reads one response (bounded in time).
/// Returns the status code and the whole response text.
fn raw_exchange(d: &Daemon, request: &[u8]) -> (u16, String) {
    let addr = d.base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connect to the daemon");
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The server may answer (and close) before it read everything; keep what it said.
    let _ = stream.write_all(request);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    while Instant::now() < deadline && received.len() < 1 << 20 {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                received.extend_from_slice(&buf[..n]);
                if response_complete(&received) {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no HTTP response received: {text:?}"));
    (status, text)
}

/// A head plus a body of its declared content-length has arrived.
fn response_complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some(head_end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..head_end].to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match len {
        Some(len) => bytes.len() >= head_end + 4 + len,
        None => false,
    }
}

/// The JSON body of a raw response.
fn raw_body_json(text: &str) -> Value {
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or(Value::Null)
}

#[test]
fn single_event_gets_an_evt_id_and_the_next_offset() {
    let d = common::start();
    let head0 = journal_head(&d);

    let r = post(&d, &event("customer.created", "cus_1"));
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json"),
        "content-type of the ack"
    );
    let a = acks(&r);
    assert_eq!(a.len(), 1, "{}", r.text);
    let (id1, off1, dup1) = ack_parts(&a[0]);
    assert_daemon_event_id(&id1);
    assert_eq!(off1, head0 + 1, "the event is the next journal entry");
    assert!(!dup1);
    assert_eq!(journal_head(&d), off1, "acknowledged means committed");

    // A client-chosen id is kept as is.
    let r = post(
        &d,
        &event_with_id("ext-1:a.b_C", "customer.updated", "cus_1"),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let (id2, off2, dup2) = ack_parts(&acks(&r)[0]);
    assert_eq!(id2, "ext-1:a.b_C");
    assert_eq!(off2, off1 + 1, "gapless");
    assert!(!dup2);

    // Another assigned id is a different one.
    let r = post(&d, &event("lead.created", "lead_9"));
    assert_eq!(r.status, 201, "{}", r.text);
    let (id3, off3, _) = ack_parts(&acks(&r)[0]);
    assert_daemon_event_id(&id3);
    assert_ne!(id3, id1);
    assert_eq!(off3, off2 + 1);

    // Each is readable under the id the ack named.
    for (id, off) in [(&id1, off1), (&id2, off2), (&id3, off3)] {
        let g = d.owner("GET", &format!("/v1/events/{id}"), None);
        assert_eq!(g.status, 200, "{}", g.text);
        assert_eq!(g.json["id"], id.as_str());
        assert_eq!(g.json["offset"], off);
    }
}

#[test]
fn batch_offsets_are_ascending_gapless_and_in_request_order() {
    let d = common::start();
    let head0 = journal_head(&d);
    let batch = json!([
        event_with_id("b-1", "customer.created", "cus_1"),
        event("service.created", "svc_1"),
        event_with_id("b-3", "service_session.started", "ses_1"),
        event("release_form.generated", "rf_1"),
        event_with_id("b-5", "user.created", "u_1"),
    ]);
    let r = post(&d, &batch);
    assert_eq!(r.status, 201, "{}", r.text);
    let a = acks(&r);
    assert_eq!(a.len(), 5, "{}", r.text);
    let parts: Vec<_> = a.iter().map(ack_parts).collect();
    for (i, (id, offset, dup)) in parts.iter().enumerate() {
        assert_eq!(
            *offset,
            head0 + 1 + i as u64,
            "offset of item {i}: {}",
            r.text
        );
        assert!(!dup, "item {i} is new");
        match i {
            0 => assert_eq!(id, "b-1"),
            2 => assert_eq!(id, "b-3"),
            4 => assert_eq!(id, "b-5"),
            _ => assert_daemon_event_id(id),
        }
    }
    assert_eq!(journal_head(&d), head0 + 5);

    // The next batch continues right after; a one-element array is a batch too.
    let r = post(
        &d,
        &json!([event("lead.created", "l1"), event("lead.created", "l2")]),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let offs: Vec<u64> = acks(&r).iter().map(|a| ack_parts(a).1).collect();
    assert_eq!(offs, vec![head0 + 6, head0 + 7]);
    let r = post(&d, &json!([event("lead.created", "l3")]));
    assert_eq!(r.status, 201, "{}", r.text);
    let a = acks(&r);
    assert_eq!(a.len(), 1);
    assert_eq!(ack_parts(&a[0]).1, head0 + 8);

    // The journal lists them in that order with those offsets and types.
    let (items, _) = list_all(&d, &d.owner_key, &format!("after={head0}"));
    let offsets: Vec<u64> = items
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (head0 + 1..=head0 + 8).collect::<Vec<_>>());
    assert_eq!(items[0]["id"], "b-1");
    assert_eq!(items[1]["type"], "service.created");
    assert_eq!(items[1]["id"], parts[1].0.as_str());
    assert_eq!(items[3]["type"], "release_form.generated");
    assert_eq!(items[4]["type"], "user.created");
}

#[test]
fn reposting_an_existing_id_is_idempotent() {
    let d = common::start();
    let first = json!({"id": "evt-idem-1", "type": "customer.created",
        "data": {"id": "cus_1", "name": "first"}});
    let r = post(&d, &first);
    assert_eq!(r.status, 201, "{}", r.text);
    let (_, original, dup) = ack_parts(&acks(&r)[0]);
    assert!(!dup);
    let head1 = journal_head(&d);

    // Same id, different content: nothing appended, the original offset.
    let again = json!({"id": "evt-idem-1", "type": "customer.updated",
        "data": {"id": "cus_1", "name": "second"}});
    for body in [again.clone(), json!([again.clone()]), first.clone()] {
        let r = post(&d, &body);
        assert_eq!(r.status, 200, "a pure duplicate answers 200: {}", r.text);
        let a = acks(&r);
        assert_eq!(a.len(), 1, "{}", r.text);
        assert_eq!(
            ack_parts(&a[0]),
            ("evt-idem-1".to_string(), original, true),
            "{}",
            r.text
        );
        assert_eq!(journal_head(&d), head1, "a duplicate appends nothing");
    }

    // The stored event is still the first one, and it is listed once.
    let g = d.owner("GET", "/v1/events/evt-idem-1", None);
    assert_eq!(g.status, 200, "{}", g.text);
    assert_eq!(g.json["type"], "customer.created");
    assert_eq!(g.json["data"]["name"], "first");
    let (items, _) = list_all(&d, &d.owner_key, "");
    let count = ids_of(&items)
        .iter()
        .filter(|id| *id == "evt-idem-1")
        .count();
    assert_eq!(count, 1, "listed once");
}

#[test]
fn batch_mixing_new_and_existing_ids() {
    let d = common::start();
    let r = post(&d, &event_with_id("mix-a", "customer.created", "c_a"));
    assert_eq!(r.status, 201, "{}", r.text);
    let oa = ack_parts(&acks(&r)[0]).1;
    let r = post(&d, &event_with_id("mix-b", "customer.created", "c_b"));
    assert_eq!(r.status, 201, "{}", r.text);
    let ob = ack_parts(&acks(&r)[0]).1;
    let head1 = journal_head(&d);

    let r = post(
        &d,
        &json!([
            event_with_id("mix-a", "customer.created", "c_a"),
            event_with_id("mix-c", "customer.created", "c_c"),
            event_with_id("mix-b", "customer.created", "c_b"),
            event_with_id("mix-d", "customer.created", "c_d"),
        ]),
    );
    assert_eq!(r.status, 201, "something new was appended: {}", r.text);
    let parts: Vec<_> = acks(&r).iter().map(ack_parts).collect();
    assert_eq!(
        parts,
        vec![
            ("mix-a".to_string(), oa, true),
            ("mix-c".to_string(), head1 + 1, false),
            ("mix-b".to_string(), ob, true),
            ("mix-d".to_string(), head1 + 2, false),
        ],
        "{}",
        r.text
    );
    assert_eq!(
        journal_head(&d),
        head1 + 2,
        "only the new ones are appended"
    );

    let (items, _) = list_all(&d, &d.owner_key, "");
    let ids = ids_of(&items);
    for id in ["mix-a", "mix-b", "mix-c", "mix-d"] {
        assert_eq!(
            ids.iter().filter(|i| *i == id).count(),
            1,
            "{id} listed once"
        );
    }
}

#[test]
fn concurrent_posts_of_one_id_append_it_once() {
    let d = common::start();
    let head0 = journal_head(&d);
    let body = event_with_id("evt-race-1", "lead.created", "lead_1").to_string();
    // `Daemon` is not Sync (it holds a stdout receiver): the threads get the URL and key.
    let url = d.url("/v1/events");
    let key = d.owner_key.clone();
    let replies: Vec<(u16, Value)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let request = ureq::http::Request::builder()
                        .method("POST")
                        .uri(&url)
                        .header("x-api-key", &key)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .expect("request");
                    let mut response = common::agent().run(request).expect("HTTP request");
                    let status = response.status().as_u16();
                    let text = response.body_mut().read_to_string().unwrap_or_default();
                    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut new = 0;
    let mut offsets = HashSet::new();
    for (status, json) in &replies {
        let (id, offset, dup) = ack_parts(&json["data"][0]);
        assert_eq!(id, "evt-race-1");
        offsets.insert(offset);
        if dup {
            assert_eq!(*status, 200, "{json}");
        } else {
            assert_eq!(*status, 201, "{json}");
            new += 1;
        }
    }
    assert_eq!(new, 1, "exactly one post appended the event");
    assert_eq!(offsets.len(), 1, "all answers name the same offset");
    assert_eq!(journal_head(&d), head0 + 1);
}

#[test]
fn one_invalid_event_rejects_the_whole_batch() {
    let d = common::start();
    let head0 = journal_head(&d);
    let good1 = event_with_id("atomic-1", "customer.created", "c1");
    let good2 = event_with_id("atomic-2", "customer.created", "c2");

    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "data without id, last",
            json!([good1, good2, {"type": "customer.created", "data": {"name": "x"}}]),
            422,
            "validation_failed",
        ),
        (
            "data without id, first",
            json!([{"type": "customer.created", "data": {}}, good1, good2]),
            422,
            "validation_failed",
        ),
        (
            "unknown type in the middle",
            json!([good1, {"type": "customer.deleted", "data": {"id": "c"}}, good2]),
            422,
            "unknown_event_type",
        ),
        (
            "a non-object item",
            json!([good1, good2, 5]),
            422,
            "validation_failed",
        ),
        (
            "bad occurred_at",
            json!([good1, {"type": "lead.created", "data": {"id": "l"}, "occurred_at": "soon"}]),
            422,
            "validation_failed",
        ),
    ];
    for (label, body, status, code) in cases {
        let r = post(&d, &body);
        assert_eq!(r.status, status, "{label}: {}", r.text);
        assert_error(&r, status, code);
        assert_eq!(journal_head(&d), head0, "{label}: nothing appended");
    }
    for id in ["atomic-1", "atomic-2"] {
        assert_error(
            &d.owner("GET", &format!("/v1/events/{id}"), None),
            404,
            "not_found",
        );
    }
    let (items, _) = list_all(&d, &d.owner_key, "");
    assert!(items.is_empty(), "no public event was appended: {items:?}");

    // The rejected batches registered none of their ids: posting them now creates them.
    let r = post(&d, &json!([good1, good2]));
    assert_eq!(r.status, 201, "{}", r.text);
    let parts: Vec<_> = acks(&r).iter().map(ack_parts).collect();
    assert_eq!(parts[0], ("atomic-1".to_string(), head0 + 1, false));
    assert_eq!(parts[1], ("atomic-2".to_string(), head0 + 2, false));
}

#[test]
fn malformed_json_is_400_invalid_json() {
    let d = common::start();
    let head0 = journal_head(&d);
    let bodies = [
        r#"{"type": "customer.created", "data": {"id": "c"}"#,
        r#"{type: "customer.created", data: {id: "c"}}"#,
        r#"[{"type": "customer.created", "data": {"id": "c"}},]"#,
        r#"{"type": "customer.created", "data": {"id": "c"}} trailing"#,
        "not json at all",
        "",
    ];
    for body in bodies {
        let r = post_text(&d, &d.owner_key, body);
        assert_eq!(r.status, 400, "body {body:?}: {}", r.text);
        assert_error(&r, 400, "invalid_json");
    }
    assert_eq!(journal_head(&d), head0, "nothing appended");
}

#[test]
fn shape_errors_are_422_validation_failed() {
    let d = common::start();
    let head0 = journal_head(&d);
    let ok = event("customer.created", "c1");
    let cases: Vec<(&str, String)> = vec![
        (
            "missing data",
            json!({"type": "customer.created"}).to_string(),
        ),
        ("missing type", json!({"data": {"id": "c"}}).to_string()),
        (
            "type not a string",
            json!({"type": 7, "data": {"id": "c"}}).to_string(),
        ),
        (
            "data a string",
            json!({"type": "customer.created", "data": "c1"}).to_string(),
        ),
        (
            "data a number",
            json!({"type": "customer.created", "data": 5}).to_string(),
        ),
        (
            "data null",
            json!({"type": "customer.created", "data": null}).to_string(),
        ),
        (
            "data an empty array",
            json!({"type": "customer.created", "data": []}).to_string(),
        ),
        (
            "data an array holding an id",
            json!({"type": "customer.created", "data": ["cus_1"]}).to_string(),
        ),
        (
            "data without id",
            json!({"type": "customer.created", "data": {"name": "x"}}).to_string(),
        ),
        (
            "data.id null",
            json!({"type": "customer.created", "data": {"id": null}}).to_string(),
        ),
        (
            "data.id boolean",
            json!({"type": "customer.created", "data": {"id": true}}).to_string(),
        ),
        (
            "data.id empty",
            json!({"type": "customer.created", "data": {"id": ""}}).to_string(),
        ),
        (
            "data.id an object",
            json!({"type": "customer.created", "data": {"id": {"a": 1}}}).to_string(),
        ),
        (
            "occurred_at words",
            json!({"type": "lead.created", "data": {"id": "l"}, "occurred_at": "yesterday"})
                .to_string(),
        ),
        (
            "occurred_at a date only",
            json!({"type": "lead.created", "data": {"id": "l"}, "occurred_at": "2026-12-04"})
                .to_string(),
        ),
        (
            "occurred_at without offset",
            json!({"type": "lead.created", "data": {"id": "l"},
                "occurred_at": "2026-12-04T09:20:51"})
            .to_string(),
        ),
        (
            "occurred_at month 13",
            json!({"type": "lead.created", "data": {"id": "l"},
                "occurred_at": "2026-13-04T09:20:51Z"})
            .to_string(),
        ),
        (
            "occurred_at a number",
            json!({"type": "lead.created", "data": {"id": "l"}, "occurred_at": 1796376051})
                .to_string(),
        ),
        (
            "unknown top-level field",
            json!({"type": "lead.created", "data": {"id": "l"}, "colour": "red"}).to_string(),
        ),
        (
            "event id a number",
            json!({"id": 42, "type": "lead.created", "data": {"id": "l"}}).to_string(),
        ),
        (
            "event id with a space",
            json!({"id": "has space", "type": "lead.created", "data": {"id": "l"}}).to_string(),
        ),
        (
            "event id empty",
            json!({"id": "", "type": "lead.created", "data": {"id": "l"}}).to_string(),
        ),
        (
            "assigned_user_id empty",
            json!({"type": "lead.created", "data": {"id": "l"}, "assigned_user_id": ""})
                .to_string(),
        ),
        (
            "duplicate id within a batch",
            json!([
                event_with_id("dup-1", "customer.created", "c1"),
                ok,
                event_with_id("dup-1", "customer.updated", "c1"),
            ])
            .to_string(),
        ),
        ("empty batch", "[]".to_string()),
        ("a bare string", "\"hello\"".to_string()),
        ("a bare number", "42".to_string()),
        ("null", "null".to_string()),
        ("true", "true".to_string()),
    ];
    // Collect every mismatch, so one run names all of them.
    let mut wrong = Vec::new();
    for (label, body) in &cases {
        let r = post_text(&d, &d.owner_key, body);
        let shaped = r.json["error"]["code"].is_string() && r.json["error"]["message"].is_string();
        if r.status != 422 || r.code() != "validation_failed" || !shaped {
            wrong.push(format!("{label}: {body} -> {} {}", r.status, r.text));
        } else {
            assert_error(&r, 422, "validation_failed");
        }
    }
    assert!(
        wrong.is_empty(),
        "expected 422 validation_failed for:\n{}",
        wrong.join("\n")
    );
    assert_eq!(journal_head(&d), head0, "nothing appended");
}

#[test]
fn unknown_and_internal_event_types_are_422_unknown_event_type() {
    let d = common::start();
    let head0 = journal_head(&d);
    let injected_user = json!({
        "id": "usr_injected", "name": "Mallory", "email": null, "owner": true,
        "permissions": ["admin:webhook"], "active": true,
        "created_at_ms": 0, "updated_at_ms": 0,
    });
    let bodies = vec![
        json!({"type": "customer.deleted", "data": {"id": "c"}}),
        json!({"type": "Customer.Created", "data": {"id": "c"}}),
        json!({"type": "customer.created ", "data": {"id": "c"}}),
        json!({"type": "", "data": {"id": "c"}}),
        json!({"type": "internal.user_upserted", "data": injected_user}),
        json!({"type": "internal.key_created", "data": {"id": "key_x"}}),
        json!({"type": "internal.key_revoked", "data": {"id": "key_x"}}),
    ];
    for body in &bodies {
        let r = post(&d, body);
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_error(&r, 422, "unknown_event_type");
    }
    assert_eq!(journal_head(&d), head0, "nothing appended");
    // The internal type was not smuggled into the registry.
    assert_error(
        &d.owner("GET", "/v1/users/usr_injected", None),
        404,
        "not_found",
    );
    // Filtering by an unknown or internal type is refused the same way.
    for t in ["customer.deleted", "internal.user_upserted"] {
        assert_error(
            &d.owner("GET", &format!("/v1/events?type={t}"), None),
            422,
            "unknown_event_type",
        );
    }
    // The journal holds internal entries (the owner user and key), but reads never show them.
    assert!(head0 >= 1, "bootstrap journaled the owner");
    let (items, _) = list_all(&d, &d.owner_key, "");
    assert!(items.is_empty(), "no public events yet: {items:?}");
}

#[test]
fn bodies_and_batches_over_the_limits_are_413() {
    let d = common::start_with("[limits]\nmax_body_bytes = 4096\nmax_batch_events = 3");
    let head0 = journal_head(&d);
    let sized = |len: usize, id: &str| -> String {
        let prefix =
            format!(r#"{{"id":"{id}","type":"customer.created","data":{{"id":"c","pad":""#);
        let suffix = r#""}}"#;
        let pad = len - prefix.len() - suffix.len();
        let body = format!("{prefix}{}{suffix}", "x".repeat(pad));
        assert_eq!(body.len(), len);
        body
    };

    // Exactly the limit is accepted.
    let r = post_text(&d, &d.owner_key, &sized(4096, "at-limit"));
    assert_eq!(
        r.status, 201,
        "a body of exactly max_body_bytes: {}",
        r.text
    );
    let head1 = journal_head(&d);
    assert_eq!(head1, head0 + 1);

    // One byte over, and far over, are refused.
    for len in [4097, 64 * 1024] {
        let r = post_text(&d, &d.owner_key, &sized(len, "over-limit"));
        assert_eq!(r.status, 413, "{len} bytes: {}", r.text);
        assert_error(&r, 413, "payload_too_large");
    }

    // Without a declared length (chunked), the limit holds too.
    let body = sized(6000, "chunked-over");
    let mut request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        d.owner_key
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw_exchange(&d, &request);
    assert_eq!(status, 413, "chunked body over the limit: {text}");
    assert_eq!(
        raw_body_json(&text)["error"]["code"],
        "payload_too_large",
        "{text}"
    );

    // A batch of more than max_batch_events is refused, even though its bytes fit.
    let four: Vec<Value> = (0..4)
        .map(|i| event_with_id(&format!("b4-{i}"), "lead.created", "l"))
        .collect();
    let r = post(&d, &json!(four));
    assert_eq!(r.status, 413, "4 events over a limit of 3: {}", r.text);
    assert_error(&r, 413, "payload_too_large");
    assert_eq!(
        journal_head(&d),
        head1,
        "nothing appended by refused requests"
    );
    assert_error(&d.owner("GET", "/v1/events/b4-0", None), 404, "not_found");

    // A batch of exactly max_batch_events is fine.
    let r = post(&d, &json!(four[..3].to_vec()));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(acks(&r).len(), 3);
    assert_eq!(journal_head(&d), head1 + 3);
}

#[test]
fn non_json_media_types_are_415() {
    let d = common::start();
    let head0 = journal_head(&d);
    let body = event("customer.created", "c1").to_string();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "text/json",
    ] {
        let r = d.raw(
            "POST",
            "/v1/events",
            &[("x-api-key", &d.owner_key), ("content-type", ct)],
            Some(&body),
        );
        assert_eq!(r.status, 415, "content-type {ct}: {}", r.text);
        assert_error(&r, 415, "unsupported_media_type");
    }
    // No content-type at all.
    let request = format!(
        "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Api-Key: {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        d.owner_key,
        body.len()
    );
    let (status, text) = raw_exchange(&d, request.as_bytes());
    assert_eq!(status, 415, "missing content-type: {text}");
    assert_eq!(
        raw_body_json(&text)["error"]["code"],
        "unsupported_media_type"
    );
    assert_eq!(journal_head(&d), head0, "nothing appended");

    // Parameters and case do not matter.
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let r = d.raw(
            "POST",
            "/v1/events",
            &[("x-api-key", &d.owner_key), ("content-type", ct)],
            Some(&body),
        );
        assert!(
            r.status == 201 || r.status == 200,
            "content-type {ct}: {} {}",
            r.status,
            r.text
        );
    }
}

#[test]
fn unknown_paths_and_event_ids_are_404() {
    let d = common::start();
    for path in [
        "/v1/nope",
        "/nope",
        "/v1",
        "/v1/events/evt_01ARZ3NDEKTSV4RRFFQ69G5FAV/extra",
        "/v2/events",
    ] {
        let r = d.owner("GET", path, None);
        assert_error(&r, 404, "not_found");
    }
    for id in ["evt_01ARZ3NDEKTSV4RRFFQ69G5FAV", "never-posted"] {
        let r = d.owner("GET", &format!("/v1/events/{id}"), None);
        assert_error(&r, 404, "not_found");
    }
}

#[test]
fn wrong_methods_are_405() {
    let d = common::start();
    for (method, path) in [
        ("DELETE", "/v1/events"),
        ("PUT", "/v1/events"),
        ("PATCH", "/v1/events"),
        ("POST", "/v1/events/some-id"),
        ("DELETE", "/v1/events/some-id"),
    ] {
        let r = d.owner(method, path, None);
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
        assert_error_shape(&r);
    }
}

#[test]
fn method_not_allowed_names_the_allowed_methods() {
    // RFC 9110 §15.5.6: a 405 response MUST carry an Allow header.
    let d = common::start();
    let r = d.owner("DELETE", "/v1/events", None);
    assert_eq!(r.status, 405, "{}", r.text);
    let allow = r
        .header("allow")
        .unwrap_or_else(|| panic!("405 without an Allow header: {:?}", r.headers))
        .to_ascii_uppercase();
    let methods: Vec<&str> = allow.split(',').map(str::trim).collect();
    assert!(
        methods.contains(&"GET") && methods.contains(&"POST"),
        "Allow for /v1/events: {allow}"
    );
}

#[test]
fn listing_pages_by_after_type_limit_and_cursor() {
    let d = common::start();
    let (_, ingest_key) = d.user_with_key("pusher", &["ingest:event"]);
    let kinds = [
        "customer.created",
        "lead.created",
        "customer.created",
        "lead.created",
        "customer.updated",
        "lead.created",
        "customer.created",
    ];
    let mut posted = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let id = format!("list-{i}");
        let r = post_text(
            &d,
            &ingest_key,
            &event_with_id(&id, kind, &format!("ent_{i}")).to_string(),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        posted.push((id, ack_parts(&acks(&r)[0]).1, *kind));
    }
    let all_ids: Vec<String> = posted.iter().map(|p| p.0.clone()).collect();

    // Default limit: everything in one page, ascending, cursor null.
    let r = d.owner("GET", "/v1/events", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(ids_of(r.json["data"].as_array().unwrap()), all_ids);
    assert!(r.json["next_cursor"].is_null(), "{}", r.text);

    // Pages of 3: 3 + 3 + 1, cursor continues, null at the end.
    let r = d.owner("GET", "/v1/events?limit=3", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"].as_array().unwrap().len(), 3);
    assert!(
        r.json["next_cursor"].is_string(),
        "more to come: {}",
        r.text
    );
    let (items, pages) = list_all(&d, &d.owner_key, "limit=3");
    assert_eq!(ids_of(&items), all_ids);
    assert_eq!(pages, 3);
    let offsets: Vec<u64> = items
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "ascending: {offsets:?}"
    );
    for (item, (id, offset, kind)) in items.iter().zip(&posted) {
        assert_eq!(item["id"], id.as_str());
        assert_eq!(item["offset"], *offset);
        assert_eq!(item["type"], *kind);
    }

    // after=<offset> starts strictly after it.
    let third = posted[2].1;
    let (items, _) = list_all(&d, &d.owner_key, &format!("after={third}"));
    assert_eq!(ids_of(&items), all_ids[3..].to_vec());
    let (items, _) = list_all(&d, &d.owner_key, &format!("after={third}&limit=1"));
    assert_eq!(ids_of(&items), all_ids[3..].to_vec());
    let (items, _) = list_all(&d, &d.owner_key, &format!("after={}", posted[6].1));
    assert!(items.is_empty());

    // type= filters, also across pages and together with after=.
    let leads: Vec<String> = posted
        .iter()
        .filter(|p| p.2 == "lead.created")
        .map(|p| p.0.clone())
        .collect();
    let (items, _) = list_all(&d, &d.owner_key, "type=lead.created&limit=2");
    assert_eq!(ids_of(&items), leads);
    let (items, _) = list_all(
        &d,
        &d.owner_key,
        &format!("type=lead.created&after={}", posted[1].1),
    );
    assert_eq!(ids_of(&items), leads[1..].to_vec());
    let (items, _) = list_all(&d, &d.owner_key, "type=user.created");
    assert!(items.is_empty());

    // Registry changes after the events (internal journal entries) never show, and the walk
    // still ends.
    let _ = d.user_with_key("late", &["read:lead"]);
    let (items, _) = list_all(&d, &d.owner_key, "limit=7");
    assert_eq!(ids_of(&items), all_ids);
    let (items, _) = list_all(&d, &d.owner_key, "limit=2");
    assert_eq!(ids_of(&items), all_ids);

    // The maximum limit is accepted; out-of-range or malformed paging is a 400.
    assert_eq!(d.owner("GET", "/v1/events?limit=1000", None).status, 200);
    for q in [
        "limit=0",
        "limit=abc",
        "limit=-1",
        "after=abc",
        "cursor=not-a-cursor",
    ] {
        let r = d.owner("GET", &format!("/v1/events?{q}"), None);
        assert_error(&r, 400, "invalid_request");
    }

    // Reading the journal needs owner or admin:webhook; an ingest key may only push.
    let r = d.call("GET", "/v1/events", Some(&ingest_key), None);
    assert_error(&r, 403, "forbidden");
    let r = d.call("GET", "/v1/events/list-0", Some(&ingest_key), None);
    assert_error(&r, 403, "forbidden");
    let (_, admin_key) = d.user_with_key("admin", &["admin:webhook"]);
    let r = d.call("GET", "/v1/events?limit=2", Some(&admin_key), None);
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn get_event_returns_the_stored_event_with_byte_identical_data() {
    let d = common::start();
    // Unusual spacing, escapes, unicode, a big integer, nesting: stored and returned verbatim.
    let data_text = "{ \"id\" : \"cus_Ünï 1\",   \"name\":\"Zoë \\\"Q\\\" Łódź 😀 \\u00e9\",\n \
        \"nested\" : { \"list\" : [ 1, 2.50, -0.0, 1e3, {\"deep\": [null, true, false]} ], \
        \"empty\": {} , \"arr\": [ ] },\n\t\"big\": 123456789012345678901234567890, \
        \"esc\": \"tab\\there\\\\slash\\/\" }";
    let data: Value = serde_json::from_str(data_text).expect("the test's data is JSON");
    let body = format!(
        "{{\"id\":\"evt-raw-1\",\"type\":\"service.completed\",\"data\":{data_text},\
         \"occurred_at\":\"2026-12-04T10:20:51.123+01:00\",\"assigned_user_id\":\"usr_42\"}}"
    );
    let r = post_text(&d, &d.owner_key, &body);
    assert_eq!(r.status, 201, "{}", r.text);
    let (_, offset, _) = ack_parts(&acks(&r)[0]);

    let g = d.owner("GET", "/v1/events/evt-raw-1", None);
    assert_eq!(g.status, 200, "{}", g.text);
    let obj = g.json.as_object().expect("an event object");
    for field in [
        "id",
        "type",
        "offset",
        "timestamp",
        "data",
        "assigned_user_id",
    ] {
        assert!(obj.contains_key(field), "event lacks {field}: {}", g.text);
    }
    assert_eq!(g.json["id"], "evt-raw-1");
    assert_eq!(g.json["type"], "service.completed");
    assert_eq!(g.json["offset"], offset);
    assert_eq!(g.json["timestamp"], "2026-12-04T09:20:51.123Z");
    assert_eq!(g.json["assigned_user_id"], "usr_42");
    assert!(
        g.text.contains(data_text),
        "data is not byte-identical.\nposted: {data_text}\nread:   {}",
        g.text
    );
    assert_eq!(g.json["data"], data, "data as JSON");

    // The list shows the same bytes.
    let l = d.owner("GET", &format!("/v1/events?after={}", offset - 1), None);
    assert_eq!(l.status, 200, "{}", l.text);
    assert!(
        l.text.contains(data_text),
        "listed data is not byte-identical: {}",
        l.text
    );
}

#[test]
fn timestamps_are_rfc3339_utc_milliseconds_and_honour_occurred_at() {
    let d = common::start();
    let cases = [
        ("2026-12-04T09:20:51Z", "2026-12-04T09:20:51.000Z"),
        ("2026-12-04T09:20:51.123456789Z", "2026-12-04T09:20:51.123Z"),
        ("2026-12-04T01:20:51.5-08:00", "2026-12-04T09:20:51.500Z"),
        ("2027-01-01T00:59:59.999+01:00", "2026-12-31T23:59:59.999Z"),
    ];
    for (i, (sent, expected)) in cases.iter().enumerate() {
        let id = format!("ts-{i}");
        let r = post(
            &d,
            &json!({"id": id, "type": "customer.updated", "data": {"id": "c"}, "occurred_at": sent}),
        );
        assert_eq!(r.status, 201, "{sent}: {}", r.text);
        let g = d.owner("GET", &format!("/v1/events/{id}"), None);
        assert_eq!(g.status, 200, "{}", g.text);
        assert_eq!(g.json["timestamp"], *expected, "occurred_at {sent}");
        assert_ms_timestamp(g.json["timestamp"].as_str().unwrap());
    }

    // Without occurred_at the timestamp is the time of receipt.
    let before = time::OffsetDateTime::now_utc();
    let r = post(&d, &event_with_id("ts-now", "customer.created", "c"));
    assert_eq!(r.status, 201, "{}", r.text);
    let after = time::OffsetDateTime::now_utc();
    let g = d.owner("GET", "/v1/events/ts-now", None);
    assert_eq!(g.status, 200, "{}", g.text);
    let ts = g.json["timestamp"].as_str().expect("timestamp string");
    assert_ms_timestamp(ts);
    let parsed =
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).unwrap();
    let slack = time::Duration::seconds(60);
    assert!(
        parsed >= before - slack && parsed <= after + slack,
        "timestamp {ts} is not the time of receipt ({before} .. {after})"
    );
    assert!(
        g.json["assigned_user_id"].is_null(),
        "no assigned user: {}",
        g.text
    );
    assert!(
        g.json.as_object().unwrap().contains_key("assigned_user_id"),
        "assigned_user_id is present even when null"
    );

    // Listed events carry the same format.
    let (items, _) = list_all(&d, &d.owner_key, "");
    assert_eq!(items.len(), cases.len() + 1);
    for item in &items {
        assert_ms_timestamp(item["timestamp"].as_str().expect("timestamp"));
    }
}
