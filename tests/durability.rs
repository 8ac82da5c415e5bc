//! Durability of the journal under concurrent ingest (SPEC §2: "sent only after the events are
//! durably committed", "gapless, starting at 1", "a batch is atomic", idempotent on `id`).
//!
//! - `sigkill_under_load_loses_no_acknowledged_event`: 8 clients post single events and small
//!   batches (client-chosen ids, distinctive payloads) while the daemon is SIGKILLed at a
//!   random-ish moment. After a restart on the same data dir: every acknowledged event is listed
//!   with exactly its acknowledged offset and identical data; unacknowledged requests are either
//!   wholly absent or wholly present with correct data (never half a batch); re-posting every
//!   event answers `duplicate: true` with the original offsets for everything acknowledged; and,
//!   read back with the library after a clean stop, the journal holds exactly offsets
//!   `1..=journal_head` (public and internal entries together), every entry decodes, and every
//!   acknowledged entry carries the exact bytes that were sent.
//! - `sigterm_during_ingest_loses_nothing_and_exits_zero`: the same load, stopped with SIGTERM
//!   instead: the daemon exits 0 within 10 s and the same checks hold after a restart.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use rev23_webhooks::journal::{reader, schema};

/// Concurrent ingest clients.
const CLIENTS: usize = 8;
/// How long each client keeps posting (including the time after the daemon died).
const LOAD_TIME: Duration = Duration::from_millis(2600);
/// On a slow machine the load goes on past `LOAD_TIME` until the daemon was stopped, at most this.
const HARD_LOAD_LIMIT: Duration = Duration::from_secs(25);
/// Requests one client sends at most.
const MAX_REQUESTS_PER_CLIENT: usize = 4000;
/// A client stops after this many failed requests in a row (the daemon is gone).
const MAX_CONSECUTIVE_FAILURES: usize = 25;
/// Acknowledged requests wanted before the daemon is stopped, so the test is meaningful.
const MIN_ACKS_BEFORE_STOP: usize = 40;
/// Events re-posted per request after the restart.
const REPOST_CHUNK: usize = 500;

/// One event as sent: its client-chosen id and the exact `data` JSON text.
#[derive(Clone, Debug)]
struct SentEvent {
    id: String,
    data: String,
}

/// One request and, if it got a 2xx, the offsets it acknowledged (one per event, in order).
#[derive(Debug)]
struct Post {
    events: Vec<SentEvent>,
    acked: Option<Vec<u64>>,
    /// What happened when not acknowledged (HTTP status or transport error), for diagnostics.
    failure: Option<String>,
}

/// What one client thread did.
#[derive(Default)]
struct ClientLog {
    posts: Vec<Post>,
    /// 2xx answers that did not match the request (wrong ids, duplicate, missing offsets).
    anomalies: Vec<String>,
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
        .unwrap_or(7);
    // A few xorshift rounds so neighbouring clocks give different moments.
    let mut x = nanos | 1;
    for _ in 0..4 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    x
}

/// POSTs `body` to /v1/events; `Err` for any transport failure (refused, reset, truncated body).
fn post(agent: &ureq::Agent, url: &str, key: &str, body: String) -> Result<(u16, Value), String> {
    let request = ureq::http::Request::builder()
        .method("POST")
        .uri(url)
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| e.to_string())?;
    let mut response = agent.run(request).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("reading the response: {e}"))?;
    let json =
        serde_json::from_str(&text).map_err(|e| format!("response is not JSON ({e}): {text}"))?;
    Ok((status, json))
}

