//! Retention (issue 6): public entries go only once they are older than `min_age_ms` and behind
//! every hook's cursor; a paused hook holds them (until `max_hold_ms`, when it is told
//! `retention_expired`); internal entries stay; offsets never change; a restart and a rebuild of
//! the projections from the trimmed journal give the same hooks projection.

mod common;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use common::receiver::Receiver;
use common::Daemon;
use rev23_webhooks::journal::{reader, schema};
use rev23_webhooks::projectors::hooks::dump_tables;

const WAIT: Duration = Duration::from_secs(15);

fn config(max_hold_ms: u64) -> String {
    format!(
        "[limits]\nrate_limit_per_minute = 100000\n\
         [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n\
         [retention]\nmin_age_ms = 300\nmax_hold_ms = {max_hold_ms}\ncheck_interval_ms = 50\n"
    )
}

fn create_hook(d: &Daemon, target: &str, event: &str) -> String {
    let r = d.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"target_url": target, "event": event})),
    );
    assert_eq!(r.status, 201, "create hook: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

fn set_state(d: &Daemon, hook: &str, state: &str) {
    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{hook}"),
        Some(&json!({"state": state})),
    );
    assert_eq!(r.status, 200, "{state}: {}", r.text);
}

fn hook(d: &Daemon, id: &str) -> Value {
    let r = d.owner("GET", &format!("/v1/hooks/{id}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// Posts `n` events of `kind` with ids `{prefix}-{i}`; returns their offsets.
fn ingest(d: &Daemon, kind: &str, prefix: &str, n: usize) -> Vec<(String, u64)> {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"id": format!("{prefix}-{i}"), "type": kind, "data": {"id": format!("{prefix}_{i}")}}))
        .collect();
    let r = d.owner("POST", "/v1/events", Some(&json!(events)));
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["id"].as_str().unwrap().to_string(),
                e["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Offsets of the public events listed now.
fn listed(d: &Daemon) -> Vec<u64> {
    let r = d.owner("GET", "/v1/events?limit=1000", None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect()
}

fn wait_cursor(d: &Daemon, id: &str, sequence: u64) {
    let reached = common::wait_until(WAIT, || {
        (hook(d, id)["cursor"]["sequence"].as_u64() == Some(sequence)).then_some(())
    });
    assert!(
        reached.is_some(),
        "hook {id} cursor did not reach {sequence}: {}",
        hook(d, id)
    );
}

fn library_dump(data_dir: &Path) -> (u64, usize, String) {
    let db = schema::open(data_dir, 16 << 20).expect("open the journal");
    let head = reader::head(&db).unwrap();
    let entries = reader::read_from(&db, 1, usize::MAX).unwrap();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.offset, i as u64 + 1, "offsets stay 1..=head");
    }
    let internal = entries
        .iter()
        .filter(|e| e.kind.starts_with("internal."))
        .count();
    (head, internal, dump_tables(&db).unwrap())
}

#[test]
fn trims_only_what_every_cursor_passed_and_rebuilds_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::ok();
    let mut d = common::start_in(dir.path(), &config(0));
    let caught_up = create_hook(&d, &rx.url("/a"), "customer.created");
    let paused = create_hook(&d, &rx.url("/b"), "customer.created");
    set_state(&d, &paused, "paused");

    // Nobody subscribes to leads: only age and the projectors hold them. Customer events come
    // after them; the paused hook holds from its oldest undelivered one on.
    let leads = ingest(&d, "lead.created", "lead", 5);
    let customers = ingest(&d, "customer.created", "cus", 20);
    let got = rx.wait_for(20, WAIT);
    assert_eq!(got.len(), 20, "the active hook delivered");
    wait_cursor(&d, &caught_up, 20);

    // The leads go; every customer event stays, held by the paused hook's cursor (0).
    let lead_offsets: Vec<u64> = leads.iter().map(|(_, o)| *o).collect();
    let trimmed = common::wait_until(WAIT, || {
        let l = listed(&d);
        (!lead_offsets.iter().any(|o| l.contains(o))).then_some(l)
    })
    .expect("old leads behind every cursor were trimmed");
    let customer_offsets: Vec<u64> = customers.iter().map(|(_, o)| *o).collect();
    assert_eq!(
        trimmed, customer_offsets,
        "everything the paused hook holds is kept"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(listed(&d), customer_offsets, "still kept a while later");
    let r = d.owner("GET", "/v1/events/lead-0", None);
    assert_eq!(r.status, 404, "a trimmed event is gone: {}", r.text);
    let r = d.owner("GET", "/v1/events/cus-0", None);
    assert_eq!(r.status, 200, "a held event is there: {}", r.text);
    assert_eq!(r.json["offset"], customer_offsets[0]);

    // The paused hook catches up: now every cursor passed them, and they go too.
    set_state(&d, &paused, "active");
    assert_eq!(
        rx.wait_for(40, WAIT).len(),
        40,
        "the resumed hook got its backlog"
    );
    wait_cursor(&d, &paused, 20);
    let emptied = common::wait_until(WAIT, || listed(&d).is_empty().then_some(()));
    assert!(
        emptied.is_some(),
        "caught-up entries were trimmed: {:?}",
        listed(&d)
    );
    let r = d.owner("GET", "/v1/triggers/customer.created", None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!([]), "the type index forgot them too");

    // Offsets are unchanged: the next event follows the old head; users, keys and hooks
    // (internal entries) are kept, so both projections rebuild from the trimmed journal.
    let head_before = d.call("GET", "/readyz", None, None).json["journal_head"]
        .as_u64()
        .unwrap();
    let next = ingest(&d, "customer.created", "late", 1);
    assert_eq!(next[0].1, head_before + 1, "offsets continue from the head");
    assert_eq!(rx.wait_for(42, WAIT).len(), 42);
    wait_cursor(&d, &caught_up, 21);
    wait_cursor(&d, &paused, 21);
    assert_eq!(d.stop(), Some(0));
    let (head, internal, before) = library_dump(&d.data_dir);
    assert_eq!(head, next[0].1);
    assert!(internal >= 5, "owner user, key, two hooks, state changes");

    common::rebuild_projections(&d.data_dir);
    let mut d = common::start_in(dir.path(), &config(0));
    for id in [&caught_up, &paused] {
        let h = hook(&d, id);
        assert_eq!(h["head_sequence"], 21, "rebuilt sequence: {h}");
        assert_eq!(h["cursor"]["sequence"], 21, "{h}");
    }
    assert_eq!(d.stop(), Some(0));
    let (_, internal_after, after) = library_dump(&d.data_dir);
    assert_eq!(internal_after, internal, "no internal entry was trimmed");
    assert_eq!(
        after, before,
        "the projection rebuilt from the trimmed journal is identical"
    );

    let mut d = common::start_in(dir.path(), &config(0));
    let more = ingest(&d, "customer.created", "after", 1);
    let got = rx.wait_for(44, WAIT);
    assert_eq!(got.len(), 44, "both hooks deliver after the rebuild");
    let mut seqs: Vec<u64> = got[42..].iter().map(|r| r.sequence()).collect();
    seqs.sort();
    assert_eq!(seqs, vec![22, 22], "sequences continue where they were");
    assert_eq!(got[43].json()["id"], more[0].0.as_str());
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn max_hold_tells_the_paused_hook_and_stops_holding() {
    let rx = Receiver::ok();
    let d = common::start_with(&config(1500));
    let paused = create_hook(&d, &rx.url("/p"), "customer.created");
    set_state(&d, &paused, "paused");
    ingest(&d, "customer.created", "held", 5);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(listed(&d).len(), 5, "held before max_hold");

    let told = common::wait_until(WAIT, || {
        let h = hook(&d, &paused);
        (h["state_reason"] == "retention_expired").then_some(h)
    })
    .expect("the hook is told retention_expired");
    assert_eq!(told["state"], "paused", "its state is unchanged");
    let emptied = common::wait_until(WAIT, || listed(&d).is_empty().then_some(()));
    assert!(emptied.is_some(), "no longer held: {:?}", listed(&d));

    // Resuming skips what retention took (nothing half-delivered), then delivers new events.
    set_state(&d, &paused, "active");
    wait_cursor(&d, &paused, 5);
    let fresh = ingest(&d, "customer.created", "fresh", 1);
    let got = rx.wait_for(1, WAIT);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["id"], fresh[0].0.as_str());
    assert_eq!(got[0].sequence(), 6);
    let r = d.owner(
        "GET",
        &format!("/v1/hooks/{paused}/deliveries?status=skipped"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["data"].as_array().map(Vec::len),
        Some(5),
        "{}",
        r.text
    );
}

#[test]
fn a_pull_cursor_holds_until_acked() {
    let d = common::start_with(&config(0));
    let r = d.owner(
        "POST",
        "/v1/hooks",
        Some(&json!({"delivery": "pull", "event": "lead.created"})),
    );
    assert_eq!(r.status, 201, "create pull hook: {}", r.text);
    let pull = r.json["id"].as_str().unwrap().to_string();
    ingest(&d, "lead.created", "pulled", 3);
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(listed(&d).len(), 3, "held by the pull cursor");

    let r = d.owner("GET", &format!("/v1/hooks/{pull}/poll?limit=10"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["data"].as_array().map(Vec::len),
        Some(3),
        "{}",
        r.text
    );
    let lease = r.json["lease_id"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(listed(&d).len(), 3, "leased is not acked: still held");
    let r = d.owner(
        "POST",
        &format!("/v1/hooks/{pull}/ack"),
        Some(&json!({"sequence": 3, "lease_id": lease})),
    );
    assert!(r.status < 300, "ack: {} {}", r.status, r.text);
    let emptied = common::wait_until(WAIT, || listed(&d).is_empty().then_some(()));
    assert!(
        emptied.is_some(),
        "acked entries were trimmed: {:?}",
        listed(&d)
    );
}
