//! The hooks projection (hook configs and every hook's matched sequence) is a pure function of the
//! journal: wiping it and restarting rebuilds byte-identical tables, so the sender's cursors stay
//! valid, and deliveries resume after the rebuild without gaps or repeats.

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use rev23_webhooks::journal::schema;
use rev23_webhooks::projectors::hooks::dump_tables;
use serde_json::json;

fn dump(data_dir: &std::path::Path) -> String {
    let db = schema::open(data_dir, 16 << 20).expect("open db");
    dump_tables(&db).expect("dump")
}

#[test]
fn wiping_the_hooks_projection_rebuilds_it_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::ok();
    let mut d = common::start_in(dir.path(), "");
    let (alice, alice_key) = d.user_with_key(
        "alice",
        &["subscribe:webhook", "read:service", "read:customer"],
    );
    let mut hook_ids = Vec::new();
    for (key, events) in [
        (
            &d.owner_key.clone(),
            json!(["customer.created", "service.created"]),
        ),
        (&alice_key, json!(["service.created"])),
        (&alice_key, json!(["customer.created", "customer.updated"])),
    ] {
        let r = d.call(
            "POST",
            "/v1/hooks",
            Some(key),
            Some(&json!({"target_url": rx.url("/h"), "events": events})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        hook_ids.push(r.json["id"].as_str().unwrap().to_string());
    }
    // Pause one, rotate another: state and secrets are part of the projection.
    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{}", hook_ids[2]),
        Some(&json!({"state": "paused"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = d.owner(
        "POST",
        &format!("/v1/hooks/{}/rotate-secret", hook_ids[0]),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let mut events = Vec::new();
    for i in 0..30 {
        let assigned = if i % 3 == 0 {
            json!(alice)
        } else {
            json!("someone_else")
        };
        let kind = if i % 2 == 0 {
            "service.created"
        } else {
            "customer.created"
        };
        events.push(
            json!({"type": kind, "data": {"id": format!("e{i}")}, "assigned_user_id": assigned}),
        );
    }
    let r = d.owner("POST", "/v1/events", Some(&json!(events)));
    assert_eq!(r.status, 201, "{}", r.text);
    // owner hook: 30 events; alice's service hook: only service events assigned to her (5);
    // alice's customer hook is paused but keeps matching (15).
    let heads: Vec<u64> = hook_ids
        .iter()
        .map(|id| {
            common::wait_until(Duration::from_secs(10), || {
                let h = d.owner("GET", &format!("/v1/hooks/{id}"), None);
                let head = h.json["head_sequence"].as_u64().unwrap();
                (head > 0).then_some(head)
            })
            .expect("hook matched events")
        })
        .collect();
    assert_eq!(heads, vec![30, 5, 15]);
    let delivered = rx.wait_for(35, Duration::from_secs(20)).len();
    assert_eq!(delivered, 35, "active hooks delivered their sequences");
    assert_eq!(d.stop(), Some(0));

    let before = dump(&d.data_dir);
    assert!(
        before.contains(&hook_ids[0])
            && before.lines().filter(|l| l.starts_with("entry ")).count() == 50
    );
    common::rebuild_projections(&d.data_dir);
    assert_eq!(dump(&d.data_dir), "", "the wipe removed the projection");

    let mut d = common::start_in(dir.path(), "");
    let ready = d.owner("GET", "/readyz", None);
    assert_eq!(
        ready.json["projectors"]["hooks"]["applied_since_start"],
        ready.json["journal_head"]
    );
    assert_eq!(d.stop(), Some(0));
    assert_eq!(
        dump(&d.data_dir),
        before,
        "the rebuilt projection is identical"
    );

    // The cursors still fit: nothing is re-sent, and resuming the paused hook delivers its 15
    // from sequence 1.
    let mut d = common::start_in(dir.path(), "");
    let r = d.owner(
        "PATCH",
        &format!("/v1/hooks/{}", hook_ids[2]),
        Some(&json!({"state": "active"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let got = rx.wait_for(50, Duration::from_secs(20));
    assert_eq!(got.len(), 50);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(rx.count(), 50, "no repeats after the rebuild");
    let mut resumed: Vec<u64> = got[35..].iter().map(|r| r.sequence()).collect();
    resumed.sort();
    assert_eq!(resumed, (1..=15).collect::<Vec<_>>());
    assert!(got[35..]
        .iter()
        .all(|r| r.header("rev23-hook-id") == Some(hook_ids[2].as_str())));
    assert_eq!(d.stop(), Some(0));
}