/// Checks a 2xx ingest answer against the request; returns the offsets.
fn acknowledged_offsets(
    events: &[SentEvent],
    status: u16,
    json: &Value,
) -> Result<Vec<u64>, String> {
    if status != 201 {
        return Err(format!(
            "fresh events answered {status}, expected 201: {json}"
        ));
    }
    let data = json["data"]
        .as_array()
        .ok_or_else(|| format!("no data array: {json}"))?;
    if data.len() != events.len() {
        return Err(format!(
            "{} outcomes for {} events: {json}",
            data.len(),
            events.len()
        ));
    }
    let mut offsets = Vec::with_capacity(events.len());
    for (event, outcome) in events.iter().zip(data) {
        if outcome["id"] != event.id.as_str() || outcome["duplicate"] != false {
            return Err(format!("outcome {outcome} for fresh event {}", event.id));
        }
        let offset = outcome["offset"]
            .as_u64()
            .filter(|o| *o >= 1)
            .ok_or_else(|| format!("bad offset in {outcome}"))?;
        offsets.push(offset);
    }
    Ok(offsets)
}

/// The body of one request: a bare object (single event) or an array.
fn request_body(events: &[SentEvent], bare_object: bool) -> String {
    let items: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                r#"{{"type":"customer.created","id":"{}","data":{}}}"#,
                e.id, e.data
            )
        })
        .collect();
    if bare_object {
        assert_eq!(items.len(), 1);
        items.into_iter().next().unwrap()
    } else {
        format!("[{}]", items.join(","))
    }
}

/// One client: posts until `LOAD_TIME` or `MAX_REQUESTS_PER_CLIENT`, whatever the daemon does.
fn run_client(
    tag: String,
    client: usize,
    url: String,
    key: String,
    acks: Arc<AtomicUsize>,
    interrupted: Arc<AtomicBool>,
) -> ClientLog {
    let agent = common::agent();
    let start = Instant::now();
    let mut log = ClientLog::default();
    let mut n = 0usize;
    let mut consecutive_failures = 0usize;
    let running = || {
        let elapsed = start.elapsed();
        elapsed < LOAD_TIME || (!interrupted.load(Ordering::Acquire) && elapsed < HARD_LOAD_LIMIT)
    };
    while running()
        && n < MAX_REQUESTS_PER_CLIENT
        && consecutive_failures < MAX_CONSECUTIVE_FAILURES
    {
        // Mix: bare single objects, one-element arrays, and batches of 2 to 5.
        let (len, bare) = match n % 4 {
            0 => (1, true),
            1 => (1 + (n / 4) % 5, false),
            2 => (1, true),
            _ => (2 + (n + client) % 4, false),
        };
        let events: Vec<SentEvent> = (0..len)
            .map(|k| {
                let id = format!("{tag}-c{client}-r{n}-e{k}");
                // Distinctive, with odd spacing, escapes and non-ASCII: the journal keeps the
                // exact bytes, so the read-back can be compared byte for byte.
                let data = format!(
                    r#"{{"id": "cus-{client}-{n}-{k}", "client":{client},"request": {n}, "index":{k},  "note":"event {id} \u00e9 \"q\" ✓", "amount":{amount}, "nested":{{"list":[{n},{k},"{tag}"]}}}}"#,
                    amount = n * 10 + k
                );
                SentEvent { id, data }
            })
            .collect();
        let body = request_body(&events, bare);
        let (acked, failure) = match post(&agent, &url, &key, body) {
            Ok((status, json)) if (200..300).contains(&status) => {
                match acknowledged_offsets(&events, status, &json) {
                    Ok(offsets) => {
                        acks.fetch_add(1, Ordering::Relaxed);
                        (Some(offsets), None)
                    }
                    Err(e) => {
                        log.anomalies.push(e.clone());
                        (None, Some(e))
                    }
                }
            }
            Ok((status, json)) => (None, Some(format!("HTTP {status}: {json}"))),
            Err(e) => (None, Some(e)),
        };
        if acked.is_none() {
            // The daemon is gone or busy: do not spin, and give up once it is clearly gone.
            consecutive_failures += 1;
            std::thread::sleep(Duration::from_millis(5));
        } else {
            consecutive_failures = 0;
        }
        log.posts.push(Post {
            events,
            acked,
            failure,
        });
        n += 1;
    }
    log
}

