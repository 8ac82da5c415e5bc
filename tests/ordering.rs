//! SPEC §5 ordering modes, observed at a real receiver on 127.0.0.1 that answers after a
//! deterministic pseudo-random delay (0–30 ms, seeded by the request index):
//!
//! - `entity_ordering_keeps_each_entity_in_sequence_and_runs_entities_in_parallel` (the default
//!   mode): 300 events over 20 entities, interleaved irregularly, posted in 3 batches. Every event
//!   arrives exactly once; per entity, `data.seq` is 1, 2, 3... in arrival order; the receiver saw
//!   more than one request in flight at some moment and never more than 16.
//! - `strict_ordering_delivers_one_at_a_time_in_sequence_order`: arrival order is exactly
//!   sequence order 1..=N (across several entities) and no two requests ever overlap.
//! - `none_ordering_delivers_everything_with_at_most_16_in_flight`.
//! - `entity_ordering_holds_an_entity_back_behind_its_retry_while_others_proceed`: one entity's
//!   event fails its first attempt (500); that entity's later events arrive only after the retry
//!   succeeded, while other entities' events keep arriving during the retry wait.
//!
//! How concurrency is measured soundly: the receiver records each request's arrival instant
//! `at` (after reading its body) and then waits `delay(index)` before answering. The interval
//! `[at, at + delay)` lies inside the daemon's own in-flight interval for that request (it sent
//! the request before `at` and cannot have the answer before `at + delay`). So overlaps of these
//! intervals are real overlaps (the "> 1" check is sound), and the daemon's true concurrency is at
//! least what they show (the "≤ 16" and "≤ 1" checks can only fail when the daemon really exceeded).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::receiver::{Answer, Received, Receiver};
use common::Daemon;
use serde_json::{json, Value};

const CONFIG: &str = "[delivery]\nretry_schedule_ms = [0, 50, 100]\ntimeout_ms = 2000\n\
                      max_in_flight = 16\n\
                      [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n";
const MAX_IN_FLIGHT: usize = 16;
const ALL_ARRIVE: Duration = Duration::from_secs(40);

/// Deterministic pseudo-random 0..=`max_ms` milliseconds from the request index (splitmix64).
fn delay_for(index: usize, max_ms: u64) -> Duration {
    Duration::from_millis(mix(index as u64) % (max_ms + 1))
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The most requests whose `[at, at + delay(index))` intervals overlap at one instant.
fn max_concurrency(received: &[Received], delay: impl Fn(usize) -> Duration) -> usize {
    // (instant, +1 start / -1 end); ends sort before starts at the same instant (half-open).
    let mut points: Vec<(Instant, i32)> = Vec::with_capacity(received.len() * 2);
    for (i, r) in received.iter().enumerate() {
        let d = delay(i);
        if d.is_zero() {
            continue;
        }
        points.push((r.at, 1));
        points.push((r.at + d, -1));
    }
    points.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, step) in points {
        now += step;
        max = max.max(now);
    }
    max as usize
}

