//! Replay and recovery (SPEC §8) against the real binary and real local receivers: replay by
//! `from_offset`, `from_time` and `from_event_id` (with `to_offset` and `dry_run`) into a hook made
//! after the events, with the original `webhook-id`s and new sequences; permissions and scope
//! re-checked at replay time; a replay that survives a restart while live events keep flowing;
//! resend of one delivery and recover of every `failed` one since a time; the `replay` CLI.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::receiver::{Answer, Received, Receiver};
use common::Daemon;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const QUIET: Duration = Duration::from_millis(700);
const CONFIG: &str = "[limits]\nrate_limit_per_minute = 100000\n\
     [policy]\nallow_private_networks = [\"127.0.0.0/8\"]\n\
     [delivery]\nretry_schedule_ms = [0, 50, 50]\ntimeout_ms = 1000\n";

fn start() -> Daemon {
    common::start_with(CONFIG)
}

/// Posts a batch; returns (event id, offset) per event.
fn post(d: &Daemon, events: Value) -> Vec<(String, u64)> {
    let r = d.owner("POST", "/v1/events", Some(&events));
    assert_eq!(r.status, 201, "post events: {}", r.text);
    r.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["offset"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn customers(from: usize, n: usize) -> Value {
    Value::Array(
        (from..from + n)
            .map(|i| json!({"type": "customer.created", "data": {"id": format!("cus_{i}")}}))
            .collect(),
    )
}

fn hook(d: &Daemon, key: &str, body: Value) -> String {
    let r = d.call("POST", "/v1/hooks", Some(key), Some(&body));
    assert_eq!(r.status, 201, "create hook: {}", r.text);
    r.json["id"].as_str().unwrap().to_string()
}

fn view(d: &Daemon, hook: &str) -> Value {
    let r = d.owner("GET", &format!("/v1/hooks/{hook}"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

fn replay(d: &Daemon, hook: &str, body: Value) -> common::Reply {
    d.owner("POST", &format!("/v1/hooks/{hook}/replay"), Some(&body))
}

fn webhook_ids(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|r| r.header("webhook-id").unwrap().to_string())
        .collect()
}

fn wait_replay_done(d: &Daemon, hook: &str, replay_id: &str) -> Value {
    let mut last = Value::Null;
    common::wait_until(WAIT, || {
        let r = d.owner(
            "GET",
            &format!("/v1/hooks/{hook}/replays/{replay_id}"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        if r.json["status"] == "done" {
            Some(r.json)
        } else {
            last = r.json;
            None
        }
    })
    .unwrap_or_else(|| panic!("replay {replay_id} not done; last: {last}"))
}

/// Waits (bounded) for at least `n` requests at `rx`; panics with what arrived if fewer did.
fn wait_for(rx: &Receiver, n: usize, timeout: Duration) -> Vec<Received> {
    let got = rx.wait_for(n, timeout);
    assert!(
        got.len() >= n,
        "expected {n} deliveries within {timeout:?}, got {}",
        got.len()
    );
    got
}

fn assert_quiet(rx: &Receiver, n: usize) {
    std::thread::sleep(QUIET);
    assert_eq!(rx.count(), n, "no more deliveries expected");
}

#[test]
fn a_hook_made_after_the_events_receives_them_by_offset_with_original_ids() {
    let d = start();
    let past = post(&d, customers(0, 5));
    post(
        &d,
        json!({"type": "lead.created", "data": {"id": "lead_1"}}),
    );
    let rx = Receiver::ok();
    let id = hook(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/r"), "event": "customer.created", "ordering": "strict"}),
    );
    assert_quiet(&rx, 0);

    // Dry run only counts.
    let r = replay(&d, &id, json!({"from_offset": past[1].1, "dry_run": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["matched"], 4);
    assert!(r.json["replay_id"].is_null());
    assert_quiet(&rx, 0);

    let r = replay(
        &d,
        &id,
        json!({"from_offset": past[1].1, "to_offset": past[3].1}),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["matched"], 3);
    let replay_id = r.json["replay_id"].as_str().unwrap().to_string();
    let got = wait_for(&rx, 3, WAIT);
    let expected: Vec<String> = past[1..4].iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(
        webhook_ids(&got),
        expected,
        "original webhook-ids, in order"
    );
    let seqs: Vec<u64> = got.iter().map(|r| r.sequence()).collect();
    assert_eq!(seqs, [1, 2, 3], "replayed events get new sequences");
    assert_eq!(got[0].json()["data"]["id"], "cus_1");
    let done = wait_replay_done(&d, &id, &replay_id);
    assert_eq!(done["matched"], 3);
    assert_eq!(done["queued"], 3);
    assert_eq!(done["first_sequence"], 1);
    assert_eq!(done["last_sequence"], 3);
    assert_quiet(&rx, 3);

    // The same range again is delivered again (a replay is explicit), after the first.
    let r = replay(&d, &id, json!({"from_offset": past[4].1}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["matched"], 1);
    let got = wait_for(&rx, 4, WAIT);
    assert_eq!(got[3].header("webhook-id").unwrap(), past[4].0);
    assert_eq!(got[3].sequence(), 4);
}

#[test]
fn replay_by_time_and_by_event_id() {
    let d = start();
    let before = post(&d, customers(0, 3));
    std::thread::sleep(Duration::from_millis(30));
    let cut = rev23_webhooks::clock::format_ms(rev23_webhooks::clock::now_ms());
    std::thread::sleep(Duration::from_millis(30));
    let after = post(&d, customers(3, 2));
    let rx = Receiver::ok();
    let id = hook(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/r"), "event": "customer.created", "ordering": "strict"}),
    );

    let r = replay(&d, &id, json!({"from_time": cut, "dry_run": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["matched"], 2,
        "only events appended at or after {cut}"
    );
    assert_eq!(r.json["from_offset"], after[0].1);

    let r = replay(&d, &id, json!({"from_event_id": before[2].0}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["matched"], 3);
    let got = wait_for(&rx, 3, WAIT);
    assert_eq!(
        webhook_ids(&got),
        [before[2].0.clone(), after[0].0.clone(), after[1].0.clone()]
    );
    assert_quiet(&rx, 3);

    // Errors: no selector, two selectors, bad time, unknown id, inverted range, bad JSON.
    for (body, status) in [
        (json!({}), 422),
        (json!({"from_offset": 1, "from_time": cut}), 422),
        (json!({"from_time": "yesterday"}), 422),
        (json!({"from_offset": 0}), 422),
        (json!({"from_event_id": "evt_nope"}), 404),
        (json!({"from_offset": 5, "to_offset": 2}), 422),
        (json!({"from_offset": 1, "extra": true}), 422),
    ] {
        let r = replay(&d, &id, body.clone());
        assert_eq!(r.status, status, "{body}: {}", r.text);
        assert!(r.json["error"]["message"].as_str().is_some());
    }
    let r = d.raw(
        "POST",
        &format!("/v1/hooks/{id}/replay"),
        &[("x-api-key", &d.owner_key)],
        Some("{"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "invalid_json");
    let r = replay(&d, "hook_nope", json!({"from_offset": 1}));
    assert_eq!(r.status, 404);
    let r = d.owner("GET", &format!("/v1/hooks/{id}/replays/rpl_nope"), None);
    assert_eq!(r.status, 404);
    // Another user's hook cannot be replayed.
    let (_, key) = d.user_with_key("zap", &["subscribe:webhook", "read:customer"]);
    let r = d.call(
        "POST",
        &format!("/v1/hooks/{id}/replay"),
        Some(&key),
        Some(&json!({"from_offset": 1})),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn replay_rechecks_scope_and_permissions_now() {
    let d = start();
    let (ann, ann_key) =
        d.user_with_key("ann", &["subscribe:webhook", "read:customer", "read:lead"]);
    let (bob, _) = d.user_with_key("bob", &["read:lead"]);
    let first = post(
        &d,
        json!([
            {"type": "lead.created", "data": {"id": "lead_ann"}, "assigned_user_id": ann},
            {"type": "lead.created", "data": {"id": "lead_bob"}, "assigned_user_id": bob},
            {"type": "lead.created", "data": {"id": "lead_open"}},
            {"type": "customer.created", "data": {"id": "cus_1", "medical_conditions": ["x", "y"]}}
        ]),
    );
    let rx = Receiver::ok();
    let id = hook(
        &d,
        &ann_key,
        json!({"target_url": rx.url("/ann"), "events": ["lead.created", "customer.created"],
               "ordering": "strict"}),
    );
    let r = replay(&d, &id, json!({"from_offset": first[0].1}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["matched"], 3, "bob's lead is out of ann's scope");
    let got = wait_for(&rx, 3, WAIT);
    let entities: Vec<String> = got
        .iter()
        .map(|r| r.json()["data"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(entities, ["lead_ann", "lead_open", "cus_1"]);
    let body = String::from_utf8_lossy(&got[2].body).to_string();
    assert!(!body.contains("medical_conditions\""), "{body}");
    assert!(body.contains("\"medical_conditions_count\":2"), "{body}");
    assert_quiet(&rx, 3);

    // Ann loses read:customer: a replay matches only what she may read now.
    let r = d.owner(
        "PATCH",
        &format!("/v1/users/{ann}"),
        Some(&json!({"permissions": ["subscribe:webhook", "read:lead"]})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = replay(&d, &id, json!({"from_offset": first[0].1, "dry_run": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["matched"], 2);
}

/// A replay is journaled: it survives a restart, it pauses while its hook's lag is high (so it
/// cannot starve live traffic), and live events enter the same hook between its batches and
/// reach other hooks at once.
#[test]
fn a_big_replay_survives_restart_and_live_events_keep_flowing() {
    const N: usize = 2500;
    let temp = tempfile::tempdir().unwrap();
    let mut d = common::start_in(temp.path(), CONFIG);
    for chunk in 0..N / 500 {
        post(&d, customers(chunk * 500, 500));
    }
    let rx = Receiver::ok();
    let replayed = hook(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/replayed"), "event": "customer.created", "ordering": "none"}),
    );
    // Paused: the backlog grows to the lag cap and the replay waits, half scanned.
    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{replayed}"),
        Some(&json!({"state": "paused"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = replay(&d, &replayed, json!({"from_offset": 1}));
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["matched"], N);
    let replay_id = r.json["replay_id"].as_str().unwrap().to_string();
    let progress = common::wait_until(WAIT, || {
        let r = d.owner(
            "GET",
            &format!("/v1/hooks/{replayed}/replays/{replay_id}"),
            None,
        );
        (r.json["queued"].as_u64().unwrap_or(0) > 0).then_some(r.json)
    })
    .expect("the replay queued a first batch");
    std::thread::sleep(Duration::from_millis(300));
    let progress_now = d
        .owner(
            "GET",
            &format!("/v1/hooks/{replayed}/replays/{replay_id}"),
            None,
        )
        .json;
    assert_eq!(
        progress_now["status"], "scanning",
        "{progress} {progress_now}"
    );
    let queued = progress_now["queued"].as_u64().unwrap();
    assert!(
        queued < N as u64,
        "a paused hook's replay stops at the lag cap: queued {queued}"
    );
    assert_eq!(d.stop(), Some(0));

    let d = common::start_in(temp.path(), CONFIG);
    let live_rx = Receiver::ok();
    let live_hook = hook(
        &d,
        &d.owner_key,
        json!({"target_url": live_rx.url("/live"), "event": "customer.created"}),
    );
    let live = post(&d, customers(N, 1));
    let got = wait_for(&live_rx, 1, WAIT);
    assert_eq!(got[0].header("webhook-id").unwrap(), live[0].0);
    assert_eq!(view(&d, &live_hook)["lag"], 0);

    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{replayed}"),
        Some(&json!({"state": "active"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let got = wait_for(&rx, N + 1, Duration::from_secs(60));
    let distinct: HashSet<String> = webhook_ids(&got).into_iter().collect();
    assert_eq!(
        distinct.len(),
        N + 1,
        "every replayed event and the live one"
    );
    let live_seq = got
        .iter()
        .find(|r| r.header("webhook-id") == Some(live[0].0.as_str()))
        .unwrap()
        .sequence();
    assert!(
        live_seq < N as u64,
        "the live event entered between replay batches (sequence {live_seq}), not after all {N}"
    );
    let mut seqs: Vec<u64> = got.iter().map(|r| r.sequence()).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=(N as u64 + 1)).collect::<Vec<_>>(), "no gap");
    wait_replay_done(&d, &replayed, &replay_id);
}

#[test]
fn resend_one_and_recover_failed_deliveries() {
    let d = start();
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = healthy.clone();
    let rx = Receiver::start(move |_, _| {
        if flag.load(Ordering::SeqCst) {
            Answer::status(200)
        } else {
            Answer::status(500)
        }
    });
    let id = hook(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/r"), "event": "customer.created", "ordering": "strict"}),
    );
    let since = rev23_webhooks::clock::format_ms(rev23_webhooks::clock::now_ms() - 1000);
    let posted = post(&d, customers(0, 3));
    // 3 attempts each, all failing.
    wait_for(&rx, 9, WAIT);
    let failed = common::wait_until(WAIT, || {
        let r = d.owner(
            "GET",
            &format!("/v1/hooks/{id}/deliveries?status=failed"),
            None,
        );
        (r.json["data"].as_array().map(|a| a.len()) == Some(3)).then_some(r.json)
    })
    .expect("three failed deliveries");
    assert_eq!(failed["data"][0]["attempts"].as_array().unwrap().len(), 3);
    healthy.store(true, Ordering::SeqCst);

    let r = d.owner("POST", &format!("/v1/hooks/{id}/deliveries/2/resend"), None);
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["resent_sequence"], 2);
    assert_eq!(r.json["sequence"], 4);
    let got = wait_for(&rx, 10, WAIT);
    assert_eq!(got[9].header("webhook-id").unwrap(), posted[1].0);
    assert_eq!(got[9].sequence(), 4);
    assert_eq!(got[9].header("rev23-attempt").unwrap(), "1");

    let r = d.owner(
        "POST",
        &format!("/v1/hooks/{id}/deliveries/99/resend"),
        None,
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = d.owner("POST", &format!("/v1/hooks/{id}/deliveries/x/resend"), None);
    assert_eq!(r.status, 404, "{}", r.text);

    // Recover: every failed delivery since `since` (all three) goes again.
    let r = d.owner(
        "POST",
        &format!("/v1/hooks/{id}/recover"),
        Some(&json!({"since": since})),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["queued"], 3);
    let got = wait_for(&rx, 13, WAIT);
    let recovered: Vec<String> = webhook_ids(&got[10..]);
    let expected: Vec<String> = posted.iter().map(|(i, _)| i.clone()).collect();
    assert_eq!(recovered, expected);
    assert_quiet(&rx, 13);
    let r = d.owner(
        "GET",
        &format!("/v1/hooks/{id}/deliveries?status=succeeded"),
        None,
    );
    assert_eq!(r.json["data"].as_array().unwrap().len(), 4, "{}", r.text);

    // Nothing failed after now: recover queues nothing.
    let later = rev23_webhooks::clock::format_ms(rev23_webhooks::clock::now_ms() + 60_000);
    let r = d.owner(
        "POST",
        &format!("/v1/hooks/{id}/recover"),
        Some(&json!({"since": later})),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["matched"], 0);
    let r = d.owner(
        "POST",
        &format!("/v1/hooks/{id}/recover"),
        Some(&json!({"since": "soon"})),
    );
    assert_eq!(r.status, 422, "{}", r.text);
}

#[test]
fn the_replay_cli_talks_to_a_running_daemon() {
    let d = start();
    let past = post(&d, customers(0, 4));
    let rx = Receiver::ok();
    let id = hook(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/cli"), "event": "customer.created", "ordering": "strict"}),
    );
    let run = |args: &[&str]| {
        common::run_bounded(
            std::process::Command::new(common::BIN)
                .arg("replay")
                .args(["--url", &d.base_url, "--key", &d.owner_key, "--hook", &id])
                .args(args),
            Duration::from_secs(60),
        )
        .expect("run the replay CLI")
    };
    let from = past[1].1.to_string();
    let (ok, stdout, stderr) = run(&["--from-offset", &from, "--dry-run"]);
    assert!(ok, "{stdout} {stderr}");
    let answer: Value = serde_json::from_str(stdout.trim()).expect("the daemon's JSON answer");
    assert_eq!(answer["matched"], 3, "dry run prints the count: {stdout}");
    assert_quiet(&rx, 0);
    let to = past[2].1.to_string();
    let (ok, stdout, stderr) = run(&["--from-offset", &from, "--to-offset", &to]);
    assert!(ok, "{stdout} {stderr}");
    let got = wait_for(&rx, 2, WAIT);
    // Two entities: `entity` ordering sends them in parallel, so arrival order is free.
    let mut ids = webhook_ids(&got);
    ids.sort();
    let mut want = [past[1].0.clone(), past[2].0.clone()];
    want.sort();
    assert_eq!(ids, want);
    // A daemon error is reported with a non-zero exit.
    let (ok, _, stderr) = run(&["--from-offset", "0"]);
    assert!(!ok, "a refused replay exits non-zero");
    assert!(stderr.contains("from_offset"), "{stderr}");
}

/// At most 8 replays of one hook scan at once; the 9th is refused before any scanning. Deleting
/// the hook drops its replays.
#[test]
fn active_replays_per_hook_are_limited() {
    let d = start();
    for chunk in 0..3 {
        post(&d, customers(chunk * 500, 500));
    }
    let rx = Receiver::ok();
    let id = hook(
        &d,
        &d.owner_key,
        json!({"target_url": rx.url("/r"), "event": "customer.created"}),
    );
    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{id}"),
        Some(&json!({"state": "paused"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let mut replay_ids = Vec::new();
    for _ in 0..8 {
        let r = replay(&d, &id, json!({"from_offset": 1}));
        assert_eq!(r.status, 202, "{}", r.text);
        replay_ids.push(r.json["replay_id"].as_str().unwrap().to_string());
    }
    // The paused hook's lag holds every replay at the cap: still scanning.
    std::thread::sleep(Duration::from_millis(500));
    let scanning = replay_ids
        .iter()
        .filter(|rid| {
            d.owner("GET", &format!("/v1/hooks/{id}/replays/{rid}"), None)
                .json["status"]
                == "scanning"
        })
        .count();
    assert_eq!(scanning, 8);
    let r = replay(&d, &id, json!({"from_offset": 1}));
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "conflict");
    // A dry run only counts, so it is not limited.
    let r = replay(&d, &id, json!({"from_offset": 1, "dry_run": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["matched"], 1500);

    let r = d.owner("DELETE", &format!("/v1/hooks/{id}"), None);
    assert_eq!(r.status, 204, "{}", r.text);
    let r = d.owner(
        "GET",
        &format!("/v1/hooks/{id}/replays/{}", replay_ids[0]),
        None,
    );
    assert_eq!(r.status, 404);
    assert_quiet(&rx, 0);
}