/// How the load is interrupted.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Interrupt {
    Kill,
    Term,
}

/// Starts a daemon in `dir`, runs the load, interrupts it at a random-ish moment, and returns
/// every request made.
fn load_and_interrupt(dir: &Path, how: Interrupt) -> Vec<Post> {
    let mut d = common::start_in(dir, "");
    let interrupted = Arc::new(AtomicBool::new(false));
    let (_, key) = d.user_with_key("ingest", &["ingest:event"]);
    let url = d.url("/v1/events");
    let tag = format!("{:x}", seed() & 0xffff_ffff);
    let acks = Arc::new(AtomicUsize::new(0));
    let load_start = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (tag, url, key) = (tag.clone(), url.clone(), key.clone());
            let (acks, interrupted) = (acks.clone(), interrupted.clone());
            std::thread::spawn(move || run_client(tag, c, url, key, acks, interrupted))
        })
        .collect();

    let stop_after = Duration::from_millis(400 + seed() % 1200);
    eprintln!("[{how:?}] interrupting at {stop_after:?}, once at least {MIN_ACKS_BEFORE_STOP} requests are acknowledged");
    let ready = common::wait_until(Duration::from_secs(20), || {
        (load_start.elapsed() >= stop_after && acks.load(Ordering::Relaxed) >= MIN_ACKS_BEFORE_STOP)
            .then_some(())
    });
    let acked_at_stop = acks.load(Ordering::Relaxed);
    let stopped_at = load_start.elapsed();
    match how {
        Interrupt::Kill => {
            d.kill();
            interrupted.store(true, Ordering::Release);
        }
        Interrupt::Term => {
            let t = Instant::now();
            let code = d.stop();
            let took = t.elapsed();
            interrupted.store(true, Ordering::Release);
            eprintln!("[{how:?}] SIGTERM: exit {code:?} after {took:?}");
            assert_eq!(code, Some(0), "exit code after SIGTERM during ingest");
            assert!(
                took < Duration::from_secs(10),
                "SIGTERM took {took:?} (must be < 10 s)"
            );
        }
    }
    let logs: Vec<ClientLog> = clients
        .into_iter()
        .map(|h| h.join().expect("client thread"))
        .collect();
    assert!(
        ready.is_some(),
        "only {acked_at_stop} requests were acknowledged in 20 s of load"
    );
    let anomalies: Vec<&String> = logs.iter().flat_map(|l| &l.anomalies).collect();
    assert!(
        anomalies.is_empty(),
        "2xx answers that do not match the request: {anomalies:#?}"
    );
    let posts: Vec<Post> = logs.into_iter().flat_map(|l| l.posts).collect();
    let acked = posts.iter().filter(|p| p.acked.is_some()).count();
    let failed: Vec<&Post> = posts.iter().filter(|p| p.acked.is_none()).collect();
    eprintln!(
        "[{how:?}] stopped at {stopped_at:?}: {} requests, {acked} acknowledged, {} not (first: {:?})",
        posts.len(),
        failed.len(),
        failed.first().and_then(|p| p.failure.as_deref())
    );
    assert!(acked >= MIN_ACKS_BEFORE_STOP);
    // The clients outlive the daemon, so some requests must have failed after the stop; those
    // must not have been counted as acknowledged (they are in `failed`).
    assert!(
        !failed.is_empty(),
        "no request failed although the daemon was stopped mid-load"
    );
    posts
}

/// Every public event via `GET /v1/events` (limit 1000, following `next_cursor`).
fn list_all_events(d: &common::Daemon) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _page in 0..10_000 {
        let path = match &cursor {
            Some(c) => format!("/v1/events?limit=1000&cursor={c}"),
            None => "/v1/events?limit=1000".to_string(),
        };
        let r = d.owner("GET", &path, None);
        assert_eq!(r.status, 200, "list events: {}", r.text);
        out.extend(
            r.json["data"]
                .as_array()
                .expect("data array")
                .iter()
                .cloned(),
        );
        match r.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => {
                assert!(r.json["next_cursor"].is_null(), "next_cursor: {}", r.json);
                return out;
            }
        }
    }
    panic!("GET /v1/events did not end within 10000 pages");
}