fn owner_hook(d: &Daemon, body: Value) -> String {
    let r = d.owner("POST", "/v1/hooks", Some(&body));
    assert_eq!(r.status, 201, "create hook: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

fn post_batches(d: &Daemon, events: &[Value], batch: usize) {
    for chunk in events.chunks(batch) {
        let r = d.owner("POST", "/v1/events", Some(&Value::Array(chunk.to_vec())));
        assert_eq!(r.status, 201, "post events: {}", r.text);
    }
}

/// `entities` × `per_entity` events, interleaved irregularly (deterministically) while keeping
/// each entity's own order: `{"id": "ent-E", "seq": k (per entity, from 1), "n": global from 1}`.
fn interleaved_events(entities: usize, per_entity: usize, prefix: &str) -> Vec<Value> {
    let mut next = vec![1usize; entities];
    let mut out = Vec::with_capacity(entities * per_entity);
    let mut step = 0u64;
    while out.len() < entities * per_entity {
        step += 1;
        let e = (mix(step ^ 0xABCD) % entities as u64) as usize;
        if next[e] > per_entity {
            continue;
        }
        let n = out.len() + 1;
        out.push(json!({
            "id": format!("{prefix}-{n}"),
            "type": "customer.created",
            "data": {"id": format!("ent-{e}"), "seq": next[e], "n": n},
        }));
        next[e] += 1;
    }
    out
}

/// Waits until `n` requests arrived (bounded), then a little longer to catch extra ones.
fn wait_all(rx: &Receiver, n: usize) -> Vec<Received> {
    let got = rx.wait_for(n, ALL_ARRIVE);
    assert!(
        got.len() >= n,
        "only {} of {n} deliveries arrived within {ALL_ARRIVE:?}",
        got.len()
    );
    std::thread::sleep(Duration::from_millis(300));
    rx.received()
}

fn entity_and_seq(r: &Received) -> (String, u64) {
    let v = r.json();
    (
        v["data"]["id"].as_str().unwrap().to_string(),
        v["data"]["seq"].as_u64().unwrap(),
    )
}

/// Each event id exactly once, and the sequences are exactly 1..=n.
fn assert_each_once(received: &[Received], n: usize) {
    let ids: BTreeSet<&str> = received
        .iter()
        .map(|r| r.header("webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), n, "distinct events delivered");
    assert_eq!(
        received.len(),
        n,
        "no event delivered twice (no failures, no crash)"
    );
    let seqs: BTreeSet<u64> = received.iter().map(Received::sequence).collect();
    assert_eq!(seqs, (1..=n as u64).collect(), "sequences are 1..=n");
}

#[test]
fn entity_ordering_keeps_each_entity_in_sequence_and_runs_entities_in_parallel() {
    const ENTITIES: usize = 20;
    const PER_ENTITY: usize = 15;
    const N: usize = ENTITIES * PER_ENTITY;
    let d = common::start_with(CONFIG);
    let rx = Receiver::start(|_, i| Answer::status(200).with_delay(delay_for(i, 30)));
    // No "ordering" given: entity is the default.
    let hook = owner_hook(
        &d,
        json!({"target_url": rx.url("/h"), "event": "customer.created"}),
    );
    assert_eq!(
        d.owner("GET", &format!("/v1/hooks/{hook}"), None).json["ordering"],
        "entity"
    );
    post_batches(
        &d,
        &interleaved_events(ENTITIES, PER_ENTITY, "evt-ent"),
        100,
    );
    let got = wait_all(&rx, N);
    assert_each_once(&got, N);

    let mut per_entity: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &got {
        let (entity, seq) = entity_and_seq(r);
        per_entity.entry(entity).or_default().push(seq);
    }
    assert_eq!(per_entity.len(), ENTITIES);
    for (entity, seqs) in &per_entity {
        let want: Vec<u64> = (1..=PER_ENTITY as u64).collect();
        assert_eq!(seqs, &want, "{entity}: data.seq in arrival order");
    }
    // Sequence order within an entity matches arrival order too.
    let mut last_seq: BTreeMap<String, u64> = BTreeMap::new();
    for r in &got {
        let (entity, _) = entity_and_seq(r);
        let s = r.sequence();
        let prev = last_seq.insert(entity.clone(), s).unwrap_or(0);
        assert!(s > prev, "{entity}: rev23-sequence {s} after {prev}");
    }
    let max = max_concurrency(&got, |i| delay_for(i, 30));
    eprintln!("max concurrency observed: {max}");
    assert!(
        max > 1,
        "entities were delivered in parallel (max concurrency {max})"
    );
    assert!(
        max <= MAX_IN_FLIGHT,
        "at most {MAX_IN_FLIGHT} in flight, saw {max}"
    );
}

#[test]
fn strict_ordering_delivers_one_at_a_time_in_sequence_order() {
    const N: usize = 80;
    let d = common::start_with(CONFIG);
    let rx = Receiver::start(|_, i| Answer::status(200).with_delay(delay_for(i, 30)));
    owner_hook(
        &d,
        json!({"target_url": rx.url("/h"), "event": "customer.created", "ordering": "strict"}),
    );
    post_batches(&d, &interleaved_events(5, N / 5, "evt-strict"), 40);
    let got = wait_all(&rx, N);
    assert_each_once(&got, N);
    let seqs: Vec<u64> = got.iter().map(Received::sequence).collect();
    assert_eq!(
        seqs,
        (1..=N as u64).collect::<Vec<_>>(),
        "arrival order = sequence order"
    );
    let ns: Vec<u64> = got
        .iter()
        .map(|r| r.json()["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ns,
        (1..=N as u64).collect::<Vec<_>>(),
        "arrival order = posting order"
    );
    let entities: BTreeSet<String> = got.iter().map(|r| entity_and_seq(r).0).collect();
    assert_eq!(entities.len(), 5, "several entities were involved");
    let max = max_concurrency(&got, |i| delay_for(i, 30));
    eprintln!("max concurrency observed: {max}");
    assert!(max <= 1, "strict: never two requests at once, saw {max}");
}

#[test]
fn none_ordering_delivers_everything_with_at_most_16_in_flight() {
    const N: usize = 200;
    let d = common::start_with(CONFIG);
    let rx = Receiver::start(|_, i| Answer::status(200).with_delay(delay_for(i, 30)));
    owner_hook(
        &d,
        json!({"target_url": rx.url("/h"), "event": "customer.created", "ordering": "none"}),
    );
    // Few entities, so entity ordering would cap concurrency well below 16; none must not.
    post_batches(&d, &interleaved_events(4, N / 4, "evt-none"), 200);
    let got = wait_all(&rx, N);
    assert_each_once(&got, N);
    let max = max_concurrency(&got, |i| delay_for(i, 30));
    eprintln!("max concurrency observed: {max}");
    assert!(
        max > 1,
        "deliveries ran in parallel (max concurrency {max})"
    );
    assert!(
        max <= MAX_IN_FLIGHT,
        "at most {MAX_IN_FLIGHT} in flight, saw {max}"
    );
}

#[test]
fn entity_ordering_holds_an_entity_back_behind_its_retry_while_others_proceed() {
    const ENTITIES: usize = 10;
    const PER_ENTITY: usize = 10;
    const N: usize = ENTITIES * PER_ENTITY;
    const FAILING_ENTITY: &str = "ent-3";
    const FAILING_SEQ: u64 = 2;
    // A long enough second-attempt delay that other entities visibly proceed meanwhile.
    let config = "[delivery]\nretry_schedule_ms = [0, 400, 400]\ntimeout_ms = 2000\n\
                  max_in_flight = 16\n\
                  [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n";
    let d = common::start_with(config);
    let rx = Receiver::start(|r, i| {
        let v = r.json();
        let failing = v["data"]["id"] == FAILING_ENTITY
            && v["data"]["seq"] == FAILING_SEQ
            && r.header("rev23-attempt") == Some("1");
        let delay = Duration::from_millis(2) + delay_for(i, 8);
        Answer::status(if failing { 500 } else { 200 }).with_delay(delay)
    });
    owner_hook(
        &d,
        json!({"target_url": rx.url("/h"), "event": "customer.created"}),
    );
    post_batches(
        &d,
        &interleaved_events(ENTITIES, PER_ENTITY, "evt-retry"),
        100,
    );
    let got = wait_all(&rx, N + 1);
    assert_eq!(got.len(), N + 1, "every event once, plus one retry");

    let is_failing = |r: &Received| entity_and_seq(r) == (FAILING_ENTITY.to_string(), FAILING_SEQ);
    let attempts: Vec<usize> = (0..got.len()).filter(|&i| is_failing(&got[i])).collect();
    assert_eq!(attempts.len(), 2, "the failing event arrived twice");
    let (first, retry) = (attempts[0], attempts[1]);
    assert_eq!(got[first].header("rev23-attempt"), Some("1"));
    assert_eq!(got[retry].header("rev23-attempt"), Some("2"));
    assert_eq!(
        got[first].header("webhook-id"),
        got[retry].header("webhook-id")
    );
    assert_eq!(got[first].sequence(), got[retry].sequence());
    assert_eq!(
        got[first].body, got[retry].body,
        "a retry sends the same body"
    );

    // The failing entity: 1, 2 (500), 2 (200), 3, ... — nothing of it between the two attempts.
    let entity_seqs: Vec<u64> = got
        .iter()
        .filter(|r| entity_and_seq(r).0 == FAILING_ENTITY)
        .map(|r| entity_and_seq(r).1)
        .collect();
    let mut want: Vec<u64> = (1..=PER_ENTITY as u64).collect();
    want.insert(FAILING_SEQ as usize, FAILING_SEQ);
    assert_eq!(
        entity_seqs, want,
        "{FAILING_ENTITY} held back behind its retry"
    );
    assert!(
        got[first + 1..retry]
            .iter()
            .all(|r| entity_and_seq(r).0 != FAILING_ENTITY),
        "no delivery of {FAILING_ENTITY} while its retry was pending"
    );
    // Other entities kept going during the retry wait, each still in order.
    let others_meanwhile = retry - first - 1;
    assert!(
        others_meanwhile > 0,
        "other entities were delivered while {FAILING_ENTITY} waited for its retry"
    );
    let mut per_entity: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in got.iter().filter(|r| !is_failing(r)) {
        let (entity, seq) = entity_and_seq(r);
        per_entity.entry(entity).or_default().push(seq);
    }
    for (entity, seqs) in &per_entity {
        if entity == FAILING_ENTITY {
            continue;
        }
        let want: Vec<u64> = (1..=PER_ENTITY as u64).collect();
        assert_eq!(seqs, &want, "{entity} in order");
    }
}