fn readyz(d: &common::Daemon) -> Value {
    let r = d.call("GET", "/readyz", None, None);
    assert_eq!(r.status, 200, "readyz: {}", r.text);
    r.json
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("sent data is JSON")
}

/// Restarts on `dir` and proves the journal holds what was acknowledged, nothing half-written,
/// gaplessly; re-posts everything to check idempotency.
fn verify_after_restart(dir: &Path, posts: &[Post]) {
    let mut d = common::start_in(dir, "");
    let head_before = readyz(&d)["journal_head"].as_u64().expect("journal_head");

    // Every listed event, ascending by offset, each one we sent with the data we sent.
    let sent: HashMap<&str, &SentEvent> = posts
        .iter()
        .flat_map(|p| &p.events)
        .map(|e| (e.id.as_str(), e))
        .collect();
    let listed = list_all_events(&d);
    let mut present: HashMap<String, (u64, Value)> = HashMap::new();
    let mut last_offset = 0;
    for e in &listed {
        let id = e["id"].as_str().expect("id");
        let offset = e["offset"].as_u64().expect("offset");
        assert!(
            offset > last_offset,
            "events not ascending by offset at {e}"
        );
        assert!(
            offset <= head_before,
            "event offset {offset} beyond journal_head {head_before}"
        );
        last_offset = offset;
        assert_eq!(e["type"], "customer.created", "{e}");
        let original = sent
            .get(id)
            .unwrap_or_else(|| panic!("listed event {id} was never sent"));
        assert_eq!(
            e["data"],
            parse(&original.data),
            "data of {id} differs from what was sent"
        );
        assert!(
            present
                .insert(id.to_string(), (offset, e["data"].clone()))
                .is_none(),
            "event {id} listed twice"
        );
    }

    // Acknowledged: present at exactly the acknowledged offset. Not acknowledged: all or nothing.
    let mut unacked_present = 0;
    let mut unacked_absent = 0;
    for p in posts {
        match &p.acked {
            Some(offsets) => {
                for (e, offset) in p.events.iter().zip(offsets) {
                    let (listed_offset, _) = present.get(&e.id).unwrap_or_else(|| {
                        panic!("acknowledged event {} (offset {offset}) is lost", e.id)
                    });
                    assert_eq!(listed_offset, offset, "acknowledged event {} moved", e.id);
                }
            }
            None => {
                let here = p
                    .events
                    .iter()
                    .filter(|e| present.contains_key(&e.id))
                    .count();
                assert!(
                    here == 0 || here == p.events.len(),
                    "an unacknowledged batch is half-written: {here} of {} events present ({:?}); failure: {:?}",
                    p.events.len(),
                    p.events.iter().map(|e| &e.id).collect::<Vec<_>>(),
                    p.failure
                );
                if here == 0 {
                    unacked_absent += 1;
                } else {
                    unacked_present += 1;
                }
            }
        }
    }

    // Re-post everything: acknowledged and present events are duplicates at their offsets.
    let all: Vec<&SentEvent> = posts.iter().flat_map(|p| &p.events).collect();
    let mut newly_appended: HashMap<String, u64> = HashMap::new();
    for chunk in all.chunks(REPOST_CHUNK) {
        let owned: Vec<SentEvent> = chunk.iter().map(|e| (*e).clone()).collect();
        // The exact text (not re-serialised), so re-appended events carry the same bytes.
        let body = request_body(&owned, false);
        let r = d.raw(
            "POST",
            "/v1/events",
            &[("x-api-key", &d.owner_key)],
            Some(&body),
        );
        assert!(
            r.status == 200 || r.status == 201,
            "re-post: {} {}",
            r.status,
            r.text
        );
        let outcomes = r.json["data"].as_array().expect("data array");
        assert_eq!(outcomes.len(), chunk.len(), "re-post outcomes: {}", r.text);
        let mut any_new = false;
        for (e, outcome) in chunk.iter().zip(outcomes) {
            assert_eq!(outcome["id"], e.id.as_str());
            let offset = outcome["offset"].as_u64().expect("offset");
            match present.get(&e.id) {
                Some((listed_offset, _)) => {
                    assert_eq!(
                        outcome["duplicate"], true,
                        "re-posted {} not a duplicate: {outcome}",
                        e.id
                    );
                    assert_eq!(
                        offset, *listed_offset,
                        "re-posted {} answered another offset",
                        e.id
                    );
                }
                None => {
                    assert_eq!(
                        outcome["duplicate"], false,
                        "absent {} answered as duplicate",
                        e.id
                    );
                    assert!(offset > head_before);
                    any_new = true;
                    newly_appended.insert(e.id.clone(), offset);
                }
            }
        }
        assert_eq!(
            r.status,
            if any_new { 201 } else { 200 },
            "re-post status: {}",
            r.text
        );
    }
    let head_after = readyz(&d)["journal_head"].as_u64().expect("journal_head");
    assert_eq!(
        head_after,
        head_before + newly_appended.len() as u64,
        "re-posting appended something other than the absent events"
    );
    assert_eq!(d.stop(), Some(0), "clean stop after verification");

    // The journal itself, read with the library: offsets exactly 1..=head, each entry decodes,
    // the public entries are exactly the listed ones, and payloads are the exact bytes sent.
    let db = schema::open(&d.data_dir, 16 << 20).expect("open the journal");
    assert_eq!(reader::head(&db).expect("head"), head_after);
    let entries = reader::read_from(&db, 1, usize::MAX).expect("every journal entry decodes");
    assert_eq!(
        entries.len() as u64,
        head_after,
        "journal entries vs journal_head"
    );
    let mut ids = HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.offset,
            i as u64 + 1,
            "journal gap or disorder at index {i}"
        );
        assert!(
            ids.insert(entry.id.as_str()),
            "event id {} appears twice in the journal",
            entry.id
        );
    }
    let public_before: Vec<(&str, u64)> = entries
        .iter()
        .filter(|e| e.offset <= head_before && !e.kind.starts_with("internal."))
        .map(|e| (e.id.as_str(), e.offset))
        .collect();
    let listed_ids: Vec<(&str, u64)> = listed
        .iter()
        .map(|e| (e["id"].as_str().unwrap(), e["offset"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        public_before, listed_ids,
        "the API listed other public events than the journal holds"
    );
    for p in posts {
        for (k, e) in p.events.iter().enumerate() {
            let offset = p
                .acked
                .as_ref()
                .map(|o| o[k])
                .or_else(|| present.get(&e.id).map(|(o, _)| *o))
                .or_else(|| newly_appended.get(&e.id).copied())
                .expect("every event is in the journal after the re-post");
            let entry = &entries[offset as usize - 1];
            assert_eq!(entry.id, e.id, "journal offset {offset}");
            assert_eq!(entry.kind, "customer.created");
            assert_eq!(
                entry.payload,
                e.data.as_bytes(),
                "journal payload of {} is not the bytes sent",
                e.id
            );
        }
    }
    eprintln!(
        "verified: head {head_before} after restart ({} public events listed), unacknowledged requests: {unacked_present} wholly present, {unacked_absent} absent; {} re-appended",
        listed.len(),
        newly_appended.len()
    );
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("temp dir");
    let posts = load_and_interrupt(dir.path(), Interrupt::Kill);
    verify_after_restart(dir.path(), &posts);
}

#[test]
fn sigterm_during_ingest_loses_nothing_and_exits_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let posts = load_and_interrupt(dir.path(), Interrupt::Term);
    verify_after_restart(dir.path(), &posts);
}
